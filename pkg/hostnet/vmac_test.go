//go:build linux

package hostnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestVirtualMACName(t *testing.T) {
	for _, c := range []struct {
		parent string
		vrid   uint8
		ipv6   bool
		want   string
	}{
		{"eth0", 51, false, "kv4-51-eth0"},
		{"eth0", 51, true, "kv6-51-eth0"},
		{"bond0.100", 1, false, "kv4-1-bond0.100"},
		{"ens192", 255, true, "kv6-255-ens192"},
	} {
		if got := VirtualMACName(c.parent, c.vrid, c.ipv6); got != c.want {
			t.Errorf("VirtualMACName(%q, %d, %t) = %q, want %q", c.parent, c.vrid, c.ipv6, got, c.want)
		}
	}
	// Too long for the parent's name: 7 hex digits of its hash, within the kernel's 15 bytes,
	// different for parents that differ, the same for one parent.
	long := []string{"enp0s31f6", "enp0s31f7", "verylongname15c", "bond0.1000"}
	seen := map[string]string{}
	for _, p := range long {
		for _, vrid := range []uint8{1, 99, 255} {
			for _, v6 := range []bool{false, true} {
				n := VirtualMACName(p, vrid, v6)
				if len(n) > 15 || !validIfname(n) {
					t.Errorf("VirtualMACName(%q, %d, %t) = %q: not a valid interface name", p, vrid, v6, n)
				}
				if o, ok := seen[n]; ok {
					t.Errorf("VirtualMACName gives %q for %s and %q, %d, %t", n, o, p, vrid, v6)
				}
				seen[n] = fmt.Sprintf("%q, %d, %t", p, vrid, v6)
				if n != VirtualMACName(p, vrid, v6) {
					t.Errorf("VirtualMACName(%q, %d, %t) is not stable", p, vrid, v6)
				}
				if !isVMAC(n, "macvlan", VirtualMACAddr(vrid, v6)) || isVMAC(n, "macvlan", VirtualMACAddr(vrid, !v6)) ||
					isVMAC(n, "veth", VirtualMACAddr(vrid, v6)) {
					t.Errorf("isVMAC does not tell %q", n)
				}
			}
		}
	}
	if got := VirtualMACAddr(51, false).String(); got != "00:00:5e:00:01:33" {
		t.Errorf("VirtualMACAddr(51, IPv4) = %s", got)
	}
	if got := VirtualMACAddr(1, true).String(); got != "00:00:5e:00:02:01" {
		t.Errorf("VirtualMACAddr(1, IPv6) = %s", got)
	}
}

// The record of virtual MAC interfaces: replayed in order, a torn last line ignored, a bad
// line refused, compacted as the state is used.
func TestVirtualMACRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := vmacRecord{Name: "kv4-51-eth0", Parent: "eth0", VRID: 51, Primary: netip.MustParseAddr("198.18.0.1")}
	b := vmacRecord{Name: "kv6-51-eth0", Parent: "eth0", VRID: 51, IPv6: true, Primary: netip.MustParseAddr("fe80::1")}
	for _, r := range []vmacRecord{a, b} {
		if err := st.recordVMAC(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.forgetVMAC(a.Name); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	f, err := os.OpenFile(filepath.Join(dir, stateVMACFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("+ kv4-9-eth1 eth1 4 9 198.18") // torn
	_ = f.Close()
	st, err = OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.vmacRecords(); !slices.Equal(got, []vmacRecord{b}) {
		t.Errorf("record after a reopen: %v, want %v", got, []vmacRecord{b})
	}
	_ = st.Close()
	for _, bad := range []string{
		"+ kv4-51-eth1 eth0 4 51 198.18.0.1\n", // not the name of the parent
		"+ kv4-51-eth0 eth0 4 51 fe80::1\n",    // family
		"+ kv4-0-eth0 eth0 4 0 198.18.0.1\n",   // VRID
		"x kv4-51-eth0\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, stateVMACFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if st, err := OpenState(dir); err == nil {
			_ = st.Close()
			t.Errorf("OpenState accepted the record %q", bad)
		}
	}
}

// frameLog records every frame a namespace's link receives.
type frameLog struct {
	mu     sync.Mutex
	frames []loggedFrame
}

type loggedFrame struct {
	at   time.Time
	data []byte
}

func (n *testNS) captureFrames(t *testing.T, ifname string) *frameLog {
	t.Helper()
	var c *packet.Conn
	n.run(t, func() {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		if c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil); err != nil {
			t.Fatal(err)
		}
	})
	fl := &frameLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			fl.mu.Lock()
			fl.frames = append(fl.frames, loggedFrame{time.Now(), append([]byte(nil), buf[:k]...)})
			fl.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-done
	})
	return fl
}

// from returns the frames with the source MAC address mac received at or after since.
func (fl *frameLog) from(mac net.HardwareAddr, since time.Time) [][]byte {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var out [][]byte
	for _, f := range fl.frames {
		if !f.at.Before(since) && len(f.data) >= 14 && net.HardwareAddr(f.data[6:12]).String() == mac.String() {
			out = append(out, f.data)
		}
	}
	return out
}

// wait waits until a frame received at or after since matches, and returns it.
func (fl *frameLog) wait(t *testing.T, since time.Time, match func([]byte) bool) []byte {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		fl.mu.Lock()
		for _, f := range fl.frames {
			if !f.at.Before(since) && match(f.data) {
				fl.mu.Unlock()
				return f.data
			}
		}
		fl.mu.Unlock()
	}
	t.Fatal("no such frame received")
	return nil
}

