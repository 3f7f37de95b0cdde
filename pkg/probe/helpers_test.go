package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startRunner runs r until the test ends.
func startRunner(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// recv returns the next result, failing the test if none comes within d.
func recv(t *testing.T, r *Runner, d time.Duration) Result {
	t.Helper()
	select {
	case res, ok := <-r.Results():
		if !ok {
			t.Fatal("Results() closed")
		}
		return res
	case <-time.After(d):
		t.Fatalf("no result within %v", d)
	}
	panic("unreachable")
}

// noResult fails the test if a result comes within d.
func noResult(t *testing.T, r *Runner, d time.Duration) {
	t.Helper()
	select {
	case res := <-r.Results():
		t.Fatalf("unexpected result %+v", res)
	case <-time.After(d):
	}
}

var nameSeq atomic.Int32

// uniqueName returns a process name of at most 15 bytes that no other process has.
func uniqueName() string {
	return fmt.Sprintf("kvp%d-%d", os.Getpid()%1000000, nameSeq.Add(1))
}

// namedBinary copies /bin/sleep to a file called name, so that processes started from it have
// that comm.
func namedBinary(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	src, err := os.Open("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// startBinary starts path sleeping for a minute; it is killed and reaped when the test ends,
// not before, so a process the test kills stays a zombie until then.
func startBinary(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(path, "60")
	var err error
	for range 50 {
		// ETXTBSY: a process forked elsewhere meanwhile may briefly hold the copy open for
		// writing.
		if err = cmd.Start(); !errors.Is(err, syscall.ETXTBSY) {
			break
		}
		time.Sleep(10 * time.Millisecond)
		cmd = exec.Command(path, "60")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// procState returns the state letter of pid from /proc/<pid>/stat, or 0 if it is gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2]
		}
	}
	return 0
}

// waitState waits until pid's state is one of states (0: gone).
func waitState(t *testing.T, pid int, states string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := procState(pid)
		for i := range len(states) {
			if s == states[i] || (s == 0 && states[i] == '0') {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d is in state %q, want one of %q", pid, s, states)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
