package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevrrpv1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// testElection applies the sample VirtualIP with kubectl and waits for the outcome a user
// sees: n1 (priority 110) holds the address and serves through it, its status says so, and
// `kubectl get vip` prints it.
func testElection(t *testing.T, e *env) {
	t0 := time.Now()
	e.applyVirtualIP(t)
	nodes := e.labNodes()
	// n1 (priority 110) ends as the MASTER: a node whose agent saw the VirtualIP first may
	// hold the address for a moment before n1 preempts it (on a loaded machine, the agents
	// start the instance up to seconds apart).
	if err := lab.WaitSoleHolder(nodes, vip, e.node("n1").Node, 300*time.Millisecond, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: n1 the sole holder of the VIP for 300ms, %v after kubectl apply", time.Since(t0).Round(time.Millisecond))
	if body, err := e.lab.HTTPGet(netip.AddrPortFrom(vip.Addr(), 80), time.Second); err != nil || body != "n1" {
		t.Errorf("GET http://%s/: %q, %v; want n1's HAProxy", vip.Addr(), body, err)
	}
	e.waitStatus(t, "n1", map[string]string{"n1": "Master", "n2": "Backup", "n3": "Backup"})
	out, err := e.cp.Kubectl(e.ctx, "", "get", "vip")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get vip:\n%s", out)
	if f := strings.Fields(lastLine(out)); len(f) < 5 || f[0] != "haproxy" || f[1] != "51" || f[3] != "n1" || f[4] != "True" {
		t.Errorf("kubectl get vip: %q, want haproxy, VRID 51, master n1, Ready True", lastLine(out))
	}
	e.waitEvent(t, "BecameMaster", "n1")
	// Each node's report, as the user lists it: the short name, the selectable field, the
	// printer columns (VirtualIP, node, state, priority).
	out, err = e.cp.Kubectl(e.ctx, "", "get", "vipm", "--field-selector", "spec.virtualIP=haproxy", "--sort-by", ".spec.node")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get vipm --field-selector spec.virtualIP=haproxy:\n%s", out)
	var rows []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 5 {
			t.Errorf("kubectl get vipm: row %q", l)
			continue
		}
		rows = append(rows, strings.Join(f[:5], " "))
	}
	want := []string{"haproxy.n1 haproxy n1 Master 110", "haproxy.n2 haproxy n2 Backup 100", "haproxy.n3 haproxy n3 Backup 90"}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("kubectl get vipm: %q, want %q", rows, want)
	}
}

// testFailover kills HAProxy on the MASTER while a client sends a request through the VIP
// every 10 ms: the process probe (weight 0) puts n1 in Fault and n2 takes over; HAProxy back,
// n1 (preempt) takes the address back.
func testFailover(t *testing.T, e *env) {
	nodes := e.labNodes()
	target := netip.AddrPortFrom(vip.Addr(), 80)
	out, err := e.lab.MeasureHTTPOutage(e.ctx, target, func() error {
		e.haproxy["n1"].Kill()
		return nil
	}, lab.HTTPOutageOptions{AwaitNode: "n2"})
	if err != nil {
		t.Fatalf("%v (%s)", err, out)
	}
	t.Logf("figure: HAProxy SIGKILL on the MASTER (process probe, weight 0, real pods): %s", out)
	if out.Before != "n1" || out.After != "n2" {
		t.Errorf("served by %s before and %s after, want n1 then n2", out.Before, out.After)
	}
	if out.Duration > 3*time.Second {
		t.Errorf("outage %v, want well under 3 s", out.Duration)
	}
	if err := lab.WaitSoleHolder(nodes, vip, e.node("n2").Node, 200*time.Millisecond, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "n2", map[string]string{"n1": "Fault", "n2": "Master", "n3": "Backup"})
	if r := e.nodeStatus(t, "n1").Reason; r != "ProbeFailed" {
		t.Errorf("n1's reason %q, want ProbeFailed", r)
	}
	e.waitEvent(t, "BecameFault", "n1")
	e.waitEvent(t, "BecameMaster", "n2")

	h, err := e.node("n1").PIDNamespace().ExecHAProxy(vip.Addr())
	if err != nil {
		t.Fatal(err)
	}
	e.haproxy["n1"] = h
	if err := lab.WaitSoleHolder(nodes, vip, e.node("n1").Node, 300*time.Millisecond, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, "n1", map[string]string{"n1": "Master", "n2": "Backup", "n3": "Backup"})
}

