package vrrp_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// ann is one announcement an instance asked for: when, and how many messages per address.
type ann struct {
	At    time.Duration // since the reference time of the test
	Count int
}

// announcements follows in's own schedule from next (its last Output.Next) until until,
// ticking at every time it asks for, and returns the announcements of vip it made, relative to
// ref, and the Next after the last tick.
func announcements(t *testing.T, in *vrrp.Instance, next, until, ref time.Time) ([]ann, time.Time) {
	t.Helper()
	var got []ann
	for !next.IsZero() && !next.After(until) {
		now := next
		out := in.Tick(now)
		if len(out.Announce) > 0 {
			if len(out.Announce) != 1 || out.Announce[0] != vip.Addr() {
				t.Fatalf("at +%v announced %v, want %v", now.Sub(ref), out.Announce, vip.Addr())
			}
			got = append(got, ann{now.Sub(ref), out.AnnounceCount})
		}
		if !out.Next.After(now) {
			t.Fatalf("at +%v Next %v: not after now", now.Sub(ref), out.Next.Sub(ref))
		}
		next = out.Next
	}
	return got, next
}

// takeOver starts cfg's router at t0 and ticks it to its takeover; it returns the instance, the
// takeover's output and time.
func takeOver(t *testing.T, cfg vrrp.Config) (*vrrp.Instance, vrrp.Output, time.Time) {
	t.Helper()
	in := mustNew(t, cfg)
	out := in.Start(t0)
	tm := out.Next
	out = in.Tick(tm)
	checkState(t, in, vrrp.Master)
	return in, out, tm
}

func wantAnnounce(t *testing.T, what string, out vrrp.Output, count int) {
	t.Helper()
	if len(out.Announce) == 0 || out.AnnounceCount != count {
		t.Errorf("%s: announced %v with %d messages per address, want %d", what, out.Announce, out.AnnounceCount, count)
	}
}

// docs/design.md §5.2: every announcement says how many messages per address the host sends:
// Config.AnnounceCount (default 2) for the takeover's burst and the second one, the
// answer to another master and a removed address put back.
func TestAnnounceCount(t *testing.T) {
	for _, tc := range []struct{ count, want int }{{0, vrrp.DefaultAnnounceCount}, {1, 1}, {5, 5}} {
		t.Run(fmt.Sprint(tc.count), func(t *testing.T) {
			cfg := with(config4(), func(c *vrrp.Config) { c.AnnounceCount = tc.count })
			in, out, tm := takeOver(t, cfg)
			wantAnnounce(t, "takeover", out, tc.want)
			got, _ := announcements(t, in, out.Next, tm.Add(time.Second), tm)
			if diff := cmp.Diff([]ann{{250 * time.Millisecond, tc.want}}, got); diff != "" {
				t.Errorf("announcements after the takeover (-want +got):\n%s", diff)
			}
			now := tm.Add(1010 * time.Millisecond)
			wantAnnounce(t, "address put back", in.AddressRemoved(now, vip), tc.want)
			wantAnnounce(t, "answer to a lower master", in.Receive(now, advert(t, cfg, lower, 50)), tc.want)
		})
	}
}

// docs/design.md §5.2: with NoAnnounceRepeat (spec.announcements.repeatDelay 0s) a takeover
// sends its one burst and nothing after it.
func TestNoSecondBurst(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.NoAnnounceRepeat = true })
	in, out, tm := takeOver(t, cfg)
	wantAnnounce(t, "takeover", out, vrrp.DefaultAnnounceCount)
	if got, _ := announcements(t, in, out.Next, tm.Add(time.Minute), tm); len(got) > 0 {
		t.Errorf("announcements after the takeover with no second burst: %v", got)
	}
}

