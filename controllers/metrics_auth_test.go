package controllers

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	authnapi "k8s.io/api/authentication/v1"
	authzapi "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
)

func TestBearerToken(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl-_"
	for _, tc := range []struct {
		header []string
		token  string // "": no token
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"Bearer " + jwt}, jwt},
		{[]string{"bearer abc"}, "abc"},
		{[]string{"BEARER abc"}, "abc"},
		{[]string{"Bearer   abc"}, "abc"},
		{[]string{"Bearer a.b-c_d~e+f/g=="}, "a.b-c_d~e+f/g=="},
		{[]string{"Bearer"}, ""},
		{[]string{"Bearer "}, ""},
		{[]string{"Bearerabc"}, ""},
		{[]string{"Bearer\tabc"}, ""},
		{[]string{"Bearer abc def"}, ""},
		{[]string{"Bearer abc "}, ""},
		{[]string{"Bearer ===="}, ""},
		{[]string{"Bearer ab=c"}, ""},
		{[]string{"Bearer abc\x00"}, ""},
		{[]string{"Bearer ab\"c"}, ""},
		{[]string{"Bearer ab,c"}, ""},
		{[]string{"Bearer é"}, ""},
		{[]string{"Basic dXNlcjpwYXNz"}, ""},
		{[]string{"Token abc"}, ""},
		{[]string{"Bearer abc", "Bearer abc"}, ""},
		{[]string{"Bearer abc", "Basic dXNlcjpwYXNz"}, ""},
	} {
		h := http.Header{}
		for _, v := range tc.header {
			h.Add("Authorization", v)
		}
		got, ok := bearerToken(h)
		if ok != (tc.token != "") || got != tc.token {
			t.Errorf("Authorization %q: bearerToken = %q, %v; want %q", tc.header, got, ok, tc.token)
		}
	}
}

func key(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

func TestReviewCacheExpiry(t *testing.T) {
	c := newReviewCache[string](4)
	t0 := time.Unix(1000, 0)
	c.put(key("a"), "A", time.Minute, t0)
	if v, ok := c.get(key("a"), t0.Add(time.Minute-time.Nanosecond)); !ok || v != "A" {
		t.Errorf("before its TTL: get = %q, %v; want A", v, ok)
	}
	if v, ok := c.get(key("a"), t0.Add(time.Minute)); ok {
		t.Errorf("at its TTL: get = %q, want nothing", v)
	}
	if n := c.len(); n != 0 {
		t.Errorf("an expired answer got is still held: %d entries", n)
	}
	if _, ok := c.get(key("b"), t0); ok {
		t.Error("an answer never put is got")
	}
	// A new answer replaces the old one, with its own TTL.
	c.put(key("a"), "A1", time.Second, t0)
	c.put(key("a"), "A2", time.Minute, t0)
	if v, ok := c.get(key("a"), t0.Add(30*time.Second)); !ok || v != "A2" {
		t.Errorf("replaced: get = %q, %v; want A2", v, ok)
	}
}

func TestReviewCacheBound(t *testing.T) {
	t0 := time.Unix(1000, 0)
	has := func(c *reviewCache[string], now time.Time, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := c.get(key(k), now); !ok {
				t.Errorf("%s was evicted", k)
			}
		}
	}
	hasNot := func(c *reviewCache[string], now time.Time, k string) {
		t.Helper()
		if _, ok := c.get(key(k), now); ok {
			t.Errorf("%s is still held", k)
		}
	}

	// Full of live answers: the least recently used one goes.
	c := newReviewCache[string](3)
	c.put(key("a"), "A", time.Minute, t0)
	c.put(key("b"), "B", time.Minute, t0)
	c.put(key("c"), "C", time.Minute, t0)
	has(c, t0, "a") // b is now the least recently used
	c.put(key("d"), "D", time.Minute, t0)
	hasNot(c, t0, "b")
	has(c, t0, "a", "c", "d")

	// The expired answers go first, however recently used.
	c = newReviewCache[string](3)
	c.put(key("a"), "A", time.Minute, t0)
	c.put(key("b"), "B", time.Minute, t0)
	c.put(key("c"), "C", time.Second, t0)
	has(c, t0, "c") // the most recently used, but expires first
	now := t0.Add(2 * time.Second)
	c.put(key("d"), "D", time.Minute, now)
	if n := c.len(); n != 3 {
		t.Errorf("%d entries after the expired one was dropped, want 3", n)
	}
	hasNot(c, now, "c")
	has(c, now, "a", "b", "d")

	// A new answer for a held key evicts nothing.
	c.put(key("a"), "A2", time.Minute, now)
	has(c, now, "a", "b", "d")

	// Random tokens do not grow it.
	c = newReviewCache[string](16)
	for i := range 10000 {
		c.put(key(fmt.Sprint(i)), "", time.Minute, t0)
		if n := c.len(); n > 16 {
			t.Fatalf("%d entries after %d answers, bound 16", n, i+1)
		}
	}
}

