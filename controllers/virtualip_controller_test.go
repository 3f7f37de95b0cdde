package controllers

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

func TestNodeAddrs(t *testing.T) {
	addr := func(typ corev1.NodeAddressType, a string) corev1.NodeAddress {
		return corev1.NodeAddress{Type: typ, Address: a}
	}
	tests := []struct {
		name string
		in   []corev1.NodeAddress
		want []netip.Addr
	}{
		{name: "none"},
		{
			name: "internal before external, whatever the order",
			in: []corev1.NodeAddress{addr(corev1.NodeExternalIP, "203.0.113.1"), addr(corev1.NodeHostName, "lb1"),
				addr(corev1.NodeInternalIP, "198.18.0.11"), addr(corev1.NodeInternalIP, "2001:db8::11")},
			want: []netip.Addr{netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("203.0.113.1")},
		},
		{
			name: "hostnames, DNS names and garbage are skipped",
			in: []corev1.NodeAddress{addr(corev1.NodeHostName, "198.18.0.1"), addr(corev1.NodeInternalDNS, "lb1.local"),
				addr(corev1.NodeInternalIP, "not-an-ip"), addr(corev1.NodeInternalIP, ""), addr(corev1.NodeInternalIP, "198.18.0.11/24"),
				addr(corev1.NodeInternalIP, "198.18.0.12")},
			want: []netip.Addr{netip.MustParseAddr("198.18.0.12")},
		},
		{
			name: "IPv4-mapped is unmapped and duplicates are dropped",
			in: []corev1.NodeAddress{addr(corev1.NodeInternalIP, "::ffff:198.18.0.11"), addr(corev1.NodeInternalIP, "198.18.0.11"),
				addr(corev1.NodeExternalIP, "198.18.0.11"), addr(corev1.NodeExternalIP, "203.0.113.1"), addr(corev1.NodeExternalIP, "203.0.113.1")},
			want: []netip.Addr{netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("203.0.113.1")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &corev1.Node{Status: corev1.NodeStatus{Addresses: tt.in}}
			got := nodeAddrs(n)
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("nodeAddrs (-want +got):\n%s", d)
			}
		})
	}
}

func TestNodeChanged(t *testing.T) {
	base := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "lb1", Labels: map[string]string{"role": "lb"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}}}}
	mut := func(f func(n *corev1.Node)) *corev1.Node {
		n := base.DeepCopy()
		f(n)
		return n
	}
	tests := []struct {
		name string
		new  *corev1.Node
		want bool
	}{
		{name: "heartbeat", new: mut(func(n *corev1.Node) {
			n.ResourceVersion = "2"
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
		}), want: false},
		{name: "annotation", new: mut(func(n *corev1.Node) { n.Annotations = map[string]string{"a": "b"} }), want: false},
		{name: "label added", new: mut(func(n *corev1.Node) { n.Labels["zone"] = "a" }), want: true},
		{name: "label changed", new: mut(func(n *corev1.Node) { n.Labels["role"] = "web" }), want: true},
		{name: "label removed", new: mut(func(n *corev1.Node) { n.Labels = nil }), want: true},
		{name: "address changed", new: mut(func(n *corev1.Node) { n.Status.Addresses[0].Address = "198.18.0.13" }), want: true},
		{name: "address added", new: mut(func(n *corev1.Node) {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.1"})
		}), want: true},
	}
	p := nodeChanged()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: tt.new}); got != tt.want {
				t.Errorf("Update = %v, want %v", got, tt.want)
			}
		})
	}
	if !p.Create(event.CreateEvent{Object: base}) || !p.Delete(event.DeleteEvent{Object: base}) {
		t.Error("Node creation and deletion must pass")
	}
}

// The unit tests of the reconciler use the fake client; test/envtest runs it against a real
// API server.

func testNode(name, ip string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
}

func testVIP(name string, mut func(*v1alpha1.VirtualIP)) *v1alpha1.VirtualIP {
	v := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 51, Addresses: []string{"198.18.0.100/24"},
		Nodes: []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[int32](110)}},
	}}
	if mut != nil {
		mut(v)
	}
	return v
}

func v2Pass(v *v1alpha1.VirtualIP) {
	v.Spec.Version = 2
	v.Spec.AdvertisementInterval = &v1alpha1.Duration{Duration: time.Second}
	v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "vrrp-auth", Key: "password"}}
}

