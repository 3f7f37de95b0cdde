package controllers

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// The module does not require prometheus/client_golang's testutil (its diff dependency is not
// in go.mod), so the tests scrape through a pedantic registry, which also checks every metric
// against the Descs that Describe announced.

type family struct {
	typ, help string
	// series: `label="value",...` (sorted by label name) -> value
	series map[string]float64
}

func scrape(t *testing.T, c prometheus.Collector) map[string]family {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]family{}
	for _, mf := range mfs {
		f := family{typ: mf.GetType().String(), help: mf.GetHelp(), series: map[string]float64{}}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := strings.Join(labels, ",")
			if _, dup := f.series[key]; dup {
				t.Errorf("%s{%s} twice", mf.GetName(), key)
			}
			switch {
			case m.GetCounter() != nil:
				f.series[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				f.series[key] = m.GetGauge().GetValue()
			}
		}
		out[mf.GetName()] = f
	}
	return out
}

func TestCollector(t *testing.T) {
	fa := newFakeAgent()
	fa.statuses = []agent.Status{
		{
			Status: vrrp.Status{Name: "haproxy", State: vrrp.Master, Priority: 90, Stats: vrrp.Stats{
				AdvertsSent: 1200, AdvertsReceived: 3, Transitions: 2,
				Drops: map[packet.Reason]uint64{packet.ReasonChecksum: 4, "auth_failed": 1},
			}},
			Probes: []agent.ProbeStatus{
				{Name: "haproxy", Known: true, Healthy: false},
				{Name: "api", Known: true, Healthy: true},
				{Name: "late"}, // not checked yet: absent
			},
		},
		{Status: vrrp.Status{Name: "dns", State: vrrp.Backup, Priority: 100, Stats: vrrp.Stats{AdvertsReceived: 50, Transitions: 1}}},
	}
	fa.transitions = map[agent.TransitionKey]uint64{
		{VIP: "haproxy", State: vrrp.Backup, Reason: vrrp.ReasonStarted}:    1,
		{VIP: "haproxy", State: vrrp.Master, Reason: vrrp.ReasonMasterDown}: 1,
		{VIP: "dns", State: vrrp.Backup, Reason: vrrp.ReasonStarted}:        1,
	}
	fa.lost = map[string]uint64{"events": 3}
	c := &Collector{Agent: fa, Node: "lb1", Notify: droppedNotify(2)}

	got := scrape(t, c)
	want := map[string]family{
		"kube_vrrp_state": {typ: "GAUGE", series: map[string]float64{
			`node="lb1",state="Initialize",vip="haproxy"`: 0, `node="lb1",state="Backup",vip="haproxy"`: 0,
			`node="lb1",state="Master",vip="haproxy"`: 1, `node="lb1",state="Fault",vip="haproxy"`: 0,
			`node="lb1",state="Initialize",vip="dns"`: 0, `node="lb1",state="Backup",vip="dns"`: 1,
			`node="lb1",state="Master",vip="dns"`: 0, `node="lb1",state="Fault",vip="dns"`: 0,
		}},
		"kube_vrrp_priority": {typ: "GAUGE", series: map[string]float64{
			`node="lb1",vip="haproxy"`: 90, `node="lb1",vip="dns"`: 100,
		}},
		"kube_vrrp_transitions_total": {typ: "COUNTER", series: map[string]float64{
			`node="lb1",reason="Started",state="Backup",vip="haproxy"`:         1,
			`node="lb1",reason="MasterDownTimer",state="Master",vip="haproxy"`: 1,
			`node="lb1",reason="Started",state="Backup",vip="dns"`:             1,
		}},
		"kube_vrrp_events_lost_total": {typ: "COUNTER", series: map[string]float64{
			`consumer="events",node="lb1"`: 3,
		}},
		"kube_vrrp_adverts_sent_total": {typ: "COUNTER", series: map[string]float64{
			`node="lb1",vip="haproxy"`: 1200, `node="lb1",vip="dns"`: 0,
		}},
		"kube_vrrp_adverts_received_total": {typ: "COUNTER", series: map[string]float64{
			`node="lb1",vip="haproxy"`: 3, `node="lb1",vip="dns"`: 50,
		}},
		"kube_vrrp_packets_dropped_total": {typ: "COUNTER", series: map[string]float64{
			`node="lb1",reason="bad_checksum",vip="haproxy"`: 4, `node="lb1",reason="auth_failed",vip="haproxy"`: 1,
		}},
		"kube_vrrp_notify_dropped_total": {typ: "COUNTER", series: map[string]float64{`node="lb1"`: 2}},
		// The probe not checked yet is absent.
		"kube_vrrp_probe_healthy": {typ: "GAUGE", series: map[string]float64{
			`node="lb1",probe="haproxy",vip="haproxy"`: 0, `node="lb1",probe="api",vip="haproxy"`: 1,
		}},
	}
	// Help texts are checked for presence, not wording.
	name := regexp.MustCompile(`^kube_vrrp_[a-z]+(_[a-z]+)*$`)
	for n, f := range got {
		if f.help == "" {
			t.Errorf("%s: no help", n)
		}
		if !name.MatchString(n) {
			t.Errorf("%s: not a kube_vrrp_snake_case name", n)
		}
		if (f.typ == "COUNTER") != strings.HasSuffix(n, "_total") {
			t.Errorf("%s is a %s: counters, and only counters, end in _total", n, f.typ)
		}
		f.help = ""
		got[n] = f
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(family{})); d != "" {
		t.Errorf("metrics (-want +got):\n%s", d)
	}

	// The values are read at scrape time: nothing is kept for an instance that went away.
	fa.mu.Lock()
	fa.statuses = fa.statuses[1:]
	fa.statuses[0].State = vrrp.Master
	// The agent forgets a removed instance's transition counters (agent.EventRemoved).
	for k := range fa.transitions {
		if k.VIP == "haproxy" {
			delete(fa.transitions, k)
		}
	}
	fa.lost = nil
	fa.mu.Unlock()
	c.Notify = nil // exec disabled: no notify runner, no series
	got = scrape(t, c)
	if v := got["kube_vrrp_state"].series[`node="lb1",state="Master",vip="dns"`]; v != 1 {
		t.Errorf("dns Master after the change: %v", v)
	}
	var n int
	for name, f := range got {
		for k := range f.series {
			n++
			if strings.Contains(k, "haproxy") {
				t.Errorf("%s{%s} after haproxy went away", name, k)
			}
		}
	}
	if n != 8 {
		t.Errorf("after haproxy went away: %d series, want 8 (dns: 4 states, priority, 2 counters, 1 transition counter)", n)
	}

	// No instance: no series, and Describe still announces every family.
	fa.mu.Lock()
	fa.statuses, fa.transitions = nil, nil
	fa.mu.Unlock()
	if got := scrape(t, c); len(got) != 0 {
		t.Errorf("no instance: %d families", len(got))
	}
	ch := make(chan *prometheus.Desc, 16)
	c.Describe(ch)
	close(ch)
	if len(ch) != 9 {
		t.Errorf("Describe: %d Descs, want 9", len(ch))
	}
}

// droppedNotify is the notify runner's Dropped.
type droppedNotify uint64

func (d droppedNotify) Dropped() uint64 { return uint64(d) }
