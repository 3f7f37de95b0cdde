package vrrp_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// lan is a simulated LAN with a virtual clock: Instances exchange datagrams that arrive after a
// fixed latency, and the loop advances time straight to the earliest timer or delivery. Every
// step checks the safety invariant: two connected routers never both hold an address for longer
// than one advert interval plus the latency.
type lan struct {
	t       *testing.T
	now     time.Time
	latency time.Duration
	// maxOverlap is how long two connected routers may both hold an address.
	maxOverlap time.Duration
	nodes      []*simNode
	inflight   []frame
	seq        int
	overlap    map[netip.Prefix]time.Time
}

// simNode is one router and its fake host.
type simNode struct {
	name  string
	cfg   vrrp.Config
	in    *vrrp.Instance
	next  time.Time
	up    bool
	cut   bool // link cut: everything it sends or should receive is lost
	bound map[netip.Prefix]bool
	// announced records when each address was announced.
	announced map[netip.Addr][]time.Time
	log       []vrrp.Transition
	// kept is, after a handoff, when the kernel removes the addresses the stopped router left
	// bound (their lifetime, docs/design.md §4.9.1); zero otherwise.
	kept time.Time
}

type frame struct {
	at       time.Time
	seq      int
	from, to *simNode
	p        vrrp.Packet
}

// newLAN builds routers named r0.. with primary addresses 192.168.1.11.. (so later ones win
// ties), all sharing base's group config, with the given priorities.
func newLAN(t *testing.T, base vrrp.Config, latency time.Duration, prios ...uint8) *lan {
	t.Helper()
	l := &lan{t: t, now: t0, latency: latency, maxOverlap: base.Interval + latency, overlap: map[netip.Prefix]time.Time{}}
	for i, p := range prios {
		cfg := base
		cfg.Priority = p
		cfg.Primary = netip.AddrFrom4([4]byte{192, 168, 1, byte(11 + i)})
		l.nodes = append(l.nodes, &simNode{
			name: fmt.Sprintf("r%d", i), cfg: cfg,
			bound: map[netip.Prefix]bool{}, announced: map[netip.Addr][]time.Time{},
		})
	}
	return l
}

// unicast makes every router advertise to the others' addresses instead of the group.
func (l *lan) unicast() {
	for _, n := range l.nodes {
		n.cfg.Peers = nil
		for _, o := range l.nodes {
			if o != n {
				n.cfg.Peers = append(n.cfg.Peers, o.cfg.Primary)
			}
		}
	}
}

// membersKnown gives every router the complete member list with each one's priority, as
// pkg/desired does in Kubernetes mode.
func (l *lan) membersKnown() {
	for _, n := range l.nodes {
		n.cfg.Members, n.cfg.MembersComplete = nil, true
		for _, o := range l.nodes {
			if o != n {
				n.cfg.Members = append(n.cfg.Members, vrrp.Member{Addr: o.cfg.Primary, MaxPriority: o.cfg.Priority})
			}
		}
	}
}

func (l *lan) start(ns ...*simNode) {
	l.t.Helper()
	for _, n := range ns {
		if n.in == nil {
			n.in = mustNew(l.t, n.cfg)
		} else {
			// A restarted process: a fresh instance.
			in, err := vrrp.New(n.cfg, nil)
			if err != nil {
				l.t.Fatal(err)
			}
			n.in = in
		}
		n.up = true
		l.apply(n, n.in.Start(l.now))
	}
	l.check()
}

func (l *lan) shutdown(n *simNode) {
	l.t.Helper()
	l.apply(n, n.in.Shutdown(l.now))
	n.up, n.next = false, time.Time{}
	l.check()
}

// handoff stops n for a restart (Instance.Handoff): its addresses stay bound on its host, with
// the window as their lifetime, as a Router with an AddressRetainer leaves them.
func (l *lan) handoff(n *simNode, bound time.Duration) *vrrp.Handoff {
	l.t.Helper()
	out := n.in.Handoff(l.now, bound)
	l.apply(n, out)
	n.up, n.next = false, time.Time{}
	if out.Handoff != nil {
		n.kept = out.Handoff.Deadline()
	}
	l.check()
	return out.Handoff
}

