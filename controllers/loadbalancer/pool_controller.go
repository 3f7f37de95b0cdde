package loadbalancer

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// Reasons of a pool's Ready condition.
const (
	// ReasonPoolValid: the pool is valid and overlaps no older pool (Ready True).
	ReasonPoolValid = "Valid"
	// ReasonPoolInvalid: the pool breaks a rule of the CRD (one written before the rule
	// existed); it offers nothing (Ready False).
	ReasonPoolInvalid = "InvalidSpec"
	// ReasonPoolOverlap: its addresses or VRIDs of a family overlap those of an older pool; it
	// offers nothing until the overlap is gone (Ready False).
	ReasonPoolOverlap = "OverlapsPool"
)

// maxMessage bounds a condition's or an Event's message (docs/design.md §7.8: 1 KiB in status).
const maxMessage = 1024

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// poolState is a pool as the allocator sees it: its families, read, and why it offers nothing
// (empty: it is usable).
type poolState struct {
	pool     *v1alpha1.VirtualIPPool
	families []lbpool.Family
	reason   string
	message  string
}

func (p *poolState) family(f int) (lbpool.Family, bool) {
	for _, x := range p.families {
		if x.Family == f {
			return x, true
		}
	}
	return lbpool.Family{}, false
}

// older orders pools as the agents order VirtualIPs that overlap (docs/design.md §7.3): the one
// created first, then the one whose name sorts first.
func older(a, b *v1alpha1.VirtualIPPool) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// poolStates reads every pool: a pool that breaks a rule offers nothing, and of two whose
// addresses or VRIDs of a family overlap, the younger offers nothing, so that each address has
// one VRID and each VRID one address in the whole cluster (the allocation's lock is the
// address's VirtualIP, docs/design.md §7.12). Every reader decides alike from the pools alone.
func poolStates(pools []v1alpha1.VirtualIPPool) map[string]*poolState {
	sorted := make([]*v1alpha1.VirtualIPPool, 0, len(pools))
	for i := range pools {
		sorted = append(sorted, &pools[i])
	}
	slices.SortFunc(sorted, func(a, b *v1alpha1.VirtualIPPool) int {
		if older(a, b) {
			return -1
		}
		return 1
	})
	out := make(map[string]*poolState, len(sorted))
	var usable []*poolState
	for _, p := range sorted {
		st := &poolState{pool: p}
		out[p.Name] = st
		if errs := lbpool.Validate(p); len(errs) > 0 {
			st.reason, st.message = ReasonPoolInvalid, "the pool breaks a rule of the CRD and offers no address: "+errs.ToAggregate().Error()
			continue
		}
		fs, err := lbpool.Families(p)
		if err != nil {
			st.reason, st.message = ReasonPoolInvalid, "the pool offers no address: "+err.Error()
			continue
		}
		st.families = fs
	overlap:
		for _, u := range usable {
			for _, f := range fs {
				g, ok := u.family(f.Family)
				if !ok {
					continue
				}
				addrs, vrids := f.Overlaps(g)
				what := ""
				switch {
				case addrs && vrids:
					what = "addresses and VRIDs"
				case addrs:
					what = "addresses"
				case vrids:
					what = "VRIDs"
				default:
					continue
				}
				st.reason = ReasonPoolOverlap
				st.message = fmt.Sprintf("its ipv%d %s overlap those of pool %s, which is older: each address and each VRID of a family "+
					"is in one pool (the n-th address of a pool has its n-th VRID); change the ranges of one of them. It offers no address until then",
					f.Family, what, u.pool.Name)
				break overlap
			}
		}
		if st.reason == "" {
			usable = append(usable, st)
		}
	}
	return out
}

