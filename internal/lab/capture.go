package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// captureMax bounds the frames a Capture keeps; later ones are counted, not kept.
const captureMax = 8192

// captureSnap is how much of each frame a Capture keeps: the Ethernet, IP and VRRP / ARP /
// neighbour advertisement headers of the lab's traffic.
const captureSnap = 256

// Frame is an Ethernet frame a node sent into the switch, as its bridge port received it.
type Frame struct {
	// At is when the capture read it.
	At       time.Time
	Src, Dst net.HardwareAddr
	// EtherType is the frame's type (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP).
	EtherType uint16
	// Payload is what follows the Ethernet header, at most captureSnap bytes of the frame.
	Payload []byte
}

// Capture records the frames one node sends into the lab's switch, read from its bridge port
// in the switch namespace: what the network sees, whatever link of the node (its interface,
// a macvlan on it) sent them. Nothing in the node's namespace is touched.
type Capture struct {
	fd      int
	stop    atomic.Bool
	done    chan struct{}
	mu      sync.Mutex
	frames  []Frame
	dropped int
}

// Capture starts recording what n sends into the switch; Stop ends it and returns the frames.
// The lab stops it when it closes.
func (n *Node) Capture() (*Capture, error) {
	l := n.lab
	c := &Capture{fd: -1, done: make(chan struct{})}
	proto := htons(unix.ETH_P_ALL)
	err := inNetns(l.Switch, func() error {
		ifi, err := net.InterfaceByName(n.Port)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		// A receive timeout lets the reader see Stop without closing a descriptor it reads.
		tv := unix.NsecToTimeval((20 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on switch port %s: %w", n.Port, err)
	}
	go c.read()
	l.addCloser(func() { c.Stop() })
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *Capture) read() {
	defer close(c.done)
	defer unix.Close(c.fd)
	buf := make([]byte, 65536)
	for !c.stop.Load() {
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		// Frames the bridge sends out of the port to the node are PACKET_OUTGOING: only
		// what the node sent counts. Before the bind, the socket saw every link's frames.
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING || n < 14 {
			continue
		}
		if n > len(buf) {
			n = len(buf)
		}
		d := buf[:n]
		f := Frame{
			At: time.Now(), Dst: slices.Clone(d[0:6]), Src: slices.Clone(d[6:12]),
			EtherType: binary.BigEndian.Uint16(d[12:]), Payload: slices.Clone(d[14:min(n, captureSnap)]),
		}
		c.mu.Lock()
		if len(c.frames) < captureMax {
			c.frames = append(c.frames, f)
		} else {
			c.dropped++
		}
		c.mu.Unlock()
	}
}

// Frames returns what the capture has recorded so far.
func (c *Capture) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames)
}

// Stop ends the capture and returns every frame it kept. Calling it again returns them again.
func (c *Capture) Stop() []Frame {
	c.stop.Store(true)
	<-c.done
	return c.Frames()
}

// VRRP decodes f as a VRRP packet over IPv4 or IPv6 (IP protocol 112): its IP source, VRID and
// priority.
func (f Frame) VRRP() (src netip.Addr, vrid, priority uint8, ok bool) {
	p := f.Payload
	switch f.EtherType {
	case 0x0800:
		if len(p) < 20 || p[9] != 112 {
			return netip.Addr{}, 0, 0, false
		}
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || len(p) < ihl+3 {
			return netip.Addr{}, 0, 0, false
		}
		return netip.AddrFrom4([4]byte(p[12:16])), p[ihl+1], p[ihl+2], true
	case 0x86dd:
		if len(p) < 43 || p[6] != 112 {
			return netip.Addr{}, 0, 0, false
		}
		return netip.AddrFrom16([16]byte(p[8:24])), p[41], p[42], true
	}
	return netip.Addr{}, 0, 0, false
}

// Announcement decodes f as an announcement of an address: a gratuitous ARP (a request or
// reply whose sender and target addresses are the same) or an unsolicited neighbour
// advertisement (to all nodes, ff02::1); addr is the address announced.
func (f Frame) Announcement() (addr netip.Addr, ok bool) {
	p := f.Payload
	switch f.EtherType {
	case 0x0806:
		// Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4.
		if len(p) < 28 || binary.BigEndian.Uint16(p[0:]) != 1 || binary.BigEndian.Uint16(p[2:]) != 0x0800 || p[4] != 6 || p[5] != 4 {
			return netip.Addr{}, false
		}
		spa, tpa := netip.AddrFrom4([4]byte(p[14:18])), netip.AddrFrom4([4]byte(p[24:28]))
		return spa, spa == tpa
	case 0x86dd:
		// No extension headers: ICMPv6 (58) type 136 to ff02::1, the target at 8 after the
		// ICMPv6 type, code, checksum and flags.
		if len(p) < 40+24 || p[6] != 58 || p[40] != 136 {
			return netip.Addr{}, false
		}
		if netip.AddrFrom16([16]byte(p[24:40])) != netip.MustParseAddr("ff02::1") {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(p[48:64])), true
	}
	return netip.Addr{}, false
}