// resume starts n's successor as a fresh instance that resumes as MASTER (Instance.Resume); the
// addresses its predecessor left become permanent again (Router.ResumeAtStart).
func (l *lan) resume(n *simNode) {
	l.t.Helper()
	in, err := vrrp.New(n.cfg, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	n.in, n.up, n.kept = in, true, time.Time{}
	l.apply(n, n.in.Resume(l.now))
	l.check()
}

func (l *lan) setCut(n *simNode, cut bool) {
	l.t.Helper()
	n.cut = cut
	l.check()
}

func (l *lan) apply(n *simNode, out vrrp.Output) {
	for _, p := range out.Unbind {
		delete(n.bound, p)
	}
	for _, p := range out.Bind {
		n.bound[p] = true
	}
	for _, a := range out.Announce {
		n.announced[a] = append(n.announced[a], l.now)
	}
	if out.Transition != nil {
		n.log = append(n.log, *out.Transition)
	}
	n.next = out.Next
	if n.cut {
		return // lost on the wire
	}
	for _, d := range out.Send {
		for _, o := range l.nodes {
			if o == n || (!d.Dst.IsMulticast() && o.cfg.Primary != d.Dst) {
				continue
			}
			l.seq++
			l.inflight = append(l.inflight, frame{
				at: l.now.Add(l.latency), seq: l.seq, from: n, to: o,
				p: vrrp.Packet{Src: n.cfg.Primary, Dst: d.Dst, TTL: 255, Data: d.Data},
			})
		}
	}
}

// step runs the earliest event no later than until; it reports false if there is none.
func (l *lan) step(until time.Time) bool {
	l.t.Helper()
	var node, expire *simNode
	at := until.Add(1)
	for _, n := range l.nodes {
		if n.up && !n.next.IsZero() && n.next.Before(at) {
			node, expire, at = n, nil, n.next
		}
		if !n.up && !n.kept.IsZero() && n.kept.Before(at) {
			node, expire, at = nil, n, n.kept
		}
	}
	fi := -1
	for i, f := range l.inflight {
		if !f.at.After(at) && (fi < 0 || f.at.Before(l.inflight[fi].at) || (f.at.Equal(l.inflight[fi].at) && f.seq < l.inflight[fi].seq)) {
			fi, at = i, f.at
		}
	}
	if fi >= 0 {
		node, expire = nil, nil
	}
	if fi < 0 && node == nil && expire == nil {
		return false
	}
	if at.Before(l.now) {
		l.t.Fatalf("event at %v before now %v", at, l.now)
	}
	l.now = at
	l.check() // an overlap that lasted until now counts even if this event ends it
	if expire != nil {
		// The kernel removes the addresses a handoff left, their lifetime over.
		clear(expire.bound)
		expire.kept = time.Time{}
	} else if fi >= 0 {
		f := l.inflight[fi]
		l.inflight = slices.Delete(l.inflight, fi, fi+1)
		if f.to.up && !f.to.cut && !f.from.cut {
			l.apply(f.to, f.to.in.Receive(l.now, f.p))
		}
	} else {
		l.apply(node, node.in.Tick(l.now))
	}
	l.check()
	return true
}

// run advances virtual time by d, running every event on the way.
func (l *lan) run(d time.Duration) {
	l.t.Helper()
	until := l.now.Add(d)
	for l.step(until) {
	}
	l.now = until
	l.check()
}

// runUntil runs events until cond holds (checked after each event) or d has passed; it returns
// the time cond first held.
func (l *lan) runUntil(d time.Duration, cond func() bool) (time.Time, bool) {
	l.t.Helper()
	until := l.now.Add(d)
	for {
		if cond() {
			return l.now, true
		}
		if !l.step(until) {
			l.now = until
			return l.now, cond()
		}
	}
}

// check is the safety invariant.
func (l *lan) check() {
	l.t.Helper()
	holders := map[netip.Prefix][]string{}
	for _, n := range l.nodes {
		// A stopped router's host keeps what its router left bound (after a handoff).
		if n.cut {
			continue
		}
		for p := range n.bound {
			holders[p] = append(holders[p], n.name)
		}
	}
	for p := range l.overlap {
		if len(holders[p]) < 2 {
			delete(l.overlap, p)
		}
	}
	for p, hs := range holders {
		if len(hs) < 2 {
			continue
		}
		since, ok := l.overlap[p]
		if !ok {
			l.overlap[p] = l.now
			continue
		}
		if d := l.now.Sub(since); d > l.maxOverlap {
			l.t.Fatalf("at +%v: %s bound on %v for %v (limit %v)", l.now.Sub(t0), p, hs, d, l.maxOverlap)
		}
	}
}

// masters returns the routers in Master, connected ones only if connected is set.
func (l *lan) masters(connected bool) []*simNode {
	var ms []*simNode
	for _, n := range l.nodes {
		if n.up && (!connected || !n.cut) && n.in.State() == vrrp.Master {
			ms = append(ms, n)
		}
	}
	return ms
}

func (l *lan) onlyMaster(want *simNode) func() bool {
	return func() bool {
		ms := l.masters(true)
		return len(ms) == 1 && ms[0] == want
	}
}

// requireOnlyMaster checks want is the one connected master, holding every address, and the
// only connected router holding any.
func (l *lan) requireOnlyMaster(want *simNode) {
	l.t.Helper()
	ms := l.masters(true)
	if len(ms) != 1 || ms[0] != want {
		l.t.Fatalf("at +%v: connected masters %v, want only %s", l.now.Sub(t0), names(ms), want.name)
	}
	for _, n := range l.nodes {
		if !n.up || n.cut {
			continue
		}
		for _, p := range n.cfg.Addresses {
			if n.bound[p] != (n == want) {
				l.t.Fatalf("at +%v: %s has %s bound=%v", l.now.Sub(t0), n.name, p, n.bound[p])
			}
		}
	}
}

func names(ns []*simNode) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name+"("+n.in.State().String()+")")
	}
	return s
}

