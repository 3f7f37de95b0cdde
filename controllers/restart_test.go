package controllers

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	owned := func(name string, rev int64, uid types.UID) *appsv1.ControllerRevision {
		yes := true
		return &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "kube-vrrp", UID: uid, Controller: &yes}}}, Revision: rev}
	}
	revs := []*appsv1.ControllerRevision{
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

// stopObjects is a stopSource of given objects (a small fake of what StopWatch's watches
// hold): a non-empty *Why says the watch cannot be trusted; dsName and selector, when set, are
// what the DaemonSet and revision watches follow.
type stopObjects struct {
	p                         *corev1.Pod
	ds                        *appsv1.DaemonSet
	revs                      []*appsv1.ControllerRevision
	n                         *corev1.Node
	podWhy, dsWhy, revsWhy    string
	nodeWhy, dsName, selector string
}

func (s *stopObjects) pod() (*corev1.Pod, string) { return s.p, s.podWhy }
func (s *stopObjects) daemonSet(name string) (*appsv1.DaemonSet, string) {
	if s.dsName != "" && s.dsName != name {
		return nil, "has not started"
	}
	return s.ds, s.dsWhy
}
func (s *stopObjects) revisions(selector string) ([]*appsv1.ControllerRevision, string) {
	if s.selector != "" && s.selector != selector {
		return nil, "has not started"
	}
	return s.revs, s.revsWhy
}
func (s *stopObjects) node() (*corev1.Node, string) { return s.n, s.nodeWhy }

// rollingUpdate is the state in which a stop is a restart: pod kube-vrrp-x7k2p of DaemonSet
// kube-vrrp, at revision 1 ("aaa"), marked deleted, on node n1; the DaemonSet's newest
// revision is 2 ("bbb").
func rollingUpdate() *stopObjects {
	labels := map[string]string{"app": "kube-vrrp"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "kube-vrrp", UID: "ds-uid"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}
	ref := *metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
	rev := func(hash string, n int64) *appsv1.ControllerRevision {
		return &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "kube-vrrp-" + hash,
			Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: hash}, OwnerReferences: []metav1.OwnerReference{ref}}, Revision: n}
	}
	deleted := metav1.Now()
	return &stopObjects{
		p: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "kube-vrrp-x7k2p", DeletionTimestamp: &deleted,
			Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: "aaa"}, OwnerReferences: []metav1.OwnerReference{ref}},
			Spec: corev1.PodSpec{NodeName: "n1"}},
		ds:       ds,
		revs:     []*appsv1.ControllerRevision{rev("aaa", 1), rev("bbb", 2)},
		n:        &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
		dsName:   "kube-vrrp",
		selector: "app=kube-vrrp",
	}
}

