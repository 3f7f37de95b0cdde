package loadbalancer

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// The cache keeps of an EndpointSlice what the controller reads, and nothing of its addresses;
// trimming twice changes nothing.
func TestTrimEndpointSlice(t *testing.T) {
	in := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "front-x", ResourceVersion: "7", Annotations: map[string]string{"a": "b"},
			Labels: map[string]string{discoveryv1.LabelServiceName: "front", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"2001:db8::1"}, NodeName: ptr.To("lb1"), Zone: ptr.To("z"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: "front-1"}}},
		Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}},
	}
	o, err := TrimEndpointSlice(in)
	if err != nil {
		t.Fatal(err)
	}
	s := o.(*discoveryv1.EndpointSlice)
	if s.Name != "front-x" || s.Namespace != "web" || s.ResourceVersion != "7" || len(s.Labels) != 1 || s.Labels[discoveryv1.LabelServiceName] != "front" ||
		s.Annotations != nil || s.AddressType != discoveryv1.AddressTypeIPv6 || s.Ports != nil || len(s.Endpoints) != 1 {
		t.Fatalf("trimmed %+v", s)
	}
	ep := s.Endpoints[0]
	if ep.Addresses != nil || ep.Zone != nil || ep.TargetRef != nil || *ep.NodeName != "lb1" || *ep.Conditions.Ready || !*ep.Conditions.Serving {
		t.Errorf("endpoint %+v", ep)
	}
	if lbpool.EndpointNodes([]discoveryv1.EndpointSlice{*s}, 6)[0] != "lb1" {
		t.Error("the trimmed slice lost its serving endpoint")
	}
	again, _ := TrimEndpointSlice(s)
	if !equalJSON(t, again, s) {
		t.Errorf("trimming twice: %+v", again)
	}
	if o, _ := TrimEndpointSlice(&corev1.Service{}); o.(*corev1.Service) == nil {
		t.Error("not a slice: changed")
	}
}

// A VirtualIP goes to Local and back: narrowed with the template's members kept, then those
// put back, the address and VRID untouched; an annotation that does not read gives way to the
// pool's template.
func TestShaped(t *testing.T) {
	sch := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	p := pool("lan", time.Unix(1_800_000_000, 0), "198.18.0.100-198.18.0.109", 10, 19)
	p.Spec.Template.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "yes"}}
	r := &ServiceReconciler{Client: fake.NewClientBuilder().WithScheme(sch).WithObjects(&p).Build()}
	f, _ := lbpool.FamilyOf(&p, 4)
	a, vrid := f.At(0)
	vip := lbpool.VirtualIP(&p, f, a, vrid, lbpool.Owner{Namespace: "web", Name: "front", UID: "u1"})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "front"}}

	if got, err := r.shaped(t.Context(), svc, vip, nil); err != nil || !equalJSON(t, got, vip) {
		t.Errorf("Cluster, as allocated: %+v, %v; want it unchanged", got, err)
	}
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	local, err := r.shaped(t.Context(), svc, vip, []string{"lb2"})
	if err != nil {
		t.Fatal(err)
	}
	if local.Annotations[v1alpha1.AnnotationTemplateMembers] == "" || local.Annotations[v1alpha1.AnnotationService] != "web/front" ||
		local.Spec.VRID != vip.Spec.VRID || local.Spec.Addresses[0] != vip.Spec.Addresses[0] ||
		metav1.FormatLabelSelector(local.Spec.NodeSelector) != "kubernetes.io/hostname in (lb2),lb=yes" {
		t.Errorf("Local: annotations %v, vrid %d, addresses %v, selector %s", local.Annotations, local.Spec.VRID, local.Spec.Addresses, metav1.FormatLabelSelector(local.Spec.NodeSelector))
	}
	// Narrowing again starts from the template's members, not from the narrowed ones.
	again, err := r.shaped(t.Context(), svc, local, []string{"lb3"})
	if err != nil || metav1.FormatLabelSelector(again.Spec.NodeSelector) != "kubernetes.io/hostname in (lb3),lb=yes" {
		t.Errorf("Local, moved: %s, %v", metav1.FormatLabelSelector(again.Spec.NodeSelector), err)
	}
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	back, err := r.shaped(t.Context(), svc, again, nil)
	if err != nil || !equalJSON(t, back, vip) {
		t.Errorf("Cluster again: %+v, %v; want it as allocated", back, err)
	}

	// A hand-edited annotation: the pool's template now.
	p.Spec.Template.NodeSelector.MatchLabels["lb"] = "now"
	if err := r.Client.Update(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	local.Annotations[v1alpha1.AnnotationTemplateMembers] = "{bogus"
	back, err = r.shaped(t.Context(), svc, local, nil)
	if err != nil || metav1.FormatLabelSelector(back.Spec.NodeSelector) != "lb=now" || back.Annotations[v1alpha1.AnnotationTemplateMembers] != "" {
		t.Errorf("Cluster from a bad annotation: %s, %v, %v", metav1.FormatLabelSelector(back.Spec.NodeSelector), back.Annotations, err)
	}
	// Without the pool, nothing to restore from: an error, and the VirtualIP stays as it is.
	local.Labels[v1alpha1.LabelPool] = "gone"
	if _, err := r.shaped(t.Context(), svc, local, nil); err == nil {
		t.Error("a bad annotation and no pool: no error")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}
