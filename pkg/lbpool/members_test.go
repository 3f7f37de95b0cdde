package lbpool

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// selected are the nodes of the cluster that m selects, as the agents decide
// (desired.Selects): each node's kubernetes.io/hostname label is its name.
func selected(t *testing.T, m Members, cluster map[string]map[string]string) []string {
	t.Helper()
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "v"}}
	m.Set(vip)
	var out []string
	for _, n := range []string{"lb1", "lb2", "lb3", "web1"} {
		l := labels.Merge(cluster[n], labels.Set{corev1.LabelHostname: n})
		ok, err := desired.Selects(vip, n, l)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, n)
		}
	}
	return out
}

// Narrow keeps of the template's members those the endpoints are on, as the agents read the
// result: a selector gains kubernetes.io/hostname In [...]; a list of nodes keeps those named;
// with none, no node at all, whatever its labels.
func TestNarrow(t *testing.T) {
	lb := map[string]string{"node-role.kubernetes.io/lb": ""}
	cluster := map[string]map[string]string{"lb1": lb, "lb2": lb, "lb3": lb, "web1": {}}
	bySelector := Members{
		NodeSelector: &metav1.LabelSelector{MatchLabels: lb},
		Nodes:        []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[v1alpha1.Priority](200)}},
	}
	byName := Members{Nodes: []v1alpha1.NodeOverride{{Name: "lb1"}, {Name: "lb2", Priority: ptr.To[v1alpha1.Priority](150)}}}
	for _, c := range []struct {
		name  string
		base  Members
		nodes []string
		want  string
	}{
		{"selector, one node", bySelector, []string{"lb2"}, "lb2"},
		{"selector, a node it does not select", bySelector, []string{"lb2", "web1"}, "lb2"},
		{"selector, all", bySelector, []string{"lb3", "lb1", "lb2", "lb1"}, "lb1 lb2 lb3"},
		{"selector, none", bySelector, nil, ""},
		{"selector, only names that are no label value", bySelector, []string{strings.Repeat("a", 64)}, ""},
		{"empty selector, none", Members{NodeSelector: &metav1.LabelSelector{}}, nil, ""},
		{"empty selector, web1", Members{NodeSelector: &metav1.LabelSelector{}}, []string{"web1"}, "web1"},
		{"names, one", byName, []string{"lb2", "lb3"}, "lb2"},
		{"names, none listed", byName, []string{"lb3"}, ""},
		{"names, none", byName, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := Members{NodeSelector: c.base.NodeSelector.DeepCopy(), Nodes: append([]v1alpha1.NodeOverride(nil), c.base.Nodes...)}
			m := Narrow(c.base, c.nodes)
			if got := strings.Join(selected(t, m, cluster), " "); got != c.want {
				t.Errorf("selects %q, want %q (members %+v)", got, c.want, m)
			}
			if !c.base.Equal(base) {
				t.Errorf("Narrow changed its base: %+v", c.base)
			}
			// The overrides of the nodes left stay (lb1's priority, lb2's).
			if c.base.NodeSelector != nil && len(m.Nodes) != len(c.base.Nodes) {
				t.Errorf("nodes %+v, want the template's overrides %+v", m.Nodes, c.base.Nodes)
			}
			// What the CRD asks of members: a selector or nodes, In with values.
			vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "v"}, Spec: v1alpha1.VirtualIPSpec{VRID: 1, Addresses: []string{"198.18.0.1/24"}}}
			m.Set(vip)
			if errs := desired.Validate(vip); len(errs) > 0 {
				t.Errorf("the narrowed VirtualIP is invalid: %v", errs.ToAggregate())
			}
		})
	}
}

// The template's members kept in the annotation read back as they were; what does not read,
// names no one, or is too long is refused.
func TestMembersAnnotation(t *testing.T) {
	m := Members{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "c", Operator: metav1.LabelSelectorOpIn, Values: []string{"d"}}}},
		Nodes:        []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[v1alpha1.Priority](200), Interface: "eth1"}},
	}
	got, err := DecodeMembers(EncodeMembers(m))
	if err != nil || !got.Equal(m) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{
		"", "{", "{}", `{"nodes":[]}`, `{"nodeSelector":{},"extra":1}`, `{"nodeSelector":{}} {}`,
		`{"nodeSelector":{"matchExpressions":[{"key":"a","operator":"Bogus"}]}}`,
		`{"nodes":[{"name":"` + strings.Repeat("a", MaxTemplateMembers) + `"}]}`,
	} {
		if _, err := DecodeMembers(bad); err == nil {
			t.Errorf("DecodeMembers(%.40q) accepted", bad)
		}
	}
}

// EndpointNodes: the nodes with a ready endpoint of the family; when none has one, those with
// a serving one (terminating); no nodeName, other families and unready ones count for nothing.
func TestEndpointNodes(t *testing.T) {
	ep := func(node string, ready, serving *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving}}
		if node != "" {
			e.NodeName = &node
		}
		return e
	}
	yes, no := ptr.To(true), ptr.To(false)
	slice := func(at discoveryv1.AddressType, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{AddressType: at, Endpoints: eps}
	}
	for _, c := range []struct {
		name   string
		slices []discoveryv1.EndpointSlice
		family int
		want   string
	}{
		{"ready, unset and true", []discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, ep("lb2", nil, nil), ep("lb1", yes, yes), ep("lb3", no, no))}, 4, "lb1 lb2"},
		{"ready wins over serving", []discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, ep("lb1", no, yes), ep("lb2", yes, yes))}, 4, "lb2"},
		{"serving when none is ready", []discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, ep("lb1", no, yes), ep("lb2", no, no))}, 4, "lb1"},
		{"across slices, once", []discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, ep("lb1", nil, nil)), slice(discoveryv1.AddressTypeIPv4, ep("lb1", nil, nil), ep("lb2", nil, nil))}, 4, "lb1 lb2"},
		{"by family", []discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, ep("lb1", nil, nil)), slice(discoveryv1.AddressTypeIPv6, ep("lb2", nil, nil)), slice(discoveryv1.AddressTypeFQDN, ep("lb3", nil, nil))}, 6, "lb2"},
		{"no node name", []discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, ep("", nil, nil))}, 4, ""},
		{"none", nil, 4, ""},
	} {
		if got := strings.Join(EndpointNodes(c.slices, c.family), " "); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
