//go:build linux

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// follow keeps a view of l in step with the kernel's rtnetlink events, for WatchRemoved
// (addresses) and WatchLinkState (the link). See Host.follow.
func (l *link) follow(ctx context.Context, what string, types []uint16, resync func() error, handle func(syscall.NetlinkMessage)) error {
	return l.h.follow(ctx, what, l.name, types, resync, handle)
}

// follow keeps a view of the interface ifname in step with the kernel's rtnetlink events. It
// subscribes first and calls resync second, so that a change in between is seen by resync;
// then it passes every message of the kernel whose type is one of types to handle, from the
// calling goroutine, and calls resync again when events were lost. It returns nil once ctx
// ends, else the first error. what names the events in errors and logs ("address", "link").
//
// Every follow of a Host shares one subscription (rtEvents): one socket and one reader for
// the whole namespace, rather than a socket, a reader and its 64 KiB receive buffer per
// instance and watch, each woken by every event of every link.
func (h *Host) follow(ctx context.Context, what, ifname string, types []uint16, resync func() error, handle func(syscall.NetlinkMessage)) error {
	sub, err := h.events.subscribe(h, types)
	if err != nil {
		return fmt.Errorf("subscribe to %s events: %w", what, err)
	}
	defer h.events.unsubscribe(sub)
	if err := resync(); err != nil {
		return err
	}
	for {
		items, more, err := h.events.take(sub)
		for _, it := range items {
			if ctx.Err() != nil {
				return nil
			}
			if it.lost {
				h.log.Warn(what+" events lost; resynchronising", "interface", ifname)
				if err := resync(); err != nil {
					return err
				}
				continue
			}
			handle(it.msg)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive %s events: %w", what, err)
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub.wake:
		}
	}
}

// rtGroups are the rtnetlink groups of the shared subscription: every event a follow may ask
// for (addresses of both families, links).
var rtGroups = []uint{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR}

// eventBacklog bounds how far a follow may fall behind the kernel's events (its handler
// blocked): past it, the follow skips to the newest and resynchronises, as after the kernel
// dropped some (ENOBUFS). It is above the burst of a takeover of a thousand addresses.
const eventBacklog = 4096

// takeMax bounds the events one take hands over.
const takeMax = 64

// rtEvents is a Host's one rtnetlink subscription, shared by its follows and its address view.
// The socket is open, and its reader running, while any follow is subscribed or the view is in
// use. The reader appends every event to a list that each follow reads on its own goroutine
// from where it is: the list is held once however many follow it, from the event the furthest
// behind still has to read (what all have read is garbage), and the reader never waits for a
// follow. A follow is woken only by events of the types it follows; one that has read
// everything skips the others without waking.
type rtEvents struct {
	mu   sync.Mutex
	h    *Host // whose events
	subs []*eventSub
	sock *nl.NetlinkSocket // nil while nobody follows and the view is off
	pid  uint32            // sock's port id: messages to it answer its own requests
	done chan struct{}     // closed when the reader of sock has returned
	tail *eventNode        // the newest event
	// view is the addresses of the links Bind and Unbind work on (addrView).
	view addrView
}

// eventNode is one event of the list: a message, or the mark that the kernel dropped some here
// (lost).
type eventNode struct {
	seq  uint64 // one more than the event before
	msg  syscall.NetlinkMessage
	lost bool
	next *eventNode // guarded by rtEvents.mu
}

// eventSub is one follow's place in the list.
type eventSub struct {
	types []uint16
	wake  chan struct{} // signalled (coalesced) when events were added

	// Guarded by rtEvents.mu.
	at      *eventNode // the last event read
	skipped bool       // fell more than eventBacklog behind and was moved to the newest
	err     error      // the reader failed after the events of at's list
}

// eventItem is a message, or the mark that messages were lost there (lost).
type eventItem struct {
	msg  syscall.NetlinkMessage
	lost bool
}

