package lab_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// TestKubeVRRPBinary builds the command once and runs it; a second call returns the same
// binary without building again.
func TestKubeVRRPBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ./cmd/kube-vrrp")
	}
	bin := lab.KubeVRRPBinary(t)
	if again := lab.KubeVRRPBinary(t); again != bin {
		t.Errorf("second call: %s, want the first build %s", again, bin)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "kube-vrrp ") {
		t.Errorf("%s version: %v, %q", bin, err, out)
	}
}
