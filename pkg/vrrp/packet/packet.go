package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol is the IP protocol number of VRRP (RFC 5798 §5.2.4).
const Protocol = 112

// TypeAdvertisement is the only VRRP packet type (RFC 5798 §5.2.2).
const TypeAdvertisement = 1

// Auth types of VRRPv2 (RFC 3768 §5.3.6). Only AuthNone and AuthPass are supported; keepalived's
// auth_type AH is not.
const (
	AuthNone = 0
	AuthPass = 1
	AuthAH   = 2
)

// PassLen is the size of the VRRPv2 authentication data field, and so the longest password.
const PassLen = 8

// Multicast groups adverts are sent to (RFC 5798 §5.1.1.2 and §5.1.2.2).
var (
	MulticastIPv4 = netip.MustParseAddr("224.0.0.18")
	MulticastIPv6 = netip.MustParseAddr("ff02::12")
)

const (
	headerLen = 8
	// MaxAddresses is the most addresses one advert can carry: the count field is one byte.
	MaxAddresses = 255
	// IntervalUnitV3 is the unit of the VRRPv3 interval field, a centisecond (RFC 5798 §5.2.7):
	// the shortest interval and the step between two.
	IntervalUnitV3 = 10 * time.Millisecond
	// MaxIntervalV3 is the largest VRRPv3 interval: 12 bits of centiseconds (RFC 5798 §5.2.7).
	MaxIntervalV3 = 4095 * IntervalUnitV3
	// IntervalUnitV2 is the unit of the VRRPv2 interval field, a second (RFC 3768 §5.3.7).
	IntervalUnitV2 = time.Second
	// MaxIntervalV2 is the largest VRRPv2 interval: 8 bits of seconds (RFC 3768 §5.3.7).
	MaxIntervalV2 = 255 * IntervalUnitV2
)

// Advertisement is a decoded VRRP advertisement.
type Advertisement struct {
	Version  uint8
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds in v2, centiseconds in v3.
	Interval time.Duration
	// Addresses are the virtual addresses, all of one family.
	Addresses []netip.Addr
	// AuthType and AuthData are only meaningful in v2.
	AuthType uint8
	AuthData [PassLen]byte
}

// ChecksumMode selects how the VRRPv3 checksum over IPv4 is computed. IPv6 always uses the
// pseudo-header and v2 never does.
type ChecksumMode uint8

const (
	// ChecksumPseudoHeader includes the IPv4 pseudo-header, as keepalived and FRR send.
	ChecksumPseudoHeader ChecksumMode = iota
	// ChecksumRFC9568 covers only the VRRP message for IPv4 (RFC 9568 §5.2.8).
	ChecksumRFC9568
)

// Reason names why a packet was rejected; it is the label drop counters use.
type Reason string

// Reasons a packet is rejected by Parse.
const (
	ReasonTooShort      Reason = "too_short"
	ReasonVersion       Reason = "bad_version"
	ReasonType          Reason = "bad_type"
	ReasonLength        Reason = "bad_length"
	ReasonChecksum      Reason = "bad_checksum"
	ReasonCountZero     Reason = "count_zero"
	ReasonIntervalZero  Reason = "interval_zero"
	ReasonFamily        Reason = "bad_family"
	ReasonMappedAddress Reason = "mapped_address"
	ReasonEncodeInvalid Reason = "invalid"
)

// Error is returned by Parse and Marshal; Reason says which rule failed.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return "vrrp packet: " + string(e.Reason) + ": " + e.Detail }

// ReasonOf returns the Reason of err if it is an *Error, or "" otherwise.
func ReasonOf(err error) Reason {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return ""
}

