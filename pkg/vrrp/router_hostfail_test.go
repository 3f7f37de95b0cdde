package vrrp_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// failingLink is the fake host's link with Bind and Unbind failing while told to.
type failingLink struct {
	*fakeHost
	mu                     sync.Mutex
	failBind, failUnbind   bool
	bindCalls, unbindCalls int
}

var errHost = errors.New("operation not permitted")

func (l *failingLink) set(bind, unbind bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failBind, l.failUnbind = bind, unbind
}

func (l *failingLink) Bind(ctx context.Context, ps []netip.Prefix) error {
	l.mu.Lock()
	fail := l.failBind
	l.bindCalls++
	l.mu.Unlock()
	if fail {
		l.fakeHost.mu.Lock()
		l.fakeHost.record("bind failed %v", ps)
		l.fakeHost.mu.Unlock()
		return errHost
	}
	return l.fakeHost.Bind(ctx, ps)
}

func (l *failingLink) Unbind(ctx context.Context, ps []netip.Prefix) error {
	l.mu.Lock()
	fail := l.failUnbind
	l.unbindCalls++
	l.mu.Unlock()
	if fail {
		l.fakeHost.mu.Lock()
		l.fakeHost.record("unbind failed %v", ps)
		l.fakeHost.mu.Unlock()
		return errHost
	}
	return l.fakeHost.Unbind(ctx, ps)
}

// A MASTER that cannot bind its addresses must not advertise without them (a black hole behind
// a green status): it resigns into Fault with reason AddressBindFailed, says why in HostError,
// and retries with a doubling back-off, competing again as Backup each time.
func TestRouterBindFailureFaultsAndRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fl *failingLink
		rig := startRouterOn(t, config4(), func(h *fakeHost) vrrp.Link {
			fl = &failingLink{fakeHost: h}
			return fl
		})
		fl.set(true, false)
		rig.takeChanges()
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, []string{sendMcast(100), "bind failed [" + vip.String() + "]",
			unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
		st := rig.r.Status()
		if st.Reason != vrrp.ReasonBindFailed || !strings.Contains(st.HostError, errHost.Error()) {
			t.Errorf("status reason %q host error %q", st.Reason, st.HostError)
		}
		if diff := cmp.Diff([]string{"Master MasterDownTimer", "HostError", "Fault AddressBindFailed"}, rig.takeChanges()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		// Nothing is sent while in Fault; after 1 s it competes again and fails again.
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, nil, rig.host.take())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		if st := rig.r.Status(); st.HostError != "" {
			t.Errorf("host error %q after the retry", st.HostError)
		}
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		rig.host.take()
		// The back-off doubled: still in Fault after 1 s, Backup after 2 s.
		fl.set(false, false)
		time.Sleep(time.Second)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		time.Sleep(time.Second)
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		if !rig.host.isBound(vip) {
			t.Error("VIP not bound once the host allows it")
		}
		if st := rig.r.Status(); st.HostError != "" || st.Reason != vrrp.ReasonMasterDown {
			t.Errorf("status %q / %q once bound", st.Reason, st.HostError)
		}
	})
}

// An address whose removal failed would stay on the link beside the new MASTER's: the router
// retries the removal with a back-off and reports it meanwhile.
func TestRouterUnbindFailureRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		var fl *failingLink
		rig := startRouterOn(t, cfg, func(h *fakeHost) vrrp.Link {
			fl = &failingLink{fakeHost: h}
			return fl
		})
		rig.becomeMaster(t)
		fl.set(false, true)
		rig.r.Deliver(advert(t, cfg, higher, 200))
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		if !rig.host.isBound(vip) {
			t.Fatal("fake unbind did not fail")
		}
		if st := rig.r.Status(); !strings.Contains(st.HostError, "removing") {
			t.Errorf("host error %q, want the failed removal", st.HostError)
		}
		// Retries after 1 s, then 2 s; succeeds once the host allows it. The new master keeps
		// advertising meanwhile.
		for range 10 {
			time.Sleep(100 * time.Millisecond)
			rig.r.Deliver(advert(t, cfg, higher, 200))
		}
		synctest.Wait()
		fl.mu.Lock()
		calls := fl.unbindCalls
		fl.mu.Unlock()
		if calls != 2 {
			t.Errorf("%d unbind attempts after 1 s, want 2", calls)
		}
		fl.set(false, false)
		for range 25 {
			time.Sleep(100 * time.Millisecond)
			rig.r.Deliver(advert(t, cfg, higher, 200))
		}
		synctest.Wait()
		if rig.host.isBound(vip) {
			t.Error("VIP still bound after the retry")
		}
		if st := rig.r.Status(); st.HostError != "" {
			t.Errorf("host error %q after the removal succeeded", st.HostError)
		}
	})
}

