//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

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

// packetConn is a vrrp.PacketConn on a raw IP socket bound to one interface. It follows the
// interface by name: when a link of that name is created again (a VLAN, bond or netplan
// rebuild gives it a new index), the socket is opened again on it, so that a pending
// ReadPacket, and every later send, go on over the new link. Without that, the socket would
// stay bound to the deleted link and the instance deaf and mute for ever.
type packetConn struct {
	h      *Host
	log    *slog.Logger
	ifname string
	src    netip.Addr
	// sendOnly: a virtual MAC interface's socket (listenSendOnly).
	sendOnly bool

	mu     sync.Mutex
	cur    *rawSocket
	closed bool
	// stop ends the link follower; done is closed when it has returned.
	stop context.CancelFunc
	done chan struct{}
}

// rawSocket is one raw socket on one link index.
type rawSocket struct {
	ifindex int
	ipc     *net.IPConn
	rc      syscall.RawConn
	// oob is the control message of every send: the source address and the interface.
	oob []byte
}

var _ vrrp.PacketConn = (*packetConn)(nil)

func (h *Host) listen(ifname string, src netip.Addr) (*packetConn, error) {
	return h.openConn(ifname, src, false)
}

// listenSendOnly opens a VRRP socket of ifname that only sends, from src, which need not be
// an address of ifname: the socket of a virtual MAC interface (vmac.go), whose adverts leave
// with the interface's MAC address from the parent's address. It joins no group, so the
// interface never reports one (IGMP, MLD), and a filter drops everything it would receive: the
// adverts are received on the parent.
func (h *Host) listenSendOnly(ifname string, src netip.Addr) (*packetConn, error) {
	return h.openConn(ifname, src, true)
}

func (h *Host) openConn(ifname string, src netip.Addr, sendOnly bool) (*packetConn, error) {
	if !src.IsValid() {
		return nil, errors.New("no source address")
	}
	src = src.Unmap().WithZone("")
	li, err := h.lookup(ifname)
	if err != nil {
		return nil, err
	}
	rs, err := h.openRaw(li, src, sendOnly)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &packetConn{h: h, log: h.log, ifname: li.name, src: src, sendOnly: sendOnly, cur: rs, stop: stop, done: make(chan struct{})}
	go c.followLink(ctx)
	return c, nil
}

