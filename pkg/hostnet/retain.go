//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var _ vrrp.AddressRetainer = (*link)(nil)

// infiniteLifetime is INFINITY_LIFE_TIME, the kernel's lifetime of a permanent address.
const infiniteLifetime = 0xFFFFFFFF

// settableAddrFlags are the IFA_F_* flags an RTM_NEWADDR sets (the others are the kernel's
// own: secondary, tentative, deprecated, permanent, ...); a replace keeps these as they were.
const settableAddrFlags = unix.IFA_F_NODAD | unix.IFA_F_OPTIMISTIC | unix.IFA_F_HOMEADDRESS |
	unix.IFA_F_MANAGETEMPADDR | unix.IFA_F_NOPREFIXROUTE | unix.IFA_F_MCAUTOJOIN

// Retain gives those of ps that are on the link and ours (see link.owns) a kernel lifetime
// (valid and preferred), after which the kernel removes them by itself, or with lifetime 0
// makes them permanent again (docs/design.md §4.9.1, vrrp.AddressRetainer). The lifetime is
// rounded up to whole seconds, the kernel's unit. Each address keeps its prefix length, flags
// (IFA_F_NODAD for IPv6), scope and mark. Absent and foreign addresses are left alone.
func (l *link) Retain(ctx context.Context, ps []netip.Prefix, lifetime time.Duration) error {
	if err := l.retain(ctx, ps, lifetime); err != nil {
		return fmt.Errorf("set the lifetime of addresses on %s: %w", l.name, err)
	}
	return nil
}

func (l *link) retain(ctx context.Context, ps []netip.Prefix, lifetime time.Duration) error {
	if err := checkPrefixes(ps); err != nil {
		return err
	}
	if lifetime < 0 {
		return fmt.Errorf("negative lifetime %s", lifetime)
	}
	secs := uint32(infiniteLifetime)
	if lifetime > 0 {
		// Rounded up; a lifetime that long (136 years) is as good as permanent.
		s := (lifetime + time.Second - 1) / time.Second
		if s < infiniteLifetime {
			secs = uint32(s)
		}
	}
	li, err := l.h.lookup(l.name)
	if err != nil {
		return err
	}
	rt, err := l.h.handles()
	if err != nil {
		return err
	}
	have, err := rt.addrs(li.index)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		i := -1
		for j := range have {
			if have[j].Prefix == p {
				i = j
				break
			}
		}
		if i < 0 {
			continue
		}
		if !l.owns(have[i]) {
			l.h.log.Debug("not changing the lifetime of an address we did not add", "interface", l.name, "address", p)
			continue
		}
		if err := rt.setLifetime(have[i], secs, l.metric); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setLifetime replaces the address a (as dumped) with itself and the lifetime secs (valid and
// preferred; infiniteLifetime: permanent), keeping its flags, scope and mark. For IPv4 the
// kernel keeps the flags of an address it replaces, for IPv6 it takes them from the request;
// both take IFA_PROTO from the request (none would clear the mark), and the metric of the
// prefix route (IFA_RT_PRIORITY; none would make it 0), which is metric.
func (r *rtnl) setLifetime(a kernelAddr, secs, metric uint32) error {
	req := r.request(unix.RTM_NEWADDR, unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	family := unix.AF_INET6
	if a.Prefix.Addr().Is4() {
		family = unix.AF_INET
	}
	flags := a.Flags & settableAddrFlags
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(a.Index)
	msg.Prefixlen = uint8(a.Prefix.Bits())
	msg.Flags = uint8(flags)
	msg.Scope = a.Scope
	req.AddData(msg)
	ip := a.Prefix.Addr().AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(flags)))
	if a.Proto != 0 {
		req.AddData(nl.NewRtAttr(ifaProto, []byte{a.Proto}))
	}
	if metric != 0 {
		req.AddData(nl.NewRtAttr(unix.IFA_RT_PRIORITY, nl.Uint32Attr(metric)))
	}
	// struct ifa_cacheinfo: ifa_prefered, ifa_valid, cstamp, tstamp (the last two ignored).
	ci := make([]byte, 16)
	binary.NativeEndian.PutUint32(ci[0:4], secs)
	binary.NativeEndian.PutUint32(ci[4:8], secs)
	req.AddData(nl.NewRtAttr(unix.IFA_CACHEINFO, ci))
	if _, err := execute(req, 0); err != nil {
		return fmt.Errorf("set the lifetime of %s: %w", a.Prefix, err)
	}
	return nil
}

// Adopt takes over those of ps that a predecessor on this host handed over on ifname
// (docs/design.md §4.9.1) and returns them: those on the link and kube-vrrp's, by the mark
// where the kernel keeps marks, else by presence alone (the handoff record says they were
// ours). From then on this Host treats them as added by itself, on every kernel: Bind keeps
// them recorded, Unbind and Retain may change them. Adopt changes nothing on the link.
func (h *Host) Adopt(ifname string, ps []netip.Prefix) ([]netip.Prefix, error) {
	out, err := h.adopt(ifname, ps)
	if err != nil {
		return nil, fmt.Errorf("adopt addresses on %s: %w", ifname, err)
	}
	return out, nil
}

func (h *Host) adopt(ifname string, ps []netip.Prefix) ([]netip.Prefix, error) {
	if err := checkPrefixes(ps); err != nil {
		return nil, err
	}
	vl, err := h.Link(ifname)
	if err != nil {
		return nil, err
	}
	l := vl.(*link)
	li, err := h.lookup(ifname)
	if err != nil {
		return nil, err
	}
	rt, err := h.handles()
	if err != nil {
		return nil, err
	}
	have, err := rt.addrs(0) // all links: whether this kernel keeps marks at all
	if err != nil {
		return nil, err
	}
	kernelMarks := false
	on := map[netip.Prefix]kernelAddr{}
	for _, a := range have {
		kernelMarks = kernelMarks || a.Proto != 0
		if a.Index == li.index {
			on[a.Prefix] = a
		}
	}
	var out []netip.Prefix
	for _, p := range ps {
		a, ok := on[p]
		if !ok || (a.Proto != 0 && !a.ours()) || (kernelMarks && !h.marksOff && !a.ours()) {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, nil
	}
	l.mu.Lock()
	for _, p := range out {
		l.added[p] = true
	}
	l.mu.Unlock()
	h.record(ifname, out, true)
	return out, nil
}
