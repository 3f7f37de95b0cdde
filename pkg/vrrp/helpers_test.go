package vrrp_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// t0 is the virtual start of every Instance test: the engine reads no clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	me     = netip.MustParseAddr("192.168.1.11")
	lower  = netip.MustParseAddr("192.168.1.10") // a neighbour with a smaller primary address
	higher = netip.MustParseAddr("192.168.1.12") // a neighbour with a greater primary address
	vip    = netip.MustParsePrefix("192.168.1.100/24")
	vip2   = netip.MustParsePrefix("192.168.1.101/24")

	me6   = netip.MustParseAddr("fe80::11")
	peer6 = netip.MustParseAddr("fe80::12")
	vip6  = netip.MustParsePrefix("2001:db8::100/64")

	cmpOpts = []cmp.Option{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()}
)

// Hand-computed timer values (RFC 5798 §6.1, RFC 3768 §6.1) for the configs below.
const (
	// v3, Master_Adver_Interval 100 ms, priority 100: Skew_Time = 156 * 100ms / 256.
	skew100 = 60937500 * time.Nanosecond
	// Master_Down_Interval = 3 * 100 ms + Skew_Time.
	mdi100 = 300*time.Millisecond + skew100
)

// config4 is a v3 IPv4 multicast router at priority 100, advertising every 100 ms, preempting.
func config4() vrrp.Config {
	return vrrp.Config{
		Name: "haproxy", Interface: "eth0", VRID: 51, Version: 3,
		Interval: 100 * time.Millisecond, Priority: 100,
		Addresses: []netip.Prefix{vip}, Primary: me, Preempt: true,
		AnnounceRepeat: 250 * time.Millisecond,
	}
}

// config2 is the keepalived-style VRRPv2 router: 1 s, PASS "secret".
func config2() vrrp.Config {
	c := config4()
	c.Version, c.Interval, c.Password = 2, time.Second, []byte("secret")
	return c
}

// config6 is a v3 IPv6 router with a global VIP (no link-local one configured).
func config6() vrrp.Config {
	c := config4()
	c.Primary, c.Addresses = me6, []netip.Prefix{vip6}
	return c
}

func with(c vrrp.Config, edit func(*vrrp.Config)) vrrp.Config {
	edit(&c)
	return c
}

func mustNew(t *testing.T, cfg vrrp.Config) *vrrp.Instance {
	t.Helper()
	in, err := vrrp.New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return in
}

// advertAddrs is what a member of cfg's group puts in its adverts.
func advertAddrs(cfg vrrp.Config) []netip.Addr {
	var a []netip.Addr
	for _, p := range cfg.Addresses {
		a = append(a, p.Addr())
	}
	if cfg.Primary.Is6() && !a[0].IsLinkLocalUnicast() {
		a = append([]netip.Addr{vrrpLinkLocal(cfg.VRID)}, a...)
	}
	return a
}

// vrrpLinkLocal is the modified EUI-64 link-local address of the virtual MAC 00-00-5E-00-02-{VRID}
// (RFC 5798 §7.3, RFC 4291 appendix A).
func vrrpLinkLocal(vrid uint8) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: 0x02, 9: 0x00, 10: 0x5e, 11: 0xff, 12: 0xfe, 13: 0x00, 14: 0x02, 15: vrid})
}

func groupDst(cfg vrrp.Config) netip.Addr {
	if cfg.Primary.Is6() {
		return packet.MulticastIPv6
	}
	return packet.MulticastIPv4
}

// advert builds a well-formed advert another member of cfg's group would send from src with prio,
// to the group (or to cfg.Primary in unicast mode), TTL 255. edit may change it before encoding.
func advert(t *testing.T, cfg vrrp.Config, src netip.Addr, prio uint8, edit ...func(*packet.Advertisement)) vrrp.Packet {
	t.Helper()
	a := packet.Advertisement{
		Version: cfg.Version, VRID: cfg.VRID, Priority: prio, Interval: cfg.Interval,
		Addresses: advertAddrs(cfg),
	}
	if cfg.Version == 2 && len(cfg.Password) > 0 {
		a.AuthType = packet.AuthPass
		copy(a.AuthData[:], cfg.Password)
	}
	for _, e := range edit {
		e(&a)
	}
	dst := groupDst(cfg)
	if len(cfg.Peers) > 0 {
		dst = cfg.Primary
	}
	b, err := a.Marshal(src, dst, packet.ChecksumPseudoHeader)
	if err != nil {
		t.Fatalf("building advert: %v", err)
	}
	return vrrp.Packet{Src: src, Dst: dst, TTL: 255, Data: b}
}

