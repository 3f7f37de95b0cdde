package controllers

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Condition types written by the aggregator; their reasons are in reasons.go.
const (
	// ConditionReady is True while exactly one node is MASTER.
	ConditionReady = "Ready"
	// ConditionDualMaster is True while more than one node is MASTER.
	ConditionDualMaster = "DualMaster"
	// ConditionNoMaster is True while no node is MASTER.
	ConditionNoMaster = "NoMaster"
	// ConditionForeignRouter is True while a node hears a router that is not a node of the
	// group advertise its VRID with other addresses (see foreignOutsiders).
	ConditionForeignRouter = "ForeignRouter"
)

// maxConditionMessage is the CRD's bound on conditions[].message (metav1.Condition's): a
// message that names every node of a large group could reach it.
const maxConditionMessage = 32768

// AggregatorFieldManager is the server-side-apply manager of master, conditions and
// observedGeneration.
const AggregatorFieldManager = "kube-vrrp-aggregator"

// Aggregator summarises the members of each VirtualIP (the VirtualIPMembers, each node's
// entry) into the VirtualIP's status: status.master, the conditions and observedGeneration; it
// prunes the members of nodes that are gone or no longer selected. It never affects VRRP
// (docs/design.md §7.6, §7.7).
//
// There is no leader and no Lease: every agent runs one, in its node manager, and each decides
// from the members in its cache alone whether it is the writer of a VirtualIP's summary
// (writers): the node the summary names as MASTER, or without one the first member by name.
// Every agent reads the same members, so one of them writes, once per change, whatever the
// number of nodes. The writer applies under AggregatorFieldManager with the VirtualIP's
// resourceVersion as a precondition: a summary written meanwhile by another agent (or a spec
// changed since) is not written over (409), and the summary is computed again. The members are
// objects of their own, which the precondition does not cover: a member changed after the
// summary was computed is summarised again by its own watch event, summaryBatch later. A writer
// cut off from the API server cannot hold the summary hostage: the stand-by (the first other
// member by name) writes a summary that has stayed stale for Takeover.
type Aggregator struct {
	// Client reads VirtualIPs, VirtualIPMembers (by the indexes of indexMembers) and Nodes
	// (the manager's cache), writes VirtualIP status and deletes the members it prunes.
	Client client.Client
	// NodeName is this agent's node.
	NodeName string
	Log      *slog.Logger
	// Takeover is how long the stand-by lets a stale summary stand before it writes it; 0 is
	// takeover.
	Takeover time.Duration

	mu sync.Mutex
	// staleSince: VirtualIP -> when this node, not its writer, first found its summary stale.
	staleSince map[string]time.Time
}

// retryRace is when a summary or a prune that lost a race to another writer is tried again.
// The other writer's change, once in the cache, triggers a new reconcile by itself; this is
// a bound, not the usual path.
const retryRace = 500 * time.Millisecond

const (
	// summaryBatch is how long after a change of a VirtualIP or of one of its members its
	// summary is computed: the members of one takeover (the new MASTER's and the old one's,
	// written within milliseconds of each other) make one summary, not one each.
	summaryBatch = 250 * time.Millisecond
	// takeover is Aggregator.Takeover's default: far beyond the writer's usual delay
	// (summaryBatch and a write), short enough for a summary that waits for it.
	takeover = 5 * time.Second
	// everySpread bounds the wait of each agent before it writes a summary that no member
	// writes (no live member; see spread): most find it written by then.
	everySpread = time.Second
)

// Summary is what the aggregator derives from the members' entries; pure, for tests.
type Summary struct {
	Master     string
	Conditions []metav1.Condition
}

