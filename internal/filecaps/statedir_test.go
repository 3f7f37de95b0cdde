package filecaps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// The chart's init container runs the image's binary as root with a bounding set of CHOWN,
// NET_ADMIN and NET_RAW under no_new_privs (runAsUser 0, capabilities drop ALL + add those
// three, allowPrivilegeEscalation false) to give the state directory to uid 65532. This runs the
// real binary, with the image's file capabilities, exactly so: it works, and without NET_ADMIN
// and NET_RAW in the bounding set the kernel refuses the exec (which is why the chart adds
// them although the command never uses them).
func TestStateDirInitContainer(t *testing.T) {
	privtest.Require(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kube-vrrp")
	b, err := os.ReadFile(lab.KubeVRRPBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	setImageCaps(t, bin)
	run := func(bounding, state string) (string, error) {
		cmd := exec.CommandContext(t.Context(), "setpriv", "--reuid=0", "--regid=0", "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all,"+bounding, "--no-new-privs",
			"--", bin, "state-dir", "--owner=65532:65532", state)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	state := filepath.Join(dir, "run", "kube-vrrp")
	if out, err := run("+chown,+net_admin,+net_raw", state); err != nil {
		t.Fatalf("as the init container: %v\n%s", err, out)
	}
	fi, err := os.Lstat(state)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != AgentID || st.Gid != AgentID || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory %d:%d %v, want %d:%d 0700", st.Uid, st.Gid, fi.Mode().Perm(), AgentID, AgentID)
	}
	// A second start (the directory is the agent's already) works too.
	if out, err := run("+chown,+net_admin,+net_raw", state); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	// CHOWN alone: the exec of a binary with file capabilities it cannot grant fails.
	if out, err := run("+chown", filepath.Join(dir, "other")); err == nil || !strings.Contains(strings.ToLower(out), "operation not permitted") {
		t.Errorf("with CHOWN alone in the bounding set: %v\n%s; want the exec refused (EPERM)", err, out)
	}
	// Without CHOWN: the directory cannot be given away.
	if out, err := run("+net_admin,+net_raw", filepath.Join(dir, "third")); err == nil {
		t.Errorf("without CHOWN the directory was given away:\n%s", out)
	}
}
