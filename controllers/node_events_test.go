package controllers

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// queued runs one event through h, with a real work queue, and returns the names it enqueued.
func queued(t *testing.T, h handler.EventHandler, ev any) []string {
	t.Helper()
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	ctx := context.Background()
	switch e := ev.(type) {
	case event.CreateEvent:
		h.Create(ctx, e, q)
	case event.UpdateEvent:
		h.Update(ctx, e, q)
	case event.DeleteEvent:
		h.Delete(ctx, e, q)
	default:
		t.Fatalf("event %T", ev)
	}
	var out []string
	for q.Len() > 0 {
		r, _ := q.Get()
		out = append(out, r.Name)
		q.Done(r)
	}
	slices.Sort(out)
	return out
}

// A Node's change reconciles only the VirtualIPs it can concern (docs/design.md §7.2): all of
// them for this agent's own node; else those it joins or leaves (spec.nodeSelector, or spec.nodes
// without one), those whose members' addresses it changes, and those whose virtual address one
// of its addresses is or was. An unrelated Node's labels, a heartbeat's worth of change in a
// cluster of thousands, reconciles nothing.
func TestVirtualIPNodeEvents(t *testing.T) {
	named := testVIP("named", func(v *v1alpha1.VirtualIP) { // members lb1 and lb2, no selector
		v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb2"})
	})
	selected := testVIP("selected", func(v *v1alpha1.VirtualIP) { // role=lb; spec.nodes only overrides
		v.Spec.VRID, v.Spec.Addresses = 52, []string{"198.18.0.101/24"}
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"role": "lb"}}
		v.Spec.Nodes = []v1alpha1.NodeOverride{{Name: "web9"}}
	})
	other := testVIP("other", func(v *v1alpha1.VirtualIP) { // lb1 and lb3
		v.Spec.VRID, v.Spec.Addresses = 53, []string{"198.18.0.102/24", "2001:db8::102/64"}
		v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb3"})
	})
	invalid := testVIP("invalid", func(v *v1alpha1.VirtualIP) { // neither: selects none
		v.Spec.VRID, v.Spec.Addresses, v.Spec.Nodes = 54, []string{"198.18.0.103/24"}, nil
	})
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(named, selected, other, invalid).Build()
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}

	web := testNode("web1", "198.18.0.50", map[string]string{"role": "web"})
	lb := testNode("lb4", "198.18.0.14", map[string]string{"role": "lb"})
	mut := func(n *corev1.Node, f func(n *corev1.Node)) *corev1.Node {
		n = n.DeepCopy()
		f(n)
		return n
	}
	relabel := func(n *corev1.Node, kv ...string) *corev1.Node {
		return mut(n, func(n *corev1.Node) {
			n.Labels = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				n.Labels[kv[i]] = kv[i+1]
			}
		})
	}
	readdress := func(n *corev1.Node, typ corev1.NodeAddressType, ips ...string) *corev1.Node {
		return mut(n, func(n *corev1.Node) {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: n.Name}}
			for _, ip := range ips {
				n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: typ, Address: ip})
			}
		})
	}
	update := func(o, n *corev1.Node) event.UpdateEvent { return event.UpdateEvent{ObjectOld: o, ObjectNew: n} }
	lb2 := testNode("lb2", "198.18.0.12", map[string]string{"role": "db"})
	self := testNode("lb1", "198.18.0.11", nil)
	all := []string{"invalid", "named", "other", "selected"}

	tests := []struct {
		name string
		ev   any
		want []string
	}{
		{"an unrelated Node's labels", update(web, relabel(web, "role", "web", "zone", "a")), nil},
		{"an unrelated Node's address", update(web, readdress(web, corev1.NodeInternalIP, "198.18.0.51")), nil},
		{"an unrelated Node named in spec.nodes outside the selector", update(testNode("web9", "198.18.0.59", nil),
			readdress(testNode("web9", "198.18.0.59", nil), corev1.NodeInternalIP, "198.18.0.58")), nil},
		{"an unrelated Node created", event.CreateEvent{Object: web}, nil},
		{"an unrelated Node deleted", event.DeleteEvent{Object: web}, nil},
		{"an unrelated Node takes a virtual address", update(web, readdress(web, corev1.NodeInternalIP, "198.18.0.50", "198.18.0.101")),
			[]string{"selected"}},
		{"an unrelated Node gives a virtual address back", update(readdress(web, corev1.NodeExternalIP, "2001:db8::102"), web),
			[]string{"other"}},
		{"a Node with a virtual address created", event.CreateEvent{Object: readdress(web, corev1.NodeInternalIP, "198.18.0.100")},
			[]string{"named"}},
		{"a Node joins the selector", update(web, relabel(web, "role", "lb")), []string{"selected"}},
		{"a Node leaves the selector", update(lb, relabel(lb, "role", "web")), []string{"selected"}},
		{"a selected Node's other labels", update(lb, relabel(lb, "role", "lb", "zone", "b")), nil},
		{"a selected Node's address", update(lb, readdress(lb, corev1.NodeInternalIP, "198.18.0.15")), []string{"selected"}},
		{"a selected Node's addresses reordered", update(readdress(lb, corev1.NodeInternalIP, "198.18.0.14", "198.18.0.15"),
			readdress(lb, corev1.NodeInternalIP, "198.18.0.15", "198.18.0.14")), []string{"selected"}},
		{"a selected Node created", event.CreateEvent{Object: lb}, []string{"selected"}},
		{"a selected Node deleted", event.DeleteEvent{Object: lb}, []string{"selected"}},
		{"a named member's labels", update(lb2, relabel(lb2, "role", "web")), nil},
		{"a named member's address", update(lb2, readdress(lb2, corev1.NodeInternalIP, "198.18.0.13")), []string{"named"}},
		{"a named member deleted", event.DeleteEvent{Object: lb2}, []string{"named"}},
		{"a named member created", event.CreateEvent{Object: testNode("lb3", "198.18.0.13", nil)}, []string{"other"}},
		{"a named member joins the selector", update(lb2, relabel(lb2, "role", "lb")), []string{"selected"}},
		{"this node's labels", update(self, relabel(self, "zone", "a")), all},
		{"this node's address", update(self, readdress(self, corev1.NodeInternalIP, "198.18.0.10")), all},
		{"this node created", event.CreateEvent{Object: self}, all},
		{"this node deleted", event.DeleteEvent{Object: self}, all},
	}
	h := r.nodeEvents()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queued(t, h, tt.ev); !slices.Equal(got, tt.want) {
				t.Errorf("enqueued %v, want %v", got, tt.want)
			}
		})
	}
}