func describe(frames [][]byte) string {
	var b strings.Builder
	for _, f := range frames {
		fmt.Fprintf(&b, "\n  %x", f[:min(len(f), 64)])
	}
	return b.String()
}

// vmacFrom is a frame of the IP protocol proto (IPv4 or IPv6, no extension headers) with its
// source MAC and addresses.
type ipFrame struct {
	srcMAC   net.HardwareAddr
	src, dst netip.Addr
	proto    uint8
}

func decodeIP(b []byte) (ipFrame, bool) {
	if len(b) < 14 {
		return ipFrame{}, false
	}
	f := ipFrame{srcMAC: net.HardwareAddr(b[6:12])}
	switch binary.BigEndian.Uint16(b[12:14]) {
	case unix.ETH_P_IP:
		if len(b) < 34 {
			return ipFrame{}, false
		}
		f.proto, f.src, f.dst = b[23], netip.AddrFrom4([4]byte(b[26:30])), netip.AddrFrom4([4]byte(b[30:34]))
	case unix.ETH_P_IPV6:
		if len(b) < 54 {
			return ipFrame{}, false
		}
		f.proto, f.src, f.dst = b[20], netip.AddrFrom16([16]byte(b[22:38])), netip.AddrFrom16([16]byte(b[38:54]))
	default:
		return ipFrame{}, false
	}
	return f, true
}

func (n *testNS) readSysctl(t *testing.T, path string) string {
	t.Helper()
	var v string
	n.run(t, func() {
		b, err := os.ReadFile("/proc/sys/" + path)
		if err != nil {
			t.Fatal(err)
		}
		v = strings.TrimSpace(string(b))
	})
	return v
}

// vmacTablesOf reads what n's VMACTable tables hold: exists is false without them.
func (n *testNS) vmacTablesOf(t *testing.T) (exists bool, entries []vmacARPEntry, links []string) {
	t.Helper()
	n.nft(t, func(c *nftables.Conn) {
		names := tableNames(t, c)
		exists = slices.Contains(names, fmt.Sprintf("%d %s", nftables.TableFamilyARP, VMACTable))
		if exists != slices.Contains(names, fmt.Sprintf("%d %s", nftables.TableFamilyIPv6, VMACTable)) {
			t.Errorf("one table of the two: %v", names)
		}
		var err error
		if entries, links, err = vmacFilterContent(c); err != nil {
			t.Fatal(err)
		}
	})
	return exists, entries, links
}

