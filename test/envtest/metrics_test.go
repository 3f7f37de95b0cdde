package envtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/controllers"
)

// garbageToken is a bearer token the API server did not issue; the test looks for it in the
// logs, where it must never be.
const garbageToken = "not-a-token-8f14e45fceea167a"

// TestMetricsAuth runs the agent's /metrics server with the agent's credentials and generated
// RBAC against the real API server: a scrape without a token is refused (401), one with a
// token the API server does not know too (401, not 500: the API server answered), one with a
// valid token whose ServiceAccount may not get /metrics is forbidden (403), and one bound to
// the metrics reader role of config/rbac gets the metrics. Refused scrapes are logged at debug
// level, a line a second at most, without the token; none is an error. Only HTTPS with
// HTTP/1.1 is served.
func TestMetricsAuth(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	logs := captureRuntimeLog(t)

	scraper, nosy := metricsScrapers(t, admin, "metrics-auth")
	// The server, with the agent's identity: its own RBAC must let it ask the API server.
	agentCfg := rest.CopyConfig(cfg)
	agentCfg.Impersonate = rest.ImpersonationConfig{UserName: agentUser}
	addr := startMetricsServer(t, agentCfg)

	for _, tc := range []struct {
		what, token string
		code        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a token the API server did not issue", garbageToken, http.StatusUnauthorized},
		{"a ServiceAccount without get /metrics", nosy, http.StatusForbidden},
		{"a ServiceAccount bound to the metrics reader role", scraper, http.StatusOK},
	} {
		resp, body := scrape(t, addr, tc.token)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d, want %d: %.300s", tc.what, resp.StatusCode, tc.code, body)
		}
		if tc.code == http.StatusOK && !strings.Contains(body, "# HELP") {
			t.Errorf("%s: no metrics in %.300s", tc.what, body)
		}
		if tc.code != http.StatusOK && strings.Contains(body, "# HELP") {
			t.Errorf("%s: metrics served", tc.what)
		}
		if got := resp.Header.Get("WWW-Authenticate"); tc.code == http.StatusUnauthorized && !strings.HasPrefix(got, "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", tc.what, got)
		}
		if resp.ProtoMajor != 1 {
			t.Errorf("%s: served over %s; HTTP/2 is off", tc.what, resp.Proto)
		}
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].Subject.CommonName == "" {
			t.Errorf("%s: no TLS certificate", tc.what)
		}
	}

	// Whoever can reach the port cannot make the agent log at will: a burst of rejected
	// tokens is answered 401 each, logs no error and, at debug level, a line a second.
	const burst = 20
	start := time.Now()
	for i := range burst {
		token := garbageToken
		if i%2 == 1 {
			token = nosy + "x" // a ServiceAccount token with its signature broken
		}
		if resp, body := scrape(t, addr, token); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("rejected token %d: status %d, want 401: %.300s", i, resp.StatusCode, body)
		}
	}
	elapsed := time.Since(start)
	out := logs.String()
	if n := countLines(out, metricsError...); n > 0 {
		t.Errorf("%d error lines for refused scrapes:\n%s", n, out)
	}
	if n, most := countLines(out, "status=401"), 2+int(elapsed/time.Second); n == 0 || n > most {
		t.Errorf("%d debug lines for %d refused scrapes in %s; want 1 to %d:\n%s", n, burst+2, elapsed, most, out)
	}
	for what, secret := range map[string]string{"a rejected token": garbageToken, "a ServiceAccount token": nosy[len(nosy)-20:]} {
		if strings.Contains(out, secret) {
			t.Errorf("%s is in the log", what)
		}
	}

	// Plain HTTP on the TLS port gets nothing.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "# HELP") {
			t.Error("plain HTTP got the metrics")
		}
	}
}

