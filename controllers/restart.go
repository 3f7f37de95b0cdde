package controllers

import (
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
)

// What the stop decision watches, in the agent's namespace only (a Role, not the ClusterRole):
// its own pod (a field selector on its name), its DaemonSet (a field selector on its name), and
// that DaemonSet's ControllerRevisions (its label selector). Nodes (its own, by a field
// selector): list and watch, already in the ClusterRole (rbac.go). Nothing is read with get:
// at SIGTERM the agent decides from what the watches hold (StopWatch).
//
// +kubebuilder:rbac:groups="",namespace=kube-vrrp,resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=apps,namespace=kube-vrrp,resources=daemonsets,verbs=list;watch
// +kubebuilder:rbac:groups=apps,namespace=kube-vrrp,resources=controllerrevisions,verbs=list;watch

// maxRevisions bounds the ControllerRevisions the decision considers (a DaemonSet keeps
// spec.revisionHistoryLimit of them, 10 by default, plus the current one): more, and it does
// not guess which is the newest.
const maxRevisions = 1000

// stopSource is what the decision reads: the objects the watches hold (StopWatch), each with
// why it cannot be trusted yet ("" when it can: the watch has listed and is connected).
type stopSource interface {
	// pod is the agent's pod (nil: there is none).
	pod() (*corev1.Pod, string)
	// daemonSet is the DaemonSet named name (nil: there is none); not current while the
	// watch follows another name.
	daemonSet(name string) (*appsv1.DaemonSet, string)
	// revisions are the ControllerRevisions selector selects; not current while the watch
	// follows another selector.
	revisions(selector string) ([]*appsv1.ControllerRevision, string)
	// node is the agent's node (nil: there is none).
	node() (*corev1.Node, string)
}

// stopVerdict is a decision: restart or final, and why (for the log: object names, revision
// hashes, no credentials). pending says that a final verdict may still turn into a restart as
// the watches catch up (a watch not yet current, or the pod's deletion not yet seen), so that
// it is worth waiting a moment for them; a final verdict that is not pending is definite.
type stopVerdict struct {
	restart bool
	pending bool
	reason  string
}

func finalStop(format string, args ...any) stopVerdict {
	return stopVerdict{reason: "final: " + fmt.Sprintf(format, args...)}
}

func pendingStop(format string, args ...any) stopVerdict {
	return stopVerdict{pending: true, reason: "final: " + fmt.Sprintf(format, args...)}
}

