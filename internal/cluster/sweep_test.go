package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSweepReusedPid: a control plane's directory named after a live process that started
// after the directory was made (the pid was reused) is a dead run's, and swept; one made after
// its owner started is left alone.
func TestSweepReusedPid(t *testing.T) {
	parent := os.TempDir()
	reused := filepath.Join(parent, fmt.Sprintf("%s%d-sweeptest-reused", dirPrefixBase, os.Getpid()))
	mine := filepath.Join(parent, fmt.Sprintf("%s%d-sweeptest-mine", dirPrefixBase, os.Getpid()))
	for _, d := range []string{reused, mine} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(d) })
	}
	// As if made an hour ago, before this process started.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(reused, old, old); err != nil {
		t.Fatal(err)
	}
	sweepDirs()
	if _, err := os.Stat(reused); !os.IsNotExist(err) {
		t.Errorf("%s (older than the process its name gives) was not swept: %v", reused, err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("%s (this live process's) was swept: %v", mine, err)
	}
}
