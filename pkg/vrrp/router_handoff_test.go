package vrrp_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// retainingLink is a fake link that is also a vrrp.AddressRetainer: it records each Retain
// ("retain [prefixes] lifetime") and fails it with err when set.
type retainingLink struct {
	*fakeHost
	err error
}

func (l retainingLink) Retain(_ context.Context, ps []netip.Prefix, lifetime time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record("retain %v %v", ps, lifetime)
	return l.err
}

func retaining(err error) func(*fakeHost) vrrp.Link {
	return func(h *fakeHost) vrrp.Link { return retainingLink{h, err} }
}

// takeIntervals returns the intervals of the adverts sent since the last call.
func (h *fakeHost) takeIntervals() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	iv := h.intervals
	h.intervals = nil
	return iv
}

func retainVIP(lifetime time.Duration) string { return fmt.Sprintf("retain [%s] %v", vip, lifetime) }

// stop cancels the rig's Run and waits for it.
func (rig *routerRig) stop(t *testing.T) {
	t.Helper()
	rig.cancel()
	if err := <-rig.errc; err != nil {
		t.Errorf("Run returned %v", err)
	}
}

func (rig *routerRig) lastEvent() vrrp.Event {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return rig.events[len(rig.events)-1]
}

// docs/design.md §4.9.1, driven: a MASTER whose Run ends with a handoff first gives its
// addresses the window as their lifetime, then sends an advert (three copies) at its priority with the
// interval stretched to bound/4, removes nothing, and tells the caller what it handed over.
func TestRouterHandoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouterOn(t, config4(), retaining(nil))
		rig.becomeMaster(t)
		rig.r.HandoffOnStop(8 * time.Second)
		if h := rig.r.HandedOff(); h != nil {
			t.Errorf("HandedOff %+v before Run ended", h)
		}
		rig.host.takeIntervals()
		rig.stop(t)
		at := time.Now()
		diffEvents(t, []string{retainVIP(8 * time.Second), sendMcast(100), sendMcast(100), sendMcast(100)}, rig.host.take())
		if diff := cmp.Diff([]time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}, rig.host.takeIntervals()); diff != "" {
			t.Errorf("advert intervals (-want +got):\n%s", diff)
		}
		if !rig.host.isBound(vip) {
			t.Error("the handed-over VIP was removed")
		}
		want := &vrrp.Handoff{Interface: "eth0", VRID: 51, Addresses: []netip.Prefix{vip}, At: at, Window: 8 * time.Second}
		if diff := cmp.Diff(want, rig.r.HandedOff(), cmpOpts...); diff != "" {
			t.Errorf("HandedOff (-want +got):\n%s", diff)
		}
		rig.wantChanges(t, "Initialize Handoff")
		if e := rig.lastEvent(); e.From != vrrp.Master || !strings.Contains(e.Message, "kept for a successor for 8s") {
			t.Errorf("handoff event %+v", e)
		}
		if st := rig.r.Status(); st.State != vrrp.Initialize || st.Reason != vrrp.ReasonHandoff {
			t.Errorf("status %s %s", st.State, st.Reason)
		}
	})
}

// docs/design.md §4.9.1: addresses that cannot be given a lifetime must not be left behind by a
// successor that may never come: Run hands over to the backups instead (§4.9).
func TestRouterHandoffRetainFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouterOn(t, config4(), retaining(errors.New("netlink: operation not permitted")))
		rig.becomeMaster(t)
		rig.r.HandoffOnStop(8 * time.Second)
		rig.stop(t)
		diffEvents(t, []string{retainVIP(8 * time.Second), unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
		if rig.host.isBound(vip) {
			t.Error("VIP still bound")
		}
		if h := rig.r.HandedOff(); h != nil {
			t.Errorf("HandedOff %+v after a shutdown", h)
		}
		rig.wantChanges(t, "Initialize Shutdown")
	})
}

