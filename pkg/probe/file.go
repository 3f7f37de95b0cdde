package probe

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
)

// fileChecker implements KindFile: the path exists (following symbolic links, so a dangling
// link is missing).
//
// stat(2) cannot be cancelled, and on a hung network file system it does not return; it runs
// in its own goroutine so that the check still ends at its timeout, and while one hangs no
// other is started, so hung calls do not pile up.
type fileChecker struct {
	path string

	mu       sync.Mutex
	inflight chan struct{} // closed when the running stat returns; nil when none runs
	err      error
}

func (c *fileChecker) check(ctx context.Context) (bool, string) {
	c.mu.Lock()
	done := c.inflight
	if done == nil {
		done = make(chan struct{})
		c.inflight = done
		go func() {
			_, err := os.Stat(c.path)
			c.mu.Lock()
			c.err, c.inflight = err, nil
			c.mu.Unlock()
			close(done)
		}()
	}
	c.mu.Unlock()

	select {
	case <-ctx.Done():
		return false, "stat " + c.path + ": no answer within the timeout"
	case <-done:
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	switch {
	case err == nil:
		return true, c.path + " exists"
	case errors.Is(err, fs.ErrNotExist):
		return false, c.path + " does not exist"
	default:
		return false, err.Error()
	}
}
