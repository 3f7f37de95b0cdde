package vrrp_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// fakeHost is the Sender and Link of one router: it records every effect, in order, as text.
type fakeHost struct {
	cfg vrrp.Config

	mu      sync.Mutex
	events  []string
	bound   map[netip.Prefix]bool
	removed func(netip.Prefix)
	// intervals are the intervals of the adverts sent, in order.
	intervals []time.Duration
}

func newFakeHost(cfg vrrp.Config) *fakeHost {
	return &fakeHost{cfg: cfg, bound: map[netip.Prefix]bool{}}
}

func (h *fakeHost) record(format string, args ...any) {
	h.events = append(h.events, fmt.Sprintf(format, args...))
}

func (h *fakeHost) WriteTo(b []byte, dst netip.Addr) error {
	a, err := packet.Parse(b, h.cfg.Primary, dst)
	if err != nil {
		return fmt.Errorf("fake host: unparseable advert: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.record("send %s prio %d", dst, a.Priority)
	h.intervals = append(h.intervals, a.Interval)
	return nil
}

func (h *fakeHost) Bind(_ context.Context, ps []netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range ps {
		h.bound[p] = true
	}
	h.record("bind %v", ps)
	return nil
}

func (h *fakeHost) Unbind(_ context.Context, ps []netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range ps {
		delete(h.bound, p)
	}
	h.record("unbind %v", ps)
	return nil
}

func (h *fakeHost) Announce(_ context.Context, as []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.record("announce %v", as)
	return nil
}

func (h *fakeHost) WatchRemoved(ctx context.Context, fn func(netip.Prefix)) error {
	h.mu.Lock()
	h.removed = fn
	h.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// removeExternally is someone else deleting p from the interface.
func (h *fakeHost) removeExternally(p netip.Prefix) {
	h.mu.Lock()
	delete(h.bound, p)
	fn := h.removed
	h.mu.Unlock()
	fn(p)
}

// take returns the events recorded since the last call.
func (h *fakeHost) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := h.events
	h.events = nil
	return ev
}

func (h *fakeHost) isBound(p netip.Prefix) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bound[p]
}

// routerRig is a running Router in a synctest bubble.
type routerRig struct {
	r      *vrrp.Router
	host   *fakeHost
	cancel context.CancelFunc
	errc   chan error

	mu sync.Mutex
	// changes are the events that tell a state, a reason, foreign routers or a host error:
	// "Master MasterDownTimer", "Foreign 2", "HostError"; events are all of them.
	changes []string
	events  []vrrp.Event
}

func (rig *routerRig) takeChanges() []string {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	c := rig.changes
	rig.changes = nil
	return c
}

// startRouter runs a Router for cfg; it must be called inside synctest.Test.
func startRouter(t *testing.T, cfg vrrp.Config) *routerRig {
	t.Helper()
	return startRouterOn(t, cfg, nil)
}

// startRouterOn is startRouter with the link link(host) when link is not nil.
func startRouterOn(t *testing.T, cfg vrrp.Config, link func(*fakeHost) vrrp.Link) *routerRig {
	t.Helper()
	return startRouterWith(t, cfg, newFakeHost(cfg), link, nil)
}

// startRouterWith is startRouterOn on host, calling before (if set) on the Router before Run.
func startRouterWith(t *testing.T, cfg vrrp.Config, host *fakeHost, link func(*fakeHost) vrrp.Link, before func(*vrrp.Router)) *routerRig {
	t.Helper()
	rig := &routerRig{host: host, errc: make(chan error, 1)}
	var l vrrp.Link = rig.host
	if link != nil {
		l = link(rig.host)
	}
	rig.r = vrrp.NewRouter(mustNew(t, cfg), rig.host, l, nil, func(e vrrp.Event) {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		rig.events = append(rig.events, e)
		switch e.Kind {
		case vrrp.EventTransition, vrrp.EventReason:
			rig.changes = append(rig.changes, e.State.String()+" "+e.Reason)
		case vrrp.EventForeign:
			rig.changes = append(rig.changes, fmt.Sprintf("Foreign %d", len(e.Foreign)))
		case vrrp.EventHostError:
			rig.changes = append(rig.changes, "HostError")
		}
	})
	if before != nil {
		before(rig.r)
	}
	var ctx context.Context
	ctx, rig.cancel = context.WithCancel(t.Context())
	go func() { rig.errc <- rig.r.Run(ctx) }()
	t.Cleanup(func() {
		rig.cancel()
		<-rig.r.Done()
	})
	synctest.Wait()
	return rig
}

func (rig *routerRig) requireState(t *testing.T, want vrrp.State) {
	t.Helper()
	if got := rig.r.Status().State; got != want {
		t.Fatalf("router state %s, want %s", got, want)
	}
}

func diffEvents(t *testing.T, want, got []string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("host effects (-want +got):\n%s", diff)
	}
}

