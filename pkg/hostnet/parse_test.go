//go:build linux

package hostnet

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// ipv4Packet is an IPv4 header with ihl 32-bit words (options zero) followed by payload.
func ipv4Packet(ihl int, ttl uint8, payload []byte) []byte {
	b := make([]byte, ihl*4, ihl*4+len(payload))
	b[0] = 4<<4 | byte(ihl)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)+len(payload)))
	b[8], b[9] = ttl, protoVRRP
	copy(b[12:16], []byte{198, 18, 0, 1})
	copy(b[16:20], []byte{224, 0, 0, 18})
	return append(b, payload...)
}

func TestParseIPv4(t *testing.T) {
	vrrpMsg := []byte{0x31, 51, 100, 1, 0, 100, 0xab, 0xcd, 198, 18, 0, 100}
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("224.0.0.18")
	withOptions := ipv4Packet(6, 255, vrrpMsg)
	padded := append(ipv4Packet(5, 255, vrrpMsg), 0, 0, 0, 0) // trailing bytes beyond total length
	tooLong := ipv4Packet(5, 255, vrrpMsg)
	binary.BigEndian.PutUint16(tooLong[2:4], uint16(len(tooLong)+1))
	shortTotal := ipv4Packet(5, 255, vrrpMsg)
	binary.BigEndian.PutUint16(shortTotal[2:4], 19)
	v6 := ipv4Packet(5, 255, vrrpMsg)
	v6[0] = 6<<4 | 5
	otherProto := ipv4Packet(5, 255, vrrpMsg)
	otherProto[9] = 17

	tests := []struct {
		name    string
		in      []byte
		want    vrrp.Packet
		wantErr bool
	}{
		{"plain", ipv4Packet(5, 255, vrrpMsg), vrrp.Packet{Src: src, Dst: dst, TTL: 255, Data: vrrpMsg}, false},
		{"ttl kept", ipv4Packet(5, 64, vrrpMsg), vrrp.Packet{Src: src, Dst: dst, TTL: 64, Data: vrrpMsg}, false},
		{"options skipped", withOptions, vrrp.Packet{Src: src, Dst: dst, TTL: 255, Data: vrrpMsg}, false},
		{"padding trimmed", padded, vrrp.Packet{Src: src, Dst: dst, TTL: 255, Data: vrrpMsg}, false},
		{"empty payload", ipv4Packet(5, 255, nil), vrrp.Packet{Src: src, Dst: dst, TTL: 255, Data: []byte{}}, false},
		{"nil", nil, vrrp.Packet{}, true},
		{"short", make([]byte, 19), vrrp.Packet{}, true},
		{"ihl below 5", ipv4Packet(4, 255, vrrpMsg), vrrp.Packet{}, true},
		{"ihl beyond packet", ipv4Packet(15, 255, nil)[:40], vrrp.Packet{}, true},
		{"total length beyond packet", tooLong, vrrp.Packet{}, true},
		{"total length inside header", shortTotal, vrrp.Packet{}, true},
		{"version 6", v6, vrrp.Packet{}, true},
		{"not VRRP", otherProto, vrrp.Packet{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIPv4(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseIPv4: error %v, want error %t", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, netipOpt); diff != "" {
				t.Errorf("parseIPv4 (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseIPv4(f *testing.F) {
	f.Add(ipv4Packet(5, 255, []byte{0x31, 1, 100, 1, 0, 100, 0, 0, 1, 2, 3, 4}))
	f.Add(ipv4Packet(15, 1, make([]byte, 8)))
	f.Add([]byte{0x4f, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseIPv4(b)
		if err != nil {
			return
		}
		if len(p.Data) > len(b)-20 || p.TTL < 0 || p.TTL > 255 || !p.Src.Is4() || !p.Dst.Is4() {
			t.Fatalf("parseIPv4(%x) = %+v", b, p)
		}
	})
}

// cmsg is one control message as the kernel lays it out.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestParseControl(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	pktinfo4 := append(append(u32(7), 198, 18, 0, 2), 224, 0, 0, 18)
	ll := netip.MustParseAddr("fe80::1")
	a16 := ll.As16()
	pktinfo6 := append(a16[:], u32(9)...)
	tests := []struct {
		name string
		in   vrrp.Packet
		oob  []byte
		want vrrp.Packet
	}{
		{"none", vrrp.Packet{TTL: -1}, nil, vrrp.Packet{TTL: -1}},
		{"v4 pktinfo keeps header fields", vrrp.Packet{TTL: 255, Dst: groupV4},
			cmsg(unix.SOL_IP, unix.IP_PKTINFO, pktinfo4), vrrp.Packet{TTL: 255, Dst: groupV4, IfIndex: 7}},
		{"v4 pktinfo and ttl", vrrp.Packet{TTL: -1},
			append(cmsg(unix.SOL_IP, unix.IP_TTL, u32(255)), cmsg(unix.SOL_IP, unix.IP_PKTINFO, pktinfo4)...),
			vrrp.Packet{TTL: 255, Dst: groupV4, IfIndex: 7}},
		{"v6", vrrp.Packet{TTL: -1},
			append(cmsg(unix.SOL_IPV6, unix.IPV6_HOPLIMIT, u32(255)), cmsg(unix.SOL_IPV6, unix.IPV6_PKTINFO, pktinfo6)...),
			vrrp.Packet{TTL: 255, Dst: ll, IfIndex: 9}},
		{"v6 truncated pktinfo", vrrp.Packet{TTL: -1},
			cmsg(unix.SOL_IPV6, unix.IPV6_PKTINFO, pktinfo6[:19]), vrrp.Packet{TTL: -1}},
		{"garbage", vrrp.Packet{TTL: -1}, []byte{1, 2, 3}, vrrp.Packet{TTL: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			parseControl(&got, tt.oob)
			if diff := cmp.Diff(tt.want, got, netipOpt); diff != "" {
				t.Errorf("parseControl (-want +got):\n%s", diff)
			}
		})
	}
}

// addrMsg is an ifaddrmsg with attributes, as the kernel sends it.
func addrMsg(family, bits, flags, scope uint8, index uint32, attrs ...[]byte) []byte {
	b := []byte{family, bits, flags, scope}
	b = binary.NativeEndian.AppendUint32(b, index)
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func rtattr(typ uint16, v []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseAddrMsg(t *testing.T) {
	v4, v6 := []byte{198, 18, 0, 100}, netip.MustParseAddr("2001:db8::100").AsSlice()
	peer := []byte{198, 18, 0, 1}
	flags := binary.NativeEndian.AppendUint32(nil, unix.IFA_F_NODAD|unix.IFA_F_NOPREFIXROUTE)
	tests := []struct {
		name    string
		in      []byte
		want    kernelAddr
		wantErr bool
	}{
		{"v4 marked", addrMsg(unix.AF_INET, 24, 0, 0, 3, rtattr(unix.IFA_ADDRESS, v4), rtattr(unix.IFA_LOCAL, v4), rtattr(ifaProto, []byte{AddrProto})),
			kernelAddr{Index: 3, Prefix: netip.MustParsePrefix("198.18.0.100/24"), Proto: AddrProto}, false},
		{"v4 local wins over peer", addrMsg(unix.AF_INET, 32, 0, 0, 3, rtattr(unix.IFA_ADDRESS, peer), rtattr(unix.IFA_LOCAL, v4)),
			kernelAddr{Index: 3, Prefix: netip.MustParsePrefix("198.18.0.100/32")}, false},
		{"v6 extended flags", addrMsg(unix.AF_INET6, 64, unix.IFA_F_NODAD, 0, 4, rtattr(unix.IFA_ADDRESS, v6), rtattr(unix.IFA_FLAGS, flags)),
			kernelAddr{Index: 4, Prefix: netip.MustParsePrefix("2001:db8::100/64"), Flags: unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE}, false},
		{"v6 link scope, unknown attribute", addrMsg(unix.AF_INET6, 64, 0, unix.RT_SCOPE_LINK, 4, rtattr(unix.IFA_ADDRESS, v6), rtattr(99, []byte{1, 2, 3})),
			kernelAddr{Index: 4, Prefix: netip.MustParsePrefix("2001:db8::100/64"), Scope: unix.RT_SCOPE_LINK}, false},
		{"short header", []byte{unix.AF_INET, 24, 0}, kernelAddr{}, true},
		{"no address", addrMsg(unix.AF_INET, 24, 0, 0, 3), kernelAddr{}, true},
		{"v6 family with v4 address", addrMsg(unix.AF_INET6, 24, 0, 0, 3, rtattr(unix.IFA_ADDRESS, v4)), kernelAddr{}, true},
		{"prefix too long", addrMsg(unix.AF_INET, 33, 0, 0, 3, rtattr(unix.IFA_LOCAL, v4)), kernelAddr{}, true},
		{"other family", addrMsg(unix.AF_PACKET, 0, 0, 0, 3, rtattr(unix.IFA_LOCAL, v4)), kernelAddr{}, true},
		{"attribute overruns", append(addrMsg(unix.AF_INET, 24, 0, 0, 3), 0xff, 0, 1, 0), kernelAddr{}, true},
		{"attribute too short", append(addrMsg(unix.AF_INET, 24, 0, 0, 3), 2, 0, 1, 0), kernelAddr{}, true},
		{"trailing bytes", append(addrMsg(unix.AF_INET, 24, 0, 0, 3, rtattr(unix.IFA_LOCAL, v4)), 1), kernelAddr{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAddrMsg(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseAddrMsg: error %v, want error %t", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, netipOpt); diff != "" {
				t.Errorf("parseAddrMsg (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseAddrMsg(f *testing.F) {
	f.Add(addrMsg(unix.AF_INET, 24, 0, 0, 3, rtattr(unix.IFA_LOCAL, []byte{198, 18, 0, 1}), rtattr(ifaProto, []byte{AddrProto})))
	f.Add(addrMsg(unix.AF_INET6, 64, 0, 0, 3, rtattr(unix.IFA_ADDRESS, make([]byte, 16)), rtattr(unix.IFA_FLAGS, []byte{1, 2})))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseAddrMsg(b)
		if err == nil && !a.Prefix.IsValid() {
			t.Fatalf("parseAddrMsg(%x) = %+v without error", b, a)
		}
	})
}

func TestGARPFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x6b, 0, 0, 0, 0x0a}
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x6b, 0, 0, 0, 0x0a, 0x08, 0x06, // Ethernet
		0, 1, 0x08, 0x00, 6, 4, 0, 1, // Ethernet/IPv4, request
		0x02, 0x6b, 0, 0, 0, 0x0a, 198, 18, 0, 100, // sender
		0, 0, 0, 0, 0, 0, 198, 18, 0, 100, // target
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding to 60 bytes
	}
	if diff := cmp.Diff(want, garpFrame(mac, netip.MustParseAddr("198.18.0.100"))); diff != "" {
		t.Errorf("garpFrame (-want +got):\n%s", diff)
	}
}

func TestNAFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x6b, 0, 0, 0, 0x0a}
	src, target := netip.MustParseAddr("fe80::6b:ff:fe00:a"), netip.MustParseAddr("2001:db8::100")
	for _, router := range []bool{false, true} {
		got, ok := decodeNA(naFrame(mac, src, target, router))
		if !ok {
			t.Fatal("naFrame does not decode")
		}
		flags := uint8(naFlagOverr)
		if router {
			flags |= naFlagRouter
		}
		want := naPacket{
			EthDst: ethAllNodes, EthSrc: mac, EthType: unix.ETH_P_IPV6,
			Version: 6, PayloadLen: 32, NextHeader: 58, HopLimit: 255, Src: src, Dst: allNodes,
			Type: 136, ChecksumOK: true, Flags: flags, Target: target, OptType: 2, OptLen: 1, OptMAC: mac,
		}
		if diff := cmp.Diff(want, got, netipOpt); diff != "" {
			t.Errorf("naFrame(router=%t) (-want +got):\n%s", router, diff)
		}
	}
}

// TestOwns: the mark decides; only on kernels that drop it (before 6.1) does the record of
// what this process added stand in for it.
func TestOwns(t *testing.T) {
	added := netip.MustParsePrefix("198.18.0.100/24")
	other := netip.MustParsePrefix("198.18.0.1/24")
	tests := []struct {
		name  string
		marks markSupport
		a     kernelAddr
		want  bool
	}{
		{"marked", marksKept, kernelAddr{Prefix: other, Proto: AddrProto}, true},
		{"unmarked, marks kept", marksKept, kernelAddr{Prefix: added}, false},
		{"unmarked, not yet known", marksUnknown, kernelAddr{Prefix: added}, false},
		{"unmarked, marks dropped, added by us", marksDropped, kernelAddr{Prefix: added}, true},
		{"unmarked, marks dropped, not added by us", marksDropped, kernelAddr{Prefix: other}, false},
		{"another protocol, marks dropped", marksDropped, kernelAddr{Prefix: added, Proto: 3}, false},
	}
	for _, tt := range tests {
		h := NewHost(nil)
		_ = h.Close()
		h.marks = tt.marks
		l := &link{h: h, added: map[netip.Prefix]bool{added: true}}
		if got := l.owns(tt.a); got != tt.want {
			t.Errorf("%s: owns = %t, want %t", tt.name, got, tt.want)
		}
	}
}
