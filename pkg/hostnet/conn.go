package hostnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// protoVRRP is the IP protocol number of VRRP (RFC 5798 §5.1.1.4, §5.1.2.4).
const protoVRRP = 112

// The VRRP multicast groups (RFC 5798 §5.1.1.2, §5.1.2.2).
var (
	groupV4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	groupV6 = netip.MustParseAddr("ff02::12")
)

// oobSize holds every control message asked for: TTL or hop limit and packet info.
const oobSize = 128

// packetConn is a vrrp.PacketConn on a raw IP socket bound to one interface.
type packetConn struct {
	log     *slog.Logger
	ifname  string
	ifindex int
	src     netip.Addr
	ipc     *net.IPConn
	rc      syscall.RawConn
	// oob is the control message of every send: the source address and the interface.
	oob []byte
}

var _ vrrp.PacketConn = (*packetConn)(nil)

func (h *Host) listen(ifname string, src netip.Addr) (*packetConn, error) {
	if !src.IsValid() {
		return nil, errors.New("no source address")
	}
	src = src.Unmap().WithZone("")
	li, err := h.lookup(ifname)
	if err != nil {
		return nil, err
	}
	network := "ip4:112"
	if src.Is6() {
		network = "ip6:112"
	}
	var pc net.PacketConn
	err = h.do(func() error {
		var err error
		pc, err = net.ListenPacket(network, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open raw socket: %w", err)
	}
	c := &packetConn{log: h.log, ifname: li.name, ifindex: li.index, src: src, ipc: pc.(*net.IPConn)}
	if err := c.setup(); err != nil {
		_ = c.ipc.Close()
		return nil, err
	}
	return c, nil
}

// setup sets the socket options. The VRRP checksum is left alone (no IPV6_CHECKSUM): the
// engine computes and checks it, and the v3 IPv4 pseudo-header variants need that anyway.
func (c *packetConn) setup() error {
	rc, err := c.ipc.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	c.rc = rc
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, c.ifname)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("bind socket to device: %w", err)
	}
	ifi := &net.Interface{Index: c.ifindex, Name: c.ifname}
	type step struct {
		what string
		fn   func() error
	}
	var steps []step
	if c.src.Is4() {
		p := ipv4.NewPacketConn(c.ipc)
		steps = []step{
			{"set multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
			{"set multicast TTL", func() error { return p.SetMulticastTTL(255) }},
			{"set TTL", func() error { return p.SetTTL(255) }},
			{"disable multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
			{"join " + groupV4.String(), func() error { return p.JoinGroup(ifi, &net.IPAddr{IP: groupV4.AsSlice()}) }},
			{"ask for control messages", func() error {
				return p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true)
			}},
		}
		cm := &ipv4.ControlMessage{IfIndex: c.ifindex}
		if !c.src.IsUnspecified() {
			cm.Src = c.src.AsSlice()
		}
		c.oob = cm.Marshal()
	} else {
		p := ipv6.NewPacketConn(c.ipc)
		steps = []step{
			{"set multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
			{"set multicast hop limit", func() error { return p.SetMulticastHopLimit(255) }},
			{"set hop limit", func() error { return p.SetHopLimit(255) }},
			{"disable multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
			{"join " + groupV6.String(), func() error { return p.JoinGroup(ifi, &net.IPAddr{IP: groupV6.AsSlice()}) }},
			{"ask for control messages", func() error {
				return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
			}},
		}
		cm := &ipv6.ControlMessage{IfIndex: c.ifindex, HopLimit: 255}
		if !c.src.IsUnspecified() {
			cm.Src = c.src.AsSlice()
		}
		c.oob = cm.Marshal()
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// ReadPacket returns the next VRRP packet received on the interface, multicast or unicast,
// with the IP header removed. Packets that cannot be parsed are skipped.
func (c *packetConn) ReadPacket(buf []byte) (vrrp.Packet, error) {
	oob := make([]byte, oobSize)
	for {
		var (
			n, oobn, flags int
			from           unix.Sockaddr
			rerr           error
		)
		err := c.rc.Read(func(fd uintptr) bool {
			for {
				n, oobn, flags, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
				if rerr != unix.EINTR {
					break
				}
			}
			return rerr != unix.EAGAIN
		})
		if err == nil && rerr != nil {
			err = os.NewSyscallError("recvmsg", rerr)
		}
		if err != nil {
			return vrrp.Packet{}, fmt.Errorf("read vrrp packet on %s: %w", c.ifname, err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			c.log.Debug("dropping a packet larger than the buffer", "interface", c.ifname, "buffer", len(buf))
			continue
		}
		var p vrrp.Packet
		if c.src.Is4() {
			p, err = parseIPv4(buf[:n])
		} else {
			p, err = parseIPv6(buf[:n], from)
		}
		if err != nil {
			c.log.Debug("dropping a malformed packet", "interface", c.ifname, "err", err)
			continue
		}
		parseControl(&p, oob[:oobn])
		return p, nil
	}
}

// parseIPv4 splits what an IPv4 raw socket returns: the IP header, which Linux keeps (with
// its total length in network order), and the VRRP message.
func parseIPv4(b []byte) (vrrp.Packet, error) {
	const minHeader = 20
	if len(b) < minHeader {
		return vrrp.Packet{}, fmt.Errorf("IPv4 packet of %d bytes", len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return vrrp.Packet{}, fmt.Errorf("IP version %d on an IPv4 socket", v)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < minHeader || ihl > len(b) {
		return vrrp.Packet{}, fmt.Errorf("IPv4 header length %d in a %d-byte packet", ihl, len(b))
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < ihl || total > len(b) {
		return vrrp.Packet{}, fmt.Errorf("IPv4 total length %d with a %d-byte header in a %d-byte packet", total, ihl, len(b))
	}
	if b[9] != protoVRRP {
		return vrrp.Packet{}, fmt.Errorf("IP protocol %d", b[9])
	}
	return vrrp.Packet{
		Src:  netip.AddrFrom4([4]byte(b[12:16])),
		Dst:  netip.AddrFrom4([4]byte(b[16:20])),
		TTL:  int(b[8]),
		Data: b[ihl:total],
	}, nil
}

// parseIPv6 builds the packet of an IPv6 raw socket, which returns only the payload; the
// hop limit and destination come from control messages.
func parseIPv6(b []byte, from unix.Sockaddr) (vrrp.Packet, error) {
	sa, ok := from.(*unix.SockaddrInet6)
	if !ok {
		return vrrp.Packet{}, fmt.Errorf("source address %T on an IPv6 socket", from)
	}
	return vrrp.Packet{Src: netip.AddrFrom16(sa.Addr), TTL: -1, Data: b}, nil
}

// parseControl fills what the control messages say: the receiving interface, and for IPv6 the
// destination and hop limit. For IPv4 the header already gave them.
func parseControl(p *vrrp.Packet, oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
			p.IfIndex = int(int32(binary.NativeEndian.Uint32(m.Data[0:4])))
			if !p.Dst.IsValid() {
				p.Dst = netip.AddrFrom4([4]byte(m.Data[8:12]))
			}
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_TTL && len(m.Data) >= 4:
			if p.TTL < 0 {
				p.TTL = int(binary.NativeEndian.Uint32(m.Data[0:4]))
			}
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }
			p.Dst = netip.AddrFrom16([16]byte(m.Data[0:16]))
			p.IfIndex = int(int32(binary.NativeEndian.Uint32(m.Data[16:20])))
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
			p.TTL = int(int32(binary.NativeEndian.Uint32(m.Data[0:4])))
		}
	}
}

// WriteTo sends b, a complete VRRP message, to dst from the source given to Listen, out of the
// socket's interface with TTL / hop limit 255.
func (c *packetConn) WriteTo(b []byte, dst netip.Addr) error {
	if err := c.writeTo(b, dst); err != nil {
		return fmt.Errorf("send vrrp packet on %s to %s: %w", c.ifname, dst, err)
	}
	return nil
}

func (c *packetConn) writeTo(b []byte, dst netip.Addr) error {
	if len(b) == 0 {
		return errors.New("empty message")
	}
	dst = dst.Unmap().WithZone("")
	var sa unix.Sockaddr
	switch {
	case !dst.IsValid() || dst.IsUnspecified():
		return errors.New("no destination")
	case c.src.Is4() && dst.Is4():
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	case c.src.Is6() && dst.Is6():
		sa6 := &unix.SockaddrInet6{Addr: dst.As16()}
		if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast() {
			sa6.ZoneId = uint32(c.ifindex)
		}
		sa = sa6
	default:
		return fmt.Errorf("destination family differs from source %s", c.src)
	}
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			serr = unix.Sendmsg(int(fd), b, c.oob, sa, 0)
			if serr != unix.EINTR {
				break
			}
		}
		return serr != unix.EAGAIN
	})
	if err == nil && serr != nil {
		err = os.NewSyscallError("sendmsg", serr)
	}
	return err
}

// Close closes the socket; a pending ReadPacket returns an error wrapping net.ErrClosed.
func (c *packetConn) Close() error {
	if err := c.ipc.Close(); err != nil {
		return fmt.Errorf("close vrrp socket on %s: %w", c.ifname, err)
	}
	return nil
}
