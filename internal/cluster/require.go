package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
)

// nodeTools are the programs StartNodes runs (Debian's containerd, runc and util-linux).
var nodeTools = []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare"}

// RequireNodeTools skips the test when what a real cluster needs is missing — kubelet,
// kube-controller-manager, kube-scheduler, kubectl and helm from hack/k8s-binaries.sh; Debian's
// containerd, runc and containernetworking-plugins — except under CI, where it fails. It
// returns the assets' directory.
func RequireNodeTools(t testing.TB) string {
	t.Helper()
	dir := envtestassets.Require(t)
	var missing []string
	for _, b := range []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kubectl", "helm"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			missing = append(missing, b+" (make k8s-binaries)")
		}
	}
	for _, tool := range nodeTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (make deps)")
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = append(missing, "containernetworking-plugins (make deps)")
	}
	if len(missing) == 0 {
		return dir
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("missing %s, and CI=%q forbids skipping", strings.Join(missing, ", "), os.Getenv("CI"))
	}
	t.Skipf("missing %s", strings.Join(missing, ", "))
	return ""
}

// BuildAgentImage runs `make image` as a release would, for this machine's architecture only,
// into dir, and returns the archive (an OCI layout with a Docker manifest.json, which
// KubeNode.ImportImage imports). The image is named ref (for example
// ghcr.io/kube-vrrp/kube-vrrp:v0.1.0); version is the binary's and the image's version.
func BuildAgentImage(ctx context.Context, dir, ref, version string) (string, error) {
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "make", "-s", "-C", root, "image",
		"BIN="+dir, "VERSION="+version, "IMAGE="+ref, "IMAGE_PLATFORMS=linux/"+runtime.GOARCH)
	killGroupOnCancel(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make image: %v\n%s", err, out)
	}
	return filepath.Join(dir, "kube-vrrp-image.tar"), nil
}
