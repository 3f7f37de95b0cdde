package vrrp_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// checkHandoff compares out.Handoff with want (nil: nothing handed over).
func checkHandoff(t *testing.T, want *vrrp.Handoff, out vrrp.Output) {
	t.Helper()
	if diff := cmp.Diff(want, out.Handoff, cmpOpts...); diff != "" {
		t.Errorf("handoff (-want +got):\n%s", diff)
	}
}

// docs/design.md §4.9.1: a VRRPv3 MASTER stopping for a restart sends an advert (three copies) at its priority
// with the interval stretched to a quarter of the bound (RFC 5798 §6.4.2: the backups adopt it),
// keeps its addresses, announces nothing, goes to Initialize (Handoff) and says what it kept and
// for how long; after that it does nothing.
func TestHandoffMasterV3(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       vrrp.Config
		dst, peer netip.Addr
	}{
		{"IPv4", config4(), packet.MulticastIPv4, higher},
		{"IPv6", config6(), packet.MulticastIPv6, peer6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			in, tm := startMaster(t, cfg)
			now := tm.Add(30 * time.Millisecond)
			out := in.Handoff(now, 8*time.Second)
			stretched := advertOf(cfg, tc.dst, 100)
			stretched.Interval = 2 * time.Second
			checkOut(t, cfg, summary{Sent: []sent{stretched, stretched, stretched}, Transition: "Master->Initialize Handoff"}, out)
			checkHandoff(t, &vrrp.Handoff{
				Interface: "eth0", VRID: 51, IPv6: tc.cfg.Primary.Is6(), Addresses: cfg.Addresses,
				At: now, Window: 8 * time.Second,
			}, out)
			if d := out.Handoff.Deadline(); !d.Equal(now.Add(8 * time.Second)) {
				t.Errorf("deadline %v", d)
			}
			checkState(t, in, vrrp.Initialize)
			if st := in.Status(); st.Reason != vrrp.ReasonHandoff || !st.Since.Equal(now) {
				t.Errorf("status reason %q since %v", st.Reason, st.Since)
			}
			// The pending second announcement burst and the Adver_Timer are gone.
			checkOut(t, cfg, summary{}, in.Tick(now.Add(time.Hour)))
			checkOut(t, cfg, summary{}, in.Receive(now.Add(time.Second), advert(t, cfg, tc.peer, 50)))
		})
	}
}

