package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

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
