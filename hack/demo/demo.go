package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/chart"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

const (
	// releaseName and releaseNamespace are `helm install kube-vrrp charts/kube-vrrp -n kube-vrrp`.
	releaseName      = "kube-vrrp"
	releaseNamespace = "kube-vrrp"
	// vipName is the VirtualIP's name (config/samples/haproxy-pair.yaml's).
	vipName = "haproxy"
	// lbLabel is the label of the nodes that may hold the address, the sample's nodeSelector.
	lbLabel = "node-role.kubernetes.io/lb"
	// settle bounds "happens at all" waits: far above any VRRP or probe timer, so that a
	// loaded machine does not fail a demo that behaves correctly.
	settle = 30 * time.Second
)

var (
	// vip is the virtual address, on the lab LAN (198.18.0.0/24), not the client's .250.
	vip = netip.MustParsePrefix("198.18.0.100/24")
	// web is HAProxy's frontend on the VIP.
	web = netip.AddrPortFrom(vip.Addr(), 80)
)

// virtualIP is config/samples/haproxy-pair.yaml adapted to the lab: the lab's subnet, three
// nodes with explicit priorities, and the process probe that moves the address when HAProxy
// dies (weight 0: the node goes to Fault while HAProxy is not running).
const virtualIP = `# config/samples/haproxy-pair.yaml, adapted to the lab
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: haproxy
spec:
  vrid: 51
  addresses: ["198.18.0.100/24"]
  advertisementInterval: 100ms
  priority: 100
  nodes:
  - name: n1
    priority: 110
  - name: n2
    priority: 100
  - name: n3
    priority: 90
  nodeSelector:
    matchLabels:
      node-role.kubernetes.io/lb: ""
  probes:
  - name: haproxy
    process: {name: haproxy}
    weight: 0
`

// Options configure Run.
type Options struct {
	// Bin is the kube-vrrp binary (make build's bin/kube-vrrp).
	Bin string
	// Out receives the demo's output.
	Out io.Writer
	// HandleSignals makes SIGINT and SIGTERM stop the demo and remove everything before Run
	// returns an interrupted error (the command; a test leaves signals alone).
	HandleSignals bool
	// Nice is the niceness of the agents, the control plane and this process (0: unchanged):
	// a speaker stalled by a busy machine for longer than Master_Down_Interval legitimately
	// loses its role, which is not what the demo is about.
	Nice int
}

