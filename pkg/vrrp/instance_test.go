package vrrp_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// RFC 5798 §6.4.1 and §6.1 (RFC 3768 §6.4.1 and §6.1 for v2): a non-owner starts as Backup with
// Master_Down_Timer = 3 * Master_Adver_Interval + Skew_Time, where Skew_Time is ((256 - Priority) *
// Master_Adver_Interval) / 256 in v3 and (256 - Priority) / 256 s in v2. Timers are time.Durations,
// so a 10 ms interval keeps its sub-millisecond skew.
func TestStartupBackupMasterDownTimer(t *testing.T) {
	tests := []struct {
		name     string
		version  uint8
		interval time.Duration
		prio     uint8
		want     time.Duration
	}{
		// 156 * 100 ms / 256 = 60.9375 ms.
		{"v3 100ms prio 100", 3, 100 * time.Millisecond, 100, 360937500 * time.Nanosecond},
		// 156 * 1 s / 256 = 609.375 ms.
		{"v3 1s prio 100", 3, time.Second, 100, 3609375 * time.Microsecond},
		// 2 * 10 ms / 256 = 78.125 µs: integer centiseconds would make it 0.
		{"v3 10ms prio 254", 3, 10 * time.Millisecond, 254, 30078125 * time.Nanosecond},
		// 255 * 10 ms / 256 = 9.9609375 ms, i.e. 9960937.5 ns, truncated to the nanosecond.
		{"v3 10ms prio 1", 3, 10 * time.Millisecond, 1, 30*time.Millisecond + 9960937*time.Nanosecond},
		// v2: Skew_Time is in seconds, not scaled by the interval.
		{"v2 1s prio 100", 2, time.Second, 100, 3609375 * time.Microsecond},
		{"v2 3s prio 100", 2, 3 * time.Second, 100, 9609375 * time.Microsecond},
		// 2 / 256 s = 7.8125 ms.
		{"v2 1s prio 254", 2, time.Second, 254, 3007812500 * time.Nanosecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := with(config4(), func(c *vrrp.Config) {
				c.Version, c.Interval, c.Priority = tc.version, tc.interval, tc.prio
			})
			in := mustNew(t, cfg)
			checkState(t, in, vrrp.Initialize)
			out := in.Start(t0)
			checkOut(t, cfg, summary{Transition: "Initialize->Backup Started", Next: t0.Add(tc.want)}, out)

			// Calling Tick early changes nothing.
			out = in.Tick(t0.Add(tc.want - 1))
			checkOut(t, cfg, summary{Next: t0.Add(tc.want)}, out)
			checkState(t, in, vrrp.Backup)
		})
	}
}

// RFC 5798 §6.4.1: the address owner (priority 255) becomes Master at once, sends an advert and
// announces its addresses.
func TestStartupOwnerBecomesMaster(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Priority = 255 })
	in := mustNew(t, cfg)
	out := in.Start(t0)
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 255)},
		Bind:       []netip.Prefix{vip},
		Announce:   []netip.Addr{vip.Addr()},
		Transition: "Initialize->Master AddressOwner",
		Next:       t0.Add(100 * time.Millisecond),
	}, out)
	st := in.Status()
	if st.Master != me || st.MasterPriority != 255 || st.Priority != 255 {
		t.Errorf("status master %s/%d priority %d, want %s/255 and 255", st.Master, st.MasterPriority, st.Priority, me)
	}
}

// RFC 5798 §6.4.2: when the Master_Down_Timer fires the Backup sends an advert, broadcasts
// gratuitous ARP (here: binds and announces its addresses), sets the Adver_Timer and becomes
// Master.
func TestMasterDownTimerExpiry(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip, vip2} })
	in := startBackup(t, cfg)
	at := t0.Add(mdi100)
	out := in.Tick(at)
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
		Bind:       []netip.Prefix{vip, vip2},
		Announce:   []netip.Addr{vip.Addr(), vip2.Addr()},
		Transition: "Backup->Master MasterDownTimer",
		Next:       at.Add(100 * time.Millisecond),
	}, out)
	if got := in.Status(); got.Reason != vrrp.ReasonMasterDown || !got.Since.Equal(at) || got.Stats.Transitions != 2 {
		t.Errorf("status reason %q since %v transitions %d", got.Reason, got.Since, got.Stats.Transitions)
	}
}

// RFC 5798 §6.4.3: when the Adver_Timer fires the Master sends an advert and resets the timer; an
// early Tick sends nothing.
func TestAdverTimer(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	out := in.Tick(tm.Add(99 * time.Millisecond))
	checkOut(t, cfg, summary{Next: tm.Add(100 * time.Millisecond)}, out)
	out = in.Tick(tm.Add(100 * time.Millisecond))
	checkOut(t, cfg, summary{
		Sent: []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
		Next: tm.Add(200 * time.Millisecond),
	}, out)
	if got := in.Status().Stats.AdvertsSent; got != 2 {
		t.Errorf("AdvertsSent %d, want 2", got)
	}
}

// RFC 5798 §6.4.2: a v3 Backup sets Master_Adver_Interval to the interval in the master's advert
// and recomputes Skew_Time and Master_Down_Interval from it.
func TestBackupAdoptsMasterIntervalV3(t *testing.T) {
	cfg := config4() // 100 ms
	in := startBackup(t, cfg)
	now := t0.Add(50 * time.Millisecond)
	out := in.Receive(now, advert(t, cfg, higher, 200, func(a *packet.Advertisement) { a.Interval = time.Second }))
	// 3 * 1 s + 156 * 1 s / 256.
	checkOut(t, cfg, summary{Next: now.Add(3609375 * time.Microsecond)}, out)
	st := in.Status()
	if st.Master != higher || st.MasterPriority != 200 || st.State != vrrp.Backup {
		t.Errorf("status %+v, want Backup with master %s/200", st, higher)
	}

	// Priority 0 from that master: Skew_Time of the adopted interval (RFC 5798 §6.4.2).
	now = now.Add(time.Second)
	out = in.Receive(now, advert(t, cfg, higher, 0, func(a *packet.Advertisement) { a.Interval = time.Second }))
	checkOut(t, cfg, summary{Next: now.Add(609375 * time.Microsecond)}, out)
}

// RFC 3768 §6.1 and §7.1: a v2 Backup keeps its configured Master_Adver_Interval and drops an
// advert whose interval differs from it.
func TestBackupV2KeepsConfiguredInterval(t *testing.T) {
	cfg := config2() // 1 s
	in := startBackup(t, cfg)
	start := t0.Add(3609375 * time.Microsecond)

	now := t0.Add(100 * time.Millisecond)
	out := in.Receive(now, advert(t, cfg, higher, 200, func(a *packet.Advertisement) { a.Interval = 2 * time.Second }))
	checkOut(t, cfg, summary{Next: start}, out)
	if diff := cmp.Diff(map[packet.Reason]uint64{vrrp.DropInterval: 1}, in.Status().Stats.Drops); diff != "" {
		t.Errorf("drops (-want +got):\n%s", diff)
	}

	out = in.Receive(now, advert(t, cfg, higher, 200))
	checkOut(t, cfg, summary{Next: now.Add(3609375 * time.Microsecond)}, out)
}

