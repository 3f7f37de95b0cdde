package controllers

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// selector says what desired.Selects says, an error being no.
func TestSelectorIsSelects(t *testing.T) {
	vips := map[string]*v1alpha1.VirtualIP{
		"labels": testVIP("v", func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"role": "lb"}}
		}),
		"expressions": testVIP("v", func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}},
				{Key: "drain", Operator: metav1.LabelSelectorOpDoesNotExist}}}
		}),
		"empty selector": testVIP("v", func(v *v1alpha1.VirtualIP) { v.Spec.NodeSelector = &metav1.LabelSelector{} }),
		"spec.nodes":     testVIP("v", nil),
		"neither":        testVIP("v", func(v *v1alpha1.VirtualIP) { v.Spec.Nodes = nil }),
		"bad selector": testVIP("v", func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "zone", Operator: "Near", Values: []string{"a"}}}}
		}),
	}
	nodes := []struct {
		name   string
		labels map[string]string
	}{
		{"lb1", nil},
		{"lb2", map[string]string{"role": "lb", "zone": "a"}},
		{"web1", map[string]string{"role": "web", "zone": "b"}},
		{"web2", map[string]string{"zone": "b", "drain": ""}},
		{"db1", map[string]string{"zone": "c"}},
	}
	for name, vip := range vips {
		sel := selector(vip)
		for _, n := range nodes {
			ok, err := desired.Selects(vip, n.name, n.labels)
			if want := err == nil && ok; sel(n.name, n.labels) != want {
				t.Errorf("%s, node %s: selector says %v, desired.Selects %v, %v", name, n.name, !want, ok, err)
			}
		}
	}
}

// peers parses spec.nodeSelector once, not once per Node: at most a few allocations per
// selected Node (its addresses), where parsing took a dozen.
func TestPeersAllocations(t *testing.T) {
	vip := testVIP("v", func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "node-role.kubernetes.io/lb", Operator: metav1.LabelSelectorOpExists},
			{Key: "topology.kubernetes.io/zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b", "c"}}}}
	})
	nodes := make([]corev1.Node, 1000)
	for i := range nodes {
		labels := map[string]string{"node-role.kubernetes.io/lb": "", "topology.kubernetes.io/zone": "a"}
		if i%2 == 1 {
			labels = map[string]string{"node-role.kubernetes.io/web": "", "topology.kubernetes.io/zone": "b"}
		}
		nodes[i] = *testNode(fmt.Sprintf("n%04d", i), fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250), labels)
	}
	r := &VirtualIPReconciler{NodeName: "n0000"}
	var peers []desired.Peer
	allocs := testing.AllocsPerRun(5, func() { peers = r.peers(vip, nodes) })
	if len(peers) != 499 {
		t.Fatalf("%d peers, want 499", len(peers))
	}
	if perNode := allocs / float64(len(nodes)); perNode > 2 {
		t.Errorf("peers of 1000 Nodes: %.0f allocations, %.1f per Node", allocs, perNode)
	}
}
