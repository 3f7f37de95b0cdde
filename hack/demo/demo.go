package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

const (
	// releaseName and releaseNamespace are the README's `helm install kube-vrrp
	// charts/kube-vrrp -n kube-vrrp`; the DaemonSet is named after the release.
	releaseName      = "kube-vrrp"
	releaseNamespace = "kube-vrrp"
	// imageRepo is the chart's default image repository: only the tag is the demo's, and the
	// image is imported into every node (pullPolicy Never: nothing is pulled).
	imageRepo = "ghcr.io/kube-vrrp/kube-vrrp"
	imageTag  = "demo"
	// agentLabel selects the agent's pods (the chart's selector labels).
	agentLabel = "app.kubernetes.io/name"
	// vipName is the VirtualIP's name (config/samples/haproxy-pair.yaml's).
	vipName = "haproxy"
	// lbLabel is the label of the nodes that may hold the address, the sample's nodeSelector.
	lbLabel = "node-role.kubernetes.io/lb"
	// settle bounds "happens at all" waits: far above any VRRP or probe timer, so that a
	// loaded machine does not fail a demo that behaves correctly.
	settle = 30 * time.Second
	// podsTimeout bounds the start of the cluster's nodes and of the agents' pods.
	podsTimeout = 3 * time.Minute
)

var (
	// vip is the virtual address of the VirtualIP the demo applies (cluster.SampleVirtualIP).
	vip = cluster.SampleVIP
	// web is HAProxy's frontend on the VIP.
	web = netip.AddrPortFrom(vip.Addr(), 80)
)

// Options configure Run.
type Options struct {
	// Out receives the demo's output.
	Out io.Writer
	// HandleSignals makes SIGINT, SIGTERM, SIGHUP and SIGQUIT stop the demo and remove
	// everything before Run returns (the command; a test leaves signals alone). Signals that
	// come while it cleans up are acknowledged, not obeyed.
	HandleSignals bool
	// Nice is the niceness of this process and of everything it starts after the image is
	// built — the control plane, containerd and the kubelets, and so the agents' pods (0:
	// unchanged): a speaker stalled by a busy machine for longer than Master_Down_Interval
	// legitimately loses its role, which is not what the demo is about.
	Nice int
	// Keep leaves the cluster running after the scenario, and prints how to reach it, until
	// the context ends (or, with HandleSignals, a signal: Ctrl-C, or the terminal closing);
	// then everything is removed.
	Keep bool
}

// Snapshot is the VirtualIP's status and the data plane at one moment.
type Snapshot struct {
	// Master is status.master; Ready the Ready condition's status.
	Master, Ready string
	// States are the members' status.state by node; Masters the nodes whose state is Master.
	States  map[string]string
	Masters []string
	// Holders are the nodes that have the address bound.
	Holders []string
}

func (s Snapshot) String() string {
	var nodes []string
	for _, n := range slices.Sorted(maps.Keys(s.States)) {
		nodes = append(nodes, n+"="+s.States[n])
	}
	return fmt.Sprintf("master=%s ready=%s states[%s] holders=%v", s.Master, s.Ready, strings.Join(nodes, " "), s.Holders)
}

// Timing is how long one phase of the demo took.
type Timing struct {
	Phase    string
	Duration time.Duration
}

// Result is what the demo saw; Run fills what it got to, also on failure.
type Result struct {
	// Prefix starts the names of the lab's network namespaces.
	Prefix string
	// NetnsInodes identify the lab's network namespaces, and NodeNamespaces the real nodes'
	// mount and PID namespaces ("mnt:[4026532312]"): a process still inside one after the
	// demo is a leftover.
	NetnsInodes    []uint64
	NodeNamespaces []string
	// Cgroups are the nodes' cgroups (the kubelets' cgroupRoot), at the top of every
	// hierarchy.
	Cgroups []string
	// Dirs are the directories the demo and its control plane made.
	Dirs []string
	// Timings are the phases' durations, in order, the total last.
	Timings []Timing
	// Pods are the agent pods by node once they were Ready.
	Pods map[string]string
	// AgentLogs are the agent pods' logs by node, as kubectl logs printed them before helm
	// uninstall.
	AgentLogs map[string]string
	// AgentCreds are the credentials of the agents' processes by node, as the kubelet and
	// runc started them.
	AgentCreds map[string]Creds
	// Start is after the VirtualIP was applied and settled; AfterKill after HAProxy was
	// killed on the MASTER; AfterRestart after it was started again.
	Start, AfterKill, AfterRestart Snapshot
	// KilledOn is the node whose HAProxy was killed (the MASTER).
	KilledOn string
	// Failover is what the client's HTTP requests saw of the kill; Handback of the restart.
	Failover, Handback lab.HTTPOutage
	// Uninstalled is true once helm uninstall removed the agents' pods and no node held the
	// address any more.
	Uninstalled bool
	// Kept is true when the cluster was kept running (Options.Keep) after the scenario.
	Kept bool
	// CleanupStarted is when the cleanup began, in seconds since boot: Leftovers ignores
	// processes started later (in namespaces whose inode numbers the kernel reused).
	CleanupStarted float64
	// Leftovers are what cleanup left behind (namespaces, processes, mounts, cgroups,
	// directories).
	Leftovers []string
}