// hostWith returns a Host working in n with opts.
func (n *testNS) hostWith(t testing.TB, opts ...HostOption) *Host {
	t.Helper()
	var h *Host
	n.run(t, func() { h = NewHost(nil, opts...) })
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// newVMAC is h.VirtualMAC, failing t on an error.
func newVMAC(t *testing.T, h *Host, parent string, vrid uint8, ipv6 bool, primary netip.Addr) *vmacLink {
	t.Helper()
	l, err := h.VirtualMAC(parent, vrid, ipv6, primary)
	if err != nil {
		t.Fatal(err)
	}
	return l.(*vmacLink)
}

// An IPv4 virtual MAC interface from creation to removal: down and silent while no address is
// bound, up with them, answering ARP for them alone, the parent neither answering for them nor
// naming them as its ARP sender, multicast adverts from the virtual MAC while up, deleted with
// its record and the filter tables at the end.
func TestVirtualMACIPv4(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	st := openTestState(t)
	h := l.a.hostWith(t, WithState(st))
	frames := l.b.captureFrames(t, "b0")
	ip, pfx := netip.MustParseAddr, netip.MustParsePrefix
	primary, vip := ip("198.18.0.1"), pfx("198.18.0.200/24")
	mac := VirtualMACAddr(51, false)
	created := time.Now()
	v := newVMAC(t, h, "a0", 51, false, primary)
	const name = "kv4-51-a0"
	if v.Name() != name {
		t.Fatalf("name %q, want %q", v.Name(), name)
	}
	ml, ok := l.a.link(t, name).(*netlink.Macvlan)
	if !ok {
		t.Fatalf("%s is a %s, want a macvlan", name, l.a.link(t, name).Type())
	}
	if ml.Mode != netlink.MACVLAN_MODE_BRIDGE || ml.HardwareAddr.String() != mac.String() || ml.ParentIndex != l.aIndex ||
		ml.Flags&net.FlagUp != 0 || !strings.Contains(ml.Alias, "kube-vrrp") {
		t.Errorf("%s: mode %v, MAC %s, parent %d, flags %v, alias %q; want bridge, %s, %d, down, kube-vrrp's",
			name, ml.Mode, ml.HardwareAddr, ml.ParentIndex, ml.Flags, ml.Alias, mac, l.aIndex)
	}
	for key, want := range map[string]string{
		"ipv4/conf/" + name + "/arp_ignore": "1", "ipv4/conf/" + name + "/arp_announce": "2",
		"ipv4/conf/" + name + "/rp_filter": "2", "ipv4/conf/" + name + "/promote_secondaries": "1",
		"ipv6/conf/" + name + "/addr_gen_mode": "1",
		// The parent's are not changed.
		"ipv4/conf/a0/arp_ignore": "0", "ipv4/conf/a0/arp_announce": "0",
	} {
		if got := l.a.readSysctl(t, "net/"+key); got != want {
			t.Errorf("net.%s = %s, want %s", strings.ReplaceAll(key, "/", "."), got, want)
		}
	}
	if r, ok := st.vmacRecorded(name); !ok || r.Parent != "a0" || r.Primary != primary {
		t.Errorf("record: %v %t", r, ok)
	}
	if exists, _, links := l.a.vmacTablesOf(t); !exists || !slices.Equal(links, []string{name}) {
		t.Errorf("filter tables: exist %t, links %v; want %s", exists, links, name)
	}

	// A backup's: down, nothing sent.
	time.Sleep(200 * time.Millisecond)
	if got := frames.from(mac, created); len(got) > 0 {
		t.Errorf("%d frames from the virtual MAC before any Bind:%s", len(got), describe(got))
	}

	// A MASTER: up, the address there, its prefix route behind the parent's.
	ctx := t.Context()
	bindStart := time.Now()
	if err := v.Bind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Bind of the first address (up, filter entry, address): %v", time.Since(bindStart))
	if l.a.link(t, name).Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("%s is down after Bind", name)
	}
	if have := testAddrs(t, l.a, name); !func() bool { _, ok := have[vip]; return ok }() {
		t.Errorf("%s not on %s after Bind: %v", vip, name, have)
	}
	routes, err := l.a.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: l.a.link(t, name).Attrs().Index},
		netlink.RT_FILTER_OIF)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "198.18.0.0/24" && r.Priority != vmacRouteMetric {
			t.Errorf("the prefix route through %s has metric %d, want %d", name, r.Priority, vmacRouteMetric)
		}
	}
	if _, entries, _ := l.a.vmacTablesOf(t); !slices.Equal(entries, []vmacARPEntry{{parent: "a0", addr: vip.Addr(), primary: primary}}) {
		t.Errorf("ARP entries %v, want a0 . %s : %s", entries, vip.Addr(), primary)
	}

	// b resolves the VIP to the virtual MAC, and a's own address to a0's: the parent does not
	// answer for the VIP, nor the macvlan for a0's address.
	asked := time.Now()
	if !l.b.ping(t, ip("198.18.0.2"), vip.Addr(), 1) {
		t.Fatal("the VIP does not answer b")
	}
	if got := l.b.neighbour(t, l.bIndex, vip.Addr()); got.String() != mac.String() {
		t.Errorf("b's neighbour entry for %s: %s, want the virtual MAC %s", vip.Addr(), got, mac)
	}
	time.Sleep(100 * time.Millisecond)
	// b asked for the VIP alone: any reply of a0's answered that (whatever sender it gives).
	for _, f := range frames.from(l.aMAC, asked) {
		if a, ok := decodeARP(f); ok && a.Op == 2 {
			t.Errorf("a0 answered b's request for the VIP: %+v", a)
		}
	}
	asked = time.Now()
	if !l.b.ping(t, ip("198.18.0.2"), primary, 2) {
		t.Fatal("a0 does not answer b")
	}
	time.Sleep(100 * time.Millisecond)
	for _, f := range frames.from(mac, asked) {
		if a, ok := decodeARP(f); ok && a.Op == 2 && a.SPA != vip.Addr() {
			t.Errorf("the virtual MAC interface answered for another address: %+v", a)
		}
	}

	// a sends from the VIP to b through a0 (the parent's prefix route wins) without a
	// neighbour entry for b: a0's ARP request gives a0's own address as the sender, and b's
	// entry for the VIP stays the virtual MAC.
	if err := l.a.nl.NeighDel(&netlink.Neigh{LinkIndex: l.aIndex, IP: net.IP(ip("198.18.0.2").AsSlice())}); err != nil && !errors.Is(err, unix.ENOENT) {
		t.Fatal(err)
	}
	sent := time.Now()
	l.a.run(t, func() {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(vip.Addr(), 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip("198.18.0.2"), 9)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	})
	req := frames.wait(t, sent, func(f []byte) bool {
		a, ok := decodeARP(f)
		return ok && a.Op == 1 && a.TPA == ip("198.18.0.2")
	})
	if a, _ := decodeARP(req); a.SPA != primary || a.SHA.String() != l.aMAC.String() {
		t.Errorf("a's ARP request for b: sender %s at %s, want %s at %s", a.SPA, a.SHA, primary, l.aMAC)
	}
	if got := l.b.neighbour(t, l.bIndex, vip.Addr()); got.String() != mac.String() {
		t.Errorf("b's neighbour entry for %s after a's request: %s, want the virtual MAC %s", vip.Addr(), got, mac)
	}

	// Adverts: multicast from the virtual MAC, unicast from a0.
	conn := listen(t, h, "a0", primary)
	send := v.Sender(conn)
	advert := []byte{0x31, 51, 100, 1, 0, 10, 0, 0, 198, 18, 0, 200}
	at := time.Now()
	for _, dst := range []netip.Addr{ip("224.0.0.18"), ip("198.18.0.2")} {
		if err := send.WriteTo(advert, dst); err != nil {
			t.Fatal(err)
		}
		f, _ := decodeIP(frames.wait(t, at, func(b []byte) bool {
			f, ok := decodeIP(b)
			return ok && f.proto == protoVRRP && f.dst == dst
		}))
		want := mac
		if !dst.IsMulticast() {
			want = l.aMAC
		}
		if f.srcMAC.String() != want.String() || f.src != primary {
			t.Errorf("advert to %s: from %s at %s, want from %s at %s", dst, f.src, f.srcMAC, primary, want)
		}
	}

	// Backup again: down first, the address and entries gone, and nothing more from the
	// virtual MAC, adverts included.
	down := time.Now()
	if err := v.Unbind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	if l.a.link(t, name).Attrs().Flags&net.FlagUp != 0 {
		t.Errorf("%s is up after the last Unbind", name)
	}
	if have := testAddrs(t, l.a, name); func() bool { _, ok := have[vip]; return ok }() {
		t.Errorf("%s still on %s", vip, name)
	}
	if _, entries, _ := l.a.vmacTablesOf(t); len(entries) > 0 {
		t.Errorf("ARP entries left: %v", entries)
	}
	if err := send.WriteTo(advert, ip("224.0.0.18")); err != nil {
		t.Fatal(err)
	}
	f, _ := decodeIP(frames.wait(t, down, func(b []byte) bool { f, ok := decodeIP(b); return ok && f.proto == protoVRRP }))
	if f.srcMAC.String() != l.aMAC.String() {
		t.Errorf("a backup's advert left from %s, want a0's %s", f.srcMAC, l.aMAC)
	}
	time.Sleep(300 * time.Millisecond)
	if got := frames.from(mac, down); len(got) > 0 {
		t.Errorf("%d frames from the virtual MAC after the last Unbind:%s", len(got), describe(got))
	}
	if got := frames.from(mac, created); len(got) == 0 {
		t.Error("no frame from the virtual MAC while it was up")
	}

	// Closed: deleted, with its record and the tables (it was the last interface).
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.a.nl.LinkByName(name); err == nil {
		t.Errorf("%s still exists after Close", name)
	}
	if _, ok := st.vmacRecorded(name); ok {
		t.Error("still recorded after Close")
	}
	if exists, _, _ := l.a.vmacTablesOf(t); exists {
		t.Error("filter tables left after the last interface")
	}
}

