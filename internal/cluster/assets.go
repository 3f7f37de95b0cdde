package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
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
			if p := filepath.Join(parent, e.Name()); !owned(m[1], p) {
				_ = os.RemoveAll(p)
			}
		}
	}
}

// owned reports whether path, named after the process pid, belongs to a live run: pid is
// alive and started before path was made (pids are reused; lab.Owned).
func owned(pid, path string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil {
		return true // not ours to judge
	}
	created, err := lab.CreatedAt(path)
	if err != nil {
		return true
	}
	return lab.Owned(n, created)
}