// openRaw opens and sets up a raw VRRP socket on the link li (sendOnly: see listenSendOnly).
func (h *Host) openRaw(li linkInfo, src netip.Addr, sendOnly bool) (*rawSocket, error) {
	network := "ip4:112"
	if src.Is6() {
		network = "ip6:112"
	}
	var pc net.PacketConn
	err := h.do(func() error {
		var err error
		pc, err = net.ListenPacket(network, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open raw socket: %w", err)
	}
	rs := &rawSocket{ifindex: li.index, ipc: pc.(*net.IPConn)}
	if err := rs.setup(li.name, src, sendOnly); err != nil {
		_ = rs.ipc.Close()
		return nil, err
	}
	return rs, nil
}

// followLink opens the socket again when the interface is created again under its name. It
// runs until Close. A failed watch is restarted after a pause; a failed reopen is tried again
// at the link's next event (a new link sends several as it comes up).
func (c *packetConn) followLink(ctx context.Context) {
	defer close(c.done)
	for {
		c.mu.Lock()
		tr := indexTracker{name: c.ifname, index: c.cur.ifindex}
		c.mu.Unlock()
		reopen := func() {
			c.mu.Lock()
			same := c.cur.ifindex == tr.index
			c.mu.Unlock()
			if same {
				return
			}
			if err := c.reopen(tr.index); err != nil {
				c.log.Warn("opening the VRRP socket on the recreated interface; will retry", "interface", c.ifname, "err", err)
			}
		}
		resync := func() error {
			if li, err := c.h.lookup(c.ifname); err == nil {
				tr.index = li.index
				reopen()
			}
			return nil
		}
		err := c.h.follow(ctx, "link", c.ifname, []uint16{unix.RTM_NEWLINK}, resync,
			func(m syscall.NetlinkMessage) {
				if _, ok := tr.follow(c.h, m); ok {
					reopen()
				}
			})
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("interface watch of the VRRP socket stopped; restarting it", "interface", c.ifname, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(linkFollowRetry):
		}
	}
}

// rcvBuf is the receive buffer asked for each VRRP socket (the kernel doubles it for its own
// bookkeeping); memory is only used while packets wait.
const rcvBuf = 4 << 20

// linkFollowRetry is the pause before a failed link watch of a socket is started again.
const linkFollowRetry = time.Second

// reopen replaces the socket with one on the link index. The old one is closed, which ends a
// pending ReadPacket there; ReadPacket sees the swap and reads on from the new one.
func (c *packetConn) reopen(index int) error {
	rs, err := c.h.openRaw(linkInfo{index: index, name: c.ifname}, c.src, c.sendOnly)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return rs.ipc.Close()
	}
	old := c.cur
	c.cur = rs
	c.mu.Unlock()
	c.log.Info("VRRP socket opened again on the recreated interface", "interface", c.ifname, "index", index)
	return old.ipc.Close()
}

// socket returns the current raw socket, or net.ErrClosed once Close was called.
func (c *packetConn) socket() (*rawSocket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	return c.cur, nil
}

// setup sets the socket options. The VRRP checksum is left alone (no IPV6_CHECKSUM): the
// engine computes and checks it, and the v3 IPv4 pseudo-header variants need that anyway.
func (c *rawSocket) setup(ifname string, src netip.Addr, sendOnly bool) error {
	rc, err := c.ipc.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	c.rc = rc
	var serr error
	err = rc.Control(func(fd uintptr) {
		// By index: the name may already belong to a newer link than the one asked for. Kernels
		// before 5.0 lack SO_BINDTOIFINDEX; the name serves there.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, c.ifindex)
		if errors.Is(serr, unix.ENOPROTOOPT) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("bind socket to device: %w", err)
	}
	if sendOnly {
		if err := c.sendOnly(src); err != nil {
			return err
		}
	} else {
		// A receive buffer that rides out a burst: with the default (about 200 KiB, a few
		// hundred packets) a flood of forged adverts overflows it within tens of milliseconds
		// and the real master's adverts are lost with the rest, making a backup take over.
		// SO_RCVBUFFORCE (CAP_NET_ADMIN, which the agent has) goes past net.core.rmem_max;
		// SO_RCVBUF is the fallback, capped by it.
		_ = rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
			}
		})
	}
	ifi := &net.Interface{Index: c.ifindex, Name: ifname}
	type step struct {
		what string
		fn   func() error
	}
	var steps []step
	if src.Is4() {
		p := ipv4.NewPacketConn(c.ipc)
		steps = []step{
			{"set multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
			{"set multicast TTL", func() error { return p.SetMulticastTTL(255) }},
			{"set TTL", func() error { return p.SetTTL(255) }},
			{"disable multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
			{"join " + groupV4.String(), func() error {
				if sendOnly {
					return nil
				}
				return p.JoinGroup(ifi, &net.IPAddr{IP: groupV4.AsSlice()})
			}},
			{"ask for control messages", func() error {
				return p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true)
			}},
		}
		cm := &ipv4.ControlMessage{IfIndex: c.ifindex}
		if !src.IsUnspecified() {
			cm.Src = src.AsSlice()
		}
		c.oob = cm.Marshal()
	} else {
		p := ipv6.NewPacketConn(c.ipc)
		steps = []step{
			{"set multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
			{"set multicast hop limit", func() error { return p.SetMulticastHopLimit(255) }},
			{"set hop limit", func() error { return p.SetHopLimit(255) }},
			{"disable multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
			{"join " + groupV6.String(), func() error {
				if sendOnly {
					return nil
				}
				return p.JoinGroup(ifi, &net.IPAddr{IP: groupV6.AsSlice()})
			}},
			{"ask for control messages", func() error {
				return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
			}},
		}
		cm := &ipv6.ControlMessage{IfIndex: c.ifindex, HopLimit: 255}
		if !src.IsUnspecified() {
			cm.Src = src.AsSlice()
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

// sendOnly makes the socket one that only sends (listenSendOnly): a filter that drops every
// packet before it is queued, and the freedom to send from src although it is not an address
// of the socket's interface (IP_FREEBIND / IPV6_FREEBIND: the kernel otherwise refuses an IPv6
// link-local source that is not on the sending interface, and the parent's link-local address
// must not be put on the macvlan, which would answer neighbour solicitations for it).
func (c *rawSocket) sendOnly(src netip.Addr) error {
	// One instruction: return 0 (accept no byte of the packet).
	drop := []unix.SockFilter{{Code: 0x06, K: 0}}
	prog := unix.SockFprog{Len: uint16(len(drop)), Filter: &drop[0]}
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); serr != nil {
			serr = fmt.Errorf("attach the drop filter: %w", serr)
			return
		}
		if src.Is4() {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		} else if serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1); errors.Is(serr, unix.ENOPROTOOPT) {
			// Before Linux 4.15; IPV6_TRANSPARENT (CAP_NET_ADMIN) lifts the same check.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
		}
		if serr != nil {
			serr = fmt.Errorf("set freebind: %w", serr)
		}
	})
	if err == nil {
		err = serr
	}
	return err
}

// ReadPacket returns the next VRRP packet received on the interface, multicast or unicast,
// with the IP header removed. Packets that cannot be parsed are skipped.
func (c *packetConn) ReadPacket(buf []byte) (vrrp.Packet, error) {
	oob := make([]byte, oobSize)
	for {
		rs, err := c.socket()
		if err != nil {
			return vrrp.Packet{}, fmt.Errorf("read vrrp packet on %s: %w", c.ifname, err)
		}
		var (
			n, oobn, flags int
			from           unix.Sockaddr
			rerr           error
		)
		err = rs.rc.Read(func(fd uintptr) bool {
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
			if cur, cerr := c.socket(); cerr == nil && cur != rs {
				continue // replaced by reopen: read on from the new socket
			}
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
			sa6.ZoneId = 1 // the current socket's link index, set below
		}
		sa = sa6
	default:
		return fmt.Errorf("destination family differs from source %s", c.src)
	}
	rs, err := c.socket()
	if err != nil {
		return err
	}
	if sa6, ok := sa.(*unix.SockaddrInet6); ok && sa6.ZoneId != 0 {
		sa6.ZoneId = uint32(rs.ifindex)
	}
	var serr error
	err = rs.rc.Write(func(fd uintptr) bool {
		for {
			serr = unix.Sendmsg(int(fd), b, rs.oob, sa, 0)
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
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	rs := c.cur
	c.mu.Unlock()
	c.stop()
	<-c.done
	if err := rs.ipc.Close(); err != nil {
		return fmt.Errorf("close vrrp socket on %s: %w", c.ifname, err)
	}
	return nil
}
