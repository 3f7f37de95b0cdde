//go:build !unix

package notify

import "os/exec"

// setGroup leaves cmd as it is: without process groups, the timeout kills the command alone
// (exec.Cmd's default cancellation). The agent runs on Linux; this keeps the package building
// for the commands that run elsewhere.
func setGroup(*exec.Cmd) {}
