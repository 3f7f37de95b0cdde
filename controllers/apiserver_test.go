//go:build linux

package controllers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
)

// The tests that need the API server's own behaviour (server-side apply, preconditions, field
// selectors, watches) share one kube-apiserver and etcd with the CRDs of config/crd/bases,
// started by the first of them (apiServer) and stopped when the package's tests end. Without
// the assets they skip (fail under CI: envtestassets), and so they do in -short mode.
var testAPI struct {
	once sync.Once
	env  *ctrlenvtest.Environment
	cfg  *rest.Config
	skip string
	err  error
}

func TestMain(m *testing.M) {
	// controller-runtime's own log: the tests read what they check from the API server.
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if testAPI.env != nil {
		if err := testAPI.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping kube-apiserver and etcd: %v\n", err)
		}
	}
	os.Exit(code)
}

// apiServer returns the configuration of the package's API server (as its admin), starting it
// on first use, or skips t.
func apiServer(t *testing.T) *rest.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd; skipped in -short mode")
	}
	testAPI.once.Do(func() {
		dir, skip, err := envtestassets.ForTestMain()
		if err != nil || skip != "" {
			testAPI.skip, testAPI.err = skip, err
			return
		}
		testAPI.env = &ctrlenvtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
			BinaryAssetsDirectory: dir,
		}
		if testAPI.cfg, err = testAPI.env.Start(); err != nil {
			testAPI.env, testAPI.err = nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", dir, err)
		}
	})
	switch {
	case testAPI.err != nil:
		t.Fatal(testAPI.err)
	case testAPI.skip != "":
		t.Skip(testAPI.skip)
	}
	return rest.CopyConfig(testAPI.cfg)
}

// apiClient is a client of cfg, uncached, with the package's scheme.
func apiClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: testScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createNodes creates the Nodes named, each with an InternalIP, and deletes them at the end.
func createNodes(t *testing.T, c client.Client, names ...string) {
	t.Helper()
	for i, name := range names {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Create(t.Context(), n); err != nil {
			t.Fatal(err)
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("198.18.0.%d", 11+i)}}
		if err := c.Status().Update(t.Context(), n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
	}
}

// apiWrite is a write request to the API server: its method, what it wrote ("member" or
// "status") and of what, the field manager, the answer's code and who sent it (apiWrites.wrap).
type apiWrite struct {
	method, kind, name, manager string
	code                        int
	from                        string
}

func (w apiWrite) String() string {
	s := fmt.Sprintf("%s %s %s by %s: %d", w.method, w.kind, w.name, w.manager, w.code)
	if w.from != "" {
		s += " from " + w.from
	}
	return s
}

var (
	memberPath = regexp.MustCompile(`^/apis/` + regexp.QuoteMeta(v1alpha1.GroupVersion.String()) + `/virtualipmembers/([^/]+)$`)
	statusPath = regexp.MustCompile(`^/apis/` + regexp.QuoteMeta(v1alpha1.GroupVersion.String()) + `/virtualips/([^/]+)/status$`)
)

// apiWrites records the writes of members and of VirtualIP status that go through the
// configurations it wraps, whatever their answer: a refused write costs the API server too.
type apiWrites struct {
	mu     sync.Mutex
	writes []apiWrite
	last   time.Time
}

// wrap returns cfg whose writes of members and status are recorded as sent from from.
func (s *apiWrites) wrap(cfg *rest.Config, from string) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if req.Method == http.MethodGet {
				return resp, err
			}
			w := apiWrite{method: req.Method, manager: req.URL.Query().Get("fieldManager"), from: from}
			if m := memberPath.FindStringSubmatch(req.URL.Path); m != nil {
				w.kind, w.name = "member", m[1]
			} else if m := statusPath.FindStringSubmatch(req.URL.Path); m != nil {
				w.kind, w.name = "status", m[1]
			} else {
				return resp, err
			}
			if err == nil {
				w.code = resp.StatusCode
			}
			s.mu.Lock()
			s.writes, s.last = append(s.writes, w), time.Now()
			s.mu.Unlock()
			return resp, err
		})
	}
	return cfg
}

// take returns the writes recorded since the last take, and forgets them.
func (s *apiWrites) take() []apiWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.writes
	s.writes = nil
	return out
}

// settle waits until nothing has been written for quiet, at most for limit.
func (s *apiWrites) settle(quiet, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		since := time.Since(s.last)
		s.mu.Unlock()
		if since >= quiet {
			return
		}
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// eventually polls check every 20 ms until it returns nil, for at most limit.
func eventually(t *testing.T, limit time.Duration, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("%s: not within %s: %v", what, limit, err)
}