// TestReviewCacheConcurrent is for the race detector: the filter serves several scrapes at once.
func TestReviewCacheConcurrent(t *testing.T) {
	c := newReviewCache[int](8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				k := key(fmt.Sprint((g * i) % 20))
				c.put(k, i, time.Minute, time.Now())
				c.get(k, time.Now())
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > 8 {
		t.Errorf("%d entries, bound 8", n)
	}
}

// Two requests share a decision only if every field of their SubjectAccessReviews is the same.
func TestDecisionKey(t *testing.T) {
	base := func() authzapi.SubjectAccessReviewSpec {
		return authzapi.SubjectAccessReviewSpec{
			User:                  "alice",
			Groups:                []string{"system:authenticated", "team"},
			UID:                   "u1",
			Extra:                 map[string]authzapi.ExtraValue{"scopes": {"a", "b"}, "node": {"n1"}},
			NonResourceAttributes: &authzapi.NonResourceAttributes{Path: "/metrics", Verb: "get"},
		}
	}
	mustKey := func(s authzapi.SubjectAccessReviewSpec) [sha256.Size]byte {
		t.Helper()
		k, err := decisionKey(s)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if mustKey(base()) != mustKey(base()) {
		t.Fatal("the same question has two keys")
	}
	keys := map[[sha256.Size]byte]string{mustKey(base()): "base"}
	for what, change := range map[string]func(*authzapi.SubjectAccessReviewSpec){
		"user":                func(s *authzapi.SubjectAccessReviewSpec) { s.User = "bob" },
		"no groups":           func(s *authzapi.SubjectAccessReviewSpec) { s.Groups = nil },
		"one group less":      func(s *authzapi.SubjectAccessReviewSpec) { s.Groups = s.Groups[:1] },
		"another group":       func(s *authzapi.SubjectAccessReviewSpec) { s.Groups[1] = "admins" },
		"groups joined":       func(s *authzapi.SubjectAccessReviewSpec) { s.Groups = []string{"system:authenticated,team"} },
		"uid":                 func(s *authzapi.SubjectAccessReviewSpec) { s.UID = "u2" },
		"no extra":            func(s *authzapi.SubjectAccessReviewSpec) { s.Extra = nil },
		"an extra key":        func(s *authzapi.SubjectAccessReviewSpec) { s.Extra["other"] = s.Extra["node"]; delete(s.Extra, "node") },
		"an extra value":      func(s *authzapi.SubjectAccessReviewSpec) { s.Extra["node"] = authzapi.ExtraValue{"n2"} },
		"extra values joined": func(s *authzapi.SubjectAccessReviewSpec) { s.Extra["scopes"] = authzapi.ExtraValue{"a,b"} },
		"user moved to uid":   func(s *authzapi.SubjectAccessReviewSpec) { s.User, s.UID = "", "alice" },
		"path":                func(s *authzapi.SubjectAccessReviewSpec) { s.NonResourceAttributes.Path = "/metrics/" },
		"verb":                func(s *authzapi.SubjectAccessReviewSpec) { s.NonResourceAttributes.Verb = "post" },
		"resource attributes": func(s *authzapi.SubjectAccessReviewSpec) { s.ResourceAttributes = &authzapi.ResourceAttributes{} },
	} {
		s := base()
		change(&s)
		k := mustKey(s)
		if other, dup := keys[k]; dup {
			t.Errorf("%s: the same key as %s", what, other)
		}
		keys[k] = what
	}

	// Every field, the ones Kubernetes adds later included.
	typ := reflect.TypeFor[authzapi.SubjectAccessReviewSpec]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		s := base()
		v := reflect.ValueOf(&s).Elem().Field(i)
		switch f.Type.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Slice:
			v.Set(reflect.Append(v, reflect.ValueOf("x").Convert(f.Type.Elem())))
		case reflect.Map:
			v.SetMapIndex(reflect.ValueOf("x").Convert(f.Type.Key()), reflect.Zero(f.Type.Elem()))
		case reflect.Pointer:
			if v.IsNil() {
				v.Set(reflect.New(f.Type.Elem()))
			} else {
				v.Set(reflect.Zero(f.Type))
			}
		default:
			t.Fatalf("field %s of kind %s: teach the test to change it", f.Name, f.Type.Kind())
		}
		if mustKey(s) == mustKey(base()) {
			t.Errorf("field %s is not in the key", f.Name)
		}
	}
}