// RFC 5798 §6.4.2: a Backup that hears priority 0 sets the Master_Down_Timer to Skew_Time, then
// takes over when it fires; the transition says the master resigned (a handover), not that it
// was lost.
func TestBackupHearsPriorityZero(t *testing.T) {
	cfg := config4()
	in := startBackup(t, cfg)
	in.Receive(t0.Add(10*time.Millisecond), advert(t, cfg, higher, 200))
	now := t0.Add(20 * time.Millisecond)
	out := in.Receive(now, advert(t, cfg, higher, 0))
	checkOut(t, cfg, summary{Next: now.Add(skew100)}, out)
	checkState(t, in, vrrp.Backup)
	if st := in.Status(); st.Master.IsValid() {
		t.Errorf("master %s still known after it resigned", st.Master)
	}
	out = in.Tick(now.Add(skew100))
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
		Bind:       []netip.Prefix{vip},
		Announce:   []netip.Addr{vip.Addr()},
		Transition: "Backup->Master MasterResigned",
		Next:       now.Add(skew100 + 100*time.Millisecond),
	}, out)
}

// Beyond RFC 5798 §6.4.2 (docs/design.md §4.2): when every other member is known and none can beat
// this router, a priority-0 advert hands over at once instead of after Skew_Time.
func TestFastHandover(t *testing.T) {
	other := netip.MustParseAddr("192.168.1.13") // greater than me
	low := netip.MustParseAddr("192.168.1.5")    // smaller than me
	tests := []struct {
		name     string
		members  []vrrp.Member
		complete bool
		fast     bool
	}{
		{"all others lower", []vrrp.Member{{higher, 200}, {other, 90}, {low, 99}}, true, true},
		{"only the resigning master", []vrrp.Member{{higher, 200}}, true, true},
		{"own address listed", []vrrp.Member{{higher, 200}, {me, 100}, {other, 90}}, true, true},
		{"equal priority, smaller address", []vrrp.Member{{higher, 200}, {low, 100}}, true, true},
		{"members incomplete", []vrrp.Member{{higher, 200}, {other, 90}}, false, false},
		{"a member's priority unknown", []vrrp.Member{{higher, 200}, {other, 0}}, true, false},
		{"a member higher", []vrrp.Member{{higher, 200}, {low, 101}}, true, false},
		{"equal priority, greater address", []vrrp.Member{{higher, 200}, {other, 100}}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := with(config4(), func(c *vrrp.Config) { c.Members, c.MembersComplete = tc.members, tc.complete })
			in := startBackup(t, cfg)
			in.Receive(t0.Add(10*time.Millisecond), advert(t, cfg, higher, 200))
			now := t0.Add(20 * time.Millisecond)
			out := in.Receive(now, advert(t, cfg, higher, 0))
			if !tc.fast {
				checkOut(t, cfg, summary{Next: now.Add(skew100)}, out)
				checkState(t, in, vrrp.Backup)
				return
			}
			checkOut(t, cfg, summary{
				Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
				Bind:       []netip.Prefix{vip},
				Announce:   []netip.Addr{vip.Addr()},
				Transition: "Backup->Master FastHandover",
				Next:       now.Add(100 * time.Millisecond),
			}, out)
		})
	}
}

// RFC 5798 §6.4.2: with Preempt_Mode false, or an advert of greater or equal priority, the Backup
// resets its Master_Down_Timer. With preempt on and a lower-priority advert the RFC discards it and
// lets the timer run out; like keepalived, the engine takes over at once (docs/design.md §4.3).
func TestBackupPreempt(t *testing.T) {
	tests := []struct {
		name    string
		preempt bool
		prio    uint8
		src     netip.Addr
		take    bool
	}{
		{"preempt, lower priority", true, 99, higher, true},
		{"preempt, higher priority", true, 101, lower, false},
		// RFC 5798 §6.4.2 compares only priorities in Backup: equal means reset, whatever the
		// addresses.
		{"preempt, equal priority, smaller address", true, 100, lower, false},
		{"preempt, equal priority, greater address", true, 100, higher, false},
		{"no preempt, lower priority", false, 1, higher, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := with(config4(), func(c *vrrp.Config) { c.Preempt = tc.preempt })
			in := startBackup(t, cfg)
			now := t0.Add(200 * time.Millisecond)
			out := in.Receive(now, advert(t, cfg, tc.src, tc.prio))
			if !tc.take {
				checkOut(t, cfg, summary{Next: now.Add(mdi100)}, out)
				checkState(t, in, vrrp.Backup)
				if st := in.Status(); st.Master != tc.src || st.MasterPriority != tc.prio {
					t.Errorf("master %s/%d, want %s/%d", st.Master, st.MasterPriority, tc.src, tc.prio)
				}
				return
			}
			checkOut(t, cfg, summary{
				Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
				Bind:       []netip.Prefix{vip},
				Announce:   []netip.Addr{vip.Addr()},
				Transition: "Backup->Master Preempting",
				Next:       now.Add(100 * time.Millisecond),
			}, out)
		})
	}
}

// RFC 5798 §6.4.2 preemption, held off as keepalived's preempt_delay does: after start, and again
// after leaving Fault, a lower-priority master is not preempted until PreemptDelay has elapsed.
func TestPreemptDelay(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.PreemptDelay = 5 * time.Second })
	in := startBackup(t, cfg)

	step := func(now time.Time, wantState vrrp.State) {
		t.Helper()
		in.Receive(now, advert(t, cfg, higher, 50))
		checkState(t, in, wantState)
	}
	step(t0.Add(100*time.Millisecond), vrrp.Backup)
	step(t0.Add(5*time.Second-time.Nanosecond), vrrp.Backup)
	step(t0.Add(5*time.Second), vrrp.Master)

	// Fault and back: the hold-off starts again when Fault clears.
	in.SetHealth(t0.Add(10*time.Second), failing)
	checkState(t, in, vrrp.Fault)
	clear := t0.Add(20 * time.Second)
	in.SetHealth(clear, healthy)
	checkState(t, in, vrrp.Backup)
	step(clear.Add(100*time.Millisecond), vrrp.Backup)
	step(clear.Add(4900*time.Millisecond), vrrp.Backup)
	step(clear.Add(5*time.Second), vrrp.Master)
}

// RFC 5798 §6.4.3: a Master that hears a higher priority, or an equal priority from a greater
// primary address, cancels the Adver_Timer, adopts the sender's interval, sets the
// Master_Down_Timer and becomes Backup; it removes its addresses. Otherwise it keeps the role, and
// (RFC 9568 §6.4.3, docs/design.md §4.4) advertises at once and re-announces its addresses so a
// lower-priority master left over from a split brain steps down quickly.
func TestMasterReceive(t *testing.T) {
	tests := []struct {
		name     string
		prio     uint8
		src      netip.Addr
		stepDown bool
		// last is the priority of the stepping-down advert: the highest the winner still beats.
		last uint8
	}{
		{"higher priority", 101, lower, true, 100},
		{"owner", 255, lower, true, 254},
		{"equal priority, greater address", 100, higher, true, 100},
		{"equal priority, smaller address", 100, lower, false, 0},
		{"lower priority", 99, higher, false, 0},
		{"lowest priority", 1, higher, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config4()
			in, tm := startMaster(t, cfg)
			now := tm.Add(30 * time.Millisecond)
			out := in.Receive(now, advert(t, cfg, tc.src, tc.prio, func(a *packet.Advertisement) { a.Interval = time.Second }))
			if tc.stepDown {
				checkOut(t, cfg, summary{
					// One advert the winner beats, so it re-announces (docs/design.md §4.4).
					Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, tc.last)},
					Unbind:     []netip.Prefix{vip},
					Transition: "Master->Backup HigherPriorityMaster",
					// 3 * 1 s (adopted) + 156 * 1 s / 256.
					Next: now.Add(3609375 * time.Microsecond),
				}, out)
				if st := in.Status(); st.Master != tc.src || st.MasterPriority != tc.prio {
					t.Errorf("master %s/%d, want %s/%d", st.Master, st.MasterPriority, tc.src, tc.prio)
				}
				return
			}
			checkOut(t, cfg, summary{
				Sent:     []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
				Announce: []netip.Addr{vip.Addr()},
				Next:     now.Add(100 * time.Millisecond),
			}, out)
			checkState(t, in, vrrp.Master)
		})
	}
}