// Snapshot is the VirtualIP's status and the data plane at one moment.
type Snapshot struct {
	// Master is status.master; Ready the Ready condition's status.
	Master, Ready string
	// States are status.nodes[].state by node; Masters the nodes whose state is Master.
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

// Creds are an agent process's credentials as the kernel reports them (/proc/PID/status).
type Creds = filecaps.Creds

// Result is what the demo saw; Run fills what it got to, also on failure.
type Result struct {
	// Prefix starts the names of the lab's network namespaces.
	Prefix string
	// NetnsInodes identify the lab's network namespaces: a process still inside one after
	// the demo is a leftover.
	NetnsInodes []uint64
	// Dirs are the temporary directories the demo and its control plane made.
	Dirs []string
	// AgentLogs are the agents' logs by node, read before cleanup.
	AgentLogs map[string]string
	// AgentCreds are the agents' credentials by node.
	AgentCreds map[string]Creds
	// Start is after the VirtualIP was applied and settled; AfterKill after HAProxy was
	// killed on the MASTER; AfterRestart after it was started again.
	Start, AfterKill, AfterRestart Snapshot
	// KilledOn is the node whose HAProxy was killed (the MASTER).
	KilledOn string
	// Failover is what the client's HTTP requests saw of the kill; Handback of the restart.
	Failover, Handback lab.HTTPOutage
	// Leftovers are what cleanup left behind (namespaces, processes, directories).
	Leftovers []string
}

// node is one lab node: its own PID namespace (a real host's process table: the process
// probe on n1 must not see n2's HAProxy), HAProxy and the agent.
type node struct {
	*lab.Node
	pidns *lab.PIDNamespace
	hap   *lab.HAProxy
	agent *lab.NSProc
}

type demo struct {
	o     Options
	out   *syncWriter
	res   *Result
	l     *lab.Lab
	cp    *cluster.ControlPlane
	k8s   client.Client
	nodes []*node
	pod   *podSpec
	dir   string // the agent's "image" (binary with file capabilities) and kubeconfig
	// stopWatch stops the status watcher (once it runs).
	stopWatch func()
}

// Run runs the demo and removes everything it made before it returns.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	d := &demo{o: o, out: &syncWriter{w: o.Out}, stopWatch: func() {}, res: &Result{AgentLogs: map[string]string{}, AgentCreds: map[string]Creds{}}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sig syscall.Signal
	var sigMu sync.Mutex
	defer func() {
		if d.l == nil {
			return // nothing was made
		}
		d.step("cleaning up: agents (they hand the address over), HAProxy, kube-apiserver and etcd, the lab")
		if cerr := d.cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
		if len(d.res.AgentLogs) > 0 {
			lines, refused := Refusals(d.res.AgentLogs)
			if len(refused) == 0 {
				d.printf("the agents' logs (%d lines): no request refused by the API server (forbidden, 403), no operation refused by the kernel (EPERM, permission denied)\n", lines)
			} else {
				for _, r := range refused[:min(len(refused), 10)] {
					d.printf("REFUSED %.400s\n", r)
				}
				err = errors.Join(err, fmt.Errorf("the agents were refused %d times (forbidden, 403, EPERM or permission denied in their logs)", len(refused)))
			}
		}
		if len(d.res.Leftovers) == 0 {
			d.printf("nothing left behind: no namespace %s-*, no process in the lab's namespaces, no temporary directory\n", d.res.Prefix)
		} else {
			err = errors.Join(err, fmt.Errorf("left behind: %s", strings.Join(d.res.Leftovers, "; ")))
		}
		sigMu.Lock()
		defer sigMu.Unlock()
		if sig != 0 {
			err = interrupted{sig}
		}
	}()
	if err := d.preflight(ctx); err != nil {
		return d.res, err
	}
	if o.Nice != 0 {
		if err := lab.Renice(o.Nice); err != nil {
			return d.res, err
		}
	}

	d.step("building the lab: nodes n1, n2, n3 and a client (198.18.0.250) on one bridge, in network namespaces")
	l, _, err := lab.Open(lab.Options{Nodes: 3})
	if err != nil {
		return d.res, err
	}
	d.l = l
	d.res.Prefix = l.Prefix
	if o.HandleSignals {
		// lab.Open's own handler would remove the lab and exit at once; the demo stops in
		// order instead: agents while the API server still answers, then the control plane,
		// then the lab.
		signal.Reset(syscall.SIGINT, syscall.SIGTERM)
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(ch)
		go func() {
			select {
			case s := <-ch:
				sigMu.Lock()
				sig = s.(syscall.Signal)
				sigMu.Unlock()
				fmt.Fprintf(os.Stderr, "\n%v: stopping the demo and removing everything\n", s)
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	for _, ns := range append([]string{l.Switch}, nsNames(append(l.Nodes(), l.Client()))...) {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", ns), &st); err != nil {
			return d.res, err
		}
		d.res.NetnsInodes = append(d.res.NetnsInodes, st.Ino)
	}
	for _, n := range l.Nodes() {
		d.nodes = append(d.nodes, &node{Node: n})
		d.printf("%-6s %-13s network namespace %s\n", n.Name, n.IPv4, n.NetNS)
	}
	d.printf("%-6s %-13s network namespace %s\n", "client", l.Client().IPv4, l.Client().NetNS)

	steps := []func(context.Context) error{
		d.startControlPlane, d.installChart, d.registerNodes, d.startHAProxy, d.startAgents,
		d.applyVirtualIP, d.killHAProxy, d.restartHAProxy,
	}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return d.res, err
		}
		if ctx.Err() != nil {
			return d.res, ctx.Err()
		}
	}
	d.step("done: %s", d.summary())
	return d.res, nil
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

// preflight checks what the demo needs before it creates anything, and renders the chart.
func (d *demo) preflight(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root (network namespaces, file capabilities)")
	}
	if d.o.Bin == "" {
		return errors.New("no kube-vrrp binary (--bin)")
	}
	bin, err := filepath.Abs(d.o.Bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: build it first (make build): %w", bin, err)
	}
	d.o.Bin = bin
	if _, err := envtestassets.Dir(); err != nil {
		return fmt.Errorf("%w (make envtest-assets builds them)", err)
	}
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		return err
	}
	rel, err := chart.Render(ctx, filepath.Join(root, "charts", "kube-vrrp"), chart.Options{ReleaseName: releaseName, Namespace: releaseNamespace})
	if err != nil {
		return err
	}
	d.pod, err = podFromRelease(rel)
	return err
}