// Summarize computes status.master and the conditions from the entries of the live members of
// a VirtualIP of VRID vrid.
func Summarize(nodes []v1alpha1.NodeStatus, generation int64, vrid int32) Summary {
	masters, master := mastersOf(nodes)
	var faults int
	for _, n := range nodes {
		if n.State == vrrp.Fault.String() {
			faults++
		}
	}
	cond := func(t string, ok bool, reason, msg string) metav1.Condition {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: st, Reason: reason, Message: truncate(msg, maxConditionMessage),
			ObservedGeneration: generation}
	}
	var s Summary
	switch {
	case len(masters) == 1:
		s.Master = masters[0]
		s.Conditions = []metav1.Condition{
			cond(ConditionReady, true, ReasonOneMaster, "node "+masters[0]+" holds the addresses"),
			cond(ConditionDualMaster, false, ReasonSingleMaster, "one node is MASTER"),
			cond(ConditionNoMaster, false, ReasonMasterElected, "node "+masters[0]+" is MASTER"),
		}
	case len(masters) > 1:
		// Report one anyway so `kubectl get vip` shows something; the DualMaster condition says
		// it is not the whole truth (see mastersOf).
		s.Master = master
		msg := "nodes " + strings.Join(masters, ", ") + " are all MASTER: adverts are not getting through (check VRID, authentication, firewall, multicast)"
		s.Conditions = []metav1.Condition{
			cond(ConditionReady, false, ReasonDualMaster, msg),
			cond(ConditionDualMaster, true, ReasonDualMaster, msg),
			cond(ConditionNoMaster, false, ReasonMastersPresent, msg),
		}
	default:
		reason, msg := ReasonNoMaster, "no node is MASTER"
		switch {
		case len(nodes) == 0:
			// Read in `kubectl describe vip`: the members are the nodes spec.nodeSelector
			// matches, or without it exactly those spec.nodes names (desired.Selects).
			reason, msg = ReasonNoNodes, "no node runs this VirtualIP: check its members, the nodes spec.nodeSelector matches "+
				"(or, without spec.nodeSelector, exactly the nodes spec.nodes names): that they exist, that the agent runs on them, "+
				"and that they have an interface in the subnet of the first address (a node without one reports only if spec.nodes names it)"
		case faults == len(nodes):
			reason, msg = ReasonAllFault, "every node is in FAULT (probes failing or configuration rejected): see each member's reason and message (kubectl get vipm --field-selector spec.virtualIP=NAME)"
		}
		s.Conditions = []metav1.Condition{
			cond(ConditionReady, false, reason, msg),
			cond(ConditionDualMaster, false, reason, msg),
			cond(ConditionNoMaster, true, reason, msg),
		}
	}
	// A foreign router does not make the group not Ready by itself: Ready says whether one
	// node holds the addresses, which stays true while a stranger's adverts are dropped, and
	// when it takes part and wins, no node is MASTER and Ready says so. ForeignRouter says why
	// the group is at risk, and what to change, without hiding whether it works now.
	if heard := foreignOutsiders(nodes); len(heard) > 0 {
		s.Conditions = append(s.Conditions, cond(ConditionForeignRouter, true, ReasonVRIDInUse, foreignMessage(vrid, heard)))
	} else {
		s.Conditions = append(s.Conditions, cond(ConditionForeignRouter, false, ReasonNoForeign,
			fmt.Sprintf("no node hears another router advertise VRID %d with other addresses", vrid)))
	}
	return s
}

// mastersOf returns the nodes whose entry says MASTER, sorted, and the one a summary names:
// the one that took over last. A node becomes MASTER only after it stopped hearing a better
// one, so an older claim is most likely the entry of a master cut off from the LAN (and from
// the API server, so it cannot correct it), and the newest is the one the rest of the LAN
// follows. Ties: the first by name.
func mastersOf(nodes []v1alpha1.NodeStatus) (masters []string, newest string) {
	since := map[string]time.Time{} // a master's lastTransitionTime
	for _, n := range nodes {
		if n.State == vrrp.Master.String() {
			masters = append(masters, n.Name)
			if n.LastTransitionTime != nil {
				since[n.Name] = n.LastTransitionTime.Time
			}
		}
	}
	slices.Sort(masters)
	for _, m := range masters {
		if newest == "" || since[m].After(since[newest]) {
			newest = m
		}
	}
	return masters, newest
}