// keepalived's garp_master_refresh and garp_master_refresh_repeat (docs/design.md §5.2): a
// MASTER announces its addresses again every AnnounceRefresh, AnnounceRefreshCount messages per
// address (default 1), from its takeover for as long as it stays MASTER, beside the takeover's
// two bursts. Stepping down or entering Fault stops the refresh; the next takeover starts it
// again, one interval after that takeover.
func TestAnnounceRefresh(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.AnnounceRefresh = time.Second }) // AnnounceRepeat 250 ms
	in, out, tm := takeOver(t, cfg)
	got, _ := announcements(t, in, out.Next, tm.Add(3500*time.Millisecond), tm)
	want := []ann{{250 * time.Millisecond, 2}, {time.Second, 1}, {2 * time.Second, 1}, {3 * time.Second, 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}

	// A better master: Backup, and while its adverts come, the refresh due at +4 s does not.
	now := tm.Add(3500 * time.Millisecond)
	out = in.Receive(now, advert(t, cfg, higher, 200))
	checkState(t, in, vrrp.Backup)
	if want := now.Add(mdi100); !out.Next.Equal(want) {
		t.Errorf("Backup's Next +%v, want its Master_Down_Timer at +%v", out.Next.Sub(tm), want.Sub(tm))
	}
	now = tm.Add(3800 * time.Millisecond)
	in.Receive(now, advert(t, cfg, higher, 200))
	if out := in.Tick(tm.Add(4 * time.Second)); len(out.Announce) > 0 {
		t.Errorf("a Backup refreshed: %v", out.Announce)
	}
	// The master goes silent: the takeover announces, and the refresh follows one interval
	// after it, not in the old phase.
	tm2 := now.Add(mdi100)
	out = in.Tick(tm2)
	checkState(t, in, vrrp.Master)
	wantAnnounce(t, "second takeover", out, 2)
	got, _ = announcements(t, in, out.Next, tm2.Add(2500*time.Millisecond), tm2)
	want = []ann{{250 * time.Millisecond, 2}, {time.Second, 1}, {2 * time.Second, 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("announcements after the second takeover (-want +got):\n%s", diff)
	}

	// Fault stops it too, and so does a shutdown.
	for _, stop := range []struct {
		name string
		f    func(*vrrp.Instance, time.Time) vrrp.Output
	}{
		{"fault", func(in *vrrp.Instance, now time.Time) vrrp.Output { return in.SetHealth(now, failing) }},
		{"link down", func(in *vrrp.Instance, now time.Time) vrrp.Output { return in.SetLinkUp(now, false) }},
		{"shutdown", func(in *vrrp.Instance, now time.Time) vrrp.Output { return in.Shutdown(now) }},
	} {
		in, out, tm := takeOver(t, cfg)
		announcements(t, in, out.Next, tm.Add(1500*time.Millisecond), tm)
		out = stop.f(in, tm.Add(1500*time.Millisecond))
		if !out.Next.IsZero() {
			t.Errorf("%s: Next +%v, want none", stop.name, out.Next.Sub(tm))
		}
		if out := in.Tick(tm.Add(2 * time.Second)); len(out.Announce) > 0 {
			t.Errorf("%s: refreshed after it: %v", stop.name, out.Announce)
		}
	}

	// The count.
	cfg.AnnounceRefreshCount = 3
	in, out, tm = takeOver(t, cfg)
	got, _ = announcements(t, in, out.Next, tm.Add(2*time.Second), tm)
	want = []ann{{250 * time.Millisecond, 2}, {time.Second, 3}, {2 * time.Second, 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("announcements with refreshCount 3 (-want +got):\n%s", diff)
	}
}

// A refresh due at the same moment as the second burst is one announcement, with the larger
// of the two counts.
func TestAnnounceRefreshWithSecondBurst(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) {
		c.AnnounceRepeat, c.AnnounceRefresh, c.AnnounceCount, c.AnnounceRefreshCount = time.Second, time.Second, 2, 4
	})
	in, out, tm := takeOver(t, cfg)
	got, _ := announcements(t, in, out.Next, tm.Add(2*time.Second), tm)
	want := []ann{{time.Second, 4}, {2 * time.Second, 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}
}

// docs/design.md §4.9.1 and §5.2: a resumed MASTER announces nothing when it resumes, and no
// second burst, but refreshes as any MASTER does.
func TestResumeRefresh(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.AnnounceRefresh = time.Second })
	in := mustNew(t, cfg)
	out := in.Resume(t0)
	if len(out.Announce) > 0 {
		t.Fatalf("Resume announced %v", out.Announce)
	}
	got, _ := announcements(t, in, out.Next, t0.Add(2500*time.Millisecond), t0)
	want := []ann{{time.Second, 1}, {2 * time.Second, 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("announcements after Resume (-want +got):\n%s", diff)
	}
}

