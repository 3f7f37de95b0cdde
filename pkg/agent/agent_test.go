package agent

import (
	"os"
	"path/filepath"

	"context"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// hub is an in-memory LAN: every datagram written by one host reaches the sockets of every
// other host (multicast) or of the host owning the destination (unicast).
type hub struct {
	mu    sync.Mutex
	conns []*fakeConn
}

type fakeHost struct {
	hub   *hub
	mu    sync.Mutex
	bound map[netip.Prefix]bool
}

type fakeConn struct {
	hub    *hub
	src    netip.Addr
	in     chan vrrp.Packet
	closed chan struct{}
	once   sync.Once
}

func (h *fakeHost) Listen(_ string, src netip.Addr) (vrrp.PacketConn, error) {
	c := &fakeConn{hub: h.hub, src: src, in: make(chan vrrp.Packet, 64), closed: make(chan struct{})}
	h.hub.mu.Lock()
	h.hub.conns = append(h.hub.conns, c)
	h.hub.mu.Unlock()
	return c, nil
}

func (h *fakeHost) Link(string) (vrrp.Link, error) { return h, nil }

func (h *fakeHost) Bind(_ context.Context, ps []netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range ps {
		h.bound[p] = true
	}
	return nil
}

func (h *fakeHost) Unbind(_ context.Context, ps []netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range ps {
		delete(h.bound, p)
	}
	return nil
}

func (h *fakeHost) Announce(context.Context, []netip.Addr) error { return nil }

func (h *fakeHost) WatchRemoved(ctx context.Context, _ func(netip.Prefix)) error {
	<-ctx.Done()
	return nil
}

func (h *fakeHost) has(p netip.Prefix) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bound[p]
}

func (c *fakeConn) WriteTo(b []byte, dst netip.Addr) error {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	for _, o := range c.hub.conns {
		if o == c || (!dst.IsMulticast() && o.src != dst) {
			continue
		}
		select {
		case <-o.closed:
		case o.in <- vrrp.Packet{Src: c.src, Dst: dst, TTL: 255, Data: slices.Clone(b)}:
		default:
		}
	}
	return nil
}

func (c *fakeConn) ReadPacket([]byte) (vrrp.Packet, error) {
	select {
	case p := <-c.in:
		return p, nil
	case <-c.closed:
		return vrrp.Packet{}, net.ErrClosed
	}
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

var vip = netip.MustParsePrefix("198.18.0.100/24")

func config(primary string, prio uint8) vrrp.Config {
	return vrrp.Config{
		Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond,
		Priority: prio, Addresses: []netip.Prefix{vip}, Primary: netip.MustParseAddr(primary),
		Preempt: true, Accept: true,
	}
}

func state(t *testing.T, a *Agent, name string) vrrp.State {
	t.Helper()
	st, ok := a.StatusOf(name)
	if !ok {
		t.Fatalf("no instance %q", name)
	}
	if st.Name != name {
		t.Fatalf("StatusOf(%q) is the status of %q", name, st.Name)
	}
	return st.State
}

// pair is two agents on one in-memory LAN, each running instance "web" (198.18.0.11 at p1 and
// 198.18.0.12 at p2); stop stops both and waits for them (again: nothing).
type pair struct {
	h1, h2 *fakeHost
	a1, a2 *Agent
	stop   func()
}

func startPair(t *testing.T, p1, p2 uint8) *pair {
	t.Helper()
	lan := &hub{}
	p := &pair{h1: &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}, h2: &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}}
	p.a1, p.a2 = New(p.h1, nil, Options{}), New(p.h2, nil, Options{})
	if err := p.a1.Apply("web", config("198.18.0.11", p1)); err != nil {
		t.Fatal(err)
	}
	if err := p.a2.Apply("web", config("198.18.0.12", p2)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{}, 2)
	go func() { p.a1.Run(ctx); done <- struct{}{} }()
	go func() { p.a2.Run(ctx); done <- struct{}{} }()
	var once sync.Once
	p.stop = func() { once.Do(func() { cancel(); <-done; <-done }) }
	t.Cleanup(p.stop)
	return p
}

