package vrrp

import "github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"

// Bounds of a Config that the protocol sets. Each bound has one home: here, or in pkg/vrrp/packet
// when the advert's wire format sets it. pkg/desired (a VirtualIP's validation) and pkg/probe use
// these constants; the CRD's markers in api/v1alpha1 repeat the numbers (controller-gen reads
// them as text) and pkg/desired's tests check the generated schema against these constants
// (docs/design.md §1.1). OwnerPriority is in types.go.
const (
	// MinVRID and MaxVRID bound the Virtual Router Identifier: one byte, 0 not allowed
	// (RFC 5798 §5.2.3).
	MinVRID = 1
	MaxVRID = 255

	// MinPriority is the lowest priority a router takes part with: 0 only says that a MASTER
	// resigns (RFC 5798 §5.2.4).
	MinPriority = 1
	// MaxBackupPriority is the highest priority of a router that does not own the addresses;
	// OwnerPriority is the owner's alone (RFC 5798 §5.2.4).
	MaxBackupPriority = OwnerPriority - 1

	// Advertisement intervals per version, as the advert's interval field carries them: whole
	// seconds in VRRPv2 (RFC 3768 §5.3.7), centiseconds in VRRPv3 (RFC 5798 §5.2.7). The unit
	// is both the shortest interval and the step between two.
	MinIntervalV2  = packet.IntervalUnitV2
	MaxIntervalV2  = packet.MaxIntervalV2
	IntervalStepV2 = packet.IntervalUnitV2
	MinIntervalV3  = packet.IntervalUnitV3
	MaxIntervalV3  = packet.MaxIntervalV3
	IntervalStepV3 = packet.IntervalUnitV3

	// MaxInterfaceName is the longest Linux link name: IFNAMSIZ-1 bytes.
	MaxInterfaceName = 15
)
