//go:build linux

package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Only a link-local address without a zone names a member's adverts in an IPv6 multicast group;
// a member's status.address is outside input (any value of at most 45 characters passes the
// CRD).
func TestAdvertSource(t *testing.T) {
	for _, tt := range []struct {
		address string
		want    string // "": none
	}{
		{"fe80::12", "fe80::12"},
		{"fe80::6b:76ff:fe00:c", "fe80::6b:76ff:fe00:c"},
		{"febf::1", "febf::1"}, // fe80::/10
		{"fec0::1", ""},
		{"fe80::12%eth0", ""},
		{"2001:db8::12", ""},
		{"198.18.0.12", ""},
		{"::ffff:198.18.0.12", ""},
		{"::1", ""},
		{"ff02::12", ""},
		{"", ""},
		{"fe80::12/64", ""},
		{"not an address", ""},
		{"fe80:0000:0000:0000:0000:0000:0000:0012", "fe80::12"},
		{"fe80:0000:0000:0000:0000:0000:0000:00012", ""},
	} {
		m := &v1alpha1.VirtualIPMember{Status: v1alpha1.NodeStatus{Address: tt.address}}
		a, ok := advertSource(m)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("advertSource(%q) = %q, want %q", tt.address, got, tt.want)
		}
	}
}

// Against the API server: a node's agent gives each other member of an IPv6 multicast
// VirtualIP whose member publishes a link-local advert source that address in the member set,
// in place of its node's global addresses (docs/design.md §4.2, §7.2), and reconciles the
// VirtualIP when another member's source appears, changes or goes; another member's other
// writes (state, priority: every transition of every node), its own member's, and the members
// of an IPv4 VirtualIP reconcile nothing.
func TestAdvertSourcesReconcile(t *testing.T) {
	cfg := apiServer(t)
	c := apiClient(t, cfg)
	ctx := t.Context()
	for i, name := range []string{"src1", "src2", "src3"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("198.18.0.%d", 11+i)},
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("2001:db8::%d", 11+i)},
		}
		if err := c.Status().Update(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []v1alpha1.NodeOverride{{Name: "src1", Priority: ptr.To[int32](110)},
		{Name: "src2", Priority: ptr.To[int32](100)}, {Name: "src3", Priority: ptr.To[int32](90)}}
	v6 := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "src6"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 61, Addresses: []string{"2001:db8::100/64"}, Nodes: nodes}}
	v4 := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "src4"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 62, Addresses: []string{"198.18.0.100/24"}, Nodes: nodes}}
	for _, v := range []*v1alpha1.VirtualIP{v6, v4} {
		if err := c.Create(ctx, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), v) })
	}
	// The members as their agents would write them (no admission policy here).
	member := func(vip *v1alpha1.VirtualIP, node, address string) *v1alpha1.VirtualIPMember {
		t.Helper()
		m := testMember(vip, v1alpha1.NodeStatus{Name: node, State: "Backup", Priority: 100, Interface: "eth0", Address: address})
		if err := c.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), m) })
		return m
	}
	own6 := member(v6, "src1", "fe80::11")
	src2 := member(v6, "src2", "fe80::12")
	src3 := member(v6, "src3", "")
	other4 := member(v4, "src2", "198.18.0.12")

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme(t),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptionsFor(cfg),
		Client:                 ClientOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	fa := newFakeAgent()
	ifs := func() ([]desired.Interface, error) {
		return []desired.Interface{{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{
			netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("2001:db8::11/64"), netip.MustParsePrefix("fe80::11/64")}}}, nil
	}
	if err := (&VirtualIPReconciler{Client: mgr.GetClient(), NodeName: "src1", Namespace: "kube-vrrp", Agent: fa,
		Interfaces: ifs, Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	m := func(a string, prio uint8) vrrp.Member {
		return vrrp.Member{Addr: netip.MustParseAddr(a), MaxPriority: prio}
	}
	applies := func(name string) int {
		fa.mu.Lock()
		defer fa.mu.Unlock()
		n := 0
		for _, a := range fa.applied {
			if a == name {
				n++
			}
		}
		return n
	}
	waitMembers := func(what string, want ...vrrp.Member) {
		t.Helper()
		eventually(t, 10*time.Second, what, func() error {
			fa.mu.Lock()
			defer fa.mu.Unlock()
			got, ok := fa.configs["src6"]
			if !ok || !got.MembersComplete || !slices.Equal(got.Members, want) {
				return fmt.Errorf("members %+v (applied %v), want %+v", got.Members, ok, want)
			}
			return nil
		})
	}
	update := func(mem *v1alpha1.VirtualIPMember, edit func(*v1alpha1.NodeStatus)) {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(mem), mem); err != nil {
			t.Fatal(err)
		}
		edit(&mem.Status)
		if err := c.Update(ctx, mem); err != nil {
			t.Fatal(err)
		}
	}
	// quiet updates mem as edit says and checks that neither VirtualIP is reconciled: the
	// next change of src3's source is then the only reconcile of src6.
	next := 0
	quiet := func(what string, mem *v1alpha1.VirtualIPMember, edit func(*v1alpha1.NodeStatus)) {
		t.Helper()
		n6, n4 := applies("src6"), applies("src4")
		update(mem, edit)
		time.Sleep(300 * time.Millisecond)
		next++
		update(src3, func(s *v1alpha1.NodeStatus) { s.Address = fmt.Sprintf("fe80::13:%d", next) })
		waitMembers(what+", then src3's source changed", m("fe80::12", 100), m(fmt.Sprintf("fe80::13:%d", next), 90))
		time.Sleep(300 * time.Millisecond)
		if g6, g4 := applies("src6"), applies("src4"); g6 != n6+1 || g4 != n4 {
			t.Errorf("%s: src6 applied %d times, src4 %d times, want 1 (src3's source) and 0", what, g6-n6, g4-n4)
		}
	}

	// src2's source is known, src3's not: src3 is a member by its global address.
	waitMembers("at start", m("2001:db8::13", 90), m("fe80::12", 100))
	update(src3, func(s *v1alpha1.NodeStatus) { s.Address = "fe80::13" })
	waitMembers("src3 published its source", m("fe80::12", 100), m("fe80::13", 90))
	update(src2, func(s *v1alpha1.NodeStatus) { s.Address = "fe80::22" })
	waitMembers("src2's source changed", m("fe80::13", 90), m("fe80::22", 100))
	update(src2, func(s *v1alpha1.NodeStatus) { s.Address = "2001:db8::12" })
	waitMembers("src2's source is not link-local", m("2001:db8::12", 100), m("fe80::13", 90))
	update(src2, func(s *v1alpha1.NodeStatus) { s.Address = "fe80::12" })
	waitMembers("src2's source back", m("fe80::12", 100), m("fe80::13", 90))

	quiet("src2's state and priority changed", src2, func(s *v1alpha1.NodeStatus) { s.State, s.Priority = "Master", 100 })
	quiet("src1's own source changed", own6, func(s *v1alpha1.NodeStatus) { s.Address = "fe80::1:11" })
	quiet("an IPv4 VirtualIP's member changed address", other4, func(s *v1alpha1.NodeStatus) { s.Address = "198.18.0.99" })

	if err := c.Delete(ctx, src3); err != nil {
		t.Fatal(err)
	}
	waitMembers("src3's member deleted", m("2001:db8::13", 90), m("fe80::12", 100))
}
