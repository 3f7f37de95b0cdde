package controllers

import (
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// Status is written by server-side apply, in two parts with a field manager each: a node's
// report, its VirtualIPMember of each VirtualIP it takes part in (StatusReconciler, under
// "kube-vrrp-agent/<node>"), and the VirtualIP's summary (Aggregator, under
// AggregatorFieldManager). Both are built as the API's types and sent as one of the apply
// configurations below, of the form controller-gen generates: what is in it is set and owned
// by the manager, and what the manager owned before and leaves out is removed.

// statusApply is an apply configuration of a VirtualIP's status subresource with status S.
type statusApply[S any] struct {
	metav1ac.TypeMetaApplyConfiguration    `json:",inline"`
	*metav1ac.ObjectMetaApplyConfiguration `json:"metadata,omitempty"`
	Status                                 S `json:"status"`
}

// IsApplyConfiguration marks statusApply as a runtime.ApplyConfiguration.
func (*statusApply[S]) IsApplyConfiguration() {}

// newStatusApply applies status to the VirtualIP name. A resourceVersion, if not empty, is a
// precondition: the API server refuses the write (409) if the object changed since.
func newStatusApply[S any](name, resourceVersion string, status S) *statusApply[S] {
	meta := metav1ac.ObjectMeta().WithName(name)
	if resourceVersion != "" {
		meta.WithResourceVersion(resourceVersion)
	}
	return &statusApply[S]{
		TypeMetaApplyConfiguration:   *metav1ac.TypeMeta().WithAPIVersion(v1alpha1.GroupVersion.String()).WithKind("VirtualIP"),
		ObjectMetaApplyConfiguration: meta,
		Status:                       status,
	}
}

// memberApply is an apply configuration of a VirtualIPMember: the whole object, which its
// node's agent alone writes.
type memberApply struct {
	metav1ac.TypeMetaApplyConfiguration    `json:",inline"`
	*metav1ac.ObjectMetaApplyConfiguration `json:"metadata,omitempty"`
	Spec                                   v1alpha1.VirtualIPMemberSpec `json:"spec"`
	Status                                 nodeEntry                    `json:"status"`
}

// IsApplyConfiguration marks memberApply as a runtime.ApplyConfiguration.
func (*memberApply) IsApplyConfiguration() {}

// newMemberApply applies entry as the member of entry.Name (a node) in vip, owned by vip so
// that it goes when vip does.
func newMemberApply(vip *v1alpha1.VirtualIP, entry v1alpha1.NodeStatus) *memberApply {
	meta := metav1ac.ObjectMeta().WithName(v1alpha1.MemberName(vip.Name, entry.Name)).
		WithOwnerReferences(metav1ac.OwnerReference().WithAPIVersion(v1alpha1.GroupVersion.String()).
			WithKind("VirtualIP").WithName(vip.Name).WithUID(vip.UID))
	return &memberApply{
		TypeMetaApplyConfiguration:   *metav1ac.TypeMeta().WithAPIVersion(v1alpha1.GroupVersion.String()).WithKind("VirtualIPMember"),
		ObjectMetaApplyConfiguration: meta,
		Spec:                         v1alpha1.VirtualIPMemberSpec{VirtualIP: vip.Name, Node: entry.Name},
		Status:                       nodeEntry{entry},
	}
}

// nodeEntry is a v1alpha1.NodeStatus as applied: the same JSON, except that lastTransitionTime
// keeps its fraction of a second (RFC 3339 allows it, metav1.Time parses it, but marshals
// whole seconds): the aggregator tells two MASTER claims apart by it, and a failover can come
// within the second of the previous transition.
type nodeEntry struct {
	v1alpha1.NodeStatus
}

// MarshalJSON writes the NodeStatus with lastTransitionTime to the nanosecond, in UTC.
func (e nodeEntry) MarshalJSON() ([]byte, error) {
	type plain v1alpha1.NodeStatus // without this method
	out := struct {
		plain
		LastTransitionTime *string `json:"lastTransitionTime,omitempty"`
	}{plain: plain(e.NodeStatus)}
	if t := e.LastTransitionTime; t != nil {
		s := t.UTC().Format(time.RFC3339Nano)
		out.LastTransitionTime = &s
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads a NodeStatus (the client decodes the API server's answer into the apply
// configuration).
func (e *nodeEntry) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &e.NodeStatus) }

// summaryStatus is what the aggregator applies: master (also when empty, so that the field is
// its own), the conditions and observedGeneration.
type summaryStatus struct {
	ObservedGeneration int64              `json:"observedGeneration"`
	Master             string             `json:"master"`
	Conditions         []metav1.Condition `json:"conditions"`
}
