package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// forger sends hand-made IPv4 VRRP packets (IP protocol 112) onto a lab LAN: any source
// address, TTL, destination and payload, which no VRRP speaker would send. It is a raw socket
// with IP_HDRINCL opened inside a lab namespace (the client's, or a node that runs no
// speaker), so the packets leave that namespace's lab link like any other host's and the host's
// own network never sees them. It only ever sends from and to lab addresses (lab.Net4) and the
// VRRP group 224.0.0.18.
type forger struct {
	node *lab.Node
	fd   int
}

// newForger opens the forger's socket in n's namespace. The socket stays there after the
// thread that opened it leaves (a socket belongs to the namespace it was created in).
func newForger(n *lab.Node) (*forger, error) {
	fd := -1
	err := n.InNetns(func() error {
		// IPPROTO_RAW: a send-only raw socket (it receives nothing), with IP_HDRINCL implied;
		// set explicitly anyway, so the header below is used as written whatever the kernel.
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
			unix.Close(s)
			return fmt.Errorf("IP_HDRINCL: %w", err)
		}
		// Bound to the lab link: the multicast group has no route in the namespace, and the
		// packets must leave by the LAN whatever the destination.
		if err := unix.BindToDevice(s, n.Interface); err != nil {
			unix.Close(s)
			return fmt.Errorf("SO_BINDTODEVICE %s: %w", n.Interface, err)
		}
		fd = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("forger in %s: %w", n, err)
	}
	return &forger{node: n, fd: fd}, nil
}

// Close closes the socket.
func (f *forger) Close() error { return unix.Close(f.fd) }

// forgedPacket is one whole IPv4 packet (header included) and where it goes.
type forgedPacket struct {
	dst  netip.Addr
	data []byte
}

// allowedForge reports whether a is an address the forger may use: a lab address or the VRRP
// IPv4 group.
func forgeAllowed(a netip.Addr) bool {
	return a.Is4() && (lab.Net4.Contains(a) || a == packet.MulticastIPv4)
}

// ipPacket wraps payload in an IPv4 header (protocol 112) from src to dst with ttl. The kernel
// fills in the header checksum and, being zero, the identification (raw(7), IP_HDRINCL).
func forgeIPv4(src, dst netip.Addr, ttl int, payload []byte) (forgedPacket, error) {
	if !forgeAllowed(src) || !forgeAllowed(dst) || src == packet.MulticastIPv4 {
		return forgedPacket{}, fmt.Errorf("forged packet %s -> %s: only lab addresses (%s) and %s may be used",
			src, dst, lab.Net4, packet.MulticastIPv4)
	}
	if ttl < 1 || ttl > 255 {
		return forgedPacket{}, fmt.Errorf("forged packet TTL %d: want 1..255", ttl)
	}
	h := ipv4.Header{
		Version:  ipv4.Version,
		Len:      ipv4.HeaderLen,
		TOS:      0xc0, // internetwork control, as VRRP speakers send
		TotalLen: ipv4.HeaderLen + len(payload),
		TTL:      ttl,
		Protocol: packet.Protocol,
		Src:      src.AsSlice(),
		Dst:      dst.AsSlice(),
	}
	b, err := h.Marshal()
	if err != nil {
		return forgedPacket{}, fmt.Errorf("IPv4 header: %w", err)
	}
	return forgedPacket{dst: dst, data: append(b, payload...)}, nil
}

