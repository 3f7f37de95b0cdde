//go:build linux

package hostnet

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// ForeignAddresses lists what is on the link without kube-vrrp having added it: the host's own
// addresses and another program's, not the virtual addresses Bind added, and it follows them
// as they come and go.
func TestForeignAddresses(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "f0")
	n.sysctl(t, "net/ipv6/conf/f0/accept_dad", "0")
	own := netip.MustParsePrefix("198.18.7.1/24")
	other := netip.MustParsePrefix("198.18.7.50/32") // another program's
	vip4 := netip.MustParsePrefix("198.18.7.100/24")
	vip6 := netip.MustParsePrefix("2001:db8:7::100/64")
	n.addAddr(t, "f0", own, true)
	n.addAddr(t, "f0", other, true)
	h := n.host(t)
	l, err := h.Link("f0")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(context.Background(), []netip.Prefix{vip4, vip6}); err != nil {
		t.Fatal(err)
	}

	foreign, err := h.ForeignAddresses("f0")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{own, other} {
		if !slices.Contains(foreign, p) {
			t.Errorf("%s is not listed among %v", p, foreign)
		}
	}
	for _, p := range []netip.Prefix{vip4, vip6} {
		if slices.Contains(foreign, p) {
			t.Errorf("kube-vrrp's %s is listed as foreign: %v", p, foreign)
		}
	}

	// Unbound, and then added by someone else: now it is foreign.
	if err := l.Unbind(context.Background(), []netip.Prefix{vip4}); err != nil {
		t.Fatal(err)
	}
	n.addAddr(t, "f0", vip4, true)
	n.delAddr(t, "f0", other)
	if foreign, err = h.ForeignAddresses("f0"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(foreign, vip4) || slices.Contains(foreign, other) {
		t.Errorf("after the changes: %v, want %s and not %s", foreign, vip4, other)
	}

	if _, err := h.ForeignAddresses("nosuch0"); err == nil {
		t.Error("a missing link gives no error")
	}
}
