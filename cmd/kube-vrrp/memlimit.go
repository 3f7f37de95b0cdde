package main

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// memoryLimitShare is the share of the container's memory limit that becomes the Go runtime's
// soft memory limit: the rest is for what the runtime does not count (the binary's pages,
// thread stacks outside the heap) and for a burst the collector cannot keep under it.
const memoryLimitShare = 0.75

// setMemoryLimit gives the Go runtime a soft memory limit (debug.SetMemoryLimit) of
// memoryLimitShare of the memory limit of the process's cgroup, unless GOMEMLIMIT is set or
// there is no limit. Without one the collector lets the heap grow to twice what is live
// (GOGC) whatever the container allows, and a start that holds much for a moment (the first
// list of every Node of a big cluster) is killed for memory it would have freed; near the
// limit the collector works harder instead. It returns the limit it set, 0 for none.
func setMemoryLimit() int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return 0
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	limit, ok := cgroupMemoryLimit(string(self), "/sys/fs/cgroup")
	if !ok {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// daemonGCPercent is the collector's GOGC in the commands that run VRRP for good, `kube-vrrp
// agent` and `kube-vrrp run`, unless GOGC is set. Their heap is mostly what lives as long as
// they do (the agent's cache of every Node and VirtualIP, the instances); at Go's default
// (100) the collector lets the heap grow by as much again before it runs, and the process
// holds that memory. At 50 it holds half as much garbage for twice the collections of a heap
// that, once started, grows slowly. Measured (load average 3-8): an agent with 5000 Nodes and
// 1000 VirtualIPs 70.1 -> 60.9 MiB VmRSS over 2 minutes, 0.9% -> 1.0% of a core idle
// (BenchmarkAgentMemory); `run` with 1000 VIPs at 1 s 100.4 -> 70.1 MiB for 42 -> 44 CPU ticks
// in 20 s, with 100 VIPs at 10 ms 38.6-40.2 -> 35.9-37.0 MiB for the same CPU and advert
// lateness within the noise of the machine (BenchmarkScale).
const daemonGCPercent = 50

// setDaemonGCPercent sets the collector's GOGC to daemonGCPercent, unless the environment sets
// GOGC (then the runtime has read it). It returns the value it set, 0 for none.
func setDaemonGCPercent() int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	debug.SetGCPercent(daemonGCPercent)
	return daemonGCPercent
}

// cgroupMemoryLimit returns the memory limit of the cgroup that self (the content of
// /proc/self/cgroup) names, read below root (where cgroupfs is mounted): cgroup v2's
// memory.max, or v1's memory.limit_in_bytes of the memory controller. Each is looked for
// at the process's cgroup path below root and then at root itself, which is the container's
// own cgroup when the container has a cgroup namespace (its path is then "/"). ok is false
// when no limit is set ("max", or v1's page-rounded maximum) or none can be read.
func cgroupMemoryLimit(self, root string) (limit int64, ok bool) {
	var files []string
	sc := bufio.NewScanner(strings.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			files = append(files, filepath.Join(root, parts[2], "memory.max"), filepath.Join(root, "memory.max"))
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			files = append(files, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"),
				filepath.Join(root, "memory", "memory.limit_in_bytes"))
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return 0, false
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			continue
		}
		// cgroup v1 says "no limit" with the largest page-aligned int64.
		if v >= 1<<62 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}
