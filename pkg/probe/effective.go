package probe

import (
	"fmt"
	"strings"
)

// OwnerPriority is the priority of the router that owns the virtual addresses (RFC 5798 §5.2.4).
const OwnerPriority = 255

// Effective computes a node's priority from its base priority and the health of its probes,
// as keepalived does with tracked scripts:
//
//   - weight 0: a failing probe puts the node in FAULT (fault is true; it resigns the VIP);
//   - negative weight: added to the priority while the probe fails;
//   - positive weight: added to the priority while the probe succeeds;
//   - the result is clamped to 1..254, except that an owner (base 255) keeps 255 whatever the
//     weights, as keepalived ignores weighted tracking for an address owner. A weight-0
//     probe still faults an owner.
//
// health maps a probe's name to its health; a probe missing from it has not reported yet
// (Runner starts every probe unknown) and counts as failing. That is the safe side for every
// weight: a node does not take the VIP (weight 0), does not outbid a proven master (positive
// weight) and does not keep a priority its probes have not earned (negative weight) before its
// first check has said anything; the first check comes at once and lasts at most its timeout.
//
// prio is the computed priority even when fault is set, for display. reason says what moved
// it from base, e.g. "probe haproxy failing (-20)", or why the node is in FAULT; it is empty
// when every probe is healthy and no weight applies.
func Effective(base uint8, probes []Spec, health map[string]bool) (prio uint8, fault bool, reason string) {
	p := int(base)
	var faults, notes []string
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
		case s.Weight < 0 && !healthy:
			p += s.Weight
			notes = append(notes, fmt.Sprintf("probe %s %s (%d)", s.Name, state, s.Weight))
		case s.Weight > 0 && healthy:
			p += s.Weight
			notes = append(notes, fmt.Sprintf("probe %s healthy (+%d)", s.Name, s.Weight))
		}
	}
	switch {
	case base == OwnerPriority:
		p = OwnerPriority
		if len(notes) > 0 {
			notes = []string{"address owner: weights ignored"}
		}
	case p < 1:
		notes = append(notes, "clamped to 1")
		p = 1
	case p > OwnerPriority-1:
		notes = append(notes, fmt.Sprintf("clamped to %d", OwnerPriority-1))
		p = OwnerPriority - 1
	}
	if len(faults) > 0 {
		return uint8(p), true, "FAULT: " + strings.Join(faults, ", ")
	}
	return uint8(p), false, strings.Join(notes, ", ")
}
