package probe

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxExecOutput is how much of a command's output is kept, for the failure reason.
const maxExecOutput = 256

// execWaitDelay bounds the wait for the output pipe after the command exits or is killed, in
// case a process that left the group still holds it.
const execWaitDelay = 100 * time.Millisecond

// execChecker implements KindExec: argv runs directly (no shell, no PATH lookup), in /, with an
// empty environment and stdin from /dev/null, in a process group of its own; at the timeout the
// whole group is killed. The output is discarded but for its first bytes, which explain a
// failure.
type execChecker struct {
	argv []string
}

func (c execChecker) check(ctx context.Context) (bool, string) {
	out, err := c.run(ctx)
	switch {
	case ctx.Err() != nil:
		return false, fmt.Sprintf("%s did not finish within the timeout; killed with its process group", ShownProgram(c.argv[0]))
	case err != nil:
		reason := ShownProgram(c.argv[0]) + ": " + ShownExecError(err)
		if line := firstLine(out); line != "" {
			reason += ": " + line
		}
		return false, reason
	}
	return true, ShownProgram(c.argv[0]) + " exited 0"
}

// run runs the command and returns the head of its combined output.
func (c execChecker) run(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = []string{} // empty, not nil: nil would inherit the agent's environment
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &headWriter{max: maxExecOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error {
		// The group's id is the leader's pid, which Wait has not reaped yet.
		return unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	cmd.WaitDelay = execWaitDelay
	err := cmd.Run()
	return out.buf.Bytes(), err
}

// headWriter keeps the first max bytes written to it and discards the rest.
type headWriter struct {
	max int
	buf bytes.Buffer
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(strings.ToValidUTF8(s, "?"))
}