type reconcileCase struct {
	name  string
	objs  []client.Object
	vip   string
	agent func(*fakeAgent)
	ifs   func() ([]desired.Interface, error)
	// foreign is the reconciler's ForeignAddresses; nil: none.
	foreign func(string) ([]netip.Prefix, error)
	wantErr bool
	// wantRetry: the rejection is retried (RequeueAfter) without any event.
	wantRetry bool
	// wantReason is the reason of the rejection, wantMessage the start of its message; empty:
	// none.
	wantReason, wantMessage string
	// wantOffLink: the rejection says the node has no interface in the subnet (OffLink).
	wantOffLink bool
	// wantApplied: Apply was called and succeeded; wantRemoved: Remove was called.
	wantApplied, wantRemoved bool
	check                    func(t *testing.T, cfg vrrp.Config)
}

const secretValue = "s3cr3t-pw"

func TestVirtualIPReconcile(t *testing.T) {
	lb := map[string]string{"role": "lb"}
	lb1, lb2 := testNode("lb1", "198.18.0.11", lb), testNode("lb2", "198.18.0.12", lb)
	web := testNode("web1", "198.18.0.21", map[string]string{"role": "web"})
	selectLB := func(v *v1alpha1.VirtualIP) { v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: lb} }
	secret := func(key, value string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "vrrp-auth"}, Data: map[string][]byte{key: []byte(value)}}
	}
	tests := []reconcileCase{
		{
			name: "selected: applied with members and unicast peers from the other selected nodes",
			objs: []client.Object{lb1, lb2, web, testVIP("vip", func(v *v1alpha1.VirtualIP) {
				selectLB(v)
				v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"198.18.0.99"}}
			})},
			vip: "vip", wantApplied: true,
			check: func(t *testing.T, cfg vrrp.Config) {
				if cfg.Priority != 110 || cfg.Interface != "eth0" || cfg.Primary != netip.MustParseAddr("198.18.0.11") {
					t.Errorf("priority %d, interface %s, primary %s", cfg.Priority, cfg.Interface, cfg.Primary)
				}
				want := []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.99")}
				if d := cmp.Diff(want, cfg.Peers, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
					t.Errorf("peers (-want +got):\n%s", d)
				}
				if !cfg.MembersComplete || len(cfg.Members) != 2 || cfg.Members[0].MaxPriority != 100 || cfg.Members[1].MaxPriority != 0 {
					t.Errorf("members %+v complete %v", cfg.Members, cfg.MembersComplete)
				}
			},
		},
		{
			name: "multicast: members are the other selected nodes",
			objs: []client.Object{lb1, lb2, web, testVIP("vip", selectLB)},
			vip:  "vip", wantApplied: true,
			check: func(t *testing.T, cfg vrrp.Config) {
				if len(cfg.Peers) != 0 || !cfg.MembersComplete ||
					!slices.Equal(cfg.Members, []vrrp.Member{{Addr: netip.MustParseAddr("198.18.0.12"), MaxPriority: 100}}) {
					t.Errorf("peers %v, members %+v complete %v", cfg.Peers, cfg.Members, cfg.MembersComplete)
				}
			},
		},
		{
			name: "no nodeSelector: the members are exactly spec.nodes[], whatever the labels",
			objs: []client.Object{lb1, lb2, web, testVIP("vip", func(v *v1alpha1.VirtualIP) {
				v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb2", Priority: ptr.To[int32](90)})
				v.Spec.Unicast = &v1alpha1.UnicastSpec{}
			})},
			vip: "vip", wantApplied: true,
			check: func(t *testing.T, cfg vrrp.Config) {
				if !slices.Equal(cfg.Peers, []netip.Addr{netip.MustParseAddr("198.18.0.12")}) || !cfg.MembersComplete ||
					!slices.Equal(cfg.Members, []vrrp.Member{{Addr: netip.MustParseAddr("198.18.0.12"), MaxPriority: 90}}) {
					t.Errorf("peers %v, members %+v complete %v: want lb2 only, not web1", cfg.Peers, cfg.Members, cfg.MembersComplete)
				}
			},
		},
		{
			name: "no nodeSelector and not in spec.nodes[]: removed",
			objs: []client.Object{lb1, lb2, testVIP("vip", func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Name = "lb2" })},
			vip:  "vip", wantRemoved: true,
		},
		{
			name: "empty nodeSelector: every node, listed or not",
			objs: []client.Object{lb1, lb2, web, testVIP("vip", func(v *v1alpha1.VirtualIP) {
				v.Spec.Nodes = nil
				v.Spec.NodeSelector = &metav1.LabelSelector{}
			})},
			vip: "vip", wantApplied: true,
			check: func(t *testing.T, cfg vrrp.Config) {
				if len(cfg.Members) != 2 || !cfg.MembersComplete {
					t.Errorf("members %+v complete %v: want lb2 and web1", cfg.Members, cfg.MembersComplete)
				}
			},
		},
		{
			// Refused by the CRD; an object written before that rule selects no node, and the
			// reason says what to write.
			name: "neither nodeSelector nor nodes",
			objs: []client.Object{lb1, lb2, testVIP("vip", func(v *v1alpha1.VirtualIP) { v.Spec.Nodes = nil })},
			vip:  "vip", wantReason: ReasonInvalidSpec, wantMessage: `VirtualIP "vip": ` + desired.MembersRequired,
		},
		{
			name: "not selected: removed",
			objs: []client.Object{testNode("lb1", "198.18.0.11", nil), testVIP("vip", selectLB)},
			vip:  "vip", wantRemoved: true,
		},
		{
			name: "deleted: removed",
			objs: []client.Object{lb1},
			vip:  "vip", wantRemoved: true,
		},
		{
			name: "own Node missing",
			objs: []client.Object{lb2, testVIP("vip", nil)},
			vip:  "vip", wantReason: ReasonNodeNotVisible, wantMessage: "Node lb1 not found", wantRetry: true,
		},
		{
			name: "bad selector",
			objs: []client.Object{lb1, testVIP("vip", func(v *v1alpha1.VirtualIP) {
				v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "role", Operator: "Is"}}}
			})},
			vip: "vip", wantReason: ReasonInvalidSpec,
		},
		{
			name: "invalid spec the CRD would refuse",
			objs: []client.Object{lb1, testVIP("vip", func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 300 })},
			vip:  "vip", wantReason: ReasonInvalidSpec,
		},
		{
			name: "Secret missing",
			objs: []client.Object{lb1, testVIP("vip", v2Pass)},
			vip:  "vip", wantReason: ReasonSecretMissing, wantMessage: "spec.authentication.secretRef: Secret kube-vrrp/vrrp-auth not found",
			wantRetry: true,
		},
		{
			name: "Secret in another namespace is not used",
			objs: []client.Object{lb1, testVIP("vip", v2Pass),
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vrrp-auth"}, Data: map[string][]byte{"password": []byte("x")}}},
			vip: "vip", wantReason: ReasonSecretMissing, wantRetry: true,
		},
		{
			name: "key missing",
			objs: []client.Object{lb1, testVIP("vip", v2Pass), secret("pw", secretValue)},
			vip:  "vip", wantReason: ReasonSecretMissing, wantMessage: `spec.authentication.secretRef: Secret kube-vrrp/vrrp-auth has no key "password"`,
			wantRetry: true,
		},
		{
			name: "password too long",
			objs: []client.Object{lb1, testVIP("vip", v2Pass), secret("password", secretValue)},
			vip:  "vip", wantReason: ReasonInvalidSpec,
			// The Secret is the cause: it may change without an event (Secrets not watched).
			wantRetry: true,
		},
		{
			name: "password applied",
			objs: []client.Object{lb1, testVIP("vip", v2Pass), secret("password", "8bytes!!")},
			vip:  "vip", wantApplied: true,
			check: func(t *testing.T, cfg vrrp.Config) {
				if string(cfg.Password) != "8bytes!!" || cfg.Version != 2 {
					t.Errorf("version %d, password %q", cfg.Version, cfg.Password)
				}
			},
		},
		{
			name: "unicast without any peer",
			objs: []client.Object{lb1, testVIP("vip", func(v *v1alpha1.VirtualIP) { v.Spec.Unicast = &v1alpha1.UnicastSpec{} })},
			vip:  "vip", wantReason: ReasonCannotResolve, wantRetry: true,
		},
		{
			// The node is not on the group's link: it cannot take part (docs/design.md §7.5).
			name: "no interface in the subnet",
			objs: []client.Object{lb1, testVIP("vip", nil)},
			ifs:  eth0("203.0.113.11"),
			vip:  "vip", wantReason: ReasonCannotResolve, wantMessage: `VirtualIP "vip" on node "lb1": ` + noInterfaceInSubnet,
			wantOffLink: true, wantRetry: true,
		},
		{
			// The user named it: a node of the group to fix, not one off its link.
			name: "the named interface is missing",
			objs: []client.Object{lb1, testVIP("vip", func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth1" })},
			vip:  "vip", wantReason: ReasonCannotResolve, wantMessage: `VirtualIP "vip" on node "lb1": interface "eth1"`, wantRetry: true,
		},
		{
			name: "two interfaces in the subnet",
			objs: []client.Object{lb1, testVIP("vip", nil)},
			ifs: func() ([]desired.Interface, error) {
				return []desired.Interface{
					{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}},
					{Name: "eth1", Index: 3, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.21/24")}},
				}, nil
			},
			vip: "vip", wantReason: ReasonCannotResolve, wantMessage: `VirtualIP "vip" on node "lb1": interfaces eth0 and eth1`, wantRetry: true,
		},
		{
			name: "agent refuses",
			objs: []client.Object{lb1, testVIP("vip", nil)},
			agent: func(f *fakeAgent) {
				f.applyErr = errors.New(`applying "vip": VRID 51 on eth0 is already used by "other"`)
			},
			vip: "vip", wantReason: ReasonApplyFailed, wantMessage: `applying "vip": VRID 51 on eth0 is already used by "other"`,
			wantRetry: true,
		},
		{
			name: "another node's InternalIP",
			objs: []client.Object{lb1, lb2, testVIP("vip", func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"198.18.0.12/24"} })},
			vip:  "vip", wantReason: ReasonAddressInUse, wantMessage: "address 198.18.0.12 is node lb2's InternalIP: ", wantRetry: true,
		},
		{
			name: "another node's ExternalIP, of a node the VirtualIP does not select",
			objs: []client.Object{lb1, func() client.Object {
				n := web.DeepCopy()
				n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "198.18.0.121"})
				return n
			}(), testVIP("vip", func(v *v1alpha1.VirtualIP) {
				selectLB(v)
				v.Spec.Addresses = []string{"198.18.0.100/24", "198.18.0.121/24"}
			})},
			vip: "vip", wantReason: ReasonAddressInUse, wantMessage: "address 198.18.0.121 is node web1's ExternalIP: ", wantRetry: true,
		},
		{
			name: "this node's own address",
			objs: []client.Object{lb1, testVIP("vip", func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"198.18.0.11/24"} })},
			vip:  "vip", wantReason: ReasonAddressInUse, wantMessage: "address 198.18.0.11 is this node's (lb1) InternalIP: ", wantRetry: true,
		},
		{
			name: "the owner's own address",
			objs: []client.Object{lb1, testVIP("vip", func(v *v1alpha1.VirtualIP) {
				v.Spec.Addresses = []string{"198.18.0.11/24"}
				v.Spec.Nodes[0].Priority = ptr.To[int32](255)
			})},
			foreign: func(string) ([]netip.Prefix, error) {
				return []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}, nil
			},
			vip: "vip", wantApplied: true,
		},
		{
			// keepalived's owner setup: lb2 owns 198.18.0.12 (priority 255); lb1 is a backup
			// that takes it over when lb2 is gone.
			name: "another node's address, that node being the owner",
			objs: []client.Object{lb1, lb2, testVIP("vip", func(v *v1alpha1.VirtualIP) {
				v.Spec.Addresses = []string{"198.18.0.12/24"}
				v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb2", Priority: ptr.To[int32](255)})
			})},
			vip: "vip", wantApplied: true,
		},
		{
			name: "an address on the interface that kube-vrrp did not add",
			objs: []client.Object{lb1, testVIP("vip", nil)},
			foreign: func(ifname string) ([]netip.Prefix, error) {
				if ifname != "eth0" {
					return nil, errors.New("wrong interface " + ifname)
				}
				return []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("198.18.0.100/32")}, nil
			},
			vip: "vip", wantReason: ReasonAddressInUse, wantMessage: `VirtualIP "vip": address 198.18.0.100 is already on eth0 and kube-vrrp did not add it`,
			wantRetry: true,
		},
		{
			name:    "the interface's addresses unreadable: retried, no rejection",
			objs:    []client.Object{lb1, testVIP("vip", nil)},
			foreign: func(string) ([]netip.Prefix, error) { return nil, errors.New("netlink: boom") },
			vip:     "vip", wantErr: true,
		},
		{
			name: "foreign addresses that are not virtual ones",
			objs: []client.Object{lb1, testVIP("vip", nil)},
			foreign: func(string) ([]netip.Prefix, error) {
				return []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}, nil
			},
			vip: "vip", wantApplied: true,
		},
		{
			name:    "interfaces unreadable: retried, no rejection",
			objs:    []client.Object{lb1, testVIP("vip", nil)},
			ifs:     func() ([]desired.Interface, error) { return nil, errors.New("netlink: boom") },
			vip:     "vip",
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runReconcileCase(t, tt) })
	}
}