// decideStop tells, when the agent receives SIGTERM in Kubernetes, whether it is being
// restarted (hand its MASTER instances to its successor) or stopped for good (the priority-0
// handover), from what src holds (docs/design.md §4.9.1). It is a restart only when
//
//   - the agent's pod (namespace and name, from the downward API) runs on the agent's node and
//     is controlled by a DaemonSet that still exists (same UID) and is not being deleted;
//   - the pod's controller-revision-hash label is not the one of the DaemonSet's newest
//     ControllerRevision (the highest revision among those it controls): the DaemonSet
//     controller deletes an outdated pod in a rolling update and creates its replacement;
//   - the node is schedulable (not cordoned or drained) and not being deleted, and the
//     DaemonSet's current pod template still selects it (nodeSelector, required node
//     affinity, the node's NoSchedule and NoExecute taints tolerated), so a replacement will
//     come to this node;
//   - the pod is being deleted (deletionTimestamp): the API server marks the pod before the
//     kubelet sends SIGTERM, so a stop without it is the kubelet's own (a node shutting down,
//     an eviction, a failed liveness probe), with no new pod to come.
//
// Anything else, and a watch that cannot be trusted, is a final stop: when in doubt the agent
// moves the address now rather than risk a wait. The checks run in this order, so that a
// definite final verdict is found before a pending one.
func decideStop(src stopSource, namespace, podName, nodeName string) stopVerdict {
	if namespace == "" || podName == "" {
		return finalStop("the agent's pod is unknown (POD_NAME and POD_NAMESPACE from the downward API)")
	}
	p, why := src.pod()
	if why != "" {
		return pendingStop("the watch of pod %s/%s %s", namespace, podName, why)
	}
	if p == nil {
		return finalStop("pod %s/%s not found", namespace, podName)
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "DaemonSet" || groupOf(ref.APIVersion) != appsv1.GroupName {
		return finalStop("pod %s/%s is not controlled by a DaemonSet", namespace, podName)
	}
	hash := p.Labels[appsv1.ControllerRevisionHashLabelKey]
	if hash == "" {
		return finalStop("pod %s/%s has no %s label", namespace, podName, appsv1.ControllerRevisionHashLabelKey)
	}
	if p.Spec.NodeName == "" || p.Spec.NodeName != nodeName {
		return finalStop("pod %s/%s is not on node %s (%q)", namespace, podName, nodeName, p.Spec.NodeName)
	}

	ds, why := src.daemonSet(ref.Name)
	if why != "" {
		return pendingStop("the watch of DaemonSet %s/%s %s", namespace, ref.Name, why)
	}
	if ds == nil {
		return finalStop("DaemonSet %s/%s not found", namespace, ref.Name)
	}
	if ds.UID != ref.UID {
		return finalStop("DaemonSet %s/%s is not the one that made pod %s (deleted and created again)", namespace, ds.Name, podName)
	}
	if ds.DeletionTimestamp != nil {
		return finalStop("DaemonSet %s/%s is being deleted", namespace, ds.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		return finalStop("DaemonSet %s/%s has no usable selector", namespace, ds.Name)
	}
	revs, why := src.revisions(sel.String())
	if why != "" {
		return pendingStop("the watch of DaemonSet %s/%s's ControllerRevisions %s", namespace, ds.Name, why)
	}
	if len(revs) > maxRevisions {
		return finalStop("DaemonSet %s/%s has more than %d ControllerRevisions", namespace, ds.Name, maxRevisions)
	}
	newest := newestRevision(ds, revs)
	if newest == nil {
		return finalStop("DaemonSet %s/%s has no ControllerRevision", namespace, ds.Name)
	}
	current := newest.Labels[appsv1.ControllerRevisionHashLabelKey]
	if current == "" {
		return finalStop("ControllerRevision %s/%s has no %s label", namespace, newest.Name, appsv1.ControllerRevisionHashLabelKey)
	}
	if current == hash {
		return finalStop("pod %s/%s is at DaemonSet %s's newest revision %d (%s): not replaced by an update", namespace, podName, ds.Name, newest.Revision, hash)
	}

	node, why := src.node()
	if why != "" {
		return pendingStop("the watch of node %s %s", nodeName, why)
	}
	if node == nil {
		return finalStop("node %s not found", nodeName)
	}
	if node.DeletionTimestamp != nil {
		return finalStop("node %s is being deleted", node.Name)
	}
	if node.Spec.Unschedulable {
		return finalStop("node %s is cordoned (unschedulable)", node.Name)
	}
	if ok, why := templateSelectsNode(&ds.Spec.Template.Spec, node); !ok {
		return finalStop("DaemonSet %s/%s's new pod template does not run on node %s: %s", namespace, ds.Name, node.Name, why)
	}
	if p.DeletionTimestamp == nil {
		return pendingStop("pod %s/%s (revision %s, DaemonSet %s's newest is %d (%s)) is not being deleted: a stop of the kubelet's own, no replacement",
			namespace, podName, hash, ds.Name, newest.Revision, current)
	}
	return stopVerdict{restart: true, reason: fmt.Sprintf("restart: DaemonSet %s/%s replaces pod %s (revision %s) with revision %d (%s) on node %s",
		namespace, ds.Name, podName, hash, newest.Revision, current, node.Name)}
}

// groupOf is the API group of an apiVersion ("apps/v1": "apps"; "v1": "").
func groupOf(apiVersion string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return ""
	}
	return gv.Group
}

// newestRevision is the ControllerRevision ds controls with the highest revision: the DaemonSet
// controller gives the current template's revision the highest number (a rollback renumbers
// the old revision it returns to). Revisions of another controller are ignored; nil when none.
func newestRevision(ds *appsv1.DaemonSet, revs []*appsv1.ControllerRevision) *appsv1.ControllerRevision {
	var newest *appsv1.ControllerRevision
	for _, r := range revs {
		if !metav1.IsControlledBy(r, ds) {
			continue
		}
		if newest == nil || r.Revision > newest.Revision {
			newest = r
		}
	}
	return newest
}

// templateSelectsNode tells whether the DaemonSet controller would run a pod of spec on node:
// the template names no other node, its nodeSelector and required node affinity match the
// node, and it tolerates every NoSchedule and NoExecute taint of the node (with the
// tolerations every DaemonSet pod gets). Anything it cannot read (an unknown operator, a
// malformed requirement) does not select the node. why says what does not match.
func templateSelectsNode(spec *corev1.PodSpec, node *corev1.Node) (ok bool, why string) {
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return false, "it names node " + spec.NodeName
	}
	nodeLabels := labels.Set(node.Labels)
	for k, v := range spec.NodeSelector {
		if got, has := node.Labels[k]; !has || got != v {
			return false, fmt.Sprintf("nodeSelector %s=%s", k, v)
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if !slices.ContainsFunc(terms, func(t corev1.NodeSelectorTerm) bool { return termMatches(t, node.Name, nodeLabels) }) {
			return false, "its required node affinity"
		}
	}
	tolerations := append(slices.Clone(spec.Tolerations), daemonTolerations(spec.HostNetwork)...)
	for _, taint := range node.Spec.Taints {
		if taint.Effect != corev1.TaintEffectNoSchedule && taint.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !slices.ContainsFunc(tolerations, func(t corev1.Toleration) bool { return tolerates(t, taint) }) {
			return false, fmt.Sprintf("taint %s:%s not tolerated", taint.Key, taint.Effect)
		}
	}
	return true, ""
}

// termMatches: a node selector term matches when all its expressions and fields do; an empty
// term matches no node (the API's rules for requiredDuringSchedulingIgnoredDuringExecution).
func termMatches(t corev1.NodeSelectorTerm, nodeName string, nodeLabels labels.Set) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for _, e := range t.MatchExpressions {
		r, err := requirement(e)
		if err != nil || !r.Matches(nodeLabels) {
			return false
		}
	}
	for _, f := range t.MatchFields {
		// metadata.name is the only field a node selector may name, with In or NotIn.
		if f.Key != "metadata.name" || (f.Operator != corev1.NodeSelectorOpIn && f.Operator != corev1.NodeSelectorOpNotIn) {
			return false
		}
		r, err := requirement(f)
		if err != nil || !r.Matches(labels.Set{"metadata.name": nodeName}) {
			return false
		}
	}
	return true
}

