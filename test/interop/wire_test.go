package interop

import (
	"net/netip"
	"slices"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// vrrpLinkLocal is the IPv6 link-local address of virtual router vrid, derived from its
// virtual MAC 00:00:5e:00:02:<vrid> (RFC 5798 §7.3): what kube-vrrp puts first in its IPv6
// adverts when no link-local address is configured (RFC 5798 §5.2.9).
func vrrpLinkLocal(vrid int) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: 0x02, 9: 0x00, 10: 0x5e, 11: 0xff, 12: 0xfe, 13: 0x00, 14: 0x02, 15: byte(vrid)})
}

// wantAddrs returns the address list n's speaker should carry in its adverts.
func (p *pair) wantAddrs(n *lab.Node) []netip.Addr {
	vips := p.g.VIPs
	if n == p.ka && p.g.KeepalivedVIPs != nil {
		vips = p.g.KeepalivedVIPs
	}
	var a []netip.Addr
	for _, v := range vips {
		a = append(a, v.Addr())
	}
	if n == p.kv && a[0].Is6() && !a[0].IsLinkLocalUnicast() {
		a = append([]netip.Addr{vrrpLinkLocal(p.g.VRID)}, a...)
	}
	return a
}

// checkWire checks the adverts each speaker sent in frames: every one decodes with kube-vrrp's
// codec and encodes again to the same bytes with the checksum form wantForm[n] ("" = any),
// has TTL (hop limit) 255, the group's version, VRID, interval and addresses, the right
// destination, and for VRPPv2 auth type PASS with the password padded to 8 bytes.
func (p *pair) checkWire(frames []frame, wantForm map[*lab.Node]string) {
	p.t.Helper()
	for _, n := range p.nodes() {
		got := from(frames, p.addr(n))
		if len(got) == 0 {
			p.t.Errorf("no advert from %s (%s) captured:\n%s", p.speaker(n), p.addr(n), dumpFrames(frames))
			continue
		}
		bad := 0
		for _, f := range got {
			if ok := p.checkFrame(n, f, wantForm[n]); !ok {
				bad++
			}
			if bad > 3 {
				break
			}
		}
		if bad == 0 {
			p.t.Logf("%d adverts from %s decoded and re-encoded byte for byte, e.g. %s", len(got), p.speaker(n), got[0])
		}
	}
}

func (p *pair) checkFrame(n *lab.Node, f frame, form string) bool {
	p.t.Helper()
	if f.Err != nil {
		p.t.Errorf("advert from %s does not decode: %s", p.speaker(n), f)
		return false
	}
	a := f.Adv
	ok := true
	fail := func(format string, args ...any) {
		p.t.Errorf("advert from %s: "+format+": %s", append(append([]any{p.speaker(n)}, args...), f)...)
		ok = false
	}
	if f.TTL != 255 {
		fail("TTL %d, want 255", f.TTL)
	}
	if int(a.Version) != p.g.Version || int(a.VRID) != p.g.VRID {
		fail("version %d VRID %d, want %d and %d", a.Version, a.VRID, p.g.Version, p.g.VRID)
	}
	if a.Interval != p.g.Interval {
		fail("interval %v, want %v", a.Interval, p.g.Interval)
	}
	if want := p.wantAddrs(n); !slices.Equal(a.Addresses, want) {
		fail("addresses %v, want %v", a.Addresses, want)
	}
	wantDst := packet.MulticastIPv4
	switch {
	case p.g.Unicast:
		wantDst = p.addr(p.other(n))
	case f.Src.Is6():
		wantDst = packet.MulticastIPv6
	}
	if f.Dst != wantDst {
		fail("destination %s, want %s", f.Dst, wantDst)
	}
	if p.g.Version == 2 {
		pw := p.g.Password
		if n == p.kv && p.g.KubeVRRPPassword != "" {
			pw = p.g.KubeVRRPPassword
		}
		var want [packet.PassLen]byte
		copy(want[:], pw)
		wantType := uint8(packet.AuthNone)
		if pw != "" {
			wantType = packet.AuthPass
		}
		if a.AuthType != wantType || a.AuthData != want {
			fail("auth type %d data %q, want %d %q", a.AuthType, a.AuthData, wantType, want)
		}
	}
	got := checksumForm(f)
	if got == "other" || (form != "" && got != form) {
		fail("checksum form %s, want %s", got, form)
	}
	return ok
}

func (p *pair) other(n *lab.Node) *lab.Node {
	if n == p.ka {
		return p.kv
	}
	return p.ka
}

// firstPriorityZero returns the first priority-0 advert from src in frames.
func firstPriorityZero(frames []frame, src netip.Addr) (frame, bool) {
	for _, f := range from(frames, src) {
		if f.Adv != nil && f.Adv.Priority == 0 {
			return f, true
		}
	}
	return frame{}, false
}

// firstAdvertAfter returns the first non-zero-priority advert from src sent after t.
func firstAdvertAfter(frames []frame, src netip.Addr, t time.Time) (frame, bool) {
	for _, f := range from(frames, src) {
		if f.Adv != nil && f.Adv.Priority != 0 && f.At.After(t) {
			return f, true
		}
	}
	return frame{}, false
}