func runReconcileCase(t *testing.T, tt reconcileCase) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(tt.objs...).Build()
	fa := newFakeAgent()
	if tt.agent != nil {
		tt.agent(fa)
	}
	// A stale rejection is cleared by a success or a removal.
	rej := NewRejections(nil)
	stale := Rejection{Reason: ReasonCannotResolve, Message: "stale: from before"}
	rej.Set(tt.vip, stale)
	ifs := tt.ifs
	if ifs == nil {
		ifs = eth0("198.18.0.11")
	}
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: ifs,
		ForeignAddresses: tt.foreign, Rejected: rej, Log: slog.New(slog.DiscardHandler)}
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: tt.vip}})
	if (err != nil) != tt.wantErr {
		t.Fatalf("Reconcile: %v, want error %v", err, tt.wantErr)
	}
	if retried := res.RequeueAfter > 0; retried != tt.wantRetry {
		t.Errorf("RequeueAfter %s, want a retry: %v", res.RequeueAfter, tt.wantRetry)
	}
	why, rejected := rej.Get(tt.vip)
	switch {
	case tt.wantErr:
		if why != stale {
			t.Errorf("rejection %+v changed by a retried error", why)
		}
	case tt.wantReason == "" && rejected:
		t.Errorf("rejected: %+v", why)
	case tt.wantReason != "" && (!rejected || why.Reason != tt.wantReason || why.Message == "" || !strings.HasPrefix(why.Message, tt.wantMessage)):
		t.Errorf("rejection %+v (%v), want %s: %q...", why, rejected, tt.wantReason, tt.wantMessage)
	case rejected && why.OffLink != tt.wantOffLink:
		t.Errorf("rejection %+v: OffLink %v, want %v", why, why.OffLink, tt.wantOffLink)
	}
	if strings.Contains(why.Message, secretValue) {
		t.Errorf("the rejection shows the password: %q", why.Message)
	}
	cfg, applied := fa.config(tt.vip)
	if applied != tt.wantApplied {
		t.Errorf("applied %v, want %v", applied, tt.wantApplied)
	}
	if removed := slices.Contains(fa.removed, tt.vip); removed != tt.wantRemoved {
		t.Errorf("removed %v, want %v", removed, tt.wantRemoved)
	}
	if tt.check != nil && applied {
		tt.check(t, cfg)
	}
}

