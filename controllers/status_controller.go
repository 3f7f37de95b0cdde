package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// StatusReconciler writes this node's report on each VirtualIP it takes part in, its
// VirtualIPMember, with server-side apply, under a field manager of its own; no other agent
// writes it (docs/design.md §7.5), and it deletes it when the node no longer takes part. An
// entry (the member's status) says what is, not what happened: it is built from the agent's
// snapshot each time, so a write that coalesces a burst of transitions, or fails, cannot leave
// a wrong entry behind (transitions become Events through EventReporter, from the typed
// stream).
//
// It writes only what differs: the entry it would write is compared with this node's member in
// the cache, and an entry already in place costs no request; so is one whose foreign
// routers differ only in what every advert moves, their count and a lastSeen less than a
// minute behind (entryCurrent). A change of its foreign routers alone within
// foreignWriteEvery of the last such write waits for the rest of that time, and is written as
// it is then (foreignHold). It is fed by the agent's change signal, for the VirtualIPs
// whose entry changed since they were last fed (feed); by the member watch, when this node's
// member changed (another writer removed or altered it); by the VirtualIP watch, when the spec
// changed; and by a periodic resync, a comparison that repairs what was missed.
// The work queue coalesces bursts per VirtualIP and retries failed writes with a short backoff,
// so status catches up within seconds once the API server is back. Nothing here can change
// VRRP state: it only reads snapshots. It also records the Events that status alone knows of:
// a refusal (refusalEvent) and a foreign router that is not a member (foreignEvents).
type StatusReconciler struct {
	// Client writes members; Reader reads VirtualIPs, members and this node's Node from the
	// cache.
	Client   client.Client
	Reader   client.Reader
	NodeName string
	Agent    Agent
	Rejected *Rejections
	// Warnings are what this node says about the VirtualIPs it runs besides their state (their
	// spec.notify not run): added to the member's message, and a Warning Event each.
	Warnings *Warnings
	Recorder events.EventRecorder
	Log      *slog.Logger
	// Changes signals that the agent's state changed (agent.Agent.Changes) or a rejection did.
	Changes <-chan struct{}
	// Resync compares every entry with the cache this often, and writes those that differ: it
	// repairs what another writer removed, if the watch missed it.
	Resync time.Duration

	// written: VirtualIP -> the entry this node last applied, and the member's resourceVersion
	// the API server answered with (or, for a withdrawal, the version it deleted): until the
	// cache has caught up with that version, a cached entry that differs is not worth a write
	// (see behind).
	written     map[string]written
	lastRefusal map[string]Rejection       // VirtualIP -> last refusal reported, for Events
	lastWarning map[string]Warning         // VirtualIP -> last warning reported, for Events
	lastForeign map[string]map[string]bool // VirtualIP -> foreign routers heard, for Events
	// foreignEventTimes: VirtualIP -> times of its recent ForeignRouter Events (a bound).
	foreignEventTimes map[string][]time.Time

	mu sync.Mutex
	// gone: VirtualIP -> the resourceVersion with which the member watch last saw this node's
	// member of it deleted (behind); one per VirtualIP this node had a member of.
	gone map[string]string
}

// FieldManager is the server-side-apply manager of this node's members: "kube-vrrp-agent/<node>",
// or, for a node name too long for a field manager (the API server refuses one over 128
// bytes), its beginning and a hash of the whole name.
func (r *StatusReconciler) FieldManager() string {
	const prefix = "kube-vrrp-agent/"
	if len(prefix)+len(r.NodeName) <= maxFieldManager {
		return prefix + r.NodeName
	}
	sum := sha256.Sum256([]byte(r.NodeName))
	hash := hex.EncodeToString(sum[:])[:16]
	return prefix + r.NodeName[:maxFieldManager-len(prefix)-len(hash)-1] + "-" + hash
}

// maxFieldManager is the longest field manager the API server accepts.
const maxFieldManager = 128

// written is an entry as applied (ok false: withdrawn) and the resourceVersion of the member
// it made (withdrawn: the last one it had); foreignAt is when this node last wrote a change
// of the entry's foreign routers alone (foreignHold).
type written struct {
	entry           v1alpha1.NodeStatus
	ok              bool
	resourceVersion string
	// at is when it was written.
	at        time.Time
	foreignAt time.Time
}