// A removal that failed is retried at shutdown too: an instance stopped before its retry must
// not leave the address on the link beside the new MASTER's.
func TestRouterShutdownRetriesFailedUnbind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		var fl *failingLink
		rig := startRouterOn(t, cfg, func(h *fakeHost) vrrp.Link {
			fl = &failingLink{fakeHost: h}
			return fl
		})
		rig.becomeMaster(t)
		fl.set(false, true)
		rig.r.Deliver(advert(t, cfg, higher, 200))
		synctest.Wait()
		if !rig.host.isBound(vip) {
			t.Fatal("fake unbind did not fail")
		}
		fl.set(false, false)
		rig.cancel()
		<-rig.r.Done()
		if rig.host.isBound(vip) {
			t.Error("VIP left bound after shutdown")
		}
	})
}

// A MASTER whose reconfiguration removed an address, and whose removal failed, keeps retrying
// it while it stays MASTER of the others.
func TestRouterMasterRetriesRemovedAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		two := with(config4(), func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip, vip2} })
		var fl *failingLink
		rig := startRouterOn(t, two, func(h *fakeHost) vrrp.Link {
			fl = &failingLink{fakeHost: h}
			return fl
		})
		rig.becomeMaster(t)
		fl.set(false, true)
		if err := rig.r.Reconfigure(config4()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !rig.host.isBound(vip2) {
			t.Fatal("fake unbind did not fail")
		}
		time.Sleep(1500 * time.Millisecond) // one failed retry while MASTER
		synctest.Wait()
		fl.set(false, false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		if rig.host.isBound(vip2) || !rig.host.isBound(vip) {
			t.Errorf("bound vip=%v vip2=%v, want vip only", rig.host.isBound(vip), rig.host.isBound(vip2))
		}
	})
}

// After a failed bind's back-off, the node competes again but does not preempt a healthy
// master (which would only resign again if the bind still fails); it takes over only if the
// master goes silent.
func TestRouterNoPreemptionRightAfterBindFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		var fl *failingLink
		rig := startRouterOn(t, cfg, func(h *fakeHost) vrrp.Link {
			fl = &failingLink{fakeHost: h}
			return fl
		})
		fl.set(true, false)
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		time.Sleep(time.Second) // the back-off: Backup again, no master known
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		for range 5 { // a healthy lower-priority master advertises
			rig.r.Deliver(advert(t, cfg, higher, 50))
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			rig.requireState(t, vrrp.Backup)
		}
	})
}

// A change in the foreign routers alone is signalled a bounded number of times: an attacker
// rotating its source address at every advert must not cost a status write each.
func TestRouterForeignSignalsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		rig := startRouter(t, cfg)
		rig.becomeMaster(t)
		for i := range 50 {
			src := netip.AddrFrom4([4]byte{192, 168, 1, byte(150 + i)})
			rig.r.Deliver(advert(t, cfg, src, 254, otherAddrs))
			time.Sleep(20 * time.Millisecond)
		}
		synctest.Wait()
		if got := rig.takeChanges(); len(got) > 4 {
			t.Errorf("%d foreign events in 1 s for rotating foreign senders, want at most 4", len(got))
		}
		rig.requireState(t, vrrp.Master)
	})
}