// writers returns who writes the summary of a VirtualIP, from the entries of its live members
// (of nodes that exist and that it selects): the node the summary names as MASTER, or, with
// none, the first by name; and the stand-by, the first other node by name, which writes
// in its place a summary left stale for Aggregator.Takeover. With no live member both are
// empty: every agent writes.
func writers(live []v1alpha1.NodeStatus) (writer, standby string) {
	names := make([]string, 0, len(live))
	for _, n := range live {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "", ""
	}
	_, writer = mastersOf(live)
	if writer == "" {
		writer = names[0]
	}
	for _, n := range names {
		if n != writer {
			return writer, n
		}
	}
	return writer, ""
}

// writersOf returns what writers returns for the live members among members, looking at the
// staleness of the candidates alone (the MASTERs, newest first, then the members by name) until
// both are found, instead of every member's.
func writersOf(members []*v1alpha1.VirtualIPMember, stale func(string) (bool, error)) (writer, standby string, err error) {
	var masters []*v1alpha1.VirtualIPMember
	names := make([]string, 0, len(members))
	for _, m := range members {
		names = append(names, m.Spec.Node)
		if m.Status.State == vrrp.Master.String() {
			masters = append(masters, m)
		}
	}
	slices.Sort(names)
	since := func(m *v1alpha1.VirtualIPMember) time.Time {
		if m.Status.LastTransitionTime == nil {
			return time.Time{}
		}
		return m.Status.LastTransitionTime.Time
	}
	slices.SortFunc(masters, func(x, y *v1alpha1.VirtualIPMember) int {
		if c := since(y).Compare(since(x)); c != 0 {
			return c
		}
		return cmp.Compare(x.Spec.Node, y.Spec.Node)
	})
	live := func(n string) (bool, error) {
		g, err := stale(n)
		return !g && err == nil, err
	}
	for _, m := range masters {
		ok, err := live(m.Spec.Node)
		if err != nil {
			return "", "", err
		}
		if ok {
			writer = m.Spec.Node
			break
		}
	}
	for _, n := range names {
		if writer != "" && standby != "" {
			break
		}
		if n == writer {
			continue
		}
		ok, err := live(n)
		if err != nil {
			return "", "", err
		}
		if !ok {
			continue
		}
		if writer == "" {
			writer = n
		} else {
			standby = n
		}
	}
	return writer, standby, nil
}