func (d *demo) startControlPlane(ctx context.Context) error {
	d.step("starting etcd and kube-apiserver in the client's namespace (certificates generated for this run)")
	cp, err := cluster.Start(ctx, d.l, cluster.Options{Nice: d.o.Nice, Logf: func(f string, a ...any) { d.printf("  "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	d.cp = cp
	d.res.Dirs = append(d.res.Dirs, cp.Dir())
	d.k8s = cp.Client()
	return nil
}

// installChart applies what `helm install kube-vrrp charts/kube-vrrp -n kube-vrrp
// --create-namespace` would create: the chart rendered with its default values.
func (d *demo) installChart(ctx context.Context) error {
	d.step("helm install %s charts/kube-vrrp -n %s (rendered with Helm's Go packages, default values, applied server-side)", releaseName, releaseNamespace)
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": releaseNamespace, "labels": map[string]any{
			// host network and NET_ADMIN (README: Install on a cluster with Helm)
			"pod-security.kubernetes.io/enforce": "privileged",
		}},
	}}
	objs := append([]*unstructured.Unstructured{ns}, d.pod.release.Objects...)
	// CRDs first (Helm's order), and served before anything else.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return boolInt(b.GetKind() == "CustomResourceDefinition") - boolInt(a.GetKind() == "CustomResourceDefinition")
	})
	for _, u := range objs {
		if err := d.apply(ctx, u); err != nil {
			return err
		}
		if u.GetKind() == "CustomResourceDefinition" {
			if err := poll(ctx, settle, func() error { return d.k8s.List(ctx, &v1alpha1.VirtualIPList{}) }); err != nil {
				return fmt.Errorf("VirtualIPs not served after the CRD was applied: %w", err)
			}
		}
	}
	d.printf("the API server accepted the DaemonSet, but this lab has no kubelet to run its pods:\n" +
		"the demo runs the DaemonSet's pod command on each node by hand, as the pod would run it\n")
	return nil
}

