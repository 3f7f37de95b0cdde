package envtestassets

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// Env names the variable that points at the directory of kube-apiserver and etcd, as for
// controller-runtime's envtest.
const Env = "KUBEBUILDER_ASSETS"

// Dir returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS, else
// bin/k8s/<the kubernetes version of hack/tools/go.mod> in this module. The error wraps
// os.ErrNotExist when they are missing.
func Dir() (string, error) {
	dir := os.Getenv(Env)
	if dir == "" {
		root, err := ModuleRoot()
		if err != nil {
			return "", err
		}
		gomod, err := os.ReadFile(filepath.Join(root, "hack", "tools", "go.mod"))
		if err != nil {
			return "", fmt.Errorf("find the envtest assets: %w", err)
		}
		v := regexp.MustCompile(`(?m)^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)`).FindSubmatch(gomod)
		if v == nil {
			return "", errors.New("find the envtest assets: hack/tools/go.mod requires no k8s.io/kubernetes")
		}
		dir = filepath.Join(root, "bin", "k8s", string(v[1]))
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("envtest assets (make envtest-assets): %w", err)
		}
	}
	return filepath.Abs(dir)
}

// Require returns [Dir] for a test that needs the assets. When they are missing, t fails
// under CI and skips otherwise.
func Require(t testing.TB) string {
	t.Helper()
	dir, skip, err := ForTestMain()
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		t.Skip(skip)
	}
	return dir
}

// ForTestMain is [Require] for a TestMain, which has no t. When the assets are missing it
// returns, under CI, an error that must fail the run; otherwise the reason every test that
// needs them skips with.
func ForTestMain() (dir, skipReason string, err error) {
	dir, err = Dir()
	if err == nil {
		return dir, "", nil
	}
	if os.Getenv("CI") != "" {
		return "", "", fmt.Errorf("%w (CI is set, so this fails instead of skipping; run make envtest-assets)", err)
	}
	return "", err.Error() + "; run make envtest-assets", nil
}

// ModuleRoot returns the directory of the kube-vrrp module's go.mod: two levels above this
// source file when it is where it was compiled, else from `go env GOMOD`.
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if isKubeVRRPModule(root) {
			return root, nil
		}
	}
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull || !isKubeVRRPModule(filepath.Dir(gomod)) {
		return "", fmt.Errorf("cannot find the kube-vrrp module (go env GOMOD: %q)", gomod)
	}
	return filepath.Dir(gomod), nil
}

func isKubeVRRPModule(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && strings.Contains(string(b), "module github.com/kube-vrrp/kube-vrrp\n")
}
