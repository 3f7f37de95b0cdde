package interop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// capture is tcpdump running in a lab node, writing every VRRP packet its lab link sees to a
// pcap file.
type capture struct {
	node *lab.Node
	proc *lab.Proc
	path string
}

// startCapture starts tcpdump on n's lab link for IP protocol 112 (IPv4 and IPv6) and waits
// until it listens. --immediate-mode hands each packet to tcpdump as it comes (otherwise the
// kernel holds them in its ring until a block fills or a timeout, and SIGINT loses them), -U
// writes it out at once, and -Z root keeps the privileges to write into the node's directory.
func startCapture(t *testing.T, n *lab.Node) *capture {
	t.Helper()
	path := filepath.Join(n.Dir, fmt.Sprintf("vrrp-%d.pcap", time.Now().UnixNano()))
	p := n.Start(t.Context(), "tcpdump", "tcpdump", "-i", n.Interface, "-n", "--immediate-mode", "-U", "-Z", "root", "-s", "512",
		"-w", path, "ip proto 112 or ip6 proto 112")
	if err := p.WaitLog("listening on", 0, 10*time.Second); err != nil {
		t.Fatalf("tcpdump in %s: %v\n%s", n.Name, err, p.Tail(10))
	}
	return &capture{node: n, proc: p, path: path}
}

// stop ends the capture and returns what it saw.
func (c *capture) stop(t *testing.T) []frame {
	t.Helper()
	_ = c.proc.Signal(syscall.SIGINT) // tcpdump flushes and exits on SIGINT
	if err := c.proc.Wait(5 * time.Second); errors.Is(err, lab.ErrRunning) {
		c.proc.Kill()
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		t.Fatalf("capture in %s: %v", c.node.Name, err)
	}
	frames, err := parsePcap(b)
	if err != nil {
		t.Fatalf("capture in %s: %v", c.node.Name, err)
	}
	return frames
}

// frame is one captured VRRP packet, decoded with kube-vrrp's codec.
type frame struct {
	At       time.Time
	Src, Dst netip.Addr
	TTL      uint8  // IPv4 TTL or IPv6 hop limit
	Raw      []byte // the VRRP message (after the IP header)
	Adv      *packet.Advertisement
	Err      error // what packet.Parse said
}

func (f frame) String() string {
	if f.Err != nil {
		return fmt.Sprintf("%s %s > %s ttl %d: %v", f.At.Format("15:04:05.000"), f.Src, f.Dst, f.TTL, f.Err)
	}
	a := f.Adv
	return fmt.Sprintf("%s %s > %s ttl %d: v%d vrid %d prio %d int %v addrs %v auth %d csum %s",
		f.At.Format("15:04:05.000"), f.Src, f.Dst, f.TTL, a.Version, a.VRID, a.Priority, a.Interval, a.Addresses,
		a.AuthType, checksumForm(f))
}

// checksumForm tells which checksum f carries, by encoding the decoded advert again with
// kube-vrrp's codec: "v2" (RFC 3768: the message only) and "ipv6" (RFC 5798: with the IPv6
// pseudo-header) have one form each; VRRPv3 over IPv4 is "pseudo-header" (RFC 5798 as
// keepalived reads it) or "rfc9568" (the message only, RFC 9568 §5.2.8). "other" means
// that no re-encoding gives the captured bytes.
func checksumForm(f frame) string {
	if f.Adv == nil {
		return "undecoded"
	}
	for _, m := range []struct {
		mode packet.ChecksumMode
		name string
	}{{packet.ChecksumPseudoHeader, "pseudo-header"}, {packet.ChecksumRFC9568, "rfc9568"}} {
		b, err := f.Adv.Marshal(f.Src, f.Dst, m.mode)
		if err != nil || !bytes.Equal(b, f.Raw) {
			continue
		}
		switch {
		case f.Adv.Version == 2:
			return "v2"
		case f.Src.Is6():
			return "ipv6"
		}
		return m.name
	}
	return "other"
}

// from returns the frames sent from src.
func from(frames []frame, src netip.Addr) []frame {
	var out []frame
	for _, f := range frames {
		if f.Src == src {
			out = append(out, f)
		}
	}
	return out
}

func dumpFrames(frames []frame) string {
	var b strings.Builder
	for _, f := range frames {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// parsePcap reads a classic pcap file of Ethernet frames (what tcpdump -w writes) and decodes
// the IPv4 and IPv6 VRRP packets in it.
func parsePcap(b []byte) ([]frame, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("pcap: %d bytes, no header", len(b))
	}
	var bo binary.ByteOrder
	nano := false
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	default:
		switch binary.BigEndian.Uint32(b) {
		case 0xa1b2c3d4:
			bo = binary.BigEndian
		case 0xa1b23c4d:
			bo, nano = binary.BigEndian, true
		default:
			return nil, fmt.Errorf("pcap: bad magic %#x", m)
		}
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want Ethernet (1)", lt)
	}
	var out []frame
	for off := 24; off+16 <= len(b); {
		sec, frac := bo.Uint32(b[off:]), bo.Uint32(b[off+4:])
		caplen := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+caplen > len(b) {
			break // tcpdump was stopped mid-record
		}
		data := b[off : off+caplen]
		off += caplen
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		f, ok := decodeEthernet(data)
		if !ok {
			continue
		}
		f.At = time.Unix(int64(sec), ns)
		out = append(out, f)
	}
	return out, nil
}

func decodeEthernet(d []byte) (frame, bool) {
	if len(d) < 14 {
		return frame{}, false
	}
	var f frame
	switch binary.BigEndian.Uint16(d[12:]) {
	case 0x0800:
		ip := d[14:]
		if len(ip) < 20 {
			return frame{}, false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[9] != packet.Protocol || ihl < 20 || total > len(ip) || total < ihl {
			return frame{}, false
		}
		f.TTL = ip[8]
		f.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		f.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
		f.Raw = slices.Clone(ip[ihl:total])
	case 0x86dd:
		ip := d[14:]
		if len(ip) < 40 {
			return frame{}, false
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if ip[6] != packet.Protocol || 40+plen > len(ip) {
			return frame{}, false
		}
		f.TTL = ip[7]
		f.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		f.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
		f.Raw = slices.Clone(ip[40 : 40+plen])
	default:
		return frame{}, false
	}
	f.Adv, f.Err = packet.Parse(f.Raw, f.Src, f.Dst)
	return f, true
}