// reChecksum recomputes a VRRP checksum after a test edited the bytes: v2 over the message
// (RFC 3768 §5.3.8), v3 with the pseudo-header (RFC 5798 §5.2.8).
func reChecksum(p vrrp.Packet) vrrp.Packet {
	b := append([]byte(nil), p.Data...)
	b[6], b[7] = 0, 0
	var s uint32
	add := func(x []byte) {
		for i := 0; i < len(x); i += 2 {
			w := uint32(x[i]) << 8
			if i+1 < len(x) {
				w |= uint32(x[i+1])
			}
			s += w
		}
	}
	if b[0]>>4 == 3 {
		add(p.Src.AsSlice())
		add(p.Dst.AsSlice())
		n := len(b)
		if p.Src.Is4() {
			add([]byte{0, packet.Protocol, byte(n >> 8), byte(n)})
		} else {
			add([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 0, 0, 0, packet.Protocol})
		}
	}
	add(b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(b[6:], ^uint16(s))
	p.Data = b
	return p
}

// sent is a decoded outgoing advert.
type sent struct {
	Dst      netip.Addr
	Prio     uint8
	Interval time.Duration
	Addrs    []netip.Addr
}

// summary is an Output with the adverts decoded, for cmp.Diff.
type summary struct {
	Sent       []sent
	Unbind     []netip.Prefix
	Bind       []netip.Prefix
	Announce   []netip.Addr
	Transition string // "From->To Reason"
	Next       time.Time
}

func summarize(t *testing.T, cfg vrrp.Config, out vrrp.Output) summary {
	t.Helper()
	s := summary{Unbind: out.Unbind, Bind: out.Bind, Announce: out.Announce, Next: out.Next}
	for _, d := range out.Send {
		a, err := packet.Parse(d.Data, cfg.Primary, d.Dst)
		if err != nil {
			t.Fatalf("instance sent an advert it cannot parse itself: %v", err)
		}
		if a.VRID != cfg.VRID || a.Version != cfg.Version {
			t.Fatalf("advert for VRID %d v%d, want VRID %d v%d", a.VRID, a.Version, cfg.VRID, cfg.Version)
		}
		if cfg.Version == 2 && len(cfg.Password) > 0 {
			var pw [packet.PassLen]byte
			copy(pw[:], cfg.Password)
			if a.AuthType != packet.AuthPass || a.AuthData != pw {
				t.Fatalf("v2 advert without the configured PASS authentication")
			}
		}
		s.Sent = append(s.Sent, sent{Dst: d.Dst, Prio: a.Priority, Interval: a.Interval, Addrs: a.Addresses})
	}
	if tr := out.Transition; tr != nil {
		s.Transition = fmt.Sprintf("%s->%s %s", tr.From, tr.To, tr.Reason)
	}
	return s
}

func checkOut(t *testing.T, cfg vrrp.Config, want summary, out vrrp.Output) {
	t.Helper()
	if diff := cmp.Diff(want, summarize(t, cfg, out), cmpOpts...); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func checkState(t *testing.T, in *vrrp.Instance, want vrrp.State) {
	t.Helper()
	if got := in.State(); got != want {
		t.Fatalf("state %s, want %s", got, want)
	}
}

// advertOf is the advert cfg's router sends with prio to dst.
func advertOf(cfg vrrp.Config, dst netip.Addr, prio uint8) sent {
	return sent{Dst: dst, Prio: prio, Interval: cfg.Interval, Addrs: advertAddrs(cfg)}
}

func addrsOf(ps []netip.Prefix) []netip.Addr {
	var a []netip.Addr
	for _, p := range ps {
		a = append(a, p.Addr())
	}
	return a
}

// startBackup starts cfg's router at t0; it must be Backup.
func startBackup(t *testing.T, cfg vrrp.Config) *vrrp.Instance {
	t.Helper()
	in := mustNew(t, cfg)
	in.Start(t0)
	checkState(t, in, vrrp.Backup)
	return in
}

// startMaster starts cfg's router at t0 and lets its Master_Down_Timer expire; it returns the
// instance and the time it became Master.
func startMaster(t *testing.T, cfg vrrp.Config) (*vrrp.Instance, time.Time) {
	t.Helper()
	in := mustNew(t, cfg)
	out := in.Start(t0)
	if in.State() == vrrp.Master {
		return in, t0
	}
	now := out.Next
	in.Tick(now)
	checkState(t, in, vrrp.Master)
	return in, now
}

// failing and healthy are the probes' word for SetHealth: a weight-0 probe failing, and every
// probe healthy with no weight.
var (
	failing = vrrp.Health{Fault: true, Reason: vrrp.ReasonProbeFailed}
	healthy = vrrp.Health{Reason: vrrp.ReasonProbeRecovered}
)

// weighted is the health that moves in's configured priority to p (probe weights).
func weighted(in *vrrp.Instance, p uint8) vrrp.Health {
	return vrrp.Health{Adjust: int(p) - int(in.Config().Priority), Reason: vrrp.ReasonProbeRecovered}
}
