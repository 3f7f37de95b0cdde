//go:build linux

package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// behind spares a write while the cache has not caught up with this node's last one (the watch
// event that brings it compares again): a member applied and not in the cache yet, or in an
// older version; a member deleted and still in the cache. A member deleted since by someone
// else (the member watch saw it go) is written again, and so is one the cache has not shown
// cacheLag after the write: a watch that lost the events (and relisted) sends no event of a
// member it never had, and a resync must repair it.
func TestStatusBehind(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	entry := v1alpha1.NodeStatus{Name: "lb1", State: "Master", Priority: 110}
	other := v1alpha1.NodeStatus{Name: "lb1", State: "Backup", Priority: 100}
	cached := func(rv string) *v1alpha1.VirtualIPMember {
		m := testMember(testVIP("web", nil), entry)
		m.ResourceVersion = rv
		return m
	}
	for _, tt := range []struct {
		name   string
		w      written
		cached *v1alpha1.VirtualIPMember // nil: none
		gone   string                    // the resourceVersion the member watch saw it deleted with
		want   entryWant
		behind bool
	}{
		{name: "applied, not in the cache yet", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			want: entryWant{entry, true}, behind: true},
		{name: "applied, an older version in the cache", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			cached: cached("90"), want: entryWant{entry, true}, behind: true},
		{name: "applied, then deleted by another", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			gone: "150", want: entryWant{entry, true}},
		{name: "applied after an older deletion", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			gone: "90", want: entryWant{entry, true}, behind: true},
		{name: "applied, something else wanted now", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			want: entryWant{other, true}},
		{name: "deleted, still in the cache", w: written{ok: false, resourceVersion: "100", at: now},
			cached: cached("100"), want: entryWant{ok: false}, behind: true},
		{name: "deleted, then created again by another", w: written{ok: false, resourceVersion: "100", at: now},
			cached: cached("120"), want: entryWant{ok: false}},
		{name: "applied, a resourceVersion that does not compare", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			cached: cached("x"), want: entryWant{entry, true}},

		// The cache never showed the write: written again.
		{name: "applied, not in the cache cacheLag later", w: written{entry: entry, ok: true, resourceVersion: "100", at: now.Add(-cacheLag)},
			want: entryWant{entry, true}},
		{name: "applied, an older version in the cache cacheLag later", w: written{entry: entry, ok: true, resourceVersion: "100", at: now.Add(-cacheLag)},
			cached: cached("90"), want: entryWant{entry, true}},
		{name: "deleted, still in the cache cacheLag later", w: written{ok: false, resourceVersion: "100", at: now.Add(-cacheLag)},
			cached: cached("100"), want: entryWant{ok: false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &StatusReconciler{NodeName: "lb1", written: map[string]written{"web": tt.w}}
			if tt.gone != "" {
				r.gone = map[string]string{"web": tt.gone}
			}
			member, had := &v1alpha1.VirtualIPMember{}, tt.cached != nil
			if had {
				member = tt.cached
			}
			if got := r.behind(member, had, "web", tt.want.entry, tt.want.ok, now); got != tt.behind {
				t.Errorf("behind = %v, want %v", got, tt.behind)
			}
		})
	}
}

// entryWant is an entry this node wants (ok false: none).
type entryWant struct {
	entry v1alpha1.NodeStatus
	ok    bool
}

// setState puts the agent's instance name in state since now, as a transition does.
func (f *fakeAgent) setState(name string, state vrrp.State, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.configs[name] = vrrp.Config{}
	st := agent.Status{Status: vrrp.Status{Name: name, State: state, Reason: reason, Interface: "eth0", Since: time.Now()}}
	for i := range f.statuses {
		if f.statuses[i].Name == name {
			f.statuses[i] = st
			return
		}
	}
	f.statuses = append(f.statuses, st)
}

// createVIP creates a VirtualIP of VRID 51 whose spec.nodes names nodes, and deletes it at the
// end.
func createVIP(t *testing.T, c client.Client, name string, nodes ...string) *v1alpha1.VirtualIP {
	t.Helper()
	v := testVIP(name, func(v *v1alpha1.VirtualIP) {
		v.Spec.Nodes = nil
		for _, n := range nodes {
			v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: n})
		}
	})
	if err := c.Create(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), v) })
	return v
}

// getMember returns the member of node in the VirtualIP vip from the API server.
func getMember(ctx context.Context, c client.Client, vip, node string) (*v1alpha1.VirtualIPMember, error) {
	var m v1alpha1.VirtualIPMember
	if err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.MemberName(vip, node)}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// A node's member, against the API server: applied as the node's field manager alone, with the
