package vrrp_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// stallLimit is the limit the tests give Stalled: far above any interval of config4.
const stallLimit = 5 * time.Second

// gatedSender is a Sender whose WriteTo blocks while the gate is closed, as a send stuck in the
// kernel would block the router's loop.
type gatedSender struct {
	*fakeHost
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (s *gatedSender) close() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *gatedSender) open() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *gatedSender) WriteTo(b []byte, dst netip.Addr) error {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
	return s.fakeHost.WriteTo(b, dst)
}

// startGated runs a Router for config4 whose adverts go through a gatedSender; emit runs
// in the router's loop, as the agent's does.
func startGated(t *testing.T, emit func(vrrp.Event)) (*vrrp.Router, *gatedSender) {
	t.Helper()
	cfg := config4()
	host := newFakeHost(cfg)
	s := &gatedSender{fakeHost: host}
	r := vrrp.NewRouter(mustNew(t, cfg), s, host, nil, emit)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { _ = r.Run(ctx) }()
	t.Cleanup(func() {
		if s.gate != nil {
			s.open()
		}
		cancel()
		<-r.Done()
	})
	synctest.Wait()
	return r, s
}

// A router that runs normally is never stalled, however long it runs: a MASTER's loop comes
// back every advertisement interval, and one in Fault has no timer and nothing to do.
func TestRouterNotStalledWhileWorking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := startGated(t, nil)
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("stalled right after Start")
		}
		time.Sleep(mdi100)
		synctest.Wait()
		if st := r.Status().State; st != vrrp.Master {
			t.Fatalf("state %s, want Master", st)
		}
		for range 3 {
			time.Sleep(2 * stallLimit)
			synctest.Wait()
			if r.Stalled(time.Now(), stallLimit) {
				t.Fatal("a MASTER advertising every 100 ms reported stalled")
			}
		}
		// In Fault there is no timer: an hour of nothing to do is not a stall.
		r.SetHealth(failing)
		synctest.Wait()
		if st := r.Status().State; st != vrrp.Fault {
			t.Fatalf("state %s, want Fault", st)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("an idle instance in Fault reported stalled")
		}
		// A command taken at once after the long idle is not a stall either.
		r.SetHealth(vrrp.Health{Adjust: -10})
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("stalled after a command was served")
		}
	})
}

// A MASTER whose send never returns misses its advertisement timer: once the timer has been
// due for longer than the limit, Stalled says so; when the send returns, it no longer does.
func TestRouterStalledWhenSendBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := startGated(t, nil)
		time.Sleep(mdi100)
		synctest.Wait()
		if st := r.Status().State; st != vrrp.Master {
			t.Fatalf("state %s, want Master", st)
		}
		s.close()
		// The next advert blocks the loop; its following timer is due 100 ms later.
		time.Sleep(stallLimit)
		synctest.Wait()
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("stalled before the limit passed")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !r.Stalled(time.Now(), stallLimit) {
			t.Fatal("a loop blocked in a send for longer than the limit is not reported stalled")
		}
		s.open()
		synctest.Wait()
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("still stalled after the send returned")
		}
	})
}

// A loop without a timer (Fault) that wedges in its change callback is stalled once a command
// has waited for it longer than the limit; the callback's own wait alone is not visible.
func TestRouterStalledWithCommandWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var once sync.Once
		unwedge := func() { once.Do(func() { close(release) }) }
		r, _ := startGated(t, func(e vrrp.Event) {
			if e.State == vrrp.Backup && e.Reason == "cleared" {
				<-release // the callback does not return until the test says so
			}
		})
		t.Cleanup(unwedge) // before the router's cleanup, which waits for the loop
		r.SetHealth(failing)
		synctest.Wait()
		time.Sleep(time.Hour)
		go r.SetHealth(vrrp.Health{Reason: "cleared"}) // Fault -> Backup: the callback wedges the loop
		synctest.Wait()
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("stalled with nothing waiting")
		}
		go r.SetHealth(vrrp.Health{Adjust: -10}) // waits for the loop
		synctest.Wait()
		time.Sleep(stallLimit - time.Millisecond)
		synctest.Wait()
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("stalled before the command waited for the limit")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !r.Stalled(time.Now(), stallLimit) {
			t.Fatal("a command waiting longer than the limit for a wedged loop is not reported stalled")
		}
		unwedge()
		synctest.Wait()
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("still stalled after the loop resumed")
		}
	})
}

// A router that is not running is not stalled: Run has returned, nothing will be taken.
func TestRouterNotStalledWhenStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		host := newFakeHost(cfg)
		r := vrrp.NewRouter(mustNew(t, cfg), host, host, nil, nil)
		ctx, cancel := context.WithCancel(t.Context())
		go func() { _ = r.Run(ctx) }()
		synctest.Wait()
		cancel()
		<-r.Done()
		r.Deliver(vrrp.Packet{})
		time.Sleep(time.Hour)
		if r.Stalled(time.Now(), stallLimit) {
			t.Fatal("a stopped router reported stalled")
		}
	})
}
