//go:build linux

package hostnet

import (
	"runtime"
	"sync"
	"testing"
)

// The goroutines that ask the kernel (an instance's router binding its addresses, its watches
// resynchronising) keep small stacks: the netlink library reads every answer into a 64 KiB
// array on the stack, on a goroutine of its own (offStack). Measured after a collection,
// which gives back what is no longer in use and halves what a goroutine does not use.
func TestRequestsLeaveSmallStacks(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	h := n.host(t)
	if _, err := h.lookup("d0"); err != nil { // opens the sockets
		t.Fatal(err)
	}
	const goroutines = 64
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var asked, wg sync.WaitGroup
	release := make(chan struct{})
	errs := make(chan error, goroutines)
	for range goroutines {
		asked.Add(1)
		wg.Go(func() {
			li, err := h.lookup("d0")
			if err == nil {
				rt, _ := h.handles()
				_, err = rt.addrs(li.index)
			}
			errs <- err
			asked.Done()
			<-release
		})
	}
	asked.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	per := (int64(after.StackInuse) - int64(before.StackInuse)) / goroutines
	t.Logf("%d bytes of stack per goroutine", per)
	if per > 32<<10 {
		t.Errorf("%d KiB of stack per goroutine that made netlink requests, want at most 32", per>>10)
	}
}
