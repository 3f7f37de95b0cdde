package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PIDNamespace gives a node its own process table, as a real host has. Network namespaces
// share the test machine's processes: without this, a probe of "is haproxy running?" on n1
// (kube-vrrp's process probe, keepalived's `pgrep -x haproxy`) would also see n2's HAProxy,
// or one started by any other lab on the machine, and never fail.
//
// The namespace is held by `unshare --pid --fork --mount-proc --kill-child sleep infinity`
// started in the node: its sleep is the namespace's init, with a /proc of its own mounted in
// a private mount namespace (a copy of the node's, so /sys is the node's too). Exec runs
// programs inside with `nsenter` (PID and mount namespaces of that init; the network
// namespace is the node's already). Close kills the init, and with it the kernel kills every
// process inside: SIGKILL, no graceful stop.
type PIDNamespace struct {
	// Node is the node whose network namespace the processes share.
	Node *Node

	holder  *Proc
	initPid int // host pid of the namespace's init
}

// NewPIDNamespace creates a PID namespace for the processes of n. Close it, or the lab does
// on Close (after its 5 s SIGTERM grace, which unshare ignores).
func (n *Node) NewPIDNamespace() (*PIDNamespace, error) {
	h, err := n.Exec(context.Background(), "pidns",
		"unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sleep", "infinity")
	if err != nil {
		return nil, err
	}
	// unshare forks the init, which mounts /proc and then execs sleep: once it is sleep, the
	// namespace is ready to enter.
	pid, err := waitChild(h, func(comm string) bool { return comm == "sleep" }, 10*time.Second)
	if err != nil {
		h.Kill()
		return nil, fmt.Errorf("%s: pid namespace: %w", n.Name, err)
	}
	return &PIDNamespace{Node: n, holder: h, initPid: pid}, nil
}

// StartPIDNamespace is NewPIDNamespace for tests: it fails t on error and closes the
// namespace in t.Cleanup (which runs before the lab's own cleanup when the lab was made
// first).
func (n *Node) StartPIDNamespace(t testing.TB) *PIDNamespace {
	t.Helper()
	ns, err := n.NewPIDNamespace()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// JoinPIDNamespace returns the PID namespace (with the mount namespace) of the running process
// initPid, which holds it for someone else (a real node's, package cluster): Exec runs
// programs in it, and Close leaves it alone.
func (n *Node) JoinPIDNamespace(initPid int) *PIDNamespace {
	return &PIDNamespace{Node: n, initPid: initPid}
}

// Close SIGKILLs the namespace's init; the kernel then kills every process inside. It waits
// until the holder has ended. It is idempotent, and does nothing to a namespace joined with
// JoinPIDNamespace.
func (ns *PIDNamespace) Close() {
	if ns.holder != nil {
		ns.holder.Kill()
	}
}

// NSProc is a process running inside a PIDNamespace. The embedded Proc is the `nsenter`
// that started it and waits for it: its log is the process's log, and it ends when the
// process ends. Signal, Kill and Stop act on the process itself (nsenter forwards no signal).
type NSProc struct {
	*Proc
	pid int
}

// HostPid returns the process's pid as the test machine (the initial PID namespace) sees it;
// 0 if it ended before Exec saw it.
func (p *NSProc) HostPid() int { return p.pid }

// Signal sends sig to the process.
func (p *NSProc) Signal(sig os.Signal) error {
	if p.Exited() || p.pid <= 0 {
		return os.ErrProcessDone
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v is not a syscall.Signal", sig)
	}
	return syscall.Kill(p.pid, s)
}

// Kill SIGKILLs the process (only it: what `kill -9 <pid>` does on a real host) and waits until
// it has ended.
func (p *NSProc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
}

// Stop sends SIGTERM, waits up to 5 s, then SIGKILLs, and returns the exit error; a process
// ended by the SIGTERM it asked for is not an error.
func (p *NSProc) Stop() error {
	_ = p.Signal(syscall.SIGTERM)
	if p.Wait(stopGrace) == ErrRunning {
		p.Kill()
	}
	return p.Proc.Stop()
}

// Exec starts argv inside the namespace (and the node's network namespace), working directory
// the node's, output to n.Dir/<name>.log, and returns once the program has been executed
// (argv[0] through `nice` is followed to the program it runs) or has already ended. The end
// of ctx stops it (NSProc.Stop).
func (ns *PIDNamespace) Exec(ctx context.Context, name string, argv ...string) (*NSProc, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: empty argv")
	}
	full := append([]string{"nsenter", "-t", strconv.Itoa(ns.initPid), "-p", "-m", "--wd=" + ns.Node.Dir, "--"}, argv...)
	// The end of ctx must stop the process itself, not only nsenter: handled below.
	w, err := ns.Node.Exec(context.Background(), name, full...)
	if err != nil {
		return nil, err
	}
	// nsenter forks the process (a new PID namespace applies to children only); it has been
	// executed once its name is no longer nsenter's or nice's.
	pid, err := waitChild(w, func(comm string) bool { return comm != "nsenter" && comm != "nice" }, 10*time.Second)
	if err != nil && !w.Exited() {
		w.Kill()
		return nil, fmt.Errorf("%s: %s in its pid namespace: %w\n%s", ns.Node.Name, name, err, w.Tail(10))
	}
	// A short command may have ended before it was seen: it is done (pid 0), and its exit
	// status and output are the wrapper's.
	p := &NSProc{Proc: w, pid: pid}
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				_ = p.Stop()
			case <-p.Done():
			}
		}()
	}
	return p, nil
}

