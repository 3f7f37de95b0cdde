package envtest

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
)

// The API server shared by every test of the package; nil when the tests skip.
var (
	cfg *rest.Config
	k8s client.Client
	// skipReason is why the tests skip (assets missing outside CI, or -short).
	skipReason string
	// testEnv issues client certificates of its API server's CA (AddUser).
	testEnv *ctrlenvtest.Environment
)

const repoRoot = "../.."

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(runtimeLogWriter{}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if testing.Short() {
		skipReason = "envtest needs kube-apiserver and etcd; skipped in -short mode"
		return m.Run()
	}
	dir, skip, err := envtestassets.ForTestMain()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		return 1
	}
	if skip != "" {
		skipReason = skip
		return m.Run()
	}

	env := &ctrlenvtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: dir,
	}
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: start kube-apiserver and etcd from %s: %v\n", dir, err)
		return 1
	}
	testEnv = env
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "envtest: stop: %v\n", err)
		}
	}()

	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: scheme: %v\n", err)
		return 1
	}
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: client: %v\n", err)
		return 1
	}
	return m.Run()
}

// requireAPIServer skips the test when the package runs without an API server.
func requireAPIServer(t *testing.T) context.Context {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return t.Context()
}
