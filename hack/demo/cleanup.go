package main

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
)

// checkNodeTools says what the real cluster needs and is missing, before anything is built:
// the Kubernetes binaries of hack/envtest.sh and hack/k8s-binaries.sh (make envtest-assets)
// and Debian's containerd, runc, containernetworking-plugins and haproxy (make deps).
func checkNodeTools() error {
	var missing []string
	dir, err := envtestassets.Dir()
	if err != nil {
		missing = append(missing, err.Error())
	} else {
		for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "helm"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				missing = append(missing, filepath.Join(dir, b))
			}
		}
	}
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare", "haproxy", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = append(missing, "/usr/lib/cni/bridge (containernetworking-plugins)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: make deps envtest-assets installs and builds them (or run the demo with --standalone)", strings.Join(missing, ", "))
	}
	return nil
}

// cleanup stops everything in order and checks that nothing is left: the nodes (kubelet, the
// pods and everything in the node's cgroup, containerd, the node's namespaces), then the
// control plane, then the lab. The lab would close the nodes too (lab.OnClose), but after
// the control plane: a kubelet is best stopped while its API server answers.
func (d *demo) cleanup() error {
	d.res.CleanupStarted = uptime()
	d.stopWatch()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, n := range d.nodes {
		wg.Go(func() {
			if err := n.kube.Close(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %s: %w", n.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if d.cp != nil {
		if err := d.cp.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.l != nil {
		if err := d.l.Close(); err != nil {
			errs = append(errs, err)
		}
		d.res.Leftovers = Leftovers(d.res)
	}
	return errors.Join(errs...)
}

// denied matches what an agent logs when the API server refuses a request (403, forbidden) or
// the kernel refuses an operation (EPERM, EACCES).
var denied = regexp.MustCompile(`(?i)forbidden|\b403\b|operation not permitted|\bEPERM\b|permission denied`)

// Refusals returns how many lines the agents' logs have, and those (prefixed with the node)
// that say the API server or the kernel refused something.
func Refusals(logs map[string]string) (lines int, refused []string) {
	for _, n := range slices.Sorted(maps.Keys(logs)) {
		for line := range strings.Lines(logs[n]) {
			lines++
			if denied.MatchString(line) {
				refused = append(refused, n+": "+strings.TrimSpace(line))
			}
		}
	}
	return lines, refused
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time (100 on every Linux
// architecture Go supports).
const clockTicks = 100

// uptime returns the seconds since boot (/proc/uptime), the clock of procStart.
func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

// procStart returns when process pid started, in seconds since boot, and whether it is a
// zombie.
func procStart(pid string) (start float64, zombie, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, false, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false, false
	}
	// After the comm: state is field 3, starttime field 22.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, false
	}
	t, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, false
	}
	return float64(t) / clockTicks, f[0] == "Z", true
}

// cgroupPrefix starts the names of this process's nodes' cgroups and control-plane
// directories (internal/cluster names them kvlcp<pid>-...).
func cgroupPrefix() string { return fmt.Sprintf("kvlcp%d-", os.Getpid()) }

// Leftovers returns what of r's lab, cluster and directories still exists: network namespaces
// named with its prefix, processes in its network namespaces or in the nodes' mount and PID
// namespaces, mounts under its directories, the nodes' cgroups, directories (the lab's, the
// control plane's and etcd's).
func Leftovers(r *Result) []string {
	var out []string
	if ents, err := os.ReadDir("/run/netns"); err == nil && r.Prefix != "" {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), r.Prefix) {
				out = append(out, "network namespace "+e.Name())
			}
		}
	}
	want := map[string]bool{}
	for _, ino := range r.NetnsInodes {
		want[fmt.Sprintf("net:[%d]", ino)] = true
	}
	for _, ns := range r.NodeNamespaces {
		want[ns] = true
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		// The kernel reuses a freed namespace's inode number for the next namespace: a
		// process started after the cleanup began is someone else's, in a new namespace.
		// A zombie holds nothing but its pid (the nodes' PID namespaces' inits are reaped by
		// the machine's init, when it gets to it).
		start, zombie, ok := procStart(p.Name())
		if !ok || zombie || (r.CleanupStarted > 0 && start > r.CleanupStarted) {
			continue
		}
		for _, kind := range []string{"net", "mnt", "pid"} {
			if link, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns", kind)); err == nil && want[link] {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				out = append(out, fmt.Sprintf("process %s (%s) in %s", p.Name(), strings.TrimSpace(string(comm)), link))
				break
			}
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 5 {
				continue
			}
			for _, dir := range r.Dirs {
				if fields[4] == dir || strings.HasPrefix(fields[4], dir+"/") {
					out = append(out, "mount "+fields[4])
				}
			}
		}
		f.Close()
	}
	cgroups := slices.Clone(r.Cgroups)
	if m, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupPrefix() + "*"); len(m) > 0 {
		cgroups = append(cgroups, m...)
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/" + cgroupPrefix() + "*"); len(m) > 0 {
		cgroups = append(cgroups, m...)
	}
	seen := map[string]bool{}
	for _, c := range cgroups {
		paths := []string{c}
		if !filepath.IsAbs(c) {
			paths, _ = filepath.Glob("/sys/fs/cgroup/*/" + c)
			paths = append(paths, "/sys/fs/cgroup/"+c)
		}
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil && !seen[p] {
				seen[p] = true
				out = append(out, "cgroup "+p)
			}
		}
	}
	dirs := slices.Clone(r.Dirs)
	for _, pat := range []string{
		filepath.Join(os.TempDir(), cgroupPrefix()+"*"),
		filepath.Join("/dev/shm", cgroupPrefix()+"*"),
	} {
		m, _ := filepath.Glob(pat)
		dirs = append(dirs, m...)
	}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err == nil && !seen[dir] {
			seen[dir] = true
			out = append(out, "directory "+dir)
		}
	}
	return out
}
