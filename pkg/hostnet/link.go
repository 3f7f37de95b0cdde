//go:build linux

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// link implements vrrp.Link for one interface of a Host.
type link struct {
	h    *Host
	name string

	mu sync.Mutex
	// want holds the addresses Bind was asked for and Unbind not since: WatchRemoved reports
	// those that disappear, and nothing else, so an Unbind is never reported as a removal.
	want map[netip.Prefix]bool
	// added holds the addresses this process added; it proves ownership only on kernels that
	// drop the IFA_PROTO mark.
	added map[netip.Prefix]bool
}

// Bind adds ps to the link, marked as ours (see AddrProto); IPv6 addresses without duplicate
// address detection. An address already on the link, ours or not, counts as bound and is left
// as it is; in particular an unmarked address stays unmarked, so Unbind will not remove it.
func (l *link) Bind(ctx context.Context, ps []netip.Prefix) error {
	if err := l.bind(ctx, ps); err != nil {
		return fmt.Errorf("bind addresses on %s: %w", l.name, err)
	}
	return nil
}

func (l *link) bind(ctx context.Context, ps []netip.Prefix) error {
	if err := checkPrefixes(ps); err != nil {
		return err
	}
	li, err := l.h.lookup(l.name)
	if err != nil {
		return err
	}
	_, rt, err := l.h.handles()
	if err != nil {
		return err
	}
	// Recorded before they are added, in one write: a kill in between leaves a record of an
	// address that is not there (harmless), never an address without a record. An address
	// already on the link is not recorded (unless this process added it): it may be the
	// node's own, which a record would have the next agent remove. Those that fail are taken
	// out again at the end.
	present, err := rt.addrs(li.index)
	if err != nil {
		return err
	}
	var fresh []netip.Prefix
	l.mu.Lock()
	for _, p := range ps {
		if l.added[p] || !slices.ContainsFunc(present, func(a kernelAddr) bool { return a.Prefix == p }) {
			fresh = append(fresh, p)
		}
	}
	l.mu.Unlock()
	l.h.record(l.name, fresh, true)
	var (
		errs  []error
		unrec []netip.Prefix
		tried int
	)
	defer func() {
		// Never forget one this process added (and so recorded) earlier.
		l.mu.Lock()
		drop := slices.DeleteFunc(append(unrec, ps[tried:]...), func(p netip.Prefix) bool { return l.added[p] })
		l.mu.Unlock()
		l.h.record(l.name, drop, false)
	}()
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		tried++
		err := rt.add(li.index, p, !l.h.marksOff)
		switch {
		case err == nil:
			l.mu.Lock()
			l.added[p], l.want[p] = true, true
			l.mu.Unlock()
			if l.h.markSupport() == marksUnknown {
				l.probeMarks(rt, li.index, p)
			}
		case errors.Is(err, unix.EEXIST):
			l.mu.Lock()
			l.want[p] = true
			ours := l.added[p]
			l.mu.Unlock()
			if !ours {
				unrec = append(unrec, p) // not ours to remove after a restart
			}
		default:
			unrec = append(unrec, p)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// probeMarks learns, from an address just added, whether the kernel keeps IFA_PROTO.
func (l *link) probeMarks(rt *rtnl, index int, p netip.Prefix) {
	have, err := rt.addrs(index)
	if err != nil {
		return // try again at the next Bind
	}
	for _, a := range have {
		if a.Prefix == p {
			if a.ours() {
				l.h.setMarkSupport(marksKept)
			} else {
				l.h.setMarkSupport(marksDropped)
			}
			return
		}
	}
}

// owns reports whether a was added by this package: it carries the mark, or the kernel drops
// marks and this process added it.
func (l *link) owns(a kernelAddr) bool {
	if a.ours() {
		return true
	}
	if a.Proto != 0 || l.h.markSupport() != marksDropped {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.added[a.Prefix]
}

// Unbind removes those of ps that are on the link and ours. Addresses that are absent, or
// present without our mark (the node's own address, another tool's), are left alone.
func (l *link) Unbind(ctx context.Context, ps []netip.Prefix) error {
	if err := l.unbind(ctx, ps); err != nil {
		return fmt.Errorf("unbind addresses on %s: %w", l.name, err)
	}
	return nil
}

func (l *link) unbind(ctx context.Context, ps []netip.Prefix) error {
	if err := checkPrefixes(ps); err != nil {
		return err
	}
	// Forget the wish first so WatchRemoved does not report our own removal.
	l.mu.Lock()
	for _, p := range ps {
		delete(l.want, p)
	}
	l.mu.Unlock()
	li, err := l.h.lookup(l.name)
	if err != nil {
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok || errors.Is(err, unix.ENODEV) {
			// The link took its addresses with it: forget them, or an address someone adds
			// on a link re-created under the name would pass for ours.
			for _, p := range ps {
				l.forget(p)
			}
			return nil
		}
		return err
	}
	_, rt, err := l.h.handles()
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
		i := slices.IndexFunc(have, func(a kernelAddr) bool { return a.Prefix == p })
		if i < 0 {
			l.forget(p)
			continue
		}
		if !l.owns(have[i]) {
			l.h.log.Debug("not removing an address we did not add", "interface", l.name, "address", p)
			continue
		}
		if err := rt.del(li.index, p); err != nil && !gone(err) {
			errs = append(errs, err)
			continue
		}
		l.forget(p)
	}
	return errors.Join(errs...)
}

func (l *link) forget(p netip.Prefix) {
	l.mu.Lock()
	delete(l.added, p)
	l.mu.Unlock()
	l.h.record(l.name, []netip.Prefix{p}, false)
}

// gone reports whether a delete failed only because the address was not there.
func gone(err error) bool {
	return errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)
}

func checkPrefixes(ps []netip.Prefix) error {
	for _, p := range ps {
		if !p.IsValid() || p.Addr().Is4In6() {
			return fmt.Errorf("invalid address %s", p)
		}
	}
	return nil
}

// WatchRemoved calls fn, from the calling goroutine, for every address Bind added or found
// and Unbind has not removed since, when it disappears from the link: deleted by someone else,
// or already gone when the watch starts. It blocks until ctx is done and then returns nil.
// It follows the interface by name: when the link is deleted its addresses go with it (and are
// reported), and when it is created again the watch follows the new link.
func (l *link) WatchRemoved(ctx context.Context, fn func(netip.Prefix)) error {
	if err := l.watch(ctx, fn); err != nil {
		return fmt.Errorf("watch addresses on %s: %w", l.name, err)
	}
	return nil
}

func (l *link) watch(ctx context.Context, fn func(netip.Prefix)) error {
	li, err := l.h.lookup(l.name)
	if err != nil {
		return err
	}
	_, rt, err := l.h.handles()
	if err != nil {
		return err
	}
	tr := indexTracker{name: l.name, index: li.index}
	// Subscribed first, dumped second: a removal in between is seen by the dump. The events
	// queued meanwhile may then report it again; missing (reported and not re-added since)
	// keeps each removal to one call.
	missing := map[netip.Prefix]bool{}
	resync := func() error {
		if nli, err := l.h.lookup(l.name); err == nil {
			tr.index = nli.index
		}
		have, err := rt.addrs(tr.index)
		if err != nil {
			return err
		}
		for _, p := range l.wanted() {
			if !slices.ContainsFunc(have, func(a kernelAddr) bool { return a.Prefix == p }) && !missing[p] {
				missing[p] = true
				fn(p)
			}
		}
		return nil
	}
	return l.follow(ctx, "address",
		[]uint16{unix.RTM_NEWADDR, unix.RTM_DELADDR, unix.RTM_NEWLINK}, resync, func(m syscall.NetlinkMessage) {
			if m.Header.Type == unix.RTM_NEWLINK {
				old := tr.index
				if _, ok := tr.follow(l.h, m); ok && tr.index != old {
					// A new link: whatever is wanted and not on it is missing.
					if err := resync(); err != nil {
						l.h.log.Warn("reading the addresses of a recreated link", "interface", l.name, "err", err)
					}
				}
				return
			}
			a, err := parseAddrMsg(m.Data)
			if err != nil {
				l.h.log.Debug("ignoring an address event", "err", err)
				return
			}
			switch {
			case a.Index != tr.index:
			case m.Header.Type == unix.RTM_NEWADDR:
				delete(missing, a.Prefix)
			case l.wants(a.Prefix) && !missing[a.Prefix]:
				missing[a.Prefix] = true
				fn(a.Prefix)
			}
		})
}

func (l *link) wants(p netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.want[p]
}

func (l *link) wanted() []netip.Prefix {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := make([]netip.Prefix, 0, len(l.want))
	for p := range l.want {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return ps
}