// transitionsSince counts n's transitions after at.
func transitionsSince(n *simNode, at time.Time) int {
	c := 0
	for _, tr := range n.log {
		if tr.At.After(at) {
			c++
		}
	}
	return c
}

func announcedSince(n *simNode, a netip.Addr, at time.Time) bool {
	for _, x := range n.announced[a] {
		if !x.Before(at) {
			return true
		}
	}
	return false
}

const simLatency = time.Millisecond

// RFC 5798 §6.4 election: three routers that start together elect exactly one master, the one
// with the highest priority, the greatest primary address on a tie (RFC 5798 §6.4.3), and it stays
// master, with nobody else moving, for 100 intervals.
func TestSimElection(t *testing.T) {
	tests := []struct {
		name    string
		prios   []uint8
		winner  int
		unicast bool
	}{
		{"distinct priorities", []uint8{100, 110, 90}, 1, false},
		{"tie broken by address", []uint8{100, 100, 90}, 1, false},
		{"three-way tie", []uint8{100, 100, 100}, 2, false},
		{"unicast", []uint8{120, 110, 90}, 0, true},
		{"unicast tie", []uint8{100, 100, 90}, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLAN(t, config4(), simLatency, tc.prios...)
			if tc.unicast {
				l.unicast()
			}
			l.start(l.nodes...)
			w := l.nodes[tc.winner]
			// Master_Down_Interval of the winner, plus one latency for a tie to resolve.
			skew := time.Duration(256-int(w.cfg.Priority)) * w.cfg.Interval / 256
			if _, ok := l.runUntil(3*w.cfg.Interval+skew+simLatency, l.onlyMaster(w)); !ok {
				t.Fatalf("no single master after Master_Down_Interval: %v", names(l.masters(true)))
			}
			l.run(simLatency) // let a tie-breaking advert land
			l.requireOnlyMaster(w)
			settled := l.now
			for range 100 {
				l.run(w.cfg.Interval)
				l.requireOnlyMaster(w)
			}
			for _, n := range l.nodes {
				if c := transitionsSince(n, settled); c != 0 {
					t.Errorf("%s changed state %d times while the master was stable: %v", n.name, c, n.log)
				}
			}
		})
	}
}