// subscribe adds a follow for messages of types, opening the socket in h's namespace if it is
// the first. It reads the events from those the reader receives next on.
func (e *rtEvents) subscribe(h *Host, types []uint16) (*eventSub, error) {
	sub := &eventSub{types: types, wake: make(chan struct{}, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.openLocked(h); err != nil {
		return nil, err
	}
	sub.at = e.tail
	e.subs = append(e.subs, sub)
	return sub, nil
}

// openLocked opens the socket in h's namespace and starts its reader, unless it is open.
func (e *rtEvents) openLocked(h *Host) error {
	if e.sock != nil {
		return nil
	}
	var s *nl.NetlinkSocket
	err := h.do(func() error {
		var err error
		s, err = nl.Subscribe(unix.NETLINK_ROUTE, rtGroups...)
		return err
	})
	if err != nil {
		return err
	}
	pid, err := s.GetPid()
	if err != nil {
		s.Close()
		return err
	}
	// A flush of many addresses must not overrun the socket, nor the link messages, large
	// (statistics included) and sent by every link of the namespace; if it does anyway,
	// every follow resynchronises, and so does the view.
	_ = s.SetReceiveBufferSize(1<<20, false)
	e.h, e.sock, e.pid, e.done, e.tail = h, s, pid, make(chan struct{}), &eventNode{}
	go e.read(s, e.done)
	return nil
}

// unsubscribe removes sub; the last one out closes the socket, unless the view uses it, and
// waits for its reader.
func (e *rtEvents) unsubscribe(sub *eventSub) {
	e.mu.Lock()
	e.subs = slices.DeleteFunc(e.subs, func(s *eventSub) bool { return s == sub })
	sub.at = nil
	e.closeIdleLocked()
}

// closeIdleLocked closes the socket if nothing uses it any more, unlocking e.mu either way, and
// then waits for its reader.
func (e *rtEvents) closeIdleLocked() {
	if len(e.subs) > 0 || e.view.on || e.sock == nil {
		e.mu.Unlock()
		return
	}
	s, done := e.sock, e.done
	e.sock, e.done, e.tail = nil, nil, nil
	e.view.resetLocked()
	e.mu.Unlock()
	// Closing the socket is what ends a pending Receive.
	s.Close()
	<-done
}

// read appends every event of the kernel on s to the list, until s is closed or fails.
func (e *rtEvents) read(s *nl.NetlinkSocket, done chan struct{}) {
	defer close(done)
	var types []uint16 // of the messages of one receive
	for {
		msgs, from, err := s.Receive()
		e.mu.Lock()
		if e.sock != s {
			// Closed by the last unsubscribe: nobody is waiting.
			e.mu.Unlock()
			return
		}
		last := e.tail
		lost := false
		types = types[:0]
		switch {
		case errors.Is(err, unix.ENOBUFS):
			e.appendLocked(eventNode{lost: true})
			e.lostLocked()
			lost = true
		case err != nil:
			// Every follow returns the error once it has read what came before; the next
			// subscribe opens a new socket. The view's waiters fall back to a dump.
			for _, sub := range e.subs {
				sub.err = err
				sub.signal()
			}
			e.subs, e.sock, e.done, e.tail = nil, nil, nil, nil
			e.view.resetLocked()
			e.mu.Unlock()
			s.Close()
			return
		case from.Pid == nl.PidKernel:
			for _, m := range msgs {
				if m.Header.Pid == e.pid {
					// An answer to the view's barrier, not an event.
					e.view.answerLocked(m)
					continue
				}
				e.appendLocked(eventNode{msg: m})
				e.view.applyLocked(m)
				if !slices.Contains(types, m.Header.Type) {
					types = append(types, m.Header.Type)
				}
			}
		default:
			e.mu.Unlock()
			continue
		}
		for _, sub := range e.subs {
			switch {
			case lost || slices.ContainsFunc(types, func(t uint16) bool { return slices.Contains(sub.types, t) }):
			case sub.at == last:
				// Nothing for it, and it has read everything before: it skips these
				// without waking.
				sub.at = e.tail
				continue
			}
			if e.tail.seq-sub.at.seq > eventBacklog {
				// Let go of what it has not read: it resynchronises instead.
				sub.at, sub.skipped = e.tail, true
			}
			sub.signal()
		}
		e.mu.Unlock()
	}
}

func (e *rtEvents) appendLocked(n eventNode) {
	n.seq = e.tail.seq + 1
	e.tail.next = &n
	e.tail = &n
}

// take returns up to takeMax of the events after sub's place that it wants (messages of its
// types, and the marks of losses), moving it on; more reports that events are left. err is the
// reader's error, once sub has read everything before it.
func (e *rtEvents) take(sub *eventSub) (items []eventItem, more bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if sub.skipped {
		sub.skipped = false
		items = append(items, eventItem{lost: true})
	}
	n := sub.at
	for n.next != nil && len(items) < takeMax {
		n = n.next
		if n.lost || slices.Contains(sub.types, n.msg.Header.Type) {
			items = append(items, eventItem{msg: n.msg, lost: n.lost})
		}
	}
	sub.at = n
	if n.next != nil {
		return items, true, nil
	}
	return items, false, sub.err
}

func (sub *eventSub) signal() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}
