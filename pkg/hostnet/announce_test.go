//go:build linux

package hostnet

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// arpFrame is a decoded Ethernet ARP frame.
type arpFrame struct {
	EthDst, EthSrc net.HardwareAddr
	EthType        uint16
	HType, PType   uint16
	HLen, PLen     uint8
	Op             uint16
	SHA            net.HardwareAddr
	SPA            netip.Addr
	THA            net.HardwareAddr
	TPA            netip.Addr
}

func decodeARP(b []byte) (arpFrame, bool) {
	if len(b) < 42 || binary.BigEndian.Uint16(b[12:14]) != unix.ETH_P_ARP {
		return arpFrame{}, false
	}
	a := b[14:]
	return arpFrame{
		EthDst: net.HardwareAddr(b[0:6]), EthSrc: net.HardwareAddr(b[6:12]),
		EthType: binary.BigEndian.Uint16(b[12:14]),
		HType:   binary.BigEndian.Uint16(a[0:2]), PType: binary.BigEndian.Uint16(a[2:4]),
		HLen: a[4], PLen: a[5],
		Op:  binary.BigEndian.Uint16(a[6:8]),
		SHA: net.HardwareAddr(a[8:14]), SPA: netip.AddrFrom4([4]byte(a[14:18])),
		THA: net.HardwareAddr(a[18:24]), TPA: netip.AddrFrom4([4]byte(a[24:28])),
	}, true
}

// naFrame is a decoded Ethernet / IPv6 / ICMPv6 neighbour advertisement.
type naPacket struct {
	EthDst, EthSrc       net.HardwareAddr
	EthType              uint16
	Version              uint8
	PayloadLen           uint16
	NextHeader, HopLimit uint8
	Src, Dst             netip.Addr
	Type, Code           uint8
	ChecksumOK           bool
	Flags                uint8 // R, S, O in the top bits
	Target               netip.Addr
	OptType, OptLen      uint8
	OptMAC               net.HardwareAddr
}

func decodeNA(b []byte) (naPacket, bool) {
	if len(b) < 14+40+32 || binary.BigEndian.Uint16(b[12:14]) != unix.ETH_P_IPV6 {
		return naPacket{}, false
	}
	ip, m := b[14:54], b[54:]
	if ip[6] != unix.IPPROTO_ICMPV6 || m[0] != 136 {
		return naPacket{}, false
	}
	n := naPacket{
		EthDst: net.HardwareAddr(b[0:6]), EthSrc: net.HardwareAddr(b[6:12]),
		EthType:    binary.BigEndian.Uint16(b[12:14]),
		Version:    ip[0] >> 4,
		PayloadLen: binary.BigEndian.Uint16(ip[4:6]),
		NextHeader: ip[6], HopLimit: ip[7],
		Src: netip.AddrFrom16([16]byte(ip[8:24])), Dst: netip.AddrFrom16([16]byte(ip[24:40])),
		Type: m[0], Code: m[1],
		Flags:   m[4],
		Target:  netip.AddrFrom16([16]byte(m[8:24])),
		OptType: m[24], OptLen: m[25],
		OptMAC: net.HardwareAddr(m[26:32]),
	}
	if int(n.PayloadLen) <= len(m) {
		n.ChecksumOK = checksumValid(n.Src, n.Dst, m[:n.PayloadLen])
	}
	return n, true
}

