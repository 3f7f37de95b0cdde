package loadbalancer

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// ServiceReconciler gives each Service of type LoadBalancer that it serves an address and a
// VRID per IP family, as VirtualIPs, and takes them back (docs/design.md §7.12). It runs one
// Service at a time (one worker), in the one controller that holds the Lease.
//
// Race-free by construction, not by memory: an address is taken when a VirtualIP has it, the
// VirtualIP is named after the address (lbpool.Name), and the n-th address of a pool always has
// its n-th VRID, pools of a family sharing neither addresses nor VRIDs (poolStates). So the
// create of that VirtualIP is the one step that takes both: two creates of one address, from
// whatever process, collide on the API server and one fails (AlreadyExists), and no two
// addresses of the pools have one VRID. Each step is one write whose effect the next
// reconcile reads back; a crash between two leaves nothing that is not read back: a VirtualIP
// whose Service's status does not show it yet is found by its labels and written to status; a
// VirtualIP whose Service is gone, or no longer served, is deleted.
type ServiceReconciler struct {
	// Client reads Services, VirtualIPs and pools from the cache and writes.
	Client client.Client
	// APIReader reads from the API server itself, where the cache may be behind the writes this
	// controller has just made: a Service's VirtualIPs before it is given a new one, and a
	// Service the cache no longer has before its VirtualIPs are deleted.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// ServeClassless serves the Services of type LoadBalancer that set no loadBalancerClass too,
	// as the cluster's default load balancer.
	ServeClassless bool
	Log            *slog.Logger

	// pending are the Services waiting for an address (a refusal): a VirtualIP deleted or a pool
	// changed reconciles them at once.
	mu      sync.Mutex
	pending map[types.NamespacedName]struct{}
	// membersAt: when the members of a VirtualIP last changed, within membersWindow.
	membersAt map[string]time.Time
	// holders: what each Service was last told about the holder of each of its addresses, by
	// VirtualIP name; at most the VirtualIPs allocated (a family has 255 VRIDs).
	holders map[string]*holder
}

// refusalRetry reconciles a refused Service again after this long, besides the events that may
// lift the refusal.
const refusalRetry = time.Minute

// serves reports whether r serves svc: type LoadBalancer, of class kubevrrp.io/vrrp, or of no
// class when ServeClassless.
func (r *ServiceReconciler) serves(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return r.ServeClassless
	}
	return *svc.Spec.LoadBalancerClass == v1alpha1.LoadBalancerClass
}

// SetupWithManager watches Services of type LoadBalancer (before or after a change), the
// VirtualIPs it allocated (their Service is reconciled; a deleted one also frees an address for
// the pending Services), pools (for the pending Services) and EndpointSlices (for the Services
// with externalTrafficPolicy Local).
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.pending = map[types.NamespacedName]struct{}{}
	r.membersAt = map[string]time.Time{}
	r.holders = map[string]*holder{}
	isLB := func(o client.Object) bool {
		svc, ok := o.(*corev1.Service)
		return ok && svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	}
	lbOnly := predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return isLB(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return isLB(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return isLB(e.ObjectOld) || isLB(e.ObjectNew) },
		GenericFunc: func(e event.GenericEvent) bool { return isLB(e.Object) },
	}
	vips := handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue) { r.enqueueOwner(e.Object, q) },
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue) { r.enqueueOwner(e.ObjectNew, q) },
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue) {
			r.enqueueOwner(e.Object, q)
			r.enqueuePending(q)
		},
	}
	pools := handler.Funcs{
		CreateFunc: func(_ context.Context, _ event.CreateEvent, q workqueue) { r.enqueuePending(q) },
		UpdateFunc: func(_ context.Context, _ event.UpdateEvent, q workqueue) { r.enqueuePending(q) },
		DeleteFunc: func(_ context.Context, _ event.DeleteEvent, q workqueue) { r.enqueuePending(q) },
	}
	// Of a VirtualIP's status (the agents' summary) only the MASTER concerns its Service.
	masterChanged := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.VirtualIP)
			n, ok2 := e.ObjectNew.(*v1alpha1.VirtualIP)
			return ok1 && ok2 && o.Status.Master != n.Status.Master
		},
	}
	endpoints := handler.Funcs{
		CreateFunc:  func(ctx context.Context, e event.CreateEvent, q workqueue) { r.enqueueForSlice(ctx, e.Object, q) },
		UpdateFunc:  func(ctx context.Context, e event.UpdateEvent, q workqueue) { r.enqueueForSlice(ctx, e.ObjectNew, q) },
		DeleteFunc:  func(ctx context.Context, e event.DeleteEvent, q workqueue) { r.enqueueForSlice(ctx, e.Object, q) },
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue) { r.enqueueForSlice(ctx, e.Object, q) },
	}
	return ctrl.NewControllerManagedBy(mgr).Named("service").
		For(&corev1.Service{}, builder.WithPredicates(lbOnly)).
		Watches(&v1alpha1.VirtualIP{}, vips, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, masterChanged))).
		Watches(&discoveryv1.EndpointSlice{}, endpoints).
		// A pool's status (this controller's counts) concerns no Service.
		Watches(&v1alpha1.VirtualIPPool{}, pools, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// One Service at a time: an allocation reads what the previous one wrote.
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// enqueueOwner reconciles the Service a VirtualIP was allocated to.
func (r *ServiceReconciler) enqueueOwner(o client.Object, q workqueue) {
	l := o.GetLabels()
	if l[v1alpha1.LabelServiceUID] == "" || l[v1alpha1.LabelServiceName] == "" {
		return
	}
	q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: l[v1alpha1.LabelServiceNamespace], Name: l[v1alpha1.LabelServiceName]}})
}