// RFC 5798 §6.4.2: when the master's link is cut (its adverts and everything sent to it are lost)
// the best backup takes over within its Master_Down_Interval, and among the connected routers there
// is exactly one master. When the cut heals, the lower-priority master steps down within one advert
// interval (plus the latency) and the higher one re-announces its addresses (RFC 9568 §6.4.3,
// docs/design.md §4.4), whatever the phase of the two masters' adverts.
func TestSimLinkCutAndHeal(t *testing.T) {
	for _, unicast := range []bool{false, true} {
		for phase := time.Duration(0); phase < 100*time.Millisecond; phase += 10 * time.Millisecond {
			t.Run(fmt.Sprintf("unicast=%v/heal+%v", unicast, phase), func(t *testing.T) {
				l := newLAN(t, config4(), simLatency, 110, 100, 90)
				if unicast {
					l.unicast()
				}
				a, b, c := l.nodes[0], l.nodes[1], l.nodes[2]
				l.start(l.nodes...)
				l.run(time.Second)
				l.requireOnlyMaster(a)

				l.run(37 * time.Millisecond) // somewhere between two adverts
				cut := l.now
				l.setCut(a, true)
				// Nothing from a arrives after the cut; b's timer runs from the last advert it got.
				mdiB := 3*b.cfg.Interval + time.Duration(256-int(b.cfg.Priority))*b.cfg.Interval/256
				at, ok := l.runUntil(mdiB, l.onlyMaster(b))
				if !ok {
					t.Fatalf("no takeover by %s within Master_Down_Interval %v: %v", b.name, mdiB, names(l.masters(true)))
				}
				if at.Sub(cut) < 2*b.cfg.Interval {
					t.Errorf("takeover %v after the cut: faster than the timer allows", at.Sub(cut))
				}
				if !announcedSince(b, vip.Addr(), cut) {
					t.Errorf("%s took over without announcing", b.name)
				}
				l.run(time.Second)
				l.requireOnlyMaster(b)
				if a.in.State() != vrrp.Master || c.in.State() != vrrp.Backup {
					t.Fatalf("cut master %s, other backup %s", a.in.State(), c.in.State())
				}

				l.run(phase)
				heal := l.now
				heardBefore := a.in.Status().Stats.AdvertsReceived
				l.setCut(a, false)
				if _, ok := l.runUntil(a.cfg.Interval+simLatency, l.onlyMaster(a)); !ok {
					t.Fatalf("two masters %v more than one interval after the heal", names(l.masters(true)))
				}
				l.run(10 * time.Millisecond)
				l.requireOnlyMaster(a)
				if got := b.log[len(b.log)-1]; got.To != vrrp.Backup || got.Reason != vrrp.ReasonHigherPriority {
					t.Errorf("%s last transition %+v, want to Backup because of a higher priority", b.name, got)
				}
				l.run(2 * time.Second)
				l.requireOnlyMaster(a)
				if announcedSince(a, vip.Addr(), heal) {
					return
				}
				t.Fatalf("%s did not re-announce %s after the split brain healed (heard %d adverts since)",
					a.name, vip.Addr(), a.in.Status().Stats.AdvertsReceived-heardBefore)
			})
		}
	}
}

// RFC 5798 §6.4.3 Shutdown / §6.4.2 priority 0: a master that stops gracefully sends priority 0;
// the best backup takes over Skew_Time later (the lower backup's longer skew loses), or at once
// when it knows every member and is certainly the best (docs/design.md §4.2, fast handover).
func TestSimGracefulShutdown(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprintf("fast=%v", fast), func(t *testing.T) {
			l := newLAN(t, config4(), simLatency, 110, 100, 90)
			if fast {
				l.membersKnown()
			}
			a, b, c := l.nodes[0], l.nodes[1], l.nodes[2]
			l.start(l.nodes...)
			l.run(time.Second)
			l.requireOnlyMaster(a)

			l.run(42 * time.Millisecond)
			stop := l.now
			l.shutdown(a)
			if len(a.bound) != 0 {
				t.Fatalf("shut-down master still holds %v", a.bound)
			}
			want := stop.Add(simLatency) // the priority-0 advert lands
			if !fast {
				want = want.Add(skew100) // Skew_Time of priority 100 at 100 ms
			}
			at, ok := l.runUntil(time.Second, l.onlyMaster(b))
			if !ok {
				t.Fatalf("no takeover after shutdown: %v", names(l.masters(true)))
			}
			if !at.Equal(want) {
				t.Errorf("takeover %v after shutdown, want %v", at.Sub(stop), want.Sub(stop))
			}
			l.run(2 * time.Second)
			l.requireOnlyMaster(b)
			if c.in.State() != vrrp.Backup || transitionsSince(c, stop) != 0 {
				t.Errorf("%s moved: %v", c.name, c.log)
			}
		})
	}
}

