package controllers

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func eth0Slot(vrid uint8) desired.Slot { return desired.Slot{Interface: "eth0", VRID: vrid} }

func addrList(s ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(s))
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// The pure decision: the oldest claimant wins, then the name; only an overlap counts.
func TestLoses(t *testing.T) {
	c := func(name string, age int, slot desired.Slot, inSlot bool, addrs ...string) claim {
		return claim{name: name, created: t0.Add(time.Duration(age) * time.Second), slot: slot, inSlot: inSlot, addrs: addrList(addrs...)}
	}
	tests := []struct {
		name       string
		self       claim
		others     []claim
		wantWinner string // "" = self runs
		wantReason string
		wantMsg    []string
	}{
		{
			name:   "alone",
			self:   c("b", 1, eth0Slot(51), true, "198.18.0.100"),
			others: nil,
		},
		{
			name:       "same slot, the other is older",
			self:       c("b", 1, eth0Slot(51), true, "198.18.0.100"),
			others:     []claim{c("a", 0, eth0Slot(51), true, "198.18.0.101")},
			wantWinner: "a", wantReason: ReasonVRIDConflict,
			wantMsg: []string{`VRID 51 on eth0 (IPv4) is taken by VirtualIP "a"`, `starts once "a" is deleted or leaves eth0`},
		},
		{
			name:   "same slot, self is older: the age decides, not the name",
			self:   c("z", 0, eth0Slot(51), true, "198.18.0.100"),
			others: []claim{c("a", 1, eth0Slot(51), true, "198.18.0.101")},
		},
		{
			name:       "same second: the name decides",
			self:       c("b", 0, eth0Slot(51), true, "198.18.0.100"),
			others:     []claim{c("a", 0, eth0Slot(51), true, "198.18.0.101")},
			wantWinner: "a", wantReason: ReasonVRIDConflict,
		},
		{
			name:   "same second, self's name first",
			self:   c("a", 0, eth0Slot(51), true, "198.18.0.100"),
			others: []claim{c("b", 0, eth0Slot(51), true, "198.18.0.101")},
		},
		{
			name:   "same VRID on another interface",
			self:   c("b", 1, eth0Slot(51), true, "198.18.0.100"),
			others: []claim{c("a", 0, desired.Slot{Interface: "eth1", VRID: 51}, true, "198.18.1.100")},
		},
		{
			name:   "same VRID and interface, the other family",
			self:   c("b", 1, eth0Slot(51), true, "198.18.0.100"),
			others: []claim{c("a", 0, desired.Slot{Interface: "eth0", VRID: 51, IPv6: true}, true, "2001:db8::100")},
		},
		{
			name:   "same slot, but the other does not run on this node",
			self:   c("b", 1, eth0Slot(51), true, "198.18.0.100"),
			others: []claim{c("a", 0, eth0Slot(51), false, "198.18.0.101")},
		},
		{
			name:       "a shared address, wherever the other runs",
			self:       c("b", 1, eth0Slot(52), true, "198.18.0.100", "198.18.0.102"),
			others:     []claim{c("a", 0, desired.Slot{}, false, "198.18.0.99", "198.18.0.102")},
			wantWinner: "a", wantReason: ReasonAddressConflict,
			wantMsg: []string{`address 198.18.0.102 is also claimed by VirtualIP "a"`, `starts once "a" is deleted or drops it`},
		},
		{
			name: "the oldest of several is named",
			self: c("d", 3, eth0Slot(51), true, "198.18.0.100"),
			others: []claim{
				c("c", 2, eth0Slot(51), true, "198.18.0.103"),
				c("a", 0, eth0Slot(51), true, "198.18.0.101"),
				c("b", 1, desired.Slot{}, false, "198.18.0.100"),
				c("e", 4, eth0Slot(51), true, "198.18.0.100"),
			},
			wantWinner: "a", wantReason: ReasonVRIDConflict,
		},
		{
			name:       "slot and address with one winner: the slot is reported",
			self:       c("b", 1, eth0Slot(51), true, "198.18.0.100"),
			others:     []claim{c("a", 0, eth0Slot(51), true, "198.18.0.100")},
			wantWinner: "a", wantReason: ReasonVRIDConflict,
		},
		{
			name:   "self is not its own rival",
			self:   c("a", 1, eth0Slot(51), true, "198.18.0.100"),
			others: []claim{c("a", 0, eth0Slot(51), true, "198.18.0.100")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, lost := loses(tt.self, tt.others)
			if lost != (tt.wantWinner != "") || d.winner != tt.wantWinner {
				t.Fatalf("loses = %+v, %v; want winner %q", d, lost, tt.wantWinner)
			}
			if !lost {
				return
			}
			if d.Reason != tt.wantReason {
				t.Errorf("reason %q (%s), want %s", d.Reason, d.Message, tt.wantReason)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(d.Message, m) {
					t.Errorf("message %q does not say %q", d.Message, m)
				}
			}
		})
	}
}

