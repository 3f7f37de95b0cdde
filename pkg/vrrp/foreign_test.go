package vrrp_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

var otherVIP = netip.MustParseAddr("192.168.1.200")

func otherAddrs(a *packet.Advertisement) { a.Addresses = []netip.Addr{otherVIP} }

// RFC 5798 §7.1 / RFC 3768 §7.1 allow checking the address list. A router of another group
// that uses our VRID on the link (another cluster, an old keepalived) must not take part in
// the election: its advert is dropped, counted, and the sender remembered for status.
func TestForeignRouterDropped(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	now := tm.Add(10 * time.Millisecond)
	for i := range 3 {
		in.Receive(now.Add(time.Duration(i)*time.Millisecond), advert(t, cfg, higher, 254, otherAddrs))
	}
	checkState(t, in, vrrp.Master)
	st := in.Status()
	if got := st.Stats.Drops[vrrp.DropAddressMismatch]; got != 3 {
		t.Errorf("address_mismatch drops %d, want 3", got)
	}
	want := []vrrp.Foreign{{Src: higher, Priority: 254, Addresses: []netip.Addr{otherVIP}, Count: 3,
		LastSeen: now.Add(2 * time.Millisecond)}}
	if diff := cmp.Diff(want, st.Foreign, cmpOpts...); diff != "" {
		t.Errorf("foreign (-want +got):\n%s", diff)
	}
	// Status returns a copy.
	st.Foreign[0].Addresses[0] = me
	if got := in.Status().Foreign[0].Addresses[0]; got != otherVIP {
		t.Errorf("Status shares Foreign: %s", got)
	}
	// A backup ignores it too: it never resets the Master_Down_Timer.
	in = startBackup(t, cfg)
	for i := range 10 {
		in.Receive(t0.Add(time.Duration(i)*50*time.Millisecond), advert(t, cfg, higher, 254, otherAddrs))
	}
	out := in.Tick(t0.Add(mdi100))
	if out.Transition == nil || out.Transition.To != vrrp.Master {
		t.Fatalf("backup did not take over while only a foreign router was heard: %+v", out.Transition)
	}
}

// A known member whose list differs (its VirtualIP was edited a moment before ours, or after)
// still takes part: dropping it during a rollout would make two MASTERs. It is reported.
func TestMemberWithOtherAddressesTakesPart(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  vrrp.Config
	}{
		{"unicast peer", with(config4(), func(c *vrrp.Config) { c.Peers = []netip.Addr{higher} })},
		{"complete members", with(config4(), func(c *vrrp.Config) {
			c.Members, c.MembersComplete = []vrrp.Member{{Addr: higher, MaxPriority: 254}}, true
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, tm := startMaster(t, c.cfg)
			in.Receive(tm.Add(time.Millisecond), advert(t, c.cfg, higher, 254, otherAddrs))
			checkState(t, in, vrrp.Backup)
			st := in.Status()
			if len(st.Foreign) != 1 || !st.Foreign[0].InElection || st.Foreign[0].Src != higher {
				t.Errorf("foreign %+v, want the member reported", st.Foreign)
			}
			if n := st.Stats.Drops[vrrp.DropAddressMismatch]; n != 0 {
				t.Errorf("member's advert dropped %d times", n)
			}
		})
	}
	// Members not known to be complete: a stranger is dropped.
	cfg := with(config4(), func(c *vrrp.Config) { c.Members = []vrrp.Member{{Addr: higher}} })
	in, tm := startMaster(t, cfg)
	in.Receive(tm.Add(time.Millisecond), advert(t, cfg, higher, 254, otherAddrs))
	checkState(t, in, vrrp.Master)
}

// Order does not matter, and for IPv6 neither does the link-local entry: keepalived lists the
// virtual router's link-local address only when configured, we put it first when absent.
func TestAddressListComparison(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip, vip2} })
	in := startBackup(t, cfg)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg, higher, 200, func(a *packet.Advertisement) {
		a.Addresses = []netip.Addr{vip2.Addr(), vip.Addr()}
	}))
	// A subset is another list, reported; sharing an address with ours, it still takes part
	// (an edit in progress on the other router).
	in.Receive(t0.Add(2*time.Millisecond), advert(t, cfg, higher, 200, func(a *packet.Advertisement) {
		a.Addresses = []netip.Addr{vip.Addr()}
	}))
	st := in.Status()
	if st.Stats.AdvertsReceived != 2 || len(st.Foreign) != 1 || !st.Foreign[0].InElection {
		t.Errorf("stats %+v foreign %+v, want both accepted and the subset reported", st.Stats, st.Foreign)
	}

	cfg6 := config6()
	in = startBackup(t, cfg6)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg6, peer6, 200, func(a *packet.Advertisement) {
		a.Addresses = []netip.Addr{netip.MustParseAddr("fe80::1"), vip6.Addr()}
	}))
	if st := in.Status(); st.Stats.AdvertsReceived != 1 || len(st.Foreign) != 0 {
		t.Errorf("IPv6 advert with another link-local entry: %+v foreign %+v", st.Stats, st.Foreign)
	}
}

// The memory of foreign routers is bounded and forgets the silent ones.
func TestForeignBounded(t *testing.T) {
	cfg := config4()
	in := startBackup(t, cfg)
	for i := range 20 {
		src := netip.MustParseAddr(fmt.Sprintf("192.168.1.%d", 150+i))
		in.Receive(t0.Add(time.Duration(i)*time.Millisecond), advert(t, cfg, src, 200, otherAddrs))
	}
	st := in.Status()
	if len(st.Foreign) != 8 || st.Foreign[0].Src != netip.MustParseAddr("192.168.1.169") {
		t.Fatalf("foreign %d entries, newest %v; want 8, newest 192.168.1.169", len(st.Foreign), st.Foreign[0].Src)
	}
	later := t0.Add(6 * time.Minute)
	in.Receive(later, advert(t, cfg, higher, 200, otherAddrs))
	if st := in.Status(); len(st.Foreign) != 1 || st.Foreign[0].Src != higher {
		t.Errorf("after 6 minutes: %+v, want only the new sender", st.Foreign)
	}
}

// A member whose edit arrives (its list now matches ours) is no longer listed as foreign.
func TestForeignForgottenWhenListMatches(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Peers = []netip.Addr{higher} })
	in := startBackup(t, cfg)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg, higher, 200, otherAddrs))
	if len(in.Status().Foreign) != 1 {
		t.Fatalf("foreign %+v, want the member with the other list", in.Status().Foreign)
	}
	in.Receive(t0.Add(2*time.Millisecond), advert(t, cfg, higher, 200))
	if f := in.Status().Foreign; len(f) != 0 {
		t.Errorf("foreign %+v after its list matches ours, want none", f)
	}
}