func errf(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Marshal encodes a into a VRRP message (without IP header). src and dst are the IP source and
// destination, used by the v3 pseudo-header checksum.
func (a *Advertisement) Marshal(src, dst netip.Addr, mode ChecksumMode) ([]byte, error) {
	if a.Version != 2 && a.Version != 3 {
		return nil, errf(ReasonEncodeInvalid, "version %d", a.Version)
	}
	n := len(a.Addresses)
	if n == 0 || n > MaxAddresses {
		return nil, errf(ReasonEncodeInvalid, "%d addresses, want 1..%d", n, MaxAddresses)
	}
	is6 := a.Addresses[0].Is6() && !a.Addresses[0].Is4In6()
	if src.Is6() != is6 || dst.Is6() != is6 {
		return nil, errf(ReasonEncodeInvalid, "source, destination and addresses differ in family")
	}
	alen := 4
	if is6 {
		if a.Version == 2 {
			return nil, errf(ReasonEncodeInvalid, "VRRPv2 carries only IPv4")
		}
		alen = 16
	}
	size := headerLen + n*alen
	if a.Version == 2 {
		size += PassLen
	}
	b := make([]byte, size)
	b[0] = a.Version<<4 | TypeAdvertisement
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(n)
	switch a.Version {
	case 2:
		if a.Interval < IntervalUnitV2 || a.Interval > MaxIntervalV2 || a.Interval%IntervalUnitV2 != 0 {
			return nil, errf(ReasonEncodeInvalid, "v2 interval %s is not 1..255 whole seconds", a.Interval)
		}
		b[4] = a.AuthType
		b[5] = uint8(a.Interval / IntervalUnitV2)
	case 3:
		if a.Interval < IntervalUnitV3 || a.Interval > MaxIntervalV3 || a.Interval%IntervalUnitV3 != 0 {
			return nil, errf(ReasonEncodeInvalid, "v3 interval %s is not 10ms..40.95s in 10ms steps", a.Interval)
		}
		binary.BigEndian.PutUint16(b[4:], uint16(a.Interval/IntervalUnitV3))
	}
	off := headerLen
	for _, ip := range a.Addresses {
		if (ip.Is6() && !ip.Is4In6()) != is6 {
			return nil, errf(ReasonEncodeInvalid, "mixed address families")
		}
		s := ip.AsSlice()
		if ip.Is4In6() {
			s = ip.Unmap().AsSlice()
		}
		off += copy(b[off:], s)
	}
	if a.Version == 2 {
		copy(b[off:], a.AuthData[:])
	}
	binary.BigEndian.PutUint16(b[6:], checksum(b, src, dst, a.Version, mode))
	return b, nil
}

// Parse decodes a VRRP message received from src to dst (IP header already removed). It checks,
// in RFC 5798 §7.1 order, the length, version, type, address count against the size, checksum,
// count >= 1, for v3, interval != 0 and, for IPv6, that no address is IPv4-mapped. It does not
// check TTL, VRID or authentication: they depend on the receiver's configuration. Both v3 IPv4
// checksum forms are accepted.
func Parse(b []byte, src, dst netip.Addr) (*Advertisement, error) {
	if len(b) < headerLen {
		return nil, errf(ReasonTooShort, "%d bytes, need at least %d", len(b), headerLen)
	}
	ver, typ := b[0]>>4, b[0]&0x0f
	if ver != 2 && ver != 3 {
		return nil, errf(ReasonVersion, "version %d", ver)
	}
	if typ != TypeAdvertisement {
		return nil, errf(ReasonType, "type %d", typ)
	}
	is6 := src.Is6() && !src.Is4In6()
	if ver == 2 && is6 {
		return nil, errf(ReasonFamily, "VRRPv2 over IPv6")
	}
	alen := 4
	if is6 {
		alen = 16
	}
	n := int(b[3])
	want := headerLen + n*alen
	if ver == 2 {
		want += PassLen
	}
	if len(b) != want {
		return nil, errf(ReasonLength, "%d bytes for %d addresses, want %d", len(b), n, want)
	}
	if binary.BigEndian.Uint16(b[6:]) == 0xffff {
		// One's complement has two zeros, and summing the message accepts both. But the sum
		// of data that is not all zero (the version is not) is never +0, so its complement,
		// the checksum, is never -0 (RFC 1624 §3): 0xffff is no checksum any sender computes,
		// and Marshal could not send it back.
		return nil, errf(ReasonChecksum, "checksum 0xffff (one's complement -0) is never a computed checksum (RFC 1624 §3)")
	}
	if !checksumOK(b, src, dst, ver) {
		return nil, errf(ReasonChecksum, "checksum 0x%04x does not match", binary.BigEndian.Uint16(b[6:]))
	}
	if n == 0 {
		return nil, errf(ReasonCountZero, "no addresses")
	}
	a := &Advertisement{Version: ver, VRID: b[1], Priority: b[2], Addresses: make([]netip.Addr, 0, n)}
	switch ver {
	case 2:
		a.AuthType = b[4]
		a.Interval = time.Duration(b[5]) * IntervalUnitV2
		copy(a.AuthData[:], b[headerLen+n*alen:])
	case 3:
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&0x0fff) * IntervalUnitV3
	}
	if a.Interval == 0 {
		return nil, errf(ReasonIntervalZero, "advertisement interval 0")
	}
	for i := range n {
		s := b[headerLen+i*alen : headerLen+(i+1)*alen]
		ip, _ := netip.AddrFromSlice(s)
		// The address list of an IPv6 advert holds IPv6 addresses (RFC 5798 §5.2.9). An
		// IPv4-mapped one (RFC 4291 §2.5.5.2) only represents an IPv4 node to an IPv6 API
		// (RFC 4038); it is no address an IPv6 interface can hold or answer Neighbor
		// Solicitations for, so no sender that means it could put it there. Read as the
		// IPv4 address it would make a mixed-family advert that Marshal cannot produce
		// (whatever Parse accepts, Marshal must encode back to the same bytes): reject it,
		// with its own Reason so the drop counter says why.
		if ip.Is4In6() {
			return nil, errf(ReasonMappedAddress, "address %d (%s) is IPv4-mapped; an IPv6 advert carries only IPv6 addresses", i+1, ip)
		}
		a.Addresses = append(a.Addresses, ip)
	}
	return a, nil
}

func checksumOK(b []byte, src, dst netip.Addr, ver uint8) bool {
	if ver == 2 {
		return sum(0, b) == 0xffff
	}
	if sum(pseudo(src, dst, len(b)), b) == 0xffff {
		return true
	}
	// RFC 9568 §5.2.8 form: IPv4 without the pseudo-header.
	return src.Is4() && sum(0, b) == 0xffff
}

func checksum(b []byte, src, dst netip.Addr, ver uint8, mode ChecksumMode) uint16 {
	b[6], b[7] = 0, 0
	var init uint32
	if ver == 3 && (src.Is6() || mode == ChecksumPseudoHeader) {
		init = pseudo(src, dst, len(b))
	}
	return ^sum(init, b)
}

// pseudo returns the partial one's complement sum of the IPv4 (RFC 768) or IPv6 (RFC 8200 §8.1)
// pseudo-header with next header 112.
func pseudo(src, dst netip.Addr, length int) uint32 {
	var s uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			s += uint32(p[i])<<8 | uint32(p[i+1])
		}
	}
	src, dst = src.Unmap(), dst.Unmap()
	add(src.AsSlice())
	add(dst.AsSlice())
	if src.Is4() {
		s += Protocol
		s += uint32(length)
	} else {
		s += uint32(length>>16) + uint32(length&0xffff)
		s += Protocol
	}
	return s
}

// sum folds the one's complement sum of b onto init.
func sum(init uint32, b []byte) uint16 {
	s := init
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
