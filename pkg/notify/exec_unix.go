//go:build unix

package notify

import (
	"os/exec"
	"syscall"
)

// setGroup starts cmd in a process group of its own, and makes its cancellation kill the whole
// group: what the command started dies with it at the timeout.
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's id is the leader's pid, which Wait has not reaped yet.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