// becomeMaster waits out the Master_Down_Interval of config4 (nothing heard).
func (rig *routerRig) becomeMaster(t *testing.T) {
	t.Helper()
	time.Sleep(mdi100)
	synctest.Wait()
	rig.requireState(t, vrrp.Master)
	rig.host.take()
	rig.takeChanges()
}

var (
	sendMcast = func(prio uint8) string { return fmt.Sprintf("send %s prio %d", packet.MulticastIPv4, prio) }
	bindVIP   = "bind [" + vip.String() + "]"
	unbindVIP = "unbind [" + vip.String() + "]"
	annVIP    = "announce [" + vip.Addr().String() + "]"
)

// RFC 5798 §6.4.1/§6.4.2 driven in real (fake) time: Run starts the instance as Backup and, hearing
// nothing, becomes Master exactly Master_Down_Interval later, then advertises every interval.
func TestRouterRunBecomesMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouter(t, config4())
		rig.requireState(t, vrrp.Backup)
		diffEvents(t, nil, rig.host.take())
		if diff := cmp.Diff([]string{"Backup Started"}, rig.takeChanges()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}

		time.Sleep(mdi100 - time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		diffEvents(t, []string{sendMcast(100), bindVIP, annVIP}, rig.host.take())
		if diff := cmp.Diff([]string{"Master MasterDownTimer"}, rig.takeChanges()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}

		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		diffEvents(t, []string{sendMcast(100)}, rig.host.take())
		// The second burst, AnnounceRepeat (250 ms) after the takeover.
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		diffEvents(t, []string{sendMcast(100), bindVIP, annVIP}, rig.host.take())
		if st := rig.r.Status(); st.Stats.AdvertsSent != 3 {
			t.Errorf("AdvertsSent %d, want 3", st.Stats.AdvertsSent)
		}
	})
}

// RFC 5798 §6.4.3: a delivered higher-priority advert makes the Master a Backup that removes its
// addresses (and, docs/design.md §4.4, first sends one last advert the winner beats, so that it
// re-announces).
func TestRouterDeliverHigherPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		rig := startRouter(t, cfg)
		rig.becomeMaster(t)
		if !rig.r.Deliver(advert(t, cfg, higher, 200)) {
			t.Fatal("Deliver refused a packet on an empty queue")
		}
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		diffEvents(t, []string{unbindVIP, sendMcast(200)}, rig.host.take())
		if rig.host.isBound(vip) {
			t.Error("VIP still bound")
		}
		if diff := cmp.Diff([]string{"Backup HigherPriorityMaster"}, rig.takeChanges()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if st := rig.r.Status(); st.Master != higher || st.MasterPriority != 200 {
			t.Errorf("status master %s/%d", st.Master, st.MasterPriority)
		}
		// The master keeps advertising: no takeover while it does.
		for range 10 {
			time.Sleep(100 * time.Millisecond)
			rig.r.Deliver(advert(t, cfg, higher, 200))
		}
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
	})
}

// RFC 5798 §6.4.3 Shutdown and docs/design.md §4.9: cancelling Run as Master removes the addresses
// and sends priority 0 before Run returns, although its context is already cancelled.
func TestRouterCancelAsMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouter(t, config4())
		rig.becomeMaster(t)
		rig.cancel()
		if err := <-rig.errc; err != nil {
			t.Errorf("Run returned %v", err)
		}
		diffEvents(t, []string{unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
		select {
		case <-rig.r.Done():
		default:
			t.Error("Done not closed after Run returned")
		}
		if st := rig.r.Status(); st.State != vrrp.Initialize {
			t.Errorf("state after Run %s", st.State)
		}
		// Commands after the end don't block.
		rig.r.SetHealth(failing)
		if err := rig.r.Reconfigure(config4()); err == nil {
			t.Error("Reconfigure on a stopped router succeeded")
		}
	})
}

// RFC 5798 §6.4.2 Shutdown as Backup: cancel the timer and stop; it sends nothing and touches no
// address.
func TestRouterCancelAsBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouter(t, config4())
		rig.cancel()
		<-rig.errc
		diffEvents(t, nil, rig.host.take())
	})
}

