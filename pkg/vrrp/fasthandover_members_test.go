package vrrp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The fast handover (docs/design.md §4.2) of an IPv6 multicast group whose members are known by
// their advert sources, link-local addresses as ours (Kubernetes mode, each node's agent
// publishing its own): the resigning master is told apart from the other members, and a tie
// with another backup is decided by the link-local addresses, as RFC 5798 §6.4.3 decides it on
// the wire. A member known only by a global address (its source unknown) cannot be the
// resigning master here nor be compared on a tie, and a member of unknown address (a node
// with no address of the family and no published source) counts by its priority alone.
func TestFastHandoverLinkLocalMembers(t *testing.T) {
	ll := netip.MustParseAddr
	master := peer6 // fe80::12, greater than me6 (fe80::11)
	tests := []struct {
		name    string
		members []vrrp.Member
		fast    bool
	}{
		{"the master and a lower backup", []vrrp.Member{{master, 110}, {ll("fe80::13"), 90}}, true},
		{"only the master", []vrrp.Member{{master, 110}}, true},
		{"equal backup, smaller link-local address", []vrrp.Member{{master, 110}, {ll("fe80::5"), 100}}, true},
		{"equal backup, greater link-local address", []vrrp.Member{{master, 110}, {ll("fe80::13"), 100}}, false},
		{"a higher backup", []vrrp.Member{{master, 110}, {ll("fe80::5"), 101}}, false},
		{"a lower backup whose source is unknown", []vrrp.Member{{master, 110}, {ll("2001:db8::13"), 90}}, true},
		{"an equal backup whose source is unknown", []vrrp.Member{{master, 110}, {ll("2001:db8::5"), 100}}, false},
		{"the master's source unknown", []vrrp.Member{{ll("2001:db8::12"), 110}, {ll("fe80::13"), 90}}, false},
		{"a lower member of unknown address", []vrrp.Member{{master, 110}, {MaxPriority: 90}}, true},
		{"an equal member of unknown address", []vrrp.Member{{master, 110}, {MaxPriority: 100}}, false},
		{"a higher member of unknown address", []vrrp.Member{{master, 110}, {MaxPriority: 120}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := with(config6(), func(c *vrrp.Config) { c.Members, c.MembersComplete = tc.members, true })
			in := startBackup(t, cfg)
			in.Receive(t0.Add(10*time.Millisecond), advert(t, cfg, master, 110))
			now := t0.Add(20 * time.Millisecond)
			in.Receive(now, advert(t, cfg, master, 0))
			want, reason := vrrp.Backup, ""
			if tc.fast {
				want, reason = vrrp.Master, vrrp.ReasonFastHandover
			}
			if st := in.Status(); st.State != want || tc.fast && st.Reason != reason {
				t.Errorf("after the master's priority 0: %s (%s), want %s %s", st.State, st.Reason, want, reason)
			}
		})
	}
}

// An IPv6 multicast member known by its advert source whose address list differs from ours (an
// edit of the VirtualIP reaching the nodes one after the other) stays in the election (RFC 5798
// §7.1's check, docs/design.md §4.6): known by a global address only, it was taken for
// another group, and its adverts dropped.
func TestLinkLocalMemberWithOtherAddressesInElection(t *testing.T) {
	cfg := with(config6(), func(c *vrrp.Config) {
		c.Members, c.MembersComplete = []vrrp.Member{{peer6, 110}}, true
	})
	in := startBackup(t, cfg)
	edited := with(cfg, func(c *vrrp.Config) { c.Addresses = []netip.Prefix{netip.MustParsePrefix("2001:db8::101/64")} })
	in.Receive(t0.Add(10*time.Millisecond), advert(t, edited, peer6, 110))
	st := in.Status()
	if st.Master != peer6 || st.MasterPriority != 110 {
		t.Errorf("master %s/%d, want %s/110: the member's advert was dropped", st.Master, st.MasterPriority, peer6)
	}
	if len(st.Foreign) != 1 || !st.Foreign[0].InElection {
		t.Errorf("foreign %+v, want %s in the election", st.Foreign, peer6)
	}
}
