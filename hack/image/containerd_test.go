package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// A containerd of the test's own, Debian's (1.6), as on a node: it imports the archive as
// `ctr -n k8s.io images import` does, unpacks it with the binary's file capabilities, and
// runs the agent as the chart's pod does.
//
// containerd runs in mount and network namespaces of its own (unshare): its mounts (the
// overlayfs check, the layers' unpacking, the containers' root filesystems) stay there, as does
// a tmpfs on /run, where containerd 1.6 puts the shims' sockets and runc's state whatever its
// configuration says; root, state and sockets are in the test's directory. It reaches no
// network, and each container gets a network namespace of its own from runc.
type containerd struct {
	dir, root, sock, log string
	cmd                  *exec.Cmd
	done                 chan error
}

const ctrNamespace = "k8s.io"

// The capabilities containerd 1.6 gives a container unless told otherwise (oci.defaultUnixCaps),
// less NET_RAW: dropping these and adding NET_ADMIN leaves the chart's bounding set (drop ALL,
// add NET_ADMIN and NET_RAW; ctr has no ALL). CapBnd below checks that nothing else is left.
var ctrDefaultCapsButNetRaw = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
	"CAP_KILL", "CAP_AUDIT_WRITE",
}

func startContainerd(t *testing.T) *containerd {
	t.Helper()
	for _, tool := range []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s (Debian's containerd, make deps): %v", tool, err)
			}
			t.Skipf("%s (Debian's containerd, make deps): %v", tool, err)
		}
	}
	_, hostRunErr := os.Lstat("/run/containerd")
	dir := t.TempDir()
	c := &containerd{
		dir:  dir,
		root: filepath.Join(dir, "root"),
		sock: filepath.Join(dir, "containerd.sock"),
		log:  filepath.Join(dir, "containerd.log"),
		done: make(chan error, 1),
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, c.root, filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc")
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command("unshare", "--mount", "--net", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs -o mode=0755 tmpfs /run && exec containerd --config "$1"`, "sh", configPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// unshare and sh exec: the process is containerd's, and dies with the test.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.stop(t)
		if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(b, []byte(dir)) {
			t.Errorf("a mount under %s in the test's mount namespace", dir)
		}
		if _, err := os.Lstat("/run/containerd"); hostRunErr != nil && err == nil {
			t.Errorf("/run/containerd appeared on the host")
		}
		if t.Failed() {
			b, _ := os.ReadFile(c.log)
			t.Logf("containerd's log:\n%s", tail(b, 40))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.ctr("version"); err == nil {
			return c
		}
		select {
		case err := <-c.done:
			b, _ := os.ReadFile(c.log)
			t.Fatalf("containerd exited: %v\n%s", err, tail(b, 40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not answer in 15s")
		}
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ctr runs ctr against this containerd, in its k8s.io namespace.
func (c *containerd) ctr(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"--address", c.sock, "--namespace", ctrNamespace}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// taskPID is the process id of the task id while it runs, else 0.
func (c *containerd) taskPID(id string) int {
	out, err := c.ctr("tasks", "ls")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id && f[2] == "RUNNING" {
			pid, _ := strconv.Atoi(f[1])
			return pid
		}
	}
	return 0
}

// exitCode waits (10s at most) for the task id to stop, deletes it and returns its exit code
// (ctr tasks delete exits with it).
func (c *containerd) exitCode(t *testing.T, id string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.taskPID(id) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("task %s still running after 10s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.Command("ctr", "--address", c.sock, "--namespace", ctrNamespace, "tasks", "delete", id)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("ctr tasks delete %s: %v\n%s", id, err, out)
	}
	return cmd.ProcessState.ExitCode()
}

// stop kills what is left of the containers, stops containerd (SIGTERM, SIGKILL after 10s) and
// any shim it started (by process id: those whose command line names this containerd's socket).
func (c *containerd) stop(t *testing.T) {
	if out, err := c.ctr("tasks", "ls", "--quiet"); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = c.ctr("tasks", "kill", "--signal", "SIGKILL", id)
			_, _ = c.ctr("tasks", "delete", "--force", id)
		}
	}
	if out, err := c.ctr("containers", "ls", "--quiet"); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = c.ctr("containers", "delete", id)
		}
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Errorf("containerd still running 10s after SIGTERM: killed")
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) || !bytes.Contains(b, []byte(c.sock)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil {
			t.Errorf("shim %d of this containerd still running: killed", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// The archive is what a node's containerd takes: `ctr -n k8s.io images import` names it as
// the chart's image.repository:image.tag say and unpacks it, the binary with its file
// capabilities and the base's owners and modes; the agent then runs as the chart's pod runs
// it with exactly NET_ADMIN and NET_RAW, and does not start without them in its bounding set.
func TestContainerd(t *testing.T) {
	privtest.Require(t)
	archive := makeImage(t)
	_, desc := ociImage(t, archive)
	c := startContainerd(t)

	start := time.Now()
	if _, err := c.ctr("images", "import", archive); err != nil {
		t.Fatal(err)
	}
	t.Logf("ctr images import (with unpacking): %.1fs", time.Since(start).Seconds())
	out, err := c.ctr("images", "ls")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == testRef {
			found = true
			if f[2] != desc.Digest.String() {
				t.Errorf("containerd's %s is %s, the archive's %s", testRef, f[2], desc.Digest)
			}
		}
	}
	if !found {
		t.Fatalf("no image %s after the import:\n%s", testRef, out)
	}

	t.Run("unpacked", func(t *testing.T) {
		// The overlayfs snapshotter keeps each layer in a directory of its own.
		fs, _ := filepath.Glob(filepath.Join(c.root, "io.containerd.snapshotter.v1.overlayfs", "snapshots", "*", "fs"))
		var bin, home, tmp string
		for _, d := range fs {
			for p, dst := range map[string]*string{binaryPath: &bin, homeDir: &home, "/tmp": &tmp} {
				if _, err := os.Lstat(filepath.Join(d, p)); err == nil {
					*dst = filepath.Join(d, p)
				}
			}
		}
		check := func(path string, typ, mode uint32, uid, gid int) {
			var st unix.Stat_t
			if err := unix.Lstat(path, &st); err != nil {
				t.Errorf("unpacked: %v", err)
				return
			}
			if st.Mode&unix.S_IFMT != typ || st.Mode&0o7777 != mode || int(st.Uid) != uid || int(st.Gid) != gid {
				t.Errorf("unpacked %s: mode %#o owner %d:%d, want %#o %#o %d:%d", path, st.Mode, st.Uid, st.Gid, typ, mode, uid, gid)
			}
		}
		check(bin, unix.S_IFREG, 0o755, 0, 0)
		check(home, unix.S_IFDIR, 0o700, filecaps.AgentID, filecaps.AgentID)
		check(tmp, unix.S_IFDIR, 0o1777, 0, 0)
		buf := make([]byte, 64)
		n, err := unix.Getxattr(bin, filecaps.XattrName, buf)
		if err != nil {
			t.Fatalf("unpacked %s: getxattr %s: %v", bin, filecaps.XattrName, err)
		}
		got, err := decodeVFSCap(buf[:n])
		want := fileCaps{revision: 2, effective: true, permitted: filecaps.ImageCaps}
		if err != nil || got != want {
			t.Errorf("unpacked %s: file capabilities %v (%v), want %v", bin, got, err, want)
		}
		if getcap, err := exec.LookPath("getcap"); err == nil {
			out, err := exec.Command(getcap, bin).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "cap_net_admin,cap_net_raw=ep") {
				t.Errorf("getcap %s: %v %s", bin, err, out)
			}
		}
	})

	t.Run("pod", func(t *testing.T) {
		// As the chart's DaemonSet: uid 65532 (the image's USER), bounding set NET_ADMIN and
		// NET_RAW, no_new_privs (ctr's default: allowPrivilegeEscalation false), the runtime's
		// seccomp profile, read-only root, the state directory the init container prepares.
		// `kube-vrrp run` with one VirtualIP on lo of the container's own network namespace,
		// 198.18.0.100/24: becoming MASTER takes a raw socket and an address (NET_RAW, NET_ADMIN).
		vip := filepath.Join(c.dir, "vip.yaml")
		if err := os.WriteFile(vip, []byte(`apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: image-test
spec:
  vrid: 51
  interface: lo
  addresses: ["198.18.0.100/24"]
  nodes: [{name: n1}]
`), 0o644); err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(c.dir, "state-dir")
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(state, filecaps.AgentID, filecaps.AgentID); err != nil {
			t.Fatal(err)
		}
		agentLog := filepath.Join(c.dir, "agent.log")
		args := []string{"run", "--detach", "--cgroup", "", "--read-only", "--seccomp",
			"--fifo-dir", filepath.Join(c.dir, "fifo"), "--log-uri", "file://" + agentLog,
			"--mount", "type=bind,src=" + vip + ",dst=/etc/kube-vrrp/vip.yaml,options=rbind:ro",
			"--mount", "type=bind,src=" + state + ",dst=/var/run/kube-vrrp,options=rbind:rw"}
		for _, d := range ctrDefaultCapsButNetRaw {
			args = append(args, "--cap-drop", d)
		}
		args = append(args, "--cap-add", "CAP_NET_ADMIN", testRef, "agent",
			binaryPath, "run", "-f", "/etc/kube-vrrp/vip.yaml", "--node", "n1", "--state-dir", "/var/run/kube-vrrp")
		if _, err := c.ctr(args...); err != nil {
			t.Fatal(err)
		}
		// MASTER: the address is on lo of the agent's network namespace (its fib_trie).
		var pid int
		deadline := time.Now().Add(10 * time.Second)
		for {
			if pid == 0 {
				pid = c.taskPID("agent")
			}
			if pid != 0 {
				fib, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/fib_trie", pid))
				if bytes.Contains(fib, []byte("198.18.0.100")) {
					break
				}
			}
			if time.Now().After(deadline) {
				out, _ := c.ctr("tasks", "ls")
				log, _ := os.ReadFile(agentLog)
				t.Fatalf("198.18.0.100 not bound after 10s (agent pid %d):\n%s\n%s", pid, out, log)
			}
			time.Sleep(100 * time.Millisecond)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		cr := filecaps.ParseStatus(status)
		id := strconv.Itoa(filecaps.AgentID)
		wantUID := strings.Join([]string{id, id, id, id}, "/")
		if cr.UID != wantUID || cr.CapEff != filecaps.ImageCaps || cr.CapPrm != filecaps.ImageCaps ||
			cr.CapBnd != filecaps.ImageCaps || cr.CapAmb != 0 || !cr.NoNewPrivs {
			t.Errorf("the agent's credentials: %+v; want uid %s, CapEff = CapPrm = CapBnd = %#x, no ambient, no_new_privs", cr, wantUID, filecaps.ImageCaps)
		}
		agentNet, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		ourNet, err2 := os.Readlink("/proc/self/ns/net")
		if err1 != nil || err2 != nil || agentNet == ourNet {
			t.Errorf("the agent's network namespace %s (%v), the test's %s (%v): want another", agentNet, err1, ourNet, err2)
		}
		if _, err := os.Lstat(filepath.Join(state, "lock")); err != nil {
			t.Errorf("state directory: %v", err)
		}
		// SIGTERM: the agent hands over and exits 0.
		if _, err := c.ctr("tasks", "kill", "--signal", "SIGTERM", "agent"); err != nil {
			t.Fatal(err)
		}
		if code := c.exitCode(t, "agent"); code != 0 {
			log, _ := os.ReadFile(agentLog)
			t.Errorf("the agent exited %d after SIGTERM:\n%s", code, log)
		}

		// Without NET_ADMIN in the bounding set the exec fails (EPERM): the capabilities come
		// from the file, which the kernel will not run with less than it grants. In the
		// foreground, for runc's message.
		a := []string{"run", "--rm", "--cgroup", "", "--read-only", "--seccomp", "--fifo-dir", filepath.Join(c.dir, "fifo")}
		for _, d := range ctrDefaultCapsButNetRaw {
			a = append(a, "--cap-drop", d)
		}
		out, err := c.ctr(append(a, testRef, "no-net-admin", binaryPath, "version")...)
		if err == nil || !strings.Contains(out, "operation not permitted") || strings.Contains(out, testVersion) {
			t.Errorf("without NET_ADMIN in the bounding set: %v\n%s\nwant the exec refused (EPERM)", err, out)
		}
	})
}
