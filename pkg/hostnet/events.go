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
		select {
		case <-ctx.Done():
			return nil
		case <-sub.wake:
		}
		items, err := sub.take()
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
	}
}

// rtGroups are the rtnetlink groups of the shared subscription: every event a follow may ask
// for (addresses of both families, links).
var rtGroups = []uint{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR}

// eventQueueLen bounds the messages waiting for one follow; beyond it they are dropped and the
// follow resynchronises, as after the kernel dropped some (ENOBUFS).
const eventQueueLen = 1024

// rtEvents is a Host's one rtnetlink subscription, shared by its follows. The socket is open,
// and its reader running, while any follow is subscribed. The reader never waits for a
// follow: each has its own bounded queue.
type rtEvents struct {
	mu   sync.Mutex
	subs []*eventSub
	sock *nl.NetlinkSocket // nil while nobody follows
	done chan struct{}     // closed when the reader of sock has returned
}

// eventSub is one follow's share of the events.
type eventSub struct {
	types []uint16
	wake  chan struct{} // signalled (coalesced) when items or err are waiting

	mu     sync.Mutex
	items  []eventItem
	queued int   // messages in items
	err    error // the reader failed; nothing more comes
}

// eventItem is a message, or the mark that messages were lost here (lost).
type eventItem struct {
	msg  syscall.NetlinkMessage
	lost bool
}

// subscribe adds a follow for messages of types, opening the socket in h's namespace if it is
// the first.
func (e *rtEvents) subscribe(h *Host, types []uint16) (*eventSub, error) {
	sub := &eventSub{types: types, wake: make(chan struct{}, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sock == nil {
		var s *nl.NetlinkSocket
		err := h.do(func() error {
			var err error
			s, err = nl.Subscribe(unix.NETLINK_ROUTE, rtGroups...)
			return err
		})
		if err != nil {
			return nil, err
		}
		// A flush of many addresses must not overrun the socket, nor the link messages, large
		// (statistics included) and sent by every link of the namespace; if it does anyway,
		// every follow resynchronises.
		_ = s.SetReceiveBufferSize(1<<20, false)
		e.sock, e.done = s, make(chan struct{})
		go e.read(s, e.done)
	}
	e.subs = append(e.subs, sub)
	return sub, nil
}

// unsubscribe removes sub; the last one out closes the socket and waits for its reader.
func (e *rtEvents) unsubscribe(sub *eventSub) {
	e.mu.Lock()
	e.subs = slices.DeleteFunc(e.subs, func(s *eventSub) bool { return s == sub })
	if len(e.subs) > 0 || e.sock == nil {
		e.mu.Unlock()
		return
	}
	s, done := e.sock, e.done
	e.sock, e.done = nil, nil
	e.mu.Unlock()
	// Closing the socket is what ends a pending Receive.
	s.Close()
	<-done
}

// read hands every message of the kernel on s to the follows that want its type, until s is
// closed or fails.
func (e *rtEvents) read(s *nl.NetlinkSocket, done chan struct{}) {
	defer close(done)
	for {
		msgs, from, err := s.Receive()
		e.mu.Lock()
		if e.sock != s {
			// Closed by the last unsubscribe: nobody is waiting.
			e.mu.Unlock()
			return
		}
		switch {
		case errors.Is(err, unix.ENOBUFS):
			for _, sub := range e.subs {
				sub.lose()
			}
		case err != nil:
			// Every follow returns the error; the next subscribe opens a new socket.
			for _, sub := range e.subs {
				sub.fail(err)
			}
			e.sock, e.done = nil, nil
			e.mu.Unlock()
			s.Close()
			return
		case from.Pid == nl.PidKernel:
			for _, sub := range e.subs {
				sub.push(msgs)
			}
		}
		e.mu.Unlock()
	}
}

// push queues the messages of msgs that sub wants; past eventQueueLen, the queue is dropped
// for a mark that they were lost.
func (sub *eventSub) push(msgs []syscall.NetlinkMessage) {
	sub.mu.Lock()
	added := false
	for _, m := range msgs {
		if !slices.Contains(sub.types, m.Header.Type) {
			continue
		}
		if sub.queued >= eventQueueLen {
			sub.dropLocked()
		}
		sub.items = append(sub.items, eventItem{msg: m})
		sub.queued++
		added = true
	}
	sub.mu.Unlock()
	if added {
		sub.signal()
	}
}

// lose marks that messages were lost at this point of the queue.
func (sub *eventSub) lose() {
	sub.mu.Lock()
	if n := len(sub.items); n == 0 || !sub.items[n-1].lost {
		sub.items = append(sub.items, eventItem{lost: true})
	}
	sub.mu.Unlock()
	sub.signal()
}

// dropLocked replaces what is queued by a mark that it was lost: the resync reads it all again.
func (sub *eventSub) dropLocked() {
	clear(sub.items)
	sub.items = append(sub.items[:0], eventItem{lost: true})
	sub.queued = 0
}

func (sub *eventSub) fail(err error) {
	sub.mu.Lock()
	sub.err = err
	sub.mu.Unlock()
	sub.signal()
}

func (sub *eventSub) signal() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// take returns what is queued, and the reader's error if it failed (after those items).
func (sub *eventSub) take() ([]eventItem, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	items := sub.items
	sub.items, sub.queued = nil, 0
	return items, sub.err
}