// Reconcile applies this node's member of one VirtualIP, or deletes it, if the cached member
// does not say the same already.
func (r *StatusReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	name := req.Name
	var vip v1alpha1.VirtualIP
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: name}, &vip); err != nil {
		if apierrors.IsNotFound(err) {
			delete(r.lastRefusal, name)
			delete(r.lastWarning, name)
			delete(r.lastForeign, name)
			delete(r.written, name)
			r.mu.Lock()
			delete(r.gone, name)
			r.mu.Unlock()
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	refusal, refused := r.Rejected.Get(name)
	entry, ok := r.entry(name)
	offLink := refused && r.offLink(&vip, refusal)
	if offLink {
		// Not a member in fact: no entry, and no Warning (its refusal is not news to anyone).
		entry, ok, refused = v1alpha1.NodeStatus{}, false, false
	}
	if ok && r.nodeGone(ctx) {
		// This node's Node does not exist (deleted, or --node-name is wrong: the
		// VirtualIPReconciler refuses every VirtualIP then, NodeNotVisible). The summary's
		// writer prunes the member of a node that does not exist (Aggregator.stale), and one
		// written again would be pruned again: a loop of writes for as long as the agent runs,
		// for every VirtualIP. No member; the refusal is a Warning Event.
		entry, ok = v1alpha1.NodeStatus{}, false
	}
	member, had := r.member(ctx, name)
	have := member.Entry()
	// This node neither runs nor refuses a VirtualIP that takes it in: the VirtualIPReconciler
	// has not decided on it yet (at the agent's start both reconcile every VirtualIP, in no set
	// order). The entry left by this node's previous agent stays until the agent runs or
	// refuses it, either of which wakes this reconciler (feed): withdrawn and written again it
	// would be two writes, each sent to every agent, and a MASTER resuming after a restart
	// (docs/design.md §4.9.1) no MASTER in status meanwhile.
	undecided := !ok && had && !offLink && r.takesIn(ctx, &vip)
	var result reconcile.Result
	now := time.Now()
	// A member owned by an older VirtualIP of the same name (deleted and created again) is
	// written again, with its new owner, before the garbage collector deletes it.
	current := entryCurrent(entry, ok, have, had) && (!ok || ownedBy(member, &vip))
	if !undecided && !current && !r.behind(member, had, name, entry, ok, now) {
		last := r.written[name].foreignAt
		if hold := foreignHold(entry, ok, have, had, last, now); hold > 0 {
			// Only foreign routers changed, and this node wrote the entry moments ago: the
			// entry as it is when the hold runs out is written then.
			result.RequeueAfter = hold
		} else {
			rv, err := r.write(ctx, &vip, member, had, entry, ok)
			if err != nil {
				return reconcile.Result{}, err
			}
			if r.written == nil {
				r.written = map[string]written{}
			}
			if foreignOnly(entry, ok, have, had) {
				last = now
			}
			r.written[name] = written{entry: entry, ok: ok, resourceVersion: rv, at: now, foreignAt: last}
		}
	}
	r.refusalEvent(&vip, refusal, refused)
	r.warningEvent(&vip)
	r.foreignEvents(ctx, &vip, entry, ok)
	return result, nil
}

// write applies entry as this node's member of vip, or deletes the member (ok false), and
// returns the resourceVersion the member has then (deleted: the one it had).
func (r *StatusReconciler) write(ctx context.Context, vip *v1alpha1.VirtualIP, member *v1alpha1.VirtualIPMember, had bool,
	entry v1alpha1.NodeStatus, ok bool) (string, error) {
	if !ok {
		if !had {
			return "", nil
		}
		// Only the member the cache has: one written since (by this node's last agent, a
		// moment ago) is compared again when its watch event comes.
		err := r.Client.Delete(ctx, member, client.Preconditions{UID: &member.UID, ResourceVersion: &member.ResourceVersion})
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return member.ResourceVersion, nil
		case apierrors.IsConflict(err):
			return "", fmt.Errorf("withdrawing the member of %s: it changed meanwhile, comparing again: %w", vip.Name, err)
		}
		return "", fmt.Errorf("withdrawing the member of %s: %w", vip.Name, err)
	}
	// Another object under this node's member name (another node's, which the CRD and the
	// admission policy allow only in the hashed form): its spec cannot change, so an apply
	// would fail for good. It is not a member of anyone (misnamed): deleted.
	if other, found := r.named(ctx, vip.Name); found && (other.Spec.VirtualIP != vip.Name || other.Spec.Node != r.NodeName) {
		r.Log.Warn("deleting an object under this node's member name that is not its member", "vip", vip.Name,
			"member", other.Name, "specVirtualIP", other.Spec.VirtualIP, "specNode", other.Spec.Node)
		err := r.Client.Delete(ctx, other, client.Preconditions{UID: &other.UID})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("deleting %s, under the name of this node's member of %s: %w", other.Name, vip.Name, err)
		}
	}
	apply := newMemberApply(vip, entry)
	if err := r.Client.Apply(ctx, apply, client.FieldOwner(r.FieldManager()), client.ForceOwnership); err != nil {
		return "", fmt.Errorf("applying the member of %s: %w", vip.Name, err)
	}
	return ptr.Deref(apply.ResourceVersion, ""), nil
}

