package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
)

// BinaryEnv names an environment variable that, when set, is the path of a kube-vrrp binary
// to use instead of building one (e.g. `make bench` sets it to bin/kube-vrrp).
const BinaryEnv = "KUBE_VRRP_BIN"

// binPrefix starts the temporary directories that hold built binaries; the pid follows, so
// that leftovers of dead runs can be removed like their namespaces.
const binPrefix = "kvlbin"

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binName = regexp.MustCompile(`^` + binPrefix + `([0-9]+)-`)
)

// KubeVRRPBinary returns the path of a kube-vrrp binary built from this module's
// ./cmd/kube-vrrp. It is built once per test process (later calls return the same path),
// into a temporary directory under os.TempDir() that lives as long as the process; a later
// run removes the directories of runs that are gone. If $KUBE_VRRP_BIN is set, that binary
// is used as is. A build failure fails tb.
func KubeVRRPBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			binPath, binErr = filepath.Abs(p)
			if binErr == nil {
				_, binErr = os.Stat(binPath)
			}
			return
		}
		sweepBinDirs()
		binPath, binErr = buildKubeVRRP()
	})
	if binErr != nil {
		tb.Fatalf("kube-vrrp binary: %v", binErr)
	}
	return binPath
}

func buildKubeVRRP() (string, error) {
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "kube-vrrp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/kube-vrrp")
	// The environment's defaults (cgo included), so the build shares the cache of the test
	// binaries that were just compiled.
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./cmd/kube-vrrp in %s: %w\n%s", root, err, b)
	}
	return out, nil
}

// sweepBinDirs removes the binary directories of test processes that are gone (Owned: a
// live process that reuses the pid does not keep them).
func sweepBinDirs() {
	_, _ = sweepDirs(os.TempDir(), binName)
}
