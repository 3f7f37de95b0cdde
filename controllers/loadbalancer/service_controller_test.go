package loadbalancer

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// The controller's logic on small, hand-made states; test/envtest runs it against a real API
// server.

func pool(name string, created time.Time, v4 string, first, last int32) v1alpha1.VirtualIPPool {
	return v1alpha1.VirtualIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec: v1alpha1.VirtualIPPoolSpec{
			IPv4:     &v1alpha1.IPv4Pool{Addresses: []string{v4}, PrefixLength: ptr.To[int32](24), VRIDs: v1alpha1.VRIDRange{First: first, Last: last}},
			Template: v1alpha1.VirtualIPTemplate{NodeSelector: &metav1.LabelSelector{}},
		},
	}
}

// Of two pools that overlap, in addresses or in VRIDs, the older offers addresses and the
// younger none, whatever the order they are read in; an invalid pool offers none.
func TestPoolStates(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := pool("a", t0, "198.18.0.0/28", 10, 19)
	b := pool("b", t0.Add(time.Second), "198.18.0.8-198.18.0.20", 30, 39) // addresses overlap a's
	c := pool("c", t0.Add(2*time.Second), "198.18.1.0/28", 15, 25)        // VRIDs overlap a's
	d := pool("d", t0.Add(3*time.Second), "198.18.2.0/28", 40, 49)
	e := pool("e", t0, "198.18.3.0/28", 50, 59)
	e.Spec.IPv4.Addresses = []string{"198.18.3.5/28"} // written before the rule
	aa := pool("0a", t0, "198.18.0.0/28", 60, 69)     // as old as a, sorts first: it wins
	for _, order := range [][]v1alpha1.VirtualIPPool{{a, b, c, d, e}, {e, d, c, b, a}} {
		st := poolStates(order)
		for name, want := range map[string]string{"a": "", "b": ReasonPoolOverlap, "c": ReasonPoolOverlap, "d": "", "e": ReasonPoolInvalid} {
			if st[name].reason != want {
				t.Errorf("%s: reason %q (%s), want %q", name, st[name].reason, st[name].message, want)
			}
		}
		if !strings.Contains(st["b"].message, "its ipv4 addresses overlap those of pool a") || !strings.Contains(st["c"].message, "its ipv4 VRIDs overlap those of pool a") {
			t.Errorf("messages: %q, %q", st["b"].message, st["c"].message)
		}
	}
	st := poolStates([]v1alpha1.VirtualIPPool{a, aa})
	if st["0a"].reason != "" || st["a"].reason != ReasonPoolOverlap {
		t.Errorf("same age: 0a %q, a %q; want the name sorting first to win", st["0a"].reason, st["a"].reason)
	}
}

func TestServes(t *testing.T) {
	r := &ServiceReconciler{}
	svc := func(typ corev1.ServiceType, class *string) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: typ, LoadBalancerClass: class}}
	}
	ours, other := ptr.To(v1alpha1.LoadBalancerClass), ptr.To("example.com/other")
	for _, c := range []struct {
		svc                 *corev1.Service
		classless, classful bool
	}{
		{svc(corev1.ServiceTypeLoadBalancer, ours), true, true},
		{svc(corev1.ServiceTypeLoadBalancer, other), false, false},
		{svc(corev1.ServiceTypeLoadBalancer, nil), true, false},
		{svc(corev1.ServiceTypeClusterIP, nil), false, false},
		{svc(corev1.ServiceTypeNodePort, ours), false, false},
	} {
		r.ServeClassless = true
		if got := r.serves(c.svc); got != c.classless {
			t.Errorf("%s %v, serving class-less: %v", c.svc.Spec.Type, c.svc.Spec.LoadBalancerClass, got)
		}
		r.ServeClassless = false
		if got := r.serves(c.svc); got != c.classful {
			t.Errorf("%s %v: %v", c.svc.Spec.Type, c.svc.Spec.LoadBalancerClass, got)
		}
	}
}