// The SubjectAccessReview asks about the user the TokenReview returned, whole, doing what the
// request does.
func TestAccessReviewSpec(t *testing.T) {
	user := &authnapi.UserInfo{
		Username: "system:serviceaccount:monitoring:prometheus",
		UID:      "9d3c",
		Groups:   []string{"system:serviceaccounts", "system:authenticated"},
		Extra:    map[string]authnapi.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}},
	}
	r := httptest.NewRequest("GET", "https://198.18.0.1:9402/metrics?x=1", nil)
	want := authzapi.SubjectAccessReviewSpec{
		User:                  user.Username,
		UID:                   user.UID,
		Groups:                user.Groups,
		Extra:                 map[string]authzapi.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}},
		NonResourceAttributes: &authzapi.NonResourceAttributes{Path: "/metrics", Verb: "get"},
	}
	if diff := cmp.Diff(want, accessReviewSpec(user, r)); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if n := reflect.TypeFor[authnapi.UserInfo]().NumField(); n != 4 {
		t.Errorf("authentication/v1 UserInfo has %d fields, accessReviewSpec passes 4 on", n)
	}
	if got := accessReviewSpec(&authnapi.UserInfo{Username: "a"}, r).Extra; got != nil {
		t.Errorf("no extra: %v, want nil", got)
	}
}

func TestTransientReviewError(t *testing.T) {
	gr := schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}
	post := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://198.18.0.1:6443/apis/authentication.k8s.io/v1/tokenreviews", Err: err}
	}
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}
	}
	for _, tc := range []struct {
		what      string
		err       error
		transient bool
	}{
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"500", apierrors.NewInternalError(errors.New("boom")), true},
		{"503", apierrors.NewServiceUnavailable("later"), true},
		{"504", apierrors.NewTimeoutError("gateway", 1), true},
		{"connection reset", post(opErr(syscall.ECONNRESET)), true},
		{"cut off mid-answer", post(io.ErrUnexpectedEOF), true},
		{"closed before the answer", post(io.EOF), true},
		{"HTTP/2 connection lost", post(errors.New("http2: client connection lost")), true},
		{"403: the agent may not create the review", apierrors.NewForbidden(gr, "", errors.New("no RBAC")), false},
		{"401: the agent's credentials", apierrors.NewUnauthorized("who are you"), false},
		{"400", apierrors.NewBadRequest("no"), false},
		{"connection refused", post(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), false},
		{"timed out", post(context.DeadlineExceeded), false},
		{"canceled", post(context.Canceled), false},
		{"TLS", post(x509.UnknownAuthorityError{}), false},
	} {
		if got := transientReviewError(tc.err); got != tc.transient {
			t.Errorf("%s: transientReviewError(%v) = %v, want %v", tc.what, tc.err, got, tc.transient)
		}
	}
}