// RFC 3768 §6.4.3: a v2 Master stepping down keeps its own Master_Adver_Interval. Beyond the RFC
// (docs/design.md §4.4, split-brain healing) it sends one advert the winner beats (here the
// winner's own priority: the winner's address is greater), so the winner re-announces.
func TestMasterStepsDownV2(t *testing.T) {
	cfg := config2()
	in, tm := startMaster(t, cfg)
	now := tm.Add(300 * time.Millisecond)
	out := in.Receive(now, advert(t, cfg, higher, 150))
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 150)},
		Unbind:     []netip.Prefix{vip},
		Transition: "Master->Backup HigherPriorityMaster",
		Next:       now.Add(3609375 * time.Microsecond),
	}, out)
}

// RFC 5798 §6.4.2 and §6.4.3 together: the advert of a master stepping down for a better one
// reaches every router. The winner hears a lower priority and re-announces (RFC 9568 §6.4.3);
// another backup of the loser keeps its full Master_Down_Interval, so it cannot win a race
// against the winner's next advert, which a priority-0 advert (Skew_Time) would start.
func TestStepDownAdvertReachesOthers(t *testing.T) {
	cfg := config4()
	loser, tm := startMaster(t, cfg)
	now := tm.Add(30 * time.Millisecond)
	out := loser.Receive(now, advert(t, cfg, higher, 110))
	checkState(t, loser, vrrp.Backup)
	if len(out.Send) != 1 {
		t.Fatalf("stepping down sent %d adverts, want 1", len(out.Send))
	}
	stepDown := vrrp.Packet{Src: me, Dst: out.Send[0].Dst, TTL: 255, Data: out.Send[0].Data}

	// Another backup of the loser, priority 90, at a smaller address.
	other := with(cfg, func(c *vrrp.Config) { c.Priority, c.Primary = 90, lower })
	bk := startBackup(t, other)
	bk.Receive(now.Add(-10*time.Millisecond), advert(t, other, me, 100))
	at := now.Add(time.Millisecond)
	// 3 * 100 ms + (256 - 90) * 100 ms / 256.
	checkOut(t, other, summary{Next: at.Add(364843750 * time.Nanosecond)}, bk.Receive(at, stepDown))
	checkState(t, bk, vrrp.Backup)

	// A preempting backup between the loser and the winner (105) must not take over on it.
	mid := with(cfg, func(c *vrrp.Config) { c.Priority, c.Primary = 105, lower })
	bm := startBackup(t, mid)
	bm.Receive(now.Add(-10*time.Millisecond), advert(t, mid, higher, 110))
	if o := bm.Receive(at, stepDown); o.Transition != nil {
		t.Fatalf("a backup at 105 reacted to the step-down advert with %+v", o.Transition)
	}
	checkState(t, bm, vrrp.Backup)

	// The winner, Master at 110 at the greater address, hears a lower priority.
	winCfg := with(cfg, func(c *vrrp.Config) { c.Priority, c.Primary = 110, higher })
	winner, wt := startMaster(t, winCfg)
	at = wt.Add(10 * time.Millisecond)
	checkOut(t, winCfg, summary{
		Sent:     []sent{advertOf(winCfg, packet.MulticastIPv4, 110)},
		Announce: []netip.Addr{vip.Addr()},
		Next:     at.Add(100 * time.Millisecond),
	}, winner.Receive(at, vrrp.Packet{Src: me, Dst: out.Send[0].Dst, TTL: 255, Data: out.Send[0].Data}))
}

// RFC 5798 §6.4.3: a Master that hears priority 0 sends an advert at once and resets the
// Adver_Timer, so the backups don't take over. A resigning second master means a dual-master
// episode just ended, so it also re-announces its addresses (docs/design.md §4.4).
func TestMasterHearsPriorityZero(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	now := tm.Add(40 * time.Millisecond)
	out := in.Receive(now, advert(t, cfg, higher, 0))
	checkOut(t, cfg, summary{
		Sent:     []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
		Announce: []netip.Addr{vip.Addr()},
		Next:     now.Add(100 * time.Millisecond),
	}, out)
	checkState(t, in, vrrp.Master)
}

// RFC 5798 §6.4.3 (the Master advertises its priority): SetPriority as Master advertises the new
// priority at once (so a preempting backup takes over without waiting an interval); the same
// priority sends nothing.
func TestSetPriorityMaster(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	now := tm.Add(10 * time.Millisecond)
	out := in.SetHealth(now, weighted(in, 80))
	checkOut(t, cfg, summary{
		Sent: []sent{advertOf(cfg, packet.MulticastIPv4, 80)},
		Next: now.Add(100 * time.Millisecond),
	}, out)
	if st := in.Status(); st.Priority != 80 || st.MasterPriority != 80 {
		t.Errorf("priority %d, master priority %d, want 80 and 80", st.Priority, st.MasterPriority)
	}
	// Periodic adverts carry it too (RFC 5798 §6.4.3).
	out = in.Tick(now.Add(100 * time.Millisecond))
	checkOut(t, cfg, summary{
		Sent: []sent{advertOf(cfg, packet.MulticastIPv4, 80)},
		Next: now.Add(200 * time.Millisecond),
	}, out)
	out = in.SetHealth(now.Add(150*time.Millisecond), weighted(in, 80))
	checkOut(t, cfg, summary{Next: now.Add(200 * time.Millisecond)}, out)
}

// RFC 5798 §6.4.2 preemption: SetPriority as Backup above the known master's priority preempts at
// once (preempt on only).
func TestSetPriorityBackup(t *testing.T) {
	tests := []struct {
		name    string
		preempt bool
		prio    uint8
		take    bool
	}{
		{"above master", true, 121, true},
		{"equal to master", true, 120, false},
		{"below master", true, 110, false},
		{"above master, no preempt", false, 200, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := with(config4(), func(c *vrrp.Config) { c.Preempt = tc.preempt })
			in := startBackup(t, cfg)
			in.Receive(t0.Add(10*time.Millisecond), advert(t, cfg, higher, 120))
			now := t0.Add(20 * time.Millisecond)
			out := in.SetHealth(now, weighted(in, tc.prio))
			if in.Status().Priority != tc.prio {
				t.Errorf("priority %d, want %d", in.Status().Priority, tc.prio)
			}
			if !tc.take {
				checkOut(t, cfg, summary{Next: t0.Add(10 * time.Millisecond).Add(mdi100)}, out)
				checkState(t, in, vrrp.Backup)
				return
			}
			checkOut(t, cfg, summary{
				Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, tc.prio)},
				Bind:       []netip.Prefix{vip},
				Announce:   []netip.Addr{vip.Addr()},
				Transition: "Backup->Master Preempting",
				Next:       now.Add(100 * time.Millisecond),
			}, out)
		})
	}
}

// RFC 5798 §6.1: the owner's priority is 255 and stays 255 whatever the probes' weights; 0 is
// reserved for resigning (§5.2.4) and 255 is only the owner's, so weights clamp to 1..254.
// A config change keeps the weights: the effective priority follows the new base.
func TestSetHealthPriorityLimits(t *testing.T) {
	owner := with(config4(), func(c *vrrp.Config) { c.Priority = 255 })
	in, tm := startMaster(t, owner)
	out := in.SetHealth(tm.Add(time.Millisecond), vrrp.Health{Adjust: -50})
	checkOut(t, owner, summary{Next: tm.Add(100 * time.Millisecond)}, out)
	if p := in.Status().Priority; p != 255 {
		t.Errorf("owner priority %d after weights -50, want 255", p)
	}

	cfg := config4()
	in = startBackup(t, cfg)
	for _, tc := range []struct {
		adjust int
		want   uint8
	}{{-100, 1}, {-99, 1}, {-98, 2}, {154, 254}, {155, 254}, {1000, 254}, {-1000, 1}, {0, 100}} {
		in.SetHealth(t0, vrrp.Health{Adjust: tc.adjust})
		if p := in.Status().Priority; p != tc.want {
			t.Errorf("priority %d with base 100 and weights %+d, want %d", p, tc.adjust, tc.want)
		}
	}
	in.SetHealth(t0, vrrp.Health{Adjust: -20})
	if _, err := in.Reconfigure(t0, with(cfg, func(c *vrrp.Config) { c.Priority = 150 })); err != nil {
		t.Fatal(err)
	}
	if p := in.Status().Priority; p != 130 {
		t.Errorf("priority %d after base 100 -> 150 with weights -20, want 130", p)
	}
}