// Reconcile prunes the members of nodes that are gone or no longer selected, then applies the
// summary, if this agent is the VirtualIP's writer (see writers), or its stand-by and the
// summary has stayed stale. Losing a race to another writer is not an error: it is tried
// again with the newer object.
func (a *Aggregator) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var vip v1alpha1.VirtualIP
	if err := a.Client.Get(ctx, types.NamespacedName{Name: req.Name}, &vip); err != nil {
		if apierrors.IsNotFound(err) {
			a.fresh(req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	members, misnamed, err := membersOf(ctx, a.Client, vip.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	var live []v1alpha1.NodeStatus
	stale := misnamed
	selects := selectorOf(&vip)
	seen := map[string]bool{} // node -> stale, for those looked at
	staleNode := func(node string) (bool, error) {
		if g, ok := seen[node]; ok {
			return g, nil
		}
		g, err := a.stale(ctx, selects, node)
		if err == nil {
			seen[node] = g
		}
		return g, err
	}
	// Who writes, looking at the Nodes of the candidates alone: a node that is neither the
	// writer nor the stand-by stops here. Every agent summarises every change of a member, so
	// the others' reconciles must be cheap: at 500 members, checking every member's Node in
	// each of them kept the writer's own reconcile waiting for the CPU for seconds.
	writer, standby, err := writersOf(members, staleNode)
	if err != nil {
		return reconcile.Result{}, err
	}
	if writer != "" && writer != a.NodeName && standby != a.NodeName {
		a.fresh(vip.Name)
		return reconcile.Result{}, nil
	}
	for _, m := range members {
		gone, err := staleNode(m.Spec.Node)
		if err != nil {
			return reconcile.Result{}, err
		}
		if gone {
			stale = append(stale, m)
		} else {
			live = append(live, m.Entry())
		}
	}
	sum := Summarize(live, vip.Generation, vip.Spec.VRID)
	if len(stale) == 0 && current(&vip, sum) {
		a.fresh(vip.Name)
		return reconcile.Result{}, nil // nothing to write
	}
	// The writer and stand-by found above: what writers(live) names (TestWritersOfAgreesWithWriters).
	switch {
	case writer == a.NodeName:
		a.fresh(vip.Name)
	case writer == "":
		// No member reports (the VirtualIP selects no node, or only nodes without an agent or
		// off its link): every agent writes, each after a wait of its own, and the
		// preconditions make them agree.
		if wait := a.wait(vip.Name, spread(a.NodeName, vip.Name)); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
	case standby == a.NodeName:
		wait := a.wait(vip.Name, cmp.Or(a.Takeover, takeover))
		if wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
		a.Log.Info("the summary has been stale too long: writing it in place of its writer", "vip", vip.Name, "writer", writer)
	default:
		a.fresh(vip.Name)
		return reconcile.Result{}, nil // another node writes it
	}
	if err := a.prune(ctx, &vip, stale); err != nil {
		if lostRace(err) {
			a.Log.Debug("a member changed while pruning; retrying", "vip", vip.Name, "err", err)
			return reconcile.Result{RequeueAfter: retryRace}, nil
		}
		return reconcile.Result{}, err
	}
	if current(&vip, sum) {
		a.fresh(vip.Name)
		return reconcile.Result{}, nil // pruning was all there was to do
	}
	// The resourceVersion is a precondition: a summary written since by another agent, which
	// this one has not seen, is not written over; this one is computed again once it has.
	apply := newStatusApply(vip.Name, vip.ResourceVersion, summaryStatus{
		ObservedGeneration: vip.Generation, Master: sum.Master,
		Conditions: withTransitionTimes(sum.Conditions, vip.Status.Conditions, metav1.Now()),
	})
	err = a.Client.Status().Apply(ctx, apply, client.FieldOwner(AggregatorFieldManager), client.ForceOwnership)
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, nil
	case apierrors.IsConflict(err):
		// The object changed since it was read (another agent's summary, the spec): this
		// summary may be stale and was not written.
		a.Log.Debug("status changed since it was read; summarising again", "vip", vip.Name, "resourceVersion", vip.ResourceVersion)
		return reconcile.Result{RequeueAfter: retryRace}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("applying the status summary of %s: %w", vip.Name, err)
	}
	a.fresh(vip.Name)
	return reconcile.Result{}, nil
}

// wait returns how long this node still waits, after it first found the summary of name stale
// and did not write it, before it writes it: after delay. It is 0 once delay has passed.
func (a *Aggregator) wait(name string, delay time.Duration) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	since, ok := a.staleSince[name]
	if !ok {
		if a.staleSince == nil {
			a.staleSince = map[string]time.Time{}
		}
		a.staleSince[name] = now
		since = now
	}
	return max(0, delay-now.Sub(since))
}

// spread is how long node waits before it writes the summary of the VirtualIP name that no
// member writes: in [0, everySpread), the same every time, different from node to node.
func spread(node, name string) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(node + "\x00" + name))
	return time.Duration(h.Sum64() % uint64(everySpread))
}

// fresh forgets that the summary of name was found stale.
func (a *Aggregator) fresh(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.staleSince, name)
}

// stale reports whether the member of node in vip is to be pruned: the node is gone, or vip no
// longer selects it.
func (a *Aggregator) stale(ctx context.Context, selects func(node string, labels map[string]string) bool, node string) (bool, error) {
	var n corev1.Node
	// Read only: the cache's labels, not a copy (every agent looks at every member's Node
	// whenever a member of the VirtualIP changes).
	err := a.Client.Get(ctx, types.NamespacedName{Name: node}, &n, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, err
	}
	return !selects(n.Name, n.Labels), nil
}