// goneSince reports whether the member watch saw this node's member of name deleted at or
// after the resourceVersion rv.
func (r *StatusReconciler) goneSince(name, rv string) bool {
	r.mu.Lock()
	gone, ok := r.gone[name]
	r.mu.Unlock()
	if !ok {
		return false
	}
	c, err := resourceversion.CompareResourceVersion(gone, rv)
	return err != nil || c >= 0
}

// member returns this node's member of the VirtualIP name in the cache, if there is one: a
// copy of the cache's.
func (r *StatusReconciler) member(ctx context.Context, name string) (*v1alpha1.VirtualIPMember, bool) {
	m, found := r.named(ctx, name)
	// A hashed name (docs/design.md §7.5): the spec says whose it is.
	if !found || m.Spec.VirtualIP != name || m.Spec.Node != r.NodeName {
		return &v1alpha1.VirtualIPMember{}, false
	}
	return m, true
}

// named returns the cached object under the name of this node's member of the VirtualIP name,
// whoever's it is.
func (r *StatusReconciler) named(ctx context.Context, name string) (*v1alpha1.VirtualIPMember, bool) {
	var m v1alpha1.VirtualIPMember
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: v1alpha1.MemberName(name, r.NodeName)}, &m); err != nil {
		return nil, false
	}
	return &m, true
}

// ownedBy reports whether member's owner is vip (not an older VirtualIP of the same name,
// which the garbage collector deletes its members with).
func ownedBy(member *v1alpha1.VirtualIPMember, vip *v1alpha1.VirtualIP) bool {
	for _, o := range member.OwnerReferences {
		if o.UID == vip.UID {
			return true
		}
	}
	return false
}

// cacheLag is how long after a write of this node's member the cache may still not show it
// before the write counts as lost to the cache (behind): far beyond a watch's usual delay.
const cacheLag = 30 * time.Second

// behind reports whether the cached member (had false: none) is older than the member this
// node's last write of name made or deleted, and that write already said what entry (ok
// false: none) says (entryCurrent): the cache has not caught up with it yet, and the watch
// event that brings it enqueues name again. A cached entry that differs after that is another
// writer's doing, and is written over. Resource versions are compared as the API server
// defines them for that (integers); one that is not well formed is never behind.
//
// Never for longer than cacheLag after the write, at now: a watch that lost events and
// listed again sends no event of a member it never had (applied and deleted by another in
// the gap), and one of a member deleted in the gap carries the older version it had: behind
// for good, the member would never be written again, not even by a resync.
func (r *StatusReconciler) behind(member *v1alpha1.VirtualIPMember, had bool, name string, entry v1alpha1.NodeStatus, ok bool, now time.Time) bool {
	w, found := r.written[name]
	if !found || !entryCurrent(entry, ok, w.entry, w.ok) || w.resourceVersion == "" || now.Sub(w.at) >= cacheLag {
		return false
	}
	if !had {
		// Deleted, and gone: current. Applied, and not in the cache yet, unless the member
		// watch has seen it deleted since (a prune, a user): then it is written again.
		return w.ok && !r.goneSince(name, w.resourceVersion)
	}
	c, err := resourceversion.CompareResourceVersion(member.ResourceVersion, w.resourceVersion)
	if !w.ok {
		return err == nil && c <= 0 // the member deleted, still in the cache
	}
	return err == nil && c < 0
}

