package lbpool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// Members are who runs a VirtualIP: its nodeSelector and nodes (docs/design.md §1.1). With a
// selector the selector decides and nodes only override settings; without one the members
// are exactly the nodes listed.
type Members struct {
	NodeSelector *metav1.LabelSelector   `json:"nodeSelector,omitempty"`
	Nodes        []v1alpha1.NodeOverride `json:"nodes,omitempty"`
}

// MembersOf are the members vip has now.
func MembersOf(vip *v1alpha1.VirtualIP) Members {
	return Members{NodeSelector: vip.Spec.NodeSelector.DeepCopy(), Nodes: slices.Clone(vip.Spec.Nodes)}
}

// Equal reports whether m and o name the same members the same way.
func (m Members) Equal(o Members) bool {
	return equality.Semantic.DeepEqual(m.NodeSelector, o.NodeSelector) && equality.Semantic.DeepEqual(normNodes(m.Nodes), normNodes(o.Nodes))
}

func normNodes(n []v1alpha1.NodeOverride) []v1alpha1.NodeOverride {
	if len(n) == 0 {
		return nil
	}
	return n
}

// Set writes m into vip's spec.
func (m Members) Set(vip *v1alpha1.VirtualIP) {
	vip.Spec.NodeSelector = m.NodeSelector.DeepCopy()
	vip.Spec.Nodes = slices.Clone(m.Nodes)
}

// selectsNothing is the selector of a VirtualIP that no node may run: a label both present and
// absent. The CRD requires a selector or nodes, and In needs values, so "none" is written as a
// contradiction, which selects no node whatever its labels.
func selectsNothing() []metav1.LabelSelectorRequirement {
	return []metav1.LabelSelectorRequirement{
		{Key: corev1.LabelHostname, Operator: metav1.LabelSelectorOpExists},
		{Key: corev1.LabelHostname, Operator: metav1.LabelSelectorOpDoesNotExist},
	}
}

// Narrow returns base's members restricted to the nodes named (a Service's nodes with a ready
// endpoint, for externalTrafficPolicy: Local; docs/design.md §7.12). With a selector, the
// selector gains kubernetes.io/hostname In [nodes] (the label kubelet sets to the node's
// name); without one, the nodes listed are kept if named. With no node left the VirtualIP
// selects none, so that no node holds its address. The nodes' overrides are kept either way.
// A name that cannot be a label value is no node's hostname label: it is left out (with a
// selector).
func Narrow(base Members, nodes []string) Members {
	out := Members{Nodes: slices.Clone(base.Nodes)}
	if base.NodeSelector == nil {
		out.Nodes = slices.DeleteFunc(out.Nodes, func(n v1alpha1.NodeOverride) bool { return !slices.Contains(nodes, n.Name) })
		if len(out.Nodes) > 0 {
			return out
		}
		out.Nodes = slices.Clone(base.Nodes)
		out.NodeSelector = &metav1.LabelSelector{MatchExpressions: selectsNothing()}
		return out
	}
	var values []string
	for _, n := range nodes {
		if len(validation.IsValidLabelValue(n)) == 0 && n != "" {
			values = append(values, n)
		}
	}
	slices.Sort(values)
	values = slices.Compact(values)
	sel := base.NodeSelector.DeepCopy()
	if len(values) == 0 {
		sel.MatchExpressions = append(sel.MatchExpressions, selectsNothing()...)
	} else {
		sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: corev1.LabelHostname, Operator: metav1.LabelSelectorOpIn, Values: values,
		})
	}
	out.NodeSelector = sel
	return out
}

// MaxTemplateMembers bounds the annotation AnnotationTemplateMembers that is read back: 256
// nodes[] entries of at most 253-character names with their settings fit well within it.
const MaxTemplateMembers = 128 << 10

// EncodeMembers is m as the annotation AnnotationTemplateMembers keeps it.
func EncodeMembers(m Members) string {
	b, err := json.Marshal(m)
	if err != nil {
		// Marshalling these types cannot fail.
		panic(err)
	}
	return string(b)
}

// DecodeMembers reads the annotation AnnotationTemplateMembers: members that name someone (a
// selector, or nodes), nothing unknown, within MaxTemplateMembers. The API server checks the
// rest when they are written back into the VirtualIP.
func DecodeMembers(s string) (Members, error) {
	var m Members
	if len(s) > MaxTemplateMembers {
		return m, fmt.Errorf("annotation %s: %d bytes, more than %d", v1alpha1.AnnotationTemplateMembers, len(s), MaxTemplateMembers)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Members{}, fmt.Errorf("annotation %s: %w", v1alpha1.AnnotationTemplateMembers, err)
	}
	if dec.More() {
		return Members{}, fmt.Errorf("annotation %s: data after the object", v1alpha1.AnnotationTemplateMembers)
	}
	if m.NodeSelector == nil && len(m.Nodes) == 0 {
		return Members{}, errors.New("annotation " + v1alpha1.AnnotationTemplateMembers + ": names no members (neither nodeSelector nor nodes)")
	}
	if _, err := metav1.LabelSelectorAsSelector(m.NodeSelector); err != nil {
		return Members{}, fmt.Errorf("annotation %s: nodeSelector: %w", v1alpha1.AnnotationTemplateMembers, err)
	}
	return m, nil
}

// EndpointNodes are the nodes a Service's endpoints of family (4 or 6) are on, from its
// EndpointSlices, sorted: those with a ready endpoint, or, when no node has one, those with a
// serving one (terminating endpoints that still serve, which kube-proxy uses when a node has no
// ready one). An endpoint without a nodeName, and slices of the other family or of FQDNs,
// count for nothing.
func EndpointNodes(list []discoveryv1.EndpointSlice, family int) []string {
	want := discoveryv1.AddressTypeIPv4
	if family == 6 {
		want = discoveryv1.AddressTypeIPv6
	}
	var ready, serving []string
	for i := range list {
		s := &list[i]
		if s.AddressType != want {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil || *ep.NodeName == "" {
				continue
			}
			c := ep.Conditions
			// As kube-proxy reads them: ready and serving unset mean true.
			if c.Ready == nil || *c.Ready {
				ready = append(ready, *ep.NodeName)
			}
			if c.Serving == nil || *c.Serving {
				serving = append(serving, *ep.NodeName)
			}
		}
	}
	out := ready
	if len(out) == 0 {
		out = serving
	}
	slices.Sort(out)
	return slices.Compact(out)
}
