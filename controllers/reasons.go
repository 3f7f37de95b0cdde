package controllers

import (
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The reasons kube-vrrp writes to the Kubernetes API: a VirtualIPMember's status.reason, a
// VirtualIP's conditions[].reason and the reason of Events. Each is one CamelCase word (^[A-Z][A-Za-z0-9]*$) from the closed
// sets below, for tools and alerts to match on; the message beside it says the rest in words.
// reasons_test.go checks that every reason the code can produce is listed here.

// Reasons this node reports, in its member (state Fault) and as a Warning Event, for a
// VirtualIP it refuses to run. The member's message says what is wrong and what to change.
const (
	// ReasonInvalidSpec: the spec fails the agent's own validation (an object written before a
	// CRD rule existed), its nodeSelector does not parse, or the PASS password breaks a rule.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonSecretMissing: the PASS Secret, or its key, is missing, or the agent may not get it.
	ReasonSecretMissing = "SecretMissing"
	// ReasonCannotResolve: the spec cannot be turned into this node's configuration (no
	// interface for the addresses, no unicast peer left, ...).
	ReasonCannotResolve = "CannotResolve"
	// ReasonApplyFailed: the agent refused the configuration (e.g. the VRID is already used on
	// the interface by an instance it runs).
	ReasonApplyFailed = "ApplyFailed"
	// ReasonNodeNotVisible: the agent cannot read its own Node (is --node-name right?).
	ReasonNodeNotVisible = "NodeNotVisible"
	// ReasonVRIDConflict: an older VirtualIP runs the same VRID on the same interface and family.
	ReasonVRIDConflict = "VRIDConflict"
	// ReasonAddressConflict: an older VirtualIP claims one of the same addresses.
	ReasonAddressConflict = "AddressConflict"
	// ReasonAddressInUse: a virtual address is a Node's address, or already on the interface
	// without having been added by kube-vrrp.
	ReasonAddressInUse = "AddressInUse"
)

// Reasons of the warnings this node reports, in its member's message and as a Warning Event, for
// a VirtualIP it runs (Warning).
const (
	// ReasonNotifyDisabled: the VirtualIP has spec.notify and exec is disabled on this agent:
	// VRRP runs, its commands do not (docs/design.md §6.6).
	ReasonNotifyDisabled = "NotifyDisabled"
)

// warningReasons are the reasons of Warning.
var warningReasons = []string{ReasonNotifyDisabled}

// refusalReasons are the reasons of Rejection.
var refusalReasons = []string{
	ReasonInvalidSpec, ReasonSecretMissing, ReasonCannotResolve, ReasonApplyFailed, ReasonNodeNotVisible,
	ReasonVRIDConflict, ReasonAddressConflict, ReasonAddressInUse,
}

// engineReasons are why a running instance is in its state, in its member's status.reason and in
// the note of the Became* Events: the VRRP engine's transition reasons (vrrp.Reasons, each
// documented in pkg/vrrp: Started, MasterDownTimer, ProbeFailed, ProbePending, ...) and the
// agent's agent.ReasonStartFailed (the instance could not start; the message says why).
var engineReasons = append(append([]string{}, vrrp.Reasons...), agent.ReasonStartFailed)

// NodeReasons returns every reason a member's status.reason can hold: a running instance's
// (the engine's and the agent's), or a refusal's.
func NodeReasons() []string {
	return append(append([]string{}, engineReasons...), refusalReasons...)
}

// Reasons of the conditions the aggregator writes (see Summarize).
const (
	// ReasonOneMaster: exactly one node is MASTER (Ready True).
	ReasonOneMaster = "OneMaster"
	// ReasonSingleMaster: DualMaster is False because exactly one node is MASTER.
	ReasonSingleMaster = "SingleMaster"
	// ReasonMasterElected: NoMaster is False because exactly one node is MASTER.
	ReasonMasterElected = "MasterElected"
	// ReasonDualMaster: more than one node is MASTER (Ready False, DualMaster True): their
	// adverts do not reach each other.
	ReasonDualMaster = "DualMaster"
	// ReasonMastersPresent: NoMaster is False because more than one node is MASTER.
	ReasonMastersPresent = "MastersPresent"
	// ReasonNoMaster: nodes report, none is MASTER, not all are in Fault (Ready False,
	// NoMaster True).
	ReasonNoMaster = "NoMaster"
	// ReasonNoNodes: no node reports this VirtualIP (Ready False, NoMaster True).
	ReasonNoNodes = "NoNodesReporting"
	// ReasonAllFault: every node that reports is in Fault (Ready False, NoMaster True).
	ReasonAllFault = "AllNodesFault"
	// ReasonVRIDInUse: a node hears a router that is not a node of the group advertise its
	// VRID with other addresses (ForeignRouter True).
	ReasonVRIDInUse = "VRIDInUse"
	// ReasonNoForeign: no node hears such a router (ForeignRouter False).
	ReasonNoForeign = "NoForeignRouter"
)

var conditionReasons = []string{
	ReasonOneMaster, ReasonSingleMaster, ReasonMasterElected, ReasonDualMaster, ReasonMastersPresent,
	ReasonNoMaster, ReasonNoNodes, ReasonAllFault, ReasonVRIDInUse, ReasonNoForeign,
}

// ConditionReasons returns every reason of the conditions.
func ConditionReasons() []string { return append([]string{}, conditionReasons...) }

// Reasons of the Events a node records on a VirtualIP, besides the refusal reasons (a refusal's
// Warning Event has the refusal's reason).
const (
	// ReasonProbeFailed: a probe of this node became unhealthy (Warning).
	ReasonProbeFailed = "ProbeFailed"
	// ReasonProbeRecovered: a probe of this node became healthy again (Normal).
	ReasonProbeRecovered = "ProbeRecovered"
	// ReasonForeignRouter: this node hears, for the first time, a router that is not a node of
	// the group advertise its VRID with other addresses (Warning).
	ReasonForeignRouter = "ForeignRouter"
	// ReasonFlapping: this node's instance changed state more often than its Events may say
	// one by one; the note counts the transitions not recorded and gives the last (Warning).
	ReasonFlapping = "Flapping"
)

// becameReason is the reason of the Event of a transition of this node to state: BecameBackup,
// BecameMaster, BecameFault, BecameInitialize (Warning for Fault, else Normal); the note has
// the engine's reason and the message.
func becameReason(state string) string { return "Became" + state }

// EventReasons returns every reason of the Events a node records.
func EventReasons() []string {
	out := []string{ReasonProbeFailed, ReasonProbeRecovered, ReasonForeignRouter, ReasonFlapping}
	for _, s := range []vrrp.State{vrrp.Initialize, vrrp.Backup, vrrp.Master, vrrp.Fault} {
		out = append(out, becameReason(s.String()))
	}
	return append(append(out, refusalReasons...), warningReasons...)
}