// RFC 5798 §6.4.3 and §6.4.1, driven: SetPriority as Master advertises the new priority at once;
// SetFault resigns with priority 0 and removes the addresses; clearing it returns to Backup, which
// takes over again after the Master_Down_Interval of its (new) priority.
func TestRouterSetPriorityAndFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouter(t, config4())
		rig.becomeMaster(t)

		rig.r.SetHealth(vrrp.Health{Adjust: 20, Reason: vrrp.ReasonProbeRecovered})
		synctest.Wait()
		diffEvents(t, []string{sendMcast(120)}, rig.host.take())
		if st := rig.r.Status(); st.Priority != 120 {
			t.Errorf("priority %d, want 120", st.Priority)
		}

		rig.r.SetHealth(vrrp.Health{Fault: true, Adjust: 20, Reason: vrrp.ReasonProbeFailed})
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, []string{unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
		time.Sleep(10 * time.Second)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, nil, rig.host.take())

		rig.r.SetHealth(vrrp.Health{Adjust: 20, Reason: vrrp.ReasonProbeRecovered})
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		// 3 * 100 ms + 136 * 100 ms / 256 = 353.125 ms.
		time.Sleep(353125*time.Microsecond - time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Backup)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		diffEvents(t, []string{sendMcast(120), bindVIP, annVIP}, rig.host.take())
		if diff := cmp.Diff([]string{"Fault ProbeFailed", "Backup ProbeRecovered", "Master MasterDownTimer"}, rig.takeChanges()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

// RFC 5798 §7.1 receive path under load: a flood must not grow memory, so beyond the queue Deliver
// drops and counts queue_full.
func TestRouterDeliverQueueFull(t *testing.T) {
	cfg := config4()
	r := vrrp.NewRouter(mustNew(t, cfg), newFakeHost(cfg), newFakeHost(cfg), nil, nil)
	p := advert(t, cfg, higher, 200)
	accepted := 0
	for accepted < 10000 && r.Deliver(p) {
		accepted++
	}
	if accepted == 0 || accepted == 10000 {
		t.Fatalf("queue accepted %d packets without a reader", accepted)
	}
	for range 5 {
		if r.Deliver(p) {
			t.Fatal("Deliver accepted a packet on a full queue")
		}
	}
	want := map[packet.Reason]uint64{vrrp.DropQueueFull: 6}
	if diff := cmp.Diff(want, r.Status().Stats.Drops); diff != "" {
		t.Errorf("drops (-want +got):\n%s", diff)
	}
}

// RFC 5798 §7.1: the queue drains once Run reads it, each packet validated and counted; a full
// queue is delay, not loss of what was accepted.
func TestRouterQueueDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		host := newFakeHost(cfg)
		r := vrrp.NewRouter(mustNew(t, cfg), host, host, nil, nil)
		bad := advert(t, cfg, higher, 200)
		bad.TTL = 1
		accepted := 0
		for r.Deliver(bad) {
			accepted++
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		synctest.Wait()
		st := r.Status()
		if got := st.Stats.Drops[vrrp.DropTTL]; got != uint64(accepted) {
			t.Errorf("bad_ttl drops %d, want the %d queued packets", got, accepted)
		}
		if got := st.Stats.Drops[vrrp.DropQueueFull]; got != 1 {
			t.Errorf("queue_full drops %d, want 1", got)
		}
		cancel()
		<-r.Done()
	})
}

// RFC 5798 §6.4.3 and docs/design.md §5.4: when something else removes a VIP from a Master, the
// watch puts it back and announces it; a Backup leaves it alone.
func TestRouterWatchRemovedRebinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		rig := startRouter(t, cfg)
		rig.host.removeExternally(vip) // as Backup: nothing
		synctest.Wait()
		diffEvents(t, nil, rig.host.take())

		rig.becomeMaster(t)
		rig.host.removeExternally(vip)
		synctest.Wait()
		diffEvents(t, []string{bindVIP, annVIP}, rig.host.take())
		if !rig.host.isBound(vip) {
			t.Error("VIP not bound again")
		}
		rig.requireState(t, vrrp.Master)
	})
}

