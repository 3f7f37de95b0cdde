package bench_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// architecture.
const clockTicks = 100

// procStat is what BenchmarkScale reads of /proc/PID/stat.
type procStat struct {
	ppid         int
	utime, stime int64
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields count from
	// after its closing one, state (field 3) first.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var st procStat
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, err
	}
	if st.utime, err = strconv.ParseInt(f[11], 10, 64); err != nil {
		return procStat{}, err
	}
	if st.stime, err = strconv.ParseInt(f[12], 10, 64); err != nil {
		return procStat{}, err
	}
	return st, nil
}

// procTree returns pid and its descendants (keepalived's VRRP child, a probe's command).
func procTree(pid int) ([]int, error) {
	if _, err := readProcStat(pid); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(p); err == nil {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// treeTicks returns the CPU time (utime+stime, in clock ticks) of pid's process tree.
func treeTicks(pid int) (int64, error) {
	tree, err := procTree(pid)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, p := range tree {
		if st, err := readProcStat(p); err == nil {
			sum += st.utime + st.stime
		}
	}
	return sum, nil
}

// treeMemory returns the VmRSS, Pss and RssAnon (KiB) of pid's process tree, summed.
func treeMemory(pid int) (memSample, error) {
	tree, err := procTree(pid)
	if err != nil {
		return memSample{}, err
	}
	s := memSample{at: time.Now(), procs: len(tree)}
	for _, p := range tree {
		st, err := procKiB(fmt.Sprintf("/proc/%d/status", p), "VmRSS:", "RssAnon:")
		if err != nil {
			continue
		}
		s.rss += st[0]
		s.anon += st[1]
		if r, err := procKiB(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:"); err == nil {
			s.pss += r[0]
		}
	}
	return s, nil
}

// procKiB reads the "Key:   N kB" lines of a /proc file for keys, in their order.
func procKiB(path string, keys ...string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]int64, len(keys))
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		for i, k := range keys {
			if fields[0] == k {
				v, err := strconv.ParseInt(fields[1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", path, k, err)
				}
				out[i] = v
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if found < len(keys) {
		return nil, fmt.Errorf("%s: missing one of %v", path, keys)
	}
	return out, nil
}
