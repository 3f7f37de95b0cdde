package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	clientworkqueue "k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// workqueue is the queue the handlers add Services to.
type workqueue = clientworkqueue.TypedRateLimitingInterface[reconcile.Request]

// Reasons of the Service's condition kubevrrp.io/Allocated and of the Events on the Service: one
// CamelCase word each (docs/design.md §7.8); the message says which address and what to change.
const (
	// ReasonAllocated: every family of the Service has its address (condition True; a Normal
	// Event for each address given).
	ReasonAllocated = "Allocated"
	// ReasonReleased: an address went back to its pool (a Normal Event).
	ReasonReleased = "Released"
	// ReasonNoPool: no pool may give the Service an address of a family: none has the family,
	// none admits the Service (namespaces, serviceSelector, autoAssign), or the pool it names
	// does not exist, does not admit it or is not Ready.
	ReasonNoPool = "NoPool"
	// ReasonPoolExhausted: the pools that may give it an address have none left.
	ReasonPoolExhausted = "PoolExhausted"
	// ReasonAddressNotInPool: the requested address is in no pool that admits the Service, or
	// has no VRID in its pool.
	ReasonAddressNotInPool = "AddressNotInPool"
	// ReasonAddressInUse: the requested address, or its VRID, is held by a VirtualIP.
	ReasonAddressInUse = "AddressInUse"
	// ReasonInvalidRequest: the annotations or spec.loadBalancerIP do not parse, ask for a
	// family the Service does not have, or disagree.
	ReasonInvalidRequest = "InvalidRequest"
	// ReasonInvalidVirtualIP: the API server refused the VirtualIP made from the pool's
	// template (a rule the pool's own rules could not check).
	ReasonInvalidVirtualIP = "InvalidVirtualIP"
)

// refusal is why a Service has no address of a family.
type refusal struct {
	reason, message string
}

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{reason: reason, message: fmt.Sprintf(format, args...)}
}

// serviceFamilies are the IP families of svc (spec.ipFamilies, which the API server sets), as
// 4 and 6 in its order.
func serviceFamilies(svc *corev1.Service) []int {
	var out []int
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, 4)
		case corev1.IPv6Protocol:
			out = append(out, 6)
		}
	}
	if len(out) == 0 {
		out = []int{4}
	}
	return out
}

func familyName(f int) string { return fmt.Sprintf("IPv%d", f) }

// parseRequest reads the addresses svc asks for, by family: the annotation
// kubevrrp.io/load-balancer-ips (at most one per family) and spec.loadBalancerIP, which must
// agree.
func parseRequest(svc *corev1.Service, families []int) (map[int]netip.Addr, *refusal) {
	out := map[int]netip.Addr{}
	add := func(s, from string) *refusal {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return refuse(ReasonInvalidRequest, "%s: %q is not an IP address: write e.g. 198.51.100.10 or 2001:db8::10", from, truncate(s, 64))
		}
		f := familyOf(a)
		if !slices.Contains(families, f) {
			return refuse(ReasonInvalidRequest, "%s asks for %s, an %s address, but the Service's ipFamilies have no %s: set spec.ipFamilies or ask for an address of its family",
				from, a, familyName(f), familyName(f))
		}
		if prev, ok := out[f]; ok && prev != a {
			return refuse(ReasonInvalidRequest, "%s asks for %s and %s, two %s addresses: a Service has one address per family", from, prev, a, familyName(f))
		}
		out[f] = a
		return nil
	}
	if s, ok := svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs]; ok {
		parts := strings.Split(s, ",")
		if len(parts) > 2 {
			return nil, refuse(ReasonInvalidRequest, "annotation %s lists %d addresses: give at most one per family, e.g. 198.51.100.10,2001:db8::10",
				v1alpha1.AnnotationLoadBalancerIPs, len(parts))
		}
		for _, p := range parts {
			if r := add(p, "annotation "+v1alpha1.AnnotationLoadBalancerIPs); r != nil {
				return nil, r
			}
		}
	}
	if s := svc.Spec.LoadBalancerIP; s != "" {
		a, err := netip.ParseAddr(s)
		if _, annotated := svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs]; annotated && (err != nil || out[familyOf(a)] != a) {
			return nil, refuse(ReasonInvalidRequest, "spec.loadBalancerIP %s is not among the addresses of annotation %s: drop one of the two",
				truncate(s, 64), v1alpha1.AnnotationLoadBalancerIPs)
		}
		if r := add(s, "spec.loadBalancerIP"); r != nil {
			return nil, r
		}
	}
	return out, nil
}