// Every order of reconciles gives the same answer: the older VirtualIP runs, and the younger
// one, which ran because it came first, stops when the older one is reconciled.
func TestReconcileVRIDConflict(t *testing.T) {
	older := testVIP("zz-old", func(v *v1alpha1.VirtualIP) {
		v.CreationTimestamp = metav1.NewTime(t0)
		v.Spec.Addresses = []string{"198.18.0.100/24"}
	})
	younger := testVIP("aa-new", func(v *v1alpha1.VirtualIP) {
		v.CreationTimestamp = metav1.NewTime(t0.Add(time.Second))
		v.Spec.Addresses = []string{"198.18.0.101/24"}
	})
	for _, order := range [][]string{{"zz-old", "aa-new"}, {"aa-new", "zz-old"}} {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			cl := fake.NewClientBuilder().WithScheme(testScheme(t)).
				WithObjects(testNode("lb1", "198.18.0.11", nil), older.DeepCopy(), younger.DeepCopy()).Build()
			fa := newFakeAgent()
			rej := NewRejections(nil)
			r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
				Rejected: rej, Log: slog.New(slog.DiscardHandler)}
			if order[0] == "aa-new" {
				// What the current agent did when the younger one came first: it runs.
				fa.configs["aa-new"] = fa.configs["zz-old"]
			}
			for _, name := range order {
				if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}); err != nil {
					t.Fatal(err)
				}
			}
			if got := fa.Names(); !slices.Equal(got, []string{"zz-old"}) {
				t.Errorf("running %v, want only zz-old", got)
			}
			why, ok := rej.Get("aa-new")
			want := `VRID 51 on eth0 (IPv4) is taken by VirtualIP "zz-old"`
			if !ok || why.Reason != ReasonVRIDConflict || !strings.HasPrefix(why.Message, want) {
				t.Errorf("rejection of aa-new %+v, want %s: %q...", why, ReasonVRIDConflict, want)
			}
			if _, ok := rej.Get("zz-old"); ok {
				t.Error("the winner is rejected")
			}
		})
	}
}

// A VirtualIP that is being deleted, or is invalid, claims nothing; one that shares an address
// claims it wherever it runs.
func TestReconcileConflictRivals(t *testing.T) {
	base := func(name string, age int, mut func(*v1alpha1.VirtualIP)) client.Object {
		return testVIP(name, func(v *v1alpha1.VirtualIP) {
			v.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(age) * time.Second))
			if mut != nil {
				mut(v)
			}
		})
	}
	tests := []struct {
		name        string
		rival       client.Object
		wantReason  string
		wantMessage string
	}{
		{name: "deleting", rival: base("old", 0, func(v *v1alpha1.VirtualIP) {
			v.DeletionTimestamp = &metav1.Time{Time: t0.Add(time.Hour)}
			v.Finalizers = []string{"example.com/hold"}
		})},
		{name: "invalid", rival: base("old", 0, func(v *v1alpha1.VirtualIP) { v.Spec.Priority = new(int32) })},
		{name: "not on this node: only its addresses count", rival: base("old", 0, func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"role": "other"}}
			v.Spec.Addresses = []string{"198.18.0.101/24"}
		})},
		{name: "not on this node, same address", rival: base("old", 0, func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"role": "other"}}
			v.Spec.VRID = 99
		}), wantReason: ReasonAddressConflict, wantMessage: `address 198.18.0.100 is also claimed by VirtualIP "old"`},
		{name: "its interface does not resolve here: only its addresses count", rival: base("old", 0, func(v *v1alpha1.VirtualIP) {
			v.Spec.Interface = "eth9"
			v.Spec.Addresses = []string{"198.18.0.101/24"}
		})},
		{name: "younger", rival: base("zz", 2, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := fake.NewClientBuilder().WithScheme(testScheme(t)).
				WithObjects(testNode("lb1", "198.18.0.11", nil), base("vip", 1, nil), tt.rival).Build()
			fa := newFakeAgent()
			rej := NewRejections(nil)
			r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
				Rejected: rej, Log: slog.New(slog.DiscardHandler)}
			res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}})
			if err != nil {
				t.Fatal(err)
			}
			why, rejected := rej.Get("vip")
			_, applied := fa.config("vip")
			if tt.wantReason == "" {
				if rejected || !applied {
					t.Errorf("applied %v, rejection %+v", applied, why)
				}
				return
			}
			if applied || why.Reason != tt.wantReason || !strings.HasPrefix(why.Message, tt.wantMessage) {
				t.Errorf("applied %v, rejection %+v, want %s: %q...", applied, why, tt.wantReason, tt.wantMessage)
			}
			if res.RequeueAfter != 0 {
				t.Errorf("a conflict is retried (%s): the winner's change enqueues the loser", res.RequeueAfter)
			}
		})
	}
}

// The watch of VirtualIPs enqueues those that share the VRID or an address with the one that
// changed.
func TestOverlapping(t *testing.T) {
	objs := []client.Object{
		testVIP("a", nil), // VRID 51, 198.18.0.100
		testVIP("b", func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"198.18.0.101"} }),
		testVIP("c", func(v *v1alpha1.VirtualIP) { v.Spec.VRID, v.Spec.Addresses = 52, []string{"198.18.0.100/24"} }),
		testVIP("d", func(v *v1alpha1.VirtualIP) { v.Spec.VRID, v.Spec.Addresses = 53, []string{"198.18.0.103"} }),
	}
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build()
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp"}
	if got := requestNames(r.overlapping(context.Background(), testVIP("a", nil))); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("overlapping(a) = %v, want b (VRID) and c (address)", got)
	}
	// A deleted VirtualIP is mapped from its last state.
	gone := testVIP("gone", func(v *v1alpha1.VirtualIP) { v.Spec.VRID, v.Spec.Addresses = 53, []string{"198.18.0.200"} })
	if got := requestNames(r.overlapping(context.Background(), gone)); !slices.Equal(got, []string{"d"}) {
		t.Errorf("overlapping(gone) = %v, want d", got)
	}
}

func requestNames(reqs []reconcile.Request) []string {
	var out []string
	for _, q := range reqs {
		out = append(out, q.Name)
	}
	slices.Sort(out)
	return out
}