// VirtualIP as its owner; written once, not again while it says the same; withdrawn by one
// delete once the VirtualIP no longer takes the node in. The delete is of the member the cache
// has (UID and resourceVersion as preconditions): one rewritten since is not deleted.
func TestMemberWrites(t *testing.T) {
	cfg := apiServer(t)
	ctx := t.Context()
	admin := apiClient(t, cfg)
	writes := &apiWrites{}
	cl := apiClient(t, writes.wrap(cfg, ""))
	createNodes(t, admin, "mw-n1")
	vip := createVIP(t, admin, "mw", "mw-n1")
	fa := newFakeAgent()
	fa.setState("mw", vrrp.Backup, vrrp.ReasonStarted)
	r := &StatusReconciler{Client: cl, Reader: cl, NodeName: "mw-n1", Agent: fa, Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	reconcileOnce := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Name: "mw"}}); err != nil {
			t.Fatal(err)
		}
	}
	wantWrites := func(what string, want ...string) {
		t.Helper()
		var got []string
		for _, w := range writes.take() {
			got = append(got, w.String())
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: writes %q, want %q", what, got, want)
		}
	}

	reconcileOnce()
	wantWrites("first reconcile", "PATCH member mw.mw-n1 by kube-vrrp-agent/mw-n1: 201")
	m, err := getMember(ctx, admin, "mw", "mw-n1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec != (v1alpha1.VirtualIPMemberSpec{VirtualIP: "mw", Node: "mw-n1"}) || m.Status.State != "Backup" || m.Status.Reason != vrrp.ReasonStarted {
		t.Errorf("member spec %+v, status %+v: want mw and mw-n1, Backup, Started", m.Spec, m.Status)
	}
	// What the cache must catch up with before a differing member is written over (behind).
	if w := r.written["mw"]; !w.ok || w.resourceVersion != m.ResourceVersion {
		t.Errorf("written %+v, want the member's resourceVersion %s", w, m.ResourceVersion)
	}
	if own := m.OwnerReferences; len(own) != 1 || own[0].Kind != "VirtualIP" || own[0].Name != "mw" || own[0].UID != vip.UID {
		t.Errorf("owners %+v, want the VirtualIP mw (%s)", own, vip.UID)
	}
	// Its node's field manager alone: the admission policy lets nobody else write it.
	var managers []string
	for _, f := range m.ManagedFields {
		managers = append(managers, f.Manager+" "+string(f.Operation))
	}
	if !slices.Equal(managers, []string{"kube-vrrp-agent/mw-n1 Apply"}) {
		t.Errorf("managers %q, want the node's apply alone", managers)
	}

	reconcileOnce()
	wantWrites("nothing changed")

	fa.setState("mw", vrrp.Master, vrrp.ReasonMasterDown)
	reconcileOnce()
	wantWrites("MASTER", "PATCH member mw.mw-n1 by kube-vrrp-agent/mw-n1: 200")
	stale := m // the member as first written

	// The VirtualIP no longer takes mw-n1 in, and the agent stopped it: withdrawn.
	if err := admin.Get(ctx, client.ObjectKeyFromObject(vip), vip); err != nil {
		t.Fatal(err)
	}
	vip.Spec.Nodes = []v1alpha1.NodeOverride{{Name: "mw-other"}}
	if err := admin.Update(ctx, vip); err != nil {
		t.Fatal(err)
	}
	fa.mu.Lock()
	fa.configs, fa.statuses = map[string]vrrp.Config{}, nil
	fa.mu.Unlock()

	// A delete of an older version of the member than the API server's is refused.
	if _, err := r.write(ctx, vip, stale, true, v1alpha1.NodeStatus{}, false); !apierrors.IsConflict(err) {
		t.Errorf("withdrawing the member as first written: %v, want a conflict", err)
	}
	if _, err := getMember(ctx, admin, "mw", "mw-n1"); err != nil {
		t.Errorf("the member after a refused withdrawal: %v", err)
	}
	wantWrites("a stale withdrawal", "DELETE member mw.mw-n1 by : 409")

	reconcileOnce()
	wantWrites("withdrawn", "DELETE member mw.mw-n1 by : 200")
	if _, err := getMember(ctx, admin, "mw", "mw-n1"); !apierrors.IsNotFound(err) {
		t.Errorf("the member after its withdrawal: %v, want none", err)
	}
	reconcileOnce()
	wantWrites("withdrawn already")
}

