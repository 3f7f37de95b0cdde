package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// AssetsEnv names the variable that points at the directory of kube-apiserver and etcd, as
// for controller-runtime's envtest.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// AssetsDir returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS, else
// bin/k8s/<the kubernetes version of hack/tools/go.mod> in this module, where `make
// envtest-assets` (hack/envtest.sh) puts them. The error wraps os.ErrNotExist when they are
// missing.
func AssetsDir() (string, error) {
	dir := os.Getenv(AssetsEnv)
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

// dirPrefixBase starts the temporary directories of a control plane; the pid follows, so that a
// later run can remove those of a run that was killed.
const dirPrefixBase = "kvlcp"

var dirName = regexp.MustCompile(`^` + dirPrefixBase + `([0-9]+)-`)

func dirPrefix() string { return fmt.Sprintf("%s%d-", dirPrefixBase, os.Getpid()) }

// sweepDirs removes the directories of control planes whose process is gone (the processes
// themselves died with their lab namespace, or by their parent-death signal).
func sweepDirs() {
	for _, parent := range []string{os.TempDir(), "/dev/shm"} {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range entries {
			m := dirName.FindStringSubmatch(e.Name())
			if m == nil || !e.IsDir() {
				continue
			}
			if pid, err := strconv.Atoi(m[1]); err == nil && !alive(pid) {
				_ = os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
