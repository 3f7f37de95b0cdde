package vrrp_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// A config and the probes' word changed together are one step (docs/design.md §3.5): a
// BACKUP whose new base priority the new weights take back below the master does not preempt,
// a MASTER advertises only the final priority, entering the probe Fault resigns with the
// addresses it holds and binds none of the new ones, leaving it starts as Backup with the new
// config, and a refused config changes neither.
func TestReconfigureHealthIsOneStep(t *testing.T) {
	cfg := config4()
	raised := with(cfg, func(c *vrrp.Config) { c.Priority = 150 })
	now := t0.Add(time.Second)

	// Backup at 100 following a master at 120; the edit: 150 with a probe at -60.
	in := startBackup(t, cfg)
	in.Receive(now, advert(t, cfg, higher, 120))
	out, err := in.ReconfigureHealth(now, raised, vrrp.Health{Adjust: -60, Reason: vrrp.ReasonProbeRecovered})
	if err != nil {
		t.Fatal(err)
	}
	if out.Transition != nil || in.Status().Priority != 90 {
		t.Errorf("backup: transition %+v, priority %d; want none, 90", out.Transition, in.Status().Priority)
	}

	// Master at 100: one advert, at 90.
	in, tm := startMaster(t, cfg)
	out, err = in.ReconfigureHealth(tm, raised, vrrp.Health{Adjust: -60, Reason: vrrp.ReasonProbeRecovered})
	if err != nil {
		t.Fatal(err)
	}
	checkOut(t, raised, summary{Sent: []sent{advertOf(raised, groupDst(raised), 90)}, Next: tm.Add(cfg.Interval)}, out)

	// Master entering the probe Fault while an address is added: it resigns with what it holds.
	in, tm = startMaster(t, cfg)
	more := with(cfg, func(c *vrrp.Config) { c.Addresses = []netip.Prefix{vip, vip2} })
	out, err = in.ReconfigureHealth(tm, more, failing)
	if err != nil {
		t.Fatal(err)
	}
	zero := advertOf(cfg, groupDst(cfg), 0)
	checkOut(t, cfg, summary{Sent: []sent{zero, zero, zero}, Unbind: []netip.Prefix{vip}, Transition: "Master->Fault ProbeFailed"}, out)

	// Leaving it with a new priority: Backup, at the new one, with the new Skew_Time.
	out, err = in.ReconfigureHealth(now, raised, healthy)
	if err != nil {
		t.Fatal(err)
	}
	// 3 * 100 ms + (256 - 150) * 100 ms / 256.
	checkOut(t, raised, summary{Transition: "Fault->Backup ProbeRecovered", Next: now.Add(341406250 * time.Nanosecond)}, out)

	// Refused: nothing changes, the health included.
	other := with(cfg, func(c *vrrp.Config) { c.VRID = 52 })
	if _, err := in.ReconfigureHealth(now, other, failing); !errors.Is(err, vrrp.ErrIncompatible) {
		t.Fatalf("VRID change: %v, want ErrIncompatible", err)
	}
	if st := in.Status(); st.State != vrrp.Backup || st.Health.Fault {
		t.Errorf("after a refused change: %v, health %+v", st.State, st.Health)
	}
}