// applyMember writes entry as the member of entry.Name in vip, as that node's agent does, and
// returns it as the API server answered.
func applyMember(t *testing.T, c client.Client, vip *v1alpha1.VirtualIP, entry v1alpha1.NodeStatus) *v1alpha1.VirtualIPMember {
	t.Helper()
	if err := c.Apply(t.Context(), newMemberApply(vip, entry), client.FieldOwner("kube-vrrp-agent/"+entry.Name), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	m, err := getMember(t.Context(), c, vip.Name, entry.Name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The summary's writer prunes the members of nodes that are gone or that the VirtualIP no
// longer selects, each by a delete with the member's UID and resourceVersion as
// preconditions, and writes the summary of the live members: two deletes and one summary
// here. A member its node has written again since it was read is not deleted (409); read
// again, it is.
func TestPruneMembers(t *testing.T) {
	cfg := apiServer(t)
	ctx := t.Context()
	admin := apiClient(t, cfg)
	writes := &apiWrites{}
	cl := apiClient(t, writes.wrap(cfg, ""))
	// pr-n2 exists but is not selected; pr-n3 is named but has no Node.
	createNodes(t, admin, "pr-n1", "pr-n2")
	vip := createVIP(t, admin, "pr", "pr-n1", "pr-n3")
	since := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	applyMember(t, admin, vip, v1alpha1.NodeStatus{Name: "pr-n1", State: "Master", LastTransitionTime: &since})
	applyMember(t, admin, vip, v1alpha1.NodeStatus{Name: "pr-n2", State: "Backup"})
	stale := applyMember(t, admin, vip, v1alpha1.NodeStatus{Name: "pr-n3", State: "Backup"})

	a := &Aggregator{Client: cl, NodeName: "pr-n1", Log: slog.New(slog.DiscardHandler)}
	req := reconcile.Request{NamespacedName: client.ObjectKey{Name: "pr"}}
	if res, err := a.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("Reconcile: %+v, %v", res, err)
	}
	var got []string
	for _, w := range writes.take() {
		got = append(got, w.String())
	}
	slices.Sort(got)
	want := []string{"DELETE member pr.pr-n2 by : 200", "DELETE member pr.pr-n3 by : 200", "PATCH status pr by kube-vrrp-aggregator: 200"}
	if !slices.Equal(got, want) {
		t.Errorf("writes %q, want %q", got, want)
	}
	var left v1alpha1.VirtualIPMemberList
	if err := admin.List(ctx, &left, client.MatchingFields{memberVirtualIPField: "pr"}); err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 1 || left.Items[0].Spec.Node != "pr-n1" {
		t.Errorf("members left: %+v, want pr-n1's alone", left.Items)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(vip), vip); err != nil {
		t.Fatal(err)
	}
	if vip.Status.Master != "pr-n1" || !current(vip, Summarize([]v1alpha1.NodeStatus{left.Items[0].Entry()}, vip.Generation, vip.Spec.VRID)) {
		t.Errorf("summary %+v: want pr-n1's alone", vip.Status)
	}

	// pr-n3 writes its member again (its Node is back, say), twice, and the writer prunes the
	// member it read before the second write.
	stale = applyMember(t, admin, vip, v1alpha1.NodeStatus{Name: "pr-n3", State: "Backup"})
	newer := applyMember(t, admin, vip, v1alpha1.NodeStatus{Name: "pr-n3", State: "Backup", Reason: vrrp.ReasonStarted})
	if err := a.prune(ctx, vip, []*v1alpha1.VirtualIPMember{stale}); !lostRace(err) {
		t.Errorf("pruning a member written since it was read: %v, want a lost race (409)", err)
	}
	if m, err := getMember(ctx, admin, "pr", "pr-n3"); err != nil || m.ResourceVersion != newer.ResourceVersion {
		t.Errorf("the member written since: %v, want it as written", err)
	}
	// Read again, it is pruned.
	writes.take()
	if _, err := a.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := writes.take(); len(got) != 1 || got[0].String() != "DELETE member pr.pr-n3 by : 200" {
		t.Errorf("writes %v, want the delete of pr-n3's member", got)
	}
}

// testNodeAgent is a node's agent as `kube-vrrp agent` runs it, without VRRP: a manager with the
// agent's cache, the StatusReconciler reporting what the fake agent says, and the Aggregator.
type testNodeAgent struct {
	name     string
	agent    *fakeAgent
	rejected *Rejections
	changes  chan struct{}
	// cache reads the manager's cache.
	cache client.Reader
}

// signal tells the StatusReconciler that the agent or a refusal changed.
func (n *testNodeAgent) signal() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}

// set puts the node's instance of vip in state, and signals the change.
func (n *testNodeAgent) set(vip string, state vrrp.State, reason string) {
	n.agent.setState(vip, state, reason)
	n.signal()
}

// startNodeAgent runs the node name's agent against cfg until the test ends.
func startNodeAgent(t *testing.T, cfg *rest.Config, name string, resync time.Duration) *testNodeAgent {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme(t),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptionsFor(cfg),
		Client:                 ClientOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNodeAgent{name: name, agent: newFakeAgent(), rejected: NewRejections(nil), changes: make(chan struct{}, 1), cache: mgr.GetClient()}
	log := slog.New(slog.DiscardHandler)
	if err := (&StatusReconciler{Client: mgr.GetClient(), Reader: mgr.GetClient(), NodeName: name, Agent: n.agent,
		Rejected: n.rejected, Log: log, Changes: n.changes, Resync: resync}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&Aggregator{Client: mgr.GetClient(), NodeName: name, Log: log}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager of %s: %v", name, err)
		}
	})
	return n
}