// node is one real node of the lab: containerd and a kubelet (cluster.KubeNode), its process
// table (HAProxy runs there as a node process, which the hostPID agent's probe sees).
type node struct {
	name  string
	kube  *cluster.KubeNode
	pidns *lab.PIDNamespace
	hap   *lab.HAProxy
}

type demo struct {
	o     Options
	out   *syncWriter
	res   *Result
	l     *lab.Lab
	cp    *cluster.ControlPlane
	k8s   client.Client
	nodes []*node
	chart string // charts/kube-vrrp, absolute
	// imageArchive is the image `make image` built.
	imageArchive string
	// stopWatch stops the status watcher (once it runs).
	stopWatch func()
	started   time.Time
	// keeping is set while the demo waits in Keep mode: a signal then is the expected end.
	keeping bool
	mu      sync.Mutex
}

// Run runs the demo and removes everything it made before it returns.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	d := &demo{o: o, out: &syncWriter{w: o.Out}, stopWatch: func() {}, started: time.Now(), res: &Result{
		Pods: map[string]string{}, AgentLogs: map[string]string{}, AgentCreds: map[string]Creds{},
	}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sig syscall.Signal
	var sigMu sync.Mutex
	if o.HandleSignals {
		// Deferred before the cleanup, so it runs after it: until the cleanup is over, a
		// signal is acknowledged instead of killing the demo half-way through it.
		defer d.handleSignals(func(s syscall.Signal) {
			sigMu.Lock()
			sig = s
			sigMu.Unlock()
			cancel()
		})()
	}
	defer func() {
		if d.l == nil {
			if s := d.stoppedBy(&sigMu, &sig); s != 0 {
				err = interrupted{sig: s}
			}
			return // nothing was made
		}
		t0 := time.Now()
		d.step("cleaning up: the nodes (kubelet, pods, containerd, their namespaces and cgroups), the control plane, the lab")
		testHookCleanup()
		var cleanupErr error
		if cerr := d.cleanup(); cerr != nil {
			cleanupErr = fmt.Errorf("cleanup: %w", cerr)
		}
		d.timing("cleanup", t0)
		if len(d.res.Leftovers) == 0 {
			d.printf("nothing left behind: no namespace %s-*, no process in the lab's or the nodes' namespaces, no mount, no cgroup %s*, no directory\n",
				d.res.Prefix, cgroupPrefix())
		} else {
			cleanupErr = errors.Join(cleanupErr, fmt.Errorf("left behind: %s", strings.Join(d.res.Leftovers, "; ")))
		}
		d.timing("total", d.started)
		d.printTimings()
		sigMu.Lock()
		defer sigMu.Unlock()
		d.mu.Lock()
		kept := d.keeping
		d.mu.Unlock()
		switch {
		case sig != 0 && kept:
			// --keep ends with Ctrl-C: that is its success.
			err = cleanupErr
		case sig != 0:
			// The step failed because of the signal; what cleanup failed at is still news.
			err = interrupted{sig: sig, err: cleanupErr}
		default:
			err = errors.Join(err, cleanupErr)
		}
	}()
	if err := d.preflight(); err != nil {
		return d.res, err
	}
	if ctx.Err() != nil {
		return d.res, ctx.Err()
	}

	d.step("building the lab: nodes n1, n2, n3 and a client (198.18.0.250) on one bridge, in network namespaces")
	t0 := time.Now()
	// With HandleSignals, the lab's own handler would remove the lab and exit at once; the
	// demo stops in order instead: the nodes, then the control plane, then the lab.
	l, _, err := lab.Open(lab.Options{Nodes: 3, NoSignalHandler: o.HandleSignals})
	if err != nil {
		return d.res, err
	}
	d.l = l
	d.res.Prefix = l.Prefix
	d.res.Dirs = append(d.res.Dirs, l.Dir())
	for _, ns := range append([]string{l.Switch}, nsNames(append(l.Nodes(), l.Client()))...) {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", ns), &st); err != nil {
			return d.res, err
		}
		d.res.NetnsInodes = append(d.res.NetnsInodes, st.Ino)
	}
	for _, n := range l.Nodes() {
		d.printf("%-6s %-13s network namespace %s\n", n.Name, n.IPv4, n.NetNS)
	}
	d.printf("%-6s %-13s network namespace %s\n", "client", l.Client().IPv4, l.Client().NetNS)
	d.timing("lab", t0)

	steps := []func(context.Context) error{
		d.buildImage, d.startCluster, d.importImage, d.startHAProxy, d.installChart, d.waitPods,
		d.applyVirtualIP, d.killHAProxy, d.restartHAProxy, d.readAgentLogs, d.summarize,
	}
	if o.Keep {
		steps = append(steps, d.keep)
	} else {
		steps = append(steps, d.uninstall)
	}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return d.res, err
		}
		if ctx.Err() != nil {
			return d.res, ctx.Err()
		}
	}
	return d.res, nil
}

