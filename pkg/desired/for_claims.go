package desired

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Slot is what one VirtualIP's instance occupies on a node: its VRID on one interface, for one
// address family. The VRID names the virtual router on its LAN (RFC 5798 §5.2.3), and IPv4 and
// IPv6 virtual routers are separate even with the same VRID (RFC 5798 §1), so two instances in
// one slot would take each other's adverts for their own; the agent runs one per slot.
type Slot struct {
	Interface string
	VRID      uint8
	IPv6      bool
}

func (s Slot) String() string {
	family := "IPv4"
	if s.IPv6 {
		family = "IPv6"
	}
	return fmt.Sprintf("VRID %d on %s (%s)", s.VRID, s.Interface, family)
}

// SlotOf returns the slot of a Config that For built.
func SlotOf(cfg vrrp.Config) Slot {
	return Slot{Interface: cfg.Interface, VRID: cfg.VRID, IPv6: cfg.Addresses[0].Addr().Is6()}
}

// SlotFor returns the slot vip would occupy on node: the interface For chooses, the VRID and
// the family of the addresses. Unlike For it needs neither the peers nor the password, so the
// slot of another VirtualIP can be known even when that one cannot run here for its own
// reasons. It validates vip first.
func SlotFor(vip *v1alpha1.VirtualIP, node Node) (Slot, error) {
	if errs := Validate(vip); len(errs) > 0 {
		return Slot{}, fmt.Errorf("VirtualIP %q is invalid: %w", vip.Name, errs.ToAggregate())
	}
	addrs := make([]netip.Prefix, 0, len(vip.Spec.Addresses))
	for _, s := range vip.Spec.Addresses {
		p, _ := ParseAddress(s) // validated
		addrs = append(addrs, p)
	}
	ifc, err := resolveInterface(vip, node, addrs, NodePriority(vip, node.Name) == OwnerPriority)
	if err != nil {
		return Slot{}, fmt.Errorf("VirtualIP %q on node %q: %w", vip.Name, node.Name, err)
	}
	return Slot{Interface: ifc.Name, VRID: uint8(vip.Spec.VRID), IPv6: addrs[0].Addr().Is6()}, nil
}

// Addresses returns the virtual addresses of vip without their prefix lengths, skipping any
// that do not parse (Validate reports those).
func Addresses(vip *v1alpha1.VirtualIP) []netip.Addr {
	out := make([]netip.Addr, 0, len(vip.Spec.Addresses))
	for _, s := range vip.Spec.Addresses {
		if p, err := ParseAddress(s); err == nil && !slices.Contains(out, p.Addr()) {
			out = append(out, p.Addr())
		}
	}
	return out
}

// CheckForeign refuses a Config whose virtual address is already on its interface and was not
// added by kube-vrrp: the host's own address, or another program's (foreign lists the
// interface's addresses that kube-vrrp did not add, see hostnet.ForeignAddresses). A MASTER
// would take such an address over as its own, a BACKUP or a resigning MASTER could never
// give it back, and every other holder on the LAN would be answered by two hosts. The address
// owner (priority 255) is the exception: it has the addresses as its own interface addresses
// by definition (RFC 5798 §5.2.4), and For has checked that it does.
func CheckForeign(cfg vrrp.Config, foreign []netip.Prefix) error {
	if cfg.Priority == OwnerPriority {
		return nil
	}
	for _, v := range cfg.Addresses {
		if slices.ContainsFunc(foreign, func(p netip.Prefix) bool { return p.Addr().Unmap() == v.Addr() }) {
			return fmt.Errorf("VirtualIP %q: address %s is already on %s and kube-vrrp did not add it (an address of this host, "+
				"or another program's): choose an address no host uses (priority 255 is for the owner of the address)",
				cfg.Name, v.Addr(), cfg.Interface)
		}
	}
	return nil
}
