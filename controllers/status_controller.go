package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// StatusReconciler writes this node's entry of status.nodes with server-side apply, under a
// field manager of its own, so agents never overwrite each other. An entry says what is, not
// what happened: it is built from the agent's snapshot each time, so a write that coalesces a
// burst of transitions, or fails, cannot leave a wrong entry behind (transitions become Events
// through EventReporter, from the typed stream). It is fed by the agent's change signal; the
// work queue coalesces bursts per VirtualIP and retries failed writes with a short backoff, so
// status catches up within seconds once the API server is back. Nothing here can change VRRP
// state: it only reads snapshots. It also records the Events that status alone knows of: a
// refusal (refusalEvent) and a foreign router that is not a member (foreignEvents).
type StatusReconciler struct {
	// Client writes status; Reader reads VirtualIPs from the cache.
	Client   client.Client
	Reader   client.Reader
	NodeName string
	Agent    Agent
	Rejected *Rejections
	Recorder events.EventRecorder
	Log      *slog.Logger
	// Changes signals that the agent's state changed (agent.Agent.Changes) or a rejection did.
	Changes <-chan struct{}
	// Resync re-sends every entry this often, to repair what another writer removed.
	Resync time.Duration

	lastRefusal map[string]Rejection       // VirtualIP -> last refusal reported, for Events
	lastForeign map[string]map[string]bool // VirtualIP -> foreign routers heard, for Events
	// foreignEventTimes: VirtualIP -> times of its recent ForeignRouter Events (a bound).
	foreignEventTimes map[string][]time.Time
}

// FieldManager is the server-side-apply manager of this node's status entry.
func (r *StatusReconciler) FieldManager() string { return "kube-vrrp-agent/" + r.NodeName }

// Reconcile applies this node's entry of one VirtualIP's status.
func (r *StatusReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	name := req.Name
	var vip v1alpha1.VirtualIP
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: name}, &vip); err != nil {
		if apierrors.IsNotFound(err) {
			delete(r.lastRefusal, name)
			delete(r.lastForeign, name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	refusal, refused := r.Rejected.Get(name)
	entry, ok := r.entry(name)
	if !ok && !slices.ContainsFunc(vip.Status.Nodes, func(n v1alpha1.NodeStatus) bool { return n.Name == r.NodeName }) {
		return reconcile.Result{}, nil // nothing to report and nothing to withdraw
	}
	err := r.Client.Status().Apply(ctx, newStatusApply(name, "", newEntryStatus(entry, ok)),
		client.FieldOwner(r.FieldManager()), client.ForceOwnership)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("applying status of %s: %w", name, err)
	}
	r.refusalEvent(&vip, refusal, refused)
	r.foreignEvents(&vip, entry, ok)
	return reconcile.Result{}, nil
}

// entry builds this node's status entry of name from the rejection or the agent's snapshot.
func (r *StatusReconciler) entry(name string) (v1alpha1.NodeStatus, bool) {
	if why, ok := r.Rejected.Get(name); ok {
		return v1alpha1.NodeStatus{Name: r.NodeName, State: vrrp.Fault.String(), Reason: why.Reason,
			Message: truncate(why.Message, maxMessage)}, true
	}
	for _, st := range r.Agent.Snapshot() {
		if st.Name == name {
			return statusEntry(r.NodeName, st, time.Now()), true
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

// SetupWithManager feeds the reconciler from the agent's change signal and a periodic resync.
func (r *StatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.lastRefusal = map[string]Rejection{}
	r.lastForeign = map[string]map[string]bool{}
	if r.Resync == 0 {
		r.Resync = time.Minute
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
		WithOptions(controller.Options{
			NeedLeaderElection: ptrTo(false),
			// Registered again in a new manager when the last one failed.
			SkipNameValidation: ptrTo(true),
			// Short backoff: once the API server is back, status must catch up in seconds.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](50*time.Millisecond, 5*time.Second),
		}).
		Complete(r)
}

// feed turns change signals into one event per VirtualIP this node runs, rejects, or ran.
func (r *StatusReconciler) feed(ctx context.Context, out chan<- event.TypedGenericEvent[*v1alpha1.VirtualIP]) {
	tick := time.NewTicker(r.Resync)
	defer tick.Stop()
	known := map[string]bool{}
	send := func() {
		names := map[string]bool{}
		for _, n := range r.Agent.Names() {
			names[n] = true
		}
		for _, n := range r.Rejected.Names() {
			names[n] = true
		}
		// A VirtualIP this node stopped running gets one more event, to withdraw its entry.
		for n := range known {
			names[n] = true
		}
		known = map[string]bool{}
		for n := range names {
			if slices.Contains(r.Agent.Names(), n) {
				known[n] = true
			} else if _, ok := r.Rejected.Get(n); ok {
				known[n] = true
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
	send()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Changes:
			send()
		case <-tick.C:
			send()
		}
	}
}

type runnable func(ctx context.Context) error

func (f runnable) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: every node reports its own state.
func (runnable) NeedLeaderElection() bool { return false }
