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

	wmu sync.Mutex
	// rw is the follow the WatchRemoved calls share while any runs; guarded by wmu.
	rw *removalWatch

	// frames sends the link's announcements (announce.go); closed with the Host.
	frames frameSocket
	// metric, when not 0, is the metric of the prefix routes of the addresses Bind adds and
	// Retain replaces (IFA_RT_PRIORITY): a virtual MAC interface's (vmac.go). Set before use.
	metric uint32
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
	rt, err := l.h.handles()
	if err != nil {
		return err
	}
	// Recorded before they are added, in one write: a kill in between leaves a record of an
	// address that is not there (harmless), never an address without a record. An address
	// already on the link is not recorded (unless this process added it): it may be the
	// node's own, which a record would have the next agent remove. Those that fail are taken
	// out again at the end.
	found, err := l.present(ctx, rt, li.index, ps)
	if err != nil {
		return err
	}
	var fresh []netip.Prefix
	l.mu.Lock()
	for i, p := range ps {
		if l.added[p] || !found[i].present {
			fresh = append(fresh, p)
		}
	}
	l.mu.Unlock()
	l.h.record(l.name, fresh, true)
	if testHookRecorded != nil {
		testHookRecorded(l.name, fresh)
	}
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
		err := rt.add(li.index, p, !l.h.marksOff, l.metric)
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

// testHookRecorded, when set by a test, is called by Bind between recording the addresses and
// adding them.
var testHookRecorded func(ifname string, recorded []netip.Prefix)

// present reports, for each of ps, whether it is on the link with index and its IFA_PROTO, as
// the link is after the call began: an IPv4 address from the Host's address view (or else a
// dump), an IPv6 address by asking the kernel for it. The kernel notifies an IPv4 address
// added or removed before it answers the request, so the view's barrier covers it; an IPv6
// address added is notified later, from the duplicate address detection work (even without
// DAD), so the view could miss one just added.
func (l *link) present(ctx context.Context, rt *rtnl, index int, ps []netip.Prefix) ([]viewAddr, error) {
	out := make([]viewAddr, len(ps))
	var v4 []netip.Prefix
	var at []int // of v4 in ps
	for i, p := range ps {
		if p.Addr().Is4() {
			v4, at = append(v4, p), append(at, i)
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, ok, err := rt.addr6(index, p.Addr())
		if err != nil {
			return nil, err
		}
		if ok && a.Prefix == p {
			out[i] = viewAddr{present: true, proto: a.Proto}
		}
	}
	if len(v4) == 0 {
		return out, nil
	}
	found, ok := l.h.events.present(ctx, l.h, index, v4)
	if !ok {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		have, err := rt.addrs(index)
		if err != nil {
			return nil, err
		}
		byPrefix := make(map[netip.Prefix]uint8, len(have))
		for _, a := range have {
			byPrefix[a.Prefix] = a.Proto
		}
		found = make([]viewAddr, len(v4))
		for j, p := range v4 {
			proto, ok := byPrefix[p]
			found[j] = viewAddr{present: ok, proto: proto}
		}
	}
	for j, i := range at {
		out[i] = found[j]
	}
	return out, nil
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
			l.forget(ps)
			return nil
		}
		return err
	}
	rt, err := l.h.handles()
	if err != nil {
		return err
	}
	found, err := l.present(ctx, rt, li.index, ps)
	if err != nil {
		return err
	}
	var (
		errs    []error
		removed []netip.Prefix // or absent
	)
	// Taken out of the record in one write once removed: a kill before leaves a record of
	// addresses that are not there (harmless).
	defer func() { l.forget(removed) }()
	for i, p := range ps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if !found[i].present {
			removed = append(removed, p)
			continue
		}
		if !l.owns(kernelAddr{Index: li.index, Prefix: p, Proto: found[i].proto}) {
			l.h.log.Debug("not removing an address we did not add", "interface", l.name, "address", p)
			continue
		}
		if err := rt.del(li.index, p); err != nil && !gone(err) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return errors.Join(errs...)
}

// unwant forgets that ps were asked for, so that WatchRemoved does not report them when they
// go: before a removal that is not Unbind's own (the link set down).
func (l *link) unwant(ps []netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range ps {
		delete(l.want, p)
	}
}

