package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authnapi "k8s.io/api/authentication/v1"
	authzapi "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long the metrics endpoint keeps the API server's answers (docs/design.md §7.9): a
// token's review (accepted or rejected) for a minute, an allow for five, a deny for thirty
// seconds. A review not answered within reviewTimeout fails; one answered 429 or 5xx, or cut
// off, is retried with reviewBackoff first (transientReviewError).
const (
	tokenCacheTTL = time.Minute
	allowCacheTTL = 5 * time.Minute
	denyCacheTTL  = 30 * time.Second
	reviewTimeout = 10 * time.Second
)

var reviewBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// reviewCacheSize bounds each cache of the API server's answers (accepted tokens, rejected
// tokens, allows, denies): a scraper sending random tokens or paths cannot grow the agent's
// memory, the tokens it sprays evict only other rejected tokens, and the denies it collects
// only other denies.
const reviewCacheSize = 1024

// errTooManyReviews is the answer of a review that would have to ask the API server while
// maxMetricsInFlight others are asking it: the scrape gets 429.
var errTooManyReviews = errors.New("too many reviews in flight")

// How often a refused scrape (401, 403; at debug level) and a review that failed (500; an
// error) may be logged: whoever can reach the port must not make the agent log at the rate
// they send requests.
const (
	refusedLogEvery = time.Second
	failedLogEvery  = 30 * time.Second
)

// reviewedByAPIServer is the metrics server's filter provider: only GET and HEAD are served
// (anything else is 405 before any review), every request's bearer token is authenticated by
// the API server (a TokenReview, no audiences) and the identity it returns authorized for get
// on its non-resource path (a SubjectAccessReview with the user's name, uid, groups and
// extra), both made with cfg's credentials and answered from bounded caches while they hold;
// at most maxMetricsInFlight reviews ask the API server at once. The answers are 401 with a
// Bearer challenge for no token (or a malformed Authorization header) or one the API server
// rejects, 403 for an identity RBAC does not allow, 429 when a review would have to ask the
// API server while maxMetricsInFlight others are, and 500 only when the API server could not
// be asked: the client's error, whatever it is (an API status such as the agent not being
// allowed to create the review, 429 or 5xx, a transport error, the timeout). The token is never
// logged nor kept: the caches key it by its SHA-256.
func reviewedByAPIServer(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authnClient, err := authenticationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authzClient, err := authorizationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	rv := newReviewer(authnClient.TokenReviews(), authzClient.SubjectAccessReviews(), reviewCacheSize, maxMetricsInFlight)
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return rv.filter(log, next), nil
	}, nil
}

// newReviewer returns a reviewer whose caches hold cacheSize answers each and that lets at
// most inFlight reviews ask the API server at once.
func newReviewer(tokens authenticationv1.TokenReviewInterface, access authorizationv1.SubjectAccessReviewInterface, cacheSize, inFlight int) *reviewer {
	return &reviewer{
		tokenReviews:  tokens,
		accessReviews: access,
		accepted:      newReviewCache[authnapi.UserInfo](cacheSize),
		rejected:      newReviewCache[struct{}](cacheSize),
		allowed:       newReviewCache[decision](cacheSize),
		denied:        newReviewCache[decision](cacheSize),
		slots:         make(chan struct{}, inFlight),
		refused:       &logBudget{every: refusedLogEvery},
		failed:        &logBudget{every: failedLogEvery},
	}
}

