package vrrp_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// The link-state Fault (Instance.SetLinkUp) is keepalived's FAULT: RFC 5798 §6.4 has no Fault
// state, and keepalived puts an instance whose interface loses carrier or is set down in FAULT,
// releasing its addresses, and starts it again as BACKUP when the interface comes back.

// A Master whose link goes down resigns as SetFault does: priority 0 adverts (RFC 5798 §6.4.3
// Shutdown) and its addresses removed. In Fault it runs no timer and ignores adverts; when the
// link comes back it starts again as Backup (RFC 5798 §6.4.1 after Startup) with a fresh
// Master_Down_Timer, and takes over only when that expires.
func TestLinkDownMaster(t *testing.T) {
	cfg := config4()
	in, tm := startMaster(t, cfg)
	now := tm.Add(20 * time.Millisecond)
	zero := advertOf(cfg, packet.MulticastIPv4, 0)
	checkOut(t, cfg, summary{
		Sent:       []sent{zero, zero, zero},
		Unbind:     []netip.Prefix{vip},
		Transition: "Master->Fault InterfaceDown",
	}, in.SetLinkUp(now, false))
	st := in.Status()
	if st.State != vrrp.Fault || st.Reason != vrrp.ReasonInterfaceDown || st.Master.IsValid() {
		t.Errorf("status %s %s master %s, want Fault InterfaceDown and no master", st.State, st.Reason, st.Master)
	}
	checkOut(t, cfg, summary{}, in.Tick(now.Add(time.Hour)))
	checkOut(t, cfg, summary{}, in.Receive(now.Add(time.Second), advert(t, cfg, higher, 50)))
	checkOut(t, cfg, summary{}, in.SetLinkUp(now.Add(time.Second), false))

	up := now.Add(2 * time.Second)
	checkOut(t, cfg, summary{Transition: "Fault->Backup InterfaceUp", Next: up.Add(mdi100)}, in.SetLinkUp(up, true))
	// Repeated reports change nothing and keep the timer.
	checkOut(t, cfg, summary{Next: up.Add(mdi100)}, in.SetLinkUp(up.Add(time.Millisecond), true))
	out := in.Tick(up.Add(mdi100))
	checkState(t, in, vrrp.Master)
	if out.Transition == nil || out.Transition.Reason != vrrp.ReasonMasterDown {
		t.Errorf("transition %+v, want to Master on the Master_Down_Timer", out.Transition)
	}
}

// keepalived FAULT from Backup: a Backup never advertises (RFC 5798 §6.4.2), so it leaves for
// Fault silently and stops its Master_Down_Timer.
func TestLinkDownBackup(t *testing.T) {
	cfg := config4()
	in := startBackup(t, cfg)
	now := t0.Add(100 * time.Millisecond)
	checkOut(t, cfg, summary{Transition: "Backup->Fault InterfaceDown"}, in.SetLinkUp(now, false))
	up := now.Add(time.Second)
	checkOut(t, cfg, summary{Transition: "Fault->Backup InterfaceUp", Next: up.Add(mdi100)}, in.SetLinkUp(up, true))
}

// keepalived starts an instance whose interface is down in FAULT; Startup (RFC 5798 §6.4.1)
// happens when the interface comes up. Reported before Start, the link state is only recorded.
func TestLinkDownBeforeStart(t *testing.T) {
	cfg := config4()
	in := mustNew(t, cfg)
	checkOut(t, cfg, summary{}, in.SetLinkUp(t0, true)) // the link is assumed up
	checkOut(t, cfg, summary{}, in.SetLinkUp(t0, false))
	checkState(t, in, vrrp.Initialize)
	checkOut(t, cfg, summary{Transition: "Initialize->Fault InterfaceDown"}, in.Start(t0))
	up := t0.Add(time.Second)
	checkOut(t, cfg, summary{Transition: "Fault->Backup InterfaceUp", Next: up.Add(mdi100)}, in.SetLinkUp(up, true))

	// Down and up again before Start: Startup as usual.
	in = mustNew(t, cfg)
	in.SetLinkUp(t0, false)
	in.SetLinkUp(t0, true)
	checkOut(t, cfg, summary{Transition: "Initialize->Backup Started", Next: t0.Add(mdi100)}, in.Start(t0))
}

