//go:build linux

package hostnet

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// testNS is a throwaway network namespace. It has no name, so nothing outlives the test
// process: the namespace and its links go away with the last handle and socket.
type testNS struct {
	ns netns.NsHandle
	nl *netlink.Handle // netlink requests into ns, from any goroutine
}

// newTestNS creates a network namespace without ever moving the test's threads out of
// theirs for longer than the unshare itself.
func newTestNS(t testing.TB) *testNS {
	t.Helper()
	privtest.Require(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get network namespace: %v", err)
	}
	ns, nerr := netns.New()
	if err := netns.Set(orig); err != nil {
		// Keep the thread locked: it is discarded with the test goroutine.
		panic("cannot restore the test thread's network namespace: " + err.Error())
	}
	_ = orig.Close()
	runtime.UnlockOSThread()
	if nerr != nil {
		t.Fatalf("create network namespace: %v", nerr)
	}
	n := &testNS{ns: ns}
	t.Cleanup(func() { _ = ns.Close() })
	n.run(t, func() {
		if n.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			t.Fatalf("netlink handle: %v", err)
		}
	})
	t.Cleanup(n.nl.Close)
	return n
}

// run calls fn on the test goroutine's thread switched into n, and switches back afterwards,
// also when fn fails the test.
func (n *testNS) run(t testing.TB, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get network namespace: %v", err)
	}
	if err := netns.Set(n.ns); err != nil {
		_ = orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("enter network namespace: %v", err)
	}
	defer func() {
		err := netns.Set(orig)
		_ = orig.Close()
		if err != nil {
			panic("cannot restore the test thread's network namespace: " + err.Error())
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// host returns a Host working in n.
func (n *testNS) host(t testing.TB) *Host {
	t.Helper()
	var h *Host
	n.run(t, func() { h = NewHost(nil) })
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func (n *testNS) sysctl(t testing.TB, path, value string) {
	t.Helper()
	n.run(t, func() {
		if err := os.WriteFile("/proc/sys/"+path, []byte(value), 0o644); err != nil {
			t.Fatalf("sysctl: %v", err)
		}
	})
}

func (n *testNS) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := n.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// addAddr adds an unmarked address, as another tool would; IPv6 with DAD unless nodad.
func (n *testNS) addAddr(t testing.TB, ifname string, p netip.Prefix, nodad bool) {
	t.Helper()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if nodad {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := n.nl.AddrAdd(n.link(t, ifname), a); err != nil {
		t.Fatalf("add %s to %s: %v", p, ifname, err)
	}
}

func (n *testNS) delAddr(t testing.TB, ifname string, p netip.Prefix) {
	t.Helper()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if err := n.nl.AddrDel(n.link(t, ifname), a); err != nil {
		t.Fatalf("delete %s from %s: %v", p, ifname, err)
	}
}

// addrs dumps the addresses of ifname, as the kernel reports them with their marks.
func (n *testNS) addrs(t testing.TB, ifname string) []kernelAddr {
	t.Helper()
	idx := n.link(t, ifname).Attrs().Index
	var have []kernelAddr
	n.run(t, func() {
		rt, err := newRTNL()
		if err != nil {
			t.Fatal(err)
		}
		defer rt.close()
		if have, err = rt.addrs(idx); err != nil {
			t.Fatal(err)
		}
	})
	return have
}

func (n *testNS) up(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := n.nl.LinkSetUp(n.link(t, name)); err != nil {
			t.Fatalf("set %s up: %v", name, err)
		}
	}
}

// addLink adds a veth pair name - name+"p", both ends in n and up (the dummy module may be
// missing).
func (n *testNS) addLink(t testing.TB, name string) {
	t.Helper()
	if err := n.nl.LinkAdd(vethPair(name, name+"p")); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	n.up(t, name, name+"p")
}

// linkLocal waits for the usable link-local address of ifname.
func (n *testNS) linkLocal(t *testing.T, ifname string) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, a := range n.addrs(t, ifname) {
			if a.Prefix.Addr().IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return a.Prefix.Addr()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usable link-local address on %s", ifname)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lab is two namespaces joined by a veth pair a0 (in a) - b0 (in b):
// a0 198.18.0.1/24, 198.18.0.3/24, 2001:db8::1/64, 2001:db8::3/64;
// b0 198.18.0.2/24, 2001:db8::2/64; DAD off so every address is usable at once.
type lab struct {
	a, b                   *testNS
	aIndex, bIndex         int
	aMAC, bMAC             net.HardwareAddr
	aLinkLocal, bLinkLocal netip.Addr
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{
		a:    newTestNS(t),
		b:    newTestNS(t),
		aMAC: net.HardwareAddr{0x02, 0x6b, 0, 0, 0, 0x0a},
		bMAC: net.HardwareAddr{0x02, 0x6b, 0, 0, 0, 0x0b},
	}
	l.connect(t)
	return l
}

// connect creates the veth pair a0 - b0 with its addresses, as newLab describes; after
// a0 was deleted, it creates it again (new indexes, same names and addresses).
func (l *lab) connect(t *testing.T) {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: "a0", HardwareAddr: l.aMAC},
		PeerName:         "b0",
		PeerHardwareAddr: l.bMAC,
		PeerNamespace:    netlink.NsFd(l.b.ns),
	}
	if err := l.a.nl.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	l.a.sysctl(t, "net/ipv6/conf/a0/accept_dad", "0")
	l.b.sysctl(t, "net/ipv6/conf/b0/accept_dad", "0")
	for _, p := range []string{"198.18.0.1/24", "198.18.0.3/24", "2001:db8::1/64", "2001:db8::3/64"} {
		l.a.addAddr(t, "a0", netip.MustParsePrefix(p), true)
	}
	for _, p := range []string{"198.18.0.2/24", "2001:db8::2/64"} {
		l.b.addAddr(t, "b0", netip.MustParsePrefix(p), true)
	}
	l.a.up(t, "a0")
	l.b.up(t, "b0")
	l.aIndex = l.a.link(t, "a0").Attrs().Index
	l.bIndex = l.b.link(t, "b0").Attrs().Index
	l.aLinkLocal = l.a.linkLocal(t, "a0")
	l.bLinkLocal = l.b.linkLocal(t, "b0")
}

func vethPair(a, b string) *netlink.Veth {
	return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
}