// stopSignals are the signals that stop the demo, each with a cleanup first: Ctrl-C, kill,
// the terminal's hangup (closing it: make demo KEEP=1 may wait in one for hours) and Ctrl-\.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// testHookCleanup runs as the cleanup starts (a test holds the cleanup open with it).
var testHookCleanup = func() {}

// handleSignals calls stop with the first of stopSignals that comes, and acknowledges every
// later one until the returned func is called, after the cleanup. Started with SIGHUP ignored
// (nohup), the demo keeps ignoring it; SIGINT and SIGQUIT, which a shell ignores for a
// script's background jobs, are caught all the same (kill -INT stops the demo). A closed
// terminal or pipe must not kill the demo either: SIGPIPE is caught, so that a write to it
// fails instead.
func (d *demo) handleSignals(stop func(syscall.Signal)) (done func()) {
	var sigs []os.Signal
	for _, s := range stopSignals {
		if s != syscall.SIGHUP || !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	ch := make(chan os.Signal, len(stopSignals))
	signal.Notify(ch, sigs...)
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	quit := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		stopped := false
		for {
			select {
			case s := <-ch:
				if !stopped {
					stopped = true
					fmt.Fprintf(os.Stderr, "\n%v: stopping the demo and removing everything (this takes a few seconds)\n", s)
					stop(s.(syscall.Signal))
				} else {
					fmt.Fprintf(os.Stderr, "\n%v: still cleaning up, please wait (kill -9 %d leaves everything behind)\n", s, os.Getpid())
				}
			case <-quit:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		signal.Stop(pipe)
		close(quit)
		<-exited
	}
}

// stoppedBy returns the signal that stopped the demo, if any.
func (d *demo) stoppedBy(mu *sync.Mutex, sig *syscall.Signal) syscall.Signal {
	mu.Lock()
	defer mu.Unlock()
	return *sig
}

// summarize prints what the scenario showed.
func (d *demo) summarize(context.Context) error {
	d.step("%s", d.summary())
	return nil
}

func (d *demo) summary() string {
	return fmt.Sprintf("SIGKILL of HAProxy on the MASTER %s moved %s to %s: %s for the client (keepalived's\n"+
		"    classic pgrep check: ~3.6 s). HAProxy back on %s: %s took the address back: %s.",
		d.res.KilledOn, vip.Addr(), d.res.AfterKill.Master, outageShort(d.res.Failover),
		d.res.KilledOn, d.res.AfterRestart.Master, outageShort(d.res.Handback))
}

// outageShort is "an HTTP outage of 21ms", or "no failed request" when none of its requests
// (one every 10 ms) failed.
func outageShort(o lab.HTTPOutage) string {
	if o.Failed == 0 {
		return fmt.Sprintf("no failed request (one every %v)", o.Result.Interval)
	}
	return fmt.Sprintf("an HTTP outage of %v", o.Duration.Round(time.Millisecond))
}

// preflight checks what the demo needs before it creates anything.
func (d *demo) preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root (network namespaces, containerd and kubelets)")
	}
	if err := checkNodeTools(); err != nil {
		return err
	}
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		return err
	}
	d.chart = filepath.Join(root, "charts", "kube-vrrp")
	return nil
}

