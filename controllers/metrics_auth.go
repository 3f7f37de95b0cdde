package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long the metrics endpoint keeps the API server's answers (docs/design.md §7.9): a
// token's review for a minute, an allow for five, a deny for thirty seconds. A review not
// answered within reviewTimeout fails; one answered 429 or 5xx, or cut off, is retried with
// reviewBackoff first.
const (
	tokenCacheTTL = time.Minute
	allowCacheTTL = 5 * time.Minute
	denyCacheTTL  = 30 * time.Second
	reviewTimeout = 10 * time.Second
)

var reviewBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// How often a refused scrape (401, 403; at debug level) and a review that failed (500; an
// error) may be logged: whoever can reach the port must not make the agent log at the rate
// they send requests.
const (
	refusedLogEvery = time.Second
	failedLogEvery  = 30 * time.Second
)

// reviewedByAPIServer is the metrics server's filter provider: every request's bearer token is
// authenticated by the API server (TokenReview) and the identity authorized for the request's
// verb on its non-resource path (SubjectAccessReview), both made with cfg's credentials. The
// answers are 401 with a Bearer challenge for no token or one the API server rejects, 403 for
// an identity RBAC does not allow, and 500 only when the API server could not be asked (no
// answer, or an HTTP error such as a review the agent may not create). The token is never
// logged.
func reviewedByAPIServer(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authnClient, err := authenticationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authzClient, err := authorizationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	backoff := reviewBackoff
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		TokenAccessReviewClient:  authnClient,
		TokenAccessReviewTimeout: reviewTimeout,
		WebhookRetryBackoff:      &backoff,
		CacheTTL:                 tokenCacheTTL,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("metrics authenticator: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: authzClient,
		AllowCacheTTL:             allowCacheTTL,
		DenyCacheTTL:              denyCacheTTL,
		WebhookRetryBackoff:       &backoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("metrics authorizer: %w", err)
	}
	refused := &logBudget{every: refusedLogEvery}
	failed := &logBudget{every: failedLogEvery}

	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		refuse := func(w http.ResponseWriter, r *http.Request, code int, why string, kv ...any) {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="kube-vrrp metrics"`)
			}
			http.Error(w, http.StatusText(code), code)
			if debug := log.V(4); debug.Enabled() {
				if ok, held := refused.take(time.Now()); ok {
					debug.Info("metrics request refused", append([]any{"status", code, "reason", why, "remote", r.RemoteAddr, "alsoRefused", held}, kv...)...)
				}
			}
		}
		fail := func(w http.ResponseWriter, r *http.Request, review string, err error) {
			if r.Context().Err() != nil {
				return // the scraper is gone
			}
			http.Error(w, "the API server could not review the request", http.StatusInternalServerError)
			if ok, held := failed.take(time.Now()); ok {
				log.Error(err, "metrics request not reviewed: the API server could not be asked", "review", review, "alsoFailed", held)
			}
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, ok, err := authn.AuthenticateRequest(r)
			switch {
			case err != nil && reviewFailed(err):
				fail(w, r, "TokenReview", err)
				return
			case err != nil:
				// The API server answered: not this token. What it said is not logged, lest
				// an authenticator echo the token.
				refuse(w, r, http.StatusUnauthorized, "token rejected")
				return
			case !ok:
				refuse(w, r, http.StatusUnauthorized, "no bearer token")
				return
			}
			decision, reason, err := authz.Authorize(r.Context(), authorizer.AttributesRecord{
				User: res.User,
				Verb: strings.ToLower(r.Method),
				Path: r.URL.Path,
			})
			if err != nil {
				fail(w, r, "SubjectAccessReview", err)
				return
			}
			if decision != authorizer.DecisionAllow {
				refuse(w, r, http.StatusForbidden, "not allowed", "user", res.User.GetName(), "why", reason)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}

// reviewFailed tells whether err, from the delegating authenticator, means that the API server
// could not review the token rather than that it reviewed and rejected it. The authenticator
// returns an error for both: a rejection is a plain message (the TokenReview's status.error,
// or "invalid bearer token"); a failed review is the client's error, an API status (the agent
// may not create TokenReviews, 429, 5xx), a transport error or a timeout, inside the
// aggregate of the authenticator's union.
func reviewFailed(err error) bool {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			if reviewFailed(e) {
				return true
			}
		}
		return false
	}
	var status apierrors.APIStatus
	var netErr net.Error
	return errors.As(err, &status) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
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