// docs/design.md §3.5 and §5.2: a change of the announcement knobs alone applies in place on a
// MASTER: no advert, no transition, nothing bound or announced at once. A refresh turned on
// starts one interval later; a new interval counts from the last refresh (at once if that is
// already past); turned off, it stops. A pending second burst moves to the new delay after the
// takeover, or goes with NoAnnounceRepeat; a new count applies to the next announcement.
func TestReconfigureAnnouncements(t *testing.T) {
	cfg := config4() // AnnounceRepeat 250 ms, no refresh
	reconf := func(t *testing.T, in *vrrp.Instance, now time.Time, c vrrp.Config) vrrp.Output {
		t.Helper()
		out, err := in.Reconfigure(now, c)
		if err != nil {
			t.Fatalf("Reconfigure: %v", err)
		}
		s := summarize(t, c, out)
		if len(s.Sent)+len(s.Bind)+len(s.Unbind)+len(s.Announce) > 0 || s.Transition != "" {
			t.Errorf("Reconfigure of the announcements only: %+v, want nothing done", s)
		}
		checkState(t, in, vrrp.Master)
		return out
	}
	check := func(t *testing.T, what string, want, got []ann) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}
	ms := time.Millisecond

	t.Run("refresh", func(t *testing.T) {
		in, out, tm := takeOver(t, cfg)
		got, _ := announcements(t, in, out.Next, tm.Add(500*ms), tm)
		check(t, "before", []ann{{250 * ms, 2}}, got)

		on := with(cfg, func(c *vrrp.Config) { c.AnnounceRefresh = time.Second })
		out = reconf(t, in, tm.Add(500*ms), on)
		got, _ = announcements(t, in, out.Next, tm.Add(2700*ms), tm)
		check(t, "turned on at +500ms", []ann{{1500 * ms, 1}, {2500 * ms, 1}}, got)

		shorter := with(on, func(c *vrrp.Config) { c.AnnounceRefresh = 300 * ms })
		out = reconf(t, in, tm.Add(2700*ms), shorter)
		got, _ = announcements(t, in, out.Next, tm.Add(3500*ms), tm)
		check(t, "300ms from +2.7s", []ann{{2800 * ms, 1}, {3100 * ms, 1}, {3400 * ms, 1}}, got)

		longer := with(on, func(c *vrrp.Config) { c.AnnounceRefresh = 10 * time.Second })
		out = reconf(t, in, tm.Add(3500*ms), longer)
		got, next := announcements(t, in, out.Next, tm.Add(20*time.Second), tm)
		check(t, "10s from +3.5s", []ann{{13400 * ms, 1}}, got)

		// The last refresh was at +13.4 s: at +20 s a 1 s interval is overdue.
		if want := tm.Add(20100 * ms); !next.Equal(want) {
			t.Fatalf("Next +%v, want the advert at +%v", next.Sub(tm), want.Sub(tm))
		}
		out = reconf(t, in, tm.Add(20*time.Second), on)
		if want := tm.Add(20 * time.Second); !out.Next.Equal(want) {
			t.Errorf("overdue refresh: Next +%v, want now (+%v)", out.Next.Sub(tm), want.Sub(tm))
		}
		got, _ = announcements(t, in, out.Next, tm.Add(21*time.Second), tm)
		check(t, "1s from +13.4s, at +20s", []ann{{20 * time.Second, 1}, {21 * time.Second, 1}}, got)

		count := with(on, func(c *vrrp.Config) { c.AnnounceRefreshCount = 5 })
		out = reconf(t, in, tm.Add(21500*ms), count)
		got, _ = announcements(t, in, out.Next, tm.Add(22*time.Second), tm)
		check(t, "refreshCount 5", []ann{{22 * time.Second, 5}}, got)

		out = reconf(t, in, tm.Add(22500*ms), cfg)
		if got, _ := announcements(t, in, out.Next, tm.Add(time.Minute), tm); len(got) > 0 {
			t.Errorf("refreshes after it was turned off: %v", got)
		}
	})

	t.Run("second burst", func(t *testing.T) {
		in, out, tm := takeOver(t, cfg)
		later := with(cfg, func(c *vrrp.Config) { c.AnnounceRepeat, c.AnnounceCount = time.Second, 3 })
		out = reconf(t, in, tm.Add(100*ms), later)
		got, _ := announcements(t, in, out.Next, tm.Add(5*time.Second), tm)
		check(t, "repeatDelay 1s, count 3", []ann{{time.Second, 3}}, got)

		in, out, tm = takeOver(t, cfg)
		none := with(cfg, func(c *vrrp.Config) { c.NoAnnounceRepeat = true })
		out = reconf(t, in, tm.Add(100*ms), none)
		got, _ = announcements(t, in, out.Next, tm.Add(5*time.Second), tm)
		check(t, "no second burst", nil, got)

		in, out, tm = takeOver(t, cfg)
		sooner := with(cfg, func(c *vrrp.Config) { c.AnnounceRepeat = 50 * ms })
		out = reconf(t, in, tm.Add(100*ms), sooner)
		if want := tm.Add(100 * ms); !out.Next.Equal(want) {
			t.Errorf("overdue second burst: Next +%v, want now (+%v)", out.Next.Sub(tm), want.Sub(tm))
		}
		got, _ = announcements(t, in, out.Next, tm.Add(5*time.Second), tm)
		check(t, "repeatDelay 50ms at +100ms", []ann{{100 * ms, 2}}, got)
	})

	t.Run("backup", func(t *testing.T) {
		in := startBackup(t, cfg)
		on := with(cfg, func(c *vrrp.Config) { c.AnnounceRefresh, c.AnnounceCount = time.Second, 4 })
		out, err := in.Reconfigure(t0.Add(ms), on)
		if err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(mdi100); !out.Next.Equal(want) {
			t.Errorf("Backup's Next +%v, want its Master_Down_Timer", out.Next.Sub(t0))
		}
		out = in.Tick(out.Next)
		tm := t0.Add(mdi100)
		wantAnnounce(t, "takeover", out, 4)
		got, _ := announcements(t, in, out.Next, tm.Add(time.Second), tm)
		check(t, "after the takeover", []ann{{250 * ms, 4}, {time.Second, 1}}, got)
	})
}