// docs/design.md §4.9.1: the stretched interval is bound/4 in whole centiseconds (the VRRPv3
// field's unit, RFC 5798 §5.2.7), at most 4095 cs and at least the instance's own interval; the
// window is four such intervals, an upper bound of every backup's 3 x interval + Skew_Time.
func TestHandoffStretchedInterval(t *testing.T) {
	for _, tc := range []struct {
		interval, bound, want, window time.Duration
	}{
		{100 * time.Millisecond, 8 * time.Second, 2 * time.Second, 8 * time.Second},
		{10 * time.Millisecond, 8 * time.Second, 2 * time.Second, 8 * time.Second},
		{100 * time.Millisecond, time.Second, 250 * time.Millisecond, time.Second},
		// Not a whole number of centiseconds: rounded down, so the backups wait less than bound.
		{100 * time.Millisecond, 8079 * time.Millisecond, 2010 * time.Millisecond, 8040 * time.Millisecond},
		{10 * time.Millisecond, 50 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond},
		// The field's 12 bits: 40.95 s at most.
		{100 * time.Millisecond, 4 * vrrp.MaxIntervalV3, vrrp.MaxIntervalV3, 4 * vrrp.MaxIntervalV3},
		{100 * time.Millisecond, 163840 * time.Millisecond, vrrp.MaxIntervalV3, 163800 * time.Millisecond},
		{time.Second, 10 * time.Minute, vrrp.MaxIntervalV3, 163800 * time.Millisecond},
		// Never shorter than its own interval: the window grows instead.
		{time.Second, 2 * time.Second, time.Second, 4 * time.Second},
		{40 * time.Second, 8 * time.Second, 40 * time.Second, 160 * time.Second},
	} {
		t.Run(fmt.Sprintf("%v/%v", tc.interval, tc.bound), func(t *testing.T) {
			cfg := with(config4(), func(c *vrrp.Config) { c.Interval = tc.interval })
			in, tm := startMaster(t, cfg)
			out := in.Handoff(tm, tc.bound)
			if len(out.Send) != 3 {
				t.Fatalf("%d adverts sent, want 3 copies", len(out.Send))
			}
			for _, d := range out.Send[1:] {
				if !bytes.Equal(d.Data, out.Send[0].Data) || d.Dst != out.Send[0].Dst {
					t.Fatalf("copies differ: %x to %s, %x to %s", d.Data, d.Dst, out.Send[0].Data, out.Send[0].Dst)
				}
			}
			a, err := packet.Parse(out.Send[0].Data, cfg.Primary, out.Send[0].Dst)
			if err != nil {
				t.Fatal(err)
			}
			if a.Interval != tc.want || a.Priority != 100 {
				t.Errorf("advert interval %v priority %d, want %v 100", a.Interval, a.Priority, tc.want)
			}
			if out.Handoff == nil || out.Handoff.Window != tc.window {
				t.Fatalf("handoff %+v, want window %v", out.Handoff, tc.window)
			}
			// The window bounds the Master_Down_Interval of a backup at the lowest priority that
			// adopts the interval, and that of the highest is at least 3/4 of it.
			lowest := 3*a.Interval + 255*a.Interval/256
			if lowest >= tc.window || 3*a.Interval < 3*tc.window/4 {
				t.Errorf("window %v does not bound a backup's Master_Down_Interval %v..%v", tc.window, 3*a.Interval, lowest)
			}
		})
	}
}

// docs/design.md §4.9.1: a VRRPv2 MASTER cannot stretch its interval (RFC 3768 §7.1: a backup
// drops an advert whose interval differs), so it sends nothing; its window is the backups' own
// Master_Down_Interval at most: 3 x interval + Skew_Time of priority 1 (255/256 s), rounded up.
func TestHandoffMasterV2(t *testing.T) {
	cfg := config2()
	in, tm := startMaster(t, cfg)
	out := in.Handoff(tm.Add(300*time.Millisecond), 8*time.Second)
	checkOut(t, cfg, summary{Transition: "Master->Initialize Handoff"}, out)
	checkHandoff(t, &vrrp.Handoff{
		Interface: "eth0", VRID: 51, Addresses: []netip.Prefix{vip},
		At: tm.Add(300 * time.Millisecond), Window: 4 * time.Second,
	}, out)

	cfg = with(config2(), func(c *vrrp.Config) { c.Interval = 3 * time.Second })
	in, tm = startMaster(t, cfg)
	if out := in.Handoff(tm, 8*time.Second); out.Handoff == nil || out.Handoff.Window != 10*time.Second {
		t.Errorf("handoff at 3 s adverts %+v, want window 10s", out.Handoff)
	}
}

// docs/design.md §4.9.1: only a MASTER has something to hand over; any other instance stops as
// at Shutdown (RFC 5798 §6.4.2, §6.4.4: nothing sent). A bound of zero is a plain Shutdown: the
// MASTER hands over to the backups (priority 0, addresses removed).
func TestHandoffNotMaster(t *testing.T) {
	cfg := config4()
	in := startBackup(t, cfg)
	out := in.Handoff(t0.Add(time.Millisecond), 8*time.Second)
	checkOut(t, cfg, summary{Transition: "Backup->Initialize Shutdown"}, out)
	checkHandoff(t, nil, out)

	in = mustNew(t, cfg)
	in.SetHealth(t0, failing)
	in.Start(t0)
	checkState(t, in, vrrp.Fault)
	out = in.Handoff(t0.Add(time.Millisecond), 8*time.Second)
	checkOut(t, cfg, summary{Transition: "Fault->Initialize Shutdown"}, out)
	checkHandoff(t, nil, out)

	in = mustNew(t, cfg)
	out = in.Handoff(t0, 8*time.Second)
	checkOut(t, cfg, summary{}, out)
	checkHandoff(t, nil, out)

	in, tm := startMaster(t, cfg)
	out = in.Handoff(tm, 0)
	zero := advertOf(cfg, packet.MulticastIPv4, 0)
	checkOut(t, cfg, summary{Sent: []sent{zero, zero, zero}, Unbind: []netip.Prefix{vip}, Transition: "Master->Initialize Shutdown"}, out)
	checkHandoff(t, nil, out)
}