// taken is what the VirtualIPs hold: every address, and the VRIDs by family.
type taken struct {
	addrs map[netip.Addr]string // address: the VirtualIP's name
	vrids map[int]map[int32]string
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// takenBy reads the addresses and VRIDs of vips. A VirtualIP's family is its first address's
// (the CRD keeps its addresses to one family).
func takenBy(vips []v1alpha1.VirtualIP) taken {
	t := taken{addrs: map[netip.Addr]string{}, vrids: map[int]map[int32]string{4: {}, 6: {}}}
	for i := range vips {
		v := &vips[i]
		fam := 0
		for _, s := range v.Spec.Addresses {
			a, ok := parseVIPAddress(s)
			if !ok {
				continue
			}
			if fam == 0 {
				fam = familyOf(a)
			}
			if _, dup := t.addrs[a]; !dup {
				t.addrs[a] = v.Name
			}
		}
		if fam != 0 {
			if _, dup := t.vrids[fam][v.Spec.VRID]; !dup {
				t.vrids[fam][v.Spec.VRID] = v.Name
			}
		}
	}
	return t
}

func parseVIPAddress(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap().WithZone(""), err == nil
}

// free counts the addresses of f whose address and VRID no VirtualIP holds.
func (t taken) free(f lbpool.Family) int {
	n := 0
	for i := range f.Len() {
		a, vrid := f.At(i)
		if _, held := t.addrs[a]; held {
			continue
		}
		if _, held := t.vrids[f.Family][vrid]; held {
			continue
		}
		n++
	}
	return n
}

// statusBatch delays a pool's status after a change, so that the changes of a moment make one
// write.
const statusBatch = 500 * time.Millisecond

// PoolReconciler writes each pool's status: per family the addresses allocated (the
// VirtualIPs labelled with the pool) and available (free address and VRID), and Ready.
type PoolReconciler struct {
	Client client.Client
	Log    *slog.Logger
}

// SetupWithManager reconciles pools on their own changes and, every pool, on any VirtualIP's:
// any VirtualIP can take a pool's address or VRID.
func (r *PoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// Every pool, a moment later: the counts of a burst of allocations make one write per pool.
	enqueueAll := func(ctx context.Context, q workqueue) {
		var pools v1alpha1.VirtualIPPoolList
		if err := r.Client.List(ctx, &pools); err != nil {
			return
		}
		for _, p := range pools.Items {
			q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKey{Name: p.Name}}, statusBatch)
		}
	}
	all := handler.Funcs{
		CreateFunc:  func(ctx context.Context, _ event.CreateEvent, q workqueue) { enqueueAll(ctx, q) },
		UpdateFunc:  func(ctx context.Context, _ event.UpdateEvent, q workqueue) { enqueueAll(ctx, q) },
		DeleteFunc:  func(ctx context.Context, _ event.DeleteEvent, q workqueue) { enqueueAll(ctx, q) },
		GenericFunc: func(ctx context.Context, _ event.GenericEvent, q workqueue) { enqueueAll(ctx, q) },
	}
	// A pool's validity depends on the older pools: any pool's change may change another's.
	return ctrl.NewControllerManagedBy(mgr).Named("virtualippool").
		Watches(&v1alpha1.VirtualIPPool{}, all).
		Watches(&v1alpha1.VirtualIP{}, all).
		Complete(r)
}

// Reconcile writes the status of one pool.
func (r *PoolReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pools v1alpha1.VirtualIPPoolList
	if err := r.Client.List(ctx, &pools); err != nil {
		return reconcile.Result{}, err
	}
	states := poolStates(pools.Items)
	st, ok := states[req.Name]
	if !ok {
		return reconcile.Result{}, nil
	}
	var vips v1alpha1.VirtualIPList
	if err := r.Client.List(ctx, &vips); err != nil {
		return reconcile.Result{}, err
	}
	t := takenBy(vips.Items)
	pool := st.pool
	status := pool.Status.DeepCopy()
	status.ObservedGeneration = pool.Generation
	status.IPv4, status.IPv6 = nil, nil
	families := st.families
	if families == nil { // invalid or overlapping: count what it would have, offer nothing
		families, _ = lbpool.Families(pool)
	}
	for _, f := range families {
		fs := &v1alpha1.PoolFamilyStatus{}
		for _, v := range vips.Items {
			if v.Labels[v1alpha1.LabelPool] != pool.Name || v.Labels[v1alpha1.LabelServiceUID] == "" {
				continue
			}
			if a, ok := lbpool.AddressOf(&v); ok && familyOf(a) == f.Family {
				fs.Allocated++
			}
		}
		if st.reason == "" {
			fs.Available = int32(t.free(f))
		}
		if f.Family == 4 {
			status.IPv4 = fs
		} else {
			status.IPv6 = fs
		}
	}
	cond := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: ReasonPoolValid, ObservedGeneration: pool.Generation,
		Message: poolSummary(families)}
	if st.reason != "" {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, st.reason, truncate(st.message, maxMessage)
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	if equality.Semantic.DeepEqual(status, &pool.Status) {
		return reconcile.Result{}, nil
	}
	patch := client.MergeFromWithOptions(pool.DeepCopy(), client.MergeFromWithOptimisticLock{})
	pool.Status = *status
	if err := r.Client.Status().Patch(ctx, pool, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return reconcile.Result{Requeue: true}, nil
		}
		return reconcile.Result{}, fmt.Errorf("write the status of pool %s: %w", pool.Name, err)
	}
	return reconcile.Result{}, nil
}

// poolSummary says how many addresses each family offers, and why not more.
func poolSummary(fs []lbpool.Family) string {
	var parts []string
	for _, f := range fs {
		n, addrs := f.Len(), f.Addresses()
		s := fmt.Sprintf("IPv%d: %d addresses with VRIDs %d-%d", f.Family, n, f.FirstVRID, f.LastVRID)
		if addrs > n {
			more := fmt.Sprintf("%d", addrs-n)
			if addrs >= 65536 {
				more = "the other"
			}
			s += fmt.Sprintf(" (%s addresses have no VRID: the n-th address has the n-th VRID)", more)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