// buildImage builds the release image with `make image`, at the machine's own niceness (the
// demo renices itself, and so what it starts next, afterwards).
func (d *demo) buildImage(ctx context.Context) error {
	ref := imageRepo + ":" + imageTag
	d.step("building the agent's image as a release does: make image IMAGE=%s (no container engine)", ref)
	t0 := time.Now()
	archive, err := cluster.BuildAgentImage(ctx, filepath.Join(d.l.Dir(), "image"), ref, imageTag)
	if err != nil {
		return err
	}
	d.imageArchive = archive
	size := ""
	if st, err := os.Stat(archive); err == nil {
		size = fmt.Sprintf(" (%.1f MB)", float64(st.Size())/1e6)
	}
	d.printf("%s%s\n", archive, size)
	d.timing("image build", t0)
	if d.o.Nice != 0 {
		return lab.Renice(d.o.Nice)
	}
	return nil
}

func (d *demo) startCluster(ctx context.Context) error {
	d.step("starting the cluster: etcd, kube-apiserver, kube-controller-manager and kube-scheduler in the\n" +
		"    client's namespace; containerd and a kubelet on n1, n2, n3 (each node in mount and PID namespaces of its own)")
	t0 := time.Now()
	logf := func(f string, a ...any) { d.printf("  "+f+"\n", a...) }
	cp, err := cluster.Start(ctx, d.l, cluster.Options{Logf: logf})
	if err != nil {
		return err
	}
	d.cp = cp
	d.k8s = cp.Client()
	d.res.Dirs = append(d.res.Dirs, cp.Dir())
	if err := cp.StartControllers(ctx, ""); err != nil {
		return err
	}
	kube, err := cp.StartNodes(ctx, d.l.Nodes(), cluster.KubeletOptions{})
	for _, k := range kube {
		n := &node{name: k.Node.Name, kube: k, pidns: k.PIDNamespace()}
		d.nodes = append(d.nodes, n)
		d.res.Cgroups = append(d.res.Cgroups, k.Cgroup)
		for _, ns := range []string{"mnt", "pid"} {
			if link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", k.HolderPid(), ns)); err == nil {
				d.res.NodeNamespaces = append(d.res.NodeNamespaces, link)
			}
		}
	}
	if err != nil {
		return err
	}
	if err := poll(ctx, podsTimeout, d.nodesReady); err != nil {
		return fmt.Errorf("the kubelets' Nodes are not Ready: %w", err)
	}
	if _, err := d.kubectl(ctx, "", "get", "nodes", "-o", "wide"); err != nil {
		return err
	}
	d.timing("cluster up", t0)
	return nil
}

// nodesReady returns nil when every lab node is a Node whose Ready condition is True.
func (d *demo) nodesReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range d.nodes {
		var node corev1.Node
		if err := d.k8s.Get(ctx, types.NamespacedName{Name: n.name}, &node); err != nil {
			return err
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return fmt.Errorf("node %s is not Ready", n.name)
		}
	}
	return nil
}

// importImage puts the image into every node's containerd, where the kubelet finds it (the
// chart's pullPolicy set to Never: no registry).
func (d *demo) importImage(ctx context.Context) error {
	d.step("importing the image into every node's containerd: ctr -n k8s.io images import")
	t0 := time.Now()
	for _, n := range d.nodes {
		if err := n.kube.ImportImage(ctx, d.imageArchive); err != nil {
			return err
		}
		d.printf("%s: %s:%s\n", n.name, imageRepo, imageTag)
	}
	d.timing("image import", t0)
	return nil
}

func (d *demo) startHAProxy(context.Context) error {
	d.step("starting HAProxy on every node as a node process (the node's own PID namespace), serving HTTP on %s", web)
	for _, n := range d.nodes {
		h, err := n.pidns.ExecHAProxy(vip.Addr())
		if err != nil {
			return err
		}
		n.hap = h
		d.printf("%s: haproxy pid %d\n", n.name, h.HostPid())
	}
	return nil
}