// The aggregator's summary depends on a Node's existence and labels (whether its member is
// live), for the VirtualIPs with a member of it: a Node's addresses, or a Node without a
// member, concern no summary.
func TestAggregatorNodeEvents(t *testing.T) {
	var objs []client.Object
	withMembers := func(name string, nodes ...string) {
		v := testVIP(name, nil)
		objs = append(objs, v)
		for _, n := range nodes {
			objs = append(objs, testMember(v, v1alpha1.NodeStatus{Name: n, State: "Backup"}))
		}
	}
	withMembers("web", "lb1", "lb2")
	withMembers("dns", "lb2", "lb3")
	withMembers("none")
	cl := fakeClient(t).WithStatusSubresource(&v1alpha1.VirtualIP{}).WithObjects(objs...).Build()
	a := &Aggregator{Client: cl, NodeName: "lb1", Log: slog.New(slog.DiscardHandler)}
	// The members of dns, by the index the agent's cache has.
	if ms, _, err := membersOf(context.Background(), cl, "dns"); err != nil || len(ms) != 2 {
		t.Fatalf("members of dns: %v, %d", err, len(ms))
	}

	lb2 := testNode("lb2", "198.18.0.12", map[string]string{"role": "lb"})
	relabelled := lb2.DeepCopy()
	relabelled.Labels["role"] = "web"
	readdressed := lb2.DeepCopy()
	readdressed.Status.Addresses[0].Address = "198.18.0.13"
	unrelated := testNode("web1", "198.18.0.50", nil)
	unrelabelled := unrelated.DeepCopy()
	unrelabelled.Labels = map[string]string{"role": "lb"}

	h := a.nodeEvents()
	for _, tt := range []struct {
		name string
		ev   any
		want []string
	}{
		{"labels of a Node with members", event.UpdateEvent{ObjectOld: lb2, ObjectNew: relabelled}, []string{"dns", "web"}},
		{"addresses of a Node with members", event.UpdateEvent{ObjectOld: lb2, ObjectNew: readdressed}, nil},
		{"a Node with members deleted", event.DeleteEvent{Object: lb2}, []string{"dns", "web"}},
		{"a Node with members created", event.CreateEvent{Object: lb2}, []string{"dns", "web"}},
		{"labels of a Node without members", event.UpdateEvent{ObjectOld: unrelated, ObjectNew: unrelabelled}, nil},
		{"a Node without members deleted", event.DeleteEvent{Object: unrelated}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := queued(t, h, tt.ev); !slices.Equal(got, tt.want) {
				t.Errorf("enqueued %v, want %v", got, tt.want)
			}
		})
	}
}
