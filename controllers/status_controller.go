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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
// field manager of its own, so agents never overwrite each other. It is fed by the agent's
// change signal; the work queue coalesces bursts per VirtualIP and retries failed writes with
// a short backoff, so status catches up within seconds once the API server is back. Nothing
// here can change VRRP state: it only reads snapshots.
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

	last        map[string]string          // VirtualIP -> last state reported, for Events
	lastProbe   map[string]bool            // VirtualIP and probe -> last health reported, for Events
	lastRefusal map[string]string          // VirtualIP -> last refusal reported, for Events
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
			delete(r.last, name)
			delete(r.lastRefusal, name)
			delete(r.lastForeign, name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	refusal, refused := r.Rejected.Get(name)
	entry, ok := r.entry(name)
	nodes := []any{}
	if ok {
		nodes = append(nodes, entry)
	} else if !slices.ContainsFunc(vip.Status.Nodes, func(n v1alpha1.NodeStatus) bool { return n.Name == r.NodeName }) {
		return reconcile.Result{}, nil // nothing to report and nothing to withdraw
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "VirtualIP",
		"metadata":   map[string]any{"name": name},
		"status":     map[string]any{"nodes": nodes},
	}}
	err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(r.FieldManager()), client.ForceOwnership)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("applying status of %s: %w", name, err)
	}
	r.event(&vip, entry, ok)
	r.refusalEvent(&vip, refusal, refused)
	r.foreignEvents(&vip, entry, ok)
	if ok {
		r.probeEvents(&vip, entry)
	}
	return reconcile.Result{}, nil
}

// entry builds this node's status entry of name from the agent's snapshot or the rejection.
func (r *StatusReconciler) entry(name string) (map[string]any, bool) {
	if reason, ok := r.Rejected.Get(name); ok {
		return map[string]any{"name": r.NodeName, "state": vrrp.Fault.String(), "reason": reason}, true
	}
	for _, st := range r.Agent.Snapshot() {
		if st.Name == name {
			return statusEntry(r.NodeName, st, time.Now()), true
		}
	}
	return nil, false
}

// statusEntry is node's entry for the snapshot st, taken at now.
func statusEntry(node string, st agent.Status, now time.Time) map[string]any {
	e := map[string]any{
		"name":      node,
		"state":     st.State.String(),
		"priority":  int64(st.Priority),
		"interface": st.Interface,
	}
	if st.Primary.IsValid() {
		e["address"] = st.Primary.WithZone("").String()
	}
	reason := st.Reason
	if st.Message != "" {
		reason += ": " + st.Message
	}
	if st.Adjustment != "" && reason != "" {
		reason += ": " + st.Adjustment
	} else if st.Adjustment != "" {
		reason = st.Adjustment
	}
	// What the host failed to do and is retrying (binding or removing the addresses): the
	// state alone (Fault, AddressBindFailed) does not say why, and a failed removal changes
	// no state at all, while a copy of the addresses may be left on the link.
	if st.HostError != "" && reason != "" {
		reason += "; " + st.HostError
	} else if st.HostError != "" {
		reason = st.HostError
	}
	if reason != "" {
		e["reason"] = truncate(reason, maxReason)
	}
	if !st.Since.IsZero() {
		// With its fraction of a second (RFC 3339 allows it, metav1.Time parses it): the
		// aggregator tells two MASTER claims apart by it, and a failover can come within the
		// second of the previous transition.
		e["lastTransitionTime"] = st.Since.UTC().Format(time.RFC3339Nano)
	}
	if len(st.Probes) > 0 {
		probes := make([]any, 0, len(st.Probes))
		for _, p := range st.Probes {
			ps := map[string]any{"name": p.Name}
			if p.Known {
				ps["healthy"] = p.Healthy
				ps["lastTransitionTime"] = p.Since.UTC().Format(time.RFC3339)
				if p.Reason != "" {
					ps["message"] = truncate(p.Reason, maxReason)
				}
			}
			probes = append(probes, ps)
		}
		e["probes"] = probes
	}
	if fr := foreignEntries(st.Foreign, now); len(fr) > 0 {
		e["foreignRouters"] = fr
	}
	return e
}

// event records a transition of this node as an Event on the VirtualIP.
func (r *StatusReconciler) event(vip *v1alpha1.VirtualIP, entry map[string]any, ok bool) {
	state := ""
	if ok {
		state, _ = entry["state"].(string)
	}
	prev, known := r.last[vip.Name]
	r.last[vip.Name] = state
	if r.Recorder == nil || state == "" || (known && prev == state) {
		return
	}
	reason, _ := entry["reason"].(string)
	kind := corev1.EventTypeNormal
	if state == vrrp.Fault.String() {
		kind = corev1.EventTypeWarning
	}
	from := prev
	if from == "" {
		from = "None"
	}
	r.Recorder.Eventf(vip, nil, kind, "Became"+state, "Transition", "node %s: %s -> %s: %s",
		r.NodeName, from, state, truncate(reason, 512))
}

// refusalEvent records why this node refuses the VirtualIP, each time that changes, as a
// Warning Event whose reason is the refusal's (VRIDConflict, SecretMissing, ...): the state
// alone says Fault, and stays Fault when the cause changes (a conflict's winner is deleted and
// an older one takes its place, a missing Secret appears with a wrong key).
func (r *StatusReconciler) refusalEvent(vip *v1alpha1.VirtualIP, refusal string, refused bool) {
	if r.lastRefusal == nil {
		r.lastRefusal = map[string]string{}
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
	reason, _, _ := strings.Cut(refusal, ":")
	r.Recorder.Eventf(vip, nil, corev1.EventTypeWarning, reason, "Refuse", "node %s: %s", r.NodeName, truncate(refusal, 512))
}

// probeEvents records each probe health change of this node as an Event on the VirtualIP.
func (r *StatusReconciler) probeEvents(vip *v1alpha1.VirtualIP, entry map[string]any) {
	probes, _ := entry["probes"].([]any)
	for _, p := range probes {
		ps, _ := p.(map[string]any)
		name, _ := ps["name"].(string)
		healthy, known := ps["healthy"].(bool)
		if name == "" || !known {
			continue
		}
		key := vip.Name + "\x00" + name
		prev, seen := r.lastProbe[key]
		r.lastProbe[key] = healthy
		if r.Recorder == nil || (seen && prev == healthy) || (!seen && healthy) {
			continue
		}
		msg, _ := ps["message"].(string)
		if healthy {
			r.Recorder.Eventf(vip, nil, corev1.EventTypeNormal, "ProbeRecovered", "Probe", "node %s: probe %s healthy: %s",
				r.NodeName, name, truncate(msg, 512))
		} else {
			r.Recorder.Eventf(vip, nil, corev1.EventTypeWarning, "ProbeFailed", "Probe", "node %s: probe %s failing: %s",
				r.NodeName, name, truncate(msg, 512))
		}
	}
}

// SetupWithManager feeds the reconciler from the agent's change signal and a periodic resync.
func (r *StatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.last, r.lastProbe, r.lastRefusal = map[string]string{}, map[string]bool{}, map[string]string{}
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