// RFC 5798 §6.4.3 Adver_Timer: a refused Reconfigure leaves the running router as it was, so a
// Master keeps advertising (before the fix in Instance.Reconfigure, the driver's timer was disarmed
// and the Master went silent while holding the VIP). An accepted one applies the address diff.
func TestRouterReconfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		rig := startRouter(t, cfg)
		rig.becomeMaster(t)

		if err := rig.r.Reconfigure(with(cfg, func(c *vrrp.Config) { c.VRID = 99 })); !errors.Is(err, vrrp.ErrIncompatible) {
			t.Fatalf("Reconfigure VRID: %v, want ErrIncompatible", err)
		}
		if err := rig.r.Reconfigure(with(cfg, func(c *vrrp.Config) { c.Interval = 0 })); err == nil {
			t.Fatal("Reconfigure accepted an invalid config")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		var adverts int
		for _, e := range rig.host.take() {
			if e == sendMcast(100) {
				adverts++
			}
		}
		// Ten intervals (plus the pending second announce burst, which isn't an advert).
		if adverts != 10 {
			t.Errorf("%d adverts in the second after a refused Reconfigure, want 10", adverts)
		}

		next := with(cfg, func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip2} })
		if err := rig.r.Reconfigure(next); err != nil {
			t.Fatalf("Reconfigure: %v", err)
		}
		synctest.Wait()
		got := rig.host.take()
		want := []string{unbindVIP, sendMcast(100), "bind [" + vip2.String() + "]", "announce [" + vip2.Addr().String() + "]"}
		diffEvents(t, want, got)
		if !rig.host.isBound(vip2) || rig.host.isBound(vip) {
			t.Errorf("bound after reconfigure: vip %v vip2 %v", rig.host.isBound(vip), rig.host.isBound(vip2))
		}
		rig.requireState(t, vrrp.Master)
	})
}

// RFC 5798 §6.4.2/§6.4.3: two routers wired back to back through their fake hosts, in fake time:
// the higher one wins, and cancelling it hands over to the other with priority 0 after Skew_Time,
// not Master_Down_Interval.
func TestRouterPairHandover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := with(config4(), func(c *vrrp.Config) { c.Priority = 110 })
		cb := with(config4(), func(c *vrrp.Config) { c.Primary = higher })
		wa, wb := &wire{}, &wire{}
		ha, hb := newFakeHost(ca), newFakeHost(cb)
		ra := vrrp.NewRouter(mustNew(t, ca), teeSender{ha, wa}, ha, nil, nil)
		rb := vrrp.NewRouter(mustNew(t, cb), teeSender{hb, wb}, hb, nil, nil)
		wa.src, wa.to = ca.Primary, rb
		wb.src, wb.to = cb.Primary, ra

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
		if !ha.isBound(vip) || hb.isBound(vip) {
			t.Fatalf("VIP bound on a=%v b=%v", ha.isBound(vip), hb.isBound(vip))
		}

		cancelA()
		<-ra.Done()
		synctest.Wait()
		if rb.Status().State != vrrp.Backup {
			t.Fatalf("b took over before Skew_Time")
		}
		time.Sleep(skew100)
		synctest.Wait()
		if rb.Status().State != vrrp.Master || !hb.isBound(vip) || ha.isBound(vip) {
			t.Fatalf("after Skew_Time: b %s, bound a=%v b=%v", rb.Status().State, ha.isBound(vip), hb.isBound(vip))
		}
		if slices.Contains(hb.take(), sendMcast(0)) {
			t.Error("b sent priority 0")
		}
	})
}

// wire delivers what one router sends to another, as a multicast segment would.
type wire struct {
	src netip.Addr
	to  *vrrp.Router
}

type teeSender struct {
	h *fakeHost
	w *wire
}

func (s teeSender) WriteTo(b []byte, dst netip.Addr) error {
	if err := s.h.WriteTo(b, dst); err != nil {
		return err
	}
	s.w.to.Deliver(vrrp.Packet{Src: s.w.src, Dst: dst, TTL: 255, Data: slices.Clone(b)})
	return nil
}

// failingWatch is a fakeHost whose first address watches fail at once, as a watch whose link
// vanished under a lost-event resync did; later ones work.
type failingWatch struct {
	*fakeHost
	failures *atomic.Int32
}

func (l failingWatch) WatchRemoved(ctx context.Context, fn func(netip.Prefix)) error {
	if l.failures.Add(-1) >= 0 {
		return errors.New("watch addresses on eth0: dump addresses: no such device")
	}
	return l.fakeHost.WatchRemoved(ctx, fn)
}

// docs/design.md §5.4: an address watch that fails is started again with a back-off, so a VIP
// someone removes later is still put back (before, the first failure ended it for the
// instance's life).
func TestRouterWatchRemovedRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failures atomic.Int32
		failures.Store(2)
		rig := startRouterOn(t, config4(), func(h *fakeHost) vrrp.Link { return failingWatch{h, &failures} })
		rig.becomeMaster(t)
		time.Sleep(time.Minute) // past the back-off after two failures
		synctest.Wait()
		rig.host.take()
		rig.host.removeExternally(vip)
		synctest.Wait()
		diffEvents(t, []string{bindVIP, annVIP}, rig.host.take())
		if !rig.host.isBound(vip) {
			t.Error("VIP not bound again after the watch was restarted")
		}
	})
}