// An IPv6 virtual MAC interface: no link-local address, the VIP answered with the virtual MAC,
// multicast adverts from the virtual MAC with the parent's link-local source, router
// advertisements ignored, nothing from the virtual MAC once down (the groups it leaves send no
// report), and no ARP answer for the node's IPv4 address.
func TestVirtualMACIPv6(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	// MLDv1 sends a Done at once when an address's group is left (MLDv2's state-change report
	// goes a moment later, from work a down link cancels).
	l.a.sysctl(t, "net/ipv6/conf/all/force_mld_version", "1")
	h := l.a.host(t)
	frames := l.b.captureFrames(t, "b0")
	ip, pfx := netip.MustParseAddr, netip.MustParsePrefix
	vip := pfx("2001:db8::200/64")
	mac := VirtualMACAddr(51, true)
	v := newVMAC(t, h, "a0", 51, true, l.aLinkLocal)
	const name = "kv6-51-a0"
	ctx := t.Context()
	if err := v.Bind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for p := range testAddrs(t, l.a, name) {
		if p != vip {
			t.Errorf("%s has %s besides the VIP", name, p)
		}
	}
	if !l.b.ping(t, ip("2001:db8::2"), vip.Addr(), 1) {
		t.Fatal("the VIP does not answer b")
	}
	if got := l.b.neighbour(t, l.bIndex, vip.Addr()); got.String() != mac.String() {
		t.Errorf("b's neighbour entry for %s: %s, want %s", vip.Addr(), got, mac)
	}
	asked := time.Now()
	if !l.b.ping(t, ip("198.18.0.2"), ip("198.18.0.1"), 2) {
		t.Fatal("a0 does not answer b")
	}
	time.Sleep(100 * time.Millisecond)
	if got := frames.from(mac, asked); slices.ContainsFunc(got, func(f []byte) bool { _, ok := decodeARP(f); return ok }) {
		t.Errorf("the IPv6 virtual MAC interface answered ARP:%s", describe(got))
	}

	conn := listen(t, h, "a0", l.aLinkLocal)
	send := v.Sender(conn)
	advert := make([]byte, 8+16)
	copy(advert, []byte{0x31, 51, 100, 1, 0, 10, 0, 0})
	at := time.Now()
	if err := send.WriteTo(advert, ip("ff02::12")); err != nil {
		t.Fatal(err)
	}
	f, _ := decodeIP(frames.wait(t, at, func(b []byte) bool { f, ok := decodeIP(b); return ok && f.proto == protoVRRP }))
	if f.srcMAC.String() != mac.String() || f.src != l.aLinkLocal.WithZone("") {
		t.Errorf("advert: from %s at %s, want from %s at %s", f.src, f.srcMAC, l.aLinkLocal, mac)
	}

	// A router advertisement with a SLAAC prefix reaches the macvlan (accept_ra is on, as by
	// default where a link does not forward): no address, no default route there.
	l.b.sendRA(t, "b0", pfx("2001:db8:1::/64"))
	time.Sleep(500 * time.Millisecond)
	for p := range testAddrs(t, l.a, name) {
		if p != vip {
			t.Errorf("%s has %s after a router advertisement", name, p)
		}
	}
	idx := l.a.link(t, name).Attrs().Index
	routes, err := l.a.nl.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: idx}, netlink.RT_FILTER_OIF)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			t.Errorf("a default route through %s: %v", name, r)
		}
	}

	// From the call on: nothing may leave before the interface is down.
	down := time.Now()
	if err := v.Unbind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := frames.from(mac, down); len(got) > 0 {
		t.Errorf("%d frames from the virtual MAC after the last Unbind:%s", len(got), describe(got))
	}
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.a.nl.LinkByName(name); err == nil {
		t.Errorf("%s still exists after Close", name)
	}
}