// A rejected VirtualIP is not applied, and an error reading the API never removes an instance.
func TestVirtualIPReconcileAPIErrorKeepsInstance(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()
	failing := &failingReader{Reader: cl, err: errors.New("connection refused")}
	fa := newFakeAgent()
	fa.configs["vip"] = vrrp.Config{Name: "vip"}
	r := &VirtualIPReconciler{Client: failing, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
		Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}}); err == nil {
		t.Error("Reconcile with the API unreachable: no error to retry")
	}
	if len(fa.removed) != 0 || fa.Names()[0] != "vip" {
		t.Errorf("instance removed on an API error: removed %v, names %v", fa.removed, fa.Names())
	}
}

type failingReader struct {
	client.Reader
	err error
}

func (f *failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return f.err
}

func (f *failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return f.err
}

// A VirtualIP this node runs and then rejects (here: unicast, and the only other node is gone, so
// there is no peer left) is reported as Fault in status and its instance stops, handing the
// addresses over: a unicast group never runs with an empty peer set (docs/design.md §4.7).
func TestVirtualIPReconcileRejectionStopsInstance(t *testing.T) {
	lb1, lb2 := testNode("lb1", "198.18.0.11", nil), testNode("lb2", "198.18.0.12", nil)
	vip := testVIP("vip", func(v *v1alpha1.VirtualIP) {
		v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb2"})
		v.Spec.Unicast = &v1alpha1.UnicastSpec{}
	})
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(lb1, lb2, vip).Build()
	fa := newFakeAgent()
	rej := NewRejections(nil)
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
		Rejected: rej, Log: slog.New(slog.DiscardHandler)}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if cfg, ok := fa.config("vip"); !ok || len(cfg.Peers) != 1 {
		t.Fatalf("first reconcile: config %v, %+v", ok, cfg.Peers)
	}

	if err := cl.Delete(context.Background(), lb2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if why, ok := rej.Get("vip"); !ok || why.Reason != ReasonCannotResolve || why.Message == "" {
		t.Errorf("rejection %+v, %v", why, ok)
	}
	// docs/design.md §4.7: never an empty peer set in unicast mode; the node is in FAULT (status) and
	// hands the address over (the instance stops with a priority-0 advert).
	if _, running := fa.config("vip"); running || !slices.Contains(fa.removed, "vip") {
		t.Errorf("instance still running (removed %v) after its unicast peer set became empty", fa.removed)
	}
}
