//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var _ vrrp.BurstAnnouncer = (*link)(nil)

var (
	ethBroadcast   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodes       = netip.MustParseAddr("ff02::1")
	ethAllNodes    = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	errNotEthernet = errors.New("not an Ethernet link")
)

// Announce is AnnounceBurst with vrrp.DefaultAnnounceCount messages per address.
func (l *link) Announce(ctx context.Context, addrs []netip.Addr) error {
	return l.AnnounceBurst(ctx, addrs, vrrp.DefaultAnnounceCount)
}

// AnnounceBurst sends, count times back to back, a gratuitous ARP request for each IPv4
// address and an unsolicited neighbour advertisement (Override set, Solicited clear, Router
// set when the link forwards IPv6) to ff02::1 for each IPv6 address, with the link's MAC
// address: the whole list once, then again, with no gap between copies (as keepalived's
// default garp_interval 0). Links without an Ethernet address (tunnels, WireGuard) have no
// neighbour caches to update: AnnounceBurst does nothing there.
func (l *link) AnnounceBurst(ctx context.Context, addrs []netip.Addr, count int) error {
	if err := l.announce(ctx, addrs, count); err != nil {
		return fmt.Errorf("announce addresses on %s: %w", l.name, err)
	}
	return nil
}

func (l *link) announce(ctx context.Context, addrs []netip.Addr, count int) error {
	if count < 1 {
		return fmt.Errorf("%d messages per address, want at least 1", count)
	}
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		a = a.WithZone("")
		switch {
		case !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Is4In6():
			return fmt.Errorf("cannot announce %s", a)
		case a.Is4():
			v4 = append(v4, a)
		default:
			v6 = append(v6, a)
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	li, err := l.h.lookup(l.name)
	if err != nil {
		return err
	}
	if len(li.mac) != 6 {
		l.h.log.Debug("not announcing on a link without an Ethernet address", "interface", l.name)
		return nil
	}
	var frames [][]byte
	for _, a := range v4 {
		frames = append(frames, garpFrame(li.mac, a))
	}
	if len(v6) > 0 {
		src, err := l.linkLocal(li.index)
		if err != nil {
			return err
		}
		router := l.forwardsIPv6(li.name)
		for _, a := range v6 {
			from := src
			if !from.IsValid() {
				// No usable link-local address (addr_gen_mode none, DAD pending): send
				// from the address itself, which RFC 4861 §7.2.2 allows as it is assigned to
				// the interface.
				from = a
			}
			frames = append(frames, naFrame(li.mac, from, a, router))
		}
	}
	return l.sendFrames(ctx, li, v4, frames, count)
}

// sendFrames sends the frames (ARP first, then NA) count times out of the link, through the
// link's packet socket.
func (l *link) sendFrames(ctx context.Context, li linkInfo, v4 []netip.Addr, frames [][]byte, count int) error {
	for range count {
		for i, f := range frames {
			if err := ctx.Err(); err != nil {
				return err
			}
			dst, proto, what := ethBroadcast, uint16(unix.ETH_P_ARP), "gratuitous ARP"
			if i >= len(v4) {
				dst, proto, what = ethAllNodes, unix.ETH_P_IPV6, "neighbour advertisement"
			}
			if err := l.frames.send(ctx, l.h, li.index, dst, proto, f); err != nil {
				return fmt.Errorf("send %s: %w", what, err)
			}
		}
	}
	return nil
}

// linkLocal returns a usable (not tentative, not failed) link-local address of the link, or
// the zero Addr if there is none.
func (l *link) linkLocal(index int) (netip.Addr, error) {
	rt, err := l.h.handles()
	if err != nil {
		return netip.Addr{}, err
	}
	have, err := rt.addrs(index)
	if err != nil {
		return netip.Addr{}, err
	}
	i := slices.IndexFunc(have, func(a kernelAddr) bool {
		return a.Prefix.Addr().Is6() && a.Prefix.Addr().IsLinkLocalUnicast() &&
			a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0
	})
	if i < 0 {
		return netip.Addr{}, nil
	}
	return have[i].Prefix.Addr(), nil
}

// forwardsIPv6 reports whether the link forwards IPv6, in which case its advertisements carry
// the Router flag, as keepalived's do: clearing it would make neighbours drop this node from
// their default router lists (RFC 4861 §7.2.5).
func (l *link) forwardsIPv6(name string) bool {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return false
	}
	var b []byte
	err := l.h.do(func() error {
		var err error
		b, err = os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/forwarding")
		return err
	})
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// garpFrame is an Ethernet frame carrying a gratuitous ARP request for ip (RFC 5227 §2.3
// announcement: sender and target protocol address ip, target hardware address zero),
// padded to the Ethernet minimum.
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 60)
	copy(b[0:6], ethBroadcast)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], unix.ETH_P_ARP)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)             // hardware type: Ethernet
	binary.BigEndian.PutUint16(a[2:4], unix.ETH_P_IP) // protocol type
	a[4], a[5] = 6, 4                                 // address lengths
	binary.BigEndian.PutUint16(a[6:8], 1)             // operation: request
	copy(a[8:14], mac)                                // sender hardware address
	copy(a[14:18], ip.AsSlice())                      // sender protocol address
	copy(a[24:28], ip.AsSlice())                      // target protocol address
	return b
}

// ICMPv6 neighbour advertisement (RFC 4861 §4.4).
const (
	icmpv6NA      = 136
	naFlagRouter  = 0x80
	naFlagSolicit = 0x40
	naFlagOverr   = 0x20
	naLen         = 24 + 8 // message and one target link-layer address option
)

// naFrame is an Ethernet frame carrying an unsolicited neighbour advertisement for target
// from src to all nodes: Override set, Solicited clear, hop limit 255, target link-layer
// address option mac.
func naFrame(mac net.HardwareAddr, src, target netip.Addr, router bool) []byte {
	b := make([]byte, 14+40+naLen)
	copy(b[0:6], ethAllNodes)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], unix.ETH_P_IPV6)
	ip := b[14:54]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], naLen)
	ip[6] = unix.IPPROTO_ICMPV6
	ip[7] = 255 // RFC 4861 §7.1.2: receivers drop anything else
	s, d := src.As16(), allNodes.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	m := b[54:]
	m[0] = icmpv6NA
	m[4] = naFlagOverr
	if router {
		m[4] |= naFlagRouter
	}
	t := target.As16()
	copy(m[8:24], t[:])
	m[24], m[25] = 2, 1 // option: target link-layer address, 8 bytes
	copy(m[26:32], mac)
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(src, allNodes, m))
	return b
}

// icmpv6Checksum is the checksum of an ICMPv6 message m (checksum field zero) with the IPv6
// pseudo-header (RFC 8200 §8.1).
func icmpv6Checksum(src, dst netip.Addr, m []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var tail [8]byte
	binary.BigEndian.PutUint32(tail[0:4], uint32(len(m)))
	tail[7] = unix.IPPROTO_ICMPV6
	add(tail[:])
	add(m)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
