package probe

import (
	"fmt"
	"strings"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Weigh turns the health of an instance's probes into the engine's one health input
// (vrrp.Instance.SetHealth), with keepalived's rules for tracked scripts:
//
//   - weight 0: a failing probe puts the node in FAULT (it resigns the VIP);
//   - negative weight: added to the priority while the probe fails;
//   - positive weight: added to the priority while the probe succeeds.
//
// The engine adds Adjust to the configured priority and clamps the result to 1..254; an
// address owner (255) keeps 255 whatever the weights, as keepalived ignores weighted tracking
// for an owner. A weight-0 probe still faults an owner.
//
// health maps a probe's name to its health; a probe missing from it has not reported yet
// (Runner starts every probe unknown) and counts as failing. That is the safe side for every
// weight: a node does not take the VIP (weight 0), does not outbid a proven master (positive
// weight) and does not keep a priority its probes have not earned (negative weight) before its
// first check has said anything; the first check comes at once and lasts at most its timeout.
//
// Reason is ProbeFailed while a weight-0 probe fails, ProbePending while the only weight-0
// probes keeping it in Fault have not been checked yet, and ProbeRecovered otherwise. Message
// says which probes decide it, e.g. "probe haproxy failing (-20)"; empty when every probe is
// healthy and no weight applies.
func Weigh(probes []Spec, health map[string]bool) vrrp.Health {
	var h vrrp.Health
	var faults, notes []string
	failed := false
	for i := range probes {
		s := &probes[i]
		healthy, known := health[s.Name]
		state := "failing"
		if !known {
			state = "not checked yet"
		}
		switch {
		case s.Weight == 0 && !healthy:
			faults = append(faults, fmt.Sprintf("probe %s %s", s.Name, state))
			failed = failed || known
		case s.Weight < 0 && !healthy:
			h.Adjust += s.Weight
			notes = append(notes, fmt.Sprintf("probe %s %s (%d)", s.Name, state, s.Weight))
		case s.Weight > 0 && healthy:
			h.Adjust += s.Weight
			notes = append(notes, fmt.Sprintf("probe %s healthy (+%d)", s.Name, s.Weight))
		}
	}
	switch {
	case len(faults) > 0:
		h.Fault, h.Reason, h.Message = true, vrrp.ReasonProbePending, strings.Join(faults, ", ")
		if failed {
			h.Reason = vrrp.ReasonProbeFailed
		}
	default:
		h.Reason, h.Message = vrrp.ReasonProbeRecovered, strings.Join(notes, ", ")
	}
	return h
}
