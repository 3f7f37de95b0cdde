package probe

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEffective(t *testing.T) {
	type out struct {
		Prio   uint8
		Fault  bool
		Reason string
	}
	p := func(name string, weight int) Spec {
		return Spec{Name: name, Kind: KindFile, Path: "/x", Weight: weight}
	}
	tests := []struct {
		name   string
		base   uint8
		probes []Spec
		health map[string]bool
		want   out
	}{
		{"no probes", 100, nil, nil, out{100, false, ""}},
		{"weight 0 healthy", 100, []Spec{p("haproxy", 0)}, map[string]bool{"haproxy": true}, out{100, false, ""}},
		{"weight 0 failing is FAULT", 100, []Spec{p("haproxy", 0)}, map[string]bool{"haproxy": false},
			out{100, true, "FAULT: probe haproxy failing"}},
		{"weight 0 unknown is FAULT", 100, []Spec{p("haproxy", 0)}, map[string]bool{},
			out{100, true, "FAULT: probe haproxy not checked yet"}},
		{"negative weight healthy", 110, []Spec{p("haproxy", -20)}, map[string]bool{"haproxy": true}, out{110, false, ""}},
		{"negative weight failing", 110, []Spec{p("haproxy", -20)}, map[string]bool{"haproxy": false},
			out{90, false, "probe haproxy failing (-20)"}},
		{"negative weight unknown counts as failing", 110, []Spec{p("haproxy", -20)}, nil,
			out{90, false, "probe haproxy not checked yet (-20)"}},
		{"positive weight healthy", 100, []Spec{p("haproxy", 20)}, map[string]bool{"haproxy": true},
			out{120, false, "probe haproxy healthy (+20)"}},
		{"positive weight failing", 100, []Spec{p("haproxy", 20)}, map[string]bool{"haproxy": false}, out{100, false, ""}},
		{"positive weight unknown adds nothing", 100, []Spec{p("haproxy", 20)}, nil, out{100, false, ""}},
		{"seed pair 100/90 weight 20: master's probe fails", 100, []Spec{p("haproxy", 20)}, map[string]bool{"haproxy": false},
			out{100, false, ""}},
		{"seed pair 100/90 weight 20: backup healthy outbids", 90, []Spec{p("haproxy", 20)}, map[string]bool{"haproxy": true},
			out{110, false, "probe haproxy healthy (+20)"}},
		{"weights add up", 100, []Spec{p("a", -20), p("b", -30), p("c", 5)}, map[string]bool{"a": false, "b": false, "c": true},
			out{55, false, "probe a failing (-20), probe b failing (-30), probe c healthy (+5)"}},
		{"clamped to 1", 10, []Spec{p("a", -100)}, map[string]bool{"a": false},
			out{1, false, "probe a failing (-100), clamped to 1"}},
		{"clamped to 254", 200, []Spec{p("a", 100)}, map[string]bool{"a": true},
			out{254, false, "probe a healthy (+100), clamped to 254"}},
		{"owner ignores weights", 255, []Spec{p("a", -100)}, map[string]bool{"a": false},
			out{255, false, "address owner: weights ignored"}},
		{"owner healthy", 255, []Spec{p("a", -100)}, map[string]bool{"a": true}, out{255, false, ""}},
		{"owner still faults on weight 0", 255, []Spec{p("a", 0)}, map[string]bool{"a": false},
			out{255, true, "FAULT: probe a failing"}},
		{"fault lists only the weight-0 probes", 100, []Spec{p("a", 0), p("b", -20), p("c", 0)},
			map[string]bool{"a": false, "b": false, "c": true},
			out{80, true, "FAULT: probe a failing"}},
		{"health of unknown names is ignored", 100, []Spec{p("a", -10)}, map[string]bool{"a": true, "zzz": false}, out{100, false, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got out
			got.Prio, got.Fault, got.Reason = Effective(tt.base, tt.probes, tt.health)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Effective(%d) (-want +got):\n%s", tt.base, diff)
			}
		})
	}
}
