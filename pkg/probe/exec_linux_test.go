package probe

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Exec probes are refused unless the agent enables them, with a reason that says how, and the
// command never runs.
func TestExecDisabledByDefault(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	r, err := New([]Spec{{Name: "script", Kind: KindExec, Command: []string{"/usr/bin/touch", marker}}}, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	res := recv(t, r, 5*time.Second)
	if res.Healthy || res.Reason != ExecDisabledReason {
		t.Errorf("result %+v, want unhealthy with %q", res, ExecDisabledReason)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although exec probes are disabled")
	}
}

func TestExecEnabled(t *testing.T) {
	r, err := New([]Spec{
		// Long timeouts: these are about exit codes, on a machine that may be loaded.
		{Name: "true", Kind: KindExec, Command: []string{"/bin/true"}, Interval: time.Minute},
		{Name: "false", Kind: KindExec, Command: []string{"/bin/false"}, Interval: time.Minute},
	}, Options{ExecEnabled: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	got := map[string]Result{}
	for range 2 {
		res := recv(t, r, 10*time.Second)
		got[res.Name] = res
	}
	if res := got["true"]; !res.Healthy || res.Reason != "/bin/true exited 0" {
		t.Errorf("/bin/true: %+v, want healthy", res)
	}
	if res := got["false"]; res.Healthy || res.Reason != "/bin/false: exit status 1" {
		t.Errorf("/bin/false: %+v, want unhealthy: exit status 1", res)
	}
}

func TestExecResults(t *testing.T) {
	tests := []struct {
		argv   []string
		ok     bool
		reason string
	}{
		{[]string{"/bin/sh", "-c", "echo 'haproxy is not running' >&2; exit 3"}, false, "/bin/sh: exit status 3: haproxy is not running"},
		{[]string{"/nonexistent/check"}, false, "/nonexistent/check: fork/exec /nonexistent/check: no such file or directory"},
		{[]string{"/bin/sh", "-c", "exit 0"}, true, "/bin/sh exited 0"},
		// A command line written whole as the first element: the message (member status,
		// Events) shows no argument, which may be a credential.
		{[]string{"/usr/bin/curl -u admin:s3cret http://127.0.0.1/"}, false,
			"/usr/bin/curl ...: fork/exec /usr/bin/curl ...: no such file or directory"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ok, reason := execChecker{argv: tt.argv}.check(ctx)
		cancel()
		if ok != tt.ok || reason != tt.reason {
			t.Errorf("check(%q) = %t, %q; want %t, %q", tt.argv, ok, reason, tt.ok, tt.reason)
		}
	}
}

// The command gets an empty environment (not the agent's), / as its directory and its
// arguments verbatim, without a shell.
func TestExecEnvironment(t *testing.T) {
	t.Setenv("KVP_SECRET", "agent-only")
	run := func(argv ...string) string {
		t.Helper()
		out, err := execChecker{argv: argv}.run(t.Context())
		if err != nil {
			t.Fatalf("run(%q) = %v", argv, err)
		}
		return string(out)
	}
	if got := run("/bin/echo", "hi"); got != "hi\n" {
		t.Fatalf("echo hi printed %q: the output hook does not work", got)
	}
	if got := run("/usr/bin/env"); got != "" {
		t.Errorf("env printed %q, want an empty environment", got)
	}
	if got := run("/bin/pwd"); got != "/\n" {
		t.Errorf("pwd printed %q, want /", got)
	}
	if got := run("/bin/echo", "$HOME; ls *"); got != "$HOME; ls *\n" {
		t.Errorf("echo printed %q, want its argument verbatim", got)
	}
}

// runStarted runs c with growing timeouts until the command has printed something before the
// timeout killed it: on a loaded machine the first timeouts may pass before it even starts.
func runStarted(t *testing.T, c execChecker) (out []byte, timeout, took time.Duration) {
	t.Helper()
	for _, timeout = range []time.Duration{300 * time.Millisecond, time.Second, 5 * time.Second} {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		start := time.Now()
		out, err := c.run(ctx)
		took = time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("run(%q) = nil, want the kill at the timeout", c.argv)
		}
		if len(out) > 0 {
			return out, timeout, took
		}
	}
	t.Fatalf("run(%q) printed nothing before its timeouts", c.argv)
	return nil, 0, 0
}

// At the timeout the command and everything in its process group are killed.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	c := execChecker{argv: []string{"/bin/sh", "-c", "/bin/sleep 60 & echo $!; wait"}}
	out, timeout, took := runStarted(t, c)
	if took > timeout+2*time.Second {
		t.Errorf("run() took %v, want about the %v timeout", took, timeout)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	// The orphaned sleep was reparented; it is gone or a zombie its new parent has not
	// reaped yet, not sleeping.
	waitState(t, pid, "Z0")

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if ok, reason := c.check(ctx); ok || !strings.Contains(reason, "did not finish within the timeout") {
		t.Errorf("check() = %t, %q; want a timeout", ok, reason)
	}
}

// Output is discarded beyond its first bytes, however much the command writes.
func TestExecOutputBounded(t *testing.T) {
	out, _, _ := runStarted(t, execChecker{argv: []string{"/usr/bin/yes"}})
	if len(out) != maxExecOutput {
		t.Errorf("kept %d bytes of yes's output, want %d", len(out), maxExecOutput)
	}
}