// selectorOf returns whether vip selects a node (desired.Selects), its selector parsed once. A
// selector that cannot be parsed selects every node here: no member is pruned for it (the
// agents refuse the VirtualIP with InvalidSpec).
func selectorOf(vip *v1alpha1.VirtualIP) func(node string, labels map[string]string) bool {
	if vip.Spec.NodeSelector == nil {
		return func(node string, _ map[string]string) bool {
			ok, err := desired.Selects(vip, node, nil)
			return ok || err != nil
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(vip.Spec.NodeSelector)
	if err != nil {
		return func(string, map[string]string) bool { return true }
	}
	return func(_ string, l map[string]string) bool { return sel.Matches(labels.Set(l)) }
}

// current reports whether vip's status already says what sum does, for its generation.
func current(vip *v1alpha1.VirtualIP, sum Summary) bool {
	st := vip.Status
	if st.Master != sum.Master || st.ObservedGeneration != vip.Generation || len(st.Conditions) != len(sum.Conditions) {
		return false
	}
	for _, c := range sum.Conditions {
		old := meta.FindStatusCondition(st.Conditions, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message ||
			old.ObservedGeneration != c.ObservedGeneration {
			return false
		}
	}
	return true
}

// withTransitionTimes returns conds with their lastTransitionTime: the old condition's of the
// same type if its status is the same, now otherwise.
func withTransitionTimes(conds, old []metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(conds))
	for _, c := range conds {
		if o := meta.FindStatusCondition(old, c.Type); o != nil && o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
		} else {
			c.LastTransitionTime = now
		}
		out = append(out, c)
	}
	return out
}

// lostRace reports whether err is the API server refusing a write because another writer
// changed the object first: a stale resourceVersion or UID (409).
func lostRace(err error) bool {
	return apierrors.IsConflict(err)
}

// prune deletes the members of vip in stale, of nodes that no longer exist or are no longer
// selected. Each delete has the member's UID and resourceVersion as preconditions, so it never
// deletes a member its node has just written again (a node that came back, or was selected
// again): the API server refuses it (409), and the reconcile is tried again.
func (a *Aggregator) prune(ctx context.Context, vip *v1alpha1.VirtualIP, stale []*v1alpha1.VirtualIPMember) error {
	for _, m := range stale {
		a.Log.Info("pruning member", "vip", vip.Name, "node", m.Spec.Node)
		err := a.Client.Delete(ctx, m.DeepCopy(), client.Preconditions{UID: &m.UID, ResourceVersion: &m.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("pruning the member of node %s in %s: %w", m.Spec.Node, vip.Name, err)
		}
	}
	return nil
}

// nodeEvents enqueues, for a Node's creation, deletion or change of labels, the VirtualIPs with
// a member of it. Whether a member is live (stale) depends on its Node's existence and labels,
// not on its addresses, and a Node without a member is in no summary.
func (a *Aggregator) nodeEvents() handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) {
			// The Nodes of the informer's first list: every VirtualIP is summarised after the
			// sync anyway (its own first-list event).
			if e.IsInInitialList {
				return
			}
			a.enqueueMembers(ctx, q, e.Object.GetName())
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			if o, n := asNode(e.ObjectOld), asNode(e.ObjectNew); o == nil || n == nil || !mapsEqual(o.Labels, n.Labels) {
				a.enqueueMembers(ctx, q, e.ObjectNew.GetName())
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) { a.enqueueMembers(ctx, q, e.Object.GetName()) },
	}
}

// enqueueMembers enqueues the VirtualIPs with a member of node.
func (a *Aggregator) enqueueMembers(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], node string) {
	for _, req := range a.memberRequests(ctx, node) {
		q.Add(req)
	}
}

