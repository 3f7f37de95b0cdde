package probes_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var (
	// vip is the address HAProxy serves. Not .250: that is the lab client.
	vip = netip.MustParsePrefix("198.18.0.100/24")
	// web is HAProxy's frontend on the VIP.
	web = netip.AddrPortFrom(vip.Addr(), 80)
)

const (
	// settle bounds "happens at all" waits: far above any VRRP or probe timer here, so that a
	// loaded machine does not fail a test that behaves correctly.
	settle = 15 * time.Second
	// nice is the niceness of the speakers and of the test process (its HTTP client and
	// health servers): the machine running these tests is often busy compiling.
	nice = -10
	// vipName is the VirtualIP's name in kube-vrrp's log.
	vipName = "lab"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "probes tests:", err)
		}
	}
	os.Exit(m.Run())
}

// probeSpec is one entry of spec.probes, rendered as YAML lines for lab.VirtualIP.Extra.
type probeSpec struct {
	name string
	// check is the kind's line, e.g. "process: {name: haproxy}".
	check      string
	interval   time.Duration
	timeout    time.Duration
	fall, rise int
	weight     int
}

// probes renders spec.probes.
func probes(ps ...probeSpec) []string {
	lines := []string{"probes:"}
	for _, p := range ps {
		lines = append(lines, "- name: "+p.name, "  "+p.check)
		if p.interval != 0 {
			lines = append(lines, fmt.Sprintf("  interval: %s", p.interval))
		}
		if p.timeout != 0 {
			lines = append(lines, fmt.Sprintf("  timeout: %s", p.timeout))
		}
		if p.fall != 0 {
			lines = append(lines, fmt.Sprintf("  fall: %d", p.fall))
		}
		if p.rise != 0 {
			lines = append(lines, fmt.Sprintf("  rise: %d", p.rise))
		}
		lines = append(lines, fmt.Sprintf("  weight: %d", p.weight))
	}
	return lines
}

// haproxyProbe is the process probe of the setups kube-vrrp replaces (keepalived's
// `pgrep -x haproxy`, interval 1, fall 2, rise 2) with the given weight.
func haproxyProbe(weight int) probeSpec {
	return probeSpec{name: "haproxy", check: "process: {name: haproxy}", interval: time.Second, fall: 2, rise: 2, weight: weight}
}

// node is one lab node with its own PID namespace, HAProxy and kube-vrrp.
type node struct {
	*lab.Node
	ns  *lab.PIDNamespace
	hap *lab.HAProxy
	kv  *lab.NSProc
}

// haLab is a two-node lab: HAProxy serving the VIP on both, kube-vrrp run on both.
type haLab struct {
	t     *testing.T
	l     *lab.Lab
	spec  lab.VirtualIP
	nodes []*node
}

func (h *haLab) node(i int) *node { return h.nodes[i-1] }

func (h *haLab) labNodes() []*lab.Node {
	var out []*lab.Node
	for _, n := range h.nodes {
		out = append(out, n.Node)
	}
	return out
}

// newHALab builds the lab, starts HAProxy on both nodes, then kube-vrrp on n1 and, once n1
// holds the VIP, on n2 (so that n1 is MASTER with preemption off too), and checks that the
// client's requests are served by n1.
func newHALab(t *testing.T, spec lab.VirtualIP) *haLab {
	t.Helper()
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	h := &haLab{t: t, l: l, spec: spec}
	for _, n := range l.Nodes() {
		nd := &node{Node: n, ns: n.StartPIDNamespace(t)}
		nd.hap = nd.ns.StartHAProxy(t, vip.Addr())
		h.nodes = append(h.nodes, nd)
	}
	n1, n2 := h.node(1), h.node(2)
	n1.kv = n1.ns.StartKubeVRRP(t, spec.String())
	if err := lab.WaitKubeVRRPState(n1.kv.Proc, vipName, "Master", settle); err != nil {
		t.Fatal(err)
	}
	n2.kv = n2.ns.StartKubeVRRP(t, spec.String())
	if err := lab.WaitKubeVRRPState(n2.kv.Proc, vipName, "Backup", settle); err != nil {
		t.Fatal(err)
	}
	if err := waitSole(h.labNodes(), n1.Node, 300*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	h.served(n1)
	return h
}

// served checks that the client's requests to the VIP are served by n (after any neighbour
// entry of the client has caught up).
func (h *haLab) served(n *node) {
	h.t.Helper()
	deadline := time.Now().Add(settle)
	for {
		body, err := h.l.HTTPGet(web, time.Second)
		if err == nil && body == n.Name {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("GET http://%s/: %q, %v; want an answer from %s", web, body, err, n.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSole waits until m has been the only holder of the VIP among nodes for d.
func waitSole(nodes []*lab.Node, m *lab.Node, d, timeout time.Duration) error {
	return lab.WaitSoleHolder(nodes, vip, m, d, timeout)
}

// stays checks that m and only m holds the VIP for d.
func stays(t *testing.T, nodes []*lab.Node, m *lab.Node, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if h := lab.Holders(nodes, vip); len(h) != 1 || h[0] != m {
			t.Fatalf("holders of %s: %v, want only %s", vip.Addr(), h, m.Name)
		}
	}
}

// transitions returns p's transitions after t into state.
func transitionsAfter(p *lab.Proc, t time.Time, state string) []lab.KubeVRRPTransition {
	var out []lab.KubeVRRPTransition
	for _, tr := range lab.KubeVRRPTransitions(p) {
		if tr.State == state && at(tr).After(t) {
			out = append(out, tr)
		}
	}
	return out
}

// at is when a transition happened: the engine's own time, or the log line's.
func at(tr lab.KubeVRRPTransition) time.Time {
	if !tr.Since.IsZero() {
		return tr.Since
	}
	return tr.Time
}

// probeRecord is one probe event of kube-vrrp: a probe's health transition.
type probeRecord struct {
	Time    time.Time
	Probe   string
	Healthy bool
	Reason  string
}

func probeRecords(p *lab.Proc) []probeRecord {
	var out []probeRecord
	for _, e := range lab.KubeVRRPEvents(p, vrrp.EventProbe) {
		out = append(out, probeRecord{Time: e.At, Probe: e.Probe, Healthy: e.Healthy, Reason: e.Message})
	}
	return out
}

// waitProbe waits until p has logged probe's health as healthy after t, and returns that
// record.
func waitProbe(p *lab.Proc, probe string, healthy bool, after time.Time, timeout time.Duration) (probeRecord, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range probeRecords(p) {
			if r.Probe == probe && r.Healthy == healthy && !r.Time.Before(after) {
				return r, nil
			}
		}
		if p.Exited() || time.Now().After(deadline) {
			return probeRecord{}, fmt.Errorf("%s/%s logged no probe %s healthy=%v after %s within %v:\n%s",
				p.Node.Name, p.Name, probe, healthy, after.Format("15:04:05.000"), timeout, tail(p))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(p *lab.Proc) string {
	lines := strings.Split(p.Tail(15), "\n")
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "..."
		}
	}
	return strings.Join(lines, "\n")
}