// docs/design.md §4.9.1: a resumed instance starts as MASTER (Resumed): it binds its addresses
// (still bound from its predecessor), advertises at once at its own interval and then every
// interval, and never announces them, neither at once nor in the second burst (docs/design.md
// §5.2) that a takeover schedules.
func TestResume(t *testing.T) {
	cfg := config4() // AnnounceRepeat 250 ms
	in := mustNew(t, cfg)
	out := in.Resume(t0)
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
		Bind:       []netip.Prefix{vip},
		Transition: "Initialize->Master Resumed",
		Next:       t0.Add(100 * time.Millisecond),
	}, out)
	if st := in.Status(); st.Master != me || st.MasterPriority != 100 || st.Reason != vrrp.ReasonResumed {
		t.Errorf("status master %s/%d reason %q", st.Master, st.MasterPriority, st.Reason)
	}
	for i := 1; i <= 30; i++ {
		now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		checkOut(t, cfg, summary{
			Sent: []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
			Next: now.Add(100 * time.Millisecond),
		}, in.Tick(now))
	}
	// A MASTER like any other: a better master makes it step down.
	now := t0.Add(3050 * time.Millisecond)
	out = in.Receive(now, advert(t, cfg, higher, 200))
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 200)},
		Unbind:     []netip.Prefix{vip},
		Transition: "Master->Backup HigherPriorityMaster",
		Next:       now.Add(mdi100),
	}, out)
}

// A resumed MASTER answers a lower-priority master as any MASTER does (RFC 9568 §6.4.3:
// advertise and announce again), and the address owner resumes like anyone else.
func TestResumeThenOtherMasterAndOwner(t *testing.T) {
	cfg := config4()
	in := mustNew(t, cfg)
	in.Resume(t0)
	now := t0.Add(10 * time.Millisecond)
	checkOut(t, cfg, summary{
		Sent:     []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
		Announce: []netip.Addr{vip.Addr()},
		Next:     now.Add(100 * time.Millisecond),
	}, in.Receive(now, advert(t, cfg, lower, 50)))

	owner := with(cfg, func(c *vrrp.Config) { c.Priority = vrrp.OwnerPriority })
	in = mustNew(t, owner)
	checkOut(t, owner, summary{
		Sent:       []sent{advertOf(owner, packet.MulticastIPv4, 255)},
		Bind:       []netip.Prefix{vip},
		Transition: "Initialize->Master Resumed",
		Next:       t0.Add(100 * time.Millisecond),
	}, in.Resume(t0))
}

// An instance that cannot serve (a probe or the link says Fault) resumes into Fault: it holds
// its predecessor's addresses and the backups follow it, so it resigns as a MASTER entering
// Fault does (priority 0, RFC 5798 §6.4.3; addresses removed). Resume on a started instance does
// nothing.
func TestResumeFaulted(t *testing.T) {
	cfg := config4()
	in := mustNew(t, cfg)
	in.SetHealth(t0, vrrp.Health{Fault: true, Reason: vrrp.ReasonProbePending})
	zero := advertOf(cfg, packet.MulticastIPv4, 0)
	checkOut(t, cfg, summary{
		Sent: []sent{zero, zero, zero}, Unbind: []netip.Prefix{vip},
		Transition: "Initialize->Fault ProbePending",
	}, in.Resume(t0))
	checkOut(t, cfg, summary{}, in.Tick(t0.Add(time.Hour)))

	in = mustNew(t, cfg)
	in.SetLinkUp(t0, false)
	checkOut(t, cfg, summary{
		Sent: []sent{zero, zero, zero}, Unbind: []netip.Prefix{vip},
		Transition: "Initialize->Fault InterfaceDown",
	}, in.Resume(t0))
	// When the link is back it starts again as Backup.
	checkOut(t, cfg, summary{Transition: "Fault->Backup InterfaceUp", Next: t0.Add(time.Second + mdi100)},
		in.SetLinkUp(t0.Add(time.Second), true))

	in = startBackup(t, cfg)
	checkOut(t, cfg, summary{Next: t0.Add(mdi100)}, in.Resume(t0.Add(time.Millisecond)))
	checkState(t, in, vrrp.Backup)
}

