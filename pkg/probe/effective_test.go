package probe

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

func TestWeigh(t *testing.T) {
	p := func(name string, weight int) Spec {
		return Spec{Name: name, Kind: KindFile, Path: "/x", Weight: weight}
	}
	ok := func(adjust int, msg string) vrrp.Health {
		return vrrp.Health{Adjust: adjust, Reason: vrrp.ReasonProbeRecovered, Message: msg}
	}
	fault := func(reason string, adjust int, msg string) vrrp.Health {
		return vrrp.Health{Fault: true, Adjust: adjust, Reason: reason, Message: msg}
	}
	tests := []struct {
		name   string
		probes []Spec
		health map[string]bool
		want   vrrp.Health
	}{
		{"no probes", nil, nil, ok(0, "")},
		{"weight 0 healthy", []Spec{p("haproxy", 0)}, map[string]bool{"haproxy": true}, ok(0, "")},
		{"weight 0 failing is FAULT", []Spec{p("haproxy", 0)}, map[string]bool{"haproxy": false},
			fault(vrrp.ReasonProbeFailed, 0, "probe haproxy failing")},
		{"weight 0 unknown is FAULT, pending", []Spec{p("haproxy", 0)}, map[string]bool{},
			fault(vrrp.ReasonProbePending, 0, "probe haproxy not checked yet")},
		{"one failing and one pending: failed", []Spec{p("a", 0), p("b", 0)}, map[string]bool{"b": false},
			fault(vrrp.ReasonProbeFailed, 0, "probe a not checked yet, probe b failing")},
		{"negative weight healthy", []Spec{p("haproxy", -20)}, map[string]bool{"haproxy": true}, ok(0, "")},
		{"negative weight failing", []Spec{p("haproxy", -20)}, map[string]bool{"haproxy": false},
			ok(-20, "probe haproxy failing (-20)")},
		{"negative weight unknown counts as failing", []Spec{p("haproxy", -20)}, nil,
			ok(-20, "probe haproxy not checked yet (-20)")},
		{"positive weight healthy", []Spec{p("haproxy", 20)}, map[string]bool{"haproxy": true},
			ok(20, "probe haproxy healthy (+20)")},
		{"positive weight failing", []Spec{p("haproxy", 20)}, map[string]bool{"haproxy": false}, ok(0, "")},
		{"positive weight unknown adds nothing", []Spec{p("haproxy", 20)}, nil, ok(0, "")},
		{"weights add up", []Spec{p("a", -20), p("b", -30), p("c", 5)}, map[string]bool{"a": false, "b": false, "c": true},
			ok(-45, "probe a failing (-20), probe b failing (-30), probe c healthy (+5)")},
		{"fault lists only the weight-0 probes", []Spec{p("a", 0), p("b", -20), p("c", 0)},
			map[string]bool{"a": false, "b": false, "c": true},
			fault(vrrp.ReasonProbeFailed, -20, "probe a failing")},
		{"health of unknown names is ignored", []Spec{p("a", -10)}, map[string]bool{"a": true, "zzz": false}, ok(0, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Weigh(tt.probes, tt.health)); diff != "" {
				t.Errorf("Weigh (-want +got):\n%s", diff)
			}
		})
	}
}