// requirement is a node selector requirement as a label requirement (Gt and Lt compare the
// label's value as an integer).
func requirement(e corev1.NodeSelectorRequirement) (*labels.Requirement, error) {
	var op selection.Operator
	switch e.Operator {
	case corev1.NodeSelectorOpIn:
		op = selection.In
	case corev1.NodeSelectorOpNotIn:
		op = selection.NotIn
	case corev1.NodeSelectorOpExists:
		op = selection.Exists
	case corev1.NodeSelectorOpDoesNotExist:
		op = selection.DoesNotExist
	case corev1.NodeSelectorOpGt:
		op = selection.GreaterThan
	case corev1.NodeSelectorOpLt:
		op = selection.LessThan
	default:
		return nil, fmt.Errorf("unknown operator %q", e.Operator)
	}
	return labels.NewRequirement(e.Key, op, e.Values)
}

// daemonTolerations are the tolerations the DaemonSet controller adds to every pod it creates
// (Kubernetes documentation, DaemonSet, "Taints and tolerations").
func daemonTolerations(hostNetwork bool) []corev1.Toleration {
	ts := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	if hostNetwork {
		ts = append(ts, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return ts
}

// tolerates: an empty effect matches every effect, an empty key (with Exists) every key;
// Exists matches any value, Equal (the default) the same value. Any other operator tolerates
// nothing here.
func tolerates(t corev1.Toleration, taint corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpEqual, "":
		return t.Key != "" && t.Value == taint.Value
	default:
		return false
	}
}
