//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Bounds of the address view: past them it is turned off, and Bind and Unbind dump the
// addresses as they would without it.
const (
	maxViewLinks = 256
	maxViewAddrs = 1 << 16
)

// addrView keeps the addresses of the links Bind and Unbind work on (each link from the first
// call that names it), with their IFA_PROTO, from the Host's rtnetlink subscription, so that
// they need not dump every address of the namespace for each call: with N addresses on a link,
// binding them one by one would cost O(N^2).
//
// A view answers for the link as it is after the question was asked, as a dump made then
// would: the question sends a barrier on the subscription socket (an NLMSG_NOOP asking for an
// acknowledgement), and is answered once the reader has applied every event queued before the
// acknowledgement, that is every change the kernel notified before the barrier. That is every
// change made before it for IPv4, whose changes the kernel notifies before it answers their
// request, but not for an IPv6 address added, which is notified later, from its duplicate
// address detection work: link.present asks the kernel for those one by one. A view is built
// (synced) by a dump of the addresses, on the Host's request socket, onto which every event
// read since just before the dump is replayed in order: each event states an address's
// presence as of its change, so the last one of each address is its present state. When the
// kernel drops events (ENOBUFS), the view is synced again before it answers. All of it is
// guarded by rtEvents.mu.
type addrView struct {
	// on keeps the socket open, from the first question until the Host is closed; closed
	// is set then, for good.
	on, closed bool
	// broken turns the view off until the socket is opened again: too many addresses, or
	// dumps that keep failing.
	broken bool
	state  viewState
	// resync asks for another sync once the one in flight is done: a link was added or
	// events were lost meanwhile.
	resync bool
	links  map[int]*viewLink // by link index
	n      int               // addresses in links
	// clock orders barriers and syncs: a sync whose dump began after a barrier answers for it.
	clock   uint64
	waiters map[uint32]*viewWaiter // by the barrier's sequence number
	// gen counts resets (the socket closed or failed): an answer spans no reset.
	gen uint64
	// syncs counts the syncs done, for tests.
	syncs uint64
}

type viewState uint8

const (
	viewUnsynced viewState = iota
	viewSyncing
	viewSynced
)

// viewLink is the addresses of one link and their IFA_PROTO; synced once a sync filled it.
type viewLink struct {
	addrs  map[netip.Prefix]uint8
	synced bool
}

// viewWaiter is a question waiting for the view to have caught up with its barrier.
type viewWaiter struct {
	clock uint64
	acked bool          // the barrier's acknowledgement was read
	done  chan struct{} // closed once answered, with ok
	ok    bool
}

// viewAddr is what the view says of one address.
type viewAddr struct {
	present bool
	proto   uint8 // IFA_PROTO, when present
}