// admits reports whether pool p may give svc an address at all (namespaces, serviceSelector).
func admits(p *v1alpha1.VirtualIPPool, svc *corev1.Service) bool {
	if len(p.Spec.Namespaces) > 0 && !slices.Contains(p.Spec.Namespaces, svc.Namespace) {
		return false
	}
	if p.Spec.ServiceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.ServiceSelector)
		if err != nil || !sel.Matches(labels.Set(svc.Labels)) {
			return false
		}
	}
	return true
}

// allocateFamily gives svc an address of family fam: the requested one (want), or the first
// free one of the pools that may give it one. It creates the address's VirtualIP (with
// externalTrafficPolicy Local, narrowed to nodes), and returns it, or why there is none.
func (r *ServiceReconciler) allocateFamily(ctx context.Context, svc *corev1.Service, fam int, want netip.Addr, nodes []string) (*v1alpha1.VirtualIP, *refusal, error) {
	var pools v1alpha1.VirtualIPPoolList
	if err := r.Client.List(ctx, &pools); err != nil {
		return nil, nil, err
	}
	states := poolStates(pools.Items)
	var vips v1alpha1.VirtualIPList
	if err := r.Client.List(ctx, &vips); err != nil {
		return nil, nil, err
	}
	t := takenBy(vips.Items)
	owner := lbpool.Owner{Namespace: svc.Namespace, Name: svc.Name, UID: string(svc.UID)}
	named := svc.Annotations[v1alpha1.AnnotationPool]

	// The pools that may serve it, by name.
	var candidates []*poolState
	if named != "" {
		st, ok := states[named]
		switch {
		case !ok:
			return nil, refuse(ReasonNoPool, "the pool named by annotation %s, %q, does not exist", v1alpha1.AnnotationPool, truncate(named, 63)), nil
		case !admits(st.pool, svc):
			return nil, refuse(ReasonNoPool, "pool %s does not admit this Service (its namespaces or serviceSelector)", named), nil
		case st.reason != "":
			return nil, refuse(ReasonNoPool, "pool %s is not Ready (%s): see its status", named, st.reason), nil
		}
		if _, ok := st.family(fam); !ok {
			return nil, refuse(ReasonNoPool, "pool %s has no %s addresses, and the Service's ipFamilies ask for one", named, familyName(fam)), nil
		}
		candidates = []*poolState{st}
	} else {
		names := make([]string, 0, len(states))
		for n := range states {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			st := states[n]
			if _, ok := st.family(fam); !ok || st.reason != "" || !admits(st.pool, svc) {
				continue
			}
			// autoAssign: false serves only a Service that names the pool or asks for one of
			// its addresses.
			if !want.IsValid() && st.pool.Spec.AutoAssign != nil && !*st.pool.Spec.AutoAssign {
				continue
			}
			candidates = append(candidates, st)
		}
	}

	if want.IsValid() {
		for _, st := range candidates {
			f, _ := st.family(fam)
			if !f.Contains(want) {
				continue
			}
			_, vrid, ok := f.Index(want)
			if !ok {
				return nil, refuse(ReasonAddressNotInPool, "%s is in pool %s but has no VRID there: its vrids %d-%d go with its first %d %s addresses; ask for one of those, or widen vrids",
					want, st.pool.Name, f.FirstVRID, f.LastVRID, f.Len(), familyName(fam)), nil
			}
			if by, held := t.addrs[want]; held {
				return nil, refuse(ReasonAddressInUse, "%s is taken: VirtualIP %s has it", want, by), nil
			}
			if by, held := t.vrids[fam][vrid]; held {
				return nil, refuse(ReasonAddressInUse, "%s goes with VRID %d in pool %s, and VirtualIP %s has that VRID", want, vrid, st.pool.Name, by), nil
			}
			vip, err := r.create(ctx, svc, lbpool.VirtualIP(st.pool, f, want, vrid, owner), nodes)
			if apierrors.IsAlreadyExists(err) {
				return nil, refuse(ReasonAddressInUse, "%s is taken: VirtualIP %s exists", want, lbpool.Name(want)), nil
			}
			if ref := r.invalidVIP(err, st.pool.Name); ref != nil {
				return nil, ref, nil
			}
			return vip, nil, err
		}
		where := "no pool that admits this Service has it"
		if named != "" {
			where = "pool " + named + " does not have it"
		}
		return nil, refuse(ReasonAddressNotInPool, "%s cannot be given: %s; ask for an address of a pool (kubectl get vippool)", want, where), nil
	}

	if len(candidates) == 0 {
		return nil, refuse(ReasonNoPool, "no Ready pool with %s addresses admits this Service (its namespaces, serviceSelector and autoAssign): create one, "+
			"or name one with annotation %s", familyName(fam), v1alpha1.AnnotationPool), nil
	}
	var names []string
	for _, st := range candidates {
		names = append(names, st.pool.Name)
		f, _ := st.family(fam)
		for i := range f.Len() {
			a, vrid := f.At(i)
			if _, held := t.addrs[a]; held {
				continue
			}
			if _, held := t.vrids[fam][vrid]; held {
				continue
			}
			vip, err := r.create(ctx, svc, lbpool.VirtualIP(st.pool, f, a, vrid, owner), nodes)
			if apierrors.IsAlreadyExists(err) {
				// Taken since the cache was read: the next one.
				t.addrs[a] = lbpool.Name(a)
				continue
			}
			if ref := r.invalidVIP(err, st.pool.Name); ref != nil {
				return nil, ref, nil
			}
			return vip, nil, err
		}
	}
	return nil, refuse(ReasonPoolExhausted, "no %s address is left in pool %s: every address with a VRID, or its VRID, is held by a VirtualIP; "+
		"the Service gets one as soon as one is released", familyName(fam), strings.Join(names, ", ")), nil
}