// A probe failure as Master resigns like a shutdown (RFC 5798 §6.4.3 Shutdown: priority-0 adverts)
// and removes the addresses; Fault clearing goes to Backup as after Startup (RFC 5798 §6.4.1).
func TestSetFaultMaster(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	now := tm.Add(20 * time.Millisecond)
	out := in.SetHealth(now, failing)
	zero := advertOf(cfg, packet.MulticastIPv4, 0)
	checkOut(t, cfg, summary{
		Sent:       []sent{zero, zero, zero},
		Unbind:     []netip.Prefix{vip},
		Transition: "Master->Fault ProbeFailed",
	}, out)
	if st := in.Status(); st.Master.IsValid() {
		t.Errorf("Fault still reports master %s", st.Master)
	}
	// Nothing happens in Fault: no timers, adverts ignored.
	checkOut(t, cfg, summary{}, in.Tick(now.Add(time.Hour)))
	checkOut(t, cfg, summary{}, in.Receive(now.Add(time.Second), advert(t, cfg, higher, 50)))
	checkOut(t, cfg, summary{}, in.SetHealth(now.Add(time.Second), failing))

	clear := now.Add(2 * time.Second)
	out = in.SetHealth(clear, healthy)
	checkOut(t, cfg, summary{Transition: "Fault->Backup ProbeRecovered", Next: clear.Add(mdi100)}, out)
}

// RFC 5798 §6.4.1: Fault as Backup sends nothing (a Backup never advertises); Fault set before
// Startup makes Startup go to Fault, and leaving it starts like Startup with the new priority.
func TestSetFaultBackupAndBeforeStart(t *testing.T) {
	cfg := config4()
	in := startBackup(t, cfg)
	out := in.SetHealth(t0.Add(time.Second), failing)
	checkOut(t, cfg, summary{Transition: "Backup->Fault ProbeFailed"}, out)

	in = mustNew(t, cfg)
	checkOut(t, cfg, summary{}, in.SetHealth(t0, failing))
	checkState(t, in, vrrp.Initialize)
	checkOut(t, cfg, summary{Transition: "Initialize->Fault ProbeFailed"}, in.Start(t0))

	// Weights that change while in Fault apply on recovery.
	checkOut(t, cfg, summary{}, in.SetHealth(t0, vrrp.Health{Fault: true, Adjust: 154, Reason: vrrp.ReasonProbeFailed}))
	out = in.SetHealth(t0.Add(time.Second), vrrp.Health{Adjust: 154, Reason: vrrp.ReasonProbeRecovered})
	// 3 * 100 ms + 2 * 100 ms / 256.
	checkOut(t, cfg, summary{Transition: "Fault->Backup ProbeRecovered", Next: t0.Add(time.Second + 300781250*time.Nanosecond)}, out)
}

// RFC 5798 §6.4.2 preempts the master a Backup has heard. A Master that left Fault (or was shut
// down) must not keep itself as the known master: a later SetPriority as Backup would otherwise
// "preempt" a master it has never heard.
func TestFaultForgetsSelfAsMaster(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	in.SetHealth(tm.Add(time.Millisecond), failing)
	in.SetHealth(tm.Add(2*time.Millisecond), healthy)
	checkState(t, in, vrrp.Backup)
	out := in.SetHealth(tm.Add(3*time.Millisecond), weighted(in, 110))
	checkState(t, in, vrrp.Backup)
	checkOut(t, cfg, summary{Next: tm.Add(2 * time.Millisecond).Add(mdi100)}, out)
}

// RFC 5798 §6.4.3 Shutdown: the Master cancels the Adver_Timer, sends priority 0 (three copies
// here, so one loss doesn't cost a Master_Down_Interval), removes its addresses and goes to
// Initialize. A Backup just stops.
func TestShutdown(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	out := in.Shutdown(tm.Add(time.Millisecond))
	zero := advertOf(cfg, packet.MulticastIPv4, 0)
	checkOut(t, cfg, summary{
		Sent:       []sent{zero, zero, zero},
		Unbind:     []netip.Prefix{vip},
		Transition: "Master->Initialize Shutdown",
	}, out)
	checkOut(t, cfg, summary{}, in.Tick(tm.Add(time.Hour)))

	in = startBackup(t, cfg)
	checkOut(t, cfg, summary{Transition: "Backup->Initialize Shutdown"}, in.Shutdown(t0.Add(time.Millisecond)))
	checkOut(t, cfg, summary{}, in.Tick(t0.Add(time.Hour)))
}

// RFC 5798 §6.4.2 ("broadcast a gratuitous ARP" on becoming Master) and docs/design.md §5.2: a
// second gratuitous ARP / NA burst AnnounceRepeat after the takeover (binding again, which is
// idempotent and heals a failed bind); exactly once, and not after stepping down.
func TestSecondAnnounceBurst(t *testing.T) {
	cfg := config4() // AnnounceRepeat 250 ms
	in, tm := startMaster(t, cfg)
	in.Tick(tm.Add(100 * time.Millisecond))
	out := in.Tick(tm.Add(200 * time.Millisecond))
	if want := tm.Add(250 * time.Millisecond); !out.Next.Equal(want) {
		t.Fatalf("Next %v, want the burst at %v", out.Next, want)
	}
	out = in.Tick(tm.Add(250 * time.Millisecond))
	checkOut(t, cfg, summary{
		Bind:     []netip.Prefix{vip},
		Announce: []netip.Addr{vip.Addr()},
		Next:     tm.Add(300 * time.Millisecond),
	}, out)
	// Only once.
	for i := 3; i <= 30; i++ {
		out = in.Tick(tm.Add(time.Duration(i) * 100 * time.Millisecond))
		if len(out.Bind)+len(out.Announce) > 0 {
			t.Fatalf("announce again at +%d00ms", i)
		}
	}

	// Stepping down before the burst cancels it.
	in, tm = startMaster(t, cfg)
	in.Receive(tm.Add(50*time.Millisecond), advert(t, cfg, higher, 200))
	out = in.Tick(tm.Add(250 * time.Millisecond))
	checkOut(t, cfg, summary{Next: tm.Add(50 * time.Millisecond).Add(mdi100)}, out)

	// The default is DefaultAnnounceRepeat.
	cfg.AnnounceRepeat = 0
	in, tm = startMaster(t, cfg)
	var burst time.Time
	for now := tm; now.Before(tm.Add(3 * time.Second)); now = now.Add(10 * time.Millisecond) {
		if out := in.Tick(now); len(out.Announce) > 0 {
			burst = now
			break
		}
	}
	if want := tm.Add(vrrp.DefaultAnnounceRepeat); !burst.Equal(want) {
		t.Errorf("second burst at %v, want %v", burst.Sub(tm), vrrp.DefaultAnnounceRepeat)
	}
}

