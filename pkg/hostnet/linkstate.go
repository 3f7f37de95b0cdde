//go:build linux

package hostnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var _ vrrp.LinkStateWatcher = (*link)(nil)

// Operational states (RFC 2863 ifOperStatus as the kernel reports it in IFLA_OPERSTATE,
// include/uapi/linux/if.h), missing from x/sys/unix.
const (
	ifOperUnknown = 0
	ifOperUp      = 6
)

// kernelLink is the state of one link as the kernel reports it.
type kernelLink struct {
	Index int
	// Name is IFLA_IFNAME; empty when the message has none.
	Name  string
	Flags uint32 // ifi_flags: IFF_*
	// Oper is IFLA_OPERSTATE, valid when HasOper.
	Oper    uint8
	HasOper bool
}

// up reports whether the link can carry VRRP: administratively up (IFF_UP), with carrier
// (IFF_LOWER_UP), and operationally up or unknown, the state of drivers that do not track it
// (dummy, loopback, some virtual NICs). Without IFLA_OPERSTATE, IFF_RUNNING says the same
// (the kernel sets it exactly for those two states). keepalived's test is IFF_UP and
// IFF_RUNNING; requiring the carrier as well catches a link whose operational state lags.
func (k kernelLink) up() bool {
	if k.Flags&unix.IFF_UP == 0 || k.Flags&unix.IFF_LOWER_UP == 0 {
		return false
	}
	if !k.HasOper {
		return k.Flags&unix.IFF_RUNNING != 0
	}
	return k.Oper == ifOperUp || k.Oper == ifOperUnknown
}

// parseLinkMsg decodes an RTM_NEWLINK / RTM_DELLINK payload (struct ifinfomsg and its
// attributes), checking every length.
func parseLinkMsg(b []byte) (kernelLink, uint8, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return kernelLink{}, 0, fmt.Errorf("link message: %d bytes, want at least %d", len(b), unix.SizeofIfInfomsg)
	}
	family := b[0]
	k := kernelLink{
		Index: int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		Flags: binary.NativeEndian.Uint32(b[8:12]),
	}
	err := walkAttrs(b[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
		switch {
		case typ == unix.IFLA_OPERSTATE && len(v) >= 1:
			k.Oper, k.HasOper = v[0], true
		case typ == unix.IFLA_IFNAME:
			// A NUL-terminated string of at most IFNAMSIZ bytes.
			if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			if len(v) < unix.IFNAMSIZ {
				k.Name = string(v)
			}
		}
	})
	if err != nil {
		return kernelLink{}, 0, fmt.Errorf("link message: %w", err)
	}
	return k, family, nil
}

// link asks the kernel for the state of the link with index; a missing link gives an error
// wrapping ENODEV.
func (r *rtnl) link(index int) (kernelLink, error) {
	req := r.request(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := execute(req, unix.RTM_NEWLINK)
	if err != nil {
		return kernelLink{}, fmt.Errorf("get link %d: %w", index, err)
	}
	for _, m := range msgs {
		k, _, err := parseLinkMsg(m)
		if err != nil {
			return kernelLink{}, fmt.Errorf("get link %d: %w", index, err)
		}
		if k.Index == index {
			return k, nil
		}
	}
	return kernelLink{}, fmt.Errorf("get link %d: no answer for it: %w", index, unix.ENODEV)
}

// WatchLinkState calls fn, from the calling goroutine, with whether the link can carry VRRP
// (administratively up, with carrier, operationally up; see kernelLink.up): first the current
// state, then every change. It follows the kernel's link notifications (RTNLGRP_LINK) in the
// Host's namespace and re-reads the link when notifications were lost. It blocks until ctx is
// done and then returns nil. It follows the interface by name: a link that is deleted is
// reported down, and one created again under the same name (a VLAN, bond or netplan rebuild)
// is followed from then on, its state reported as for the first.
func (l *link) WatchLinkState(ctx context.Context, fn func(up bool)) error {
	if err := l.watchState(ctx, fn); err != nil {
		return fmt.Errorf("watch link state of %s: %w", l.name, err)
	}
	return nil
}

func (l *link) watchState(ctx context.Context, fn func(up bool)) error {
	li, err := l.h.lookup(l.name)
	if err != nil {
		return err
	}
	rt, err := l.h.handles()
	if err != nil {
		return err
	}
	var last, reported bool
	report := func(up bool) {
		if reported && up == last {
			return
		}
		last, reported = up, true
		fn(up)
	}
	tr := indexTracker{name: l.name, index: li.index}
	// Subscribed first, read second: a change in between is in the read. Events queued
	// meanwhile may replay older states, but in order, so the last one is the current state.
	resync := func() error {
		k, err := rt.link(tr.index)
		if errors.Is(err, unix.ENODEV) {
			// Gone; perhaps already created again under the same name.
			nli, lerr := l.h.lookup(l.name)
			if lerr != nil {
				report(false)
				return nil
			}
			tr.index = nli.index
			k, err = rt.link(tr.index)
		}
		switch {
		case errors.Is(err, unix.ENODEV):
			report(false)
		case err != nil:
			return err
		default:
			report(k.up())
		}
		return nil
	}
	return l.follow(ctx, "link", []uint16{unix.RTM_NEWLINK, unix.RTM_DELLINK}, resync,
		func(m syscall.NetlinkMessage) {
			k, ok := tr.follow(l.h, m)
			if !ok {
				return
			}
			if m.Header.Type == unix.RTM_DELLINK {
				report(false)
				return
			}
			report(k.up())
		})
}

// indexTracker follows an interface by name through link messages: the index it has now, or
// the one it gets when it is created again after being deleted.
type indexTracker struct {
	name  string
	index int
}

// follow reads a link message and reports whether it concerns the tracked interface, switching
// to a new index when a link of the tracked name appears under one. Only the link's own
// messages count (AF_UNSPEC): a bridge sends AF_BRIDGE ones for its ports, RTM_DELLINK
// included when a port merely leaves the bridge.
func (t *indexTracker) follow(h *Host, m syscall.NetlinkMessage) (kernelLink, bool) {
	k, family, err := parseLinkMsg(m.Data)
	if err != nil {
		h.log.Debug("ignoring a link event", "err", err)
		return k, false
	}
	if family != unix.AF_UNSPEC {
		return k, false
	}
	switch {
	case k.Index == t.index:
		return k, true
	case m.Header.Type == unix.RTM_NEWLINK && k.Name == t.name:
		h.log.Info("interface created again; following it", "interface", t.name, "index", k.Index, "old index", t.index)
		t.index = k.Index
		return k, true
	}
	return k, false
}
