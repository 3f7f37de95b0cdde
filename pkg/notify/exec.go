package notify

import (
	"context"
	"errors"
	"os/exec"
	"time"
)

// waitDelay bounds the wait for a command after its timeout killed it (or tried to): Wait
// then kills the process itself and returns.
const waitDelay = time.Second

// run runs argv directly (no shell, no PATH lookup: argv[0] is an absolute path), with an
// empty environment, in /, with standard input, output and error on /dev/null, in a process
// group of its own where the system has them (setGroup); at the timeout, or when kill is done,
// the group is killed. It returns the command's error and whether the timeout ended it.
func run(kill context.Context, argv []string, timeout time.Duration) (err error, timedOut bool) {
	ctx, cancel := context.WithTimeout(kill, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// Exactly argv[0]: exec.Command looks a bare name up in PATH, and the caller gives none.
	cmd.Path = argv[0]
	cmd.Err = nil
	cmd.Env = []string{} // empty, not nil: nil would pass on the agent's environment
	cmd.Dir = "/"
	// Stdin, Stdout and Stderr are nil: /dev/null, no pipe to the agent (see the package doc).
	setGroup(cmd)
	cmd.WaitDelay = waitDelay
	err = cmd.Run()
	return err, errors.Is(ctx.Err(), context.DeadlineExceeded) && kill.Err() == nil
}