// RFC 5798 §6.4.2 across a handoff, one instance at a time: a backup adopts the stretched
// interval (its Master_Down_Timer runs 3 x 2 s + Skew_Time) and adopts the resumed MASTER's own
// interval back from its first advert.
func TestHandoffBackupTimers(t *testing.T) {
	cfg := config4()
	master, tm := startMaster(t, with(cfg, func(c *vrrp.Config) { c.Primary, c.Priority = higher, 110 }))
	mcfg := master.Config()
	backup := mustNew(t, cfg)
	backup.Start(tm)
	deliver := func(now time.Time, out vrrp.Output) vrrp.Output {
		t.Helper()
		if len(out.Send) == 0 {
			t.Fatal("no advert")
		}
		var got vrrp.Output
		for _, d := range out.Send {
			got = backup.Receive(now, vrrp.Packet{Src: higher, Dst: d.Dst, TTL: 255, Data: d.Data})
		}
		return got
	}
	now := tm.Add(100 * time.Millisecond)
	deliver(now, master.Tick(now))
	now = tm.Add(150 * time.Millisecond)
	out := deliver(now, master.Handoff(now, 8*time.Second))
	// 3 * 2 s + 156 * 2 s / 256.
	if want := now.Add(6*time.Second + 156*2*time.Second/256); !out.Next.Equal(want) {
		t.Fatalf("backup's Master_Down_Timer at +%v, want +%v", out.Next.Sub(now), want.Sub(now))
	}
	now = now.Add(time.Second)
	next := mustNew(t, mcfg)
	out = deliver(now, next.Resume(now))
	if want := now.Add(mdi100); !out.Next.Equal(want) {
		t.Fatalf("backup's Master_Down_Timer at +%v after the resumed advert, want +%v", out.Next.Sub(now), mdi100)
	}
	checkState(t, backup, vrrp.Backup)
}

// handoffBound is the agent's default --handoff-timeout (docs/design.md §4.9.1).
const handoffBound = 8 * time.Second