// nodeGone reports whether this node's Node is known not to exist: not found in the cache.
func (r *StatusReconciler) nodeGone(ctx context.Context) bool {
	var self corev1.Node
	return apierrors.IsNotFound(r.Reader.Get(ctx, types.NamespacedName{Name: r.NodeName}, &self))
}

// takesIn reports whether vip takes this node in: it is not being deleted and it selects this
// node (desired.Selects, as the VirtualIPReconciler decides). A Node or selector that cannot be
// read counts as taken in: the VirtualIPReconciler refuses the VirtualIP then (NodeNotVisible,
// InvalidSpec), and the refusal is this node's entry.
func (r *StatusReconciler) takesIn(ctx context.Context, vip *v1alpha1.VirtualIP) bool {
	if !vip.DeletionTimestamp.IsZero() {
		return false
	}
	var self corev1.Node
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: r.NodeName}, &self); err != nil {
		return true
	}
	ok, err := desired.Selects(vip, self.Name, self.Labels)
	return ok || err != nil
}

// offLink reports whether refusal means that this node cannot take part in vip at all (no
// interface in its subnet) while vip does not name it in spec.nodes: then it writes no entry
// (docs/design.md §7.5). A VirtualIP whose selector takes in every node must not grow an entry
// per node of the cluster, while a node it names is one the user expects to see.
func (r *StatusReconciler) offLink(vip *v1alpha1.VirtualIP, refusal Rejection) bool {
	return refusal.OffLink && !slices.ContainsFunc(vip.Spec.Nodes, func(o v1alpha1.NodeOverride) bool { return o.Name == r.NodeName })
}

// entryKey is entry as this node applies it (nodeEntry's JSON: times in UTC, the transition's
// to the nanosecond, empty lists left out), "" for none: two entries with one key are the same
// to the API server. An entry read back from the API server has the key it was applied with.
func entryKey(entry v1alpha1.NodeStatus, ok bool) string {
	if !ok {
		return ""
	}
	b, err := json.Marshal(nodeEntry{entry})
	if err != nil {
		return "unmarshalable: " + err.Error() // never equal to a stored entry's: written
	}
	return string(b)
}

// entryCurrent reports whether the stored entry (have; had false: none) says what this node's
// entry (want; ok false: none) does, so that it costs no write: the same entry as applied
// (entryKey), or one whose foreign routers differ only in count and a lastSeen less than
// foreignSeenStep behind (foreignCurrent). A foreign router heard every second then rewrites
// the entry about once a minute, not every second; any write carries them afresh.
func entryCurrent(want v1alpha1.NodeStatus, ok bool, have v1alpha1.NodeStatus, had bool) bool {
	if entryKey(want, ok) == entryKey(have, had) {
		return true
	}
	if !ok || !had || !foreignCurrent(want.ForeignRouters, have.ForeignRouters) {
		return false
	}
	want.ForeignRouters, have.ForeignRouters = nil, nil
	return entryKey(want, true) == entryKey(have, true)
}

// feedKey is entryKey with the foreign routers as entryCurrent compares them (foreignCoarse):
// it changes whenever the entry may have stopped being current, not with every advert.
func feedKey(entry v1alpha1.NodeStatus, ok bool) string {
	entry.ForeignRouters = foreignCoarse(entry.ForeignRouters)
	return entryKey(entry, ok)
}

// entry builds this node's status entry of name from the rejection or the agent's snapshot.
func (r *StatusReconciler) entry(name string) (v1alpha1.NodeStatus, bool) {
	// One instance's status, not the whole snapshot: a resync of V VirtualIPs would otherwise
	// build V^2 statuses.
	var sts []agent.Status
	if st, ok := r.Agent.StatusOf(name); ok {
		sts = []agent.Status{st}
	}
	return r.entryOf(name, sts, time.Now())
}

