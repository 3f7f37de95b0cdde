package agentlab_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

const (
	// nice is the niceness of the agents, the control plane and the test process: the machine
	// running these tests is often busy, and a speaker stalled for longer than
	// Master_Down_Interval legitimately loses its role, which is not what these tests are about.
	nice = -10
	// vipName is the VirtualIP's name.
	vipName = "haproxy"
	// settle bounds "happens at all" waits of the data plane: far above any VRRP timer.
	settle = 15 * time.Second
	// statusSettle bounds waits for status to be right after the API server or a node came
	// back: the agents' reconnection backoff (up to 30 s) may have to pass first.
	statusSettle = 90 * time.Second
	// listen is where each agent serves /metrics, inside its node's namespace.
	listen = "127.0.0.1:9402"
)

var (
	vip   = netip.MustParsePrefix("198.18.0.100/24")
	extra = netip.MustParsePrefix("198.18.0.101/24")
	// priorities of n1, n2, n3.
	priorities = map[string]int32{"n1": 110, "n2": 100, "n3": 90}
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "agentlab tests:", err)
		}
	}
	os.Exit(m.Run())
}

// env is one lab with a control plane and an agent on each of n1..n3, shared by the steps of
// TestAgent, which run in order: each leaves the VirtualIP with n1 as MASTER (or deleted).
type env struct {
	l      *lab.Lab
	cp     *cluster.ControlPlane
	k8s    client.Client
	nodes  []*lab.Node
	agents map[string]*lab.Proc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	envtestassets.Require(t)
	ctx := t.Context()
	bin := lab.KubeVRRPBinary(t)
	l := lab.New(t, lab.Options{Nodes: 3, Nice: nice})
	cp := cluster.New(t, l, cluster.Options{Nice: nice})
	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cp.RegisterNodes(ctx, l.Nodes(), map[string]string{"node-role.kubernetes.io/lb": ""}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := cp.AgentKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{l: l, cp: cp, k8s: cp.Client(), nodes: l.Nodes(), agents: map[string]*lab.Proc{}}
	for _, n := range e.nodes {
		state, err := n.StateDir(0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := n.Exec(context.Background(), "kube-vrrp-agent",
			"nice", "-n", strconv.Itoa(nice), bin, "agent", "--state-dir", state,
			"--node-name", n.Name, "--namespace", cluster.Namespace, "--kubeconfig", kubeconfig,
			// debug: the engine's transitions and client-go's reconnections, for the log
			// tails a failing run prints.
			// Plain HTTP /metrics: the lab's scrapes carry no token.
			"--metrics-bind-address", listen, "--metrics-secure=false", "--log-format", "json", "--log-level", "debug")
		if err != nil {
			t.Fatal(err)
		}
		e.agents[n.Name] = p
		// Before the control plane's cleanup: the agents hand over and stop while the API
		// server still answers.
		t.Cleanup(func() { _ = p.Stop() })
		if err := p.WaitLog("kube-vrrp agent running", 0, settle); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TestAgent runs three agents against the lab's API server with the generated RBAC and one
// VirtualIP (vrid 51, 198.18.0.100/24, 100 ms, n1/n2/n3 at 110/100/90).
func TestAgent(t *testing.T) {
	privtest.Require(t)
	if testing.Short() {
		t.Skip("starts kube-apiserver and three agents; skipped in -short mode")
	}
	e := newEnv(t)
	steps := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"ApplyElectsOneMaster", testApply},
		{"EditAddressesOnMaster", testEditAddresses},
		{"FailoverAggregatorOnMaster", testFailoverAggregatorOnMaster},
		{"FailoverStatus", testFailoverStatus},
		{"APIServerDown", testAPIServerDown},
		{"DeleteRemovesVIP", testDelete},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, e) }) {
			break // the next steps start from this one's end state
		}
	}
	// Always: whatever happened, no agent may have been refused anything, and none ran a
	// leader election.
	t.Run("NoForbiddenOrEPERM", func(t *testing.T) { testNoForbidden(t, e) })
	t.Run("NoLeaderElection", func(t *testing.T) { testNoLeaderElection(t, e) })
}

