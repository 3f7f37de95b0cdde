package e2e

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevrrpv1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// upVIP is one VirtualIP of the upgrade and the node that masters it (its highest priority).
type upVIP struct {
	name, master string
	vip          netip.Prefix
}

// upVIPs are the upgrade's VirtualIPs: the sample (n1) and two more, each mastered by another
// node, so that the rolling update replaces the MASTER of a VIP at every step.
var upVIPs = []upVIP{
	{"haproxy", "n1", cluster.SampleVIP},
	{"web-n2", "n2", netip.MustParsePrefix("198.18.0.101/24")},
	{"web-n3", "n3", netip.MustParsePrefix("198.18.0.102/24")},
}

// upExtraVirtualIPs are upVIPs beyond the sample, as the sample is written (100 ms adverts,
// the HAProxy process probe, the load-balancer nodes), with n2 and n3 first.
const upExtraVirtualIPs = `apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: web-n2
spec:
  vrid: 52
  addresses: ["198.18.0.101/24"]
  advertisementInterval: 100ms
  priority: 100
  nodes:
  - {name: n2, priority: 110}
  - {name: n3, priority: 100}
  - {name: n1, priority: 90}
  nodeSelector:
    matchLabels:
      node-role.kubernetes.io/lb: ""
  probes:
  - name: haproxy
    process: {name: haproxy}
    weight: 0
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: web-n3
spec:
  vrid: 53
  addresses: ["198.18.0.102/24"]
  advertisementInterval: 100ms
  priority: 100
  nodes:
  - {name: n3, priority: 110}
  - {name: n1, priority: 100}
  - {name: n2, priority: 90}
  nodeSelector:
    matchLabels:
      node-role.kubernetes.io/lb: ""
  probes:
  - name: haproxy
    process: {name: haproxy}
    weight: 0
`

const (
	// upConns is the number of long-lived connections through each VIP, each sending a
	// request every upConnPeriod.
	upConns      = 15
	upConnPeriod = 100 * time.Millisecond
	// upHTTPTimeout bounds a new request through a VIP, connect to end of body: a SYN lost
	// to a VIP nobody serves is retransmitted after 1 s, so a request that needed it fails,
	// while a client that only stalled a few hundred ms on the loaded machine does not.
	upHTTPTimeout = time.Second
	// upHandoffBound is the release's handoff.timeout (e2eHandoffTimeout): the longest a backup
	// waits for a replaced MASTER's successor before it takes over (docs/design.md §4.9.1).
	// The loads run that long (+1 s) after the rollout, so that a successor that failed to
	// resume would show as a move.
	upHandoffBound = 15 * time.Second
	// upDefaultBound is the chart's default handoff.timeout, which the figures compare with.
	upDefaultBound = 10 * time.Second
	// upTopBackup is the highest priority of a backup of the upgrade's VIPs.
	upTopBackup = 100
	// upStall is a gap between two new requests (due every 10 ms) that the timeline shows:
	// the client itself did not run.
	upStall = 50 * time.Millisecond
	// upReadyPort is where the extra HAProxy answers on the node's own address (readiness).
	upReadyPort = 8081
)

