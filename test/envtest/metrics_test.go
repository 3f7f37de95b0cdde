package envtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// TestMetricsAuth runs the agent's /metrics server with the agent's credentials and generated
// RBAC against the real API server: a scrape without a token is refused (401), one with a
// token the API server does not know too, one with a valid token whose ServiceAccount may not
// get /metrics is forbidden (403), and one bound to the metrics reader role of config/rbac
// gets the metrics. Only HTTPS with HTTP/1.1 is served.
func TestMetricsAuth(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// The scrapers: one bound to config/rbac/metrics_reader_role.yaml, one with no role.
	var reader rbacv1.ClusterRole
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &reader); err != nil {
		t.Fatal(err)
	}
	reader.Name = "metrics-auth-reader"
	objs := []client.Object{
		&reader,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "scraper"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "nosy"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "metrics-auth-reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: agentNamespace, Name: "scraper"}}},
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
	scraper, nosy := token("scraper"), token("nosy")

	// The server, with the agent's identity: its own RBAC must let it ask the API server.
	agentCfg := rest.CopyConfig(cfg)
	agentCfg.Impersonate = rest.ImpersonationConfig{UserName: agentUser}
	srv, err := controllers.NewMetricsServer(controllers.MetricsOptions{BindAddress: "127.0.0.1:0", Secure: true, ServerName: "lb1"}, agentCfg)
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

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The certificate is self-signed: it encrypts, it does not identify.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}},
		ForceAttemptHTTP2: true,
	}}
	get := func(bearer string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
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

	for _, tc := range []struct {
		what, token string
		code        int
	}{
		{"no token", "", http.StatusUnauthorized},
		// controller-runtime's filter answers 500 when the TokenReview says why it failed.
		{"a token the API server did not issue", "not-a-token", http.StatusInternalServerError},
		{"a ServiceAccount without get /metrics", nosy, http.StatusForbidden},
		{"a ServiceAccount bound to the metrics reader role", scraper, http.StatusOK},
	} {
		resp, body := get(tc.token)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d, want %d: %.300s", tc.what, resp.StatusCode, tc.code, body)
		}
		if tc.code == http.StatusOK && !strings.Contains(body, "# HELP") {
			t.Errorf("%s: no metrics in %.300s", tc.what, body)
		}
		if tc.code != http.StatusOK && strings.Contains(body, "# HELP") {
			t.Errorf("%s: metrics served", tc.what)
		}
		if resp.ProtoMajor != 1 {
			t.Errorf("%s: served over %s; HTTP/2 is off", tc.what, resp.Proto)
		}
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].Subject.CommonName == "" {
			t.Errorf("%s: no TLS certificate", tc.what)
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