func (r *ServiceReconciler) enqueuePending(q workqueue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.pending {
		q.Add(reconcile.Request{NamespacedName: k})
	}
}

func (r *ServiceReconciler) setPending(k types.NamespacedName, waiting bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if waiting {
		r.pending[k] = struct{}{}
	} else {
		delete(r.pending, k)
	}
}

// Reconcile brings one Service's VirtualIPs and status to what its spec asks.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := r.Log.With("service", req.String())
	var svc corev1.Service
	err := r.Client.Get(ctx, req.NamespacedName, &svc)
	if apierrors.IsNotFound(err) {
		// The cache may not have a Service created a moment ago: ask the API server before
		// deleting what may be its VirtualIPs.
		err = r.APIReader.Get(ctx, req.NamespacedName, &svc)
		if err == nil {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		r.setPending(req.NamespacedName, false)
		r.forgetHolders(req.NamespacedName)
		_, err := r.release(ctx, log, req.NamespacedName, nil, "the Service is deleted")
		return reconcile.Result{}, err
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if !r.serves(&svc) || svc.DeletionTimestamp != nil {
		r.setPending(req.NamespacedName, false)
		r.forgetHolders(req.NamespacedName)
		why := "the Service is no longer of type LoadBalancer with class " + v1alpha1.LoadBalancerClass
		if svc.DeletionTimestamp != nil {
			why = "the Service is being deleted"
		} else {
			// The status first, then the VirtualIPs: a VirtualIP deleted first, and a status
			// write that then failed, left an ingress address that nothing removed (the retry
			// no longer finds the VirtualIP) and that another Service could be given.
			vips, err := r.owned(ctx, req.NamespacedName)
			if err != nil {
				return reconcile.Result{}, err
			}
			var addrs []netip.Addr
			for i := range vips {
				if a, ok := lbpool.AddressOf(&vips[i]); ok {
					addrs = append(addrs, a)
				}
			}
			if err := r.clearStatus(ctx, &svc, addrs); err != nil {
				return reconcile.Result{}, err
			}
		}
		_, err := r.release(ctx, log, req.NamespacedName, &svc, why)
		return reconcile.Result{}, err
	}
	return r.allocate(ctx, log, &svc)
}

// owned lists the VirtualIPs allocated to the Service key (by its labels), from the cache.
func (r *ServiceReconciler) owned(ctx context.Context, key types.NamespacedName) ([]v1alpha1.VirtualIP, error) {
	var list v1alpha1.VirtualIPList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{
		v1alpha1.LabelServiceNamespace: key.Namespace, v1alpha1.LabelServiceName: key.Name,
	}); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list.Items, func(v v1alpha1.VirtualIP) bool { return v.Labels[v1alpha1.LabelServiceUID] == "" }), nil
}

// release deletes every VirtualIP allocated to the Service key and returns their addresses.
func (r *ServiceReconciler) release(ctx context.Context, log *slog.Logger, key types.NamespacedName, svc *corev1.Service, why string) ([]netip.Addr, error) {
	vips, err := r.owned(ctx, key)
	if err != nil {
		return nil, err
	}
	var released []netip.Addr
	for i := range vips {
		v := &vips[i]
		if err := r.deleteVIP(ctx, v); err != nil {
			return released, err
		}
		a, _ := lbpool.AddressOf(v)
		released = append(released, a)
		log.Info("released", "address", a.String(), "vrid", v.Spec.VRID, "virtualIP", v.Name, "why", why)
		if svc != nil && svc.DeletionTimestamp == nil {
			r.Recorder.Eventf(svc, v, corev1.EventTypeNormal, ReasonReleased, "Release", "released %s (VRID %d, VirtualIP %s): %s", a, v.Spec.VRID, v.Name, why)
		}
	}
	return released, nil
}

