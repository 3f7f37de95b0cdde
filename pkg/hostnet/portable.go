package hostnet

// The declarations here are the same on every system; the rest of the package is Linux only
// (its files are tagged linux), and elsewhere stub_other.go stands in for it.

import (
	"errors"
	"fmt"
	"hash/fnv"
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

// VMACTable is the name of the two nftables tables, "arp kube_vrrp_vmac" and "ip6
// kube_vrrp_vmac", that keep the host from undoing what the virtual MAC interfaces of
// instances with virtualMAC do (docs/design.md §5.9). They belong to kube-vrrp alone: created
// with the first such interface, deleted with the last, and rebuilt by RemoveStale for what a
// predecessor handed over.
const VMACTable = "kube_vrrp_vmac"

// VirtualMACAddr returns the virtual router MAC address of RFC 5798 §7.3 for vrid:
// 00:00:5e:00:01:<vrid> for IPv4, 00:00:5e:00:02:<vrid> for IPv6.
func VirtualMACAddr(vrid uint8, ipv6 bool) net.HardwareAddr {
	fam := byte(1)
	if ipv6 {
		fam = 2
	}
	return net.HardwareAddr{0, 0, 0x5e, 0, fam, vrid}
}

// VirtualMACName returns the name of the virtual MAC interface of VRID vrid on parent for a
// family (docs/design.md §5.9): "kv4-<vrid>-<parent>" or "kv6-<vrid>-<parent>", the VRID in
// decimal; when that would pass the kernel's 15 bytes, the parent's name is replaced by 7 hex
// digits of its FNV-1a hash ("kv4-51-1c9f0a2"). One name per parent, VRID and family, stable
// across a rebuild of the parent, and recognisable in `ip link` as kube-vrrp's.
func VirtualMACName(parent string, vrid uint8, ipv6 bool) string {
	fam := 4
	if ipv6 {
		fam = 6
	}
	prefix := fmt.Sprintf("kv%d-%d-", fam, vrid)
	if len(prefix)+len(parent) <= maxIfnameLen {
		return prefix + parent
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(parent))
	return fmt.Sprintf("%s%07x", prefix, h.Sum32()&0xfffffff)
}

// maxIfnameLen is the longest interface name the kernel takes (IFNAMSIZ less the NUL).
const maxIfnameLen = 15