// A node's member deleted by someone else (a prune of a node thought gone, a user) is written
// again at once, by the member watch (behind, goneSince), not at the next resync, an hour away
// here; and then left alone.
func TestMemberWrittenAgain(t *testing.T) {
	cfg := apiServer(t)
	ctx := t.Context()
	admin := apiClient(t, cfg)
	writes := &apiWrites{}
	createNodes(t, admin, "wa-n1")
	createVIP(t, admin, "wa", "wa-n1")
	n := startNodeAgent(t, writes.wrap(cfg, ""), "wa-n1", time.Hour)
	n.set("wa", vrrp.Master, vrrp.ReasonMasterDown)
	var m *v1alpha1.VirtualIPMember
	eventually(t, 10*time.Second, "the member of wa-n1 MASTER", func() (err error) {
		m, err = getMember(ctx, admin, "wa", "wa-n1")
		if err == nil && m.Status.State != "Master" {
			err = fmt.Errorf("state %s", m.Status.State)
		}
		return err
	})
	writes.settle(time.Second, 10*time.Second)
	writes.take()

	for round := range 3 {
		if err := admin.Delete(ctx, m); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the member written again", func() (err error) {
			var again *v1alpha1.VirtualIPMember
			if again, err = getMember(ctx, admin, "wa", "wa-n1"); err == nil {
				if again.UID == m.UID || again.Status.State != "Master" {
					return fmt.Errorf("member %s in state %s", again.UID, again.Status.State)
				}
				m = again
			}
			return err
		})
		writes.settle(time.Second, 10*time.Second)
		var applies []apiWrite
		for _, w := range writes.take() {
			if w.kind == "member" {
				applies = append(applies, w)
			}
		}
		if len(applies) != 1 || applies[0].method != http.MethodPatch || applies[0].code != http.StatusCreated {
			t.Errorf("round %d: member writes %v, want one apply that creates it", round, applies)
		}
	}
}

// A failover costs exactly three writes, whatever the number of nodes: the old MASTER's
// member, the new MASTER's member and one summary, by the new MASTER (its writer), and nothing
// else; a steady state writes nothing, across resyncs.
func TestFailoverWrites(t *testing.T) {
	cfg := apiServer(t)
	ctx := t.Context()
	admin := apiClient(t, cfg)
	writes := &apiWrites{}
	const resync = 500 * time.Millisecond
	names := []string{"fo-n1", "fo-n2", "fo-n3"}
	createNodes(t, admin, names...)
	createVIP(t, admin, "fo", names...)
	var nodes []*testNodeAgent
	for _, name := range names {
		nodes = append(nodes, startNodeAgent(t, writes.wrap(cfg, name), name, resync))
	}
	nodes[0].set("fo", vrrp.Master, vrrp.ReasonMasterDown)
	nodes[1].set("fo", vrrp.Backup, vrrp.ReasonStarted)
	nodes[2].set("fo", vrrp.Backup, vrrp.ReasonStarted)
	// waitSummary waits until the summary names master, from three members of whom master
	// alone is MASTER.
	waitSummary := func(master string) {
		t.Helper()
		eventually(t, 10*time.Second, master+" MASTER in the summary", func() error {
			var v v1alpha1.VirtualIP
			if err := admin.Get(ctx, client.ObjectKey{Name: "fo"}, &v); err != nil {
				return err
			}
			if v.Status.Master != master || !meta.IsStatusConditionTrue(v.Status.Conditions, ConditionReady) {
				return fmt.Errorf("summary %+v", v.Status)
			}
			var list v1alpha1.VirtualIPMemberList
			if err := admin.List(ctx, &list, client.MatchingFields{memberVirtualIPField: "fo"}); err != nil {
				return err
			}
			if len(list.Items) != len(names) {
				return fmt.Errorf("%d members", len(list.Items))
			}
			for _, m := range list.Items {
				if (m.Spec.Node == master) != (m.Status.State == "Master") {
					return fmt.Errorf("member of %s: %s", m.Spec.Node, m.Status.State)
				}
			}
			return nil
		})
	}
	waitSummary("fo-n1")
	writes.settle(time.Second, 10*time.Second)
	writes.take()

	time.Sleep(2*resync + resync/2)
	if got := writes.take(); len(got) > 0 {
		t.Errorf("%d writes in a steady state over two resyncs, want none: %v", len(got), got)
	}

	for round := range 4 {
		from, to := nodes[round%2], nodes[(round+1)%2]
		to.set("fo", vrrp.Master, vrrp.ReasonPreempting)
		from.set("fo", vrrp.Backup, vrrp.ReasonHigherPriority)
		waitSummary(to.name)
		writes.settle(time.Second, 10*time.Second)
		var got []string
		for _, w := range writes.take() {
			got = append(got, w.String())
		}
		slices.Sort(got)
		want := []string{
			"PATCH member fo." + from.name + " by kube-vrrp-agent/" + from.name + ": 200 from " + from.name,
			"PATCH member fo." + to.name + " by kube-vrrp-agent/" + to.name + ": 200 from " + to.name,
			"PATCH status fo by kube-vrrp-aggregator: 200 from " + to.name,
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("failover %d, %s to %s: writes %q, want %q", round, from.name, to.name, got, want)
		}
	}
}

