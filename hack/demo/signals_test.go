package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// signalChildEnv makes TestSignalChild the demo process of TestSignals.
const signalChildEnv = "KUBE_VRRP_DEMO_SIGNAL_CHILD"

// TestSignalChild is not a test: TestSignals runs it in a process of its own, as `make demo`
// runs the command: Run with HandleSignals, and the command's exit status. Its cleanup takes
// two seconds more than it would, time for a signal to come while it runs.
func TestSignalChild(t *testing.T) {
	if os.Getenv(signalChildEnv) == "" {
		t.Skip("run by TestSignals")
	}
	testHookCleanup = func() { time.Sleep(2 * time.Second) }
	_, err := Run(context.Background(), Options{Out: os.Stdout, HandleSignals: true})
	os.Exit(exitStatus(err))
}

// TestSignals stops the demo with signals, in a process of its own, while it builds the image
// (the lab is up): the demo must remove everything and exit with 128 plus the signal's number,
// also when a second Ctrl-C comes during the cleanup (acknowledged, not obeyed) and when the
// signal is the terminal's hangup (make demo KEEP=1 in a terminal that is closed). A demo
// started in a script's background (SIGINT ignored) still stops on SIGINT; one started with
// nohup (SIGHUP ignored) does not stop on SIGHUP.
func TestSignals(t *testing.T) {
	privtest.Require(t)
	if testing.Short() {
		t.Skip("builds a lab; skipped in -short mode")
	}
	cluster.RequireNodeTools(t)
	for _, c := range []struct {
		name string
		// ignore are the signals the demo starts with ignored (sh's trap "" names).
		ignore string
		// first comes during the image build; second, if any, once the cleanup has begun,
		// or, with survive, after the first was seen to be ignored (then it stops the demo).
		first, second syscall.Signal
		survive       bool
	}{
		{"SecondInterrupt", "", syscall.SIGINT, syscall.SIGINT, false},
		{"Hangup", "", syscall.SIGHUP, 0, false},
		{"TerminateThenHangup", "", syscall.SIGTERM, syscall.SIGHUP, false},
		{"InterruptInBackgroundJob", "INT QUIT", syscall.SIGINT, 0, false},
		{"Quit", "", syscall.SIGQUIT, 0, false},
		{"Nohup", "HUP", syscall.SIGHUP, syscall.SIGTERM, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range []syscall.Signal{c.first, c.second} {
				if s == syscall.SIGHUP && signal.Ignored(s) {
					t.Skip("SIGHUP is ignored in this process (nohup), and so in its children")
				}
			}
			var stderr, stdout bytes.Buffer
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalChild$", "-test.count=1")
			if c.ignore != "" {
				cmd = exec.Command("sh", "-c", `trap "" `+c.ignore+`; exec "$0" "$@"`, os.Args[0], "-test.run=^TestSignalChild$", "-test.count=1")
			}
			cmd.Env = append(os.Environ(), signalChildEnv+"=1")
			cmd.Stderr = &stderr
			pipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			lines := make(chan string, 64)
			go func() {
				sc := bufio.NewScanner(pipe)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			prefix := ""
			// What a demo killed half-way leaves (checked below); removed whatever happened.
			leftovers := func() []string {
				var out []string
				if prefix != "" {
					ents, _ := os.ReadDir("/run/netns")
					for _, e := range ents {
						if strings.HasPrefix(e.Name(), prefix) {
							out = append(out, filepath.Join("/run/netns", e.Name()))
						}
					}
				}
				for _, pat := range []string{
					filepath.Join(os.TempDir(), fmt.Sprintf("kvl%d-*", pid)),
					filepath.Join(os.TempDir(), fmt.Sprintf("kvlcp%d-*", pid)),
					filepath.Join("/dev/shm", fmt.Sprintf("kvlcp%d-*", pid)),
					fmt.Sprintf("/sys/fs/cgroup/*/kvlcp%d-*", pid),
					fmt.Sprintf("/sys/fs/cgroup/kvlcp%d-*", pid),
				} {
					m, _ := filepath.Glob(pat)
					out = append(out, m...)
				}
				return out
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				for _, p := range leftovers() {
					if strings.HasPrefix(p, "/run/netns/") {
						_ = exec.Command("ip", "netns", "del", filepath.Base(p)).Run()
					} else {
						_ = os.RemoveAll(p)
					}
				}
			})
			netns := regexp.MustCompile(`network namespace (kvl[0-9]+-[0-9a-f]{4})-n1$`)
			await := func(what string) {
				t.Helper()
				timeout := time.After(3 * time.Minute)
				for {
					select {
					case line, ok := <-lines:
						if !ok {
							t.Fatalf("the demo ended before %q:\n%s\n%s", what, stdout.String(), stderr.String())
						}
						stdout.WriteString(line + "\n")
						if m := netns.FindStringSubmatch(line); m != nil {
							prefix = m[1]
						}
						if strings.HasPrefix(line, what) {
							return
						}
					case <-timeout:
						t.Fatalf("no %q from the demo:\n%s", what, stdout.String())
					}
				}
			}
			await("==> building the agent's image")
			if prefix == "" {
				t.Fatalf("the demo printed no lab namespace:\n%s", stdout.String())
			}
			_ = cmd.Process.Signal(c.first)
			stoppedBy, ack := c.first, c.second
			switch {
			case c.survive:
				time.Sleep(time.Second)
				if strings.Contains(stderr.String(), "stopping the demo") {
					t.Errorf("the demo stopped on %v, which it was started with ignored", c.first)
				}
				_ = cmd.Process.Signal(c.second)
				stoppedBy, ack = c.second, 0
			case c.second != 0:
				await("==> cleaning up")
				_ = cmd.Process.Signal(c.second)
			}
			for line := range lines {
				stdout.WriteString(line + "\n")
			}
			err = cmd.Wait()
			t.Logf("the demo: %v\n%s\n%s", err, stdout.String(), stderr.String())
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 128+int(stoppedBy) {
				t.Errorf("the demo ended with %v, want exit status %d (128 + %v)", err, 128+int(stoppedBy), stoppedBy)
			}
			if !strings.Contains(stdout.String(), "nothing left behind") {
				t.Error("the demo did not print that nothing was left behind")
			}
			if ack != 0 && !strings.Contains(stderr.String(), ack.String()+": still cleaning up, please wait") {
				t.Errorf("the %v during the cleanup was not acknowledged", ack)
			}
			if left := leftovers(); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}
