package vrrp_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// watchedLink is a fake link that is also a vrrp.LinkStateWatcher: watch is its WatchLinkState.
type watchedLink struct {
	*fakeHost
	watch func(ctx context.Context, fn func(up bool)) error
}

func (l watchedLink) WatchLinkState(ctx context.Context, fn func(up bool)) error {
	return l.watch(ctx, fn)
}

// reportLink returns a link that reports every value sent on states.
func reportLink(states <-chan bool) func(*fakeHost) vrrp.Link {
	return func(h *fakeHost) vrrp.Link {
		return watchedLink{h, func(ctx context.Context, fn func(bool)) error {
			for {
				select {
				case up := <-states:
					fn(up)
				case <-ctx.Done():
					return nil
				}
			}
		}}
	}
}

// report sends one link state and lets the router act on it.
func report(states chan<- bool, up bool) {
	states <- up
	synctest.Wait()
}

func (rig *routerRig) wantChanges(t *testing.T, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, rig.takeChanges()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// keepalived FAULT, driven (RFC 5798 §6.4 has no Fault state): when the link goes down, the
// Master resigns (priority 0, RFC 5798 §6.4.3 Shutdown), removes the VIP and stays in Fault,
// silent, until the link is back; then it starts as Backup (RFC 5798 §6.4.1) and, hearing
// nobody, takes over after Master_Down_Interval.
func TestRouterLinkDownAndUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		states := make(chan bool)
		rig := startRouterOn(t, config4(), reportLink(states))
		report(states, true)
		rig.requireState(t, vrrp.Backup)
		rig.wantChanges(t, "Backup Started")
		rig.becomeMaster(t)

		report(states, false)
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, []string{unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
		rig.wantChanges(t, "Fault InterfaceDown")
		if rig.host.isBound(vip) {
			t.Error("VIP still bound on a dead link")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, nil, rig.host.take())

		report(states, true)
		rig.requireState(t, vrrp.Backup)
		rig.wantChanges(t, "Backup InterfaceUp")
		diffEvents(t, nil, rig.host.take())
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		diffEvents(t, []string{sendMcast(100), bindVIP, annVIP}, rig.host.take())
	})
}

// keepalived starts an instance on a down interface in FAULT: Run waits for the first link
// report before Startup (RFC 5798 §6.4.1), so the instance never passes through Backup, and
// packets wait in the queue meanwhile.
func TestRouterStartsInFaultWhenLinkDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		states := make(chan bool)
		cfg := config4()
		rig := startRouterOn(t, cfg, reportLink(states))
		rig.r.Deliver(advert(t, cfg, higher, 200))
		time.Sleep(time.Second)
		synctest.Wait()
		st := rig.r.Status()
		if st.State != vrrp.Initialize || st.Stats.AdvertsReceived != 0 {
			t.Fatalf("before the link state is known: %s, %d adverts received", st.State, st.Stats.AdvertsReceived)
		}
		rig.wantChanges(t)

		report(states, false)
		rig.requireState(t, vrrp.Fault)
		rig.wantChanges(t, "Fault InterfaceDown")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, nil, rig.host.take())

		report(states, true)
		rig.requireState(t, vrrp.Backup)
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		rig.wantChanges(t, "Backup InterfaceUp", "Master MasterDownTimer")
	})
}

// A link that never reports does not keep the router from running: it starts (RFC 5798 §6.4.1)
// after the host timeout (2 s) as if the link were up, and a later report still counts.
func TestRouterLinkStateNeverReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		states := make(chan bool)
		rig := startRouterOn(t, config4(), reportLink(states))
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Initialize)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		report(states, false)
		rig.requireState(t, vrrp.Fault)
		rig.wantChanges(t, "Backup Started", "Fault InterfaceDown")
	})
}

// A failed watch does not hold up Startup, and it is restarted (after 1 s): a watch that
// stopped for good while the link was down would leave the instance in Fault for ever.
func TestRouterLinkWatchRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		link := func(h *fakeHost) vrrp.Link {
			return watchedLink{h, func(ctx context.Context, fn func(bool)) error {
				if calls.Add(1) == 1 {
					return errors.New("netlink: no buffer space")
				}
				fn(false)
				<-ctx.Done()
				return nil
			}}
		}
		rig := startRouterOn(t, config4(), link)
		rig.requireState(t, vrrp.Backup)
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Master) // Master_Down_Interval (~361 ms) passed meanwhile
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		if rig.host.isBound(vip) {
			t.Error("VIP still bound on a dead link")
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("WatchLinkState called %d times, want 2", n)
		}
		rig.wantChanges(t, "Backup Started", "Master MasterDownTimer", "Fault InterfaceDown")
	})
}

// The probe fault and the link fault combine, driven: Fault while either holds, the reason
// following the one that remains (an event says so), Backup (RFC 5798 §6.4.1) only when
// both are clear.
func TestRouterFaultCausesCombine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		states := make(chan bool)
		rig := startRouterOn(t, config4(), reportLink(states))
		report(states, true)
		rig.becomeMaster(t)

		rig.r.SetHealth(failing)
		synctest.Wait()
		diffEvents(t, []string{unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
		report(states, false)
		rig.r.SetHealth(healthy)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		time.Sleep(time.Second)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, nil, rig.host.take())

		report(states, true)
		rig.requireState(t, vrrp.Backup)
		rig.wantChanges(t, "Fault ProbeFailed", "Fault InterfaceDown", "Backup InterfaceUp")
	})
}
