package controllers

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestTemplateSelectsNode: the DaemonSet's template runs on a node as the DaemonSet controller
// decides it (nodeSelector, required node affinity, NoSchedule and NoExecute taints with the
// tolerations every DaemonSet pod gets); what it cannot read selects nothing.
func TestTemplateSelectsNode(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"role": "lb", "zone": "a", "gen": "5"}}}
	tainted := func(taints ...corev1.Taint) *corev1.Node {
		n := node.DeepCopy()
		n.Spec.Taints = taints
		return n
	}
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	expr := func(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	field := func(op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: op, Values: values}}}
	}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		node *corev1.Node
		want bool
	}{
		{"anything", corev1.PodSpec{}, node, true},
		{"other node name", corev1.PodSpec{NodeName: "n2"}, node, false},
		{"node name", corev1.PodSpec{NodeName: "n1"}, node, true},
		{"nodeSelector", corev1.PodSpec{NodeSelector: map[string]string{"role": "lb", "zone": "a"}}, node, true},
		{"nodeSelector value", corev1.PodSpec{NodeSelector: map[string]string{"role": "web"}}, node, false},
		{"nodeSelector key", corev1.PodSpec{NodeSelector: map[string]string{"lb": ""}}, node, false},
		{"affinity In", corev1.PodSpec{Affinity: required(expr("zone", corev1.NodeSelectorOpIn, "b", "a"))}, node, true},
		{"affinity NotIn", corev1.PodSpec{Affinity: required(expr("zone", corev1.NodeSelectorOpNotIn, "a"))}, node, false},
		{"affinity NotIn absent", corev1.PodSpec{Affinity: required(expr("rack", corev1.NodeSelectorOpNotIn, "r1"))}, node, true},
		{"affinity Exists", corev1.PodSpec{Affinity: required(expr("role", corev1.NodeSelectorOpExists))}, node, true},
		{"affinity DoesNotExist", corev1.PodSpec{Affinity: required(expr("role", corev1.NodeSelectorOpDoesNotExist))}, node, false},
		{"affinity Gt", corev1.PodSpec{Affinity: required(expr("gen", corev1.NodeSelectorOpGt, "4"))}, node, true},
		{"affinity Lt", corev1.PodSpec{Affinity: required(expr("gen", corev1.NodeSelectorOpLt, "5"))}, node, false},
		{"affinity terms ORed", corev1.PodSpec{Affinity: required(expr("zone", corev1.NodeSelectorOpIn, "b"), expr("role", corev1.NodeSelectorOpIn, "lb"))}, node, true},
		{"affinity expressions ANDed", corev1.PodSpec{Affinity: required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}, {Key: "role", Operator: corev1.NodeSelectorOpIn, Values: []string{"web"}}}})}, node, false},
		{"affinity empty term", corev1.PodSpec{Affinity: required(corev1.NodeSelectorTerm{})}, node, false},
		{"affinity no terms", corev1.PodSpec{Affinity: required()}, node, false},
		{"affinity unknown operator", corev1.PodSpec{Affinity: required(expr("zone", "Near", "a"))}, node, false},
		{"affinity Gt not a number", corev1.PodSpec{Affinity: required(expr("gen", corev1.NodeSelectorOpGt, "four"))}, node, false},
		{"affinity field In", corev1.PodSpec{Affinity: required(field(corev1.NodeSelectorOpIn, "n1"))}, node, true},
		{"affinity field NotIn", corev1.PodSpec{Affinity: required(field(corev1.NodeSelectorOpNotIn, "n1"))}, node, false},
		{"affinity field Exists", corev1.PodSpec{Affinity: required(field(corev1.NodeSelectorOpExists))}, node, false},
		{"preferred affinity only", corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: expr("zone", corev1.NodeSelectorOpIn, "b")}}}}}, node, true},
		{"untolerated NoSchedule", corev1.PodSpec{}, tainted(corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}), false},
		{"untolerated NoExecute", corev1.PodSpec{}, tainted(corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoExecute}), false},
		{"untolerated PreferNoSchedule", corev1.PodSpec{}, tainted(corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectPreferNoSchedule}), true},
		{"tolerate all", corev1.PodSpec{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
			tainted(corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoExecute}), true},
		{"tolerate key", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
			tainted(corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}), true},
		{"tolerate other effect", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
			tainted(corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoExecute}), false},
		{"tolerate value", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Value: "db"}}},
			tainted(corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}), true},
		{"tolerate other value", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web"}}},
			tainted(corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}), false},
		{"tolerate unknown operator", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "gen", Operator: "Gt", Value: "1"}}},
			tainted(corev1.Taint{Key: "gen", Value: "5", Effect: corev1.TaintEffectNoSchedule}), false},
		{"every DaemonSet pod tolerates a cordon and node conditions", corev1.PodSpec{}, tainted(
			corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute},
			corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute},
			corev1.Taint{Key: corev1.TaintNodeDiskPressure, Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: corev1.TaintNodePIDPressure, Effect: corev1.TaintEffectNoSchedule}), true},
		{"network-unavailable on the host network", corev1.PodSpec{HostNetwork: true},
			tainted(corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), true},
		{"network-unavailable off the host network", corev1.PodSpec{},
			tainted(corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := templateSelectsNode(&tc.spec, tc.node)
			if got != tc.want {
				t.Errorf("templateSelectsNode = %v (%s), want %v", got, why, tc.want)
			}
			if !got && why == "" {
				t.Error("no reason given")
			}
		})
	}
}

// TestNewestRevision: the highest revision among those the DaemonSet controls, whatever the
// order, ignoring another controller's.
func TestNewestRevision(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kube-vrrp", UID: types.UID("ds-uid")}}
	owned := func(name string, rev int64, uid types.UID) appsv1.ControllerRevision {
		yes := true
		return appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "kube-vrrp", UID: uid, Controller: &yes}}}, Revision: rev}
	}
	revs := []appsv1.ControllerRevision{
		owned("a", 3, "ds-uid"), owned("b", 7, "ds-uid"), owned("c", 9, "other"), owned("d", 5, "ds-uid"),
		{ObjectMeta: metav1.ObjectMeta{Name: "e"}, Revision: 10},
	}
	if got := newestRevision(ds, revs); got == nil || got.Name != "b" {
		t.Errorf("newest = %v, want b (revision 7)", got)
	}
	if got := newestRevision(ds, revs[2:3]); got != nil {
		t.Errorf("newest of another DaemonSet's revisions = %s, want none", got.Name)
	}
}

// TestStopIsRestartUnknownPod: without the pod's name (no downward API) the stop is final,
// before any request.
func TestStopIsRestartUnknownPod(t *testing.T) {
	for _, tc := range []struct{ ns, pod string }{{"", "p"}, {"kube-vrrp", ""}} {
		restart, reason := StopIsRestart(context.Background(), nil, tc.ns, tc.pod)
		if restart || !strings.HasPrefix(reason, "final: ") || !strings.Contains(reason, "POD_NAME") {
			t.Errorf("namespace %q pod %q: restart %v (%s), want final naming POD_NAME", tc.ns, tc.pod, restart, reason)
		}
	}
}