// forget drops ps from what this process added and from the record.
func (l *link) forget(ps []netip.Prefix) {
	if len(ps) == 0 {
		return
	}
	l.mu.Lock()
	for _, p := range ps {
		delete(l.added, p)
	}
	l.mu.Unlock()
	l.h.record(l.name, ps, false)
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
//
// Every WatchRemoved of a link shares one follow of its addresses (removalWatch): with an
// instance per address, each watching the link, a follow per call would handle every event of
// the link once per instance, O(N^2) over a takeover of N addresses.
func (l *link) WatchRemoved(ctx context.Context, fn func(netip.Prefix)) error {
	w := l.joinWatch()
	defer l.leaveWatch(w)
	for {
		ps, ended, err := l.takeRemoved(w)
		for _, p := range ps {
			if ctx.Err() != nil {
				return nil
			}
			fn(p)
		}
		if ended {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch addresses on %s: %w", l.name, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		}
	}
}

// removalWatch is the follow of a link's addresses that its WatchRemoved calls share, from the
// first until the last returns.
type removalWatch struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the follow has returned

	// Guarded by link.wmu.
	watchers map[*removalWatcher]bool
	// missing holds the wanted addresses reported gone and not back since: each removal is
	// reported once, and a watch that joins later is told of them.
	missing map[netip.Prefix]bool
	ended   bool  // the follow has returned
	err     error // why, unless it was stopped
}

// removalWatcher is one WatchRemoved call: the removals not yet passed to its fn.
type removalWatcher struct {
	rw   *removalWatch
	wake chan struct{} // signalled (coalesced) when there is something to take
	// Guarded by link.wmu.
	queue  []netip.Prefix
	queued map[netip.Prefix]bool
}

func (w *removalWatcher) push(p netip.Prefix) {
	if w.queued[p] {
		return
	}
	w.queued[p] = true
	w.queue = append(w.queue, p)
	w.signal()
}

func (w *removalWatcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// joinWatch registers a WatchRemoved call, starting the link's follow if none runs, and queues
// the removals already known.
func (l *link) joinWatch() *removalWatcher {
	w := &removalWatcher{wake: make(chan struct{}, 1), queued: map[netip.Prefix]bool{}}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	rw := l.rw
	if rw == nil || rw.ended {
		ctx, cancel := context.WithCancel(context.Background())
		rw = &removalWatch{cancel: cancel, done: make(chan struct{}),
			watchers: map[*removalWatcher]bool{}, missing: map[netip.Prefix]bool{}}
		l.rw = rw
		go l.runWatch(ctx, rw)
	}
	rw.watchers[w] = true
	w.rw = rw
	for _, p := range sortedPrefixes(rw.missing) {
		w.push(p)
	}
	return w
}

// leaveWatch unregisters w; the last one out stops the follow and waits for it.
func (l *link) leaveWatch(w *removalWatcher) {
	l.wmu.Lock()
	rw := w.rw
	delete(rw.watchers, w)
	last := len(rw.watchers) == 0
	if last && l.rw == rw {
		l.rw = nil
	}
	l.wmu.Unlock()
	if last {
		rw.cancel()
		<-rw.done
	}
}

// takeRemoved returns the removals queued for w, and whether (and why) the follow has ended.
func (l *link) takeRemoved(w *removalWatcher) (ps []netip.Prefix, ended bool, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	ps, w.queue = w.queue, nil
	clear(w.queued)
	return ps, w.rw.ended, w.rw.err
}

func (l *link) runWatch(ctx context.Context, rw *removalWatch) {
	defer close(rw.done)
	err := l.watch(ctx, rw)
	if err == nil && ctx.Err() == nil {
		err = errors.New("stopped")
	}
	l.wmu.Lock()
	rw.ended, rw.err = true, err
	for w := range rw.watchers {
		w.signal()
	}
	l.wmu.Unlock()
}

// report tells every watcher of rw that p, wanted, is gone, unless they were told already.
func (l *link) report(rw *removalWatch, p netip.Prefix) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if rw.missing[p] {
		return
	}
	rw.missing[p] = true
	for w := range rw.watchers {
		w.push(p)
	}
}

func (l *link) watch(ctx context.Context, rw *removalWatch) error {
	li, err := l.h.lookup(l.name)
	if err != nil {
		return err
	}
	rt, err := l.h.handles()
	if err != nil {
		return err
	}
	tr := indexTracker{name: l.name, index: li.index}
	// Subscribed first, dumped second: a removal in between is seen by the dump. The events
	// queued meanwhile may then report it again; missing (reported and not re-added since)
	// keeps each removal to one report.
	resync := func() error {
		if nli, err := l.h.lookup(l.name); err == nil {
			tr.index = nli.index
		}
		have, err := rt.addrs(tr.index)
		if errors.Is(err, unix.ENODEV) {
			// The link is gone (a dump of one link's addresses says so, where a dump of all
			// said nothing): every wanted address is missing, and the watch goes on to see
			// the link come back.
			have, err = nil, nil
		}
		if err != nil {
			return err
		}
		on := make(map[netip.Prefix]bool, len(have))
		for _, a := range have {
			on[a.Prefix] = true
		}
		for _, p := range l.wanted() {
			if !on[p] {
				l.report(rw, p)
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
				l.wmu.Lock()
				delete(rw.missing, a.Prefix)
				l.wmu.Unlock()
			case l.wants(a.Prefix):
				l.report(rw, a.Prefix)
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
	return sortedPrefixes(l.want)
}

// sortedPrefixes returns the keys of m by address.
func sortedPrefixes(m map[netip.Prefix]bool) []netip.Prefix {
	ps := make([]netip.Prefix, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return ps
}