// installChart installs the chart as the README tells users to, with the demo's image.
func (d *demo) installChart(ctx context.Context) error {
	d.step("installing kube-vrrp as the README says (helm and kubectl are the real programs)")
	t0 := time.Now()
	if _, err := d.kubectl(ctx, "", "create", "namespace", releaseNamespace); err != nil {
		return err
	}
	// host network and NET_ADMIN (README: Install on a cluster with Helm)
	if _, err := d.kubectl(ctx, "", "label", "namespace", releaseNamespace, "pod-security.kubernetes.io/enforce=privileged"); err != nil {
		return err
	}
	if _, err := d.helm(ctx, "install", releaseName, d.chart, "-n", releaseNamespace,
		"--set", "image.tag="+imageTag, "--set", "image.pullPolicy=Never"); err != nil {
		return err
	}
	d.timing("helm install", t0)
	return nil
}

// waitPods waits until the DaemonSet's pods are Ready on the three nodes, and reads their
// agents' credentials.
func (d *demo) waitPods(ctx context.Context) error {
	d.step("waiting for the DaemonSet's pods: the scheduler binds one per node, each kubelet runs it")
	t0 := time.Now()
	if _, err := d.kubectl(ctx, "", "rollout", "status", "daemonset/"+releaseName, "-n", releaseNamespace,
		"--timeout="+podsTimeout.String()); err != nil {
		return fmt.Errorf("%w\n%s", err, d.describePods(ctx))
	}
	d.timing("pods ready", t0)
	if _, err := d.kubectl(ctx, "", "get", "pods", "-n", releaseNamespace, "-o", "wide"); err != nil {
		return err
	}
	pods, err := d.agentPods(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		d.res.Pods[p.Spec.NodeName] = p.Name
	}
	d.printf("the agents as runc started them (hostPID: each is a process of its node's PID namespace):\n")
	for _, n := range d.nodes {
		pid, c, err := agentProcess(n.kube.HolderPid())
		if err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
		d.res.AgentCreds[n.name] = c
		d.printf("%s: pod %s, agent pid %d, uid %s, CapEff %016x (%s), CapBnd %016x, NoNewPrivs %v\n",
			n.name, d.res.Pods[n.name], pid, c.UID, c.CapEff, capNames(c.CapEff), c.CapBnd, c.NoNewPrivs)
	}
	return nil
}

func (d *demo) agentPods(ctx context.Context) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := d.k8s.List(ctx, &pods, client.InNamespace(releaseNamespace), client.MatchingLabels{agentLabel: "kube-vrrp"}); err != nil {
		return nil, err
	}
	return pods.Items, nil
}

// describePods is what a user looks at when the pods do not start.
func (d *demo) describePods(ctx context.Context) string {
	out, err := d.cp.Kubectl(ctx, "", "describe", "pods", "-n", releaseNamespace)
	if err != nil {
		return err.Error()
	}
	return out
}

func (d *demo) applyVirtualIP(ctx context.Context) error {
	d.step("labelling the nodes %s (the sample's nodeSelector) and applying the VirtualIP", lbLabel)
	if _, err := d.kubectl(ctx, "", "label", "node", "n1", "n2", "n3", lbLabel+"="); err != nil {
		return err
	}
	d.printf("%s", indent(cluster.SampleVirtualIP))
	applied := time.Now()
	if _, err := d.kubectl(ctx, cluster.SampleVirtualIP, "apply", "-f", "-"); err != nil {
		return err
	}
	d.step("status and the members as the agents write them, from now on as they change (times are this machine's clock)")
	d.stopWatch = d.watchStatus(ctx)
	snap, err := d.waitSettled(ctx, "n1", map[string]string{"n1": "Master", "n2": "Backup", "n3": "Backup"}, true)
	d.res.Start = snap
	if err != nil {
		return err
	}
	d.printf("n1 is MASTER %v after the apply\n", time.Since(applied).Round(time.Millisecond))
	return d.getVIP(ctx)
}

