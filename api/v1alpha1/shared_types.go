package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DurationPattern is the syntax of a Duration, exactly what time.ParseDuration reads: an
// optional sign, then 0 or a sequence of decimal numbers each with a unit (ns, us, µs, μs, ms,
// s, m, h), e.g. 100ms, 1.5s, 1m30s.
//
// Its one home is here. The schema cannot refer to a Go constant (controller-gen reads markers
// as text), so the marker of Duration repeats it, and so does each rule that parses a duration
// with CEL's duration(): a rule must not parse a string that the syntax rule refuses, or the
// API server answers with an evaluation error instead of the syntax rule's message, and CRD
// CEL has no binding to share the guard between rules. pkg/desired's tests check that every
// copy in the generated CRD equals this constant.
const DurationPattern = `^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// Duration is a span of time written as Go writes it ("100ms", "1m30s"). It is
// metav1.Duration (the same Go field, the same JSON and unstructured form) under a name of its
// own, so that the schema of every duration field of the API is written once, here: markers on
// a named type apply wherever it is used, and metav1.Duration is not ours to mark.
//
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule=`self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$')`,message=`write a duration such as 100ms, 1s or 1m30s`
type Duration metav1.Duration

// UnmarshalJSON reads a string such as "100ms" (time.ParseDuration), as metav1.Duration.
func (d *Duration) UnmarshalJSON(b []byte) error {
	return (*metav1.Duration)(d).UnmarshalJSON(b)
}

// MarshalJSON writes the duration as a string such as "1m30s", as metav1.Duration.
func (d Duration) MarshalJSON() ([]byte, error) {
	return metav1.Duration(d).MarshalJSON()
}

// InterfaceName is the name of a Linux network interface (a link, not an alias like eth0:1):
// at most IFNAMSIZ-1 bytes.
//
// +kubebuilder:validation:MaxLength=15
// +kubebuilder:validation:XValidation:rule=`!self.matches('[/:\\s\\x00\\x0b\\x{85}\\p{Z}]') && self != '.' && self != '..'`,message=`interface must be a Linux link name such as eth0: no '/', ':' (an alias like eth0:1 is not a link) or whitespace, not . or ..`
type InterfaceName = string

// Priority is a VRRP priority: 1..254, or 255 for the router that owns the addresses
// (RFC 5798 §5.2.4).
//
// +kubebuilder:validation:XValidation:rule=`self >= 1 && self <= 255`,message=`priority must be 1..254; 255 is only for the owner of the addresses (a node that has them as its own interface addresses, RFC 5798 §5.2.4), which the agent checks on each node`
type Priority = int32