// memberRequests returns the VirtualIPs with a member of node: those whose summary a change of
// the Node (its existence, its labels) can change.
func (a *Aggregator) memberRequests(ctx context.Context, node string) []reconcile.Request {
	// Read only, as the cache holds them: not copied.
	var list v1alpha1.VirtualIPMemberList
	if err := a.Client.List(ctx, &list, client.MatchingFields{memberNodeField: node}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Spec.VirtualIP}})
	}
	return out
}

// Cache indexes of VirtualIPMembers: by spec.virtualIP (the members of a VirtualIP) and by
// spec.node (a node's members).
const (
	memberVirtualIPField = "spec.virtualIP"
	memberNodeField      = "spec.node"
)

// memberIndexes extract the values of the member indexes, by field.
var memberIndexes = map[string]client.IndexerFunc{
	memberVirtualIPField: func(o client.Object) []string {
		if m, ok := o.(*v1alpha1.VirtualIPMember); ok {
			return []string{m.Spec.VirtualIP}
		}
		return nil
	},
	memberNodeField: func(o client.Object) []string {
		if m, ok := o.(*v1alpha1.VirtualIPMember); ok {
			return []string{m.Spec.Node}
		}
		return nil
	},
}

// indexMembers adds the member indexes to mgr's cache, once: the aggregator and the status
// reconciler both read them.
func indexMembers(ctx context.Context, mgr ctrl.Manager) error {
	for field, extract := range memberIndexes {
		err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.VirtualIPMember{}, field, extract)
		// Set up already by the other controller of this manager.
		if err != nil && !strings.Contains(err.Error(), "indexer conflict") {
			return fmt.Errorf("indexing VirtualIPMembers by %s: %w", field, err)
		}
	}
	return nil
}

// membersOf returns the members of the VirtualIP name from the cache, as it holds them: read
// only, never changed. A member whose name is not MemberName of its spec is not one: no agent
// writes it (a node that took another's name, or a second member of its own); it is left out,
// and returned apart, for the summary's writer to delete.
func membersOf(ctx context.Context, r client.Reader, name string) (members, misnamed []*v1alpha1.VirtualIPMember, err error) {
	var list v1alpha1.VirtualIPMemberList
	if err := r.List(ctx, &list, client.MatchingFields{memberVirtualIPField: name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, fmt.Errorf("listing the members of %s: %w", name, err)
	}
	members = make([]*v1alpha1.VirtualIPMember, 0, len(list.Items))
	for i := range list.Items {
		switch m := &list.Items[i]; {
		case m.Spec.VirtualIP != name:
		case m.Misnamed():
			misnamed = append(misnamed, m)
		default:
			members = append(members, m)
		}
	}
	return members, misnamed, nil
}

// SetupWithManager registers the aggregator in the node's manager: no leader election. A
// change of a VirtualIP is summarised summaryBatch later, with whatever else changed meanwhile.
func (a *Aggregator) SetupWithManager(mgr ctrl.Manager) error {
	later := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], obj client.Object) {
		q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: obj.GetName()}}, summaryBatch)
	}
	laterMember := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], obj client.Object) {
		if m, ok := obj.(*v1alpha1.VirtualIPMember); ok {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: m.Spec.VirtualIP}}, summaryBatch)
		}
	}
	batched := handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			later(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			later(q, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			later(q, e.Object)
		},
	}
	if err := indexMembers(context.Background(), mgr); err != nil {
		return err
	}
	memberBatched := handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			// The first list: every VirtualIP is summarised after the sync anyway.
			if !e.IsInInitialList {
				laterMember(q, e.Object)
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			laterMember(q, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			laterMember(q, e.Object)
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("virtualip-aggregator").
		Watches(&v1alpha1.VirtualIP{}, batched).
		Watches(&v1alpha1.VirtualIPMember{}, memberBatched).
		Watches(&corev1.Node{}, a.nodeEvents(), builder.WithPredicates(nodeChanged())).
		// Every agent may write; registered again in a new manager when the last one failed.
		WithOptions(controller.Options{NeedLeaderElection: ptrTo(false), SkipNameValidation: ptrTo(true)}).
		Complete(a)
}