// sendRA sends a router advertisement from n's ifname to all nodes, with a prefix information
// option for prefix (on-link, autonomous) and a router lifetime: what makes a listening link
// configure an address and a default route.
func (n *testNS) sendRA(t *testing.T, ifname string, prefix netip.Prefix) {
	t.Helper()
	n.run(t, func() {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			t.Fatal(err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index); err != nil {
			t.Fatal(err)
		}
		// RA (RFC 4861 §4.2): type, code, checksum (the kernel's), hop limit, flags, router
		// lifetime 1800 s, reachable, retrans; then a prefix information option (§4.6.2).
		ra := []byte{icmpv6RA, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}
		pi := make([]byte, 32)
		pi[0], pi[1], pi[2], pi[3] = 3, 4, uint8(prefix.Bits()), 0xc0
		binary.BigEndian.PutUint32(pi[4:8], 86400)
		binary.BigEndian.PutUint32(pi[8:12], 14400)
		a := prefix.Addr().As16()
		copy(pi[16:], a[:])
		dst := &unix.SockaddrInet6{Addr: allNodes.As16(), ZoneId: uint32(ifi.Index)}
		if err := unix.Sendto(fd, append(ra, pi...), 0, dst); err != nil {
			t.Fatal(err)
		}
	})
}

// A killed agent's virtual MAC interface is deleted at the next start, with its address and the
// filter tables; an interface that only looks like one is not. One a MASTER handed over is
// kept, up with its address and filter entries, and taken over by the next Host.
func TestVirtualMACStale(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	dir := filepath.Join(t.TempDir(), "state")
	ip, pfx := netip.MustParseAddr, netip.MustParsePrefix
	primary, vip := ip("198.18.0.1"), pfx("198.18.0.200/32")
	const name = "kv4-51-a0"
	ctx := t.Context()
	open := func() *State {
		st, err := OpenState(dir)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	removeStale := func(st *State) []netip.Prefix {
		var removed []netip.Prefix
		l.a.run(t, func() {
			var err error
			if removed, err = RemoveStale(ctx, st, true); err != nil {
				t.Fatal(err)
			}
		})
		return removed
	}
	start := func(st *State) *vmacLink {
		h := l.a.hostWith(t, WithState(st))
		v := newVMAC(t, h, "a0", 51, false, primary)
		return v
	}

	// Killed while MASTER: the Host and state are dropped as they are.
	st := open()
	v := start(st)
	if err := v.Bind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	_ = v.h.Close()
	_ = st.Close()
	// Another program's macvlan with a virtual MAC, not in the record.
	lookalike := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "kv4-52-a0", ParentIndex: l.aIndex,
		HardwareAddr: VirtualMACAddr(52, false)}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := l.a.nl.LinkAdd(lookalike); err != nil {
		t.Fatal(err)
	}
	st = open()
	if removed := removeStale(st); !slices.Contains(removed, vip) {
		t.Errorf("RemoveStale removed %v, want %s among them", removed, vip)
	}
	if _, err := l.a.nl.LinkByName(name); err == nil {
		t.Errorf("%s survived RemoveStale", name)
	}
	if _, err := l.a.nl.LinkByName("kv4-52-a0"); err != nil {
		t.Errorf("RemoveStale deleted an interface it did not record: %v", err)
	}
	if exists, _, _ := l.a.vmacTablesOf(t); exists {
		t.Error("filter tables survived RemoveStale")
	}
	if r := st.vmacRecords(); len(r) > 0 {
		t.Errorf("records after RemoveStale: %v", r)
	}

	// Handed over: kept, and taken over as it is.
	v = start(st)
	if err := v.Bind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteHandoff([]HandoffEntry{{Interface: "a0", VRID: 51, Addresses: []netip.Prefix{vip},
		Deadline: time.Now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(true); err != nil {
		t.Fatal(err)
	}
	_ = v.h.Close()
	_ = st.Close()
	st = open()
	if _, err := st.TakeHandoff(); err != nil {
		t.Fatal(err)
	}
	if removed := removeStale(st); len(removed) > 0 {
		t.Errorf("RemoveStale removed %v of what was handed over", removed)
	}
	if a := l.a.link(t, name).Attrs(); a.Flags&net.FlagUp == 0 || !func() bool { _, ok := testAddrs(t, l.a, name)[vip]; return ok }() {
		t.Errorf("%s after RemoveStale: flags %v, addresses %v; want up with %s", name, a.Flags, testAddrs(t, l.a, name), vip)
	}
	if _, entries, links := l.a.vmacTablesOf(t); !slices.Equal(links, []string{name}) ||
		!slices.Equal(entries, []vmacARPEntry{{parent: "a0", addr: vip.Addr(), primary: primary}}) {
		t.Errorf("filter after RemoveStale: links %v, entries %v", links, entries)
	}
	v = start(st)
	if !v.up.Load() {
		t.Error("the taken-over interface is not counted as up")
	}
	if got, err := v.h.Adopt(name, []netip.Prefix{vip}); err != nil || !slices.Equal(got, []netip.Prefix{vip}) {
		t.Errorf("Adopt on %s: %v, %v", name, got, err)
	}
	if err := v.Unbind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.a.nl.LinkByName(name); err == nil {
		t.Errorf("%s survived its Close", name)
	}
	// A handed-over interface that no instance takes: DropVirtualMAC deletes it.
	v = start(st)
	if err := v.Bind(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	_ = v.Close(true)
	h := l.a.hostWith(t, WithState(st))
	if err := h.DropVirtualMAC("a0", 51, false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.a.nl.LinkByName(name); err == nil {
		t.Errorf("%s survived DropVirtualMAC", name)
	}
	if exists, _, _ := l.a.vmacTablesOf(t); exists {
		t.Error("filter tables survived the last interface")
	}
	_ = st.Close()
}

// The parent deleted and created again (a rebuild) takes the macvlan with it; the interface is
// created again once the parent is back, and a MASTER binds there again.
func TestVirtualMACParentRebuilt(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	h := l.a.host(t)
	v := newVMAC(t, h, "a0", 51, false, netip.MustParseAddr("198.18.0.1"))
	const name = "kv4-51-a0"
	sw := startStateWatch(t, v)
	sw.want(true)
	vip := netip.MustParsePrefix("198.18.0.200/32")
	if err := v.Bind(t.Context(), []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	if err := l.a.nl.LinkDel(l.a.link(t, "a0")); err != nil {
		t.Fatal(err)
	}
	sw.want(false)
	if _, err := l.a.nl.LinkByName(name); err == nil {
		t.Fatalf("%s outlived its parent", name)
	}
	if err := v.Unbind(t.Context(), []netip.Prefix{vip}); err != nil {
		t.Errorf("Unbind with the interface gone: %v", err)
	}
	l.connect(t)
	sw.want(true)
	ml, err := l.a.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("%s not created again with its parent: %v", name, err)
	}
	if ml.Attrs().ParentIndex != l.aIndex {
		t.Errorf("%s on link %d, want the new a0 %d", name, ml.Attrs().ParentIndex, l.aIndex)
	}
	if err := v.Bind(t.Context(), []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	if !l.b.ping(t, netip.MustParseAddr("198.18.0.2"), vip.Addr(), 1) {
		t.Error("the VIP does not answer after the rebuild")
	}
	if got := l.b.neighbour(t, l.bIndex, vip.Addr()); got.String() != VirtualMACAddr(51, false).String() {
		t.Errorf("b's neighbour entry for the VIP: %s", got)
	}
	_ = v.Close(false)
}

// Interfaces lists a virtual MAC interface without prefixes, even unmarked ones: they are
// virtual addresses, never the node's.
func TestInterfacesSkipVirtualMAC(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	h := l.a.hostWith(t, WithoutAddressMark())
	v := newVMAC(t, h, "a0", 7, false, netip.MustParseAddr("198.18.0.1"))
	if err := v.Bind(t.Context(), []netip.Prefix{netip.MustParsePrefix("198.18.0.70/24")}); err != nil {
		t.Fatal(err)
	}
	var ifs []Interface
	l.a.run(t, func() {
		var err error
		if ifs, err = Interfaces(); err != nil {
			t.Fatal(err)
		}
	})
	i := slices.IndexFunc(ifs, func(i Interface) bool { return i.Name == v.Name() })
	if i < 0 {
		t.Fatalf("%s not listed: %v", v.Name(), ifs)
	}
	if len(ifs[i].Prefixes) > 0 {
		t.Errorf("%s listed with prefixes %v", v.Name(), ifs[i].Prefixes)
	}
	_ = v.Close(false)
}

// Another tool deleting the filter tables (`nft flush ruleset`, as a reload of Debian's
// nftables.service does) does not stop the virtual MAC interfaces from binding: the next change
// writes the tables again, with every entry and interface this Host has in them.
func TestVirtualMACTablesDeletedByAnother(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	h := l.a.host(t)
	ip, pfx := netip.MustParseAddr, netip.MustParsePrefix
	primary := ip("198.18.0.1")
	v1 := newVMAC(t, h, "a0", 51, false, primary)
	v2 := newVMAC(t, h, "a0", 52, false, primary)
	ctx := t.Context()
	vip1, vip2 := pfx("198.18.0.201/32"), pfx("198.18.0.202/32")
	if err := v2.Bind(ctx, []netip.Prefix{vip2}); err != nil {
		t.Fatal(err)
	}
	l.a.nft(t, func(c *nftables.Conn) {
		deleteVMACTables(c)
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	if exists, _, _ := l.a.vmacTablesOf(t); exists {
		t.Fatal("the tables are still there")
	}
	if err := v1.Bind(ctx, []netip.Prefix{vip1}); err != nil {
		t.Fatalf("Bind after the tables were deleted: %v", err)
	}
	exists, entries, links := l.a.vmacTablesOf(t)
	slices.Sort(links)
	slices.SortFunc(entries, func(a, b vmacARPEntry) int { return a.addr.Compare(b.addr) })
	want := []vmacARPEntry{{parent: "a0", addr: vip1.Addr(), primary: primary}, {parent: "a0", addr: vip2.Addr(), primary: primary}}
	if !exists || !slices.Equal(links, []string{v1.Name(), v2.Name()}) || !slices.Equal(entries, want) {
		t.Errorf("tables after the Bind: exist %t, links %v, entries %v; want %v and %v", exists, links, entries,
			[]string{v1.Name(), v2.Name()}, want)
	}
	// Deleted again: an Unbind, and the Close of the last interface, still succeed.
	l.a.nft(t, func(c *nftables.Conn) {
		deleteVMACTables(c)
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	if err := v1.Unbind(ctx, []netip.Prefix{vip1}); err != nil {
		t.Errorf("Unbind after the tables were deleted: %v", err)
	}
	if _, entries, links := l.a.vmacTablesOf(t); len(links) != 2 ||
		!slices.Equal(entries, []vmacARPEntry{{parent: "a0", addr: vip2.Addr(), primary: primary}}) {
		t.Errorf("tables after the Unbind: links %v, entries %v", links, entries)
	}
	if err := v1.Close(false); err != nil {
		t.Error(err)
	}
	if err := v2.Close(false); err != nil {
		t.Error(err)
	}
	if exists, _, _ := l.a.vmacTablesOf(t); exists {
		t.Error("tables left after the last interface")
	}
}

// The tables deleted by another tool are written again at the next Bind even when it enters
// nothing new: an IPv6 interface, which has no ARP entry (its router advertisements would
// otherwise reach it unfiltered for as long as it is up), and an IPv4 one binding an address
// it holds already (the second burst's, or an address put back).
func TestVirtualMACTablesDeletedRewrittenAtEveryBind(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	h := l.a.host(t)
	ip, pfx := netip.MustParseAddr, netip.MustParsePrefix
	v4 := newVMAC(t, h, "a0", 51, false, ip("198.18.0.1"))
	v6 := newVMAC(t, h, "a0", 52, true, ip("fe80::1"))
	defer func() { _ = v4.Close(false); _ = v6.Close(false) }()
	ctx := t.Context()
	vip4, vip6 := pfx("198.18.0.201/32"), pfx("2001:db8::201/128")
	if err := v4.Bind(ctx, []netip.Prefix{vip4}); err != nil {
		t.Fatal(err)
	}
	deleteTables := func() {
		l.a.nft(t, func(c *nftables.Conn) {
			deleteVMACTables(c)
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
		})
	}
	want4 := []vmacARPEntry{{parent: "a0", addr: vip4.Addr(), primary: ip("198.18.0.1")}}
	for _, c := range []struct {
		name string
		v    *vmacLink
		p    netip.Prefix
	}{{"IPv6", v6, vip6}, {"IPv4 again", v4, vip4}} {
		deleteTables()
		if err := c.v.Bind(ctx, []netip.Prefix{c.p}); err != nil {
			t.Fatalf("%s: Bind after the tables were deleted: %v", c.name, err)
		}
		exists, entries, links := l.a.vmacTablesOf(t)
		slices.Sort(links)
		if !exists || !slices.Equal(links, []string{v4.Name(), v6.Name()}) || !slices.Equal(entries, want4) {
			t.Errorf("%s: tables after the Bind: exist %t, links %v, entries %v; want %v and %v", c.name, exists, links,
				entries, []string{v4.Name(), v6.Name()}, want4)
		}
	}
}

// On a kernel without IPv6 (booted with ipv6.disable=1), which refuses a link change naming
// AF_INET6 (EAFNOSUPPORT), an IPv4 virtual MAC interface is still made, with its IPv4
// settings: there is no link-local address to prevent.
func TestVirtualMACWithoutIPv6(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	h := l.a.host(t)
	real := vmacSetLink
	t.Cleanup(func() { vmacSetLink = real })
	vmacSetLink = func(r *rtnl, index int, up *bool, inet map[int]uint32, genNone bool) error {
		if genNone {
			return fmt.Errorf("set link %d: %w", index, unix.EAFNOSUPPORT)
		}
		return real(r, index, up, inet, genNone)
	}
	v := newVMAC(t, h, "a0", 51, false, netip.MustParseAddr("198.18.0.1"))
	if got := l.a.readSysctl(t, "net/ipv4/conf/"+v.Name()+"/arp_ignore"); got != "1" {
		t.Errorf("arp_ignore %s, want 1", got)
	}
	if err := v.Bind(t.Context(), []netip.Prefix{netip.MustParsePrefix("198.18.0.200/32")}); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
	// IPv6 needs it.
	if _, err := h.VirtualMAC("a0", 51, true, l.aLinkLocal); err == nil {
		t.Error("an IPv6 virtual MAC interface without IPv6")
	}
	if _, err := l.a.nl.LinkByName(VirtualMACName("a0", 51, true)); err == nil {
		t.Error("the IPv6 virtual MAC interface left behind")
	}
}

// A VirtualMAC that fails after it made the interface, or while it configured it, leaves
// nothing behind: no interface, no record, no filter tables.
func TestVirtualMACFailedLeavesNothing(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	st := openTestState(t)
	h := l.a.hostWith(t, WithState(st))
	primary := netip.MustParseAddr("198.18.0.1")
	listen, setLink := vmacListen, vmacSetLink
	t.Cleanup(func() { vmacListen, vmacSetLink = listen, setLink })
	check := func(what string) {
		t.Helper()
		name := VirtualMACName("a0", 51, false)
		if _, err := l.a.nl.LinkByName(name); err == nil {
			t.Errorf("%s: %s left behind", what, name)
		}
		if r := st.vmacRecords(); len(r) > 0 {
			t.Errorf("%s: records left: %v", what, r)
		}
		if exists, _, links := l.a.vmacTablesOf(t); exists {
			t.Errorf("%s: filter tables left (links %v)", what, links)
		}
	}
	vmacListen = func(*Host, string, netip.Addr) (*packetConn, error) { return nil, errors.New("no socket") }
	if _, err := h.VirtualMAC("a0", 51, false, primary); err == nil {
		t.Fatal("VirtualMAC without its socket succeeded")
	}
	check("the socket failed")
	vmacListen = listen
	vmacSetLink = func(*rtnl, int, *bool, map[int]uint32, bool) error { return unix.EINVAL }
	if _, err := h.VirtualMAC("a0", 51, false, primary); err == nil {
		t.Fatal("VirtualMAC without its settings succeeded")
	}
	check("the settings failed")
	vmacSetLink = setLink
	// And it works afterwards.
	v := newVMAC(t, h, "a0", 51, false, primary)
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
	check("closed")
}

// A host whose new links get arp_filter 1 (net.ipv4.conf.default.arp_filter, set on hosts with
// several links in one subnet): the virtual MAC interface still answers ARP for its address,
// although the route back to the asker leaves through the parent.
func TestVirtualMACDefaultArpFilter(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	l.a.sysctl(t, "net/ipv4/conf/default/arp_filter", "1")
	h := l.a.host(t)
	v := newVMAC(t, h, "a0", 51, false, netip.MustParseAddr("198.18.0.1"))
	if got := l.a.readSysctl(t, "net/ipv4/conf/"+v.Name()+"/arp_filter"); got != "0" {
		t.Errorf("arp_filter of %s: %s, want 0", v.Name(), got)
	}
	vip := netip.MustParsePrefix("198.18.0.200/24")
	if err := v.Bind(t.Context(), []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	if !l.b.ping(t, netip.MustParseAddr("198.18.0.2"), vip.Addr(), 1) {
		t.Error("the VIP does not answer b")
	}
	if got := l.b.neighbour(t, l.bIndex, vip.Addr()); got.String() != VirtualMACAddr(51, false).String() {
		t.Errorf("b's neighbour entry for the VIP: %q, want the virtual MAC", got)
	}
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
}

// net.ipv4.conf.all.arp_filter 1 applies to every interface, the virtual MAC interface
// included, which would then answer no ARP for the VIP: VirtualMAC refuses to start and says
// what to change, instead of a MASTER nobody reaches.
func TestVirtualMACAllArpFilter(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	l.a.sysctl(t, "net/ipv4/conf/all/arp_filter", "1")
	h := l.a.host(t)
	_, err := h.VirtualMAC("a0", 51, false, netip.MustParseAddr("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.conf.all.arp_filter is 1") {
		t.Fatalf("VirtualMAC with all.arp_filter 1: %v, want a refusal naming the setting", err)
	}
	if _, err := h.VirtualMAC("a0", 52, true, netip.MustParseAddr("fe80::1")); err != nil {
		t.Errorf("an IPv6 virtual MAC does not depend on arp_filter: %v", err)
	}
	l.a.sysctl(t, "net/ipv4/conf/all/arp_filter", "0")
	v := newVMAC(t, h, "a0", 51, false, netip.MustParseAddr("198.18.0.1"))
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
}

// A forwarding host whose new links get proxy_arp 1 (net.ipv4.conf.default.proxy_arp): the
// virtual MAC interface of a MASTER does not answer ARP for the other addresses of the subnet
// (their route leaves through the parent, another link, which is what proxy ARP answers for),
// which would draw the subnet's traffic to the virtual MAC.
func TestVirtualMACDefaultProxyArp(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	l.a.sysctl(t, "net/ipv4/ip_forward", "1")
	l.a.sysctl(t, "net/ipv4/conf/default/proxy_arp", "1")
	h := l.a.host(t)
	v := newVMAC(t, h, "a0", 51, false, netip.MustParseAddr("198.18.0.1"))
	if got := l.a.readSysctl(t, "net/ipv4/conf/"+v.Name()+"/proxy_arp"); got != "0" {
		t.Errorf("proxy_arp of %s: %s, want 0", v.Name(), got)
	}
	if err := v.Bind(t.Context(), []netip.Prefix{netip.MustParsePrefix("198.18.0.200/24")}); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("198.18.0.77") // no host has it
	l.b.ping(t, netip.MustParseAddr("198.18.0.2"), other, 1)
	time.Sleep(1500 * time.Millisecond) // proxy answers wait up to proxy_delay (0.8 s)
	if got := l.b.neighbour(t, l.bIndex, other); got.String() == VirtualMACAddr(51, false).String() {
		t.Errorf("b's neighbour entry for %s is the virtual MAC", other)
	}
	if err := v.Close(false); err != nil {
		t.Fatal(err)
	}
}

// An interface that is a macvlan itself cannot be a parent: the kernel puts a macvlan made on it
// on its lower link, so that every Bind would find the virtual MAC interface on another link.
// VirtualMAC refuses it, saying so, and leaves nothing.
func TestVirtualMACOnMacvlan(t *testing.T) {
	keepHostTables(t)
	l := newLab(t)
	m := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "m0", ParentIndex: l.aIndex}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := l.a.nl.LinkAdd(m); err != nil {
		t.Fatal(err)
	}
	h := l.a.host(t)
	v, err := h.VirtualMAC("m0", 51, false, netip.MustParseAddr("198.18.0.1"))
	if err == nil {
		_ = v.(*vmacLink).Close(false)
		t.Fatal("VirtualMAC on a macvlan succeeded")
	}
	if !strings.Contains(err.Error(), "macvlan") {
		t.Errorf("error %q does not say why", err)
	}
	if _, err := l.a.nl.LinkByName(VirtualMACName("m0", 51, false)); err == nil {
		t.Error("the virtual MAC interface was made")
	}
}