// present reports, for each of ps, whether it is on the link with index, and its IFA_PROTO, as
// the link is after the call began. ok is false when the view cannot tell (it is off, ctx
// ended, the subscription failed): the caller dumps the addresses instead.
func (e *rtEvents) present(ctx context.Context, h *Host, index int, ps []netip.Prefix) ([]viewAddr, bool) {
	e.mu.Lock()
	v := &e.view
	if v.closed {
		e.mu.Unlock()
		return nil, false
	}
	if err := e.openLocked(h); err != nil {
		e.mu.Unlock()
		return nil, false
	}
	v.on = true
	if v.broken {
		e.mu.Unlock()
		return nil, false
	}
	if v.links == nil {
		v.links, v.waiters = map[int]*viewLink{}, map[uint32]*viewWaiter{}
	}
	if _, ok := v.links[index]; !ok {
		if len(v.links) == maxViewLinks {
			e.mu.Unlock()
			return nil, false
		}
		v.links[index] = &viewLink{addrs: map[netip.Prefix]uint8{}}
		e.syncLocked()
	}
	v.clock++
	w := &viewWaiter{clock: v.clock, done: make(chan struct{})}
	seq, gen := uint32(w.clock), v.gen
	if err := sendBarrier(e.sock, seq); err != nil {
		e.mu.Unlock()
		h.log.Debug("address view: sending a barrier", "err", err)
		return nil, false
	}
	v.waiters[seq] = w
	e.mu.Unlock()

	select {
	case <-w.done:
	case <-ctx.Done():
		e.mu.Lock()
		if v.waiters[seq] == w {
			delete(v.waiters, seq)
		}
		e.mu.Unlock()
		return nil, false
	}
	if !w.ok {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v.gen != gen {
		return nil, false
	}
	out := make([]viewAddr, len(ps))
	vl, ok := v.links[index]
	switch {
	case !ok:
		// Deleted since (RTM_DELLINK), and its addresses with it.
		return out, true
	case !vl.synced:
		return nil, false
	}
	for i, p := range ps {
		proto, ok := vl.addrs[p]
		out[i] = viewAddr{present: ok, proto: proto}
	}
	return out, true
}

// sendBarrier sends an NLMSG_NOOP with seq on s, to the kernel, asking for an acknowledgement:
// it is queued on s behind every event already queued there.
func sendBarrier(s *nl.NetlinkSocket, seq uint32) error {
	b := make([]byte, unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(b[0:4], unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint16(b[4:6], unix.NLMSG_NOOP)
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	// Addressed to the kernel alone: the socket's own address names its groups.
	return unix.Sendto(s.GetFd(), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// syncLocked starts a sync, or asks for another one after the sync in flight.
func (e *rtEvents) syncLocked() {
	v := &e.view
	if v.state == viewSyncing {
		v.resync = true
		return
	}
	v.state = viewSyncing
	go e.sync(e.h, e.sock)
}

// sync builds the view of the links it tracks from a dump, replays the events read since, and
// answers the questions it covers. It gives up when sock is no longer the subscription.
func (e *rtEvents) sync(h *Host, sock *nl.NetlinkSocket) {
	v := &e.view
	for failures := 0; ; {
		e.mu.Lock()
		if e.sock != sock {
			e.mu.Unlock()
			return
		}
		v.resync = false
		from := e.tail
		v.clock++
		clock := v.clock
		e.mu.Unlock()

		rt, err := h.handles()
		var have []kernelAddr
		if err == nil {
			have, err = rt.addrs(0)
		}

		e.mu.Lock()
		if e.sock != sock {
			e.mu.Unlock()
			return
		}
		if err != nil {
			// The third failure in a row turns the view off.
			if failures++; failures == 3 {
				h.log.Warn("address view off: dumping the addresses failed; Bind and Unbind dump them each time", "err", err)
				v.breakLocked()
				e.mu.Unlock()
				return
			}
			e.mu.Unlock()
			continue
		}
		failures = 0
		if v.resync {
			e.mu.Unlock()
			continue
		}
		links := make(map[int]*viewLink, len(v.links))
		for index := range v.links {
			links[index] = &viewLink{addrs: map[netip.Prefix]uint8{}, synced: true}
		}
		n := 0
		for _, a := range have {
			if vl, ok := links[a.Index]; ok {
				vl.addrs[a.Prefix] = a.Proto
				n++
			}
		}
		lost := false
		for ev := from.next; ev != nil && !lost; ev = ev.next {
			if ev.lost {
				lost = true
				break
			}
			n += applyAddrEvent(links, ev.msg)
		}
		if lost {
			// The reader has asked for another sync: this one could not see everything.
			e.mu.Unlock()
			continue
		}
		v.links, v.n, v.state = links, n, viewSynced
		v.syncs++
		if v.n > maxViewAddrs {
			h.log.Warn("address view off: too many addresses; Bind and Unbind dump them each time", "addresses", v.n)
			v.breakLocked()
			e.mu.Unlock()
			return
		}
		for seq, w := range v.waiters {
			if w.acked || w.clock < clock {
				w.ok = true
				close(w.done)
				delete(v.waiters, seq)
			}
		}
		e.mu.Unlock()
		return
	}
}

// applyLocked applies an event the reader has read, while the view is synced.
func (v *addrView) applyLocked(m syscall.NetlinkMessage) {
	if v.state != viewSynced {
		return
	}
	v.n += applyAddrEvent(v.links, m)
	if v.n > maxViewAddrs {
		v.breakLocked()
	}
}

// applyAddrEvent applies an address or link event to links and returns the change in the
// number of addresses.
func applyAddrEvent(links map[int]*viewLink, m syscall.NetlinkMessage) int {
	switch m.Header.Type {
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(m.Data) < unix.SizeofIfAddrmsg {
			return 0
		}
		vl, ok := links[int(binary.NativeEndian.Uint32(m.Data[4:8]))]
		if !ok {
			return 0
		}
		a, err := parseAddrMsg(m.Data)
		if err != nil {
			return 0
		}
		_, had := vl.addrs[a.Prefix]
		if m.Header.Type == unix.RTM_NEWADDR {
			vl.addrs[a.Prefix] = a.Proto
			if !had {
				return 1
			}
			return 0
		}
		delete(vl.addrs, a.Prefix)
		if had {
			return -1
		}
	case unix.RTM_DELLINK:
		// The link's own message (AF_UNSPEC): a bridge sends AF_BRIDGE ones for its ports,
		// RTM_DELLINK included when a port merely leaves it.
		if len(m.Data) < unix.SizeofIfInfomsg || m.Data[0] != unix.AF_UNSPEC {
			return 0
		}
		index := int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
		if vl, ok := links[index]; ok {
			delete(links, index)
			return -len(vl.addrs)
		}
	}
	return 0
}

// answerLocked takes an answer to the subscription socket's own requests: a barrier's
// acknowledgement.
func (v *addrView) answerLocked(m syscall.NetlinkMessage) {
	if m.Header.Type != unix.NLMSG_ERROR {
		return
	}
	w := v.waiters[m.Header.Seq]
	if w == nil {
		return
	}
	if len(m.Data) < 4 || binary.NativeEndian.Uint32(m.Data[0:4]) != 0 {
		// Refused: the caller dumps.
		delete(v.waiters, m.Header.Seq)
		close(w.done)
		return
	}
	w.acked = true
	if v.state == viewSynced {
		w.ok = true
		delete(v.waiters, m.Header.Seq)
		close(w.done)
	}
}

// lostLocked notes that the kernel dropped events: the view syncs again before it answers.
func (e *rtEvents) lostLocked() {
	v := &e.view
	if v.links == nil || v.broken {
		return
	}
	if v.state == viewSynced {
		v.state = viewUnsynced
	}
	e.syncLocked()
}

// breakLocked turns the view off, failing the questions waiting (they dump).
func (v *addrView) breakLocked() {
	v.broken = true
	v.failWaitersLocked()
	v.links, v.n, v.state = nil, 0, viewUnsynced
}

// resetLocked forgets the view, as its socket is closed.
func (v *addrView) resetLocked() {
	v.failWaitersLocked()
	v.links, v.n, v.state, v.resync, v.broken = nil, 0, viewUnsynced, false, false
	v.gen++
}

func (v *addrView) failWaitersLocked() {
	for seq, w := range v.waiters {
		close(w.done)
		delete(v.waiters, seq)
	}
}

// stopView turns the view off for good (Host.Close), closing the socket if no follow uses it.
func (e *rtEvents) stopView() {
	e.mu.Lock()
	e.view.on, e.view.closed = false, true
	e.view.failWaitersLocked()
	e.closeIdleLocked()
}