func (d *demo) killHAProxy(ctx context.Context) error {
	master := d.nodeByName(d.res.Start.Master)
	if master == nil {
		return fmt.Errorf("no MASTER to kill HAProxy on (%s)", d.res.Start)
	}
	d.res.KilledOn = master.name
	if err := d.serve(ctx); err != nil {
		return err
	}
	d.step("kill -9 haproxy on the MASTER %s: its process probe fails, %s goes to Fault and hands the address over", master.name, master.name)
	d.printf("client %s: GET http://%s/ every 10 ms, a new connection each, 200 ms timeout\n", d.l.Client().IPv4, web)
	out, err := d.l.MeasureHTTPOutage(ctx, web, func() error {
		d.printf("  %s  kill -9 %d (haproxy on %s)\n", clock(time.Now()), master.hap.HostPid(), master.name)
		master.hap.Kill()
		return nil
	}, lab.HTTPOutageOptions{AwaitNode: "n2", Timeout: settle})
	d.res.Failover = out
	if err != nil {
		return fmt.Errorf("failover: %w (%s)", err, out.Result)
	}
	snap, err := d.waitSettled(ctx, "n2", map[string]string{"n1": "Fault", "n2": "Master", "n3": "Backup"}, true)
	d.res.AfterKill = snap
	if err != nil {
		return err
	}
	d.printf("client: %s\n", outageText(out))
	return d.getVIP(ctx)
}

func (d *demo) restartHAProxy(ctx context.Context) error {
	n := d.nodeByName(d.res.KilledOn)
	d.step("restarting haproxy on %s: its probe recovers, %s (priority 110) preempts and takes the address back", n.name, n.name)
	out, err := d.l.MeasureHTTPOutage(ctx, web, func() error {
		d.printf("  %s  haproxy started on %s\n", clock(time.Now()), n.name)
		h, err := n.pidns.ExecHAProxy(vip.Addr())
		n.hap = h
		return err
	}, lab.HTTPOutageOptions{AwaitNode: n.name, Timeout: settle})
	d.res.Handback = out
	if err != nil {
		return fmt.Errorf("handback: %w (%s)", err, out.Result)
	}
	snap, err := d.waitSettled(ctx, n.name, map[string]string{"n1": "Master", "n2": "Backup", "n3": "Backup"}, true)
	d.res.AfterRestart = snap
	if err != nil {
		return err
	}
	d.stopWatch()
	d.printf("client: %s\n", outageText(out))
	if err := d.getVIP(ctx); err != nil {
		return err
	}
	return d.serve(ctx)
}

// readAgentLogs reads every agent pod's log with kubectl logs (the API server asks the
// node's kubelet) and checks that neither the API server (forbidden, 403) nor the kernel
// (EPERM, permission denied) refused the agents anything: the chart's RBAC, status policy and
// capabilities are all they need.
func (d *demo) readAgentLogs(ctx context.Context) error {
	d.printf("\n")
	for _, n := range d.nodes {
		pod := d.res.Pods[n.name]
		if pod == "" {
			return fmt.Errorf("no agent pod on %s", n.name)
		}
		args := []string{"logs", "-n", releaseNamespace, pod, "-c", "agent"}
		log, err := d.cp.Kubectl(ctx, "", args...)
		lines := strings.Count(log, "\n")
		d.printf("$ kubectl %s    (%s: %d lines)\n", strings.Join(args, " "), n.name, lines)
		if err != nil {
			return fmt.Errorf("kubectl logs of %s's agent: %w", n.name, err)
		}
		d.res.AgentLogs[n.name] = log
	}
	lines, refused := Refusals(d.res.AgentLogs)
	if len(refused) > 0 {
		for _, r := range refused[:min(len(refused), 10)] {
			d.printf("REFUSED %.400s\n", r)
		}
		return fmt.Errorf("the agents were refused %d times (forbidden, 403, EPERM or permission denied in their logs)", len(refused))
	}
	d.printf("the agents' logs (%d lines): no request refused by the API server (forbidden, 403),\n"+
		"no operation refused by the kernel (EPERM, permission denied)\n", lines)
	return nil
}

