package bench_test

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var (
	heapProfileDir = flag.String("scale.heapprofile", "", "BenchmarkInstanceHeap: write each case's heap profile to `DIR`/heap-N.pprof")
	cpuProfileDir  = flag.String("scale.cpuprofile", "", "BenchmarkInstanceHeap: write each case's CPU profile of the settling pause (every instance MASTER) to `DIR`/cpu-N.pprof")
)

// BenchmarkInstanceHeap runs the agent in this process, on the host side of the real stack
// (hostnet's sockets, netlink and addresses in a lab node's namespace), MASTER of the VIPs of
// BenchmarkScale (100 at 100 ms, 1000 at 1 s, 100 at 10 ms), laid out as there, and reports what each instance costs the Go runtime:
// heap in use, goroutine stacks and goroutines, from runtime.MemStats after a GC, minus the
// same before the agent started. -scale.heapprofile writes a heap profile of each case (go tool
// pprof -sample_index=inuse_space).
func BenchmarkInstanceHeap(b *testing.B) {
	privtest.Require(b)
	for _, c := range []scaleCase{scale100, scale1000, scaleFast} {
		b.Run(c.name(), func(b *testing.B) {
			for range b.N {
				heapMeasure(b, c)
			}
		})
	}
}

func heapMeasure(b *testing.B, c scaleCase) {
	vips := c.vips
	l := lab.New(b, lab.Options{Nodes: 1, ResponderPort: -1})
	n, client := l.Node(1), l.Client()
	links, err := scaleLinks(n, client, vips)
	if err != nil {
		b.Fatal(err)
	}
	before := heapSnapshot()
	var host *hostnet.Host
	if err := n.InNetns(func() error { host = hostnet.NewHost(nil); return nil }); err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	a := agent.New(host, nil, agent.Options{})
	for j, lk := range links {
		primary := netip.AddrFrom4([4]byte{198, 18, byte(j), 11})
		if j == 0 {
			primary = n.IPv4
		}
		for i, v := range lk.vips {
			cfg := vrrp.Config{Interface: lk.name, VRID: uint8(i + 1), Version: 3, Interval: c.interval,
				Priority: 100, Addresses: []netip.Prefix{v}, Primary: primary, Preempt: true, Accept: true}
			if err := a.Apply(fmt.Sprintf("v%d-%d", j, i+1), cfg); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		masters := 0
		for _, st := range a.Snapshot() {
			if st.State == vrrp.Master {
				masters++
			}
		}
		if masters == vips {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d instances MASTER after 60 s", masters, vips)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if *cpuProfileDir != "" {
		f, err := os.Create(filepath.Join(*cpuProfileDir, fmt.Sprintf("cpu-%d.pprof", vips)))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		time.Sleep(*scaleSettle)
		pprof.StopCPUProfile()
	} else {
		time.Sleep(*scaleSettle)
	}
	after := heapSnapshot()
	per := func(x, y uint64) float64 { return (float64(x) - float64(y)) / float64(vips) / 1024 }
	b.ReportMetric(per(after.HeapInuse, before.HeapInuse), "heap-KiB/instance")
	b.ReportMetric(per(after.StackInuse, before.StackInuse), "stack-KiB/instance")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(vips), "goroutines/instance")
	b.ReportMetric(per(after.Sys, before.Sys), "sys-KiB/instance")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d instances: heap in use %.1f -> %.1f MiB, stacks %.1f -> %.1f MiB, goroutines %d -> %d, runtime total (Sys) %.1f -> %.1f MiB",
		vips, heapMiB(before.HeapInuse), heapMiB(after.HeapInuse), heapMiB(before.StackInuse), heapMiB(after.StackInuse),
		before.goroutines, after.goroutines, heapMiB(before.Sys), heapMiB(after.Sys))
	if *heapProfileDir != "" {
		f, err := os.Create(filepath.Join(*heapProfileDir, fmt.Sprintf("heap-%d.pprof", vips)))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
}

type heapStats struct {
	runtime.MemStats
	goroutines int
}

func heapSnapshot() heapStats {
	runtime.GC()
	runtime.GC()
	var s heapStats
	runtime.ReadMemStats(&s.MemStats)
	s.goroutines = runtime.NumGoroutine()
	return s
}

func heapMiB(v uint64) float64 { return float64(v) / (1 << 20) }
