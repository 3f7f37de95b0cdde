//go:build linux

package hostnet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// lifetimes returns the valid lifetime, in seconds, of ifname's addresses by prefix, as the
// kernel reports them (0xFFFFFFFF: permanent).
func lifetimes(t *testing.T, n *testNS, ifname string) map[netip.Prefix]uint32 {
	t.Helper()
	as, err := n.nl.AddrList(n.link(t, ifname), netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Prefix]uint32{}
	for _, a := range as {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		out[netip.PrefixFrom(ip.Unmap(), ones)] = uint32(a.ValidLft)
	}
	return out
}

// TestRetain: addresses given a lifetime keep their mark and flags, and the kernel removes them
// when it ends; made permanent again, they stay. Foreign and absent addresses are left alone.
func TestRetain(t *testing.T) {
	n := vethNS(t)
	pfx := netip.MustParsePrefix
	foreign := pfx("198.18.1.50/24")
	n.addAddr(t, "x0", foreign, false)
	expire := []netip.Prefix{pfx("198.18.1.100/24"), pfx("2001:db8:1::100/64")}
	keep := []netip.Prefix{pfx("198.18.1.101/32"), pfx("2001:db8:1::101/128")}
	h := n.host(t)
	vl, err := h.Link("x0")
	if err != nil {
		t.Fatal(err)
	}
	l := vl.(*link)
	ctx := t.Context()
	if err := l.Bind(ctx, append(append([]netip.Prefix{}, expire...), keep...)); err != nil {
		t.Fatal(err)
	}
	absent := pfx("198.18.1.102/32")
	all := append(append([]netip.Prefix{foreign, absent}, expire...), keep...)
	start := time.Now()
	if err := l.Retain(ctx, all, 1500*time.Millisecond); err != nil { // rounded up to 2 s
		t.Fatal(err)
	}
	lt := lifetimes(t, n, "x0")
	for _, p := range append(append([]netip.Prefix{}, expire...), keep...) {
		if lt[p] < 1 || lt[p] > 2 {
			t.Errorf("%s: valid lifetime %d s, want 2", p, lt[p])
		}
	}
	if lt[foreign] != infiniteLifetime {
		t.Errorf("foreign %s: valid lifetime %d, want permanent", foreign, lt[foreign])
	}
	if _, ok := lt[absent]; ok {
		t.Errorf("Retain added the absent %s", absent)
	}
	want := map[netip.Prefix]addrState{foreign: {}}
	for _, p := range append(append([]netip.Prefix{}, expire...), keep...) {
		want[p] = addrState{Marked: true}
	}
	if diff := cmp.Diff(want, testAddrs(t, n, "x0"), netipOpt); diff != "" {
		t.Errorf("after Retain (-want +got):\n%s", diff)
	}
	for _, a := range n.addrs(t, "x0") {
		if a.Prefix.Addr().Is6() && a.Prefix == expire[1] && a.Flags&unix.IFA_F_NODAD == 0 {
			t.Errorf("%s lost IFA_F_NODAD: flags %#x", a.Prefix, a.Flags)
		}
	}

	if err := l.Retain(ctx, keep, 0); err != nil {
		t.Fatal(err)
	}
	lt = lifetimes(t, n, "x0")
	for _, p := range keep {
		if lt[p] != infiniteLifetime {
			t.Errorf("%s: valid lifetime %d after Retain 0, want permanent", p, lt[p])
		}
	}

	// The kernel removes the others within a second or so of their end.
	want = map[netip.Prefix]addrState{foreign: {}}
	for _, p := range keep {
		want[p] = addrState{Marked: true}
	}
	for {
		got := testAddrs(t, n, "x0")
		if cmp.Equal(want, got, netipOpt) {
			break
		}
		if time.Since(start) > 3500*time.Millisecond {
			t.Fatalf("%s after the lifetime (-want +got):\n%s", time.Since(start), cmp.Diff(want, got, netipOpt))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("addresses gone after %s, before their lifetime", d)
	}
	t.Logf("expired after %s", time.Since(start).Round(10*time.Millisecond))
	for _, a := range n.addrs(t, "x0") {
		if a.Prefix == keep[1] && a.Flags&unix.IFA_F_NODAD == 0 {
			t.Errorf("%s lost IFA_F_NODAD: flags %#x", a.Prefix, a.Flags)
		}
	}
	// Still ours: Unbind removes them.
	if err := l.Unbind(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[netip.Prefix]addrState{foreign: {}}, testAddrs(t, n, "x0"), netipOpt); diff != "" {
		t.Errorf("after Unbind (-want +got):\n%s", diff)
	}
}

// TestAdopt: a successor's Host takes over the marked addresses a predecessor left, and not a
// foreign or absent one; without marks it takes what is present, and Unbind then removes it.
func TestAdopt(t *testing.T) {
	n := vethNS(t)
	pfx := netip.MustParsePrefix
	foreign := pfx("198.18.1.50/24")
	n.addAddr(t, "x0", foreign, false)
	ours := []netip.Prefix{pfx("198.18.1.100/32"), pfx("2001:db8:1::100/128")}
	old := n.host(t)
	ol, err := old.Link("x0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ol.Bind(t.Context(), ours); err != nil {
		t.Fatal(err)
	}
	_ = old.Close()

	h := n.host(t)
	ask := append([]netip.Prefix{foreign, pfx("198.18.1.102/32")}, ours...)
	got, err := h.Adopt("x0", ask)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ours, got, netipOpt); diff != "" {
		t.Errorf("Adopt (-want +got):\n%s", diff)
	}

	// Unmarked, as a predecessor with --address-mark=false left them: presence decides.
	var unmarkedHost *Host
	n.run(t, func() { unmarkedHost = NewHost(nil, WithoutAddressMark()) })
	t.Cleanup(func() { _ = unmarkedHost.Close() })
	ul, err := unmarkedHost.Link("x0")
	if err != nil {
		t.Fatal(err)
	}
	plain := []netip.Prefix{pfx("198.18.1.110/32")}
	if err := ul.Bind(t.Context(), plain); err != nil {
		t.Fatal(err)
	}
	var succ *Host
	n.run(t, func() { succ = NewHost(nil, WithoutAddressMark()) })
	t.Cleanup(func() { _ = succ.Close() })
	sl, err := succ.Link("x0")
	if err != nil {
		t.Fatal(err)
	}
	// Not adopted, Unbind leaves it: not known to be ours.
	if err := sl.Unbind(t.Context(), plain); err != nil {
		t.Fatal(err)
	}
	if _, ok := testAddrs(t, n, "x0")[plain[0]]; !ok {
		t.Fatalf("Unbind removed %s before Adopt", plain[0])
	}
	got, err = succ.Adopt("x0", append([]netip.Prefix{foreign}, plain...))
	if err != nil {
		t.Fatal(err)
	}
	// The foreign one is unmarked too: without marks, presence alone decides (the handoff
	// record is the proof), so only the caller's list keeps it out.
	if diff := cmp.Diff([]netip.Prefix{foreign, plain[0]}, got, netipOpt); diff != "" {
		t.Errorf("Adopt without marks (-want +got):\n%s", diff)
	}
	if err := sl.Unbind(t.Context(), plain); err != nil {
		t.Fatal(err)
	}
	if _, ok := testAddrs(t, n, "x0")[plain[0]]; ok {
		t.Errorf("Unbind left the adopted %s", plain[0])
	}
}