// uninstall removes the release as a user would, and checks that the agents are gone and took
// the address with them (SIGTERM: a priority-0 advert, then the address goes).
func (d *demo) uninstall(ctx context.Context) error {
	d.step("helm uninstall: the DaemonSet goes, each agent gets SIGTERM and releases the address")
	t0 := time.Now()
	if _, err := d.helm(ctx, "uninstall", releaseName, "-n", releaseNamespace, "--wait"); err != nil {
		return err
	}
	var holders []*lab.Node
	err := poll(ctx, podsTimeout, func() error {
		pods, err := d.agentPods(ctx)
		if err != nil {
			return err
		}
		if len(pods) > 0 {
			return fmt.Errorf("%d agent pods left", len(pods))
		}
		if holders = lab.Holders(d.l.Nodes(), vip); len(holders) > 0 {
			return fmt.Errorf("%v still hold %s", holders, vip.Addr())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("after helm uninstall: %w", err)
	}
	d.res.Uninstalled = true
	d.printf("no agent pod left, no node holds %s\n", vip.Addr())
	d.timing("helm uninstall", t0)
	return nil
}

// keep leaves the cluster to the user until the context ends (Ctrl-C).
func (d *demo) keep(ctx context.Context) error {
	kubectl, err := d.cp.ClientCommand("kubectl")
	if err != nil {
		return err
	}
	helm, err := d.cp.ClientCommand("helm")
	if err != nil {
		return err
	}
	d.res.Kept = true
	d.step("the cluster stays up (--keep): try your own VirtualIPs and faults from another shell; Ctrl-C here (or\n" +
		"    closing this terminal) removes everything")
	d.printf("  alias kubectl='%s'\n", kubectl)
	d.printf("  alias helm='%s'\n", helm)
	d.printf("  kubectl get vip -w          kubectl get pods -n %s -o wide          kubectl get vip %s -o yaml\n", releaseNamespace, vipName)
	d.printf("  the client:   ip netns exec %s curl -s http://%s/\n", d.l.Client().NetNS, web)
	d.printf("  HAProxy, a process of each node's PID namespace (kill -9 PID to fail the node's probe; the start command brings it back):\n")
	for _, n := range d.nodes {
		d.printf("    %s: pid %d; start: nsenter -t %d -n -m -p -- haproxy -D -f %s\n", n.name, n.hap.HostPid(), n.kube.HolderPid(), n.hap.Config)
	}
	d.printf("  a node's link: ip -n %s link set %s down (and up)\n", d.l.Switch, d.l.Node(1).Port)
	d.printf("  an agent's log:  kubectl logs -n %s %s -f    (every agent's: kubectl logs -n %s -l %s=kube-vrrp --prefix -f)\n",
		releaseNamespace, d.res.Pods["n1"], releaseNamespace, agentLabel)
	d.mu.Lock()
	d.keeping = true
	d.mu.Unlock()
	<-ctx.Done()
	return nil
}

// kubectl runs the real kubectl in the lab and prints the command and what it printed.
func (d *demo) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	d.printf("\n$ kubectl %s\n", strings.Join(args, " "))
	out, err := d.cp.Kubectl(ctx, stdin, args...)
	d.printf("%s", out)
	return out, err
}

// helm runs the real helm in the lab and prints the command (the chart as the repository's
// relative path) and what it printed.
func (d *demo) helm(ctx context.Context, args ...string) (string, error) {
	shown := slices.Clone(args)
	for i, a := range shown {
		if a == d.chart {
			shown[i] = "charts/kube-vrrp"
		}
	}
	d.printf("\n$ helm %s\n", strings.Join(shown, " "))
	out, err := d.cp.Helm(ctx, args...)
	d.printf("%s", out)
	return out, err
}

// getVIP prints `kubectl get vip`.
func (d *demo) getVIP(ctx context.Context) error {
	_, err := d.kubectl(ctx, "", "get", "vip")
	return err
}

// outageText says what the client saw: "HTTP outage 21ms: 1 of 132 requests failed, n1 -> n2
// (served by n1×31 n2×101)".
func outageText(o lab.HTTPOutage) string {
	total := len(o.Result.Requests)
	s := fmt.Sprintf("HTTP outage %v: %d of %d requests failed", o.Duration.Round(time.Millisecond), o.Failed, total)
	if o.Failed == 0 {
		s = fmt.Sprintf("no HTTP outage: none of %d requests failed", total)
	}
	return fmt.Sprintf("%s, %s -> %s (served by %s)", s, o.Before, o.After, o.Result.Runs())
}

// serve prints which node answers the client's GET of the VIP.
func (d *demo) serve(ctx context.Context) error {
	var body string
	err := poll(ctx, settle, func() error {
		var err error
		body, err = d.l.HTTPGet(web, time.Second)
		return err
	})
	if err != nil {
		return fmt.Errorf("GET http://%s/ from the client: %w", web, err)
	}
	d.printf("\nclient$ curl http://%s/\n%s\n", web, body)
	return nil
}

func (d *demo) nodeByName(name string) *node {
	for _, n := range d.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// snapshot reads the VirtualIP and who holds the address now.
func (d *demo) snapshot(ctx context.Context) (Snapshot, *v1alpha1.VirtualIP, []v1alpha1.NodeStatus, error) {
	v := &v1alpha1.VirtualIP{}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.k8s.Get(rctx, types.NamespacedName{Name: vipName}, v); err != nil {
		return Snapshot{}, nil, nil, err
	}
	s := Snapshot{Master: v.Status.Master, States: map[string]string{}}
	for _, c := range v.Status.Conditions {
		if c.Type == "Ready" {
			s.Ready = string(c.Status)
		}
	}
	nodes, err := d.members(ctx, vipName)
	if err != nil {
		return Snapshot{}, nil, nil, err
	}
	for _, n := range nodes {
		s.States[n.Name] = n.State
		if n.State == "Master" {
			s.Masters = append(s.Masters, n.Name)
		}
	}
	for _, h := range lab.Holders(d.l.Nodes(), vip) {
		s.Holders = append(s.Holders, h.Name)
	}
	return s, v, nodes, nil
}

// members returns the reports of the VirtualIP name's members (its VirtualIPMembers), sorted
// by node.
func (d *demo) members(ctx context.Context, name string) ([]v1alpha1.NodeStatus, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var list v1alpha1.VirtualIPMemberList
	if err := d.k8s.List(rctx, &list, client.MatchingFields{"spec.virtualIP": name}); err != nil {
		return nil, err
	}
	out := make([]v1alpha1.NodeStatus, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, list.Items[i].Entry())
	}
	slices.SortFunc(out, func(a, b v1alpha1.NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// waitSettled waits until status.master is master, every node's state is the wanted one,
// Ready is True (if ready), and master alone has held the address for 300 ms.
func (d *demo) waitSettled(ctx context.Context, master string, states map[string]string, ready bool) (Snapshot, error) {
	var last Snapshot
	var soleSince time.Time
	err := poll(ctx, settle, func() error {
		s, _, _, err := d.snapshot(ctx)
		if err != nil {
			return err
		}
		last = s
		if len(s.Holders) != 1 || s.Holders[0] != master {
			soleSince = time.Time{}
			return fmt.Errorf("holders %v", s.Holders)
		}
		if soleSince.IsZero() {
			soleSince = time.Now()
		}
		if s.Master != master {
			return fmt.Errorf("status.master %q", s.Master)
		}
		for n, st := range states {
			if s.States[n] != st {
				return fmt.Errorf("%s is %q, want %s", n, s.States[n], st)
			}
		}
		if ready && s.Ready != "True" {
			return fmt.Errorf("Ready %q", s.Ready)
		}
		if time.Since(soleSince) < 300*time.Millisecond {
			return errors.New("not settled")
		}
		return nil
	})
	if err != nil {
		return last, fmt.Errorf("waiting for %s MASTER: %w (%s)", master, err, last)
	}
	return last, nil
}

// poll calls f every 50 ms until it succeeds, ctx ends or timeout passes, and returns its last
// error.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// timing records (and prints) how long the phase since t0 took.
func (d *demo) timing(phase string, t0 time.Time) {
	t := Timing{Phase: phase, Duration: time.Since(t0)}
	d.res.Timings = append(d.res.Timings, t)
	d.printf("[%s: %v]\n", phase, roundDur(t.Duration))
}

// roundDur rounds a phase's duration for printing: to 10 ms under a second, else to 100 ms.
func roundDur(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func (d *demo) printTimings() {
	d.printf("\ntimings:")
	for _, t := range d.res.Timings {
		d.printf("  %s %v", t.Phase, roundDur(t.Duration))
	}
	d.printf("\n")
}

func nsNames(ns []*lab.Node) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.NetNS)
	}
	return s
}

func (d *demo) step(format string, args ...any) {
	d.printf("\n==> "+format+"\n", args...)
}

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.out, format, args...)
}

// syncWriter serialises the writes of the status watcher and the steps.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }
