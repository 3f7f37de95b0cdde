package desired

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// Interface is a network interface of the node, as the host reports it.
type Interface struct {
	Name  string
	Index int
	Up    bool
	// Prefixes are the interface's addresses with their prefix lengths, in the kernel's order
	// (the primary address of a subnet first).
	Prefixes []netip.Prefix
}

// Node is what For needs to know about the node it builds a Config for.
type Node struct {
	Name       string
	Labels     map[string]string
	Interfaces []Interface
}

// Peer is another selected node of the same VirtualIP.
type Peer struct {
	Name string
	// Addrs are the node's addresses (e.g. its InternalIPs); those of the VirtualIP's family
	// become unicast peers and members.
	Addrs []netip.Addr
	// AdvertSource is the source address of the node's adverts as its agent publishes it (its
	// VirtualIPMember's status.address); invalid means unknown. An IPv6 multicast group's
	// adverts come from link-local addresses (RFC 5798 §5.1.2.1), which Addrs never hold:
	// only this tells that node's adverts apart. It is used only there, and only when it is a
	// link-local address that no other peer and not this node claims.
	AdvertSource netip.Addr
	// Priority is the node's configured priority (see NodePriority); 0 means unknown.
	Priority uint8
}

// MembersRequired says what to write when a VirtualIP names no members: neither
// spec.nodeSelector nor spec.nodes. The CRD's rule on the spec carries the same words.
const MembersRequired = "name the nodes that run this VirtualIP: set spec.nodeSelector " +
	"(an empty selector {} selects every node that runs the agent) or list the members in spec.nodes"

// Selects reports whether vip selects the node with this name and these labels
// (docs/design.md §1.1). With spec.nodeSelector the selector decides, and an empty selector
// {} selects every node; spec.nodes[] then only overrides settings of the nodes it selects.
// Without a selector the members are exactly the nodes named in spec.nodes[]. With neither
// (refused by the CRD, so only an object written before that rule, or a file) nothing is
// selected and the error says what to write: a VirtualIP never runs on every node by omission.
func Selects(vip *v1alpha1.VirtualIP, node string, nodeLabels map[string]string) (bool, error) {
	if vip.Spec.NodeSelector == nil {
		if len(vip.Spec.Nodes) == 0 {
			return false, fmt.Errorf("VirtualIP %q: %s", vip.Name, MembersRequired)
		}
		return override(vip, node) != nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(vip.Spec.NodeSelector)
	if err != nil {
		return false, fmt.Errorf("VirtualIP %q: spec.nodeSelector: %w", vip.Name, err)
	}
	return sel.Matches(labels.Set(nodeLabels)), nil
}

// NodePriority returns the configured priority of node: its nodes[] override, else
// spec.priority, else DefaultPriority. It does not validate.
func NodePriority(vip *v1alpha1.VirtualIP, node string) uint8 {
	if o := override(vip, node); o != nil && o.Priority != nil {
		return uint8(*o.Priority)
	}
	if vip.Spec.Priority != nil {
		return uint8(*vip.Spec.Priority)
	}
	return DefaultPriority
}

func override(vip *v1alpha1.VirtualIP, node string) *v1alpha1.NodeOverride {
	for i := range vip.Spec.Nodes {
		if vip.Spec.Nodes[i].Name == node {
			return &vip.Spec.Nodes[i]
		}
	}
	return nil
}

// For builds the Config that node runs for vip. It validates vip first, so callers get the
// same errors as Validate.
//
// peers are the other selected nodes. nil means they are unknown (standalone mode): then the
// unicast peers are only spec.unicast.peers and, in multicast mode, the member set is
// incomplete. A non-nil slice, even empty, is the complete set of other nodes of the group:
// each is a member by its addresses of the group's family, or in an IPv6 multicast group by its
// advert source when known (Peer.AdvertSource), or, known by neither, by its priority alone.
//
// The interface is nodes[].interface, else spec.interface, else the one interface holding a
// node address in the first virtual address's subnet. The source address (Primary) is that
// interface's first IPv4 address, or its IPv6 link-local address (its first global IPv6
// address in unicast mode, where peers know each other by those); a virtual address already
// bound there (this node may be MASTER) is never taken for it.
//
// Priority 255 is accepted only if the node owns every virtual address, i.e. they are
// addresses of the chosen interface. Because a MASTER binds the addresses itself, that check
// cannot tell an owner from a node that holds the addresses as MASTER; the agent keeps the
// configured priority and so only a node configured with 255 is ever treated as the owner.
//
// password is the PASS authentication data (from spec.authentication.secretRef); it is used
// only with version 2 and authentication set, and must then be 1..8 bytes.
func For(vip *v1alpha1.VirtualIP, node Node, peers []Peer, password []byte) (vrrp.Config, error) {
	if errs := Validate(vip); len(errs) > 0 {
		return vrrp.Config{}, fmt.Errorf("VirtualIP %q is invalid: %w", vip.Name, errs.ToAggregate())
	}
	spec := &vip.Spec
	cfg := vrrp.Config{
		Name:     vip.Name,
		VRID:     uint8(spec.VRID),
		Version:  uint8(versionOf(spec)),
		Priority: NodePriority(vip, node.Name),
		Preempt:  spec.Preempt == nil || *spec.Preempt,
		Accept:   spec.Accept == nil || *spec.Accept,
	}
	for _, s := range spec.Addresses {
		pfx, _ := ParseAddress(s) // validated
		cfg.Addresses = append(cfg.Addresses, pfx)
	}
	family := familyOf(cfg.Addresses[0].Addr())
	owner := cfg.Priority == OwnerPriority

	switch {
	case spec.AdvertisementInterval != nil:
		cfg.Interval = spec.AdvertisementInterval.Duration
	case cfg.Version == 2:
		cfg.Interval = DefaultIntervalV2
	default:
		cfg.Interval = DefaultIntervalV3
	}
	if spec.PreemptDelay != nil {
		cfg.PreemptDelay = spec.PreemptDelay.Duration
	}
	if spec.ChecksumMode == ChecksumRFC9568 {
		cfg.Checksum = packet.ChecksumRFC9568
	}
	cfg.VirtualMAC = spec.VirtualMAC
	if a := spec.Announcements; a != nil {
		if a.Count != nil {
			cfg.AnnounceCount = int(*a.Count)
		}
		if a.RepeatDelay != nil {
			cfg.AnnounceRepeat = a.RepeatDelay.Duration
			cfg.NoAnnounceRepeat = a.RepeatDelay.Duration == 0
		}
		if a.RefreshInterval != nil {
			cfg.AnnounceRefresh = a.RefreshInterval.Duration
		}
		if a.RefreshCount != nil {
			cfg.AnnounceRefreshCount = int(*a.RefreshCount)
		}
	}

	ifc, err := resolveInterface(vip, node, cfg.Addresses, owner)
	if err != nil {
		return vrrp.Config{}, fmt.Errorf("VirtualIP %q on node %q: %w", vip.Name, node.Name, err)
	}
	cfg.Interface = ifc.Name

	// IPv6 multicast adverts come from the link-local address (RFC 5798 §5.1.2.1). Unicast
	// ones come from a global address, as keepalived's unicast_src_ip: the peers list (and
	// the other nodes' InternalIPs) name global addresses, and a receiver accepts only
	// adverts from a listed peer.
	linkLocal := family == 6 && spec.Unicast == nil
	isVIP := func(a netip.Addr) bool {
		return slices.ContainsFunc(cfg.Addresses, func(p netip.Prefix) bool { return p.Addr() == a })
	}
	for _, p := range ifc.Prefixes {
		a := p.Addr().Unmap()
		if isVIP(a) && !owner {
			continue
		}
		if family == 4 && a.Is4() || family == 6 && a.Is6() && a.IsLinkLocalUnicast() == linkLocal {
			cfg.Primary = a
			break
		}
	}
	if !cfg.Primary.IsValid() {
		what := "IPv4 address"
		switch {
		case family == 6 && linkLocal:
			what = "IPv6 link-local (fe80::/10) address"
		case family == 6:
			what = "global IPv6 address (unicast adverts are sent from the address its peers know it by)"
		}
		return vrrp.Config{}, fmt.Errorf("VirtualIP %q on node %q: interface %s has no %s to send adverts from: add one or choose another interface",
			vip.Name, node.Name, ifc.Name, what)
	}

	if owner {
		for _, v := range cfg.Addresses {
			if !slices.ContainsFunc(ifc.Prefixes, func(p netip.Prefix) bool { return p.Addr().Unmap() == v.Addr() }) {
				return vrrp.Config{}, fmt.Errorf("VirtualIP %q on node %q: priority 255 is only for the owner of the addresses, "+
					"but %s is not an address of %s: use a priority of 1..254", vip.Name, node.Name, v.Addr(), ifc.Name)
			}
		}
	}

	own := make(map[netip.Addr]bool)
	for _, i := range node.Interfaces {
		for _, p := range i.Prefixes {
			own[p.Addr().Unmap()] = true
		}
	}
	ofFamily := func(a netip.Addr) bool { return a.IsValid() && familyOf(a) == family }
	// An IPv6 multicast group's adverts come from link-local addresses, which a node's
	// addresses never are: a peer whose agent published its advert source is known by that
	// address alone, so that a backup can tell who resigned and who wins a tie (§4.2). A
	// source that two peers claim, or that is this node's, tells nobody apart: those peers are
	// known by their addresses, as one whose source is unknown.
	source := func(p Peer) netip.Addr {
		a := p.AdvertSource.WithZone("")
		if !linkLocal || !a.Is6() || !a.IsLinkLocalUnicast() || own[a] {
			return netip.Addr{}
		}
		return a
	}
	claims := make(map[netip.Addr]int)
	for _, p := range peers {
		if a := source(p); a.IsValid() {
			claims[a]++
		}
	}
	// Highest priority each cluster peer address can advertise, and those of the peers known
	// by no address of the family (a node without one).
	maxPrio := make(map[netip.Addr]uint8)
	var unaddressed []uint8
	for _, p := range peers {
		mp := maxPriority(vip, p.Priority)
		addrs := p.Addrs
		if a := source(p); a.IsValid() && claims[a] == 1 {
			addrs = []netip.Addr{a}
		}
		known := false
		for _, a := range addrs {
			a = a.Unmap()
			if ofFamily(a) && !own[a] {
				maxPrio[a] = max(maxPrio[a], mp)
				known = true
			}
		}
		if !known {
			unaddressed = append(unaddressed, mp)
		}
	}

	var members []netip.Addr
	if u := spec.Unicast; u != nil {
		set := make(map[netip.Addr]bool)
		for _, s := range u.Peers {
			a, _ := netip.ParseAddr(s) // validated
			if a = a.Unmap(); !own[a] {
				set[a] = true
			}
		}
		if u.FromNodes == nil || *u.FromNodes {
			for a := range maxPrio {
				set[a] = true
			}
		}
		if len(set) == 0 {
			return vrrp.Config{}, fmt.Errorf("VirtualIP %q on node %q: unicast is set but there is no peer to advertise to: "+
				"list the other routers in spec.unicast.peers or select other nodes", vip.Name, node.Name)
		}
		cfg.Peers = sortedKeys(set)
		members = cfg.Peers
		cfg.MembersComplete = true
	} else if peers != nil {
		members = sortedKeys(maxPrio)
		cfg.MembersComplete = true
	}
	for _, a := range members {
		cfg.Members = append(cfg.Members, vrrp.Member{Addr: a, MaxPriority: maxPrio[a]})
	}
	if spec.Unicast == nil && peers != nil {
		// Still members: left out, the set would be complete without them, and a backup they
		// beat would take over at once on a priority-0 advert.
		slices.Sort(unaddressed)
		for _, mp := range unaddressed {
			cfg.Members = append(cfg.Members, vrrp.Member{MaxPriority: mp})
		}
	}

	if spec.Authentication != nil && cfg.Version == 2 {
		if err := ValidatePassword(vip, password); err != nil {
			return vrrp.Config{}, fmt.Errorf("VirtualIP %q: %w", vip.Name, err)
		}
		cfg.Password = slices.Clone(password)
	}
	return cfg, nil
}

// ValidatePassword checks the PASS password that vip's spec.authentication.secretRef resolves
// to: 1..8 bytes, the size of the VRRPv2 authentication data. It returns nil when vip has no
// authentication. The error never shows the password.
func ValidatePassword(vip *v1alpha1.VirtualIP, password []byte) *field.Error {
	a := vip.Spec.Authentication
	if a == nil {
		return nil
	}
	if len(password) == 0 || len(password) > passwordMaxLength {
		return field.Invalid(field.NewPath("spec", "authentication", "secretRef"), a.SecretRef.Name+"/"+a.SecretRef.Key,
			fmt.Sprintf("the password in Secret %q key %q has %d bytes: PASS authentication takes 1..%d bytes",
				a.SecretRef.Name, a.SecretRef.Key, len(password), passwordMaxLength))
	}
	return nil
}

// maxPriority is the highest priority a node configured with prio can advertise: positive probe
// weights raise it while they succeed, clamped to vrrp.MaxBackupPriority (254) as the engine
// does. 0 stays unknown.
func maxPriority(vip *v1alpha1.VirtualIP, prio uint8) uint8 {
	if prio == 0 || prio == OwnerPriority {
		return prio
	}
	p := int(prio)
	for _, pr := range vip.Spec.Probes {
		if pr.Weight > 0 {
			p += int(pr.Weight)
		}
	}
	return uint8(min(p, vrrp.MaxBackupPriority))
}

func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// resolveInterface picks the interface of node that carries vip.
func resolveInterface(vip *v1alpha1.VirtualIP, node Node, addrs []netip.Prefix, owner bool) (Interface, error) {
	name, from := vip.Spec.Interface, "spec.interface"
	for i, o := range vip.Spec.Nodes {
		if o.Name == node.Name && o.Interface != "" {
			name, from = o.Interface, fmt.Sprintf("spec.nodes[%d].interface", i)
		}
	}
	if name != "" {
		for _, ifc := range node.Interfaces {
			if ifc.Name == name {
				return ifc, nil
			}
		}
		return Interface{}, fmt.Errorf("interface %q (%s) does not exist on the node: correct it or set spec.nodes[].interface for this node", name, from)
	}

	// The interface holding a node address in the first virtual address's subnet, or whose
	// subnet holds the first virtual address (a bare /32 VIP). Up interfaces first, then by
	// index, so that the choice is deterministic.
	first := addrs[0]
	isVIP := func(a netip.Addr) bool {
		return slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr() == a })
	}
	var match []Interface
	for _, ifc := range node.Interfaces {
		for _, p := range ifc.Prefixes {
			a := p.Addr().Unmap()
			if !a.IsValid() || a.Is4() != first.Addr().Is4() || a.IsLoopback() || (isVIP(a) && !owner) {
				continue
			}
			if first.Masked().Contains(a) || netip.PrefixFrom(a, p.Bits()).Masked().Contains(first.Addr()) {
				match = append(match, ifc)
				break
			}
		}
	}
	slices.SortStableFunc(match, func(x, y Interface) int {
		if x.Up != y.Up {
			if x.Up {
				return -1
			}
			return 1
		}
		return cmp.Compare(x.Index, y.Index)
	})
	switch {
	case len(match) == 0:
		return Interface{}, fmt.Errorf("no interface has an address in the subnet of %s: set spec.interface (or spec.nodes[].interface for this node)", first)
	case len(match) > 1 && match[0].Up == match[1].Up:
		return Interface{}, fmt.Errorf("interfaces %s and %s both have an address in the subnet of %s: set spec.interface to choose one",
			match[0].Name, match[1].Name, first)
	}
	return match[0], nil
}