// deleteVIP deletes v, only if it is the object the cache has (its UID): a VirtualIP of the
// same name created since, for another Service, stays.
func (r *ServiceReconciler) deleteVIP(ctx context.Context, v *v1alpha1.VirtualIP) error {
	err := r.Client.Delete(ctx, v, client.Preconditions{UID: &v.UID})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("delete VirtualIP %s: %w", v.Name, err)
}

// clearStatus removes from a Service no longer served the ingress addresses it had from this
// controller and its condition.
func (r *ServiceReconciler) clearStatus(ctx context.Context, svc *corev1.Service, released []netip.Addr) error {
	status := svc.Status.DeepCopy()
	status.LoadBalancer.Ingress = slices.DeleteFunc(status.LoadBalancer.Ingress, func(in corev1.LoadBalancerIngress) bool {
		a, err := netip.ParseAddr(in.IP)
		return err == nil && slices.Contains(released, a)
	})
	if len(status.LoadBalancer.Ingress) == 0 {
		status.LoadBalancer.Ingress = nil
	}
	meta.RemoveStatusCondition(&status.Conditions, v1alpha1.ServiceConditionAllocated)
	return r.patchStatus(ctx, svc, status)
}

func (r *ServiceReconciler) patchStatus(ctx context.Context, svc *corev1.Service, status *corev1.ServiceStatus) error {
	if equality.Semantic.DeepEqual(status, &svc.Status) {
		return nil
	}
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	svc.Status = *status
	if err := r.Client.Status().Patch(ctx, svc, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write the status of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// allocate gives svc an address per family (keeping those it has that still fit its request),
// deletes the VirtualIPs it no longer needs, and writes its status.
func (r *ServiceReconciler) allocate(ctx context.Context, log *slog.Logger, svc *corev1.Service) (reconcile.Result, error) {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	families := serviceFamilies(svc)
	req, reqErr := parseRequest(svc, families)
	vips, err := r.owned(ctx, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	var nodes map[int][]string
	if isLocal(svc) {
		if nodes, err = r.endpointNodes(ctx, svc); err != nil {
			return reconcile.Result{}, err
		}
	}
	// VirtualIPs of an earlier Service of the same name.
	var mine []v1alpha1.VirtualIP
	for i := range vips {
		if vips[i].Labels[v1alpha1.LabelServiceUID] != string(svc.UID) {
			if err := r.deleteVIP(ctx, &vips[i]); err != nil {
				return reconcile.Result{}, err
			}
			continue
		}
		mine = append(mine, vips[i])
	}
	slices.SortFunc(mine, func(a, b v1alpha1.VirtualIP) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmpString(a.Name, b.Name)
	})

	var (
		ingress []netip.Addr
		refusal *refusal
		keep    = map[string]bool{}
		newly   []*v1alpha1.VirtualIP
	)
	if reqErr != nil {
		refusal = reqErr
	}
	for _, fam := range families {
		var current *v1alpha1.VirtualIP
		for i := range mine {
			a, ok := lbpool.AddressOf(&mine[i])
			if ok && familyOf(a) == fam && current == nil && (reqErr != nil || r.fits(&mine[i], svc, req[fam])) {
				current = &mine[i]
			}
		}
		if current != nil {
			keep[current.Name] = true
			a, _ := lbpool.AddressOf(current)
			ingress = append(ingress, a)
			continue
		}
		if reqErr != nil {
			continue // a request that does not parse allocates nothing (and keeps what it has, above)
		}
		// The cache may be behind a VirtualIP this controller has just created for the
		// Service: ask the API server before giving it another.
		var live v1alpha1.VirtualIPList
		if err := r.APIReader.List(ctx, &live, client.MatchingLabels{v1alpha1.LabelServiceUID: string(svc.UID)}); err != nil {
			return reconcile.Result{}, err
		}
		for i := range live.Items {
			if slices.ContainsFunc(mine, func(v v1alpha1.VirtualIP) bool { return v.UID == live.Items[i].UID }) {
				continue
			}
			if a, ok := lbpool.AddressOf(&live.Items[i]); ok && familyOf(a) == fam {
				return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
			}
		}
		vip, ref, err := r.allocateFamily(ctx, svc, fam, req[fam], nodes[fam])
		if err != nil {
			return reconcile.Result{}, err
		}
		if ref != nil {
			if refusal == nil {
				refusal = ref
			}
			// Keep the address it has, if any, until the new one is given.
			for i := range mine {
				if a, ok := lbpool.AddressOf(&mine[i]); ok && familyOf(a) == fam {
					keep[mine[i].Name] = true
					ingress = append(ingress, a)
					break
				}
			}
			continue
		}
		keep[vip.Name] = true
		newly = append(newly, vip)
		a, _ := lbpool.AddressOf(vip)
		ingress = append(ingress, a)
		log.Info("allocated", "address", a.String(), "vrid", vip.Spec.VRID, "virtualIP", vip.Name, "pool", vip.Labels[v1alpha1.LabelPool])
		r.Recorder.Eventf(svc, vip, corev1.EventTypeNormal, ReasonAllocated, "Allocate", "allocated %s (VRID %d) from pool %s: VirtualIP %s",
			a, vip.Spec.VRID, vip.Labels[v1alpha1.LabelPool], vip.Name)
	}
	status := svc.Status.DeepCopy()
	status.LoadBalancer.Ingress = nil
	for _, a := range ingress {
		status.LoadBalancer.Ingress = append(status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a.String(), IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)})
	}
	cond := metav1.Condition{Type: v1alpha1.ServiceConditionAllocated, Status: metav1.ConditionTrue, Reason: ReasonAllocated,
		ObservedGeneration: svc.Generation, Message: allocatedMessage(ingress)}
	if refusal != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, refusal.reason, truncate(refusal.message, maxMessage)
		prev := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAllocated)
		if prev == nil || prev.Reason != cond.Reason || prev.Message != cond.Message {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, refusal.reason, "Allocate", "%s", truncate(refusal.message, maxEventNote))
			log.Info("refused", "reason", refusal.reason, "message", refusal.message)
		}
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	if err := r.patchStatus(ctx, svc, status); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return reconcile.Result{}, err
	}
	// What it no longer needs (a family it dropped, an address it no longer asks for), once
	// the status no longer names it: deleted first, a status write that then failed left the
	// address in the Service's status while another Service could be given it.
	for i := range mine {
		if keep[mine[i].Name] {
			continue
		}
		if err := r.deleteVIP(ctx, &mine[i]); err != nil {
			return reconcile.Result{}, err
		}
		a, _ := lbpool.AddressOf(&mine[i])
		log.Info("released", "address", a.String(), "virtualIP", mine[i].Name, "why", "the Service no longer asks for it")
		r.Recorder.Eventf(svc, &mine[i], corev1.EventTypeNormal, ReasonReleased, "Release", "released %s (VRID %d, VirtualIP %s): the Service no longer asks for it",
			a, mine[i].Spec.VRID, mine[i].Name)
	}
	r.setPending(key, refusal != nil)
	var after time.Duration
	if refusal != nil {
		after = refusalRetry
	}

	// The VirtualIPs it keeps: their members (externalTrafficPolicy) and annotations, in place,
	// and who holds them.
	var held []*v1alpha1.VirtualIP
	for i := range mine {
		if !keep[mine[i].Name] {
			continue
		}
		v := &mine[i]
		held = append(held, v)
		a, _ := lbpool.AddressOf(v)
		wait, err := r.reshape(ctx, log, svc, v, nodes[familyOf(a)])
		if err != nil {
			return reconcile.Result{}, err
		}
		after = soonest(after, wait)
	}
	held = append(held, newly...)
	after = soonest(after, r.tellHolders(svc, held, nodes, time.Now()))
	return reconcile.Result{RequeueAfter: after}, nil
}

// soonest is the shorter of two waits, 0 meaning none.
func soonest(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// maxEventNote bounds an Event's note (docs/design.md §7.8).
const maxEventNote = 512

func allocatedMessage(addrs []netip.Addr) string {
	s := "allocated"
	for i, a := range addrs {
		if i > 0 {
			s += ","
		}
		s += " " + a.String()
	}
	return s
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fits reports whether the allocated VirtualIP v still gives svc what it asks: the requested
// address of its family, if any, and the pool it names, if any.
func (r *ServiceReconciler) fits(v *v1alpha1.VirtualIP, svc *corev1.Service, want netip.Addr) bool {
	a, ok := lbpool.AddressOf(v)
	if !ok {
		return false
	}
	if want.IsValid() && a != want {
		return false
	}
	if p := svc.Annotations[v1alpha1.AnnotationPool]; p != "" && v.Labels[v1alpha1.LabelPool] != p {
		return false
	}
	return true
}
