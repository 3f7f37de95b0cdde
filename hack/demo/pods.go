package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
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

// podLogs are where node k's kubelet keeps the logs of container in pod (of releaseNamespace):
// /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log in the node's own /var/log.
func podLogs(k *cluster.KubeNode, pod, container string) string {
	return filepath.Join(k.Dir, "var-log", "pods", releaseNamespace+"_"+pod+"_*", container, "*.log")
}

// podLog returns what container in pod on node k wrote, as `kubectl logs` shows it (the
// kubelet's files, in the CRI format "<time> <stream> <P|F> <text>"): the lab's API server
// has no credentials for the kubelets' API, which kubectl logs goes through.
func podLog(k *cluster.KubeNode, pod, container string) (string, error) {
	files, _ := filepath.Glob(podLogs(k, pod, container))
	if len(files) == 0 {
		return "", fmt.Errorf("%s: no log of pod %s's container %s (%s)", k.Node.Name, pod, container, podLogs(k, pod, container))
	}
	slices.Sort(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		for line := range strings.Lines(string(data)) {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 {
				continue
			}
			if f[2] == "P" { // a partial line: the next entry continues it
				b.WriteString(strings.TrimSuffix(f[3], "\n"))
			} else {
				b.WriteString(f[3])
			}
		}
	}
	return b.String(), nil
}
