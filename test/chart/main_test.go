package chart

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
)

// The API server of the dry-run tests; nil when they skip.
var (
	cfg *rest.Config
	k8s client.Client
	// skipReason is why the API server tests skip (assets missing outside CI, or -short).
	skipReason string
)

// TestMain starts a kube-apiserver and etcd (envtest) for the dry-run tests, as test/envtest
// does: from the assets package envtestassets finds (under CI a missing asset fails instead of
// skipping). No CRD is installed: the chart's own is part of what is dry-run.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		skipReason = "the dry run needs kube-apiserver and etcd; skipped in -short mode"
		return m.Run()
	}
	dir, skip, err := envtestassets.ForTestMain()
	if err != nil {
		fmt.Fprintf(os.Stderr, "test/chart: %v\n", err)
		return 1
	}
	if skip != "" {
		skipReason = skip
		return m.Run()
	}
	env := &ctrlenvtest.Environment{BinaryAssetsDirectory: dir}
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "test/chart: start kube-apiserver and etcd from %s: %v\n", dir, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "test/chart: stop: %v\n", err)
		}
	}()
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "test/chart: client: %v\n", err)
		return 1
	}
	return m.Run()
}

func requireAPIServer(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}
