package desired

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// An IPv6 multicast group's adverts come from link-local sources (RFC 5798 §5.1.2.1), which a
// node's addresses never name: a peer whose agent published its advert source is a member by
// that address, so that a backup can tell who resigned and who would win a tie (docs/design.md
// §4.2, §7.2). A peer whose source is unknown, or not a link-local address, or claimed twice,
// keeps its global addresses, which no IPv6 multicast advert comes from: the RFC wait then
// holds wherever that peer could win. Other groups ignore the sources.
func TestForAdvertSources(t *testing.T) {
	v6 := func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"2001:db8::100/64"} }
	lb2 := func(src string) Peer {
		p := Peer{Name: "lb2", Addrs: addrs("2001:db8::12", "192.0.2.12"), Priority: 100}
		if src != "" {
			p.AdvertSource = addr(src)
		}
		return p
	}
	lb3 := Peer{Name: "lb3", Addrs: addrs("2001:db8::13"), Priority: 90}
	tests := []struct {
		name    string
		vip     func(*v1alpha1.VirtualIP)
		peers   []Peer
		members []vrrp.Member
		peersTo []string // unicast peers
	}{
		{name: "a known source replaces the global addresses", vip: v6, peers: []Peer{lb2("fe80::12"), lb3},
			members: []vrrp.Member{{Addr: addr("2001:db8::13"), MaxPriority: 90}, {Addr: addr("fe80::12"), MaxPriority: 100}}},
		{name: "every source known", vip: v6, peers: []Peer{lb2("fe80::12"), {Name: "lb3", Addrs: lb3.Addrs, Priority: 90, AdvertSource: addr("fe80::13")}},
			members: []vrrp.Member{{Addr: addr("fe80::12"), MaxPriority: 100}, {Addr: addr("fe80::13"), MaxPriority: 90}}},
		{name: "positive weights count", vip: func(v *v1alpha1.VirtualIP) {
			v6(v)
			v.Spec.Probes = append(v.Spec.Probes, probe("file", func(p *v1alpha1.ProbeSpec) { p.Weight = 30 }))
		}, peers: []Peer{lb2("fe80::12")},
			members: []vrrp.Member{{Addr: addr("fe80::12"), MaxPriority: 130}}},
		{name: "a zone is not part of the address", vip: v6, peers: []Peer{lb2("fe80::12%eth0")},
			members: []vrrp.Member{{Addr: addr("fe80::12"), MaxPriority: 100}}},
		{name: "a global source is no advert source here", vip: v6, peers: []Peer{lb2("2001:db8::12")},
			members: []vrrp.Member{{Addr: addr("2001:db8::12"), MaxPriority: 100}}},
		{name: "an IPv4 source is no advert source here", vip: v6, peers: []Peer{lb2("192.0.2.12")},
			members: []vrrp.Member{{Addr: addr("2001:db8::12"), MaxPriority: 100}}},
		{name: "a source two peers claim tells neither apart", vip: v6,
			peers:   []Peer{lb2("fe80::12"), {Name: "lb3", Addrs: lb3.Addrs, Priority: 90, AdvertSource: addr("fe80::12")}},
			members: []vrrp.Member{{Addr: addr("2001:db8::12"), MaxPriority: 100}, {Addr: addr("2001:db8::13"), MaxPriority: 90}}},
		{name: "this node's own link-local address is not a peer's", vip: v6, peers: []Peer{lb2("fe80::11"), lb3},
			members: []vrrp.Member{{Addr: addr("2001:db8::12"), MaxPriority: 100}, {Addr: addr("2001:db8::13"), MaxPriority: 90}}},
		{name: "a node without an IPv6 address is a member by its source", vip: v6,
			peers:   []Peer{{Name: "lb2", Addrs: addrs("192.0.2.12"), Priority: 100, AdvertSource: addr("fe80::12")}},
			members: []vrrp.Member{{Addr: addr("fe80::12"), MaxPriority: 100}}},
		// Left out, it would leave the member set complete without it: every backup would take
		// over at once on a priority-0 advert, even one that lb2 beats.
		{name: "a node with no address of the group's family is a member of unknown address", vip: v6,
			peers:   []Peer{{Name: "lb2", Addrs: addrs("192.0.2.12"), Priority: 120}, lb3},
			members: []vrrp.Member{{Addr: addr("2001:db8::13"), MaxPriority: 90}, {MaxPriority: 120}}},
		{name: "IPv4 ignores sources", peers: []Peer{lb2("fe80::12")},
			members: []vrrp.Member{{Addr: addr("192.0.2.12"), MaxPriority: 100}}},
		{name: "IPv6 unicast ignores sources", vip: func(v *v1alpha1.VirtualIP) {
			v6(v)
			v.Spec.Unicast = &v1alpha1.UnicastSpec{FromNodes: ptr.To(true)}
		}, peers: []Peer{lb2("fe80::12")},
			members: []vrrp.Member{{Addr: addr("2001:db8::12"), MaxPriority: 100}}, peersTo: []string{"2001:db8::12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP()
			if tt.vip != nil {
				tt.vip(vip)
			}
			got, err := For(vip, testNode(), tt.peers, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !got.MembersComplete {
				t.Error("MembersComplete false, want true: the cluster's peers are every member")
			}
			if diff := cmp.Diff(tt.members, got.Members, netipCmp); diff != "" {
				t.Errorf("Members (-want +got):\n%s", diff)
			}
			var peers []string
			for _, p := range got.Peers {
				peers = append(peers, p.String())
			}
			if diff := cmp.Diff(tt.peersTo, peers); diff != "" {
				t.Errorf("unicast Peers (-want +got):\n%s", diff)
			}
		})
	}
}
