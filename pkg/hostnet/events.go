//go:build linux

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// follow keeps a view of l in step with the kernel's rtnetlink events, for WatchRemoved
// (addresses) and WatchLinkState (the link). See Host.follow.
func (l *link) follow(ctx context.Context, what string, groups []uint, types []uint16, resync func() error, handle func(syscall.NetlinkMessage)) error {
	return l.h.follow(ctx, what, l.name, groups, types, resync, handle)
}

// follow keeps a view of the interface ifname in step with the kernel's rtnetlink events. It
// subscribes to groups first and calls resync second, so that a change in between is seen by
// resync; then it passes every message of the kernel whose type is one of types to handle, and
// calls resync again when events were lost (ENOBUFS). It returns nil once ctx ends, else the
// first error. what names the events in errors and logs ("address", "link").
func (h *Host) follow(ctx context.Context, what, ifname string, groups []uint, types []uint16, resync func() error, handle func(syscall.NetlinkMessage)) error {
	var s *nl.NetlinkSocket
	err := h.do(func() error {
		var err error
		s, err = nl.Subscribe(unix.NETLINK_ROUTE, groups...)
		return err
	})
	if err != nil {
		return fmt.Errorf("subscribe to %s events: %w", what, err)
	}
	// Closing the socket is what ends a pending Receive.
	stop := context.AfterFunc(ctx, s.Close)
	defer func() {
		if stop() {
			s.Close()
		}
	}()
	// A flush of many addresses must not overrun the socket, nor the link messages, large
	// (statistics included) and sent by every link of the namespace; if it does anyway, the
	// view is resynchronised.
	_ = s.SetReceiveBufferSize(1<<20, false)

	if err := resync(); err != nil {
		return err
	}
	for {
		msgs, from, err := s.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			h.log.Warn(what+" events lost; resynchronising", "interface", ifname)
			if err := resync(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("receive %s events: %w", what, err)
		}
		if from.Pid != nl.PidKernel {
			continue
		}
		for _, m := range msgs {
			for _, t := range types {
				if m.Header.Type == t {
					handle(m)
					break
				}
			}
		}
	}
}
