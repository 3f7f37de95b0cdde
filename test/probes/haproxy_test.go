package probes_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// keepalivedOutage is what the classic keepalived setup (vrrp_script `pgrep -x haproxy`,
// interval 1, fall 2, weight -20, advert_int 1) costs a client when HAProxy dies.
const keepalivedOutage = 3600 * time.Millisecond

// killBound is the client-observed HTTP outage a HAProxy crash may cost with kube-vrrp's
// event-driven process probe: far below keepalivedOutage, with room for a loaded machine (the
// figure itself is tens of milliseconds; test/bench measures it).
const killBound = time.Second

// TestHAProxyKill: two nodes serve HTTP on the VIP with HAProxy, kube-vrrp on each with a
// process probe `haproxy` of weight 0 (FAULT while it fails). SIGKILL of HAProxy on the
// MASTER moves the address to the BACKUP within killBound of client-observed outage; HAProxy
// back on the first node brings the address back (preempt) or leaves it (preempt: false).
func TestHAProxyKill(t *testing.T) {
	privtest.Require(t)
	for _, preempt := range []bool{true, false} {
		name := "preempt"
		if !preempt {
			name = "no-preempt"
		}
		t.Run(name, func(t *testing.T) {
			spec := lab.VirtualIP{
				VRID: 51, Version: 3, AdvertInt: 100 * time.Millisecond, Addresses: []netip.Prefix{vip},
				NodePriorities: map[string]int{"n1": 110, "n2": 100},
				NoPreempt:      !preempt,
				Extra:          probes(haproxyProbe(0)),
			}
			h := newHALab(t, spec)
			n1, n2 := h.node(1), h.node(2)

			// The crash.
			out, err := h.l.MeasureHTTPOutage(t.Context(), web, func() error { n1.hap.Kill(); return nil },
				lab.HTTPOutageOptions{AwaitNode: n2.Name})
			if err != nil {
				t.Fatalf("SIGKILL of HAProxy on n1: %v (%s)", err, out.Result)
			}
			t.Logf("SIGKILL of HAProxy on the MASTER: %s (keepalived's classic setup: %v)", out, keepalivedOutage)
			if out.Before != n1.Name || out.After != n2.Name {
				t.Errorf("served by %s before and %s after the crash, want n1 then n2 (%s)", out.Before, out.After, out.Result.Runs())
			}
			if out.Duration > killBound {
				t.Errorf("client-observed HTTP outage %v, want under %v (%s)", out.Duration, killBound, out.Result)
			}
			rec, err := waitProbe(n1.kv.Proc, "haproxy", false, out.FaultAt, settle)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("n1's probe failed %v after the kill: %s", rec.Time.Sub(out.FaultAt).Round(time.Millisecond), rec.Reason)
			if err := lab.WaitKubeVRRPState(n1.kv.Proc, vipName, "Fault", settle); err != nil {
				t.Fatal(err)
			}
			if tr := transitionsAfter(n2.kv.Proc, out.FaultAt, "Master"); len(tr) == 0 {
				t.Errorf("n2 logged no transition to Master after the kill:\n%s", tail(n2.kv.Proc))
			} else {
				t.Logf("n2 Master %v after the kill (%s)", at(tr[0]).Sub(out.FaultAt).Round(time.Millisecond), tr[0].Reason)
			}
			if err := waitSole(h.labNodes(), n2.Node, 300*time.Millisecond, settle); err != nil {
				t.Fatal(err)
			}

			// HAProxy back on n1: the process probe finds it at its next rescans (rise 2).
			restarted := time.Now()
			var back lab.HTTPOutage
			if preempt {
				back, err = h.l.MeasureHTTPOutage(t.Context(), web, func() error {
					restarted = time.Now()
					n1.hap = n1.ns.StartHAProxy(t, vip.Addr())
					return nil
				}, lab.HTTPOutageOptions{AwaitNode: n1.Name, Timeout: settle})
				if err != nil {
					t.Fatalf("HAProxy back on n1: %v (%s)", err, back.Result)
				}
				if err := waitSole(h.labNodes(), n1.Node, 300*time.Millisecond, settle); err != nil {
					t.Fatal(err)
				}
				tr := transitionsAfter(n1.kv.Proc, restarted, "Master")
				if len(tr) == 0 {
					t.Fatalf("n1 logged no transition to Master after HAProxy came back:\n%s", tail(n1.kv.Proc))
				}
				t.Logf("HAProxy back on n1: n1 Master again %v later (%s); handback: %s",
					at(tr[0]).Sub(restarted).Round(time.Millisecond), tr[0].Reason, back)
				h.served(n1)
				return
			}
			n1.hap = n1.ns.StartHAProxy(t, vip.Addr())
			if _, err := waitProbe(n1.kv.Proc, "haproxy", true, restarted, settle); err != nil {
				t.Fatal(err)
			}
			if err := lab.WaitKubeVRRPState(n1.kv.Proc, vipName, "Backup", settle); err != nil {
				t.Fatal(err)
			}
			// Without preemption n1 stays BACKUP: the address stays where it is, the client
			// keeps being served by n2, for many advert intervals and probe checks.
			load := h.l.StartHTTPLoad(web, lab.HTTPLoadOptions{})
			stays(t, h.labNodes(), n2.Node, 3*time.Second)
			r := load.Stop()
			if r.Last() != n2.Name || strings.Contains(r.Runs(), n1.Name) {
				t.Errorf("with preempt: false the client is served by %s after HAProxy came back on n1, want n2 only", r.Runs())
			}
			if st := lab.KubeVRRPState(n1.kv.Proc, vipName); st != "Backup" {
				t.Errorf("n1 is %s, want Backup", st)
			}
			t.Logf("preempt: false: HAProxy back on n1, n1 Backup, the address stays on n2 (%s)", r)
		})
	}
}