// entryOf builds this node's status entry of name from the rejection or the snapshot sts,
// taken at now.
func (r *StatusReconciler) entryOf(name string, sts []agent.Status, now time.Time) (v1alpha1.NodeStatus, bool) {
	if why, ok := r.Rejected.Get(name); ok {
		return v1alpha1.NodeStatus{Name: r.NodeName, State: vrrp.Fault.String(), Reason: why.Reason,
			Message: truncate(why.Message, maxMessage)}, true
	}
	for _, st := range sts {
		if st.Name == name {
			return r.withWarning(name, statusEntry(r.NodeName, st, now)), true
		}
	}
	return v1alpha1.NodeStatus{}, false
}

// statusEntry is node's entry for the snapshot st, taken at now.
func statusEntry(node string, st agent.Status, now time.Time) v1alpha1.NodeStatus {
	e := v1alpha1.NodeStatus{
		Name:      node,
		State:     st.State.String(),
		Priority:  int32(st.Priority),
		Interface: st.Interface,
		Reason:    st.Reason,
		Message:   truncate(entryMessage(st), maxMessage),
	}
	if st.Primary.IsValid() {
		e.Address = st.Primary.WithZone("").String()
	}
	if !st.Since.IsZero() {
		// With its fraction of a second: see nodeEntry.
		e.LastTransitionTime = &metav1.Time{Time: st.Since.UTC()}
	}
	for _, p := range st.Probes {
		ps := v1alpha1.ProbeStatus{Name: p.Name}
		if p.Known {
			ps.Healthy = ptrTo(p.Healthy)
			ps.LastTransitionTime = &metav1.Time{Time: p.Since.UTC().Truncate(time.Second)}
			ps.Message = truncate(p.Reason, maxMessage)
		}
		e.Probes = append(e.Probes, ps)
	}
	e.ForeignRouters = foreignEntries(st.Foreign, now)
	return e
}

// entryMessage says in words what the agent reports beside the reason: why the instance could
// not start, what the probes do to the priority, and what the host failed to do and is
// retrying (binding or removing the addresses: the state alone, Fault with AddressBindFailed,
// does not say why, and a failed removal changes no state at all, while a copy of the
// addresses may be left on the link).
func entryMessage(st agent.Status) string {
	var parts []string
	for _, s := range []string{st.Message, st.Adjustment, st.HostError} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

// refusalEvent records why this node refuses the VirtualIP, each time that changes, as a
// Warning Event whose reason is the refusal's (VRIDConflict, SecretMissing, ...) and whose note
// is its message: the state alone says Fault, and stays Fault when the cause changes (a
// conflict's winner is deleted and an older one takes its place, a missing Secret appears with
// a wrong key).
func (r *StatusReconciler) refusalEvent(vip *v1alpha1.VirtualIP, refusal Rejection, refused bool) {
	if r.lastRefusal == nil {
		r.lastRefusal = map[string]Rejection{}
	}
	if !refused {
		delete(r.lastRefusal, vip.Name)
		return
	}
	if prev, seen := r.lastRefusal[vip.Name]; seen && prev == refusal {
		return
	}
	r.lastRefusal[vip.Name] = refusal
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(vip, nil, corev1.EventTypeWarning, refusal.Reason, "Refuse", "node %s: %s", r.NodeName, truncate(refusal.Message, maxNote))
}

// SetupWithManager feeds the reconciler from the agent's change signal, the VirtualIP watch
// and a periodic resync.
func (r *StatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.lastRefusal = map[string]Rejection{}
	r.lastWarning = map[string]Warning{}
	r.lastForeign = map[string]map[string]bool{}
	r.written = map[string]written{}
	if r.Resync == 0 {
		r.Resync = time.Minute
	}
	if err := indexMembers(context.Background(), mgr); err != nil {
		return err
	}
	events := make(chan event.TypedGenericEvent[*v1alpha1.VirtualIP])
	if err := mgr.Add(runnable(func(ctx context.Context) error {
		r.feed(ctx, events)
		return nil
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("virtualip-status").
		WatchesRawSource(source.Channel(events, &handler.TypedEnqueueRequestForObject[*v1alpha1.VirtualIP]{})).
		// The spec changed (whether spec.nodes names this node decides whether an off-link node
		// has a member, and the member's owner is the VirtualIP): compared at once, not at the
		// next resync. Status writes (the summary) are not this node's business.
		Watches(&v1alpha1.VirtualIP{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool { return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() },
			// At start, every VirtualIP is compared once: a member left from before (the node
			// stopped running it while the agent was away) is withdrawn.
			CreateFunc: func(event.CreateEvent) bool { return true },
			// Forgets what it knew of the VirtualIP (Reconcile finds it gone).
			DeleteFunc: func(event.DeleteEvent) bool { return true },
		})).
		// Another writer removed or changed this node's member (a prune, a user), or the cache
		// caught up with this node's own write: compared again. Other nodes' members are not
		// this node's business.
		Watches(&v1alpha1.VirtualIPMember{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				// The first list: every VirtualIP is compared at start anyway.
				if !e.IsInInitialList {
					r.enqueueMember(q, e.Object, false)
				}
			},
			UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.enqueueMember(q, e.ObjectNew, false)
			},
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.enqueueMember(q, e.Object, true)
			},
		}).
		WithOptions(controller.Options{
			NeedLeaderElection: ptrTo(false),
			// Registered again in a new manager when the last one failed.
			SkipNameValidation: ptrTo(true),
			// Short backoff: once the API server is back, status must catch up in seconds.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](50*time.Millisecond, 5*time.Second),
		}).
		Complete(r)
}