func TestParseRequest(t *testing.T) {
	mk := func(annotation, lbIP string) *corev1.Service {
		s := &corev1.Service{Spec: corev1.ServiceSpec{LoadBalancerIP: lbIP}}
		if annotation != "" {
			s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: annotation}
		}
		return s
	}
	dual := []int{4, 6}
	for _, c := range []struct {
		svc      *corev1.Service
		families []int
		want     map[int]string
		refusal  string
	}{
		{mk("", ""), dual, map[int]string{}, ""},
		{mk("198.51.100.10", ""), dual, map[int]string{4: "198.51.100.10"}, ""},
		{mk(" 198.51.100.10 , 2001:db8::10", ""), dual, map[int]string{4: "198.51.100.10", 6: "2001:db8::10"}, ""},
		{mk("", "2001:db8::10"), dual, map[int]string{6: "2001:db8::10"}, ""},
		{mk("198.51.100.10", "198.51.100.10"), dual, map[int]string{4: "198.51.100.10"}, ""},
		{mk("198.51.100.10", "198.51.100.11"), dual, nil, "spec.loadBalancerIP 198.51.100.11 is not among the addresses of annotation"},
		{mk("198.51.100.10,198.51.100.11", ""), dual, nil, "two IPv4 addresses"},
		{mk("a,b,c", ""), dual, nil, "lists 3 addresses"},
		{mk("fe80::1%eth0", ""), dual, nil, "is not an IP address"},
		{mk("::ffff:198.51.100.1", ""), dual, nil, "is not an IP address"},
		{mk("2001:db8::10", ""), []int{4}, nil, "an IPv6 address, but the Service's ipFamilies have no IPv6"},
	} {
		got, ref := parseRequest(c.svc, c.families)
		if c.refusal != "" {
			if ref == nil || ref.reason != ReasonInvalidRequest || !strings.Contains(ref.message, c.refusal) {
				t.Errorf("%v %q: refusal %+v, want %q", c.svc.Annotations, c.svc.Spec.LoadBalancerIP, ref, c.refusal)
			}
			continue
		}
		if ref != nil {
			t.Errorf("%v %q: %s", c.svc.Annotations, c.svc.Spec.LoadBalancerIP, ref.message)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%v: %v, want %v", c.svc.Annotations, got, c.want)
		}
		for f, s := range c.want {
			if got[f] != netip.MustParseAddr(s) {
				t.Errorf("%v: IPv%d %s, want %s", c.svc.Annotations, f, got[f], s)
			}
		}
	}
}

// staleCache is a cache that has not seen the VirtualIPs created since it was made: the
// reconciler must not read "this Service has no VirtualIP" there and allocate a second.
type staleCache struct {
	client.Client
	seen map[string]bool
}

func (s *staleCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := s.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	if l, ok := list.(*v1alpha1.VirtualIPList); ok {
		var kept []v1alpha1.VirtualIP
		for _, v := range l.Items {
			if s.seen[v.Name] {
				kept = append(kept, v)
			}
		}
		l.Items = kept
	}
	return nil
}

// A Service reconciled again before the cache has the VirtualIP it was given asks the API
// server, and gets no second one.
func TestNoSecondAllocationFromAStaleCache(t *testing.T) {
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	p := pool("lan", time.Unix(1_800_000_000, 0), "198.18.0.100-198.18.0.109", 10, 19)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "front", UID: "u1"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.LoadBalancerClass), IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}}}
	api := fake.NewClientBuilder().WithScheme(sch).WithObjects(&p, svc).WithStatusSubresource(&corev1.Service{}, &v1alpha1.VirtualIPPool{}).Build()
	r := &ServiceReconciler{Client: &staleCache{Client: api, seen: map[string]bool{}}, APIReader: api,
		Recorder: events.NewFakeRecorder(100), Log: slog.New(slog.DiscardHandler), pending: map[types.NamespacedName]struct{}{}}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "web", Name: "front"}}
	for range 3 {
		if _, err := r.Reconcile(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	var vips v1alpha1.VirtualIPList
	if err := api.List(t.Context(), &vips); err != nil {
		t.Fatal(err)
	}
	if len(vips.Items) != 1 {
		var names []string
		for _, v := range vips.Items {
			names = append(names, v.Name)
		}
		t.Errorf("VirtualIPs %v: want one, the Service's only allocation", names)
	}
}