// Two agents on one LAN elect the higher priority; removing the master's instance hands the
// address over; an address edit on the master is applied without a transition.
func TestAgentsElectHandOverAndReconfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := startPair(t, 110, 100)
		h1, h2, a1, a2 := p.h1, p.h2, p.a1, p.a2

		time.Sleep(time.Second)
		synctest.Wait()
		if got := []vrrp.State{state(t, a1, "web"), state(t, a2, "web")}; !slices.Equal(got, []vrrp.State{vrrp.Master, vrrp.Backup}) {
			t.Fatalf("states = %v, want [Master Backup]", got)
		}
		if !h1.has(vip) || h2.has(vip) {
			t.Fatalf("VIP bound on h1=%v h2=%v, want only h1", h1.has(vip), h2.has(vip))
		}

		// Address edit on the MASTER: a netlink diff, no state change.
		extra := netip.MustParsePrefix("198.18.0.101/24")
		cfg := config("198.18.0.11", 110)
		cfg.Addresses = []netip.Prefix{vip, extra}
		before := a1.Snapshot()[0].Stats.Transitions
		if err := a1.Apply("web", cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if !h1.has(extra) || a1.Snapshot()[0].Stats.Transitions != before || state(t, a1, "web") != vrrp.Master {
			t.Fatalf("after edit: extra bound=%v transitions %d->%d state %v", h1.has(extra), before,
				a1.Snapshot()[0].Stats.Transitions, state(t, a1, "web"))
		}

		// Removing the master's instance sends priority 0; the backup takes over within Skew_Time.
		start := time.Now()
		a1.Remove("web")
		if h1.has(vip) || h1.has(extra) {
			t.Fatal("removed instance left its addresses bound")
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if state(t, a2, "web") != vrrp.Master || !h2.has(vip) {
			t.Fatalf("backup did not take over within %v of the handover", time.Since(start))
		}
		p.stop()
		if h2.has(vip) {
			t.Fatal("stopped agent left the VIP bound")
		}
		// The last snapshot shows the shutdown itself, as `kube-vrrp run` logs it.
		if st := a2.Snapshot()[0]; st.State != vrrp.Initialize || st.Reason != vrrp.ReasonShutdown || st.Since.IsZero() {
			t.Errorf("after Run: %s %q since %v, want Initialize %q with its time", st.State, st.Reason, st.Since, vrrp.ReasonShutdown)
		}
	})
}

func TestApplyRejectsDuplicateVRIDAndBadConfig(t *testing.T) {
	a := New(&fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{}}, nil, Options{})
	if err := a.Apply("one", config("198.18.0.11", 100)); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply("two", config("198.18.0.11", 100)); err == nil {
		t.Fatal("second VirtualIP with the same VRID on the same interface was accepted")
	}
	same := config("198.18.0.11", 100)
	same.VRID = 52 // another group, but the same address as "one"
	if err := a.Apply("same-address", same); err == nil {
		t.Fatal("a second VirtualIP with the same virtual address was accepted")
	}
	bad := config("198.18.0.11", 100)
	bad.Interval = 15 * time.Millisecond
	if err := a.Apply("three", bad); err == nil {
		t.Fatal("v3 interval not in 10ms steps was accepted")
	}
	if got := a.Names(); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("Names() = %v, want [one]: a rejected Apply must change nothing", got)
	}
}

// Packets of a VRID no instance serves are counted, not delivered.
func TestUnknownVRIDCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &hub{}
		a := New(&fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}, nil, Options{})
		if err := a.Apply("web", config("198.18.0.11", 100)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go a.Run(ctx)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		other := &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}
		c, _ := other.Listen("eth0", netip.MustParseAddr("198.18.0.12"))
		if err := c.WriteTo([]byte{0x31, 99, 100, 1}, netip.MustParseAddr("224.0.0.18")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := a.Snapshot()[0].Stats.Drops[vrrp.DropVRID]; n != 1 {
			t.Fatalf("unknown_vrid drops = %d, want 1", n)
		}
	})
}