// testApply creates the VirtualIP and measures the time to the VIP bound on n1; status
// shows n1 Master, n2 and n3 Backup, master n1, Ready; the client reaches n1.
func testApply(t *testing.T, e *env) {
	ctx := t.Context()
	v := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: vipName},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:                  51,
			Addresses:             []string{vip.String()},
			AdvertisementInterval: &v1alpha1.Duration{Duration: 100 * time.Millisecond},
			Nodes: []v1alpha1.NodeOverride{
				{Name: "n1", Priority: ptr(priorities["n1"])},
				{Name: "n2", Priority: ptr(priorities["n2"])},
				{Name: "n3", Priority: ptr(priorities["n3"])},
			},
		},
	}
	created := time.Now()
	if err := e.k8s.Create(ctx, v); err != nil {
		t.Fatal(err)
	}
	accepted := time.Now()
	first, firstAt, boundAt, err := waitSoleHolder(e.nodes, vip, e.nodes[0], settle)
	if err != nil {
		t.Fatal(err)
	}
	// Master_Down_Interval (3 x 100 ms + skew) is most of it: a new instance starts as
	// BACKUP and listens for a better master first (RFC 5798 §6.4.1).
	t.Logf("apply -> VIP bound on n1: %v (the Create took %v; first holder %s at %v)",
		boundAt.Sub(created).Round(time.Millisecond), accepted.Sub(created).Round(time.Millisecond),
		first, firstAt.Sub(created).Round(time.Millisecond))
	got, err := e.waitStatus(ctx, settle, settled("n1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("apply -> status settled (master n1, Ready): %v", time.Since(created).Round(time.Millisecond))
	if err := lab.WaitHolders(e.nodes, vip, e.nodes[:1], settle); err != nil {
		t.Fatal(err)
	}
	who, err := e.l.WhoAnswers(vip.Addr(), settle)
	if err != nil || who != "n1" {
		t.Fatalf("the client reaches %s at %q (%v), want n1", vip.Addr(), who, err)
	}
	t.Logf("status: %s", summary(got))
}

// testEditAddresses adds a second address to the VirtualIP and removes it again: the MASTER
// (n1) binds and unbinds it without a state change, and the first address stays reachable.
func testEditAddresses(t *testing.T, e *env) {
	ctx := t.Context()
	n1 := e.nodes[0]
	before, err := e.waitStatus(ctx, settle, settled("n1"))
	if err != nil {
		t.Fatal(err)
	}
	since := entry(before, "n1").LastTransitionTime
	m0 := e.scrapeAll(t)
	probe, err := e.l.StartProbe(vip.Addr(), lab.ProbeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Stop()

	for _, step := range []struct {
		addrs   []string
		holders []*lab.Node
	}{
		{[]string{vip.String(), extra.String()}, []*lab.Node{n1}},
		{[]string{vip.String()}, nil},
	} {
		edited := time.Now()
		gen := e.setAddresses(t, step.addrs)
		if err := lab.WaitHolders(e.nodes, extra, step.holders, settle); err != nil {
			t.Fatal(err)
		}
		t.Logf("addresses %v: %s held by %v after %v", step.addrs, extra.Addr(), names(step.holders), time.Since(edited).Round(time.Millisecond))
		if h := lab.Holders(e.nodes, vip); len(h) != 1 || h[0] != n1 {
			t.Fatalf("%s held by %v, want n1 only", vip.Addr(), names(h))
		}
		got, err := e.waitStatus(ctx, settle, func(v *observed) error {
			if v.Status.ObservedGeneration != gen {
				return fmt.Errorf("observedGeneration %d, want %d", v.Status.ObservedGeneration, gen)
			}
			return settled("n1")(v)
		})
		if err != nil {
			t.Fatal(err)
		}
		if lt := entry(got, "n1").LastTransitionTime; !lt.Equal(since) {
			t.Errorf("n1's lastTransitionTime changed from %v to %v: the edit was a state change", since, lt)
		}
	}
	res := probe.Stop()
	m1 := e.scrapeAll(t)
	for _, n := range e.nodes {
		t0, t1 := m0[n.Name].value("kube_vrrp_transitions_total"), m1[n.Name].value("kube_vrrp_transitions_total")
		s0, s1 := m0[n.Name].value("kube_vrrp_adverts_sent_total"), m1[n.Name].value("kube_vrrp_adverts_sent_total")
		r0, r1 := m0[n.Name].value("kube_vrrp_adverts_received_total"), m1[n.Name].value("kube_vrrp_adverts_received_total")
		if t0 != t1 || s1 < s0 || r1 < r0 {
			t.Errorf("%s: transitions %v -> %v, adverts sent %v -> %v, received %v -> %v: the instance changed state or restarted",
				n.Name, t0, t1, s0, s1, r0, r1)
		}
	}
	if s := m1["n1"].value("kube_vrrp_state", `state="Master"`); s != 1 {
		t.Errorf("n1 kube_vrrp_state{state=Master} = %v, want 1", s)
	}
	t.Logf("client during the edits: %s", res)
	// A restarted instance would leave the client without the VIP for Master_Down_Interval
	// (~360 ms) or hand it to another node.
	if runs := res.Runs(); len(runs) != 1 || runs[0].Node != "n1" || res.MaxGap() > 300*time.Millisecond {
		t.Errorf("the client lost %s during the edits: %s", vip.Addr(), res)
	}
}

// testFailoverAggregatorOnMaster cuts the link of n1, MASTER and, like every agent, an
// aggregator of the VirtualIP's status. With a single leader-elected aggregator on n1 this
// waited for its Lease to expire (~15 s); now the members still connected (n2, n3) summarise:
// status.master names n2 within a second of the takeover.
func testFailoverAggregatorOnMaster(t *testing.T, e *env) {
	latency := e.failover(t)
	t.Logf("first link cut on the MASTER n1: status.master = n2 %v after the takeover", latency.Round(time.Millisecond))
	if latency > time.Second {
		t.Errorf("status.master named n2 %v after the takeover, want within 1 s", latency.Round(time.Millisecond))
	}
}

// testFailoverStatus cuts n1's link again, after it came back from the first cut: its agent
// reconnected and summarises again (its summaries of an old copy are refused, not written),
// and status.master still names n2 within a second of the takeover.
func testFailoverStatus(t *testing.T, e *env) {
	latency := e.failover(t)
	t.Logf("second link cut on the MASTER n1, after it rejoined: status.master = n2 %v after the takeover", latency.Round(time.Millisecond))
	if latency > time.Second {
		t.Errorf("status.master named n2 %v after the takeover, want within 1 s", latency.Round(time.Millisecond))
	}
}

// failover cuts n1's link: n2 takes over; it returns how long after the VIP was bound on n2
// status.master named n2. Then the link comes back: n1 preempts, and status follows.
func (e *env) failover(t *testing.T) time.Duration {
	t.Helper()
	ctx := t.Context()
	n1, n2 := e.nodes[0], e.nodes[1]
	if _, err := e.waitStatus(ctx, settle, settled("n1")); err != nil {
		t.Fatal(err)
	}
	watch := e.watchMaster(ctx, "n2")
	cut := time.Now()
	mark(t, "cut n1's link")
	if err := n1.CutLink(); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = n1.RestoreLink()
		}
	}()
	boundAt, err := waitBound(n2, vip, settle)
	if err != nil {
		t.Fatal(err)
	}
	var statusAt time.Time
	select {
	case statusAt = <-watch:
	case <-time.After(statusSettle):
		got, _ := e.observe(ctx)
		t.Fatalf("status.master is not n2 %v after the takeover: %s", statusSettle, summary(got))
	}
	latency := statusAt.Sub(boundAt)
	t.Logf("link cut on n1: VIP bound on n2 after %v; status.master = n2 %v after that",
		boundAt.Sub(cut).Round(time.Millisecond), latency.Round(time.Millisecond))
	got, _ := e.observe(ctx)
	t.Logf("status while n1 is cut off: %s", summary(got))
	if n := entry(got, "n2"); n == nil || n.State != "Master" {
		t.Errorf("n2's member reports %+v, want Master", n)
	}
	if who, err := e.l.WhoAnswers(vip.Addr(), settle); err != nil || who != "n2" {
		t.Errorf("the client reaches %s at %q (%v), want n2", vip.Addr(), who, err)
	}

	restored = true
	back := time.Now()
	mark(t, "restore n1's link")
	if err := n1.RestoreLink(); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitHolders(e.nodes, vip, e.nodes[:1], settle); err != nil {
		t.Fatal(err)
	}
	if _, err := e.waitStatus(ctx, statusSettle, settled("n1")); err != nil {
		t.Fatal(err)
	}
	t.Logf("link back: n1 MASTER again and status settled after %v", time.Since(back).Round(time.Millisecond))
	return latency
}