// TestDecideStop: a stop is a restart only in a rolling update (an outdated pod of a live
// DaemonSet, being deleted, on a schedulable node the new template still selects); every other
// case is final, definite or pending (worth waiting for the watches), each with its reason, and
// a definite final reason wins over a watch that is not current further down the checks.
func TestDecideStop(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name    string
		change  func(s *stopObjects)
		podName string
		restart bool
		pending bool
		want    string
	}{
		{name: "rolling update", change: func(*stopObjects) {}, restart: true,
			want: "restart: DaemonSet kube-vrrp/kube-vrrp replaces pod kube-vrrp-x7k2p (revision aaa) with revision 2 (bbb) on node n1"},
		{name: "no pod name", podName: "-", change: func(*stopObjects) {}, want: "POD_NAME"},
		{name: "pod not being deleted", change: func(s *stopObjects) { s.p.DeletionTimestamp = nil }, pending: true,
			want: "pod kube-vrrp/kube-vrrp-x7k2p (revision aaa, DaemonSet kube-vrrp's newest is 2 (bbb)) is not being deleted"},
		{name: "pod watch not listed", change: func(s *stopObjects) { s.p, s.podWhy = nil, "has not listed yet" }, pending: true,
			want: "the watch of pod kube-vrrp/kube-vrrp-x7k2p has not listed yet"},
		{name: "pod gone", change: func(s *stopObjects) { s.p = nil }, want: "pod kube-vrrp/kube-vrrp-x7k2p not found"},
		{name: "no controller", change: func(s *stopObjects) { s.p.OwnerReferences = nil }, want: "not controlled by a DaemonSet"},
		{name: "controlled by a ReplicaSet", change: func(s *stopObjects) {
			s.p.OwnerReferences[0].Kind, s.p.OwnerReferences[0].APIVersion = "ReplicaSet", "apps/v1"
		}, want: "not controlled by a DaemonSet"},
		{name: "DaemonSet of another group", change: func(s *stopObjects) { s.p.OwnerReferences[0].APIVersion = "example.com/v1" },
			want: "not controlled by a DaemonSet"},
		{name: "no hash label", change: func(s *stopObjects) { s.p.Labels = nil }, want: "has no controller-revision-hash label"},
		{name: "pod on another node", change: func(s *stopObjects) { s.p.Spec.NodeName = "n2" }, want: "is not on node n1"},
		{name: "DaemonSet watch following another", change: func(s *stopObjects) { s.dsName = "other" }, pending: true,
			want: "the watch of DaemonSet kube-vrrp/kube-vrrp has not started"},
		{name: "DaemonSet watch not connected", change: func(s *stopObjects) { s.dsWhy = "is not connected" }, pending: true,
			want: "the watch of DaemonSet kube-vrrp/kube-vrrp is not connected"},
		{name: "DaemonSet gone", change: func(s *stopObjects) { s.ds = nil }, want: "DaemonSet kube-vrrp/kube-vrrp not found"},
		{name: "DaemonSet created again", change: func(s *stopObjects) { s.ds.UID = "new-uid" }, want: "not the one that made pod"},
		{name: "DaemonSet being deleted", change: func(s *stopObjects) { s.ds.DeletionTimestamp = &now }, want: "is being deleted"},
		{name: "DaemonSet without selector", change: func(s *stopObjects) { s.ds.Spec.Selector = &metav1.LabelSelector{} }, want: "no usable selector"},
		{name: "revisions watch not listed", change: func(s *stopObjects) { s.revsWhy = "has not listed yet" }, pending: true,
			want: "ControllerRevisions has not listed yet"},
		{name: "no revision", change: func(s *stopObjects) { s.revs = nil }, want: "has no ControllerRevision"},
		{name: "too many revisions", change: func(s *stopObjects) {
			for range maxRevisions {
				s.revs = append(s.revs, s.revs[0])
			}
		}, want: "more than 1000 ControllerRevisions"},
		{name: "newest revision without hash", change: func(s *stopObjects) { s.revs[1].Labels = nil }, want: "has no controller-revision-hash label"},
		{name: "pod at the newest revision", change: func(s *stopObjects) { s.p.Labels[appsv1.ControllerRevisionHashLabelKey] = "bbb" },
			want: "pod kube-vrrp/kube-vrrp-x7k2p is at DaemonSet kube-vrrp's newest revision 2 (bbb)"},
		{name: "pod at the newest revision, node watch not connected", change: func(s *stopObjects) {
			s.p.Labels[appsv1.ControllerRevisionHashLabelKey] = "bbb"
			s.n, s.nodeWhy = nil, "is not connected"
		}, want: "newest revision 2 (bbb)"},
		{name: "pod at the newest revision, not being deleted", change: func(s *stopObjects) {
			s.p.Labels[appsv1.ControllerRevisionHashLabelKey] = "bbb"
			s.p.DeletionTimestamp = nil
		}, want: "newest revision 2 (bbb)"},
		{name: "rollback", change: func(s *stopObjects) { s.revs[0].Revision = 3 }, want: "is at DaemonSet kube-vrrp's newest revision 3 (aaa)"},
		{name: "another DaemonSet's newer revision", change: func(s *stopObjects) {
			r := s.revs[1].DeepCopy()
			r.OwnerReferences[0].UID, r.Revision, r.Labels[appsv1.ControllerRevisionHashLabelKey] = "other", 9, "ccc"
			s.revs = append(s.revs, r)
		}, restart: true, want: "with revision 2 (bbb)"},
		{name: "node watch not listed", change: func(s *stopObjects) { s.n, s.nodeWhy = nil, "has not listed yet" }, pending: true,
			want: "the watch of node n1 has not listed yet"},
		{name: "node gone", change: func(s *stopObjects) { s.n = nil }, want: "node n1 not found"},
		{name: "node being deleted", change: func(s *stopObjects) { s.n.DeletionTimestamp = &now }, want: "node n1 is being deleted"},
		{name: "node cordoned", change: func(s *stopObjects) { s.n.Spec.Unschedulable = true }, want: "node n1 is cordoned"},
		{name: "node cordoned, pod not being deleted", change: func(s *stopObjects) {
			s.n.Spec.Unschedulable = true
			s.p.DeletionTimestamp = nil
		}, want: "node n1 is cordoned"},
		{name: "new template leaves the node", change: func(s *stopObjects) { s.ds.Spec.Template.Spec.NodeSelector = map[string]string{"role": "lb"} },
			want: "new pod template does not run on node n1: nodeSelector role=lb"},
		{name: "node tainted", change: func(s *stopObjects) {
			s.n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Effect: corev1.TaintEffectNoExecute}}
		}, want: "taint dedicated:NoExecute not tolerated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rollingUpdate()
			tc.change(s)
			pod := "kube-vrrp-x7k2p"
			if tc.podName == "-" {
				pod = ""
			}
			v := decideStop(s, "kube-vrrp", pod, "n1")
			prefix := "final: "
			if tc.restart {
				prefix = "restart: "
			}
			if v.restart != tc.restart || v.pending != tc.pending || !strings.HasPrefix(v.reason, prefix) || !strings.Contains(v.reason, tc.want) {
				t.Errorf("decideStop = restart %v, pending %v, %q; want restart %v, pending %v, a reason saying %q",
					v.restart, v.pending, v.reason, tc.restart, tc.pending, tc.want)
			}
		})
	}
}

