// Package flaphost is a host for pkg/agent whose one link flaps on command, for the tests of
// the event stream (pkg/agent, controllers): every carrier change goes through the router's
// command path, as a real one does, while the VRRP socket reads nothing and sends nowhere.
package flaphost

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Host implements agent.Host; its links report the states sent on States.
type Host struct{ States chan bool }

// New returns a Host whose links wait for their first state.
func New() Host { return Host{States: make(chan bool)} }

type quietConn struct{ closed chan struct{} }

// Listen returns a socket that receives nothing and drops what it sends.
func (h Host) Listen(string, netip.Addr) (vrrp.PacketConn, error) {
	return quietConn{make(chan struct{})}, nil
}

// Link returns h: binding and announcing succeed and do nothing.
func (h Host) Link(string) (vrrp.Link, error) { return h, nil }

// Bind does nothing.
func (Host) Bind(context.Context, []netip.Prefix) error { return nil }

// Unbind does nothing.
func (Host) Unbind(context.Context, []netip.Prefix) error { return nil }

// Announce does nothing.
func (Host) Announce(context.Context, []netip.Addr) error { return nil }

// WatchRemoved reports nothing until ctx is done.
func (Host) WatchRemoved(ctx context.Context, _ func(netip.Prefix)) error {
	<-ctx.Done()
	return nil
}

// WatchLinkState reports each state sent on States (vrrp.LinkStateWatcher).
func (h Host) WatchLinkState(ctx context.Context, fn func(up bool)) error {
	for {
		select {
		case up := <-h.States:
			fn(up)
		case <-ctx.Done():
			return nil
		}
	}
}

func (c quietConn) WriteTo([]byte, netip.Addr) error { return nil }

func (c quietConn) ReadPacket([]byte) (vrrp.Packet, error) {
	<-c.closed
	return vrrp.Packet{}, net.ErrClosed
}

func (c quietConn) Close() error { close(c.closed); return nil }

// Flap runs a, whose instances use h, brings the link up, then takes it down and up again
// flaps/2 times (flaps transitions of instance vip), waits until the last is applied and stops
// a: the events are Started, flaps transitions and the Shutdown handover.
func Flap(ctx context.Context, a *agent.Agent, h Host, vip string, flaps int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	h.States <- true
	for range flaps / 2 {
		h.States <- false
		h.States <- true
	}
	// Each report waits for the one before it to be applied; wait for the last one too.
	up := agent.TransitionKey{VIP: vip, State: vrrp.Backup, Reason: vrrp.ReasonInterfaceUp}
	for deadline := time.Now().Add(5 * time.Second); a.TransitionCounts()[up] < uint64(flaps/2); {
		if time.Now().After(deadline) {
			return fmt.Errorf("the last flap was not applied: %v", a.TransitionCounts())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	return <-done
}
