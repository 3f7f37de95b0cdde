package vrrp

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// removalsLink is a Link whose address watch reports the given removals, then waits.
type removalsLink struct {
	removed  []netip.Prefix
	returned atomic.Int32 // how many reports fn returned from
}

func (*removalsLink) Bind(context.Context, []netip.Prefix) error   { return nil }
func (*removalsLink) Unbind(context.Context, []netip.Prefix) error { return nil }
func (*removalsLink) Announce(context.Context, []netip.Addr) error { return nil }
func (l *removalsLink) WatchRemoved(ctx context.Context, fn func(netip.Prefix)) error {
	for _, p := range l.removed {
		fn(p)
		l.returned.Add(1)
	}
	<-ctx.Done()
	return nil
}

// A link's address watch reports every removal on the link to every instance that watches
// it: the Router passes on only its own, so that a flush of N instances' addresses costs each
// instance's loop one command per address of its own, not N. Here the loop does not run, so a
// report passed on would block the watch.
func TestRouterWatchPassesOnOwnRemovals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		own := netip.MustParsePrefix("198.18.0.10/32")
		cfg := Config{Name: "web", Interface: "eth0", VRID: 7, Version: 3, Priority: 100, Interval: time.Second, Preempt: true,
			Primary:   netip.MustParseAddr("198.18.0.1"),
			Addresses: []netip.Prefix{own}}
		inst, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var others []netip.Prefix
		for i := range 100 {
			others = append(others, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), 32))
		}
		link := &removalsLink{removed: append(others, own)}
		r := NewRouter(inst, nil, link, nil, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.watch(ctx)
		}()
		synctest.Wait()
		if n := link.returned.Load(); n != int32(len(others)) {
			t.Errorf("the watch passed on %d of %d other instances' removals, and its own (want it blocked on its own, the loop being stopped)",
				len(others)-int(n), len(others))
		}
		close(r.stopped) // the loop is gone: the command for its own address is dropped
		synctest.Wait()
		if n := link.returned.Load(); n != int32(len(others)+1) {
			t.Errorf("%d reports returned after the loop stopped, want %d", n, len(others)+1)
		}
		cancel()
		<-done
	})
}
