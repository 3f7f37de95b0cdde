package probe

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// exePath returns the path the kernel reports for a program started from path.
func exePath(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// With an executable, a process that merely has the name does not keep the probe healthy:
// only one running that program does, and its death is seen at once even while the impostor
// runs. A program replaced on disk after the process started it ("... (deleted)") still counts.
func TestProcessExecutableMatch(t *testing.T) {
	privtest.Require(t)
	name := uniqueName()
	real, impostor := namedBinary(t, name), namedBinary(t, name) // two directories, one name
	want := exePath(t, real)

	startBinary(t, impostor)
	c := newProcessChecker(name, want, testLogger(t))
	t.Cleanup(c.close)
	ok, reason := c.check(t.Context())
	if ok || reason != `no process named "`+name+`" running `+want+` (1 named so run another program)` {
		t.Fatalf("only the impostor runs: %v %q", ok, reason)
	}
	if plain := newProcessChecker(name, "", testLogger(t)); true {
		defer plain.close()
		if ok, reason := plain.check(t.Context()); !ok {
			t.Fatalf("without an executable the impostor counts (as pgrep -x): %v %q", ok, reason)
		}
	}

	r, err := New([]Spec{{Name: "p", Kind: KindProcess, Process: name, Executable: want, Interval: time.Hour}}, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cmd := startBinary(t, real)
	startRunner(t, r)
	res := recv(t, r, 5*time.Second)
	if !res.Healthy || !strings.HasPrefix(res.Reason, `1 process(es) named "`+name+`" running `+want+`, pid `) {
		t.Fatalf("first result %+v, want healthy with the real one only", res)
	}

	// The program is replaced on disk (a package upgrade renames the new file over it).
	next := real + ".new"
	if err := os.Link(impostor, next); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, real); err != nil {
		t.Fatal(err)
	}
	if ok, reason := c.check(t.Context()); !ok || !strings.Contains(reason, "running "+want) {
		t.Errorf("after the program was replaced on disk: %v %q, want the running process to count", ok, reason)
	}

	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res = recv(t, r, 5*time.Second)
	if res.Healthy || !strings.Contains(res.Reason, "no process named") {
		t.Fatalf("after the real one died: %+v, want unhealthy although the impostor runs", res)
	}
	if d := time.Since(killed); d > killBound {
		t.Errorf("unhealthy %v after SIGKILL, want within %v", d, killBound)
	}
}

// The agent runs as uid 65532 without CAP_SYS_PTRACE: it may not read the exe link of a
// process of another user. Such a process does not count (the probe cannot tell an impostor
// apart), and the reason says why instead of claiming there is no process.
func TestProcessExecutableUnreadable(t *testing.T) {
	privtest.Require(t)
	name := uniqueName()
	bin := namedBinary(t, name)
	startBinary(t, bin) // root's
	want := exePath(t, bin)

	// This test binary, run as uid 65532 with no capability, checks as the agent would.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self := filepath.Join(dir, "probe.test")
	if err := copyExecutable(os.Args[0], self); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), self, "-test.run=^TestProcessExecutableHelper$")
	cmd.Env = []string{"KVP_EXE_HELPER_NAME=" + name, "KVP_EXE_HELPER_EXE=" + want}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as uid 65532: %v: %s", err, out)
	}
	var got helperResult
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "{") {
			line = l
		}
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	t.Logf("as uid 65532: %q", got.Reason)
	if got.OK || !strings.Contains(got.Reason, "the program of 1 could not be read (permission denied)") ||
		!strings.Contains(got.Reason, "CAP_SYS_PTRACE") {
		t.Errorf("as uid 65532, root's process: %v %q, want unhealthy saying the program could not be read", got.OK, got.Reason)
	}
}

type helperResult struct {
	OK     bool
	Reason string
}

// TestProcessExecutableHelper is the uid-65532 side of TestProcessExecutableUnreadable; run
// directly, it does nothing.
func TestProcessExecutableHelper(t *testing.T) {
	name := os.Getenv("KVP_EXE_HELPER_NAME")
	if name == "" {
		return
	}
	c := newProcessChecker(name, os.Getenv("KVP_EXE_HELPER_EXE"), slog.New(slog.DiscardHandler))
	defer c.close()
	ok, reason := c.check(t.Context())
	b, _ := json.Marshal(helperResult{ok, reason})
	_, _ = os.Stdout.Write(append([]byte("\n"), append(b, '\n')...))
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Spec.Validate takes an executable only on a process probe, and only as an absolute path
// without //, . or .. parts: /proc/PID/exe never shows another form, so any other could never
// match.
func TestSpecExecutable(t *testing.T) {
	ok := Spec{Name: "p", Kind: KindProcess, Process: "haproxy", Executable: "/usr/sbin/haproxy"}
	if err := ok.Validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	for _, exe := range []string{"haproxy", "/", "/usr/sbin/", "/usr//sbin/haproxy", "/usr/sbin/../sbin/haproxy", "/./haproxy"} {
		s := ok
		s.Executable = exe
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "executable") {
			t.Errorf("executable %q: %v, want an error naming it", exe, err)
		}
	}
	f := Spec{Name: "f", Kind: KindFile, Path: "/run/ok", Executable: "/usr/sbin/haproxy"}
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), `Executable is set but the probe is of kind "file"`) {
		t.Errorf("a file probe with an executable: %v", err)
	}
}