// checksumValid checks an ICMPv6 checksum the way a receiver does: the one's complement sum
// over the pseudo-header and the message, checksum included, is all ones.
func checksumValid(src, dst netip.Addr, m []byte) bool {
	var buf []byte
	s, d := src.As16(), dst.As16()
	buf = append(buf, s[:]...)
	buf = append(buf, d[:]...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(m)))
	buf = append(buf, 0, 0, 0, 58)
	buf = append(buf, m...)
	if len(buf)%2 == 1 {
		buf = append(buf, 0)
	}
	var sum uint32
	for i := 0; i < len(buf); i += 2 {
		sum += uint32(buf[i])<<8 | uint32(buf[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
}

// capture collects n frames that decode accepts from c, or fails after a few seconds.
func capture[T any](t *testing.T, c *packet.Conn, n int, decode func([]byte) (T, bool)) []T {
	t.Helper()
	var got []T
	buf := make([]byte, 2048)
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(got) < n {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("captured %d of %d frames: %v", len(got), n, err)
		}
		if f, ok := decode(append([]byte(nil), buf[:k]...)); ok {
			got = append(got, f)
		}
	}
	return got
}

func TestAnnounce(t *testing.T) {
	l := newLab(t)
	link, err := l.a.host(t).Link("a0")
	if err != nil {
		t.Fatal(err)
	}
	var arpCap, ip6Cap *packet.Conn
	l.b.run(t, func() {
		ifi, err := net.InterfaceByName("b0")
		if err != nil {
			t.Fatal(err)
		}
		if arpCap, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = arpCap.Close() })
		if ip6Cap, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IPV6, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ip6Cap.Close() })
	})
	ip := netip.MustParseAddr
	zeroMAC := net.HardwareAddr{0, 0, 0, 0, 0, 0}

	t.Run("gratuitous ARP", func(t *testing.T) {
		vips := []netip.Addr{ip("198.18.0.100"), ip("198.18.0.101")}
		if err := link.Announce(t.Context(), vips); err != nil {
			t.Fatal(err)
		}
		var want []arpFrame
		for range 2 { // two copies of the burst
			for _, v := range vips {
				want = append(want, arpFrame{
					EthDst: ethBroadcast, EthSrc: l.aMAC, EthType: unix.ETH_P_ARP,
					HType: 1, PType: unix.ETH_P_IP, HLen: 6, PLen: 4, Op: 1,
					SHA: l.aMAC, SPA: v, THA: zeroMAC, TPA: v,
				})
			}
		}
		got := capture(t, arpCap, len(want), decodeARP)
		if diff := cmp.Diff(want, got, netipOpt); diff != "" {
			t.Errorf("ARP frames (-want +got):\n%s", diff)
		}
	})

	na := func(target netip.Addr, flags uint8) naPacket {
		return naPacket{
			EthDst: ethAllNodes, EthSrc: l.aMAC, EthType: unix.ETH_P_IPV6,
			Version: 6, PayloadLen: 32, NextHeader: 58, HopLimit: 255,
			Src: l.aLinkLocal, Dst: ip("ff02::1"),
			Type: 136, Code: 0, ChecksumOK: true, Flags: flags, Target: target,
			OptType: 2, OptLen: 1, OptMAC: l.aMAC,
		}
	}
	t.Run("neighbour advertisement", func(t *testing.T) {
		vips := []netip.Addr{ip("2001:db8::100"), ip("2001:db8::101")}
		if err := link.Announce(t.Context(), vips); err != nil {
			t.Fatal(err)
		}
		var want []naPacket
		for range 2 {
			for _, v := range vips {
				want = append(want, na(v, naFlagOverr))
			}
		}
		got := capture(t, ip6Cap, len(want), decodeNA)
		if diff := cmp.Diff(want, got, netipOpt); diff != "" {
			t.Errorf("neighbour advertisements (-want +got):\n%s", diff)
		}
	})

	t.Run("neighbour advertisement from a router", func(t *testing.T) {
		l.a.sysctl(t, "net/ipv6/conf/a0/forwarding", "1")
		v := ip("2001:db8::100")
		if err := link.Announce(t.Context(), []netip.Addr{v}); err != nil {
			t.Fatal(err)
		}
		want := []naPacket{na(v, naFlagRouter|naFlagOverr), na(v, naFlagRouter|naFlagOverr)}
		got := capture(t, ip6Cap, len(want), decodeNA)
		if diff := cmp.Diff(want, got, netipOpt); diff != "" {
			t.Errorf("neighbour advertisements (-want +got):\n%s", diff)
		}
	})

	// A burst of count messages per address (vrrp.BurstAnnouncer): count copies of the
	// address list, back to back, and no more. The marker announced after it must be the next
	// frame.
	t.Run("burst count", func(t *testing.T) {
		b, ok := link.(vrrp.BurstAnnouncer)
		if !ok {
			t.Fatalf("%T is not a vrrp.BurstAnnouncer", link)
		}
		marker := ip("198.18.0.199")
		for _, count := range []int{1, 3, 16} {
			vips := []netip.Addr{ip("198.18.0.100"), ip("198.18.0.101")}
			if err := b.AnnounceBurst(t.Context(), vips, count); err != nil {
				t.Fatal(err)
			}
			if err := b.AnnounceBurst(t.Context(), []netip.Addr{marker}, 1); err != nil {
				t.Fatal(err)
			}
			var want []netip.Addr
			for range count {
				want = append(want, vips...)
			}
			want = append(want, marker)
			var got []netip.Addr
			for _, f := range capture(t, arpCap, len(want), decodeARP) {
				got = append(got, f.SPA)
			}
			if diff := cmp.Diff(want, got, netipOpt); diff != "" {
				t.Errorf("count %d: gratuitous ARPs (-want +got):\n%s", count, diff)
			}
		}
		v6 := ip("2001:db8::100")
		if err := b.AnnounceBurst(t.Context(), []netip.Addr{v6}, 3); err != nil {
			t.Fatal(err)
		}
		if err := b.AnnounceBurst(t.Context(), []netip.Addr{ip("2001:db8::199")}, 1); err != nil {
			t.Fatal(err)
		}
		var got []netip.Addr
		for _, n := range capture(t, ip6Cap, 4, decodeNA) {
			got = append(got, n.Target)
		}
		if diff := cmp.Diff([]netip.Addr{v6, v6, v6, ip("2001:db8::199")}, got, netipOpt); diff != "" {
			t.Errorf("count 3: neighbour advertisements (-want +got):\n%s", diff)
		}
		for _, count := range []int{0, -1} {
			if err := b.AnnounceBurst(t.Context(), []netip.Addr{marker}, count); err == nil {
				t.Errorf("AnnounceBurst with count %d succeeded", count)
			}
		}
	})

	t.Run("invalid", func(t *testing.T) {
		for _, a := range []netip.Addr{{}, ip("0.0.0.0"), ip("224.0.0.18"), ip("::ffff:198.18.0.1")} {
			if err := link.Announce(t.Context(), []netip.Addr{a}); err == nil {
				t.Errorf("Announce(%s) succeeded", a)
			}
		}
	})
}