func (d *demo) apply(ctx context.Context, u *unstructured.Unstructured) error {
	if u.GetNamespace() == "" {
		if namespaced, err := d.k8s.IsObjectNamespaced(u); err == nil && namespaced {
			u.SetNamespace(releaseNamespace)
		}
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	if _, err := d.cp.Apply(ctx, b); err != nil {
		return err
	}
	gvk := u.GroupVersionKind()
	kind := strings.ToLower(gvk.Kind)
	if gvk.Group != "" {
		kind += "." + gvk.Group
	}
	d.printf("%s/%s serverside-applied\n", kind, u.GetName())
	return nil
}

func (d *demo) registerNodes(ctx context.Context) error {
	d.step("registering n1, n2, n3 as Node objects (labelled %s, the sample VirtualIP's nodeSelector)", lbLabel)
	return d.cp.RegisterNodes(ctx, d.l.Nodes(), map[string]string{lbLabel: ""})
}

func (d *demo) startHAProxy(context.Context) error {
	d.step("starting HAProxy on every node, serving HTTP on %s (each node has its own PID namespace, as a host has)", web)
	for _, n := range d.nodes {
		ns, err := n.NewPIDNamespace()
		if err != nil {
			return err
		}
		n.pidns = ns
		if n.hap, err = ns.ExecHAProxy(vip.Addr()); err != nil {
			return err
		}
		d.printf("%s: haproxy pid %d\n", n.Name, n.hap.HostPid())
	}
	return nil
}

func (d *demo) applyVirtualIP(ctx context.Context) error {
	d.step("kubectl apply -f haproxy.yaml")
	d.printf("%s", indent(virtualIP))
	applied := time.Now()
	if _, err := d.cp.Apply(ctx, []byte(virtualIP)); err != nil {
		return err
	}
	d.printf("virtualip.kubevrrp.io/%s serverside-applied\n", vipName)
	d.step("status.nodes as the agents write it, from now on as it changes (times are this machine's clock)")
	d.stopWatch = d.watchStatus(ctx)
	snap, err := d.waitSettled(ctx, "n1", map[string]string{"n1": "Master", "n2": "Backup", "n3": "Backup"}, true)
	if err != nil {
		return err
	}
	d.res.Start = snap
	d.printf("n1 is MASTER %v after the apply\n", time.Since(applied).Round(time.Millisecond))
	return d.getVIP(ctx)
}

func (d *demo) killHAProxy(ctx context.Context) error {
	master := d.nodeByName(d.res.Start.Master)
	if master == nil {
		return fmt.Errorf("no MASTER to kill HAProxy on (%s)", d.res.Start)
	}
	d.res.KilledOn = master.Name
	if err := d.serve(ctx); err != nil {
		return err
	}
	d.step("kill -9 haproxy on the MASTER %s: its process probe fails, %s goes to Fault and hands the address over", master.Name, master.Name)
	d.printf("client %s: GET http://%s/ every 10 ms, a new connection each, 200 ms timeout\n", d.l.Client().IPv4, web)
	out, err := d.l.MeasureHTTPOutage(ctx, web, func() error {
		d.printf("  %s  kill -9 %d (haproxy on %s)\n", clock(time.Now()), master.hap.HostPid(), master.Name)
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
	d.step("restarting haproxy on %s: its probe recovers, %s (priority 110) preempts and takes the address back", n.Name, n.Name)
	out, err := d.l.MeasureHTTPOutage(ctx, web, func() error {
		d.printf("  %s  haproxy started on %s\n", clock(time.Now()), n.Name)
		h, err := n.pidns.ExecHAProxy(vip.Addr())
		n.hap = h
		return err
	}, lab.HTTPOutageOptions{AwaitNode: n.Name, Timeout: settle})
	d.res.Handback = out
	if err != nil {
		return fmt.Errorf("handback: %w (%s)", err, out.Result)
	}
	snap, err := d.waitSettled(ctx, n.Name, map[string]string{"n1": "Master", "n2": "Backup", "n3": "Backup"}, true)
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
	d.printf("client$ curl http://%s/\n%s\n", web, body)
	return nil
}

func (d *demo) nodeByName(name string) *node {
	for _, n := range d.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// snapshot reads the VirtualIP and who holds the address now.
func (d *demo) snapshot(ctx context.Context) (Snapshot, *v1alpha1.VirtualIP, error) {
	v := &v1alpha1.VirtualIP{}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.k8s.Get(rctx, types.NamespacedName{Name: vipName}, v); err != nil {
		return Snapshot{}, nil, err
	}
	s := Snapshot{Master: v.Status.Master, States: map[string]string{}}
	for _, c := range v.Status.Conditions {
		if c.Type == "Ready" {
			s.Ready = string(c.Status)
		}
	}
	for _, n := range v.Status.Nodes {
		s.States[n.Name] = n.State
		if n.State == "Master" {
			s.Masters = append(s.Masters, n.Name)
		}
	}
	for _, h := range lab.Holders(d.l.Nodes(), vip) {
		s.Holders = append(s.Holders, h.Name)
	}
	return s, v, nil
}

// waitSettled waits until status.master is master, every node's state is the wanted one,
// Ready is True (if ready), and master alone has held the address for 300 ms.
func (d *demo) waitSettled(ctx context.Context, master string, states map[string]string, ready bool) (Snapshot, error) {
	var last Snapshot
	var soleSince time.Time
	err := poll(ctx, settle, func() error {
		s, _, err := d.snapshot(ctx)
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

// cleanup stops everything in order and checks that nothing is left.
func (d *demo) cleanup() error {
	d.stopWatch()
	var errs []error
	var wg sync.WaitGroup
	for _, n := range d.nodes {
		if n.agent != nil {
			d.res.AgentLogs[n.Name] = n.agent.Log()
			wg.Go(func() { _ = n.agent.Stop() }) // SIGTERM: a priority-0 advert, then the address goes
		}
	}
	wg.Wait()
	for _, n := range d.nodes {
		if n.agent != nil {
			d.res.AgentLogs[n.Name] = n.agent.Log() // with the shutdown
		}
		if n.pidns != nil {
			n.pidns.Close()
		}
	}
	if d.cp != nil {
		if err := d.cp.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.l != nil {
		if err := d.l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.dir != "" {
		if err := os.RemoveAll(d.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if d.l != nil {
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

// Leftovers returns what of r's lab, control plane and directories still exists: network
// namespaces named with its prefix, processes in its network namespaces, directories.
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
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		if link, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns", "net")); err == nil && want[link] {
			comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
			out = append(out, fmt.Sprintf("process %s (%s) in %s", p.Name(), strings.TrimSpace(string(comm)), link))
		}
	}
	for _, dir := range r.Dirs {
		if _, err := os.Stat(dir); err == nil {
			out = append(out, "directory "+dir)
		}
	}
	return out
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

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
