package controllers

import (
	"context"
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// The advert sources of the other members (docs/design.md §4.2, §7.2). An IPv6 multicast
// group's adverts come from link-local addresses (RFC 5798 §5.1.2.1), which no Node address
// names, so a backup cannot tell from a node's addresses which member resigned or who wins a
// tie, and the fast handover waits Skew_Time. Each agent publishes its own advert source in its
// member's status.address; the VirtualIP reconciler reads the other members' and passes each
// as its node's desired.Peer.AdvertSource, and a change of one (nothing else of a member, which
// is written at every state change) reconciles that VirtualIP, applied in place. A member is
// written by its node's agent alone (the admission policy, §7.10), so a node can only say
// where its own adverts come from.

// maxAdvertSourceLen bounds the status.address read (the CRD's maxLength): the longest IPv6
// address in text is 45 characters.
const maxAdvertSourceLen = 45

// advertSourcesMatter reports whether the members of vip are told apart by their advert
// sources: an IPv6 group without unicast.
func advertSourcesMatter(vip *v1alpha1.VirtualIP) bool {
	addrs := desired.Addresses(vip)
	return vip.Spec.Unicast == nil && len(addrs) > 0 && addrs[0].Is6()
}

// advertSource returns the advert source m publishes when it can name that node's adverts in
// an IPv6 multicast group: a link-local unicast address (fe80::/10) without a zone. Anything
// else (none yet, a refused node's, a global address of an IPv4 or unicast group's member, a
// value no agent writes) is none.
func advertSource(m *v1alpha1.VirtualIPMember) (netip.Addr, bool) {
	s := m.Status.Address
	if s == "" || len(s) > maxAdvertSourceLen {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || !a.Is6() || a.Is4In6() || !a.IsLinkLocalUnicast() {
		return netip.Addr{}, false
	}
	return a, true
}

// withAdvertSources sets the AdvertSource of each of peers whose member of the VirtualIP name
// publishes one, from the cache, and returns how many it set.
func (r *VirtualIPReconciler) withAdvertSources(ctx context.Context, name string, peers []desired.Peer) (int, error) {
	members, _, err := membersOf(ctx, r.Client, name)
	if err != nil {
		return 0, err
	}
	src := make(map[string]netip.Addr, len(members))
	for _, m := range members {
		if a, ok := advertSource(m); ok && m.Spec.Node != r.NodeName {
			src[m.Spec.Node] = a
		}
	}
	known := 0
	for i := range peers {
		if a, ok := src[peers[i].Name]; ok {
			peers[i].AdvertSource = a
			known++
		}
	}
	return known, nil
}

// memberEvents enqueues the VirtualIP of another node's member whose advert source (advertSource
// of its status.address) appears, changes or goes, when the VirtualIP's members are told apart
// by them (advertSourcesMatter). Every other write of a member (state, priority, probes, at
// every transition of every node) reconciles nothing. The members of the informer's first list
// enqueue nothing: every VirtualIP is reconciled after the caches sync.
func (r *VirtualIPReconciler) memberEvents() handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) {
			if !e.IsInInitialList {
				r.enqueueSourceChange(ctx, q, nil, asMember(e.Object))
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			r.enqueueSourceChange(ctx, q, asMember(e.ObjectOld), asMember(e.ObjectNew))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) {
			r.enqueueSourceChange(ctx, q, asMember(e.Object), nil)
		},
	}
}

func asMember(obj client.Object) *v1alpha1.VirtualIPMember {
	m, _ := obj.(*v1alpha1.VirtualIPMember)
	return m
}

// enqueueSourceChange enqueues the VirtualIP of a member that changed from old to new (nil:
// none) when its advert source changed and the VirtualIP's members are told apart by them.
func (r *VirtualIPReconciler) enqueueSourceChange(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], old, new *v1alpha1.VirtualIPMember) {
	var before, after netip.Addr
	var m *v1alpha1.VirtualIPMember
	if old != nil {
		before, _ = advertSource(old)
		m = old
	}
	if new != nil {
		after, _ = advertSource(new)
		m = new
	}
	if m == nil || before == after || m.Spec.Node == r.NodeName {
		return
	}
	// Read only, as the cache holds it (see Reconcile).
	var vip v1alpha1.VirtualIP
	if err := r.Client.Get(ctx, types.NamespacedName{Name: m.Spec.VirtualIP}, &vip, client.UnsafeDisableDeepCopy); err != nil {
		return // gone: nothing to apply; any other error: as gone, the cache is local
	}
	if advertSourcesMatter(&vip) {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: vip.Name}})
	}
}

// membersServed reports whether the API server serves VirtualIPMembers: without the CRD the
// VirtualIP reconciler neither watches nor reads them (the agent starts its controllers again
// once it is installed). An error other than "no such kind" is returned.
func membersServed(mapper meta.RESTMapper) (bool, error) {
	gvk := v1alpha1.GroupVersion.WithKind("VirtualIPMember")
	_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("looking up VirtualIPMember: %w", err)
}