// memberWrites returns the writes of members among ws, as strings.
func memberWrites(ws []apiWrite) []string {
	var out []string
	for _, w := range ws {
		if w.kind == "member" {
			out = append(out, w.String())
		}
	}
	return out
}

// A node whose Node is gone (deleted, or --node-name is wrong) writes no member: the summary's
// writer prunes the member of a node that does not exist (Aggregator.stale), and one written
// again at once (TestMemberWrittenAgain) would be pruned again, a loop of writes for as long
// as the agent runs, for every VirtualIP (each is refused NodeNotVisible then). The member it
// had is pruned once; the refusal is a Warning Event. Once the Node is back, the member is
// written again.
func TestMemberOfNodeGone(t *testing.T) {
	cfg := apiServer(t)
	ctx := t.Context()
	admin := apiClient(t, cfg)
	writes := &apiWrites{}
	createNodes(t, admin, "ng-n1")
	createVIP(t, admin, "ng", "ng-n1")
	n := startNodeAgent(t, writes.wrap(cfg, ""), "ng-n1", time.Hour)
	n.set("ng", vrrp.Master, vrrp.ReasonMasterDown)
	eventually(t, 10*time.Second, "the member of ng-n1", func() error {
		_, err := getMember(ctx, admin, "ng", "ng-n1")
		return err
	})
	writes.settle(time.Second, 10*time.Second)
	writes.take()

	// The Node goes; the VirtualIPReconciler refuses every VirtualIP once the cache says so.
	if err := admin.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ng-n1"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the Node gone from the agent's cache", func() error {
		var self corev1.Node
		if err := n.cache.Get(ctx, client.ObjectKey{Name: "ng-n1"}, &self); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Node: %v", err)
		}
		return nil
	})
	n.rejected.Set("ng", Rejection{Reason: ReasonNodeNotVisible, Message: "Node ng-n1 not found; is --node-name right?"})
	n.signal()
	eventually(t, 10*time.Second, "the member of ng-n1 pruned", func() error {
		if _, err := getMember(ctx, admin, "ng", "ng-n1"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("member: %v", err)
		}
		return nil
	})
	writes.settle(2*time.Second, 10*time.Second)
	if got := memberWrites(writes.take()); !slices.Equal(got, []string{"DELETE member ng.ng-n1 by : 200"}) {
		t.Errorf("member writes once the Node is gone: %q, want the prune alone", got)
	}
	if _, err := getMember(ctx, admin, "ng", "ng-n1"); !apierrors.IsNotFound(err) {
		t.Errorf("the member of a node gone: %v, want none", err)
	}

	// The Node is back, the agent runs the VirtualIP again.
	createNodes(t, admin, "ng-n1")
	n.rejected.Clear("ng")
	n.set("ng", vrrp.Backup, vrrp.ReasonStarted)
	eventually(t, 10*time.Second, "the member of ng-n1 again", func() error {
		_, err := getMember(ctx, admin, "ng", "ng-n1")
		return err
	})
	writes.settle(time.Second, 10*time.Second)
	if got := memberWrites(writes.take()); len(got) != 1 {
		t.Errorf("member writes once the Node is back: %q, want one", got)
	}
}