// docs/design.md §4.9.1 on a simulated LAN: a VRRPv3 MASTER hands off and its successor resumes
// 1 s later, well inside the 8 s bound. The backup, which adopted the stretched interval (RFC
// 5798 §6.4.2), never leaves Backup; the successor is MASTER at once, holding the addresses,
// and announces nothing; the backup adopts the successor's own interval back from its first
// advert, so a later failure is detected as fast as before.
func TestSimHandoffResumed(t *testing.T) {
	for _, iv := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
		t.Run(iv.String(), func(t *testing.T) {
			lat := simLatency
			if iv < 100*time.Millisecond {
				lat = 10 * time.Microsecond
			}
			l := newLAN(t, with(config4(), func(c *vrrp.Config) { c.Interval = iv }), lat, 110, 100)
			a, b := l.nodes[0], l.nodes[1]
			l.start(a, b)
			l.run(time.Second)
			l.requireOnlyMaster(a)
			l.run(iv * 37 / 100) // somewhere between two adverts

			stop := l.now
			h := l.handoff(a, handoffBound)
			if h == nil || h.Window != handoffBound || !a.bound[vip] {
				t.Fatalf("handoff %+v, bound %v", h, a.bound)
			}
			l.run(time.Second)
			if b.in.State() != vrrp.Backup {
				t.Fatalf("backup %s during the handoff", b.in.State())
			}

			back := l.now
			l.resume(a)
			l.requireOnlyMaster(a)
			// Past the second announcement burst a takeover would send, and past the handoff's
			// deadline: the successor made the addresses permanent again.
			l.run(2 * handoffBound)
			l.requireOnlyMaster(a)
			if n := transitionsSince(b, stop); n != 0 {
				t.Errorf("backup moved during the handoff: %v", b.log[len(b.log)-n:])
			}
			if announcedSince(a, vip.Addr(), back) {
				t.Errorf("the successor announced %s: %v", vip.Addr(), a.announced[vip.Addr()])
			}
			if got := a.log[len(a.log)-1]; got.From != vrrp.Initialize || got.To != vrrp.Master || got.Reason != vrrp.ReasonResumed {
				t.Errorf("successor's transition %+v, want Initialize->Master Resumed", got)
			}

			// The backup follows the successor's interval again: cut off, it is replaced within
			// the backup's Master_Down_Interval at that interval, not at the stretched one.
			cut := l.now
			l.setCut(a, true)
			mdi := 3*iv + time.Duration(256-int(b.cfg.Priority))*iv/256
			at, ok := l.runUntil(mdi+iv, l.onlyMaster(b))
			if !ok {
				t.Fatalf("no takeover within %v of the cut: the backup kept a longer interval", mdi+iv)
			}
			if at.Sub(cut) < mdi-iv {
				t.Errorf("takeover %v after the cut, faster than the timer allows", at.Sub(cut))
			}
		})
	}
}

// docs/design.md §4.9.1: a VRRPv3 MASTER hands off and no successor comes. The backup takes over
// between 3/4 of the bound and the bound (3 x bound/4 + its Skew_Time), and announces; the
// addresses left on the departed host expire at the window's end, so they are on two hosts at
// most a quarter of the bound.
func TestSimHandoffNoSuccessor(t *testing.T) {
	for _, iv := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
		t.Run(iv.String(), func(t *testing.T) {
			l := newLAN(t, with(config4(), func(c *vrrp.Config) { c.Interval = iv }), simLatency, 110, 100)
			l.maxOverlap = handoffBound/4 + simLatency
			a, b := l.nodes[0], l.nodes[1]
			l.start(a, b)
			l.run(time.Second)
			l.requireOnlyMaster(a)
			l.run(iv * 37 / 100)

			stop := l.now
			h := l.handoff(a, handoffBound)
			at, ok := l.runUntil(2*handoffBound, l.onlyMaster(b))
			if !ok {
				t.Fatal("no takeover after a handoff without successor")
			}
			// The stretched advert lands one latency later; 3 x 2 s + 156 x 2 s / 256.
			if want := stop.Add(simLatency + 6*time.Second + 156*2*time.Second/256); !at.Equal(want) {
				t.Errorf("takeover at +%v, want +%v", at.Sub(stop), want.Sub(stop))
			}
			if d := at.Sub(stop); d < 3*handoffBound/4 || d > handoffBound {
				t.Errorf("takeover %v after the handoff, want within [%v, %v]", d, 3*handoffBound/4, handoffBound)
			}
			if !announcedSince(b, vip.Addr(), stop) {
				t.Error("the backup took over without announcing")
			}
			if !a.bound[vip] {
				t.Fatal("the departed host lost the address before the window's end")
			}
			l.run(h.Deadline().Sub(l.now))
			if len(a.bound) != 0 {
				t.Errorf("the departed host still holds %v after the window", a.bound)
			}
			l.run(time.Second)
			l.requireOnlyMaster(b)
		})
	}
}