// A Link that cannot give addresses a lifetime keeps them as they are at a handoff (the caller
// has no other choice than its successor's word); VRRPv2 sends nothing (RFC 3768 §7.1).
func TestRouterHandoffWithoutRetainer(t *testing.T) {
	for _, cfg := range []vrrp.Config{config4(), config2()} {
		t.Run(fmt.Sprintf("v%d", cfg.Version), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rig := startRouter(t, cfg)
				time.Sleep(5 * time.Second)
				synctest.Wait()
				rig.requireState(t, vrrp.Master)
				rig.host.take()
				rig.r.HandoffOnStop(8 * time.Second)
				rig.stop(t)
				want, window := []string{sendMcast(100), sendMcast(100), sendMcast(100)}, 8*time.Second
				if cfg.Version == 2 {
					want, window = nil, 4*time.Second
				}
				diffEvents(t, want, rig.host.take())
				if h := rig.r.HandedOff(); h == nil || h.Window != window || !rig.host.isBound(vip) {
					t.Errorf("HandedOff %+v, bound %v", h, rig.host.isBound(vip))
				}
			})
		})
	}
}

// Only a MASTER hands off: a Backup asked to stops as usual, sending and retaining nothing; and a
// handoff taken back (bound 0) is the usual shutdown.
func TestRouterHandoffNotMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouterOn(t, config4(), retaining(nil))
		rig.r.HandoffOnStop(8 * time.Second)
		rig.stop(t)
		diffEvents(t, nil, rig.host.take())
		if h := rig.r.HandedOff(); h != nil {
			t.Errorf("HandedOff %+v from a Backup", h)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		rig := startRouterOn(t, config4(), retaining(nil))
		rig.becomeMaster(t)
		rig.r.HandoffOnStop(8 * time.Second)
		rig.r.HandoffOnStop(0)
		rig.stop(t)
		diffEvents(t, []string{unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
	})
}

// docs/design.md §4.9.1, driven: a Router started resumed is MASTER at once (Resumed): it
// advertises at its own interval, binds the addresses its predecessor left and then makes them
// permanent (Retain, lifetime 0), and announces nothing, neither at once nor later.
func TestRouterResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		host := newFakeHost(cfg)
		host.bound[vip] = true // left by the predecessor
		rig := startRouterWith(t, cfg, host, retaining(nil), (*vrrp.Router).ResumeAtStart)
		rig.requireState(t, vrrp.Master)
		diffEvents(t, []string{sendMcast(100), bindVIP, retainVIP(0)}, rig.host.take())
		rig.wantChanges(t, "Master Resumed")
		if diff := cmp.Diff([]time.Duration{100 * time.Millisecond}, rig.host.takeIntervals()); diff != "" {
			t.Errorf("advert intervals (-want +got):\n%s", diff)
		}

		time.Sleep(3 * time.Second)
		synctest.Wait()
		for _, e := range rig.host.take() {
			if e != sendMcast(100) {
				t.Errorf("host effect %q after resuming, want adverts only", e)
			}
		}
		rig.requireState(t, vrrp.Master)
		rig.wantChanges(t)
	})
}

// A resumed Router that cannot serve (here its link is down) resigns as a MASTER entering Fault
// does: priority 0 and the addresses removed, nothing retained.
func TestRouterResumeFaulted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		host := newFakeHost(cfg)
		host.bound[vip] = true
		states := make(chan bool)
		rig := startRouterWith(t, cfg, host, reportLink(states), (*vrrp.Router).ResumeAtStart)
		report(states, false)
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, []string{unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
		rig.wantChanges(t, "Fault InterfaceDown")
	})
}

// hub is a multicast segment between Routers: what one sends reaches every other attached one.
type hub struct {
	mu      sync.Mutex
	routers map[netip.Addr]*vrrp.Router
}

func (h *hub) attach(src netip.Addr, r *vrrp.Router) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r == nil {
		delete(h.routers, src)
		return
	}
	h.routers[src] = r
}

