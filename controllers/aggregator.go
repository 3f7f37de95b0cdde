package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Condition types and reasons written by the aggregator.
const (
	ConditionReady      = "Ready"
	ConditionDualMaster = "DualMaster"
	ConditionNoMaster   = "NoMaster"

	ReasonOneMaster      = "OneMaster"
	ReasonNoMaster       = "NoMaster"
	ReasonDualMaster     = "DualMaster"
	ReasonNoNodes        = "NoNodesReporting"
	ReasonAllFault       = "AllNodesFault"
	ReasonSingleMaster   = "SingleMaster"
	ReasonMasterElected  = "MasterElected"
	ReasonMastersPresent = "MastersPresent"
)

// AggregatorFieldManager is the server-side-apply manager of master, conditions and
// observedGeneration.
const AggregatorFieldManager = "kube-vrrp-aggregator"

// Aggregator summarises the agents' entries of each VirtualIP: status.master, the conditions
// and observedGeneration; it prunes entries of nodes that are gone or no longer selected. It
// runs in one agent at a time (leader election); it never affects VRRP.
type Aggregator struct {
	Client client.Client
	Log    *slog.Logger
}

// Summary is what the aggregator derives from the node entries; pure, for tests.
type Summary struct {
	Master     string
	Conditions []metav1.Condition
}

// Summarize computes status.master and the conditions from the node entries.
func Summarize(nodes []v1alpha1.NodeStatus, generation int64) Summary {
	var masters, faults []string
	newest := map[string]time.Time{} // a master's lastTransitionTime
	for _, n := range nodes {
		switch n.State {
		case vrrp.Master.String():
			masters = append(masters, n.Name)
			if n.LastTransitionTime != nil {
				newest[n.Name] = n.LastTransitionTime.Time
			}
		case vrrp.Fault.String():
			faults = append(faults, n.Name)
		}
	}
	slices.Sort(masters)
	cond := func(t string, ok bool, reason, msg string) metav1.Condition {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: generation}
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
		// it is not the whole truth. The one that took over last: a node becomes MASTER only
		// after it stopped hearing a better one, so an older claim is most likely the entry of a
		// master cut off from the LAN (and from the API server, so it cannot correct it), and
		// the newest is the one the rest of the LAN follows. Ties: the first by name.
		s.Master = masters[0]
		for _, m := range masters[1:] {
			if newest[m].After(newest[s.Master]) {
				s.Master = m
			}
		}
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
			reason, msg = ReasonNoNodes, "no node runs this VirtualIP: check spec.nodeSelector and that the agent runs on the nodes"
		case len(faults) == len(nodes):
			reason, msg = ReasonAllFault, "every node is in FAULT (probes failing or configuration rejected): see status.nodes[].reason"
		}
		s.Conditions = []metav1.Condition{
			cond(ConditionReady, false, reason, msg),
			cond(ConditionDualMaster, false, reason, msg),
			cond(ConditionNoMaster, true, reason, msg),
		}
	}
	return s
}

// Reconcile prunes stale node entries, then applies the summary.
func (a *Aggregator) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var vip v1alpha1.VirtualIP
	if err := a.Client.Get(ctx, types.NamespacedName{Name: req.Name}, &vip); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if err := a.prune(ctx, &vip); err != nil {
		return reconcile.Result{}, err
	}
	sum := Summarize(vip.Status.Nodes, vip.Generation)
	conds := make([]any, 0, len(sum.Conditions))
	for _, c := range sum.Conditions {
		// Keep lastTransitionTime when the status did not change.
		if old := meta.FindStatusCondition(vip.Status.Conditions, c.Type); old != nil && old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = metav1.Now()
		}
		b, err := json.Marshal(c)
		if err != nil {
			return reconcile.Result{}, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return reconcile.Result{}, err
		}
		conds = append(conds, m)
	}
	status := map[string]any{"conditions": conds, "observedGeneration": vip.Generation, "master": sum.Master}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "VirtualIP",
		"metadata":   map[string]any{"name": vip.Name},
		"status":     status,
	}}
	err := a.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(AggregatorFieldManager), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, err
}

// prune removes entries of nodes that no longer exist or are no longer selected. It uses a
// JSON patch that tests each entry's name first, so it never removes an entry another writer
// has just changed places with.
func (a *Aggregator) prune(ctx context.Context, vip *v1alpha1.VirtualIP) error {
	var ops []map[string]any
	for i := len(vip.Status.Nodes) - 1; i >= 0; i-- {
		n := vip.Status.Nodes[i]
		var node corev1.Node
		err := a.Client.Get(ctx, types.NamespacedName{Name: n.Name}, &node)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		default:
			if ok, err := desired.Selects(vip, node.Labels); err != nil || ok {
				continue
			}
		}
		path := fmt.Sprintf("/status/nodes/%d", i)
		ops = append(ops, map[string]any{"op": "test", "path": path + "/name", "value": n.Name},
			map[string]any{"op": "remove", "path": path})
		a.Log.Info("pruning status entry", "vip", vip.Name, "node", n.Name)
	}
	if len(ops) == 0 {
		return nil
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	if err := a.Client.Status().Patch(ctx, vip, client.RawPatch(types.JSONPatchType, b)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("pruning status of %s: %w", vip.Name, err)
	}
	return nil
}

// SetupWithManager registers the aggregator; it runs only in the leader.
func (a *Aggregator) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list v1alpha1.VirtualIPList
		if err := a.Client.List(ctx, &list); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for _, v := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: v.Name}})
		}
		return out
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("virtualip-aggregator").
		For(&v1alpha1.VirtualIP{}).
		Watches(&corev1.Node{}, all, builder.WithPredicates(nodeChanged())).
		// Registered again in a new manager when leadership was lost or the manager failed.
		WithOptions(controller.Options{SkipNameValidation: ptrTo(true)}).
		Complete(a)
}