// testUpgrade upgrades the release from the v1 image to v2 with helm, as a user would, with
// three VirtualIPs mastered by n1, n2 and n3 (hitless upgrades, docs/design.md §4.9.1: a rolling update moves nothing).
// Through each VIP a client keeps upConns long-lived connections sending a request every
// 100 ms and opens a new connection for a request every 10 ms, while the VIPs' holders are
// sampled every 5 ms. The rolling update completes (three new pods running v2); no VIP ever
// leaves its MASTER (no move, never a second holder or none, and no VIP deleted from its
// MASTER's link, which a sample could miss: `ip monitor` in every node), no long-lived
// connection breaks, no new request fails, and the statuses name the same MASTERs. The
// agents' handoffs and resumptions, the pods' lifecycle and the address events are logged as
// one timeline.
func testUpgrade(t *testing.T, e *env) {
	nodes := e.labNodes()
	e.applyVirtualIP(t)
	if out, err := e.cp.Kubectl(e.ctx, upExtraVirtualIPs, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		// Later steps expect the sample alone.
		if out, err := e.cp.Kubectl(context.Background(), "", "delete", "virtualip", "web-n2", "web-n3", "--ignore-not-found"); err != nil {
			t.Errorf("delete the upgrade's VirtualIPs: %v\n%s", err, out)
			return
		}
		// Their members go with them: the garbage collector deletes what they own.
		deadline := time.Now().Add(30 * time.Second)
		for _, name := range []string{"web-n2", "web-n3"} {
			for {
				var list kubevrrpv1alpha1.VirtualIPMemberList
				err := e.admin.List(context.Background(), &list, client.MatchingFields{"spec.virtualIP": name})
				if err == nil && len(list.Items) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("VirtualIP %s deleted, its members left after 30 s: %d (%v)", name, len(list.Items), err)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	})
	// HTTP on the two new VIPs, on every node, beside the HAProxy of the sample's.
	extra := []netip.Addr{upVIPs[1].vip.Addr(), upVIPs[2].vip.Addr()}
	for _, k := range e.nodes {
		h, err := k.PIDNamespace().ExecHAProxyVIPs(extra, upReadyPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop() })
	}
	for _, v := range upVIPs {
		if err := lab.WaitSoleHolder(nodes, v.vip, e.node(v.master).Node, 300*time.Millisecond, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range upVIPs {
		e.lcWaitStatus(t, v.name, v.master, upWantStates(v.master), 30*time.Second)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The v1 pods: their UIDs and the image ID their agent containers run.
	old := e.agentPods(t)
	if len(old) != 3 {
		t.Fatalf("%d agent pods before the upgrade, want 3", len(old))
	}
	oldUIDs := map[string]bool{}
	v1IDs := map[string]bool{}
	for _, p := range old {
		oldUIDs[string(p.UID)] = true
		c, cs := lcAgentContainer(p)
		if c == nil || cs == nil || cs.ImageID == "" {
			t.Fatalf("pod %s: no agent container status with an image ID", p.Name)
		}
		if c.Image != imageRepo+":v1" {
			t.Fatalf("pod %s runs %s before the upgrade, want %s:v1", p.Name, c.Image, imageRepo)
		}
		v1IDs[cs.ImageID] = true
	}

	// The evidence: address events in every node, the pods and the agents' logs.
	mons := map[string]*lab.Proc{}
	for _, k := range e.nodes {
		p, err := k.Node.Exec(e.ctx, "ip-monitor", "ip", "-ts", "monitor", "address")
		if err != nil {
			t.Fatal(err)
		}
		mons[k.Node.Name] = p
		defer func() { _ = p.Stop() }()
	}
	watch := e.upStartPodWatch()
	defer watch.stop()

	// The clients.
	loads := make([]*lab.HTTPLoad, len(upVIPs))
	conns := make([]*lab.LongConns, len(upVIPs))
	for i, v := range upVIPs {
		target := netip.AddrPortFrom(v.vip.Addr(), 80)
		c, err := e.lab.StartLongConns(target, lab.LongConnsOptions{Conns: upConns, Period: upConnPeriod})
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		defer c.Stop()
		loads[i] = e.lab.StartHTTPLoad(target, lab.HTTPLoadOptions{Timeout: upHTTPTimeout, MaxDuration: 10 * time.Minute})
		defer loads[i].Stop()
	}
	for i, v := range upVIPs {
		if _, err := loads[i].WaitServed(v.master, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var ps []netip.Prefix
	for _, v := range upVIPs {
		ps = append(ps, v.vip)
	}
	sampler := lcStartVIPSampler(nodes, ps...)
	defer sampler.stop()

	t0 := time.Now()
	out, err := e.cp.Helm(e.ctx, "upgrade", release, e.chart, "--namespace", namespace,
		"--set", "image.tag=v2", "--set", "image.pullPolicy=Never", "--set", "handoff.timeout="+e2eHandoffTimeout,
		"--wait", "--timeout", "3m")
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, e.describePods())
	}
	helmTook := time.Since(t0)

	// The rolling update completes: helm's --wait may return with maxUnavailable pods still
	// starting.
	pods := e.lcWaitRolledOut(t, oldUIDs, 2*time.Minute)
	rolled := time.Since(t0)
	for _, p := range pods {
		c, cs := lcAgentContainer(p)
		switch {
		case c.Image != imageRepo+":v2":
			t.Errorf("pod %s on %s: image %s, want %s:v2", p.Name, p.Spec.NodeName, c.Image, imageRepo)
		case cs.ImageID == "" || v1IDs[cs.ImageID]:
			t.Errorf("pod %s on %s: image ID %q, v1's was %v: not the v2 build", p.Name, p.Spec.NodeName, cs.ImageID, v1IDs)
		case cs.State.Running == nil || cs.State.Running.StartedAt.Time.Before(t0.Truncate(time.Second)):
			t.Errorf("pod %s on %s: agent container not started since the upgrade: %+v", p.Name, p.Spec.NodeName, cs.State)
		case cs.RestartCount != 0:
			t.Errorf("pod %s on %s: agent restarted %d times", p.Name, p.Spec.NodeName, cs.RestartCount)
		}
		// The new container runs the v2 binary: its first log lines say so.
		if err := e.lcWaitLog(p, "agent", `"version":"e2e-v2"`, 10*time.Second); err != nil {
			t.Error(err)
		}
	}
	t.Logf("timing: helm upgrade --wait %v; rolled out (3 new pods, v2, Ready) %v after it started",
		helmTook.Round(time.Millisecond), rolled.Round(time.Millisecond))

	// Past the longest a backup could wait for the last node's successor: a successor that
	// did not resume would have been replaced by a backup by then.
	time.Sleep(upHandoffBound + time.Second)
	for _, v := range upVIPs {
		e.lcWaitStatus(t, v.name, v.master, upWantStates(v.master), 30*time.Second)
	}
	tls := sampler.stopAll()
	watch.stop()
	for _, p := range mons {
		_ = p.Stop()
	}

	// What it cost, per VIP.
	failedNew, broken := 0, 0
	var tlEvents []upEvent
	for i, v := range upVIPs {
		tl := tls[i]
		res := loads[i].Stop()
		cr := conns[i].Stop()
		dual := tl.longest(func(n int) bool { return n >= 2 })
		none := tl.longest(func(n int) bool { return n == 0 })
		t.Logf("figure: helm upgrade v1 -> v2, VIP %s (%s, MASTER %s): moves %d, longest with two holders %v, with none %v (holders sampled every %v: %s)",
			v.vip.Addr(), v.name, v.master, tl.moves(), dual.Round(time.Millisecond), none.Round(time.Millisecond), lcSampleEvery, tl)
		t.Logf("figure: helm upgrade v1 -> v2, VIP %s: new connections (a request every 10 ms, %v timeout): %d of %d failed, longest outage %v, client's longest send gap %v; %s",
			v.vip.Addr(), upHTTPTimeout, res.Failed(), len(res.Requests), upLongest(res).Round(time.Millisecond),
			res.MaxSendGap().Round(time.Millisecond), res.Runs())
		t.Logf("figure: helm upgrade v1 -> v2, VIP %s: %s", v.vip.Addr(), cr)
		if hs := tl.handovers(); len(hs) > 0 || tl.moves() != 0 {
			t.Errorf("VIP %s (%s) left its MASTER %s during the upgrade: %d moves, %d times not held by %s alone: %s",
				v.vip.Addr(), v.name, v.master, tl.moves(), len(hs), v.master, tl)
		}
		if last := tl.last(); len(last) != 1 || last[0] != v.master {
			t.Errorf("VIP %s: holders at the end %v, want %s", v.vip.Addr(), last, v.master)
		}
		if n := res.Failed(); n > 0 {
			failedNew += n
			t.Errorf("VIP %s: %d of %d new requests failed: %v", v.vip.Addr(), n, len(res.Requests), res.Errors())
		}
		for _, q := range res.Requests {
			if !q.OK {
				tlEvents = append(tlEvents, upEvent{q.Start, fmt.Sprintf("client: new request to %s failed after %v: %s",
					v.vip.Addr(), q.End.Sub(q.Start).Round(time.Millisecond), q.Err)})
			}
		}
		for i := 1; i < len(res.Requests); i++ {
			if gap := res.Requests[i].Start.Sub(res.Requests[i-1].Start); gap >= upStall {
				tlEvents = append(tlEvents, upEvent{res.Requests[i-1].Start, fmt.Sprintf("client: no new request to %s sent for %v (the client stalled)",
					v.vip.Addr(), gap.Round(time.Millisecond))})
			}
		}
		if runs := res.Runs(); !strings.HasPrefix(runs, v.master+"×") || strings.Contains(runs, " ") {
			t.Errorf("VIP %s: new requests served by %s, want %s alone", v.vip.Addr(), runs, v.master)
		}
		if len(cr.Broken) > 0 {
			broken += len(cr.Broken)
			t.Errorf("VIP %s: %d of %d long-lived connections broke: %v", v.vip.Addr(), len(cr.Broken), cr.Conns, cr.Broken)
		}
		for _, b := range cr.Broken {
			tlEvents = append(tlEvents, upEvent{b.At, fmt.Sprintf("client: long-lived connection %d to %s broke: %s", b.Conn, v.vip.Addr(), b.Err)})
		}
		if len(cr.Served) != 1 || cr.Served[v.master] == 0 {
			t.Errorf("VIP %s: long-lived connections served by %v, want %s alone", v.vip.Addr(), cr.Served, v.master)
		}
	}
	t.Logf("figure: helm upgrade v1 -> v2 with 3 VIPs mastered by n1, n2, n3: %d failed new requests, %d of %d long-lived connections broken",
		failedNew, broken, len(upVIPs)*upConns)

	// No VIP deleted from its MASTER: a delete and add between two samples is a move the
	// sampler cannot see, and breaks what it catches.
	for node, p := range mons {
		evs := upAddressEvents(p.Log(), node, ps)
		for _, ev := range evs {
			tlEvents = append(tlEvents, ev)
			if strings.Contains(ev.what, "Deleted") {
				t.Errorf("%s: a VIP was deleted during the upgrade: %s", node, ev.what)
			}
		}
	}
	for _, h := range watch.handoffs() {
		if h.resumed.IsZero() {
			t.Errorf("%s: the old agent handed over at %s, the new one never logged resuming", h.node, h.handed.Format("15:04:05.000"))
			continue
		}
		took := h.resumed.Sub(h.handed)
		t.Logf("figure: helm upgrade v1 -> v2, %s: the new agent resumed %v after the old one handed over; the highest backup (priority %d) waits %v at this bound (%v), %v at the default (%v)",
			h.node, took.Round(time.Millisecond), upTopBackup, upBackupWait(upHandoffBound).Round(time.Millisecond), upHandoffBound,
			upBackupWait(upDefaultBound).Round(time.Millisecond), upDefaultBound)
		if took > upBackupWait(upDefaultBound) {
			t.Logf("%s: the successor took longer than the default bound lets the backups wait: that update would have moved the VIP", h.node)
		}
	}
	tlEvents = append(tlEvents, watch.events()...)
	tlEvents = append(tlEvents, upEvent{t0, "helm upgrade started"})
	slices.SortStableFunc(tlEvents, func(a, b upEvent) int { return a.at.Compare(b.at) })
	var lines []string
	for _, ev := range tlEvents {
		lines = append(lines, fmt.Sprintf("%+8.3fs %s", ev.at.Sub(t0).Seconds(), ev.what))
	}
	t.Logf("the upgrade's timeline (pods, agents' logs, ip monitor, failures):\n\t%s", strings.Join(lines, "\n\t"))
	e.lcLogTransitionEvents(t, t0)
	if t.Failed() {
		for _, l := range watch.logs() {
			t.Logf("--- %s", l)
		}
	}
}

// upBackupWait is how long after the stretched handoff advert a VRRPv3 backup of priority
// upTopBackup takes over (docs/design.md §4.9.1): 3 x interval + skew, the interval a quarter
// of the bound.
func upBackupWait(bound time.Duration) time.Duration {
	iv := bound / 4
	return 3*iv + time.Duration(256-upTopBackup)*iv/256
}

// upWantStates is the status of a VIP mastered by master among n1..n3.
func upWantStates(master string) map[string]string {
	m := map[string]string{}
	for _, n := range []string{"n1", "n2", "n3"} {
		m[n] = "Backup"
	}
	m[master] = "Master"
	return m
}

// upLongest is the longest run of failed requests of r.
func upLongest(r lab.HTTPResult) time.Duration {
	var d time.Duration
	for _, g := range r.Gaps() {
		d = max(d, g.Duration())
	}
	return d
}

// upEvent is one line of the upgrade's timeline.
type upEvent struct {
	at   time.Time
	what string
}

// upAddressEvents returns the events of `ip -ts monitor address` output (an event is a line
// "[2006-01-02T15:04:05.000000] ..." and its indented continuation) that name one of ps.
func upAddressEvents(out, node string, ps []netip.Prefix) []upEvent {
	var evs []upEvent
	var cur *upEvent
	flush := func() {
		if cur == nil {
			return
		}
		for _, p := range ps {
			if strings.Contains(cur.what, " "+p.Addr().String()+"/") {
				cur.what = node + ": ip monitor: " + strings.Join(strings.Fields(cur.what), " ")
				evs = append(evs, *cur)
				break
			}
		}
		cur = nil
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[") {
			flush()
			end := strings.IndexByte(line, ']')
			if end < 0 {
				continue
			}
			at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", line[1:end], time.Local)
			if err != nil {
				continue
			}
			cur = &upEvent{at: at, what: line[end+1:]}
			continue
		}
		if cur != nil {
			cur.what += " " + line
		}
	}
	flush()
	return evs
}

// upPodWatch follows the agent pods every 100 ms while the upgrade runs: their phases as
// events, and their containers' logs (as the nodes' kubelets keep them, /var/log/pods: copied
// while they exist, since a deleted pod's go with it).
type upPodWatch struct {
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	mu    sync.Mutex
	evs   []upEvent
	state map[string]string // pod UID: last state
	log   map[string]string // log file: content
}

// upAgentLogKeys are the agent log messages the timeline shows.
var upAgentLogKeys = []string{"kube-vrrp agent running", "stopping", "handed", "resuming", "removed stale",
	"removing", "not resuming", "kube-vrrp agent stopped", "accept-mode"}

func (e *env) upStartPodWatch() *upPodWatch {
	w := &upPodWatch{stopc: make(chan struct{}), done: make(chan struct{}), state: map[string]string{}, log: map[string]string{}}
	go func() {
		defer close(w.done)
		for {
			w.poll(e)
			select {
			case <-w.stopc:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *upPodWatch) poll(e *env) {
	var pods corev1.PodList
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	err := e.admin.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/name": "kube-vrrp"})
	cancel()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		st := string(p.Status.Phase)
		if _, cs := lcAgentContainer(p); cs != nil && cs.State.Running != nil {
			st = "Running"
		}
		if lcPodReady(p) {
			st = "Ready"
		}
		if p.DeletionTimestamp != nil {
			st = "Terminating"
		}
		if w.state[string(p.UID)] != st {
			w.state[string(p.UID)] = st
			w.evs = append(w.evs, upEvent{now, fmt.Sprintf("%s: pod %s %s", p.Spec.NodeName, p.Name, st)})
		}
		k := e.node(p.Spec.NodeName)
		if k == nil {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(k.Dir, "var-log", "pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), "agent", "*.log"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && len(b) <= 1<<20 {
				w.log[p.Spec.NodeName+" "+p.Name+" "+filepath.Base(f)] = string(b)
			}
		}
	}
}

func (w *upPodWatch) stop() {
	w.once.Do(func() { close(w.stopc) })
	<-w.done
}

// events returns the pods' changes and the agents' key log lines (by their CRI timestamps).
func (w *upPodWatch) events() []upEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	evs := slices.Clone(w.evs)
	for key, content := range w.log {
		node, pod, _ := strings.Cut(key, " ")
		pod, _, _ = strings.Cut(pod, " ")
		for line := range strings.Lines(content) {
			// "2026-01-02T15:04:05.123456789Z stderr F {json}"
			f := strings.SplitN(strings.TrimSpace(line), " ", 4)
			if len(f) < 4 || !slices.ContainsFunc(upAgentLogKeys, func(k string) bool { return strings.Contains(f[3], k) }) {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, f[0])
			if err != nil {
				continue
			}
			msg := f[3]
			if len(msg) > 300 {
				msg = msg[:300] + "..."
			}
			evs = append(evs, upEvent{at, fmt.Sprintf("%s: agent %s: %s", node, pod, msg)})
		}
	}
	return evs
}

// upHandoff is one node's handoff as its agents logged it: the old agent handed its MASTER
// over at handed (deadline: when the backups would take over), the new one resumed it at
// resumed (zero if it did not).
type upHandoff struct {
	node                      string
	handed, resumed, deadline time.Time
}

// handoffs returns, per node, the first handoff its agents logged.
func (w *upPodWatch) handoffs() []upHandoff {
	w.mu.Lock()
	defer w.mu.Unlock()
	type line struct {
		Time     time.Time `json:"time"`
		Msg      string    `json:"msg"`
		Deadline time.Time `json:"deadline"`
	}
	byNode := map[string]*upHandoff{}
	var order []string
	for key, content := range w.log {
		node, _, _ := strings.Cut(key, " ")
		for l := range strings.Lines(content) {
			f := strings.SplitN(strings.TrimSpace(l), " ", 4)
			if len(f) < 4 {
				continue
			}
			var m line
			if json.Unmarshal([]byte(f[3]), &m) != nil {
				continue
			}
			h := byNode[node]
			if h == nil {
				h = &upHandoff{node: node}
				byNode[node] = h
				order = append(order, node)
			}
			switch m.Msg {
			case "handed over to the successor":
				if h.handed.IsZero() {
					h.handed, h.deadline = m.Time, m.Deadline
				}
			case "resuming the instance handed over by the previous agent":
				if h.resumed.IsZero() {
					h.resumed = m.Time
				}
			}
		}
	}
	slices.Sort(order)
	var out []upHandoff
	for _, n := range order {
		if h := byNode[n]; !h.handed.IsZero() {
			out = append(out, *h)
		}
	}
	return out
}

// logs returns the agents' logs as they were last read, each as one string.
func (w *upPodWatch) logs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for k, v := range w.log {
		out = append(out, k+":\n"+v)
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}

// lcWaitStatus waits until VirtualIP name's status names master and its members are those of
// want, with its states.
func (e *env) lcWaitStatus(t *testing.T, name, master string, want map[string]string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var v kubevrrpv1alpha1.VirtualIP
		if err := e.admin.Get(e.ctx, client.ObjectKey{Name: name}, &v); err != nil {
			t.Fatal(err)
		}
		members := e.members(t, name)
		got := map[string]string{}
		for _, n := range members {
			got[n.Name] = n.State
		}
		if v.Status.Master == master && fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("VirtualIP %s status: master %q, members %s; want master %q, %v", name, v.Status.Master, lcStates(members), master, want)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