func TestAskAPIServer(t *testing.T) {
	b := wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}
	overloaded := apierrors.NewTooManyRequests("slow down", 1)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "tokenreviews"}, "", errors.New("no"))
	for _, tc := range []struct {
		what    string
		answers []error
		calls   int
		err     error
	}{
		{"answered", []error{nil}, 1, nil},
		{"answered after two 429", []error{overloaded, overloaded, nil}, 3, nil},
		{"429 every time", []error{overloaded, overloaded, overloaded, nil}, 3, overloaded},
		{"403 is not asked again", []error{forbidden, nil}, 1, forbidden},
	} {
		calls := 0
		err := askAPIServer(t.Context(), b, func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("%s: asked without a deadline", tc.what)
			}
			calls++
			return tc.answers[calls-1]
		})
		if calls != tc.calls || err != tc.err {
			t.Errorf("%s: %d calls, error %v; want %d, %v", tc.what, calls, err, tc.calls, tc.err)
		}
	}

	// The scraper goes away during the backoff: the last error at once.
	ctx, cancel := context.WithCancel(t.Context())
	start := time.Now()
	err := askAPIServer(ctx, wait.Backoff{Duration: time.Hour, Steps: 3}, func(context.Context) error {
		cancel()
		return overloaded
	})
	if err != overloaded || time.Since(start) > time.Minute {
		t.Errorf("canceled during the backoff: %v after %s", err, time.Since(start))
	}
}

// fakeTokenReviews authenticates the tokens in users, and counts the reviews; with err set,
// every review fails with it.
type fakeTokenReviews struct {
	authenticationv1.TokenReviewInterface
	users   map[string]authnapi.UserInfo
	err     error
	mu      sync.Mutex
	reviews int
}

func (f *fakeTokenReviews) Create(_ context.Context, tr *authnapi.TokenReview, _ metav1.CreateOptions) (*authnapi.TokenReview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reviews++
	if f.err != nil {
		return nil, f.err
	}
	out := tr.DeepCopy()
	out.Status.User, out.Status.Authenticated = f.users[tr.Spec.Token]
	if !out.Status.Authenticated {
		out.Status.Error = "invalid bearer token " + tr.Spec.Token
	}
	return out, nil
}

// fakeAccessReviews allows what allowed says, and counts the reviews.
type fakeAccessReviews struct {
	authorizationv1.SubjectAccessReviewInterface
	allowed func(authzapi.SubjectAccessReviewSpec) bool
	reviews int
}

func (f *fakeAccessReviews) Create(_ context.Context, sar *authzapi.SubjectAccessReview, _ metav1.CreateOptions) (*authzapi.SubjectAccessReview, error) {
	f.reviews++
	out := sar.DeepCopy()
	out.Status.Allowed = f.allowed(sar.Spec)
	out.Status.Denied = !out.Status.Allowed
	return out, nil
}