// RFC 5798 §6.4.3 (the Master MUST accept and answer for the virtual addresses) and
// docs/design.md §5.4: if something removes a VIP while Master, put it back and announce it; a
// Backup does nothing, and an address that isn't ours is ignored.
func TestAddressRemoved(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip, vip2} })
	in, tm := startMaster(t, cfg)
	now := tm.Add(time.Millisecond)
	checkOut(t, cfg, summary{
		Bind:     []netip.Prefix{vip2},
		Announce: []netip.Addr{vip2.Addr()},
		Next:     tm.Add(100 * time.Millisecond),
	}, in.AddressRemoved(now, vip2))
	checkOut(t, cfg, summary{Next: tm.Add(100 * time.Millisecond)},
		in.AddressRemoved(now, netip.MustParsePrefix("192.168.1.200/24")))

	in = startBackup(t, cfg)
	checkOut(t, cfg, summary{Next: t0.Add(mdi100)}, in.AddressRemoved(t0.Add(time.Millisecond), vip))
}

// RFC 5798 §6.4.3 and docs/design.md §3.5: changing addresses on a Master is a bind/unbind diff,
// not a restart; the new set is advertised at once.
func TestReconfigureAddressesOnMaster(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip, vip2} })
	in, tm := startMaster(t, cfg)
	vip3 := netip.MustParsePrefix("192.168.1.102/24")
	next := with(cfg, func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip2, vip3} })
	now := tm.Add(10 * time.Millisecond)
	out, err := in.Reconfigure(now, next)
	if err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	checkOut(t, next, summary{
		Sent:     []sent{advertOf(next, packet.MulticastIPv4, 100)},
		Unbind:   []netip.Prefix{vip},
		Bind:     []netip.Prefix{vip3},
		Announce: []netip.Addr{vip3.Addr()},
		Next:     now.Add(100 * time.Millisecond),
	}, out)
	checkState(t, in, vrrp.Master)

	// Nothing changed: nothing to do.
	out, err = in.Reconfigure(now, next)
	if err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	checkOut(t, next, summary{Next: now.Add(100 * time.Millisecond)}, out)

	// A Backup changes nothing on the host.
	in = startBackup(t, cfg)
	out, err = in.Reconfigure(t0.Add(time.Millisecond), next)
	if err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	checkOut(t, next, summary{Next: t0.Add(mdi100)}, out)
}

// RFC 5798 §5.2 (VRID and version identify the virtual router on the wire): Reconfigure refuses
// what a running instance can't change; the caller replaces the instance. The refused call changes
// nothing, timers included.
func TestReconfigureIncompatible(t *testing.T) {
	tests := []struct {
		name string
		edit func(*vrrp.Config)
		want error
	}{
		{"VRID", func(c *vrrp.Config) { c.VRID = 52 }, vrrp.ErrIncompatible},
		{"version", func(c *vrrp.Config) { c.Version, c.Interval = 2, time.Second }, vrrp.ErrIncompatible},
		{"interface", func(c *vrrp.Config) { c.Interface = "eth1" }, vrrp.ErrIncompatible},
		{"primary", func(c *vrrp.Config) { c.Primary = higher }, vrrp.ErrIncompatible},
		{"becomes owner", func(c *vrrp.Config) { c.Priority = 255 }, vrrp.ErrIncompatible},
		{"invalid", func(c *vrrp.Config) { c.Interval = 15 * time.Millisecond }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config4()
			in, tm := startMaster(t, cfg)
			out, err := in.Reconfigure(tm.Add(time.Millisecond), with(cfg, tc.edit))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Reconfigure error %v, want %v", err, tc.want)
			}
			if tc.want == nil && errors.Is(err, vrrp.ErrIncompatible) {
				t.Errorf("invalid config reported as incompatible: %v", err)
			}
			// The instance keeps running on its old config: the next advert is still due.
			checkOut(t, cfg, summary{Next: tm.Add(100 * time.Millisecond)}, out)
			if diff := cmp.Diff(cfg, in.Config(), cmpOpts...); diff != "" {
				t.Errorf("config changed (-want +got):\n%s", diff)
			}
			checkOut(t, cfg, summary{
				Sent: []sent{advertOf(cfg, packet.MulticastIPv4, 100)},
				Next: tm.Add(200 * time.Millisecond),
			}, in.Tick(tm.Add(100*time.Millisecond)))
		})
	}
}

// RFC 5798 §6.4.3 with docs/design.md §3.5, §4.7 unicast: peers change without restarting the
// instance.
func TestReconfigurePeers(t *testing.T) {
	p1, p2, p3 := lower, higher, netip.MustParseAddr("192.168.1.13")
	cfg := with(config4(), func(c *vrrp.Config) { c.Peers = []netip.Addr{p1, p2} })
	in, tm := startMaster(t, cfg)
	next := with(cfg, func(c *vrrp.Config) { c.Peers = []netip.Addr{p2, p3} })
	if _, err := in.Reconfigure(tm.Add(time.Millisecond), next); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	checkOut(t, next, summary{
		Sent: []sent{advertOf(next, p2, 100), advertOf(next, p3, 100)},
		Next: tm.Add(200 * time.Millisecond),
	}, in.Tick(tm.Add(100*time.Millisecond)))
	// The removed peer is no longer heard, the new one is.
	in.Receive(tm.Add(110*time.Millisecond), advert(t, cfg, p1, 200))
	checkState(t, in, vrrp.Master)
	if got := in.Status().Stats.Drops[vrrp.DropUnknownPeer]; got != 1 {
		t.Errorf("unknown_peer drops %d, want 1", got)
	}
	in.Receive(tm.Add(120*time.Millisecond), advert(t, next, p3, 200))
	checkState(t, in, vrrp.Backup)
}

// docs/design.md §4.7 unicast: adverts go to each peer; the TTL rule is relaxed (RFC 5798 §7.1 asks
// for 255, but unicast adverts may be routed); a source that isn't a peer is dropped.
func TestUnicast(t *testing.T) {
	stranger := netip.MustParseAddr("192.168.1.50")
	cfg := with(config4(), func(c *vrrp.Config) { c.Peers = []netip.Addr{lower, higher} })
	in := startBackup(t, cfg)
	out := in.Tick(t0.Add(mdi100))
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, lower, 100), advertOf(cfg, higher, 100)},
		Bind:       []netip.Prefix{vip},
		Announce:   []netip.Addr{vip.Addr()},
		Transition: "Backup->Master MasterDownTimer",
		Next:       t0.Add(mdi100 + 100*time.Millisecond),
	}, out)

	now := t0.Add(mdi100 + 10*time.Millisecond)
	p := advert(t, cfg, stranger, 200)
	in.Receive(now, p)
	checkState(t, in, vrrp.Master)

	p = advert(t, cfg, higher, 200)
	p.TTL = 61
	in.Receive(now, p)
	checkState(t, in, vrrp.Backup)
	if diff := cmp.Diff(map[packet.Reason]uint64{vrrp.DropUnknownPeer: 1}, in.Status().Stats.Drops); diff != "" {
		t.Errorf("drops (-want +got):\n%s", diff)
	}
}

