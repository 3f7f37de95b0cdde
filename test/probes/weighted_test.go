package probes_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// TestWeightedProbe: a weighted process probe `haproxy` moves the MASTER's effective priority
// below the BACKUP's when HAProxy is SIGKILLed, and the BACKUP preempts at once (it hears the
// MASTER's advert at the new priority, sent at once) instead of waiting for
// Master_Down_Interval. keepalived's semantics:
//
//   - negative: n1 110, n2 100, weight -20 on both: n1 falls to 90 while failing;
//   - positive: n1 100, n2 90, weight +20 on both (the seed-style pair): n1 120 and n2 110
//     while healthy, n1 falls to 100.
//
// The advert interval is 1 s, as keepalived users run it: Master_Down_Interval is then 3.6 s,
// so an immediate preemption and a master-down takeover cannot be mistaken for each other on
// a loaded machine. HAProxy back on n1 raises its priority again and n1 preempts back.
func TestWeightedProbe(t *testing.T) {
	privtest.Require(t)
	const advert = time.Second
	for _, c := range []struct {
		name       string
		prio       map[string]int
		weight     int
		n1, n1Fail int // n1's effective priority while HAProxy runs and once it is dead
		n2         int
	}{
		{"negative", map[string]int{"n1": 110, "n2": 100}, -20, 110, 90, 100},
		{"positive", map[string]int{"n1": 100, "n2": 90}, 20, 120, 100, 110},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := lab.VirtualIP{
				VRID: 51, Version: 3, AdvertInt: advert, Addresses: []netip.Prefix{vip},
				NodePriorities: c.prio,
				Extra:          probes(haproxyProbe(c.weight)),
			}
			h := newHALab(t, spec)
			n1, n2 := h.node(1), h.node(2)
			// RFC 5798 §6.1: Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
			masterDown := 3*advert + time.Duration(256-c.n2)*advert/256
			if tr := transitionsAfter(n1.kv.Proc, time.Time{}, "Master"); len(tr) == 0 || tr[len(tr)-1].Priority != c.n1 {
				t.Fatalf("n1's transitions to Master: %+v, want the last at effective priority %d", tr, c.n1)
			}

			out, err := h.l.MeasureHTTPOutage(t.Context(), web, func() error { n1.hap.Kill(); return nil },
				lab.HTTPOutageOptions{AwaitNode: n2.Name})
			if err != nil {
				t.Fatalf("SIGKILL of HAProxy on n1: %v (%s)", err, out.Result)
			}
			if out.After != n2.Name {
				t.Errorf("served by %s after the crash, want n2 (%s)", out.After, out.Result.Runs())
			}
			if err := waitSole(h.labNodes(), n2.Node, 300*time.Millisecond, settle); err != nil {
				t.Fatal(err)
			}
			tr := transitionsAfter(n2.kv.Proc, out.FaultAt, "Master")
			if len(tr) == 0 {
				t.Fatalf("n2 logged no transition to Master after the kill:\n%s", tail(n2.kv.Proc))
			}
			took := at(tr[0]).Sub(out.FaultAt)
			t.Logf("weight %+d: n1 %d -> %d < n2 %d: n2 %s %v after the kill (Master_Down_Interval %v); %s",
				c.weight, c.n1, c.n1Fail, c.n2, tr[0].Reason, took.Round(time.Millisecond), masterDown.Round(time.Millisecond), out)
			// The takeover is a preemption on the MASTER's lower-priority advert, not the
			// master-down timer: its reason says so, and it comes well before that timer
			// could have fired.
			if tr[0].Reason != "Preempting" {
				t.Errorf("n2 became Master with reason %q, want Preempting", tr[0].Reason)
			}
			if took > masterDown/2 || out.Duration > masterDown/2 {
				t.Errorf("n2 took over %v after the kill (client outage %v), want well before Master_Down_Interval %v",
					took, out.Duration, masterDown)
			}
			if tr[0].Priority != c.n2 {
				t.Errorf("n2 Master at priority %d, want %d", tr[0].Priority, c.n2)
			}
			// n1 is a BACKUP at its lowered priority, not in Fault: a weighted probe only
			// moves the priority.
			if err := lab.WaitKubeVRRPState(n1.kv.Proc, vipName, "Backup", settle); err != nil {
				t.Fatal(err)
			}
			if b := transitionsAfter(n1.kv.Proc, out.FaultAt, "Backup"); len(b) == 0 || b[0].Priority != c.n1Fail {
				t.Errorf("n1's transitions to Backup after the kill: %+v, want priority %d", b, c.n1Fail)
			}

			// HAProxy back: n1's priority rises above n2's again and n1 preempts back.
			restarted := time.Now()
			n1.hap = n1.ns.StartHAProxy(t, vip.Addr())
			if err := waitSole(h.labNodes(), n1.Node, 300*time.Millisecond, settle); err != nil {
				t.Fatal(err)
			}
			back := transitionsAfter(n1.kv.Proc, restarted, "Master")
			if len(back) == 0 || back[0].Reason != "Preempting" || back[0].Priority != c.n1 {
				t.Errorf("n1's transitions to Master after HAProxy came back: %+v, want Preempting at %d", back, c.n1)
			} else {
				t.Logf("HAProxy back on n1: n1 Preempting at %d, %v later", c.n1, at(back[0]).Sub(restarted).Round(time.Millisecond))
			}
			h.served(n1)
		})
	}
}