// RFC 5798 §6.4.1: the address owner (priority 255) goes straight to Master at Startup, and so
// when its link comes back; it still resigns when its link goes down.
func TestLinkDownOwner(t *testing.T) {
	cfg := with(config4(), func(c *vrrp.Config) { c.Priority = 255 })
	in := mustNew(t, cfg)
	in.Start(t0)
	checkState(t, in, vrrp.Master)
	down := t0.Add(time.Second)
	zero := advertOf(cfg, packet.MulticastIPv4, 0)
	checkOut(t, cfg, summary{
		Sent: []sent{zero, zero, zero}, Unbind: []netip.Prefix{vip}, Transition: "Master->Fault InterfaceDown",
	}, in.SetLinkUp(down, false))
	up := down.Add(time.Second)
	checkOut(t, cfg, summary{
		Sent:       []sent{advertOf(cfg, packet.MulticastIPv4, 255)},
		Bind:       []netip.Prefix{vip},
		Announce:   []netip.Addr{vip.Addr()},
		Transition: "Fault->Master AddressOwner",
		Next:       up.Add(100 * time.Millisecond),
	}, in.SetLinkUp(up, true))
}

// keepalived nopreempt after FAULT: the instance comes back as BACKUP and, RFC 5798 §6.4.2 with
// Preempt_Mode false, stays Backup under the lower-priority master that took over meanwhile.
// With preemption, the hold-off (keepalived's preempt_delay) starts again when the link returns.
func TestLinkUpPreemption(t *testing.T) {
	t.Run("nopreempt", func(t *testing.T) {
		cfg := with(config4(), func(c *vrrp.Config) { c.Preempt, c.Priority = false, 110 })
		in, tm := startMaster(t, cfg)
		in.SetLinkUp(tm.Add(time.Second), false)
		up := tm.Add(10 * time.Second)
		in.SetLinkUp(up, true)
		for i := range 20 {
			now := up.Add(time.Duration(i+1) * 100 * time.Millisecond)
			checkOut(t, cfg, summary{Next: now.Add(300*time.Millisecond + 146*100*time.Millisecond/256)},
				in.Receive(now, advert(t, cfg, lower, 100)))
			checkState(t, in, vrrp.Backup)
		}
		if st := in.Status(); st.Master != lower || st.MasterPriority != 100 {
			t.Errorf("master %s/%d, want %s/100", st.Master, st.MasterPriority, lower)
		}
	})
	t.Run("preempt delay", func(t *testing.T) {
		cfg := with(config4(), func(c *vrrp.Config) { c.PreemptDelay = 5 * time.Second })
		in, tm := startMaster(t, cfg)
		in.SetLinkUp(tm.Add(10*time.Second), false)
		up := tm.Add(20 * time.Second)
		in.SetLinkUp(up, true)
		step := func(now time.Time, want vrrp.State) {
			t.Helper()
			in.Receive(now, advert(t, cfg, higher, 50))
			checkState(t, in, want)
		}
		step(up.Add(100*time.Millisecond), vrrp.Backup)
		step(up.Add(5*time.Second-time.Nanosecond), vrrp.Backup)
		step(up.Add(5*time.Second), vrrp.Master)
	})
}