// RFC 5798 §5.2.9: in IPv6 adverts the first address is the virtual router's link-local one;
// without a configured one the engine puts the address derived from the virtual MAC (RFC 5798 §7.3)
// first. A configured link-local VIP is sent as is.
func TestIPv6AdvertLinkLocalFirst(t *testing.T) {
	cfg := config6()
	in, tm := startMaster(t, cfg)
	out := in.Tick(tm.Add(100 * time.Millisecond))
	ll := netip.MustParseAddr("fe80::200:5eff:fe00:233") // VRID 51 = 0x33
	checkOut(t, cfg, summary{
		Sent: []sent{{Dst: packet.MulticastIPv6, Prio: 100, Interval: cfg.Interval, Addrs: []netip.Addr{ll, vip6.Addr()}}},
		Next: tm.Add(200 * time.Millisecond),
	}, out)
	// The link-local the engine adds is not a VIP: it is neither bound nor announced.
	in = startBackup(t, cfg)
	out = in.Tick(t0.Add(mdi100))
	if diff := cmp.Diff([]netip.Prefix{vip6}, out.Bind, cmpOpts...); diff != "" {
		t.Errorf("bind (-want +got):\n%s", diff)
	}

	own := netip.MustParsePrefix("fe80::1:1/64")
	cfg = with(config6(), func(c *vrrp.Config) { c.Addresses = []netip.Prefix{own, vip6} })
	in, tm = startMaster(t, cfg)
	out = in.Tick(tm.Add(100 * time.Millisecond))
	checkOut(t, cfg, summary{
		Sent: []sent{{Dst: packet.MulticastIPv6, Prio: 100, Interval: cfg.Interval, Addrs: []netip.Addr{own.Addr(), vip6.Addr()}}},
		Next: tm.Add(200 * time.Millisecond),
	}, out)

	// And a peer's IPv6 advert makes a Master step down.
	in.Receive(tm.Add(110*time.Millisecond), advert(t, cfg, peer6, 200))
	checkState(t, in, vrrp.Backup)
}

// RFC 3768 §7.1 (auth) with keepalived's PASS: the password is zero-padded to 8 bytes, so "secret"
// and "secret\x00" are the same; a v2 Master and Backup authenticate each other.
func TestV2PassAuthentication(t *testing.T) {
	cfg := config2()
	in := startBackup(t, cfg)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg, higher, 200, func(a *packet.Advertisement) {
		a.AuthData = [8]byte{'s', 'e', 'c', 'r', 'e', 't', 0, 0}
	}))
	if st := in.Status(); st.Master != higher || st.Stats.AdvertsReceived != 1 {
		t.Errorf("padded password not accepted: %+v", st)
	}
}

// RFC 5798 §7.1 and RFC 3768 §7.1: every packet a receiver MUST discard is dropped, counted by its
// reason, and changes nothing: not the state, not the timers, nothing on the host. Each bad packet
// would otherwise be a higher-priority advert, which a Master would obey.
func TestBadPacketsDropped(t *testing.T) {
	edit := func(t *testing.T, cfg vrrp.Config, e func(p *vrrp.Packet)) vrrp.Packet {
		p := advert(t, cfg, higher, 200)
		p.Data = append([]byte(nil), p.Data...)
		e(&p)
		return p
	}
	recheck := func(t *testing.T, cfg vrrp.Config, e func(b []byte) []byte) vrrp.Packet {
		p := advert(t, cfg, higher, 200)
		p.Data = e(append([]byte(nil), p.Data...))
		return reChecksum(p)
	}
	tests := []struct {
		name   string
		cfg    vrrp.Config
		packet func(t *testing.T, cfg vrrp.Config) vrrp.Packet
		want   packet.Reason
	}{
		// RFC 5798 §7.1: "MUST verify that the IP TTL is 255" (multicast).
		{"TTL 254 multicast", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return edit(t, c, func(p *vrrp.Packet) { p.TTL = 254 })
		}, vrrp.DropTTL},
		{"hop limit 1 IPv6 multicast", config6(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			p := advert(t, c, peer6, 200)
			p.TTL = 1
			return p
		}, vrrp.DropTTL},
		// RFC 5798 §7.1: the complete packet.
		{"too short", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return edit(t, c, func(p *vrrp.Packet) { p.Data = p.Data[:6] })
		}, packet.ReasonTooShort},
		// RFC 5798 §7.1: "MUST verify the VRRP version".
		{"version 4", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { b[0] = 0x41; return b })
		}, packet.ReasonVersion},
		{"version 1", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { b[0] = 0x11; return b })
		}, packet.ReasonVersion},
		{"v2 advert to a v3 router", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.Version, a.Interval = 2, time.Second })
		}, vrrp.DropVersionMisfit},
		{"v3 advert to a v2 router", config2(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.Version = 3 })
		}, vrrp.DropVersionMisfit},
		// RFC 5798 §5.2.2: type 1 only.
		{"type 2", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { b[0] = 0x32; return b })
		}, packet.ReasonType},
		{"type 0", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { b[0] = 0x30; return b })
		}, packet.ReasonType},
		// RFC 5798 §7.1: the count must fit the packet.
		{"truncated", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { b[3] = 3; return b })
		}, packet.ReasonLength},
		{"extra trailing bytes", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { return append(b, 1, 2, 3, 4) })
		}, packet.ReasonLength},
		// RFC 5798 §7.1: "MUST verify the VRRP checksum".
		{"bad checksum", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return edit(t, c, func(p *vrrp.Packet) { p.Data[7]++ })
		}, packet.ReasonChecksum},
		{"bad checksum v2", config2(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return edit(t, c, func(p *vrrp.Packet) { p.Data[2]-- })
		}, packet.ReasonChecksum},
		// RFC 5798 §5.2.5.
		{"count 0", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { b[3] = 0; return b[:8] })
		}, packet.ReasonCountZero},
		// RFC 5798 §5.2.7.
		{"v3 interval 0", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return recheck(t, c, func(b []byte) []byte { b[4], b[5] = 0, 0; return b })
		}, packet.ReasonIntervalZero},
		// RFC 5798 §7.1: "MUST verify that the VRID is configured on the receiving interface".
		{"unknown VRID", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.VRID = 52 })
		}, vrrp.DropVRID},
		// RFC 3768 §7.1: "MUST verify that the Adver Interval in the packet is the same as the
		// locally configured for this virtual router".
		{"v2 interval mismatch", config2(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.Interval = 3 * time.Second })
		}, vrrp.DropInterval},
		// RFC 3768 §7.1: "MUST perform authentication specified by Auth Type".
		{"v2 wrong password", config2(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.AuthData = [8]byte{'s', 'e', 'c', 'r', 'e', 'T'} })
		}, vrrp.DropAuth},
		{"v2 password longer", config2(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.AuthData = [8]byte{'s', 'e', 'c', 'r', 'e', 't', '1'} })
		}, vrrp.DropAuth},
		{"v2 no auth to a PASS router", config2(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.AuthType, a.AuthData = packet.AuthNone, [8]byte{} })
		}, vrrp.DropAuthType},
		{"v2 PASS to a no-auth router", with(config2(), func(c *vrrp.Config) { c.Password = nil }), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.AuthType, a.AuthData = packet.AuthPass, [8]byte{'x'} })
		}, vrrp.DropAuthType},
		{"v2 AH", config2(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200, func(a *packet.Advertisement) { a.AuthType = packet.AuthAH })
		}, vrrp.DropAuthType},
		// RFC 5798 §5.2.9: the first IPv6 address is link-local.
		{"IPv6 first address not link-local", config6(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, peer6, 200, func(a *packet.Advertisement) { a.Addresses = []netip.Addr{vip6.Addr()} })
		}, vrrp.DropNotLinkLocal},
		// docs/design.md §4.7: unicast sources must be known peers.
		{"unicast from a non-peer", with(config4(), func(c *vrrp.Config) { c.Peers = []netip.Addr{lower} }), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, higher, 200)
		}, vrrp.DropUnknownPeer},
		// Our own multicast looped back.
		{"own packet", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, c, me, 200)
		}, vrrp.DropOwnPacket},
		{"IPv6 packet to an IPv4 router", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return advert(t, config6(), peer6, 200)
		}, vrrp.DropFamily},
		{"garbage", config4(), func(t *testing.T, c vrrp.Config) vrrp.Packet {
			return vrrp.Packet{Src: higher, Dst: packet.MulticastIPv4, TTL: 255, Data: []byte("not a VRRP packet at all")}
		}, packet.ReasonVersion},
	}
	for _, tc := range tests {
		for _, master := range []bool{false, true} {
			name := tc.name + "/backup"
			if master {
				name = tc.name + "/master"
			}
			t.Run(name, func(t *testing.T) {
				var in *vrrp.Instance
				var next, now time.Time
				if master {
					var tm time.Time
					in, tm = startMaster(t, tc.cfg)
					next, now = in.Tick(tm).Next, tm.Add(time.Millisecond)
				} else {
					in = startBackup(t, tc.cfg)
					next, now = in.Tick(t0).Next, t0.Add(time.Millisecond)
				}
				before := in.Status()
				out := in.Receive(now, tc.packet(t, tc.cfg))
				checkOut(t, tc.cfg, summary{Next: next}, out)
				after := in.Status()
				if diff := cmp.Diff(map[packet.Reason]uint64{tc.want: 1}, after.Stats.Drops); diff != "" {
					t.Errorf("drops (-want +got):\n%s", diff)
				}
				if after.State != before.State || after.Master != before.Master || after.Stats.AdvertsReceived != 0 {
					t.Errorf("a dropped packet changed the instance: before %+v after %+v", before, after)
				}
			})
		}
	}
}

