package hostnet

// The declarations here are the same on every system; the rest of the package is Linux only
// (its files are tagged linux), and elsewhere stub_other.go stands in for it.

import (
	"errors"
	"net"
	"net/netip"
)

// AddrProto is the mark on every address this package adds: the IFA_PROTO address attribute
// (Linux >= 6.1) with value 0x6b ('k'); recent iproute2 shows it as the address "proto".
// Unlike a label it works for IPv6 too, it survives a SIGKILLed agent, and it changes nothing
// for anyone who does not look for it. The value is outside the kernel's own IFAPROT_* range
// (0..3).
const AddrProto uint8 = 0x6b

// AcceptTable is the nftables table ("inet kube_vrrp") through which an AcceptFilter
// implements Accept_Mode off (RFC 5798 §6.1; the VirtualIP field accept: false). It belongs to
// kube-vrrp alone: it is deleted and recreated when a filter starts, deleted when the filter
// closes, and RemoveStaleAcceptTable deletes the one a killed agent left behind. Nothing else
// in the ruleset is read or changed.
const AcceptTable = "kube_vrrp"

// DefaultStateDir is where the agent keeps its host-local state: a tmpfs on every distribution
// (/run), so the state survives a restart of the agent (a SIGKILL, an OOM kill, a new pod) but
// not of the host, whose reboot takes the addresses with it anyway.
const DefaultStateDir = "/run/kube-vrrp"

// ErrLocked is returned by OpenState while another agent holds the state directory's lock: two
// agents on one host would fight over the same addresses.
var ErrLocked = errors.New("another kube-vrrp agent holds the host lock")

// BoundAddr is a virtual address as the state records it: on which interface, with which
// prefix length.
type BoundAddr struct {
	Interface string
	Prefix    netip.Prefix
}

func (b BoundAddr) String() string { return b.Interface + " " + b.Prefix.String() }

// Interface is a network interface and the addresses the agent may use as its own.
type Interface struct {
	Name  string
	Index int
	// Up is true when the link is administratively up and has a carrier.
	Up           bool
	HardwareAddr net.HardwareAddr
	// Prefixes are its addresses with their prefix lengths, in the kernel's order (the primary
	// IPv4 address of a subnet first), without the virtual addresses this package marked and
	// without IPv6 addresses that failed duplicate address detection.
	Prefixes []netip.Prefix
}