// The two causes of Fault combine (keepalived likewise keeps an instance in FAULT while any of
// its tracked interfaces or scripts is down): the instance is in Fault while the probe fault or
// the link-down fault holds, enters it (resigning as Master) only for the first, and leaves it
// for Backup (RFC 5798 §6.4.1) only when both are clear. While one cause remains, the reason
// says which.
func TestFaultCauseCombinations(t *testing.T) {
	cfg := config4()
	zero := advertOf(cfg, packet.MulticastIPv4, 0)
	resigned := func(tr string) summary {
		return summary{Sent: []sent{zero, zero, zero}, Unbind: []netip.Prefix{vip}, Transition: tr}
	}
	type step struct {
		do         string // "probe", "probe ok", "link down", "link up"
		want       summary
		wantState  vrrp.State
		wantReason string
	}
	// Steps run 1 s apart from the time the router became Master; want.Next, where set, is
	// relative to the step's time (filled in below).
	tests := []struct {
		name  string
		steps []step
	}{
		{"probe fault, link down, probe clears, link up", []step{
			{"probe", resigned("Master->Fault ProbeFailed"), vrrp.Fault, vrrp.ReasonProbeFailed},
			{"link down", summary{}, vrrp.Fault, vrrp.ReasonProbeFailed},
			{"probe ok", summary{}, vrrp.Fault, vrrp.ReasonInterfaceDown},
			{"link up", summary{Transition: "Fault->Backup InterfaceUp", Next: t0.Add(mdi100)}, vrrp.Backup, vrrp.ReasonInterfaceUp},
		}},
		{"link down, probe fault, link up, probe clears", []step{
			{"link down", resigned("Master->Fault InterfaceDown"), vrrp.Fault, vrrp.ReasonInterfaceDown},
			{"probe", summary{}, vrrp.Fault, vrrp.ReasonInterfaceDown},
			{"link up", summary{}, vrrp.Fault, vrrp.ReasonProbeFailed},
			{"probe ok", summary{Transition: "Fault->Backup ProbeRecovered", Next: t0.Add(mdi100)}, vrrp.Backup, vrrp.ReasonProbeRecovered},
		}},
		{"both, cleared in the order they came", []step{
			{"probe", resigned("Master->Fault ProbeFailed"), vrrp.Fault, vrrp.ReasonProbeFailed},
			{"link down", summary{}, vrrp.Fault, vrrp.ReasonProbeFailed},
			{"link up", summary{}, vrrp.Fault, vrrp.ReasonProbeFailed},
			{"probe ok", summary{Transition: "Fault->Backup ProbeRecovered", Next: t0.Add(mdi100)}, vrrp.Backup, vrrp.ReasonProbeRecovered},
		}},
		{"one cause at a time", []step{
			{"link down", resigned("Master->Fault InterfaceDown"), vrrp.Fault, vrrp.ReasonInterfaceDown},
			{"link up", summary{Transition: "Fault->Backup InterfaceUp", Next: t0.Add(mdi100)}, vrrp.Backup, vrrp.ReasonInterfaceUp},
			{"probe", summary{Transition: "Backup->Fault ProbeFailed"}, vrrp.Fault, vrrp.ReasonProbeFailed},
			{"probe ok", summary{Transition: "Fault->Backup ProbeRecovered", Next: t0.Add(mdi100)}, vrrp.Backup, vrrp.ReasonProbeRecovered},
		}},
		{"clearing a cause that is not set changes nothing", []step{
			{"link down", resigned("Master->Fault InterfaceDown"), vrrp.Fault, vrrp.ReasonInterfaceDown},
			{"probe ok", summary{}, vrrp.Fault, vrrp.ReasonInterfaceDown},
			{"link up", summary{Transition: "Fault->Backup InterfaceUp", Next: t0.Add(mdi100)}, vrrp.Backup, vrrp.ReasonInterfaceUp},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, tm := startMaster(t, cfg)
			for i, s := range tc.steps {
				now := tm.Add(time.Duration(i+1) * time.Second)
				var out vrrp.Output
				switch s.do {
				case "probe":
					out = in.SetHealth(now, failing)
				case "probe ok":
					out = in.SetHealth(now, healthy)
				case "link down":
					out = in.SetLinkUp(now, false)
				case "link up":
					out = in.SetLinkUp(now, true)
				default:
					t.Fatalf("unknown step %q", s.do)
				}
				want := s.want
				if !want.Next.IsZero() {
					want.Next = now.Add(want.Next.Sub(t0))
				}
				t.Run(fmt.Sprintf("%d %s", i+1, s.do), func(t *testing.T) {
					checkOut(t, cfg, want, out)
					if st := in.Status(); st.State != s.wantState || st.Reason != s.wantReason {
						t.Errorf("status %s %s, want %s %s", st.State, st.Reason, s.wantState, s.wantReason)
					}
				})
			}
		})
	}
}