// TestStopTrims: what the stop watches keep of each object is what decideStop reads, and
// nothing else (no managedFields, annotations, status, containers or revision data); trimming
// twice changes nothing (client-go may pass an object through the transform again).
func TestStopTrims(t *testing.T) {
	yes := true
	big := strings.Repeat("x", 4096)
	meta := metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "o", UID: "uid", ResourceVersion: "42", Generation: 3,
		Labels:          map[string]string{"app": "kube-vrrp", appsv1.ControllerRevisionHashLabelKey: "aaa"},
		Annotations:     map[string]string{"big": big},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:big":{}}`)}}},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Other", Name: "x", UID: "x"}, {APIVersion: "apps/v1", Kind: "DaemonSet", Name: "kube-vrrp", UID: "ds-uid", Controller: &yes}},
	}
	ctrlRef := []metav1.OwnerReference{meta.OwnerReferences[1]}
	affinity := &corev1.Affinity{
		NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "a", Operator: corev1.NodeSelectorOpExists}}}}}},
		PodAntiAffinity: &corev1.PodAntiAffinity{},
	}
	tolerations := []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	podSpec := corev1.PodSpec{NodeName: "n1", NodeSelector: map[string]string{"role": "lb"}, Affinity: affinity, Tolerations: tolerations, HostNetwork: true,
		Containers: []corev1.Container{{Name: "agent", Image: "kube-vrrp", Args: []string{big}}}}

	for _, tc := range []struct {
		name string
		in   any
		trim func(any) (any, error)
		want any
	}{
		{"pod", &corev1.Pod{ObjectMeta: meta, Spec: podSpec, Status: corev1.PodStatus{Message: big}}, trimStopPod,
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "o", UID: "uid", ResourceVersion: "42",
				Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: "aaa"}, OwnerReferences: ctrlRef}, Spec: corev1.PodSpec{NodeName: "n1"}}},
		{"node", &corev1.Node{ObjectMeta: meta, Spec: corev1.NodeSpec{Unschedulable: true, PodCIDR: "198.18.0.0/24",
			Taints: []corev1.Taint{{Key: "t", Effect: corev1.TaintEffectNoSchedule}}}, Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{big}}}}}, trimStopNode,
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "o", UID: "uid", ResourceVersion: "42", Labels: meta.Labels, OwnerReferences: ctrlRef},
				Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{{Key: "t", Effect: corev1.TaintEffectNoSchedule}}}}},
		{"DaemonSet", &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "kube-vrrp"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "kube-vrrp"}, Annotations: map[string]string{"big": big}}, Spec: podSpec}},
			Status: appsv1.DaemonSetStatus{NumberReady: 3}}, trimStopDaemonSet,
			&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "o", UID: "uid", ResourceVersion: "42", OwnerReferences: ctrlRef},
				Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "kube-vrrp"}},
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{NodeName: "n1", NodeSelector: map[string]string{"role": "lb"}, Tolerations: tolerations, HostNetwork: true,
						Affinity: &corev1.Affinity{NodeAffinity: affinity.NodeAffinity}}}}}},
		{"ControllerRevision", &appsv1.ControllerRevision{ObjectMeta: meta, Revision: 7, Data: runtime.RawExtension{Raw: []byte(`{"big":"` + big + `"}`)}}, trimStopRevision,
			&appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "o", UID: "uid", ResourceVersion: "42",
				Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: "aaa"}, OwnerReferences: ctrlRef}, Revision: 7}},
		{"something else", "not an object", trimStopPod, "not an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.trim(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("trimmed (-want +got):\n%s", diff)
			}
			again, err := tc.trim(got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("trimmed twice (-once +twice):\n%s", diff)
			}
		})
	}
	// A deleting object keeps its deletionTimestamp.
	now := metav1.Now()
	p, _ := trimStopPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", DeletionTimestamp: &now}})
	if p.(*corev1.Pod).DeletionTimestamp == nil {
		t.Error("the trimmed pod lost its deletionTimestamp")
	}
}