// docs/design.md §4.9.1 for VRRPv2 (1 s adverts): the MASTER goes silent, since its interval
// cannot be stretched (RFC 3768 §7.1). Without a successor the backup takes over after its own
// Master_Down_Interval from the last advert (RFC 3768 §6.4.2); a successor that resumes within
// 2 s, even with the handoff just before an advert was due, keeps the backup in Backup.
func TestSimHandoffV2(t *testing.T) {
	for _, successor := range []bool{false, true} {
		t.Run(fmt.Sprintf("successor=%v", successor), func(t *testing.T) {
			l := newLAN(t, config2(), simLatency, 110, 100)
			// Without successor the address outlives the takeover by the interval the last
			// advert was old at most, and the priority-1 Skew_Time rounded up.
			l.maxOverlap = 2 * time.Second
			a, b := l.nodes[0], l.nodes[1]
			l.start(a, b)
			l.run(5 * time.Second)
			l.requireOnlyMaster(a)
			// Just before a's next advert: the last one is almost an interval old.
			l.run(a.next.Sub(l.now) - 10*time.Millisecond)
			lastHeard := a.next.Add(-time.Second + simLatency)

			stop := l.now
			h := l.handoff(a, handoffBound)
			if h == nil || h.Window != 4*time.Second {
				t.Fatalf("handoff %+v, want window 4s", h)
			}
			if !successor {
				at, ok := l.runUntil(2*handoffBound, l.onlyMaster(b))
				// RFC 3768 §6.1: 3 s + (256 - 100) / 256 s.
				if want := lastHeard.Add(3*time.Second + 156*time.Second/256); !ok || !at.Equal(want) {
					t.Fatalf("takeover at +%v (%v), want +%v", at.Sub(stop), ok, want.Sub(stop))
				}
				if !at.Before(h.Deadline()) {
					t.Errorf("takeover at +%v, after the window %v", at.Sub(stop), h.Window)
				}
				l.run(h.Deadline().Sub(l.now))
				l.requireOnlyMaster(b)
				return
			}
			l.run(2 * time.Second)
			back := l.now
			l.resume(a)
			l.run(2 * handoffBound)
			l.requireOnlyMaster(a)
			if n := transitionsSince(b, stop); n != 0 {
				t.Errorf("backup moved during the handoff: %v", b.log[len(b.log)-n:])
			}
			if announcedSince(a, vip.Addr(), back) {
				t.Error("the successor announced")
			}
		})
	}
}

// docs/design.md §4.9.1 when the stretched advert (all its copies) is lost: the backup takes over after its
// usual Master_Down_Interval and announces, while the departed host still holds the address (a
// duplicate until the successor comes or the window ends). The successor resumes into a split
// brain and heals it as any MASTER does (RFC 9568 §6.4.3, docs/design.md §4.4): the backup
// steps down, and the successor, hearing its last advert, announces, so neighbours that learnt
// the backup's MAC come back.
func TestSimHandoffAdvertLost(t *testing.T) {
	l := newLAN(t, config4(), simLatency, 110, 100)
	l.maxOverlap = time.Second + config4().Interval // the duplicate this test is about
	a, b := l.nodes[0], l.nodes[1]
	l.start(a, b)
	l.run(time.Second)
	l.requireOnlyMaster(a)

	stop := l.now
	l.setCut(a, true)
	l.handoff(a, handoffBound)
	l.setCut(a, false)
	if _, ok := l.runUntil(time.Second, l.onlyMaster(b)); !ok {
		t.Fatal("the backup did not take over without the stretched advert")
	}
	if !announcedSince(b, vip.Addr(), stop) {
		t.Fatal("the backup took over without announcing")
	}
	l.run(stop.Add(time.Second).Sub(l.now))
	back := l.now
	l.resume(a)
	if _, ok := l.runUntil(a.cfg.Interval+2*simLatency, l.onlyMaster(a)); !ok {
		t.Fatalf("masters %v after the resume", names(l.masters(true)))
	}
	l.run(time.Second)
	l.requireOnlyMaster(a)
	if !announcedSince(a, vip.Addr(), back) {
		t.Error("the successor did not announce after the backup had taken over")
	}
}
