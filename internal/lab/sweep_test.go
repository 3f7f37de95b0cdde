package lab_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// exitedPid returns the pid of a process that has exited and been reaped.
func exitedPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestProcessStartAndOwned(t *testing.T) {
	// A fresh process's start, from /proc/PID/stat's ticks since boot, is the wall-clock
	// time it was forked, to within a tick and the clocks' rounding.
	t0 := time.Now()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	start, err := lab.ProcessStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	const tick = 10 * time.Millisecond
	if start.Before(t0.Add(-2*tick)) || start.After(t1.Add(2*tick)) {
		t.Errorf("sleep started at %v by /proc, between %v and %v by the clock", start.Format(time.StampMicro), t0.Format(time.StampMicro), t1.Format(time.StampMicro))
	}

	sleep := cmd.Process.Pid
	for _, c := range []struct {
		what    string
		pid     int
		created time.Time
		want    bool
	}{
		{"alive, started before", sleep, t1.Add(time.Second), true},
		{"this process, now", os.Getpid(), time.Now(), true},
		// The pid's process started an hour after the thing was made: a reused pid.
		{"alive, started an hour after", sleep, t0.Add(-time.Hour), false},
		{"exited", exitedPid(t), time.Now(), false},
		{"above pid_max", 1 << 23, time.Now(), false},
		{"zero", 0, time.Now(), false},
	} {
		if got := lab.Owned(c.pid, c.created); got != c.want {
			t.Errorf("%s: Owned(%d, %v) = %v, want %v", c.what, c.pid, c.created.Format(time.StampMilli), got, c.want)
		}
	}

	// CreatedAt is the earliest time the kernel keeps: moving mtime back moves it back.
	dir := t.TempDir()
	created, err := lab.CreatedAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(created); d < 0 || d > time.Minute {
		t.Errorf("CreatedAt of a new directory: %v ago", d)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	if created, err := lab.CreatedAt(dir); err != nil || !created.Equal(old) {
		t.Errorf("CreatedAt after mtime set to %v: %v, %v", old, created, err)
	}
}

// TestSweepRemovesDeadRunsDirs checks that Sweep removes the directories labs make
// themselves (Open without Options.Dir) once their run is gone, also when the run's pid now
// belongs to another process, and only then.
func TestSweepRemovesDeadRunsDirs(t *testing.T) {
	privtest.Require(t)
	tmp := os.TempDir()
	mk := func(pid int, age time.Duration) string {
		t.Helper()
		dir, err := os.MkdirTemp(tmp, fmt.Sprintf("kvl%d-beef-", pid))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "log"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if age > 0 {
			at := time.Now().Add(-age)
			if err := os.Chtimes(dir, at, at); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	dead := mk(exitedPid(t), 0)
	// This process is alive, but started after this directory was made: its pid was reused.
	reused := mk(os.Getpid(), 24*time.Hour)
	live := mk(os.Getpid(), 0)
	// Not a lab directory's name (a control plane's): not the lab's to remove.
	other := filepath.Join(tmp, fmt.Sprintf("kvlcp%d-1234", 1<<23))
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(other) })

	removed, err := lab.Sweep()
	t.Logf("Sweep removed %v (err %v)", removed, err)
	for _, dir := range []string{dead, reused} {
		if !slices.Contains(removed, dir) {
			t.Errorf("Sweep did not report %s as removed", dir)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", dir, err)
		}
	}
	for _, dir := range []string{live, other} {
		if _, err := os.Stat(dir); err != nil || slices.Contains(removed, dir) {
			t.Errorf("Sweep removed %s: %v", dir, err)
		}
	}
}

// signalChildEnv makes TestSignalChild the lab-holding process of TestSignalClosesLabs.
const signalChildEnv = "KUBE_VRRP_LAB_SIGNAL_CHILD"

// TestSignalChild is not a test: TestSignalClosesLabs runs it in a process of its own, which
// builds a lab (New's or Open's, by $KUBE_VRRP_LAB_SIGNAL_CHILD), says where it is, and
// waits for a signal. Closing the lab takes a second: time for a second signal.
func TestSignalChild(t *testing.T) {
	mode := os.Getenv(signalChildEnv)
	if mode == "" {
		t.Skip("run by TestSignalClosesLabs")
	}
	var l *lab.Lab
	if mode == "new" {
		l = lab.New(t, lab.Options{Nodes: 1})
	} else {
		var err error
		if l, _, err = lab.Open(lab.Options{Nodes: 1}); err != nil {
			t.Fatal(err)
		}
	}
	l.OnClose(func() {
		fmt.Println("closing")
		time.Sleep(time.Second)
	})
	fmt.Printf("ready %s %s\n", l.Prefix, l.Dir())
	time.Sleep(time.Minute)
	t.Fatal("no signal came")
}

// TestSignalClosesLabs checks the lab's signal handler in a process of its own: a fatal
// signal closes the labs and removes their directories (New's t.TempDir too, which the test's
// cleanup would have removed) before the process dies of it, and a signal that comes while
// it does is acknowledged, not obeyed. SIGINT is caught also when the process started with it
// ignored (a script's background job), SIGHUP not (nohup).
func TestSignalClosesLabs(t *testing.T) {
	privtest.Require(t)
	for _, c := range []struct {
		name string
		mode string
		// ignore are the signals the child starts with ignored (sh's trap "" names).
		ignore string
		// sigs: the second comes while the lab closes, or, with survive, after the first
		// was seen to be ignored.
		sigs    []syscall.Signal
		survive bool
		check   func(t *testing.T, ws syscall.WaitStatus, stderr string)
	}{
		{"HangupNew", "new", "", []syscall.Signal{syscall.SIGHUP}, false, func(t *testing.T, ws syscall.WaitStatus, _ string) {
			if !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
				t.Errorf("exit status %v, want death by SIGHUP", ws)
			}
		}},
		{"SecondInterruptOpen", "open", "", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, false, func(t *testing.T, ws syscall.WaitStatus, stderr string) {
			if !ws.Signaled() || ws.Signal() != syscall.SIGINT {
				t.Errorf("exit status %v, want death by SIGINT", ws)
			}
			if !strings.Contains(stderr, "interrupt: still removing 1 lab(s), please wait") {
				t.Error("the second SIGINT was not acknowledged")
			}
		}},
		{"QuitNew", "new", "", []syscall.Signal{syscall.SIGQUIT}, false, func(t *testing.T, ws syscall.WaitStatus, stderr string) {
			if !ws.Exited() || ws.ExitStatus() != 2 || !strings.Contains(stderr, "goroutine ") {
				t.Errorf("exit status %v, want 2 after the goroutines' stacks", ws)
			}
		}},
		{"TerminateOpen", "open", "", []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP}, false, func(t *testing.T, ws syscall.WaitStatus, stderr string) {
			if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
				t.Errorf("exit status %v, want death by SIGTERM", ws)
			}
			if !strings.Contains(stderr, "hangup: still removing") {
				t.Error("the SIGHUP that came while the lab closed was not acknowledged")
			}
		}},
		{"InterruptIgnoredAtStartNew", "new", "INT", []syscall.Signal{syscall.SIGINT}, false, func(t *testing.T, ws syscall.WaitStatus, _ string) {
			if !ws.Exited() || ws.ExitStatus() != 128+int(syscall.SIGINT) {
				t.Errorf("exit status %v, want 130", ws)
			}
		}},
		{"NohupOpen", "open", "HUP", []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM}, true, func(t *testing.T, ws syscall.WaitStatus, stderr string) {
			if !ws.Signaled() || ws.Signal() != syscall.SIGTERM || strings.Contains(stderr, "hangup") {
				t.Errorf("exit status %v, want death by SIGTERM, SIGHUP unseen", ws)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range c.sigs {
				if s == syscall.SIGHUP && signal.Ignored(s) {
					t.Skip("SIGHUP is ignored in this process (nohup), and so in its children")
				}
			}
			var stderr bytes.Buffer
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalChild$", "-test.count=1")
			if c.ignore != "" {
				cmd = exec.Command("sh", "-c", `trap "" `+c.ignore+`; exec "$0" "$@"`, os.Args[0], "-test.run=^TestSignalChild$", "-test.count=1")
			}
			cmd.Env = append(os.Environ(), signalChildEnv+"="+c.mode)
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 16)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var prefix, dir string
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				if prefix != "" {
					for _, ns := range labNamespaces(t, prefix) {
						_ = exec.Command("ip", "netns", "del", ns).Run()
					}
				}
				if dir != "" {
					_ = os.RemoveAll(dir)
					if c.mode == "new" { // t.TempDir's parent
						_ = os.Remove(filepath.Dir(dir))
					}
				}
			})
			await := func(prefixOf string) string {
				t.Helper()
				timeout := time.After(time.Minute)
				for {
					select {
					case line, ok := <-lines:
						if !ok {
							_ = cmd.Wait()
							t.Fatalf("the child ended before %q: %s", prefixOf, stderr.String())
						}
						if strings.HasPrefix(line, prefixOf) {
							return line
						}
					case <-timeout:
						t.Fatalf("no %q from the child", prefixOf)
					}
				}
			}
			f := strings.Fields(await("ready "))
			prefix, dir = f[1], f[2]
			if len(labNamespaces(t, prefix)) != 3 {
				t.Fatalf("the child's lab has namespaces %v, want 3", labNamespaces(t, prefix))
			}
			_ = cmd.Process.Signal(c.sigs[0])
			switch {
			case c.survive:
				time.Sleep(500 * time.Millisecond)
				if got := labNamespaces(t, prefix); len(got) != 3 {
					t.Errorf("after %v, ignored when the process started, the lab has namespaces %v, want 3", c.sigs[0], got)
				}
				_ = cmd.Process.Signal(c.sigs[1])
			case len(c.sigs) > 1:
				await("closing")
				_ = cmd.Process.Signal(c.sigs[1])
			}
			for range lines {
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) {
				t.Fatalf("the child: %v, want it killed by its signal\n%s", err, stderr.String())
			}
			t.Logf("child: %v; stderr:\n%.300s", err, stderr.String())
			c.check(t, ee.Sys().(syscall.WaitStatus), stderr.String())
			if got := labNamespaces(t, prefix); len(got) != 0 {
				t.Errorf("left behind: %v", got)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the lab's directory %s is still there: %v", dir, err)
			}
			if c.mode == "new" {
				if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the test's temporary directory %s is still there: %v", filepath.Dir(dir), err)
				}
			}
		})
	}
}