// testAPIServerDown stops the API server, cuts n1's link: the VIP still moves to n2. The API
// server comes back: status says n2 without any agent restarted. n1's link comes back: n1
// preempts and status follows.
func testAPIServerDown(t *testing.T, e *env) {
	ctx := t.Context()
	n1, n2 := e.nodes[0], e.nodes[1]
	if _, err := e.waitStatus(ctx, settle, settled("n1")); err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for name, p := range e.agents {
		pids[name] = p.Pid()
	}
	mark(t, "stop the API server")
	if err := e.cp.StopAPIServer(); err != nil {
		t.Fatalf("stop kube-apiserver: %v", err)
	}
	apiUp := false
	defer func() {
		if !apiUp {
			_ = e.cp.StartAPIServer(context.Background())
		}
	}()
	out, err := e.l.MeasureOutage(ctx, vip.Addr(), func() error {
		mark(t, "cut n1's link")
		return n1.CutLink()
	}, lab.OutageOptions{AwaitNode: "n2"})
	defer func() { _ = n1.RestoreLink() }()
	if err != nil {
		t.Fatalf("failover with the API server down: %v (%s)", err, out)
	}
	t.Logf("API server down, link cut on n1: client saw %s", out)
	if !n2.HasAddress(vip) {
		t.Errorf("n2 does not hold %s", vip.Addr())
	}
	m := e.scrape(t, n2)
	if s := m.value("kube_vrrp_state", `state="Master"`); s != 1 {
		t.Errorf("n2 kube_vrrp_state{state=Master} = %v, want 1", s)
	}

	apiUp = true
	mark(t, "start the API server")
	if err := e.cp.StartAPIServer(ctx); err != nil {
		t.Fatalf("start kube-apiserver again: %v", err)
	}
	up := time.Now()
	got, err := e.waitStatus(ctx, statusSettle, func(v *observed) error {
		if v.Status.Master != "n2" {
			return fmt.Errorf("master %q, want n2", v.Status.Master)
		}
		for name, want := range map[string]string{"n2": "Master", "n3": "Backup"} {
			if n := entry(v, name); n == nil || n.State != want {
				return fmt.Errorf("%s is %+v, want %s", name, n, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("API server back: status.master = n2 after %v; %s", time.Since(up).Round(time.Millisecond), summary(got))
	for name, p := range e.agents {
		if p.Exited() || p.Pid() != pids[name] || strings.Count(p.Log(), "kube-vrrp agent running") != 1 {
			t.Errorf("agent %s was restarted (exited %v, pid %d -> %d)", name, p.Exited(), pids[name], p.Pid())
		}
	}

	back := time.Now()
	mark(t, "restore n1's link")
	if err := n1.RestoreLink(); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitHolders(e.nodes, vip, e.nodes[:1], settle); err != nil {
		t.Fatal(err)
	}
	if _, err := e.waitStatus(ctx, statusSettle, settled("n1")); err != nil {
		t.Fatal(err)
	}
	t.Logf("n1's link back: status settled on n1 after %v", time.Since(back).Round(time.Millisecond))

	// n1's agent talks to the API server again: an address added now is bound on n1. (Its
	// connection may have died silently while it was cut off; it must notice and reconnect.)
	e.setAddresses(t, []string{vip.String(), extra.String()})
	if err := lab.WaitHolders(e.nodes, extra, e.nodes[:1], statusSettle); err != nil {
		t.Fatalf("n1 does not apply an edit after its link came back: %v", err)
	}
	t.Logf("n1's link back: n1 applies spec edits again after %v", time.Since(back).Round(time.Millisecond))
	e.setAddresses(t, []string{vip.String()})
	if err := lab.WaitHolders(e.nodes, extra, nil, settle); err != nil {
		t.Fatal(err)
	}
}

// testDelete deletes the VirtualIP: no node keeps the VIP. Its members are owned by it, for
// the garbage collector to delete with it (this control plane runs none: test/e2e checks that
// they go).
func testDelete(t *testing.T, e *env) {
	ctx := t.Context()
	before, err := e.observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var members v1alpha1.VirtualIPMemberList
	if err := e.k8s.List(ctx, &members, client.MatchingFields{"spec.virtualIP": vipName}); err != nil {
		t.Fatal(err)
	}
	if len(members.Items) != len(priorities) {
		t.Errorf("%d members before the delete, want %d: %s", len(members.Items), len(priorities), summary(before))
	}
	for _, m := range members.Items {
		owned := slices.ContainsFunc(m.OwnerReferences, func(r metav1.OwnerReference) bool {
			return r.APIVersion == v1alpha1.GroupVersion.String() && r.Kind == "VirtualIP" && r.Name == vipName && r.UID == before.UID
		})
		if !owned {
			t.Errorf("member %s is not owned by VirtualIP %s (uid %s): owners %+v", m.Name, vipName, before.UID, m.OwnerReferences)
		}
	}
	v := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: vipName}}
	deleted := time.Now()
	mark(t, "delete the VirtualIP")
	if err := e.k8s.Delete(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitHolders(e.nodes, vip, nil, settle); err != nil {
		t.Fatal(err)
	}
	t.Logf("delete -> VIP gone from every node after %v", time.Since(deleted).Round(time.Millisecond))
	for _, n := range e.nodes {
		deadline := time.Now().Add(settle)
		for {
			m := e.scrape(t, n)
			if !m.has("kube_vrrp_state") {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s still runs an instance after the delete:\n%s", n.Name, m)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := lab.WaitHolders(e.nodes, extra, nil, 0); err != nil {
		t.Error(err)
	}
	err = e.k8s.Get(ctx, types.NamespacedName{Name: vipName}, &v1alpha1.VirtualIP{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v, want not found", err)
	}
}

// testNoLeaderElection: no agent created a Lease in its namespace or logged one; every agent
// summarises status instead.
func testNoLeaderElection(t *testing.T, e *env) {
	var leases coordinationv1.LeaseList
	if err := e.k8s.List(t.Context(), &leases, client.InNamespace(cluster.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Items {
		t.Errorf("Lease %s/%s (holder %v) in the agents' namespace", l.Namespace, l.Name, ptrValue(l.Spec.HolderIdentity))
	}
	for _, n := range e.nodes {
		if p := e.agents[n.Name]; leaderElection.MatchString(p.Log()) {
			t.Errorf("%s logged about leader election: %q in %s", n.Name, leaderElection.FindString(p.Log()), p.LogPath)
		}
	}
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// leaderElection matches what controller-runtime's leader election logs ("attempting to
// acquire leader lease", "Successfully acquired lease").
var leaderElection = regexp.MustCompile(`(?i)\bleases?\b|leader ?election`)

// denied matches what an agent logs when the API server refuses a request (403, forbidden)
// or the kernel refuses an operation (EPERM). A 403 preceded by "=" is a query parameter
// (client-go's watches pick timeoutSeconds in 300..600), not a status code.
var denied = regexp.MustCompile(`(?i)forbidden|(?:^|[^=\w])403\b|operation not permitted|\bEPERM\b|permission denied`)

// TestDeniedPattern: refusals match; a watch's URL with timeoutSeconds=403, which an agent
// logged while TestChaosK8s had the API server down and which failed its NoForbiddenOrEPERM,
// does not.
func TestDeniedPattern(t *testing.T) {
	for line, want := range map[string]bool{
		`{"msg":"Watch failed - backing off","err":"Get \"https://198.18.0.250:6443/api/v1/nodes?allowWatchBookmarks=true&resourceVersion=268&timeoutSeconds=403&watch=true\": dial tcp 198.18.0.250:6443: connect: connection refused"}`: false,
		`{"msg":"Failed to watch","err":"nodes is forbidden: User \"system:serviceaccount:kube-vrrp:kube-vrrp-agent\" cannot watch resource \"nodes\""}`:                                                                                  true,
		`{"msg":"request refused","code":403}`:                 true,
		`an error on the server (403)`:                         true,
		`add 198.18.0.100/24 to eth0: operation not permitted`: true,
		`{"msg":"took","duration":"403ms"}`:                    false,
	} {
		if got := denied.MatchString(line); got != want {
			t.Errorf("denied.MatchString(%s) = %v, want %v", line, got, want)
		}
	}
}

// testNoForbidden scans every agent's log: no request was refused, by RBAC or by the kernel.
// A kube-apiserver that has just started serves requests before its RBAC caches are loaded
// and refuses them (403) until it is ready; those refusals are counted and logged, not held
// against the role.
func testNoForbidden(t *testing.T, e *env) {
	starts := e.cp.APIServerStarts()
	starting := func(at time.Time) bool {
		for _, s := range starts {
			if !at.Before(s.Started) && (s.Ready.IsZero() || !at.After(s.Ready)) {
				return true
			}
		}
		return false
	}
	for _, n := range e.nodes {
		p := e.agents[n.Name]
		sc := bufio.NewScanner(strings.NewReader(p.Log()))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		lines, bad, tolerated := 0, 0, 0
		for sc.Scan() {
			lines++
			line := sc.Text()
			if !denied.MatchString(line) {
				continue
			}
			if at, ok := logTime(line); ok && starting(at) {
				tolerated++
				t.Logf("%s, while kube-apiserver was starting: %.300s", n.Name, line)
				continue
			}
			bad++
			if bad <= 5 {
				t.Errorf("%s: %s", n.Name, line)
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d refused operations in all (%s)", n.Name, bad, p.LogPath)
		}
		t.Logf("%s: %d log lines, %d refusals, %d more while kube-apiserver was starting", n.Name, lines, bad, tolerated)
	}
}

var klogTime = regexp.MustCompile(`^[IWEF](\d{4} \d\d:\d\d:\d\d\.\d+)`)

// logTime returns when an agent's log line was written: the "time" of a JSON record, or the
// header of a klog line (client-go's event broadcaster writes those), in local time.
func logTime(line string) (time.Time, bool) {
	if m := klogTime.FindStringSubmatch(line); m != nil {
		at, err := time.ParseInLocation("0102 15:04:05.999999", m[1], time.Local)
		if err != nil {
			return time.Time{}, false
		}
		now := time.Now()
		return at.AddDate(now.Year(), 0, 0), true
	}
	var rec struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil || rec.Time.IsZero() {
		return time.Time{}, false
	}
	return rec.Time, true
}

// --- helpers ---

// mark logs a step with the wall-clock time, to read the agents' logs against.
func mark(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %s", time.Now().UTC().Format("15:04:05.000"), what)
}

func ptr[T any](v T) *T { return &v }

func (e *env) get(ctx context.Context) (*v1alpha1.VirtualIP, error) {
	v := &v1alpha1.VirtualIP{}
	return v, e.k8s.Get(ctx, types.NamespacedName{Name: vipName}, v)
}

// observed is the VirtualIP and the reports of its members, as the API server has them.
type observed struct {
	*v1alpha1.VirtualIP
	// members are the entries of the VirtualIPMembers of the VirtualIP (Entry: Name is the
	// member's node), in the API server's order.
	members []v1alpha1.NodeStatus
}

// observe reads the VirtualIP and then its members (a field selector on spec.virtualIP,
// served by the API server).
func (e *env) observe(ctx context.Context) (*observed, error) {
	v, err := e.get(ctx)
	if err != nil {
		return nil, err
	}
	var list v1alpha1.VirtualIPMemberList
	if err := e.k8s.List(ctx, &list, client.MatchingFields{"spec.virtualIP": vipName}); err != nil {
		return &observed{VirtualIP: v}, err
	}
	o := &observed{VirtualIP: v}
	for i := range list.Items {
		o.members = append(o.members, list.Items[i].Entry())
	}
	return o, nil
}

// waitStatus polls the VirtualIP and its members until ok accepts them, and returns them.
func (e *env) waitStatus(ctx context.Context, timeout time.Duration, ok func(*observed) error) (*observed, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, err := e.observe(ctx)
		if err == nil {
			err = ok(v)
		}
		if err == nil {
			return v, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return v, fmt.Errorf("status after %v: %w (%s)", timeout, err, summary(v))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchMaster polls status.master every 10 ms from now on and sends the time it first names
// node.
func (e *env) watchMaster(ctx context.Context, node string) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			v := &v1alpha1.VirtualIP{}
			err := e.k8s.Get(rctx, types.NamespacedName{Name: vipName}, v)
			cancel()
			if err == nil && v.Status.Master == node {
				out <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return out
}

// settled accepts a status with master and only master in state Master, the other nodes
// Backup, every node reporting (one member each, no other), and Ready true.
func settled(master string) func(*observed) error {
	return func(v *observed) error {
		if v.Status.Master != master {
			return fmt.Errorf("master %q, want %s", v.Status.Master, master)
		}
		if len(v.members) != len(priorities) {
			return fmt.Errorf("%d members, want %d", len(v.members), len(priorities))
		}
		for name := range priorities {
			want := "Backup"
			if name == master {
				want = "Master"
			}
			n := entry(v, name)
			if n == nil || n.State != want {
				return fmt.Errorf("%s is %+v, want %s", name, n, want)
			}
		}
		if !meta.IsStatusConditionTrue(v.Status.Conditions, "Ready") {
			return errors.New("not Ready")
		}
		return nil
	}
}

// entry is node's report (its member's), nil if it has none.
func entry(v *observed, node string) *v1alpha1.NodeStatus {
	if v == nil {
		return nil
	}
	for i := range v.members {
		if v.members[i].Name == node {
			return &v.members[i]
		}
	}
	return nil
}

// summary renders status in one line: master, each member's state, conditions.
func summary(v *observed) string {
	if v == nil || v.VirtualIP == nil {
		return "(none)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "master=%q gen=%d/%d", v.Status.Master, v.Status.ObservedGeneration, v.Generation)
	for _, n := range v.members {
		fmt.Fprintf(&b, " %s=%s(%d", n.Name, n.State, n.Priority)
		if n.Reason != "" {
			fmt.Fprintf(&b, ",%s", n.Reason)
		}
		b.WriteString(")")
	}
	for _, c := range v.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s/%s", c.Type, c.Status, c.Reason)
	}
	return b.String()
}

// setAddresses updates spec.addresses and returns the new generation.
func (e *env) setAddresses(t *testing.T, addrs []string) int64 {
	t.Helper()
	var gen int64
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		v, err := e.get(t.Context())
		if err != nil {
			return err
		}
		v.Spec.Addresses = addrs
		if err := e.k8s.Update(t.Context(), v); err != nil {
			return err
		}
		gen = v.Generation
		return nil
	})
	if err != nil {
		t.Fatalf("set addresses %v: %v", addrs, err)
	}
	return gen
}

// waitSoleHolder polls every millisecond until want alone holds p, and returns the first
// node seen holding p and when, and when want alone held it.
func waitSoleHolder(nodes []*lab.Node, p netip.Prefix, want *lab.Node, timeout time.Duration) (first string, firstAt, at time.Time, err error) {
	deadline := time.Now().Add(timeout)
	for {
		h := lab.Holders(nodes, p)
		now := time.Now()
		if first == "" && len(h) > 0 {
			first, firstAt = names(h), now
		}
		if len(h) == 1 && h[0] == want {
			return first, firstAt, now, nil
		}
		if now.After(deadline) {
			return first, firstAt, now, fmt.Errorf("%s held by %s after %v, want %s", p.Addr(), names(h), timeout, want.Name)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitBound polls every millisecond until n holds p and returns when it first did.
func waitBound(n *lab.Node, p netip.Prefix, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if n.HasAddress(p) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s does not hold %s after %v", n.Name, p.Addr(), timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func names(ns []*lab.Node) string {
	if len(ns) == 0 {
		return "none"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	return strings.Join(s, ",")
}

// metrics are the lines of one agent's /metrics about the VirtualIP.
type metrics []string

// value returns the value of the first sample of name whose labels contain every one of
// labels (`state="Master"`), or -1.
func (m metrics) value(name string, labels ...string) float64 {
	for _, line := range m {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		i := strings.LastIndexByte(line, '}')
		if i < 0 || !containsAll(line[:i], labels) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64)
		if err != nil {
			return -1
		}
		return f
	}
	return -1
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func (m metrics) has(name string) bool { return m.value(name) >= 0 }

func (m metrics) String() string { return strings.Join(m, "\n") }

// scrape reads the agent's /metrics inside n's namespace (it answers with or without the API
// server) and keeps the samples of the VirtualIP.
func (e *env) scrape(t *testing.T, n *lab.Node) metrics {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := n.InNetns(func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + listen + "/metrics")
	if err != nil {
		t.Fatalf("%s: metrics: %v", n.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: metrics: %v", n.Name, err)
	}
	var m metrics
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "kube_vrrp_") && strings.Contains(line, `vip="`+vipName+`"`) {
			m = append(m, line)
		}
	}
	return m
}

func (e *env) scrapeAll(t *testing.T) map[string]metrics {
	t.Helper()
	out := map[string]metrics{}
	for _, n := range e.nodes {
		out[n.Name] = e.scrape(t, n)
	}
	return out
}