func (r *ServiceReconciler) create(ctx context.Context, svc *corev1.Service, vip *v1alpha1.VirtualIP, nodes []string) (*v1alpha1.VirtualIP, error) {
	narrowNew(svc, vip, nodes)
	if err := r.Client.Create(ctx, vip); err != nil {
		return nil, err
	}
	return vip, nil
}

// invalidVIP is the refusal of a VirtualIP the API server found invalid, nil for other errors.
// The refusal reaches the Service's namespace (its condition and an Event), whose users may not
// read the cluster-scoped pool: it names the fields the API server refused, never its words,
// which can quote the template's values (a probe's or notify command's arguments, which may
// carry credentials). The whole error is for the controller's log.
func (r *ServiceReconciler) invalidVIP(err error, pool string) *refusal {
	if !apierrors.IsInvalid(err) {
		return nil
	}
	if r.Log != nil {
		r.Log.Warn("the API server refuses a VirtualIP made from a pool's template", "pool", pool, "err", err)
	}
	var fields []string
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Details != nil {
		for _, c := range se.Status().Details.Causes {
			if c.Field != "" && !slices.Contains(fields, c.Field) && len(fields) < 8 {
				fields = append(fields, c.Field)
			}
		}
	}
	what := "it"
	if len(fields) > 0 {
		what = strings.Join(fields, ", ")
	}
	return refuse(ReasonInvalidVirtualIP, "the API server refuses the VirtualIP made from pool %s's template (%s); "+
		"fix the pool's template (the controller's log has the API server's words)", pool, what)
}