// testPodDelete deletes the MASTER's agent pod, as `kubectl delete pod` or a node drain does:
// the agent's SIGTERM hands over at once (priority 0), the DaemonSet starts a new pod, and
// n1 (priority 110, preempt) takes the address back. A client sends a request through the VIP
// every 10 ms throughout: each of the two moves costs a few of them.
func testPodDelete(t *testing.T, e *env) {
	nodes := e.labNodes()
	old := e.agentPod(t, "n1")
	load := e.lab.StartHTTPLoad(netip.AddrPortFrom(vip.Addr(), 80), lab.HTTPLoadOptions{})
	defer load.Stop()
	time.Sleep(300 * time.Millisecond)
	deleted := time.Now()
	if out, err := e.cp.Kubectl(e.ctx, "", "delete", "pod", "--namespace", namespace, old.Name, "--wait=false"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := lab.WaitSoleHolder(nodes, vip, e.node("n2").Node, 0, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	handedOver := time.Since(deleted)
	// The DaemonSet's new pod on n1, Ready, and n1 MASTER again.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var ready bool
		for _, p := range e.agentPods(t) {
			if p.Spec.NodeName == "n1" && p.UID != old.UID && podReady(p) {
				ready = true
			}
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new Ready agent pod on n1 after the delete:\n%s", e.describePods())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := lab.WaitSoleHolder(nodes, vip, e.node("n1").Node, 300*time.Millisecond, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Since(deleted)
	r := load.Stop()
	gaps := r.Gaps()
	var outages []string
	for _, g := range gaps {
		outages = append(outages, fmt.Sprintf("%v (%d requests) at +%v", g.Duration().Round(time.Millisecond), g.Lost, g.From.Sub(deleted).Round(time.Millisecond)))
	}
	t.Logf("figure: MASTER's agent pod deleted: n2 MASTER %v after kubectl delete, n1 back %v after (new pod); served %s; outages: %s",
		handedOver.Round(time.Millisecond), back.Round(time.Millisecond), r.Runs(), strings.Join(outages, ", "))
	if r.Last() != "n1" || !strings.Contains(r.Runs(), "n2") {
		t.Errorf("served %s, want n1, then n2, then n1", r.Runs())
	}
	for _, g := range gaps {
		if g.Duration() > time.Second || g.Open {
			t.Errorf("an outage of %v (%d requests) at %v; each priority-0 handover and preemption takes well under 1 s", g.Duration(), g.Lost, g.From.Sub(deleted).Round(time.Millisecond))
		}
	}
	e.waitStatus(t, "n1", map[string]string{"n1": "Master", "n2": "Backup", "n3": "Backup"})
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// virtualIPObject reads the sample VirtualIP.
func (e *env) virtualIPObject(t *testing.T) *kubevrrpv1alpha1.VirtualIP {
	t.Helper()
	var v kubevrrpv1alpha1.VirtualIP
	if err := e.admin.Get(e.ctx, client.ObjectKey{Name: "haproxy"}, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// members returns the reports of VirtualIP name's nodes: the entries of its VirtualIPMembers
// (Entry: Name is the member's node), listed by the API server's field selector on
// spec.virtualIP, as `kubectl get vipm --field-selector spec.virtualIP=NAME` does.
func (e *env) members(t *testing.T, name string) []kubevrrpv1alpha1.NodeStatus {
	t.Helper()
	var list kubevrrpv1alpha1.VirtualIPMemberList
	if err := e.admin.List(e.ctx, &list, client.MatchingFields{"spec.virtualIP": name}); err != nil {
		t.Fatal(err)
	}
	var out []kubevrrpv1alpha1.NodeStatus
	for i := range list.Items {
		out = append(out, list.Items[i].Entry())
	}
	return out
}

func (e *env) nodeStatus(t *testing.T, node string) kubevrrpv1alpha1.NodeStatus {
	t.Helper()
	for _, n := range e.members(t, "haproxy") {
		if n.Name == node {
			return n
		}
	}
	t.Fatalf("VirtualIP haproxy has no member for %s", node)
	return kubevrrpv1alpha1.NodeStatus{}
}

// waitStatus waits (up to 30 s) until the VirtualIP's status names master, its members are
// those of states with their states, and Ready is True.
func (e *env) waitStatus(t *testing.T, master string, states map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := e.virtualIPObject(t)
		got := map[string]string{}
		for _, n := range e.members(t, v.Name) {
			got[n.Name] = n.State
		}
		ready := meta.IsStatusConditionTrue(v.Status.Conditions, "Ready")
		if v.Status.Master == master && fmt.Sprint(got) == fmt.Sprint(states) && ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: master %q, members' states %v, Ready %v; want master %q, states %v, Ready", v.Status.Master, got, ready, master, states)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEvent waits (up to 30 s) for an Event of reason on the VirtualIP that names node.
func (e *env) waitEvent(t *testing.T, reason, node string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list corev1.EventList
		if err := e.admin.List(e.ctx, &list); err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, ev := range list.Items {
			if ev.InvolvedObject.Kind != "VirtualIP" || ev.InvolvedObject.Name != "haproxy" {
				continue
			}
			seen = append(seen, ev.Reason+"("+ev.Source.Host+"): "+ev.Message)
			if ev.Reason == reason && (ev.Source.Host == node || ev.ReportingInstance == node || strings.Contains(ev.Message, node)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s Event for %s on VirtualIP haproxy; Events: %s", reason, node, strings.Join(seen, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