// forgeAdverts returns adv from src to each of dsts with ttl: a well-formed VRRP message,
// checksummed as keepalived and kube-vrrp's default expect (IPv4 pseudo-header), so that only
// what the test chose (TTL, VRID, priority, addresses) can make a receiver refuse it.
func forgeAdverts(adv packet.Advertisement, src netip.Addr, ttl int, dsts ...netip.Addr) ([]forgedPacket, error) {
	var out []forgedPacket
	for _, dst := range dsts {
		msg, err := adv.Marshal(src, dst, packet.ChecksumPseudoHeader)
		if err != nil {
			return nil, fmt.Errorf("advert to %s: %w", dst, err)
		}
		p, err := forgeIPv4(src, dst, ttl, msg)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// forgeJunk returns n packets of protocol 112 from src to dst with ttl whose payloads are
// garbage of 1 to 80 bytes. Most start like a VRRPv3 advert for vrid (version 3, type 1, the
// VRID byte), so a receiver that sorts by VRID before parsing hands them to the instance and
// parses them in full; the checksum, lengths and counts are random. The rest are random
// from the first byte. The sequence is fixed by seed.
func forgeJunk(src, dst netip.Addr, ttl int, vrid uint8, n int, seed uint64) ([]forgedPacket, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]forgedPacket, 0, n)
	for i := range n {
		b := make([]byte, 1+rng.IntN(80))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		if i%4 != 0 && len(b) >= 2 {
			b[0], b[1] = 0x31, vrid
		}
		p, err := forgeIPv4(src, dst, ttl, b)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// forgeStats is what one send run did.
type forgeStats struct {
	// Sent counts packets the kernel took; Failed those it refused (Err is the first error).
	Sent, Failed int
	Err          error
	// Start and End bound the run: End is just after the last send.
	Start, End time.Time
	// PerDst counts the packets sent to each destination.
	PerDst map[netip.Addr]int
}

// Rate is the achieved send rate in packets per second.
func (s forgeStats) Rate() float64 {
	d := s.End.Sub(s.Start).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(s.Sent) / d
}

func (s forgeStats) String() string {
	r := fmt.Sprintf("%d packets in %v (%.0f/s)", s.Sent, s.End.Sub(s.Start).Round(time.Millisecond), s.Rate())
	if s.Failed > 0 {
		r += fmt.Sprintf(", %d refused (%v)", s.Failed, s.Err)
	}
	return r
}

// send sends pkts round robin at rate packets per second (all destinations together) for d,
// or until ctx ends. It paces by the clock, not by sleeping a fixed time per packet: each
// wake-up sends every packet that is due, so the average rate holds even where a sleep lasts
// longer than asked (a flood of 10 000/s is 100 µs apart, below a timer's usual slack).
func (f *forger) send(ctx context.Context, pkts []forgedPacket, rate float64, d time.Duration) forgeStats {
	st := forgeStats{PerDst: map[netip.Addr]int{}, Start: time.Now()}
	if len(pkts) == 0 || rate <= 0 {
		st.Err, st.End = errors.New("nothing to send"), time.Now()
		return st
	}
	sas := make([]unix.SockaddrInet4, len(pkts))
	for i, p := range pkts {
		sas[i] = unix.SockaddrInet4{Addr: p.dst.As4()}
	}
	// total is the number of slots in [0, d), one every 1/rate from the start: all are sent,
	// and when the forger itself stalled past the end (a loaded machine) the ones it missed go
	// at once, as they would after a stall within it.
	total := int(math.Ceil(rate*d.Seconds() - 1e-9))
	next := 0 // index of the next packet to send, counting from the start
	for {
		el := time.Since(st.Start)
		if ctx.Err() != nil || next >= total {
			break
		}
		due := min(int(rate*el.Seconds())+1, total)
		for ; next < due; next++ {
			i := next % len(pkts)
			if err := unix.Sendto(f.fd, pkts[i].data, 0, &sas[i]); err != nil {
				st.Failed++
				if st.Err == nil {
					st.Err = fmt.Errorf("sendto %s: %w", pkts[i].dst, err)
				}
				continue
			}
			st.Sent++
			st.PerDst[pkts[i].dst]++
		}
		wake := st.Start.Add(time.Duration(float64(next) / rate * float64(time.Second)))
		time.Sleep(max(min(time.Until(wake), d-time.Since(st.Start)), 0))
	}
	st.End = time.Now()
	return st
}

// TestForger checks the forger itself: what leaves the client's namespace arrives at a node
// exactly as forged (source, destination, TTL, payload), to the node's address and to the
// group, and the pacing holds a flood's rate.
func TestForger(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 1, ResponderPort: -1})
	n1 := l.Node(1)
	f, err := newForger(l.Client())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })

	// A receiver in n1: every protocol-112 packet with its IP header, the group joined.
	var rc *ipv4.RawConn
	err = n1.InNetns(func() error {
		c, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		if rc, err = ipv4.NewRawConn(c); err != nil {
			c.Close()
			return err
		}
		ifi, err := net.InterfaceByName(n1.Interface)
		if err != nil {
			return err
		}
		return rc.JoinGroup(ifi, &net.IPAddr{IP: packet.MulticastIPv4.AsSlice()})
	})
	if err != nil {
		t.Fatalf("receiver in %s: %v", n1, err)
	}
	t.Cleanup(func() { _ = rc.Close() })

	src := netip.MustParseAddr("198.18.0.91")
	adv := packet.Advertisement{Version: 3, VRID: 51, Priority: 254, Interval: 100 * time.Millisecond,
		Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.100")}}
	pkts, err := forgeAdverts(adv, src, 64, n1.IPv4, packet.MulticastIPv4)
	if err != nil {
		t.Fatal(err)
	}
	st := f.send(t.Context(), pkts, 20, 190*time.Millisecond) // 4 packets, 2 per destination
	if st.Sent != 4 || st.Failed != 0 {
		t.Fatalf("sent %s, want 4 packets", st)
	}
	seen := map[netip.Addr]int{}
	buf := make([]byte, 1500)
	for len(seen) < 2 || seen[n1.IPv4]+seen[packet.MulticastIPv4] < 4 {
		if err := rc.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		h, p, _, err := rc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("received %v of the forged adverts: %v", seen, err)
		}
		hs, _ := netip.AddrFromSlice(h.Src.To4())
		hd, _ := netip.AddrFromSlice(h.Dst.To4())
		if hs != src {
			continue // not ours
		}
		got, err := packet.Parse(p, hs, hd)
		if err != nil {
			t.Fatalf("forged advert to %s does not parse at the receiver: %v", hd, err)
		}
		if h.TTL != 64 || got.VRID != 51 || got.Priority != 254 || !slices.Equal(got.Addresses, adv.Addresses) {
			t.Fatalf("received TTL %d %+v, want TTL 64 and %+v", h.TTL, got, adv)
		}
		seen[hd]++
	}

	// Pacing: 5 000/s for 300 ms sends 1 500 (the last one may fall just after the end).
	junk, err := forgeJunk(src, n1.IPv4, 255, 51, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	st = f.send(t.Context(), junk, 5000, 300*time.Millisecond)
	t.Logf("forger at 5000/s: %s", st)
	if st.Failed > 0 || st.Sent < 1450 || st.Sent > 1501 {
		t.Errorf("forger at 5000/s for 300ms: %s, want about 1500 sent", st)
	}
	// Only lab addresses.
	if _, err := forgeIPv4(netip.MustParseAddr("192.0.2.1"), n1.IPv4, 255, nil); err == nil {
		t.Error("the forger accepted a source outside the lab")
	}
}