// The reviewer asks once per token and per question while the answer holds, and the tokens
// anyone can make fill only the cache of rejected ones.
func TestReviewerCaches(t *testing.T) {
	alice := authnapi.UserInfo{Username: "alice", Groups: []string{"readers"}}
	tokens := &fakeTokenReviews{users: map[string]authnapi.UserInfo{"alice-token": alice, "bob-token": {Username: "bob"}}}
	access := &fakeAccessReviews{allowed: func(s authzapi.SubjectAccessReviewSpec) bool {
		return s.User == "alice" && s.NonResourceAttributes.Path == "/metrics"
	}}
	rv := newReviewer(tokens, access, 8, 1)
	ctx := t.Context()
	authn := func(token string) *authnapi.UserInfo {
		t.Helper()
		u, err := rv.authenticate(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for range 3 {
		if u := authn("alice-token"); u == nil || u.Username != "alice" {
			t.Fatalf("alice's token: %v", u)
		}
		if u := authn("garbage"); u != nil {
			t.Fatalf("a garbage token: %v", u)
		}
	}
	if tokens.reviews != 2 {
		t.Errorf("%d TokenReviews for 2 tokens", tokens.reviews)
	}
	for i := range 100 {
		authn(fmt.Sprint("random-", i))
	}
	if n := rv.rejected.len(); n > 8 {
		t.Errorf("%d rejected tokens held, bound 8", n)
	}
	before := tokens.reviews
	if u := authn("alice-token"); u == nil || tokens.reviews != before {
		t.Errorf("alice's token after a spray of random ones: %v, %d more reviews; want it held", u, tokens.reviews-before)
	}

	authz := func(u *authnapi.UserInfo, path string) bool {
		t.Helper()
		d, err := rv.authorize(ctx, accessReviewSpec(u, httptest.NewRequest("GET", path, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return d.allowed
	}
	bob := authn("bob-token")
	for range 3 {
		if !authz(&alice, "/metrics") {
			t.Error("alice is not allowed /metrics")
		}
		if authz(bob, "/metrics") {
			t.Error("bob is allowed /metrics")
		}
		if authz(&alice, "/metrics/x") {
			t.Error("alice is allowed /metrics/x")
		}
	}
	if access.reviews != 3 {
		t.Errorf("%d SubjectAccessReviews for 3 questions", access.reviews)
	}
}

// A decision denied, which any valid token can collect one per path, never evicts an allow.
func TestReviewerDeniesKeepAllows(t *testing.T) {
	prometheus := authnapi.UserInfo{Username: "prometheus"}
	mallory := authnapi.UserInfo{Username: "mallory"}
	access := &fakeAccessReviews{allowed: func(s authzapi.SubjectAccessReviewSpec) bool { return s.User == "prometheus" }}
	rv := newReviewer(&fakeTokenReviews{}, access, reviewCacheSize, 1)
	authz := func(u *authnapi.UserInfo, path string) bool {
		t.Helper()
		d, err := rv.authorize(t.Context(), accessReviewSpec(u, httptest.NewRequest("GET", path, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return d.allowed
	}
	if !authz(&prometheus, "/metrics") {
		t.Fatal("prometheus is not allowed /metrics")
	}
	for i := range 2000 {
		if authz(&mallory, fmt.Sprintf("/metrics/%d", i)) {
			t.Fatal("mallory is allowed")
		}
	}
	if n := rv.denied.len(); n > reviewCacheSize {
		t.Errorf("%d denies held, bound %d", n, reviewCacheSize)
	}
	before := access.reviews
	if !authz(&prometheus, "/metrics") || access.reviews != before {
		t.Errorf("prometheus after 2000 denies: %d more reviews; want its allow held", access.reviews-before)
	}
}

// metricsFilterFixture is a filter in front of a handler that answers "metrics", reviewing
// with fakes: alice-token is alice, allowed get on /metrics.
func metricsFilterFixture(t *testing.T, inFlight int) (*fakeTokenReviews, *fakeAccessReviews, *reviewer, http.Handler) {
	tokens := &fakeTokenReviews{users: map[string]authnapi.UserInfo{"alice-token": {Username: "alice"}}}
	access := &fakeAccessReviews{allowed: func(s authzapi.SubjectAccessReviewSpec) bool {
		return s.User == "alice" && s.NonResourceAttributes.Path == "/metrics" && s.NonResourceAttributes.Verb == "get"
	}}
	rv := newReviewer(tokens, access, 8, inFlight)
	h := rv.filter(testr.New(t), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "metrics")
	}))
	return tokens, access, rv, h
}

func serveMetrics(h http.Handler, r *http.Request, token string) *httptest.ResponseRecorder {
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Only GET and HEAD are reviewed: any other method, however made up, is 405 before the API
// server is asked anything, so it cannot fill the caches.
func TestMetricsFilterMethods(t *testing.T) {
	tokens, access, _, h := metricsFilterFixture(t, 4)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO", "FOO1", "get", "Head"} {
		for _, token := range []string{"", "alice-token", "random"} {
			w := serveMetrics(h, httptest.NewRequest(m, "/metrics", nil), token)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s with token %q: %d, Allow %q; want 405, GET, HEAD", m, token, w.Code, w.Header().Get("Allow"))
			}
		}
	}
	if tokens.reviews != 0 || access.reviews != 0 {
		t.Errorf("%d TokenReviews and %d SubjectAccessReviews for methods refused", tokens.reviews, access.reviews)
	}
	for _, m := range []string{"GET", "HEAD"} {
		if w := serveMetrics(h, httptest.NewRequest(m, "/metrics", nil), "alice-token"); w.Code != http.StatusOK {
			t.Errorf("%s by alice: %d, want 200", m, w.Code)
		}
	}
	if access.reviews != 1 {
		t.Errorf("%d SubjectAccessReviews for GET and HEAD by alice, want 1: HEAD is reviewed as get", access.reviews)
	}
}

// A review that could not be made is a 500, even when the scraper has gone: never the
// handler's 200, never an empty answer.
func TestMetricsFilterFailed(t *testing.T) {
	tokens, _, _, h := metricsFilterFixture(t, 4)
	tokens.err = apierrors.NewForbidden(schema.GroupResource{Resource: "tokenreviews"}, "", errors.New("no"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, what := range []string{"the scraper waits", "the scraper is gone"} {
		w := serveMetrics(h, httptest.NewRequestWithContext(ctx, "GET", "/metrics", nil), "alice-token")
		if w.Code != http.StatusInternalServerError || w.Body.String() == "metrics" {
			t.Errorf("%s: %d %q, want 500", what, w.Code, w.Body.String())
		}
		cancel()
	}
}

// Only a review that asks the API server takes one of the in-flight slots: while they are all
// taken, a scrape answered from the caches is served, one that would ask gets 429.
func TestMetricsFilterInFlight(t *testing.T) {
	tokens, access, rv, h := metricsFilterFixture(t, 2)
	if w := serveMetrics(h, httptest.NewRequest("GET", "/metrics", nil), "alice-token"); w.Code != http.StatusOK {
		t.Fatalf("alice: %d, want 200", w.Code)
	}
	for range cap(rv.slots) {
		rv.slots <- struct{}{}
	}
	t.Cleanup(func() {
		for range cap(rv.slots) {
			<-rv.slots
		}
	})
	tr, sar := tokens.reviews, access.reviews
	if w := serveMetrics(h, httptest.NewRequest("GET", "/metrics", nil), "alice-token"); w.Code != http.StatusOK {
		t.Errorf("alice, reviewed already, while the reviews are all in flight: %d, want 200", w.Code)
	}
	w := serveMetrics(h, httptest.NewRequest("GET", "/metrics", nil), "random")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("an unknown token while the reviews are all in flight: %d, Retry-After %q; want 429", w.Code, w.Header().Get("Retry-After"))
	}
	if w := serveMetrics(h, httptest.NewRequest("GET", "/metrics/other", nil), "alice-token"); w.Code != http.StatusTooManyRequests {
		t.Errorf("a question not reviewed yet while the reviews are all in flight: %d, want 429", w.Code)
	}
	if tokens.reviews != tr || access.reviews != sar {
		t.Errorf("%d TokenReviews and %d SubjectAccessReviews made without a slot", tokens.reviews-tr, access.reviews-sar)
	}
}

func TestLogBudget(t *testing.T) {
	b := &logBudget{every: time.Second}
	t0 := time.Unix(1000, 0)
	for i, step := range []struct {
		at   time.Duration
		ok   bool
		held int
	}{
		{0, true, 0},
		{100 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{6 * time.Second, true, 0},
	} {
		ok, held := b.take(t0.Add(step.at))
		if ok != step.ok || held != step.held {
			t.Errorf("step %d at +%s: take = %v, %d; want %v, %d", i, step.at, ok, held, step.ok, step.held)
		}
	}
}