// RFC 5798 §6.4.2: with Preempt_Mode false a recovered higher-priority router stays Backup under a
// lower-priority master; with it true it takes over at the first advert (docs/design.md §4.3).
func TestSimPreemptOnRecovery(t *testing.T) {
	for _, preempt := range []bool{false, true} {
		t.Run(fmt.Sprintf("preempt=%v", preempt), func(t *testing.T) {
			l := newLAN(t, with(config4(), func(c *vrrp.Config) { c.Preempt = preempt }), simLatency, 110, 100)
			a, b := l.nodes[0], l.nodes[1]
			l.start(a, b)
			l.run(time.Second)
			l.requireOnlyMaster(a)

			l.shutdown(a)
			l.run(time.Second)
			l.requireOnlyMaster(b)

			back := l.now
			l.start(a)
			if !preempt {
				for range 100 {
					l.run(a.cfg.Interval)
					l.requireOnlyMaster(b)
				}
				if a.in.State() != vrrp.Backup {
					t.Errorf("recovered router %s", a.in.State())
				}
				return
			}
			at, ok := l.runUntil(time.Second, l.onlyMaster(a))
			if !ok {
				t.Fatalf("recovered higher-priority router did not preempt: %v", names(l.masters(true)))
			}
			if d := at.Sub(back); d > b.cfg.Interval+2*simLatency {
				t.Errorf("preempted %v after recovery, want within one interval", d)
			}
			l.run(time.Second)
			l.requireOnlyMaster(a)
		})
	}
}

// RFC 5798 §6.1 at the smallest interval, 10 ms: Skew_Time is tens of microseconds
// (2 * 10 ms / 256 = 78.125 µs at priority 254), never truncated to zero, so the election and the
// failover still order routers by priority and happen at the exact times.
func TestSimTenMillisecondInterval(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Interval = 10 * time.Millisecond })
	const lat = 10 * time.Microsecond
	l := newLAN(t, cfg, lat, 254, 253, 252)
	a, b, c := l.nodes[0], l.nodes[1], l.nodes[2]
	l.start(l.nodes...)
	// 3 * 10 ms + 2 * 10 ms / 256 = 30.078125 ms.
	at, ok := l.runUntil(time.Second, func() bool { return len(l.masters(true)) > 0 })
	if !ok || !at.Equal(t0.Add(30078125*time.Nanosecond)) || a.in.State() != vrrp.Master {
		t.Fatalf("first master at +%v: %v; want r0 at +30.078125ms", at.Sub(t0), names(l.masters(true)))
	}
	l.run(100 * time.Millisecond)
	l.requireOnlyMaster(a)

	l.run(3 * time.Millisecond)
	l.setCut(a, true)
	// b's Master_Down_Interval: 3 * 10 ms + 3 * 10 ms / 256 = 30.1171875 ms, from the last advert
	// it got: a sent at +100.078125 ms + k*10 ms, heard lat later.
	last := t0.Add(30078125*time.Nanosecond + 10*10*time.Millisecond + lat)
	at, ok = l.runUntil(time.Second, l.onlyMaster(b))
	if want := last.Add(30117187 * time.Nanosecond); !ok || !at.Equal(want) {
		t.Fatalf("b took over at +%v, want +%v", at.Sub(t0), want.Sub(t0))
	}
	l.run(100 * time.Millisecond)
	l.requireOnlyMaster(b)
	if c.in.State() != vrrp.Backup {
		t.Errorf("c %s", c.in.State())
	}
}