// TestMetricsReviewFailed runs /metrics where the API server cannot review a scrape: the agent
// may not create TokenReviews, or may create them but not SubjectAccessReviews, or the API
// server is unreachable. The valid scraper gets 500 (not 401 or 403: nothing was refused, the
// question could not be asked), a scrape without a token still 401; each server logs one error
// for a run of failures, not one per scrape.
func TestMetricsReviewFailed(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	logs := captureRuntimeLog(t)
	scraper, _ := metricsScrapers(t, admin, "metrics-failed")

	// An identity that may create TokenReviews and nothing else.
	tokenOnly := "kube-vrrp-metrics-token-only"
	for _, o := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: tokenOnly}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: tokenOnly},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tokenOnly},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: tokenOnly}}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), o) })
	}
	eventually(t, wait, "the TokenReview-only binding in effect", func() error {
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: tokenOnly}
		cs, err := kubernetes.NewForConfig(c)
		if err != nil {
			return err
		}
		_, err = cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: scraper}}, metav1.CreateOptions{})
		return err
	})

	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		what string
		cfg  func(*rest.Config)
	}{
		{"the agent may not create TokenReviews", func(c *rest.Config) {
			c.Impersonate = rest.ImpersonationConfig{UserName: "kube-vrrp-metrics-no-rbac"}
		}},
		{"the agent may not create SubjectAccessReviews", func(c *rest.Config) {
			c.Impersonate = rest.ImpersonationConfig{UserName: tokenOnly}
		}},
		{"the API server is unreachable", func(c *rest.Config) { c.Host = "https://" + closed }},
	} {
		t.Run(strings.ReplaceAll(tc.what, " ", "_"), func(t *testing.T) {
			c := rest.CopyConfig(cfg)
			tc.cfg(c)
			before := countLines(logs.String(), metricsError...)
			addr := startMetricsServer(t, c)
			for i := range 5 {
				resp, body := scrape(t, addr, scraper)
				if resp.StatusCode != http.StatusInternalServerError {
					t.Errorf("scrape %d: status %d, want 500: %.300s", i, resp.StatusCode, body)
				}
				if strings.Contains(body, "# HELP") {
					t.Errorf("scrape %d: metrics served", i)
				}
			}
			if resp, body := scrape(t, addr, ""); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("no token: status %d, want 401: %.300s", resp.StatusCode, body)
			}
			out := logs.String()
			if n := countLines(out, metricsError...) - before; n != 1 {
				t.Errorf("%d error lines for 5 failed reviews, want 1:\n%s", n, out)
			}
			if strings.Contains(out, scraper[len(scraper)-20:]) {
				t.Error("the scraper's token is in the log")
			}
		})
	}
}

// captureRuntimeLog sends controller-runtime's log, which the agent sets to its own
// (ctrl.SetLogger), to a buffer at debug level for the rest of the test.
func captureRuntimeLog(t *testing.T) *logBuffer {
	logs := &logBuffer{}
	runtimeLogTo.Store(logs)
	t.Cleanup(func() {
		runtimeLogTo.CompareAndSwap(logs, nil)
		if t.Failed() {
			t.Logf("controller-runtime's log:\n%s", logs.String())
		}
	})
	return logs
}

// runtimeLogTo is where controller-runtime's log goes (runtimeLogWriter); nowhere when nil.
var runtimeLogTo atomic.Pointer[logBuffer]

// runtimeLogWriter is controller-runtime's log for the whole package, set before any test runs:
// SetLogger takes effect once only, and controller-runtime settles on a logger that discards
// everything when none is set in its first 30 seconds.
type runtimeLogWriter struct{}

func (runtimeLogWriter) Write(p []byte) (int, error) {
	if b := runtimeLogTo.Load(); b != nil {
		return b.Write(p)
	}
	return len(p), nil
}

// metricsScrapers makes two ServiceAccounts, named after prefix, and returns a token of each:
// scraper is bound to config/rbac/metrics_reader_role.yaml, nosy to nothing.
func metricsScrapers(t *testing.T, admin client.Client, prefix string) (scraper, nosy string) {
	t.Helper()
	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var reader rbacv1.ClusterRole
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &reader); err != nil {
		t.Fatal(err)
	}
	reader.Name = prefix + "-reader"
	objs := []client.Object{
		&reader,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: prefix + "-scraper"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: prefix + "-nosy"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: agentNamespace, Name: prefix + "-scraper"}}},
	}
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), o) })
	}
	token := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts(agentNamespace).CreateToken(ctx, sa,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s: %v", sa, err)
		}
		return tr.Status.Token
	}
	return token(prefix + "-scraper"), token(prefix + "-nosy")
}

// startMetricsServer runs the agent's secure /metrics server with restCfg's identity until the
// test ends and returns its address.
func startMetricsServer(t *testing.T, restCfg *rest.Config) string {
	t.Helper()
	srv, err := controllers.NewMetricsServer(controllers.MetricsOptions{BindAddress: "127.0.0.1:0", Secure: true, ServerName: "lb1"}, restCfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	addr := ""
	eventually(t, wait, "the metrics server listening", func() error {
		addr = srv.(interface{ GetBindAddr() string }).GetBindAddr()
		if addr == "" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	return addr
}

// scrape gets /metrics at addr, with bearer as its token unless empty, offering HTTP/2.
func scrape(t *testing.T, addr, bearer string) (*http.Response, string) {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		// The certificate is self-signed: it encrypts, it does not identify.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}},
		ForceAttemptHTTP2: true,
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// metricsError are the words of an error line of the metrics server in captureRuntimeLog's
// log.
var metricsError = []string{"level=ERROR", "logger=controller-runtime/metrics"}

// countLines counts the lines of out that contain every one of words.
func countLines(out string, words ...string) int {
	n := 0
	for line := range strings.Lines(out) {
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(line, w) }) {
			n++
		}
	}
	return n
}