// A failing probe moves the VIP: weight 0 puts the master in Fault (it resigns), a negative
// weight lowers it below the backup, which preempts at once; recovery brings it back
// (preempt on). Probe health shows in the snapshot.
func TestProbesMoveTheVIP(t *testing.T) {
	for _, tc := range []struct {
		name      string
		weight    int
		downState vrrp.State
	}{
		{"weight 0 faults", 0, vrrp.Fault},
		{"weight -20 lowers", -20, vrrp.Backup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flag := filepath.Join(t.TempDir(), "healthy")
			if err := os.WriteFile(flag, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			synctest.Test(t, func(t *testing.T) {
				lan := &hub{}
				h1 := &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}
				h2 := &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}
				a1, a2 := New(h1, nil, Options{}), New(h2, nil, Options{})
				check := probe.Spec{Name: "flag", Kind: probe.KindFile, Path: flag,
					Interval: 100 * time.Millisecond, Weight: tc.weight}
				if err := a1.Apply("web", config("198.18.0.11", 110), check); err != nil {
					t.Fatal(err)
				}
				if err := a2.Apply("web", config("198.18.0.12", 100)); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{}, 2)
				go func() { a1.Run(ctx); done <- struct{}{} }()
				go func() { a2.Run(ctx); done <- struct{}{} }()
				defer func() { cancel(); <-done; <-done }()

				time.Sleep(time.Second)
				synctest.Wait()
				if s1, s2 := state(t, a1, "web"), state(t, a2, "web"); s1 != vrrp.Master || s2 != vrrp.Backup {
					t.Fatalf("healthy: states %v %v, want Master Backup", s1, s2)
				}
				if ps := a1.Snapshot()[0].Probes; len(ps) != 1 || !ps[0].Known || !ps[0].Healthy {
					t.Fatalf("probe status %+v, want known and healthy", ps)
				}

				if err := os.Remove(flag); err != nil {
					t.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond)
				synctest.Wait()
				if s1, s2 := state(t, a1, "web"), state(t, a2, "web"); s1 != tc.downState || s2 != vrrp.Master {
					t.Fatalf("probe failing: states %v %v, want %v Master", s1, s2, tc.downState)
				}
				if h1.has(vip) || !h2.has(vip) {
					t.Fatalf("probe failing: VIP on h1=%v h2=%v, want only h2", h1.has(vip), h2.has(vip))
				}
				if st := a1.Snapshot()[0]; st.Adjustment == "" || st.Probes[0].Healthy {
					t.Fatalf("failing probe not reported: %+v", st)
				}

				if err := os.WriteFile(flag, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if s1, s2 := state(t, a1, "web"), state(t, a2, "web"); s1 != vrrp.Master || s2 != vrrp.Backup {
					t.Fatalf("recovered: states %v %v, want Master Backup (preempt)", s1, s2)
				}
			})
		})
	}
}

// An exec probe is refused unless the agent enables it, and the refusal is the reason shown.
func TestExecProbeRefusedByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New(&fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{}}, nil, Options{})
		run := probe.Spec{Name: "script", Kind: probe.KindExec, Command: []string{"/bin/true"}, Interval: time.Second}
		if err := a.Apply("web", config("198.18.0.11", 110), run); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		st := a.Snapshot()[0]
		if st.State != vrrp.Fault || len(st.Probes) != 1 || st.Probes[0].Reason != probe.ExecDisabledReason {
			t.Fatalf("state %v probes %+v, want Fault with %q", st.State, st.Probes, probe.ExecDisabledReason)
		}
	})
}

// A priority change applied while the probes stay the same is the base of every later probe
// transition: a failing weight -20 probe then lowers the new priority, not the old one.
func TestProbeWeightAppliesToReconfiguredPriority(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "healthy")
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		a := New(&fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{}}, nil, Options{})
		check := probe.Spec{Name: "flag", Kind: probe.KindFile, Path: flag, Interval: 100 * time.Millisecond, Weight: -20}
		if err := a.Apply("web", config("198.18.0.11", 110), check); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Second)
		synctest.Wait()

		if err := a.Apply("web", config("198.18.0.11", 150), check); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if p := a.Snapshot()[0].Priority; p != 150 {
			t.Fatalf("priority %d after the change to 150 with a healthy probe, want 150", p)
		}
		if err := os.Remove(flag); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		if p := a.Snapshot()[0].Priority; p != 130 {
			t.Fatalf("priority %d with the probe failing, want 150-20 = 130", p)
		}
	})
}

// Editing a healthy MASTER's probes (here only the interval) must not put it in Fault while the
// new probe set has not reported yet: every node gets the edit at once, so they would all resign
// together and the VIP would be down for Master_Down_Interval.
func TestProbeEditKeepsHealthyMaster(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "healthy")
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{}}
		a := New(h, nil, Options{})
		check := probe.Spec{Name: "flag", Kind: probe.KindFile, Path: flag, Interval: 100 * time.Millisecond}
		if err := a.Apply("web", config("198.18.0.11", 110), check); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Second)
		synctest.Wait()
		st := a.Snapshot()[0]
		if st.State != vrrp.Master {
			t.Fatalf("state %v, want Master", st.State)
		}
		transitions := st.Stats.Transitions

		check.Interval = 200 * time.Millisecond
		if err := a.Apply("web", config("198.18.0.11", 110), check); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		st = a.Snapshot()[0]
		if st.State != vrrp.Master || st.Stats.Transitions != transitions || !h.has(vip) {
			t.Fatalf("after a probe edit: state %v, transitions %d (was %d), VIP bound %v; want Master, no transition, bound",
				st.State, st.Stats.Transitions, transitions, h.has(vip))
		}
	})
}
