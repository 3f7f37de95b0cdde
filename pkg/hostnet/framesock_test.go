//go:build linux

package hostnet

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// A link whose queue does not drain (here a qdisc sending 1 kB/s) holds the frames sent to it
// against their socket's send buffer: announcements on it end with their context, and those of
// another link go out at once. With one socket for the Host, the other link's announcement
// waited behind the first link's queue, and neither call heeded its context.
func TestAnnounceStuckLink(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "s0")
	n.addLink(t, "f0")
	const rate, burst = 1000, 1600 // bytes a second, bytes
	if err := n.nl.QdiscAdd(&netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: n.link(t, "s0").Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       rate, Limit: 16 << 20, Buffer: netlink.Xmittime(rate, burst)}); err != nil {
		t.Fatalf("add a slow qdisc to s0: %v", err)
	}
	h := n.host(t)
	s0, err := h.Link("s0")
	if err != nil {
		t.Fatal(err)
	}
	f0, err := h.Link("f0")
	if err != nil {
		t.Fatal(err)
	}
	// 4000 frames: far more than a socket's send buffer holds.
	var addrs []netip.Addr
	for i := range 2000 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, 20 + byte(i/250), byte(i % 250)}))
	}
	type result struct {
		err error
		d   time.Duration
	}
	announce := func(l interface {
		Announce(context.Context, []netip.Addr) error
	}, timeout time.Duration, addrs []netip.Addr) <-chan result {
		c := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			start := time.Now()
			err := l.Announce(ctx, addrs)
			c <- result{err, time.Since(start)}
		}()
		return c
	}
	slow := announce(s0, time.Second, addrs)
	time.Sleep(300 * time.Millisecond) // s0's socket is full by now
	fast := announce(f0, 5*time.Second, addrs[:1])
	select {
	case r := <-fast:
		if r.err != nil {
			t.Errorf("announcing on f0: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("an announcement on f0 still waits behind s0's queue after 5 s")
	}
	select {
	case r := <-slow:
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("announcing 4000 frames on s0 at 1 kB/s for 1 s: %v, want the context's deadline", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("an announcement on s0 still runs 4 s after its context ended")
	}
}

// Once the Host is closed, a link's packet socket is not opened again by a send that looked the
// link up before the Close: it would be left open, and in the namespace of whichever thread
// ran the send, the Host's handle being closed.
func TestFrameSocketClosed(t *testing.T) {
	l := newLab(t)
	h := l.a.host(t)
	vl, err := h.Link("a0")
	if err != nil {
		t.Fatal(err)
	}
	if err := vl.Announce(t.Context(), []netip.Addr{netip.MustParseAddr("198.18.0.1")}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	fs := &vl.(*link).frames
	if rc, err := fs.conn(h); err == nil {
		t.Errorf("the packet socket of a closed Host opened again (%v)", rc)
		fs.close()
	}
	if _, err := h.Link("a0"); err == nil {
		t.Errorf("a closed Host opened a link")
	}
}