// filter serves next the requests rv lets through (reviewedByAPIServer).
func (rv *reviewer) filter(log logr.Logger, next http.Handler) http.Handler {
	refuse := func(w http.ResponseWriter, r *http.Request, code int, why string, kv ...any) {
		switch code {
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="kube-vrrp metrics"`)
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", "GET, HEAD")
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, http.StatusText(code), code)
		if debug := log.V(4); debug.Enabled() {
			if ok, held := rv.refused.take(time.Now()); ok {
				debug.Info("metrics request refused", append([]any{"status", code, "reason", why, "remote", r.RemoteAddr, "alsoRefused", held}, kv...)...)
			}
		}
	}
	// fail answers 500 whatever happened, the scraper gone included: a request that was
	// not reviewed must never fall through to the handler's 200.
	fail := func(w http.ResponseWriter, r *http.Request, review string, err error) {
		if errors.Is(err, errTooManyReviews) {
			refuse(w, r, http.StatusTooManyRequests, "too many reviews in flight")
			return
		}
		http.Error(w, "the API server could not review the request", http.StatusInternalServerError)
		if r.Context().Err() != nil {
			return // the scraper is gone: nothing worth logging
		}
		if ok, held := rv.failed.take(time.Now()); ok {
			log.Error(err, "metrics request not reviewed: the API server could not be asked", "review", review, "alsoFailed", held)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Before any review: a method made up per request would otherwise be a question
		// of its own to the API server, and a decision of its own in the cache.
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			refuse(w, r, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		token, ok := bearerToken(r.Header)
		if !ok {
			refuse(w, r, http.StatusUnauthorized, "no bearer token")
			return
		}
		user, err := rv.authenticate(r.Context(), token)
		switch {
		case err != nil:
			fail(w, r, "TokenReview", err)
			return
		case user == nil:
			// The API server answered: not this token. Its status.error is not logged,
			// lest an authenticator echo the token.
			refuse(w, r, http.StatusUnauthorized, "token rejected")
			return
		}
		d, err := rv.authorize(r.Context(), accessReviewSpec(user, r))
		if err != nil {
			fail(w, r, "SubjectAccessReview", err)
			return
		}
		if !d.allowed {
			refuse(w, r, http.StatusForbidden, "not allowed", "user", user.Username, "why", d.reason)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of h's Authorization header: exactly one header, the scheme
// "Bearer" in any case, one or more spaces, then a token of RFC 6750's b64token characters
// (which every Kubernetes token, a JWT included, is made of). Anything else is no token.
func bearerToken(h http.Header) (string, bool) {
	values := h.Values("Authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if !isB64Token(token) {
		return "", false
	}
	return token, true
}

// isB64Token tells whether s is an RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" /
// "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// reviewer asks the API server about a scrape, and remembers its answers for a while.
type reviewer struct {
	tokenReviews  authenticationv1.TokenReviewInterface
	accessReviews authorizationv1.SubjectAccessReviewInterface

	// accepted and rejected are the reviewed tokens by their SHA-256, apart so that rejected
	// tokens, which anyone can make, never evict an accepted one; allowed and denied are
	// the decisions, apart for the same reason: any valid token can collect denies.
	accepted *reviewCache[authnapi.UserInfo]
	rejected *reviewCache[struct{}]
	allowed  *reviewCache[decision]
	denied   *reviewCache[decision]

	// slots holds a token per review asking the API server: a cached answer takes none.
	slots chan struct{}

	refused, failed *logBudget // log lines of refused and failed requests
}

// ask asks the API server (askAPIServer) if fewer than cap(rv.slots) reviews are asking it,
// and returns errTooManyReviews otherwise.
func (rv *reviewer) ask(ctx context.Context, call func(context.Context) error) error {
	select {
	case rv.slots <- struct{}{}:
		defer func() { <-rv.slots }()
	default:
		return errTooManyReviews
	}
	return askAPIServer(ctx, reviewBackoff, call)
}

// decision is the API server's answer to a SubjectAccessReview.
type decision struct {
	allowed bool
	reason  string
}

// authenticate returns who token is, nil if the API server rejects it, or the error that
// kept the API server from answering.
func (rv *reviewer) authenticate(ctx context.Context, token string) (*authnapi.UserInfo, error) {
	key := sha256.Sum256([]byte(token))
	if u, ok := rv.accepted.get(key, time.Now()); ok {
		return &u, nil
	}
	if _, ok := rv.rejected.get(key, time.Now()); ok {
		return nil, nil
	}
	var status authnapi.TokenReviewStatus
	err := rv.ask(ctx, func(ctx context.Context) error {
		review, err := rv.tokenReviews.Create(ctx, &authnapi.TokenReview{Spec: authnapi.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err == nil {
			status = review.Status // not the review: its spec holds the token
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !status.Authenticated {
		rv.rejected.put(key, struct{}{}, tokenCacheTTL, time.Now())
		return nil, nil
	}
	rv.accepted.put(key, status.User, tokenCacheTTL, time.Now())
	return &status.User, nil
}

// accessReviewSpec is the SubjectAccessReview of r by user: get on its non-resource path. Only
// GET and HEAD get this far (the filter answers 405 to the others), and a HEAD, a GET without
// its body, is reviewed as the get it is part of, as the API server does for resources (for a
// non-resource URL it would ask "head", which no role grants in practice).
func accessReviewSpec(user *authnapi.UserInfo, r *http.Request) authzapi.SubjectAccessReviewSpec {
	var extra map[string]authzapi.ExtraValue
	if len(user.Extra) > 0 {
		extra = make(map[string]authzapi.ExtraValue, len(user.Extra))
		for k, v := range user.Extra {
			extra[k] = authzapi.ExtraValue(v)
		}
	}
	return authzapi.SubjectAccessReviewSpec{
		User:   user.Username,
		Groups: user.Groups,
		UID:    user.UID,
		Extra:  extra,
		NonResourceAttributes: &authzapi.NonResourceAttributes{
			Path: r.URL.Path,
			Verb: "get",
		},
	}
}

// decisionKey is the cache key of the decision on spec: the SHA-256 of its JSON, so that every
// field the API server decides on is in it (encoding/json writes a map's keys in order) and two
// requests share a decision only when they would ask the same question.
func decisionKey(spec authzapi.SubjectAccessReviewSpec) ([sha256.Size]byte, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// authorize returns the API server's decision on spec, or the error that kept it from
// answering.
func (rv *reviewer) authorize(ctx context.Context, spec authzapi.SubjectAccessReviewSpec) (decision, error) {
	key, err := decisionKey(spec)
	if err != nil {
		return decision{}, err
	}
	if d, ok := rv.allowed.get(key, time.Now()); ok {
		return d, nil
	}
	if d, ok := rv.denied.get(key, time.Now()); ok {
		return d, nil
	}
	var d decision
	err = rv.ask(ctx, func(ctx context.Context) error {
		review, err := rv.accessReviews.Create(ctx, &authzapi.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
		if err == nil {
			d = decision{allowed: review.Status.Allowed && !review.Status.Denied, reason: review.Status.Reason}
		}
		return err
	})
	if err != nil {
		return decision{}, err
	}
	// The newest answer only: two reviews of one question may have crossed a change of RBAC.
	if d.allowed {
		rv.denied.remove(key)
		rv.allowed.put(key, d, allowCacheTTL, time.Now())
	} else {
		rv.allowed.remove(key)
		rv.denied.put(key, d, denyCacheTTL, time.Now())
	}
	return d, nil
}

// askAPIServer calls ask until it succeeds or fails for good, at most b.Steps times, waiting
// b's backoff between the calls, all within reviewTimeout. It returns the last call's error.
func askAPIServer(ctx context.Context, b wait.Backoff, ask func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	steps := b.Steps // b.Step counts them down
	for attempt := 1; ; attempt++ {
		err := ask(ctx)
		if err == nil || attempt >= steps || !transientReviewError(err) {
			return err
		}
		t := time.NewTimer(b.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// transientReviewError tells whether a review that failed with err is worth asking again at
// once: the API server answered 429 or 5xx, or the connection was cut off. Anything else (an
// API status such as 403, a refused connection, a TLS error, the timeout) fails the scrape:
// Prometheus asks again at its next interval.
func transientReviewError(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code == http.StatusTooManyRequests || code >= http.StatusInternalServerError
	}
	return utilnet.IsConnectionReset(err) || utilnet.IsHTTP2ConnectionLost(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// reviewCache holds at most size answers of the API server, each until its TTL runs out, by
// a SHA-256 (never a token in clear). A new answer in a full cache first drops the expired
// ones, then the least recently used. Safe for concurrent use.
type reviewCache[V any] struct {
	mu      sync.Mutex
	size    int
	clock   uint64 // counts the uses, for least recently used
	entries map[[sha256.Size]byte]cachedReview[V]
}

type cachedReview[V any] struct {
	value   V
	expires time.Time
	used    uint64
}

func newReviewCache[V any](size int) *reviewCache[V] {
	return &reviewCache[V]{size: size, entries: make(map[[sha256.Size]byte]cachedReview[V])}
}

// get returns the answer under key if it has not expired at now.
func (c *reviewCache[V]) get(key [sha256.Size]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		var zero V
		return zero, false
	}
	c.clock++
	e.used = c.clock
	c.entries[key] = e
	return e.value, true
}

// put keeps value under key from now until ttl has passed.
func (c *reviewCache[V]) put(key [sha256.Size]byte, value V, ttl time.Duration, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		var lru [sha256.Size]byte
		oldest := uint64(math.MaxUint64)
		for k, e := range c.entries {
			switch {
			case !now.Before(e.expires):
				delete(c.entries, k)
			case e.used < oldest:
				lru, oldest = k, e.used
			}
		}
		if len(c.entries) >= c.size {
			delete(c.entries, lru)
		}
	}
	c.clock++
	c.entries[key] = cachedReview[V]{value: value, expires: now.Add(ttl), used: c.clock}
}

// remove drops the answer under key, if any.
func (c *reviewCache[V]) remove(key [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// len returns how many answers c holds, expired ones included.
func (c *reviewCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// logBudget lets one log line through per period and counts the others.
type logBudget struct {
	every time.Duration
	mu    sync.Mutex
	next  time.Time
	held  int
}

// take reports whether a line may be written at now, and how many were held back since the
// last one.
func (b *logBudget) take(now time.Time) (ok bool, held int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.next) {
		b.held++
		return false, 0
	}
	b.next = now.Add(b.every)
	held, b.held = b.held, 0
	return true, held
}
