package chart

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The API server of the dry-run tests; nil when they skip.
var (
	cfg *rest.Config
	k8s client.Client
	// skipReason is why the API server tests skip (assets missing outside CI, or -short).
	skipReason string
)

// TestMain starts a kube-apiserver and etcd (envtest) for the dry-run tests, as test/envtest
// does: from KUBEBUILDER_ASSETS or bin/k8s/<version>, and under CI a missing asset fails
// instead of skipping. No CRD is installed: the chart's own is part of what is dry-run.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		skipReason = "the dry run needs kube-apiserver and etcd; skipped in -short mode"
		return m.Run()
	}
	dir, err := assetsDir()
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "test/chart: %v (CI is set, so this fails instead of skipping; run make envtest-assets)\n", err)
			return 1
		}
		skipReason = err.Error() + "; run make envtest-assets"
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

// assetsDir finds the directory holding kube-apiserver and etcd: KUBEBUILDER_ASSETS, else
// bin/k8s/<the kubernetes version of hack/tools/go.mod> (made by make envtest-assets).
func assetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		gomod, err := os.ReadFile(filepath.Join(repoRoot, "hack", "tools", "go.mod"))
		if err != nil {
			return "", fmt.Errorf("find the envtest assets: %w", err)
		}
		v := regexp.MustCompile(`(?m)^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)`).FindSubmatch(gomod)
		if v == nil {
			return "", errors.New("find the envtest assets: hack/tools/go.mod requires no k8s.io/kubernetes")
		}
		dir = filepath.Join(repoRoot, "bin", "k8s", string(v[1]))
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("envtest assets: %w", err)
		}
	}
	return filepath.Abs(dir)
}
