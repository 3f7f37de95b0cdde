package packet_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

var (
	src4  = netip.MustParseAddr("192.168.1.11")
	src6  = netip.MustParseAddr("fe80::11")
	mcast = packet.MulticastIPv4
	mc6   = packet.MulticastIPv6
	vip4  = netip.MustParseAddr("192.168.1.100")
	vip6  = netip.MustParseAddr("2001:db8::100")
	ll6   = netip.MustParseAddr("fe80::100")

	cmpAddr = cmpopts.EquateComparable(netip.Addr{})
)

// onesSum is an independent RFC 1071 one's complement sum, so the tests don't check the codec
// with itself.
func onesSum(init uint32, parts ...[]byte) uint16 {
	s := init
	for _, p := range parts {
		for i := 0; i < len(p); i += 2 {
			w := uint32(p[i]) << 8
			if i+1 < len(p) {
				w |= uint32(p[i+1])
			}
			s += w
		}
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// pseudoHeader builds the IPv4 (RFC 768 style) or IPv6 (RFC 8200 §8.1) pseudo-header with next
// header 112 for a VRRP message of n bytes.
func pseudoHeader(src, dst netip.Addr, n int) []byte {
	var p []byte
	p = append(p, src.AsSlice()...)
	p = append(p, dst.AsSlice()...)
	if src.Is4() {
		return append(p, 0, packet.Protocol, byte(n>>8), byte(n))
	}
	return append(p, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, packet.Protocol)
}

// setChecksum writes a correct checksum into b: over b alone (v2, RFC 9568 IPv4 form) or with
// the pseudo-header.
func setChecksum(b []byte, src, dst netip.Addr, withPseudo bool) []byte {
	b[6], b[7] = 0, 0
	var s uint16
	if withPseudo {
		s = onesSum(0, pseudoHeader(src, dst, len(b)), b)
	} else {
		s = onesSum(0, b)
	}
	binary.BigEndian.PutUint16(b[6:], ^s)
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Known-answer vectors, checksums worked out by hand (and in the comments) so that a codec that
// is consistently wrong on both sides still fails.
var (
	// RFC 3768 §5.3: v2, type 1, VRID 51, priority 100, count 1, auth PASS, interval 1 s,
	// 192.168.1.100, password "secret" zero-padded to 8 bytes.
	//
	// RFC 3768 §5.3.8: checksum over the VRRP message only. 16-bit words:
	//   2133 + 6401 + 0101 + 0000 + c0a8 + 0164 + 7365 + 6372 + 6574 + 0000 = 0x2848c
	//   fold: 0x848c + 0x2 = 0x848e; complement: 0x7b71.
	kaV2Pass = []byte{
		0x21, 0x33, 0x64, 0x01, 0x01, 0x01, 0x7b, 0x71,
		192, 168, 1, 100,
		's', 'e', 'c', 'r', 'e', 't', 0, 0,
	}
	kaV2PassAdv = packet.Advertisement{
		Version: 2, VRID: 51, Priority: 100, Interval: time.Second,
		Addresses: []netip.Addr{vip4},
		AuthType:  packet.AuthPass, AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't'},
	}

	// RFC 5798 §5.2: v3, VRID 51, priority 100, count 1, interval 100 cs (0x064), 192.168.1.100,
	// from 192.168.1.11 to 224.0.0.18.
	//
	// RFC 5798 §5.2.8 with the IPv4 pseudo-header (src, dst, 0, 112, length 12):
	//   pseudo:  c0a8 + 010b + e000 + 0012 + 0070 + 000c = 0x1a241
	//   message: 3133 + 6401 + 0064 + 0000 + c0a8 + 0164 = 0x157a4
	//   total 0x2f9e5, fold 0xf9e7, complement 0x0618.
	// RFC 9568 §5.2.8 form (message only): 0x157a4, fold 0x57a5, complement 0xa85a.
	kaV3IPv4Pseudo = []byte{
		0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x06, 0x18,
		192, 168, 1, 100,
	}
	kaV3IPv4RFC9568 = []byte{
		0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0xa8, 0x5a,
		192, 168, 1, 100,
	}
	kaV3IPv4Adv = packet.Advertisement{
		Version: 3, VRID: 51, Priority: 100, Interval: time.Second,
		Addresses: []netip.Addr{vip4},
	}

	// RFC 5798 §5.2: v3 over IPv6, VRID 51, priority 100, count 2, interval 100 cs,
	// fe80::100 (link-local first, §5.2.9) and 2001:db8::100, from fe80::11 to ff02::12.
	//
	// RFC 5798 §5.2.8 with the RFC 8200 §8.1 pseudo-header (length 40, next header 112):
	//   pseudo:  fe80 + 0011 + ff02 + 0012 + 0000 + 0028 + 0070 = 0x1fe3d, fold 0xfe3e
	//   message: 3133 + 6402 + 0064 + fe80 + 0100 + 2001 + 0db8 + 0100 = 0x1c3d2, fold 0xc3d3
	//   0xfe3e + 0xc3d3 = 0x1c211, fold 0xc212, complement 0x3ded.
	kaV3IPv6 = []byte{
		0x31, 0x33, 0x64, 0x02, 0x00, 0x64, 0x3d, 0xed,
		0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
	}
	kaV3IPv6Adv = packet.Advertisement{
		Version: 3, VRID: 51, Priority: 100, Interval: time.Second,
		Addresses: []netip.Addr{ll6, vip6},
	}
)

// RFC 3768 §5.3, RFC 5798 §5.2: the encoder produces exactly the hand-computed vectors and the
// decoder reads them back.
func TestKnownAnswers(t *testing.T) {
	tests := []struct {
		name     string
		adv      packet.Advertisement
		src, dst netip.Addr
		mode     packet.ChecksumMode
		wire     []byte
	}{
		{"v2 PASS", kaV2PassAdv, src4, mcast, packet.ChecksumPseudoHeader, kaV2Pass},
		// v2 never uses the pseudo-header, whatever the mode says (RFC 3768 §5.3.8).
		{"v2 PASS, mode ignored", kaV2PassAdv, src4, mcast, packet.ChecksumRFC9568, kaV2Pass},
		{"v3 IPv4 pseudo-header", kaV3IPv4Adv, src4, mcast, packet.ChecksumPseudoHeader, kaV3IPv4Pseudo},
		{"v3 IPv4 RFC 9568", kaV3IPv4Adv, src4, mcast, packet.ChecksumRFC9568, kaV3IPv4RFC9568},
		{"v3 IPv6", kaV3IPv6Adv, src6, mc6, packet.ChecksumPseudoHeader, kaV3IPv6},
		// IPv6 always uses the pseudo-header (RFC 5798 §5.2.8).
		{"v3 IPv6, mode ignored", kaV3IPv6Adv, src6, mc6, packet.ChecksumRFC9568, kaV3IPv6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.adv.Marshal(tc.src, tc.dst, tc.mode)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if diff := cmp.Diff(tc.wire, got); diff != "" {
				t.Errorf("Marshal bytes (-want +got):\n%s", diff)
			}
			adv, err := packet.Parse(tc.wire, tc.src, tc.dst)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(&tc.adv, adv, cmpAddr); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

// RFC 3768 §5.3 and RFC 5798 §5.2: every field survives Marshal then Parse, for each version and
// family, at the interval and address-count extremes.
func TestRoundTrip(t *testing.T) {
	many4 := make([]netip.Addr, packet.MaxAddresses)
	for i := range many4 {
		many4[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	tests := []struct {
		name     string
		adv      packet.Advertisement
		src, dst netip.Addr
	}{
		{"v2 IPv4 no auth", packet.Advertisement{Version: 2, VRID: 1, Priority: 1, Interval: time.Second,
			Addresses: []netip.Addr{vip4}}, src4, mcast},
		{"v2 IPv4 PASS max interval", packet.Advertisement{Version: 2, VRID: 255, Priority: 255,
			Interval: packet.MaxIntervalV2, Addresses: []netip.Addr{vip4, netip.MustParseAddr("10.1.2.3")},
			AuthType: packet.AuthPass, AuthData: [8]byte{'1', '2', '3', '4', '5', '6', '7', '8'}}, src4, mcast},
		{"v2 IPv4 unicast 255 addresses", packet.Advertisement{Version: 2, VRID: 7, Priority: 0,
			Interval: 3 * time.Second, Addresses: many4}, src4, netip.MustParseAddr("192.168.1.12")},
		{"v3 IPv4 10ms", packet.Advertisement{Version: 3, VRID: 51, Priority: 254,
			Interval: 10 * time.Millisecond, Addresses: []netip.Addr{vip4}}, src4, mcast},
		{"v3 IPv4 max interval", packet.Advertisement{Version: 3, VRID: 51, Priority: 0,
			Interval: packet.MaxIntervalV3, Addresses: many4}, src4, mcast},
		{"v3 IPv6", packet.Advertisement{Version: 3, VRID: 200, Priority: 100,
			Interval: 1230 * time.Millisecond, Addresses: []netip.Addr{ll6, vip6, netip.MustParseAddr("2001:db8::200")}}, src6, mc6},
		{"v3 IPv6 unicast", packet.Advertisement{Version: 3, VRID: 200, Priority: 100,
			Interval: time.Second, Addresses: []netip.Addr{ll6}}, netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("2001:db8::12")},
	}
	for _, tc := range tests {
		for _, mode := range []packet.ChecksumMode{packet.ChecksumPseudoHeader, packet.ChecksumRFC9568} {
			t.Run(tc.name, func(t *testing.T) {
				b, err := tc.adv.Marshal(tc.src, tc.dst, mode)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				got, err := packet.Parse(b, tc.src, tc.dst)
				if err != nil {
					t.Fatalf("Parse(Marshal(a)): %v", err)
				}
				if diff := cmp.Diff(&tc.adv, got, cmpAddr); diff != "" {
					t.Errorf("round trip (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// RFC 5798 §5.2.8 (pseudo-header, as keepalived and FRR send) and RFC 9568 §5.2.8 (IPv4 message
// only): a v3 IPv4 receiver accepts both, ChecksumRFC9568 sends the second and the default the
// first.
func TestV3IPv4ChecksumForms(t *testing.T) {
	for _, form := range []struct {
		name string
		wire []byte
	}{{"pseudo-header", kaV3IPv4Pseudo}, {"RFC 9568", kaV3IPv4RFC9568}} {
		t.Run(form.name, func(t *testing.T) {
			if _, err := packet.Parse(form.wire, src4, mcast); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
	// The pseudo-header binds the addresses: the same bytes from another source fail unless the
	// no-pseudo-header form is used.
	other := netip.MustParseAddr("192.168.1.12")
	if _, err := packet.Parse(kaV3IPv4Pseudo, other, mcast); packet.ReasonOf(err) != packet.ReasonChecksum {
		t.Errorf("pseudo-header form from another source: err %v, want %s", err, packet.ReasonChecksum)
	}
	if _, err := packet.Parse(kaV3IPv4RFC9568, other, mcast); err != nil {
		t.Errorf("RFC 9568 form from another source: %v", err)
	}
	b, err := kaV3IPv4Adv.Marshal(src4, mcast, packet.ChecksumRFC9568)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(setChecksum(slicesClone(b), src4, mcast, false), b); diff != "" {
		t.Errorf("ChecksumRFC9568 is not the message-only checksum (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(kaV3IPv4RFC9568, b); diff != "" {
		t.Errorf("ChecksumRFC9568 (-want +got):\n%s", diff)
	}
	// IPv6 has only the pseudo-header form: the message-only checksum is rejected.
	v6 := setChecksum(slicesClone(kaV3IPv6), src6, mc6, false)
	if _, err := packet.Parse(v6, src6, mc6); packet.ReasonOf(err) != packet.ReasonChecksum {
		t.Errorf("IPv6 without pseudo-header: err %v, want %s", err, packet.ReasonChecksum)
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// RFC 5798 §7.1 and RFC 3768 §7.1: each malformed message is rejected with the Reason that names
// the first rule it breaks, in the RFC's order.
func TestParseRejects(t *testing.T) {
	v3 := func(edit func(b []byte) []byte) []byte {
		b := edit(slicesClone(kaV3IPv4Pseudo))
		return setChecksum(b, src4, mcast, true)
	}
	v6 := func(edit func(b []byte) []byte) []byte {
		b := edit(slicesClone(kaV3IPv6))
		return setChecksum(b, src6, mc6, true)
	}
	uni6src, uni6dst := netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("2001:db8::12")
	v6u := func(edit func(b []byte) []byte) []byte {
		b := edit(slicesClone(kaV3IPv6))
		return setChecksum(b, uni6src, uni6dst, true)
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     packet.Reason
	}{
		// RFC 5798 §7.1: "MUST verify that the received packet contains the complete VRRP packet".
		{"empty", nil, src4, mcast, packet.ReasonTooShort},
		{"7 bytes", kaV3IPv4Pseudo[:7], src4, mcast, packet.ReasonTooShort},
		// RFC 5798 §7.1: "MUST verify the VRRP version" (§5.2.1).
		{"version 0", v3(func(b []byte) []byte { b[0] = 0x01; return b }), src4, mcast, packet.ReasonVersion},
		{"version 1", v3(func(b []byte) []byte { b[0] = 0x11; return b }), src4, mcast, packet.ReasonVersion},
		{"version 4", v3(func(b []byte) []byte { b[0] = 0x41; return b }), src4, mcast, packet.ReasonVersion},
		{"version 15", v3(func(b []byte) []byte { b[0] = 0xf1; return b }), src4, mcast, packet.ReasonVersion},
		// RFC 5798 §5.2.2: only type 1 (ADVERTISEMENT) is defined.
		{"type 0", v3(func(b []byte) []byte { b[0] = 0x30; return b }), src4, mcast, packet.ReasonType},
		{"type 2", v3(func(b []byte) []byte { b[0] = 0x32; return b }), src4, mcast, packet.ReasonType},
		{"type 15", v3(func(b []byte) []byte { b[0] = 0x3f; return b }), src4, mcast, packet.ReasonType},
		// RFC 3768 §5.3, RFC 5798 §5.2: VRRPv2 is IPv4 only.
		{"v2 over IPv6", setChecksum(slicesClone(kaV2Pass), src6, mc6, false), src6, mc6, packet.ReasonFamily},
		// RFC 5798 §7.1: the address count must match the size.
		{"truncated: count 2, one address", v3(func(b []byte) []byte { b[3] = 2; return b }), src4, mcast, packet.ReasonLength},
		{"truncated: address cut", kaV3IPv4Pseudo[:10], src4, mcast, packet.ReasonLength},
		{"truncated: v2 without auth data", kaV2Pass[:12], src4, mcast, packet.ReasonLength},
		{"truncated: IPv6 count read as IPv4", kaV3IPv6[:20], src6, mc6, packet.ReasonLength},
		{"extra trailing bytes", v3(func(b []byte) []byte { return append(b, 0, 0, 0, 0) }), src4, mcast, packet.ReasonLength},
		{"extra trailing byte", append(slicesClone(kaV3IPv4Pseudo), 0), src4, mcast, packet.ReasonLength},
		{"v2 extra trailing bytes", append(slicesClone(kaV2Pass), 0, 0), src4, mcast, packet.ReasonLength},
		// RFC 5798 §7.1: "MUST verify the VRRP checksum".
		{"bad checksum v3 IPv4", func() []byte { b := slicesClone(kaV3IPv4Pseudo); b[7] ^= 1; return b }(), src4, mcast, packet.ReasonChecksum},
		{"bad checksum v3 IPv4 wrong destination", kaV3IPv4Pseudo, src4, netip.MustParseAddr("192.168.1.12"), packet.ReasonChecksum},
		{"bad checksum v2", func() []byte { b := slicesClone(kaV2Pass); b[2]++; return b }(), src4, mcast, packet.ReasonChecksum},
		{"bad checksum IPv6", func() []byte { b := slicesClone(kaV3IPv6); b[39]++; return b }(), src6, mc6, packet.ReasonChecksum},
		// RFC 5798 §5.2.5 / RFC 9568 §7.1: count must be at least 1.
		{"count 0", v3(func(b []byte) []byte { b[3] = 0; return b[:8] }), src4, mcast, packet.ReasonCountZero},
		{"count 0 v2", setChecksum([]byte{0x21, 0x33, 0x64, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, src4, mcast, false), src4, mcast, packet.ReasonCountZero},
		// RFC 5798 §5.2.7: a zero Max Adver Int is meaningless (every backup would take over).
		{"v3 interval 0", v3(func(b []byte) []byte { b[4], b[5] = 0, 0; return b }), src4, mcast, packet.ReasonIntervalZero},
		{"v3 interval 0, reserved bits set", v3(func(b []byte) []byte { b[4], b[5] = 0xf0, 0; return b }), src4, mcast, packet.ReasonIntervalZero},
		{"v2 interval 0", setChecksum(func() []byte { b := slicesClone(kaV2Pass); b[5] = 0; return b }(), src4, mcast, false), src4, mcast, packet.ReasonIntervalZero},
		// RFC 5798 §5.2.9, RFC 4291 §2.5.5.2: an IPv6 advert's addresses are IPv6 addresses; an
		// IPv4-mapped one is neither (and Marshal could not send it back in an IPv6 advert).
		{"IPv6 advert, IPv4-mapped first address", v6(func(b []byte) []byte {
			b[3] = 1
			m := netip.MustParseAddr("::ffff:48.48.48.48").As16()
			return append(b[:8], m[:]...)
		}), src6, mc6, packet.ReasonMappedAddress},
		{"IPv6 advert, IPv4-mapped second address", v6(func(b []byte) []byte {
			m := netip.MustParseAddr("::ffff:198.18.0.100").As16()
			copy(b[24:], m[:])
			return b
		}), src6, mc6, packet.ReasonMappedAddress},
		{"IPv6 unicast advert, IPv4-mapped address", v6u(func(b []byte) []byte {
			m := netip.MustParseAddr("::ffff:198.18.0.100").As16()
			copy(b[24:], m[:])
			return b
		}), uni6src, uni6dst, packet.ReasonMappedAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			adv, err := packet.Parse(tc.b, tc.src, tc.dst)
			if diff := cmp.Diff(tc.want, packet.ReasonOf(err)); diff != "" {
				t.Errorf("Parse reason (-want +got):\n%s\nerr: %v", diff, err)
			}
			if adv != nil {
				t.Errorf("Parse returned %+v with an error", adv)
			}
		})
	}
}

// RFC 1624 §3: the sum of data that is not all zero is never +0, so a computed checksum is
// never -0 (0xffff). A message whose checksum is +0 (0x0000) is accepted as it is and refused
// with 0xffff in its place, although summing the message accepts both zeros.
func TestParseRejectsNegativeZeroChecksum(t *testing.T) {
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		pseudo   bool
	}{
		{"v3 IPv4 pseudo-header", kaV3IPv4Pseudo, src4, mcast, true},
		{"v3 IPv4 RFC 9568", kaV3IPv4RFC9568, src4, mcast, false},
		{"v2", kaV2Pass, src4, mcast, false},
		{"v3 IPv6", kaV3IPv6, src6, mc6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Add the checksum to the last address word (one's complement): the message then
			// sums to -0 without its checksum, whose correct value becomes +0.
			b := slicesClone(tt.b)
			i := len(b) - 2
			if b[0]>>4 == 2 {
				i -= packet.PassLen
			}
			w := uint32(binary.BigEndian.Uint16(b[i:])) + uint32(binary.BigEndian.Uint16(b[6:]))
			binary.BigEndian.PutUint16(b[i:], uint16(w&0xffff+w>>16))
			setChecksum(b, tt.src, tt.dst, tt.pseudo)
			if got := binary.BigEndian.Uint16(b[6:]); got != 0 {
				t.Fatalf("test setup: checksum 0x%04x, want 0", got)
			}
			adv, err := packet.Parse(b, tt.src, tt.dst)
			if err != nil {
				t.Fatalf("checksum +0: %v", err)
			}
			if out, err := adv.Marshal(tt.src, tt.dst, map[bool]packet.ChecksumMode{true: packet.ChecksumPseudoHeader, false: packet.ChecksumRFC9568}[tt.pseudo || tt.src.Is6()]); err != nil || !bytes.Equal(out, b) {
				t.Fatalf("Marshal(Parse(b)) = %x, %v; want %x", out, err, b)
			}
			b[6], b[7] = 0xff, 0xff
			if _, err := packet.Parse(b, tt.src, tt.dst); packet.ReasonOf(err) != packet.ReasonChecksum {
				t.Errorf("checksum -0: err %v, want %s", err, packet.ReasonChecksum)
			}
		})
	}
}

// RFC 5798 §5.2.6: the reserved bits before Max Adver Int are ignored on reception.
func TestParseIgnoresReservedBits(t *testing.T) {
	b := slicesClone(kaV3IPv4Pseudo)
	b[4] |= 0xf0
	setChecksum(b, src4, mcast, true)
	adv, err := packet.Parse(b, src4, mcast)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(&kaV3IPv4Adv, adv, cmpAddr); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

// RFC 5798 §5.2.7 and RFC 3768 §5.3.7: the encoder never sends a message a receiver must drop
// or that loses information: intervals in the version's units and range, 1..255 addresses, one
// family, v2 IPv4 only.
func TestMarshalRefuses(t *testing.T) {
	addrs256 := make([]netip.Addr, 256)
	for i := range addrs256 {
		addrs256[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	v3 := func(edit func(a *packet.Advertisement)) packet.Advertisement {
		a := kaV3IPv4Adv
		a.Addresses = []netip.Addr{vip4}
		edit(&a)
		return a
	}
	v2 := func(edit func(a *packet.Advertisement)) packet.Advertisement {
		a := kaV2PassAdv
		a.Addresses = []netip.Addr{vip4}
		edit(&a)
		return a
	}
	tests := []struct {
		name     string
		adv      packet.Advertisement
		src, dst netip.Addr
	}{
		{"version 1", v3(func(a *packet.Advertisement) { a.Version = 1 }), src4, mcast},
		{"version 4", v3(func(a *packet.Advertisement) { a.Version = 4 }), src4, mcast},
		{"v3 interval 0", v3(func(a *packet.Advertisement) { a.Interval = 0 }), src4, mcast},
		{"v3 interval 5ms", v3(func(a *packet.Advertisement) { a.Interval = 5 * time.Millisecond }), src4, mcast},
		{"v3 interval 15ms", v3(func(a *packet.Advertisement) { a.Interval = 15 * time.Millisecond }), src4, mcast},
		{"v3 interval 100ms+1ns", v3(func(a *packet.Advertisement) { a.Interval = 100*time.Millisecond + 1 }), src4, mcast},
		{"v3 interval 40.96s", v3(func(a *packet.Advertisement) { a.Interval = 40960 * time.Millisecond }), src4, mcast},
		{"v3 interval negative", v3(func(a *packet.Advertisement) { a.Interval = -10 * time.Millisecond }), src4, mcast},
		{"v2 interval 0", v2(func(a *packet.Advertisement) { a.Interval = 0 }), src4, mcast},
		{"v2 interval 500ms", v2(func(a *packet.Advertisement) { a.Interval = 500 * time.Millisecond }), src4, mcast},
		{"v2 interval 1.5s", v2(func(a *packet.Advertisement) { a.Interval = 1500 * time.Millisecond }), src4, mcast},
		{"v2 interval 256s", v2(func(a *packet.Advertisement) { a.Interval = 256 * time.Second }), src4, mcast},
		{"no addresses", v3(func(a *packet.Advertisement) { a.Addresses = nil }), src4, mcast},
		{"256 addresses", v3(func(a *packet.Advertisement) { a.Addresses = addrs256 }), src4, mcast},
		{"mixed families 4 then 6", v3(func(a *packet.Advertisement) { a.Addresses = []netip.Addr{vip4, vip6} }), src4, mcast},
		{"mixed families 6 then 4", v3(func(a *packet.Advertisement) { a.Addresses = []netip.Addr{ll6, vip4} }), src6, mc6},
		{"IPv6 addresses from an IPv4 source", v3(func(a *packet.Advertisement) { a.Addresses = []netip.Addr{ll6} }), src4, mcast},
		{"IPv4 destination for IPv6", v3(func(a *packet.Advertisement) { a.Addresses = []netip.Addr{ll6} }), src6, mcast},
		{"v2 over IPv6", v2(func(a *packet.Advertisement) { a.Addresses = []netip.Addr{ll6} }), src6, mc6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.adv.Marshal(tc.src, tc.dst, packet.ChecksumPseudoHeader)
			if diff := cmp.Diff(packet.ReasonEncodeInvalid, packet.ReasonOf(err)); diff != "" {
				t.Errorf("Marshal reason (-want +got):\n%s\nerr: %v", diff, err)
			}
			if b != nil {
				t.Errorf("Marshal returned %d bytes with an error", len(b))
			}
		})
	}
}

// RFC 5798 §5.2: Error carries the reason in its message, and ReasonOf sees through wrapping.
func TestReasonOf(t *testing.T) {
	_, err := packet.Parse(nil, src4, mcast)
	if err == nil {
		t.Fatal("Parse(nil) accepted")
	}
	wrapped := wrapErr{err}
	if got := packet.ReasonOf(wrapped); got != packet.ReasonTooShort {
		t.Errorf("ReasonOf(wrapped) = %q, want %q", got, packet.ReasonTooShort)
	}
	if got := packet.ReasonOf(nil); got != "" {
		t.Errorf("ReasonOf(nil) = %q, want empty", got)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(string(packet.ReasonTooShort))) {
		t.Errorf("error %q does not name its reason", err)
	}
}

type wrapErr struct{ err error }

func (w wrapErr) Error() string { return "read: " + w.err.Error() }
func (w wrapErr) Unwrap() error { return w.err }