// RFC 5798 §7.1's TTL rule is for multicast; a unicast advert with a TTL below 255 is accepted
// (docs/design.md §4.5).
func TestUnicastTTLRelaxed(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Peers = []netip.Addr{higher} })
	in := startBackup(t, cfg)
	p := advert(t, cfg, higher, 200)
	p.TTL = 254
	now := t0.Add(time.Millisecond)
	checkOut(t, cfg, summary{Next: now.Add(mdi100)}, in.Receive(now, p))
	if st := in.Status(); len(st.Stats.Drops) != 0 || st.Stats.AdvertsReceived != 1 {
		t.Errorf("unicast TTL 254: %+v", st.Stats)
	}
}

// RFC 5798 §7.1 and RFC 3768 §7.1 ("SHOULD log the event"): drops are counted per reason, every
// time; only the log is rate-limited.
func TestDropCounting(t *testing.T) {
	cfg := config4()
	in := startBackup(t, cfg)
	bad := advert(t, cfg, higher, 200)
	bad.TTL = 1
	for i := range 25 {
		in.Receive(t0.Add(time.Duration(i)*time.Second), bad)
	}
	in.Receive(t0, advert(t, cfg, higher, 200, func(a *packet.Advertisement) { a.VRID = 9 }))
	want := map[packet.Reason]uint64{vrrp.DropTTL: 25, vrrp.DropVRID: 1}
	if diff := cmp.Diff(want, in.Status().Stats.Drops); diff != "" {
		t.Errorf("drops (-want +got):\n%s", diff)
	}
	// Status returns a copy.
	in.Status().Stats.Drops[vrrp.DropTTL] = 0
	if got := in.Status().Stats.Drops[vrrp.DropTTL]; got != 25 {
		t.Errorf("Status shares its Drops map: %d", got)
	}
}

// RFC 5798 §5.2 and RFC 3768 §5.3 field ranges: New validates the config and starts nothing.
func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		edit func(*vrrp.Config)
	}{
		{"VRID 0", func(c *vrrp.Config) { c.VRID = 0 }},
		{"version 4", func(c *vrrp.Config) { c.Version = 4 }},
		{"priority 0", func(c *vrrp.Config) { c.Priority = 0 }},
		{"no addresses", func(c *vrrp.Config) { c.Addresses = nil }},
		{"no primary", func(c *vrrp.Config) { c.Primary = netip.Addr{} }},
		{"mixed families", func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip, vip6} }},
		{"peer of the other family", func(c *vrrp.Config) { c.Peers = []netip.Addr{peer6} }},
		{"v3 interval 5ms", func(c *vrrp.Config) { c.Interval = 5 * time.Millisecond }},
		{"v3 interval 41s", func(c *vrrp.Config) { c.Interval = 41 * time.Second }},
		{"v2 interval 1.5s", func(c *vrrp.Config) { c.Version, c.Interval = 2, 1500*time.Millisecond }},
		{"v2 over IPv6", func(c *vrrp.Config) {
			c.Version, c.Interval, c.Primary, c.Addresses = 2, time.Second, me6, []netip.Prefix{vip6}
		}},
		{"v3 password", func(c *vrrp.Config) { c.Password = []byte("x") }},
		{"v2 password too long", func(c *vrrp.Config) { c.Version, c.Interval, c.Password = 2, time.Second, []byte("123456789") }},
		{"negative delay", func(c *vrrp.Config) { c.PreemptDelay = -time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := vrrp.New(with(config4(), tc.edit), nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
	// The instance keeps its own copy of the config.
	cfg := config4()
	in := mustNew(t, cfg)
	cfg.Addresses[0] = vip2
	if got := in.Config().Addresses[0]; got != vip {
		t.Errorf("instance config aliased the caller's slice: %s", got)
	}
}

// A new base priority on a running Master is advertised at once (RFC 5798 §6.4.3: the Master
// advertises its priority) and reported as the master's priority.
func TestReconfigurePriorityOnMaster(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	next := with(cfg, func(c *vrrp.Config) { c.Priority = 90 })
	now := tm.Add(10 * time.Millisecond)
	out, err := in.Reconfigure(now, next)
	if err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	checkOut(t, next, summary{
		Sent: []sent{advertOf(next, packet.MulticastIPv4, 90)},
		Next: now.Add(100 * time.Millisecond),
	}, out)
	if st := in.Status(); st.Priority != 90 || st.MasterPriority != 90 || st.State != vrrp.Master {
		t.Errorf("status %s priority %d master priority %d, want Master 90 90", st.State, st.Priority, st.MasterPriority)
	}
}

// Beyond the RFC (fast handover): in Kubernetes mode an IPv6 router's members are the nodes'
// global addresses while the tie-break of RFC 5798 §6.4.3 compares the link-local sources, so a
// member of equal priority cannot be known to lose the tie. Two equal backups that both
// assumed they win would both take over at once on the master's priority-0 advert.
func TestFastHandoverEqualPriorityUnknownTieBreak(t *testing.T) {
	cfg := with(config6(), func(c *vrrp.Config) {
		c.MembersComplete = true
		c.Members = []vrrp.Member{
			{Addr: netip.MustParseAddr("2001:db8::12"), MaxPriority: 100}, // the master's node
			{Addr: netip.MustParseAddr("2001:db8::13"), MaxPriority: 100}, // another backup
		}
	})
	in := startBackup(t, cfg)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg, netip.MustParseAddr("fe80::12"), 100))
	in.Receive(t0.Add(2*time.Millisecond), advert(t, cfg, netip.MustParseAddr("fe80::12"), 0))
	checkState(t, in, vrrp.Backup)
}

// RFC 5798 §7.1 ("MUST verify that the IPvX TTL/Hop Limit is 255"): a multicast instance holds
// every advert to the rule, also one sent to its own unicast address. An off-link attacker who
// unicasts priority-254 adverts with TTL 64 to each node would otherwise keep the MASTER
// stepping down and no node holding the VIP.
func TestMulticastOffLinkUnicastAdvertDropped(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  vrrp.Config
		src  netip.Addr
	}{
		{"IPv4 TTL 64", config4(), higher},
		{"IPv6 hop limit 64", config6(), peer6},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, tm := startMaster(t, c.cfg)
			// Built as a unicast advert to our own address (the checksum covers it).
			forged := advert(t, with(c.cfg, func(x *vrrp.Config) { x.Peers = []netip.Addr{c.src} }), c.src, 254)
			if forged.Dst != c.cfg.Primary {
				t.Fatalf("forged advert goes to %s, want our address %s", forged.Dst, c.cfg.Primary)
			}
			forged.TTL = 64
			for i := range 10 {
				in.Receive(tm.Add(time.Duration(i)*10*time.Millisecond), forged)
			}
			checkState(t, in, vrrp.Master)
			if got := in.Status().Stats.Drops[vrrp.DropTTL]; got != 10 {
				t.Errorf("bad_ttl drops %d, want 10", got)
			}
			// The same advert with TTL 255 is on-link and takes part.
			forged.TTL = 255
			in.Receive(tm.Add(200*time.Millisecond), forged)
			checkState(t, in, vrrp.Backup)
		})
	}
}

