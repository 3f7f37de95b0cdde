package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
)

// Creds are an agent process's credentials as the kernel reports them (/proc/PID/status).
type Creds = filecaps.Creds

// agentProcess finds the agent of the node whose PID namespace's init is holderPid: the
// DaemonSet's pod has hostPID, so its `kube-vrrp agent` is a process of that namespace. It
// returns the agent's host pid and credentials.
func agentProcess(holderPid int) (int, Creds, error) {
	pidns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", holderPid))
	if err != nil {
		return 0, Creds{}, err
	}
	var found []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscan(p.Name(), &pid); err != nil {
			continue
		}
		if ns, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns", "pid")); err != nil || ns != pidns {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		argv := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(argv) >= 2 && filepath.Base(string(argv[0])) == "kube-vrrp" && string(argv[1]) == "agent" {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, Creds{}, fmt.Errorf("%d `kube-vrrp agent` processes in the node's PID namespace (%s), want 1", len(found), pidns)
	}
	c, err := readCreds(found[0])
	return found[0], c, err
}

// readCreds reads a process's uid and capability sets.
func readCreds(pid int) (Creds, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Creds{}, err
	}
	return filecaps.ParseStatus(b), nil
}

// agentCaps are NET_ADMIN and NET_RAW, all the agent may hold.
const agentCaps = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW

func capNames(set uint64) string {
	var out []string
	for c, name := range map[int]string{unix.CAP_NET_ADMIN: "cap_net_admin", unix.CAP_NET_RAW: "cap_net_raw"} {
		if set&(1<<c) != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	if rest := set &^ agentCaps; rest != 0 {
		out = append(out, fmt.Sprintf("others %#x", rest))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
