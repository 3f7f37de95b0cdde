//go:build linux

package envtest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers/loadbalancer"
)

// blockStatusLabel on a Service makes the API server refuse every write of its status (a
// ValidatingAdmissionPolicy of the test's): the controller's write of the status fails, as a
// conflict, an API outage or a crash would make it fail, between its other steps.
const blockStatusLabel = "test.kubevrrp.io/block-status"

// blockServiceStatus installs the policy and waits until the API server applies it.
func (e *lbEnv) blockServiceStatus(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "block-service-status"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"services/status"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: fmt.Sprintf("!has(object.metadata.labels) || !('%s' in object.metadata.labels)", blockStatusLabel),
				Message:    "the test blocks the status of this Service",
			}},
		}}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "block-service-status"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}}}
	for _, o := range []client.Object{policy, binding} {
		if err := e.admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	ensureNamespace(t, e.admin, "lb-probe")
	probe := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "lb-probe", Name: "probe", Labels: map[string]string{blockStatusLabel: ""}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := e.admin.Create(ctx, probe); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the policy in effect", func() error {
		p := probe.DeepCopy()
		p.Status.Conditions = []metav1.Condition{{Type: "Probe", Status: metav1.ConditionTrue, Reason: "Probe", LastTransitionTime: metav1.Now()}}
		if err := e.admin.Status().Update(ctx, p, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "block-service-status") {
			return fmt.Errorf("a status write of a blocked Service: %v", err)
		}
		return nil
	})
}

// updateService applies mut to the Service as the API server has it, and writes it.
func (e *lbEnv) updateService(t *testing.T, ns, name string, mut func(*corev1.Service)) {
	t.Helper()
	eventually(t, wait, "update Service "+ns+"/"+name, func() error {
		var s corev1.Service
		if err := e.admin.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			return err
		}
		mut(&s)
		return e.admin.Update(t.Context(), &s)
	})
}

// vipHeldBy checks that the VirtualIP name exists and is labelled with the Service ns/name.
func (e *lbEnv) vipHeldBy(t *testing.T, name, ns, svc string) error {
	t.Helper()
	var v v1alpha1.VirtualIP
	if err := e.admin.Get(t.Context(), client.ObjectKey{Name: name}, &v); err != nil {
		return fmt.Errorf("VirtualIP %s: %w", name, err)
	}
	if v.Labels[v1alpha1.LabelServiceNamespace] != ns || v.Labels[v1alpha1.LabelServiceName] != svc {
		return fmt.Errorf("VirtualIP %s is labelled %v, want Service %s/%s", name, v.Labels, ns, svc)
	}
	return nil
}

// TestLoadBalancerReleaseOrder: an address leaves a Service's VirtualIPs only after it has left
// its status. The status is the Service's claim on the address (kube-proxy makes rules for it);
// the VirtualIP is the allocation's lock. A controller that deleted the VirtualIP first and then
// failed to write the status left the status naming an address that another Service could be
// given meanwhile (two Services with one address in their status), and, for a Service no longer
// served, an ingress address nothing removed once the VirtualIP was gone.
func TestLoadBalancerReleaseOrder(t *testing.T) {
	e := startLBEnv(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller logs:\n%s", e.logs.String())
		}
	})
	e.blockServiceStatus(t)
	e.startController(t, "order", false)
	ensureNamespace(t, e.admin, "lb-o")
	e.createPool(t, lbPool("order", ipv4Pool("198.18.20.100-198.18.20.109", 100, 109)))
	request := func(ip string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = ip
		}
	}
	block := func(s *corev1.Service) {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[blockStatusLabel] = ""
	}
	unblock := func(s *corev1.Service) { delete(s.Labels, blockStatusLabel) }

	// A Service that moves to another address while its status cannot be written keeps the old
	// address's VirtualIP: no other Service gets the address its status still names.
	e.createService(t, lbService("lb-o", "mover", request("198.18.20.100")))
	if ips := e.allocated(t, "lb-o", "mover", 1); ips[0] != "198.18.20.100" {
		t.Fatalf("mover got %v", ips)
	}
	e.updateService(t, "lb-o", "mover", func(s *corev1.Service) { block(s); request("198.18.20.101")(s) })
	eventually(t, wait, "mover's new VirtualIP", func() error { return e.vipHeldBy(t, "lb-198-18-20-101", "lb-o", "mover") })
	e.createService(t, lbService("lb-o", "taker", request("198.18.20.100")))
	e.refused(t, "lb-o", "taker", loadbalancer.ReasonAddressInUse, "198.18.20.100 is taken")
	time.Sleep(time.Second) // the controller retries the status meanwhile
	if err := e.vipHeldBy(t, "lb-198-18-20-100", "lb-o", "mover"); err != nil {
		t.Errorf("while mover's status still names 198.18.20.100: %v", err)
	}
	var taker corev1.Service
	if err := e.admin.Get(t.Context(), types.NamespacedName{Namespace: "lb-o", Name: "taker"}, &taker); err != nil {
		t.Fatal(err)
	}
	if len(taker.Status.LoadBalancer.Ingress) > 0 {
		t.Errorf("taker has %v while mover's status still names 198.18.20.100", taker.Status.LoadBalancer.Ingress)
	}
	// Written at last: mover has the new address, then the old one goes to taker.
	e.updateService(t, "lb-o", "mover", unblock)
	eventually(t, wait, "mover on 198.18.20.101 alone", func() error {
		if ips := e.allocated(t, "lb-o", "mover", 1); ips[0] != "198.18.20.101" {
			return fmt.Errorf("mover %v", ips)
		}
		return nil
	})
	if ips := e.allocated(t, "lb-o", "taker", 1); ips[0] != "198.18.20.100" {
		t.Errorf("taker got %v, want 198.18.20.100, which mover left", ips)
	}

	// A Service no longer served whose status cannot be written keeps its VirtualIP until the
	// status no longer names its address; then both go.
	e.updateService(t, "lb-o", "taker", func(s *corev1.Service) {
		block(s)
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.LoadBalancerClass = nil
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = 0
		}
	})
	time.Sleep(time.Second)
	if err := e.vipHeldBy(t, "lb-198-18-20-100", "lb-o", "taker"); err != nil {
		t.Errorf("while taker's status still names 198.18.20.100: %v", err)
	}
	e.updateService(t, "lb-o", "taker", unblock)
	eventually(t, wait, "taker's status cleared", func() error {
		if err := e.admin.Get(t.Context(), types.NamespacedName{Namespace: "lb-o", Name: "taker"}, &taker); err != nil {
			return err
		}
		if len(taker.Status.LoadBalancer.Ingress) > 0 || meta.FindStatusCondition(taker.Status.Conditions, v1alpha1.ServiceConditionAllocated) != nil {
			return fmt.Errorf("status %+v", taker.Status)
		}
		return nil
	})
	e.gone(t, "lb-o", "taker")
}