// waitChild waits until p has a child whose comm satisfies ok, and returns its pid.
func waitChild(p *Proc, ok func(comm string) bool, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, c := range children(p.Pid()) {
			if comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c), "comm")); err == nil && ok(strings.TrimSpace(string(comm))) {
				return c, nil
			}
		}
		if p.Exited() {
			return 0, fmt.Errorf("%s exited: %v", p.Argv[0], p.Wait(0))
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s started no process within %v", p.Argv[0], timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ChildPids returns the pids of the processes whose parent is pid.
func ChildPids(pid int) []int { return children(pid) }

// children returns the pids whose parent is pid.
func children(pid int) []int {
	// /proc/<pid>/task/<tid>/children lists them directly (every thread; these programs have
	// one that forks).
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err == nil {
		var out []int
		for f := range strings.FieldsSeq(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
		return out
	}
	// Without CONFIG_PROC_CHILDREN: every process's parent, from its stat.
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) S ppid ...": comm may hold spaces; the fields after the last ')' are fixed.
		i := strings.LastIndexByte(string(st), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// ExecKubeVRRP is Node.ExecKubeVRRP inside the namespace: it writes manifest to the node's
// directory and starts `bin run -f FILE --node <node> --log-format json --events EVENTS` with
// args appended (at the lab's speaker niceness). KubeVRRPEvents, KubeVRRPTransitions and
// friends read its events (p.Proc).
func (ns *PIDNamespace) ExecKubeVRRP(bin, manifest string, args ...string) (*NSProc, error) {
	name, argv, events, err := ns.Node.kubeVRRPArgv(bin, manifest, args)
	if err != nil {
		return nil, err
	}
	p, err := ns.Exec(context.Background(), name, argv...)
	if p != nil && p.Proc != nil {
		p.EventsPath = events
	}
	return p, err
}

// StartKubeVRRP is ExecKubeVRRP with the binary of KubeVRRPBinary, for tests.
func (ns *PIDNamespace) StartKubeVRRP(t testing.TB, manifest string, args ...string) *NSProc {
	t.Helper()
	p, err := ns.ExecKubeVRRP(KubeVRRPBinary(t), manifest, args...)
	if err != nil {
		t.Fatalf("%s: kube-vrrp: %v", ns.Node.Name, err)
	}
	return p
}

// ExecKeepalived is Node.ExecKeepalived inside the namespace (its scripts, such as
// `pgrep -x haproxy`, see only the namespace's processes).
func (ns *PIDNamespace) ExecKeepalived(cfg string) (*NSProc, error) {
	n := ns.Node
	name := n.lab.procName(n.Name, "keepalived-conf")
	dir := filepath.Join(n.Dir, name)
	conf, err := n.WriteFile(filepath.Join(name, "keepalived.conf"), []byte(cfg))
	if err != nil {
		return nil, err
	}
	return ns.Exec(context.Background(), "keepalived", n.lab.speakerArgv(KeepalivedArgs(conf, dir))...)
}

// StartKeepalived is ExecKeepalived for tests.
func (ns *PIDNamespace) StartKeepalived(t testing.TB, cfg string) *NSProc {
	t.Helper()
	p, err := ns.ExecKeepalived(cfg)
	if err != nil {
		t.Fatalf("%s: keepalived: %v", ns.Node.Name, err)
	}
	return p
}
