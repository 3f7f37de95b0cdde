//go:build linux

package hostnet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// routeSubscriptions counts the NETLINK_ROUTE sockets of n that have joined a group: the
// subscriptions of the watches (one per Host while any runs).
func (n *testNS) routeSubscriptions(t *testing.T) int {
	t.Helper()
	var b []byte
	n.run(t, func() {
		var err error
		// thread-self: the namespace of this thread, not of the process's first one.
		if b, err = os.ReadFile("/proc/thread-self/net/netlink"); err != nil {
			t.Fatal(err)
		}
	})
	count := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		f := strings.Fields(line)
		if len(f) >= 4 && f[1] == "0" && strings.Trim(f[3], "0") != "" {
			count++
		}
	}
	return count
}

// Every watch of a Host shares one subscription: with many instances on a link (one address
// watch and one link-state watch each), the namespace holds one subscribed socket, every watch
// still gets every event, and the socket goes with the last watch.
func TestWatchesShareOneSubscription(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	n.waitOperUp(t, "d0")
	h := n.host(t)
	l, err := h.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	const watches = 20
	var states []*stateWatch
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range watches {
		w := startStateWatch(t, l)
		w.want(true)
		states = append(states, w)
		wg.Go(func() { _ = l.WatchRemoved(ctx, func(netip.Prefix) {}) })
	}
	defer func() { cancel(); wg.Wait() }()
	// The address watches subscribe on their own goroutines: wait for them.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && n.routeSubscriptions(t) != 1 {
		time.Sleep(20 * time.Millisecond)
	}
	if got := n.routeSubscriptions(t); got != 1 {
		t.Fatalf("%d subscribed rtnetlink sockets for %d watches, want 1", got, 2*watches)
	}

	n.setLink(t, "d0p", false)
	for _, w := range states {
		w.want(false)
	}
	n.setLink(t, "d0p", true)
	for _, w := range states {
		w.want(true)
		w.stop()
	}
	cancel()
	wg.Wait()
	if got := n.routeSubscriptions(t); got != 0 {
		t.Errorf("%d subscribed rtnetlink sockets after every watch ended, want 0", got)
	}

	// A new watch subscribes again.
	w := startStateWatch(t, l)
	w.want(true)
	n.setLink(t, "d0p", false)
	w.want(false)
	w.stop()
}

// A watch that falls behind does not hold up the others, and loses no change: past the bound
// of its backlog it resynchronises, as after the kernel dropped events.
func TestFollowBehindResyncs(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	n.waitOperUp(t, "d0")
	h := n.host(t)
	l, err := h.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// The slow one: its handler blocks on the first event until released.
	var resyncs, handled atomic.Int32
	release := make(chan struct{})
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- h.follow(ctx, "address", "d0", []uint16{unix.RTM_NEWADDR, unix.RTM_DELADDR},
			func() error { resyncs.Add(1); return nil },
			func(syscall.NetlinkMessage) {
				if handled.Add(1) == 1 {
					<-release
				}
			})
	}()
	for resyncs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// A watch beside it.
	w := startStateWatch(t, l)
	w.want(true)

	// Twice the bound of address events (each address added and removed).
	var ps []netip.Prefix
	for i := range eventBacklog {
		ps = append(ps, netip.MustParsePrefix(fmt.Sprintf("198.18.%d.%d/32", 100+i/250, 1+i%250)))
	}
	for _, p := range ps {
		n.addAddr(t, "d0", p, true)
	}
	// The other watch is not held up.
	n.setLink(t, "d0p", false)
	w.want(false)
	for _, p := range ps {
		n.delAddr(t, "d0", p)
	}

	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for resyncs.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the watch that fell %d events behind resynchronised %d times, want 2 (start, loss)",
				2*eventBacklog, resyncs.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := handled.Load(); got >= int32(2*eventBacklog) {
		t.Errorf("%d events handled, want fewer than the %d sent (the excess dropped)", got, 2*eventBacklog)
	}
	// And it goes on.
	before := handled.Load()
	n.addAddr(t, "d0", netip.MustParsePrefix("198.18.99.1/32"), true)
	for handled.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("no event after the resync")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-slowDone; err != nil {
		t.Errorf("follow: %v", err)
	}
}