// packetSockets returns the packet sockets open in ns (/proc/net/packet), by protocol.
func packetSockets(t *testing.T, ns *testNS) map[string]int {
	t.Helper()
	got := map[string]int{}
	ns.run(t, func() {
		b, err := os.ReadFile("/proc/thread-self/net/packet")
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if f := strings.Fields(line); i > 0 && len(f) > 3 {
				got[f[3]]++ // sk RefCnt Type Proto Iface ...
			}
		}
	})
	return got
}

// A Host sends every announcement through one packet socket that receives nothing (protocol
// 0), however many Announce calls run at once: a socket per call cost a takeover of 1000
// addresses hundreds of OS threads blocked in socket, bind and close.
func TestAnnounceOneSocket(t *testing.T) {
	l := newLab(t)
	h := l.a.host(t)
	link, err := h.Link("a0")
	if err != nil {
		t.Fatal(err)
	}
	if got := packetSockets(t, l.a); len(got) != 0 {
		t.Fatalf("packet sockets before any announcement: %v", got)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := range 1000 {
		wg.Go(func() {
			a := netip.AddrFrom4([4]byte{198, 18, 10 + byte(i/250), byte(i % 250)})
			if i%2 == 1 {
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			}
			errs <- link.Announce(t.Context(), []netip.Addr{a})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := packetSockets(t, l.a); len(got) != 1 || got["0000"] != 1 {
		t.Errorf("packet sockets after 1000 announcements: %v (by protocol), want one of protocol 0", got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := packetSockets(t, l.a); len(got) != 0 {
		t.Errorf("packet sockets after Close: %v", got)
	}
}