// enqueueMember enqueues the VirtualIP of obj, a member, if it is this node's; deleted records
// that the member is gone (behind).
func (r *StatusReconciler) enqueueMember(q workqueue.TypedRateLimitingInterface[reconcile.Request], obj client.Object, deleted bool) {
	m, ok := obj.(*v1alpha1.VirtualIPMember)
	if !ok || m.Spec.Node != r.NodeName {
		return
	}
	if deleted {
		r.mu.Lock()
		if r.gone == nil {
			r.gone = map[string]string{}
		}
		r.gone[m.Spec.VirtualIP] = m.ResourceVersion
		r.mu.Unlock()
	}
	q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: m.Spec.VirtualIP}})
}

// feed turns change signals into one event per VirtualIP whose entry changed since it was last
// fed: the agent's snapshot of it or its refusal, or that this node stopped running it (the
// event withdraws the entry). Foreign routers count as entryCurrent compares them (feedKey):
// an advert that moves only their count and lastSeen feeds nothing, one whose lastSeen moves
// into the next minute does. Every resync it feeds every VirtualIP this node runs, rejects or
// ran, for Reconcile to compare with the cache; that writes nothing when all is in place.
func (r *StatusReconciler) feed(ctx context.Context, out chan<- event.TypedGenericEvent[*v1alpha1.VirtualIP]) {
	tick := time.NewTicker(r.Resync)
	defer tick.Stop()
	fed := map[string]string{} // VirtualIP -> feedKey when it was last fed
	send := func(all bool) {
		names := map[string]bool{}
		for _, n := range r.Agent.Names() {
			names[n] = true
		}
		for _, n := range r.Rejected.Names() {
			names[n] = true
		}
		// A VirtualIP this node stopped running gets one more event, to withdraw its entry.
		for n := range fed {
			names[n] = true
		}
		sts, now := r.Agent.Snapshot(), time.Now()
		for n := range names {
			key := feedKey(r.entryOf(n, sts, now))
			if prev, seen := fed[n]; seen && prev == key && !all {
				continue
			}
			if key == "" {
				delete(fed, n)
			} else {
				fed[n] = key
			}
			vip := &v1alpha1.VirtualIP{}
			vip.Name = n
			select {
			case out <- event.TypedGenericEvent[*v1alpha1.VirtualIP]{Object: vip}:
			case <-ctx.Done():
				return
			}
		}
	}
	send(true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Changes:
			send(false)
		case <-tick.C:
			send(true)
		}
	}
}

type runnable func(ctx context.Context) error

func (f runnable) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: every node reports its own state.
func (runnable) NeedLeaderElection() bool { return false }