// hubSender is the Sender of the router at src on hub, recording on host.
type hubSender struct {
	host *fakeHost
	hub  *hub
	src  netip.Addr
}

func (s hubSender) WriteTo(b []byte, dst netip.Addr) error {
	if err := s.host.WriteTo(b, dst); err != nil {
		return err
	}
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	for src, r := range s.hub.routers {
		if src != s.src {
			r.Deliver(vrrp.Packet{Src: s.src, Dst: dst, TTL: 255, Data: slices.Clone(b)})
		}
	}
	return nil
}

// docs/design.md §4.9.1 with two Routers in fake time: the MASTER's Router ends with a handoff,
// its successor on the same host starts resumed a second later, and the backup never moves;
// nothing is removed or announced on either host.
func TestRouterPairHandoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := with(config4(), func(c *vrrp.Config) { c.Priority = 110 })
		cb := with(config4(), func(c *vrrp.Config) { c.Primary = higher })
		lan := &hub{routers: map[netip.Addr]*vrrp.Router{}}
		ha, hb := newFakeHost(ca), newFakeHost(cb)
		var mu sync.Mutex
		var moved []string
		ra := vrrp.NewRouter(mustNew(t, ca), hubSender{ha, lan, ca.Primary}, retainingLink{ha, nil}, nil, nil)
		rb := vrrp.NewRouter(mustNew(t, cb), hubSender{hb, lan, cb.Primary}, retainingLink{hb, nil}, nil, func(e vrrp.Event) {
			if e.Kind == vrrp.EventTransition {
				mu.Lock()
				moved = append(moved, e.State.String()+" "+e.Reason)
				mu.Unlock()
			}
		})
		lan.attach(ca.Primary, ra)
		lan.attach(cb.Primary, rb)
		ctxA, cancelA := context.WithCancel(t.Context())
		ctxB, cancelB := context.WithCancel(t.Context())
		defer cancelB()
		go ra.Run(ctxA)
		go rb.Run(ctxB)
		time.Sleep(time.Second)
		synctest.Wait()
		if ra.Status().State != vrrp.Master || rb.Status().State != vrrp.Backup {
			t.Fatalf("states %s/%s, want Master/Backup", ra.Status().State, rb.Status().State)
		}
		mu.Lock()
		moved = nil
		mu.Unlock()
		ha.take()
		hb.take()

		ra.HandoffOnStop(8 * time.Second)
		cancelA()
		<-ra.Done()
		lan.attach(ca.Primary, nil)
		if ra.HandedOff() == nil {
			t.Fatal("nothing handed over")
		}
		time.Sleep(time.Second)
		synctest.Wait()

		ra2 := vrrp.NewRouter(mustNew(t, ca), hubSender{ha, lan, ca.Primary}, retainingLink{ha, nil}, nil, nil)
		ra2.ResumeAtStart()
		lan.attach(ca.Primary, ra2)
		ctxA2, cancelA2 := context.WithCancel(t.Context())
		defer cancelA2()
		go ra2.Run(ctxA2)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if ra2.Status().State != vrrp.Master || rb.Status().State != vrrp.Backup {
			t.Fatalf("states %s/%s after the resume, want Master/Backup", ra2.Status().State, rb.Status().State)
		}
		mu.Lock()
		if len(moved) != 0 {
			t.Errorf("the backup moved: %v", moved)
		}
		mu.Unlock()
		for _, e := range ha.take() {
			if strings.HasPrefix(e, "unbind") || strings.HasPrefix(e, "announce") {
				t.Errorf("master's host: %s", e)
			}
		}
		if got := hb.take(); len(got) != 0 {
			t.Errorf("backup's host: %v", got)
		}
		if !ha.isBound(vip) || hb.isBound(vip) {
			t.Errorf("VIP bound a=%v b=%v", ha.isBound(vip), hb.isBound(vip))
		}
	})
}
