//go:build linux

package hostnet

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBindOnBusyLink measures one Bind and one Unbind of a fresh address on a link that
// already holds n addresses, as in a takeover of many VIPs: each of them bound by an instance
// of its own that watches the link (WatchRemoved), and the state record on. It reports the
// wall time of each call and the process's CPU time per Bind+Unbind (rusage), which includes
// what the watches spend on the events, and, for reference, the time of the kernel's own add
// and delete of an address on that link (a bare request each), which grows with n: an IPv4
// address is added to the end of the link's list, walked for duplicates. Figures only: compare
// them across n.
func BenchmarkBindOnBusyLink(b *testing.B) {
	for _, n := range []int{10, 200, 1000, 2000} {
		b.Run(fmt.Sprintf("addrs=%d", n), func(b *testing.B) { benchBindOnBusyLink(b, n) })
	}
}

func benchBindOnBusyLink(b *testing.B, n int) {
	ns := newTestNS(b)
	ns.addLink(b, "d0")
	st, err := OpenState(filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var h *Host
	ns.run(b, func() { h = NewHost(nil, WithState(st)) })
	defer h.Close()
	l, err := h.Link("d0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range n {
		wg.Go(func() { _ = l.WatchRemoved(ctx, func(netip.Prefix) {}) })
	}
	addr := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)
	}
	for i := range n {
		if err := l.Bind(ctx, []netip.Prefix{addr(i)}); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the watches take the setup's events
	var bind, unbind time.Duration
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		p := []netip.Prefix{addr(n + i%1000)}
		t0 := time.Now()
		if err := l.Bind(ctx, p); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := l.Unbind(ctx, p); err != nil {
			b.Fatal(err)
		}
		bind += t1.Sub(t0)
		unbind += time.Since(t1)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	// The kernel's own part, for reference: adding an IPv4 address walks the link's list.
	rt, err := h.handles()
	if err != nil {
		b.Fatal(err)
	}
	index := ns.link(b, "d0").Attrs().Index
	var kernel time.Duration
	for i := range b.N {
		p := addr(n + i%1000)
		t0 := time.Now()
		if err := rt.add(index, p, true, 0); err != nil {
			b.Fatal(err)
		}
		if err := rt.del(index, p); err != nil {
			b.Fatal(err)
		}
		kernel += time.Since(t0)
	}
	b.ReportMetric(float64(bind.Microseconds())/float64(b.N), "bind-µs/op")
	b.ReportMetric(float64(unbind.Microseconds())/float64(b.N), "unbind-µs/op")
	b.ReportMetric(float64(kernel.Microseconds())/float64(b.N), "kernel-add+del-µs/op")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user and system time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
