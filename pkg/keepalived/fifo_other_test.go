//go:build !unix

package keepalived

import "testing"

// mkfifo skips the test: this system has no named pipes in the file system.
func mkfifo(t *testing.T, _ string) {
	t.Helper()
	t.Skip("no named pipes (FIFOs) in this system's file system")
}
