package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
)

// dirPrefixBase starts the temporary directories of a control plane; the pid follows, so that a
// later run can remove those of a run that was killed.
const dirPrefixBase = "kvlcp"

var dirName = regexp.MustCompile(`^` + dirPrefixBase + `([0-9]+)-`)

func dirPrefix() string { return fmt.Sprintf("%s%d-", dirPrefixBase, os.Getpid()) }

// sweepDirs removes the directories of control planes whose process is gone (the processes
// themselves died with their lab namespace, or by their parent-death signal).
func sweepDirs() {
	for _, parent := range []string{os.TempDir(), "/dev/shm"} {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range entries {
			m := dirName.FindStringSubmatch(e.Name())
			if m == nil || !e.IsDir() {
				continue
			}
			if pid, err := strconv.Atoi(m[1]); err == nil && !alive(pid) {
				_ = os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