// The refresh on a simulated LAN: only the MASTER refreshes; a master whose link is cut keeps
// refreshing on its side, the one that takes over starts, and when the cut heals the one that
// steps down stops.
func TestSimAnnounceRefresh(t *testing.T) {
	base := with(config4(), func(c *vrrp.Config) { c.AnnounceRefresh = time.Second })
	l := newLAN(t, base, simLatency, 110, 100, 90)
	a, b, c := l.nodes[0], l.nodes[1], l.nodes[2]
	l.start(l.nodes...)
	l.run(700 * time.Millisecond) // a takes over at +357 ms, its second burst at +607 ms
	l.requireOnlyMaster(a)
	from := l.now
	l.run(3 * time.Second)
	refreshes := func(n *simNode, since time.Time) int {
		k := 0
		for _, at := range n.announced[vip.Addr()] {
			if !at.Before(since) {
				k++
			}
		}
		return k
	}
	if k := refreshes(a, from); k != 3 {
		t.Errorf("%s announced %d times in 3 s as MASTER, want 3 refreshes", a.name, k)
	}
	for _, n := range []*simNode{b, c} {
		if k := refreshes(n, t0); k != 0 {
			t.Errorf("backup %s announced %d times", n.name, k)
		}
	}

	l.setCut(a, true)
	if _, ok := l.runUntil(time.Second, l.onlyMaster(b)); !ok {
		t.Fatalf("no takeover by %s", b.name)
	}
	from = l.now
	l.run(3 * time.Second)
	// b: the takeover's two bursts at +0 and +250 ms, then three refreshes.
	if k := refreshes(b, from.Add(300*time.Millisecond)); k != 3 {
		t.Errorf("%s announced %d times from 300 ms to 3 s after its takeover, want 3 refreshes", b.name, k)
	}
	if k := refreshes(a, from); k != 3 {
		t.Errorf("cut-off master %s announced %d times in 3 s, want 3 refreshes", a.name, k)
	}

	l.setCut(a, false)
	if _, ok := l.runUntil(time.Second, l.onlyMaster(a)); !ok {
		t.Fatalf("two masters after the heal: %v", names(l.masters(true)))
	}
	down := l.now
	l.run(5 * time.Second)
	if k := refreshes(b, down); k != 0 {
		t.Errorf("%s announced %d times after stepping down", b.name, k)
	}
	if k := refreshes(a, down); k < 5 {
		t.Errorf("%s announced %d times in 5 s after the heal, want at least 5 refreshes", a.name, k)
	}
}

// burstLink is a fake link that is also a vrrp.BurstAnnouncer.
type burstLink struct{ *fakeHost }

func (l burstLink) AnnounceBurst(_ context.Context, as []netip.Addr, count int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record("announce %v x%d", as, count)
	return nil
}

// The Router hands the count of each announcement to a Link that can send it
// (vrrp.BurstAnnouncer), the takeover's bursts and the refreshes alike; a Link that cannot gets
// one Announce call per announcement.
func TestRouterAnnounceCount(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) {
		c.AnnounceCount, c.AnnounceRefresh, c.AnnounceRefreshCount = 3, time.Second, 2
	})
	annVIPx := func(n int) string { return fmt.Sprintf("announce [%s] x%d", vip.Addr(), n) }
	synctest.Test(t, func(t *testing.T) {
		rig := startRouterOn(t, cfg, func(h *fakeHost) vrrp.Link { return burstLink{h} })
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		diffEvents(t, []string{sendMcast(100), bindVIP, annVIPx(3)}, rig.host.take())
		time.Sleep(time.Second)
		synctest.Wait()
		var anns []string
		for _, e := range rig.host.take() {
			if e != sendMcast(100) {
				anns = append(anns, e)
			}
		}
		diffEvents(t, []string{bindVIP, annVIPx(3), annVIPx(2)}, anns)
	})
	synctest.Test(t, func(t *testing.T) {
		rig := startRouter(t, cfg)
		time.Sleep(mdi100 + time.Second)
		synctest.Wait()
		var anns []string
		for _, e := range rig.host.take() {
			if e != sendMcast(100) {
				anns = append(anns, e)
			}
		}
		diffEvents(t, []string{bindVIP, annVIP, bindVIP, annVIP, annVIP}, anns)
	})
}
