package vrrp

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// EventKind says what an Event reports.
type EventKind uint8

// The kinds of events (docs/design.md §3.2). A Router emits the first six; the agent adds
// EventProbe, EventApplied and EventRemoved, and its stream adds EventDropped.
const (
	// EventTransition: the state changed (From, State, Reason; Message says why in words).
	EventTransition EventKind = iota + 1
	// EventPriority: the effective priority changed without a transition (Priority; Reason
	// and Message are the health's).
	EventPriority
	// EventReason: why the instance is in its state changed without a transition (a Fault
	// with two causes losing one, ProbePending -> ProbeFailed), or the probes' word did
	// without changing the priority (Reason, Message).
	EventReason
	// EventHostError: what the host fails to do and retries changed; Message is empty once
	// all is well again.
	EventHostError
	// EventForeign: the set of foreign routers changed (Foreign), at most a few times per
	// ten seconds.
	EventForeign
	// EventPacketDrop: packets were rejected (Drop, Src, Count: the total for that reason),
	// reported at most once per reason every ten seconds.
	EventPacketDrop
	// EventProbe: one probe's result changed (Probe, Healthy, Message).
	EventProbe
	// EventDropped: the subscriber missed Count events, lost because it read too slowly.
	EventDropped
	// EventApplied: the instance was configured, or reconfigured, or could not start; the
	// driver's reason says which (pkg/agent: Applied, Reconfigured, StartFailed with Message
	// why).
	EventApplied
	// EventRemoved: the instance was removed.
	EventRemoved
)

var eventKinds = [...]string{
	EventTransition: "Transition", EventPriority: "Priority", EventReason: "Reason",
	EventHostError: "HostError", EventForeign: "Foreign", EventPacketDrop: "PacketDrop",
	EventProbe: "Probe", EventDropped: "Dropped", EventApplied: "Applied", EventRemoved: "Removed",
}

func (k EventKind) String() string {
	if int(k) < len(eventKinds) && eventKinds[k] != "" {
		return eventKinds[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// MarshalText writes the kind's name.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *EventKind) UnmarshalText(b []byte) error {
	for i, n := range eventKinds {
		if n != "" && n == string(b) {
			*k = EventKind(i)
			return nil
		}
	}
	return fmt.Errorf("vrrp: unknown event kind %q", b)
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for _, c := range []State{Initialize, Backup, Master, Fault} {
		if c.String() == string(b) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("vrrp: unknown state %q", b)
}

// Event is one thing that happened to an instance, as its consumers see it: status writers,
// Events, metrics, logs and `kube-vrrp run --events` (JSON lines of this type). Which fields
// are set depends on Kind; State and Priority are always the instance's after the event.
type Event struct {
	Kind EventKind `json:"kind"`
	// Seq numbers the events of one agent's stream from 1, with no gaps: a consumer that
	// sees a gap has been told how many it missed by an EventDropped.
	Seq uint64    `json:"seq,omitempty"`
	At  time.Time `json:"at"`
	// Instance is the instance's name (the VirtualIP's).
	Instance string `json:"vip,omitempty"`
	From     State  `json:"from"`
	State    State  `json:"state"`
	Priority uint8  `json:"priority"`
	// Master is the router believed MASTER after the event.
	Master netip.Addr `json:"master,omitzero"`
	// Reason is a CamelCase word (for transitions: one of Reasons); Message is human text.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Foreign is the new set of foreign routers (EventForeign).
	Foreign []Foreign `json:"foreign,omitempty"`
	// Drop and Src are the rejected packets' reason and last sender (EventPacketDrop);
	// Count is how many so far (EventPacketDrop) or how many events were lost (EventDropped).
	Drop  packet.Reason `json:"drop,omitempty"`
	Src   netip.Addr    `json:"src,omitzero"`
	Count uint64        `json:"count,omitempty"`
	// Probe and Healthy are a probe's name and new result (EventProbe).
	Probe   string `json:"probe,omitempty"`
	Healthy bool   `json:"healthy,omitempty"`
}
