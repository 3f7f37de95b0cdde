package privtest

import (
	"os"
	"testing"
)

// Require skips t when the process is not root, except under CI (CI set), where privileged
// tests must run: there a missing privilege fails the test instead of hiding it.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("privileged test needs root, and CI=%q forbids skipping it", os.Getenv("CI"))
	}
	t.Skip("needs root (network namespaces, raw sockets); runs in CI")
}