// The unicast relaxation is for listed peers only: a non-peer sending with TTL 64 is dropped
// (as unknown_peer) and changes nothing.
func TestUnicastTTLRelaxedOnlyForPeers(t *testing.T) {
	stranger := netip.MustParseAddr("192.168.1.99")
	cfg := with(config4(), func(c *vrrp.Config) { c.Peers = []netip.Addr{lower} })
	in, tm := startMaster(t, cfg)
	p := advert(t, cfg, stranger, 254)
	p.TTL = 64
	in.Receive(tm.Add(time.Millisecond), p)
	checkState(t, in, vrrp.Master)
	if got := in.Status().Stats.Drops[vrrp.DropUnknownPeer]; got != 1 {
		t.Errorf("unknown_peer drops %d, want 1", got)
	}
}

// RFC 5798 §6.4.2 discards a lower-priority advert. The immediate takeover beyond the RFC is only
// for the master this backup follows lowering its own priority (a probe's weight): a priority-1
// advert from anyone else (a forger, or a second MASTER left over from a split brain) must not
// make this backup a second MASTER, nor change whom it follows.
func TestBackupIgnoresLowerPriorityFromOthers(t *testing.T) {
	stranger := netip.MustParseAddr("192.168.1.95")
	cfg := config4()
	in := startBackup(t, cfg)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg, higher, 200))
	for i := range 50 {
		out := in.Receive(t0.Add(time.Duration(2+i)*time.Millisecond), advert(t, cfg, stranger, 1))
		if out.Transition != nil {
			t.Fatalf("a priority-1 advert from %s made the backup %s", stranger, out.Transition.To)
		}
	}
	if st := in.Status(); st.State != vrrp.Backup || st.Master != higher || st.MasterPriority != 200 {
		t.Fatalf("after the forged adverts: %s following %s/%d, want Backup following %s/200", st.State, st.Master, st.MasterPriority, higher)
	}
	// Discarded: they do not hold off the Master_Down_Timer either.
	out := in.Tick(t0.Add(time.Millisecond + mdi100))
	if out.Transition == nil || out.Transition.To != vrrp.Master {
		t.Fatalf("the followed master went silent, yet no takeover: %+v", out.Transition)
	}
	// The followed master lowering its priority is taken over from at once.
	in = startBackup(t, cfg)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg, higher, 200))
	out = in.Receive(t0.Add(2*time.Millisecond), advert(t, cfg, higher, 50))
	if out.Transition == nil || out.Transition.To != vrrp.Master || out.Transition.Reason != vrrp.ReasonPreempting {
		t.Fatalf("the followed master lowered to 50: %+v, want Master (Preempting)", out.Transition)
	}
}

// RFC 5798 §6.4.2: without preemption every advert, a lower-priority one included, resets the
// Master_Down_Timer: a non-preempting backup does not take over from a live lower master that
// is not the one it followed before.
func TestNoPreemptBackupFollowsLowerMaster(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Priority, c.Preempt = 200, false })
	in := startBackup(t, cfg)
	in.Receive(t0.Add(time.Millisecond), advert(t, cfg, higher, 100))
	other := netip.MustParseAddr("192.168.1.13")
	for i := range 20 {
		at := t0.Add(time.Duration(2+i) * 100 * time.Millisecond)
		if out := in.Receive(at, advert(t, cfg, other, 50)); out.Transition != nil {
			t.Fatalf("non-preempting backup went %s on a live lower master", out.Transition.To)
		}
		if out := in.Tick(at); out.Transition != nil {
			t.Fatalf("non-preempting backup went %s while a master advertised", out.Transition.To)
		}
	}
}

// A MASTER answers another master (a lower-priority or priority-0 advert) at once, but at most
// once per advert interval: a flood of forged adverts is not answered packet for packet, nor
// turned into a storm of gratuitous ARPs.
func TestMasterAnswersOtherMasterOncePerInterval(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	sent, announced := 0, 0
	for i := range 100 { // 100 forged adverts within 50 ms
		out := in.Receive(tm.Add(time.Duration(i)*500*time.Microsecond), advert(t, cfg, netip.MustParseAddr("192.168.1.95"), 1))
		sent += len(out.Send)
		if len(out.Announce) > 0 {
			announced++
		}
	}
	if sent != 1 || announced != 1 {
		t.Errorf("answered %d adverts and %d announcements for 100 within 50ms, want 1 and 1", sent, announced)
	}
	// A real second master, heard after the interval, is answered again.
	out := in.Receive(tm.Add(150*time.Millisecond), advert(t, cfg, lower, 50))
	if len(out.Send) != 1 || len(out.Announce) == 0 {
		t.Errorf("after an interval: sent %d, announced %v; want an answer", len(out.Send), out.Announce)
	}
}

// Two backups took over at once; the MASTER answered the other's first advert, and the other
// then stepped down (its step-down advert comes within the same interval, when no answer is
// due). The other's gratuitous ARPs may have reached the LAN after this MASTER's answer, so
// neighbours would send to it until the next announcement (seconds): the MASTER announces
// once more when the interval since its answer is up, and only once, however many adverts
// came meanwhile.
func TestMasterAnnouncesAgainAfterAnswering(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	if out := in.Receive(tm, advert(t, cfg, lower, 50)); len(out.Announce) == 0 {
		t.Fatalf("first advert of another master: no announcement")
	}
	for i := 1; i <= 20; i++ {
		if out := in.Receive(tm.Add(time.Duration(i)*time.Millisecond), advert(t, cfg, lower, 49)); len(out.Announce) != 0 {
			t.Fatalf("advert %d within the interval announced at once", i)
		}
	}
	announced := 0
	for at := tm.Add(time.Millisecond); at.Before(tm.Add(cfg.Interval + 50*time.Millisecond)); at = at.Add(time.Millisecond) {
		if out := in.Tick(at); len(out.Announce) > 0 {
			announced++
			if at.Before(tm.Add(cfg.Interval)) {
				t.Errorf("announced again at +%v, before the interval (%v) was up", at.Sub(tm), cfg.Interval)
			}
		}
	}
	if announced != 1 {
		t.Errorf("announced %d times after the answer's interval, want 1", announced)
	}
}

// Under a flood of another master's adverts, with the MASTER's timers running between them,
// the MASTER announces at most once per interval: the announcement made for the adverts heard
// within the last interval counts as the answer of the next.
func TestMasterAnnouncesOncePerIntervalUnderFlood(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	announced := 0
	for i := range 2000 { // 1 s of adverts every 0.5 ms, each after a tick at the same instant
		at := tm.Add(time.Duration(i) * 500 * time.Microsecond)
		if out := in.Tick(at); len(out.Announce) > 0 {
			announced++
		}
		if out := in.Receive(at, advert(t, cfg, lower, 1)); len(out.Announce) > 0 {
			announced++
		}
	}
	if limit := int(time.Second/cfg.Interval) + 1; announced > limit {
		t.Errorf("%d announcements in 1 s of a flood at a %v interval, want at most %d", announced, cfg.Interval, limit)
	}
}