// Start honours both causes (RFC 5798 §6.4.1 Startup is keepalived's FAULT while either holds)
// and names the link first: nothing else matters while it is down.
func TestStartWithBothFaults(t *testing.T) {
	cfg := config4()
	in := mustNew(t, cfg)
	in.SetHealth(t0, failing)
	in.SetLinkUp(t0, false)
	checkOut(t, cfg, summary{Transition: "Initialize->Fault InterfaceDown"}, in.Start(t0))
	checkOut(t, cfg, summary{}, in.SetLinkUp(t0.Add(time.Second), true))
	if st := in.Status(); st.State != vrrp.Fault || st.Reason != vrrp.ReasonProbeFailed {
		t.Errorf("status %s %s, want Fault ProbeFailed", st.State, st.Reason)
	}
	clear := t0.Add(2 * time.Second)
	checkOut(t, cfg, summary{Transition: "Fault->Backup ProbeRecovered", Next: clear.Add(mdi100)},
		in.SetHealth(clear, healthy))
}

// keepalived FAULT on a LAN: the master's link dies, so even its priority 0 adverts are lost and
// the best backup takes over after its Master_Down_Interval (RFC 5798 §6.4.2). The dead master
// released the VIP at once. When the link returns it comes back as Backup: with Preempt_Mode
// false it stays Backup, with it true it preempts the lower master at its first advert.
func TestSimLinkDownAndBack(t *testing.T) {
	for _, preempt := range []bool{false, true} {
		t.Run(fmt.Sprintf("preempt=%v", preempt), func(t *testing.T) {
			l := newLAN(t, with(config4(), func(c *vrrp.Config) { c.Preempt = preempt }), simLatency, 110, 100)
			a, b := l.nodes[0], l.nodes[1]
			l.start(a, b)
			l.run(time.Second)
			l.requireOnlyMaster(a)

			l.run(37 * time.Millisecond)
			down := l.now
			l.setCut(a, true) // the dead link loses everything, the resignation too
			l.apply(a, a.in.SetLinkUp(l.now, false))
			if a.in.State() != vrrp.Fault || len(a.bound) != 0 {
				t.Fatalf("master with a dead link: %s, bound %v", a.in.State(), a.bound)
			}
			mdiB := 3*b.cfg.Interval + time.Duration(256-int(b.cfg.Priority))*b.cfg.Interval/256
			if _, ok := l.runUntil(mdiB, l.onlyMaster(b)); !ok {
				t.Fatalf("no takeover within Master_Down_Interval: %v", names(l.masters(true)))
			}
			if !announcedSince(b, vip.Addr(), down) {
				t.Errorf("%s took over without announcing", b.name)
			}
			l.run(time.Second)
			l.requireOnlyMaster(b)
			if a.in.State() != vrrp.Fault || transitionsSince(a, down.Add(time.Nanosecond)) != 0 {
				t.Fatalf("a moved in Fault: %v", a.log)
			}

			back := l.now
			l.setCut(a, false)
			l.apply(a, a.in.SetLinkUp(l.now, true))
			if a.in.State() != vrrp.Backup {
				t.Fatalf("link back: %s, want Backup", a.in.State())
			}
			if !preempt {
				for range 100 {
					l.run(a.cfg.Interval)
					l.requireOnlyMaster(b)
				}
				return
			}
			at, ok := l.runUntil(time.Second, l.onlyMaster(a))
			if !ok {
				t.Fatalf("no preemption after the link came back: %v", names(l.masters(true)))
			}
			if d := at.Sub(back); d > b.cfg.Interval+2*simLatency {
				t.Errorf("preempted %v after the link came back, want within one interval", d)
			}
			l.run(time.Second)
			l.requireOnlyMaster(a)
		})
	}
}
