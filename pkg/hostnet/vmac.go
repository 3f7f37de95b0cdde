//go:build linux

package hostnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// vmacRouteMetric is the metric of the prefix routes of the addresses bound on a virtual MAC
// interface (IFA_RT_PRIORITY): above the 0 (IPv4) and 256 (IPv6) of the parent's own prefix
// routes and of any a network manager gives, so that the node's traffic to the subnet keeps
// leaving through the parent, from the parent's address, whichever route was added last. A
// virtual address outside the parent's subnets still gets its route, through the macvlan.
const vmacRouteMetric = 1 << 20

// vmacDevconf are the IPv4 settings of every virtual MAC interface (net.ipv4.conf.<link>.*),
// written over netlink. The kernel uses the larger of a link's value and "all"'s for the three
// ARP and rp_filter settings, so each is the smallest value that works whatever "all" says.
var vmacDevconf = map[int]uint32{
	// Answer ARP only for the link's own addresses, the virtual ones: the macvlan receives
	// every broadcast its parent does, and would otherwise answer for the node's addresses
	// (of either family's instance) with the virtual MAC.
	devconfArpIgnore: 1,
	// Send ARP requests (to unicast peers, to clients the routes send out of the macvlan) with
	// one of the link's own addresses as the sender, never the node's with the virtual MAC.
	devconfArpAnnounce: 2,
	// Loose reverse-path filter: clients reach the virtual addresses through the macvlan but
	// the routes back to them lead out of the parent; strict mode (1, a common "all") would
	// drop their packets and ARP requests.
	devconfRPFilter: 2,
	// Removing the first address of a subnet keeps the others (promoted), as an Unbind of one
	// virtual address must.
	devconfPromoteSecondaries: 1,
	// Answer ARP although the route back to the asker leaves through the parent (whose prefix
	// route wins): with arp_filter 1, which a new link takes from net.ipv4.conf.default, the
	// macvlan would answer no request at all. The kernel ORs it with "all"'s, which kube-vrrp
	// cannot override (docs/design.md §5.9).
	devconfArpFilter: 0,
	// No proxy ARP, which a new link takes from net.ipv4.conf.default: on a forwarding node
	// the MASTER's macvlan would answer for every address routed through another link, the
	// rest of the parent's subnet included, with the virtual MAC.
	devconfProxyArp: 0,
}

func vmacName(parent string, vrid uint8, ipv6 bool) string { return VirtualMACName(parent, vrid, ipv6) }

func vmacAddr(vrid uint8, ipv6 bool) net.HardwareAddr { return VirtualMACAddr(vrid, ipv6) }

// vmacAlias is the alias of a virtual MAC interface: `ip link` shows it.
func vmacAlias(parent string, vrid uint8, ipv6 bool) string {
	fam := "IPv4"
	if ipv6 {
		fam = "IPv6"
	}
	return fmt.Sprintf("kube-vrrp virtual MAC of VRID %d (%s) on %s", vrid, fam, parent)
}

// isVMAC reports whether a link looks like one of the package's virtual MAC interfaces: a
// macvlan with a virtual router MAC address and a name of its kind.
func isVMAC(name, kind string, mac net.HardwareAddr) bool {
	if kind != "macvlan" || len(mac) != 6 || !bytes.Equal(mac[:4], []byte{0, 0, 0x5e, 0}) || (mac[4] != 1 && mac[4] != 2) {
		return false
	}
	prefix := fmt.Sprintf("kv%d-%d-", 2+2*int(mac[4]), mac[5]) // kv4-<vrid>- or kv6-<vrid>-
	return strings.HasPrefix(name, prefix) && len(name) > len(prefix)
}

var (
	_ vrrp.Link             = (*vmacLink)(nil)
	_ vrrp.BurstAnnouncer   = (*vmacLink)(nil)
	_ vrrp.AddressRetainer  = (*vmacLink)(nil)
	_ vrrp.LinkStateWatcher = (*vmacLink)(nil)
)

// vmacLink is the host side of an instance with virtualMAC (docs/design.md §5.9): a macvlan on
// the instance's interface (the parent) carrying the virtual router MAC address, bridge mode,
// named VirtualMACName. It is a vrrp.Link: a MASTER's Bind sets the macvlan up and binds the
// addresses there, its announcements leave from it, and an Unbind of the last address sets it
// down first, so that a backup sends nothing with the virtual MAC: no duplicate address
// detection (none is run: no link-local address, addresses added without it), no MLD report,
// no router solicitation. Its state is the parent's (WatchLinkState), and when the parent is
// back after a rebuild the macvlan is created again. Sender wraps the instance's socket so
// that a MASTER's multicast adverts leave from the macvlan too.
type vmacLink struct {
	h       *Host
	name    string
	parent  string
	vrid    uint8
	ipv6    bool
	primary netip.Addr
	inner   *link // the macvlan's addresses and announcements
	base    *link // the parent: its state

	// up is set while the macvlan is up for a MASTER (between a Bind and the Unbind of the
	// last address): the sender uses the macvlan then.
	up atomic.Bool

	// mu serialises the changes of the interface and guards the fields below.
	mu     sync.Mutex
	arp    map[netip.Addr]bool // IPv4 addresses entered in the filter for the parent
	conn   *packetConn         // send-only socket on the macvlan
	closed bool
}

// VirtualMAC returns the virtual MAC interface of VRID vrid for one family on the interface
// parent, creating it (down) if it does not exist; primary is the instance's own address on
// parent, its advert source (docs/design.md §5.9). An interface of that name that exists is
// taken over only if it is kube-vrrp's (in the state's record, or created by this Host) and
// as it should be: one a predecessor handed over, up with its addresses, stays so. The
// returned vrrp.Link also has Name, Sender (the instance's socket, wrapped) and Close.
//
// It needs the nftables arp and ip6 families (the tables VMACTable) and a kernel with macvlan.
func (h *Host) VirtualMAC(parent string, vrid uint8, ipv6 bool, primary netip.Addr) (vrrp.Link, error) {
	v, err := h.virtualMAC(parent, vrid, ipv6, primary)
	if err != nil {
		fam := "IPv4"
		if ipv6 {
			fam = "IPv6"
		}
		return nil, fmt.Errorf("virtual MAC interface of VRID %d (%s) on %s: %w", vrid, fam, parent, err)
	}
	return v, nil
}

func (h *Host) virtualMAC(parent string, vrid uint8, ipv6 bool, primary netip.Addr) (*vmacLink, error) {
	primary = primary.Unmap().WithZone("")
	switch {
	case vrid == 0:
		return nil, errors.New("VRID 0")
	case !validIfname(parent):
		return nil, fmt.Errorf("invalid interface name %q", parent)
	case !primary.IsValid() || primary.Is6() != ipv6:
		return nil, fmt.Errorf("source address %s is not of the instance's family", primary)
	}
	if !ipv6 && h.allARPFilter() {
		return nil, errors.New("net.ipv4.conf.all.arp_filter is 1 on this node, and with it the virtual MAC interface " +
			"answers no ARP request for the addresses (the route back to a client leaves through the parent): " +
			"set net.ipv4.conf.all.arp_filter to 0, or remove virtualMAC")
	}
	name := vmacName(parent, vrid, ipv6)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errHostClosed
	}
	if _, ok := h.vmacs[name]; ok {
		h.mu.Unlock()
		return nil, fmt.Errorf("%s is in use by another instance of this agent", name)
	}
	h.vmacs[name] = nil // reserved
	if h.vmacFilter == nil {
		h.vmacFilter = &vmacFilter{h: h}
	}
	f := h.vmacFilter
	h.mu.Unlock()
	v := &vmacLink{h: h, name: name, parent: parent, vrid: vrid, ipv6: ipv6, primary: primary, arp: map[netip.Addr]bool{}}
	ok, tables, created := false, false, false
	defer func() {
		if ok {
			return
		}
		// Nothing half made stays: an interface made here goes with its record and filter
		// entries (one that was there, handed over, is left to its handoff's settling), and
		// the tables go when no interface is left in them.
		switch {
		case created:
			v.mu.Lock()
			if err := v.remove(); err != nil {
				h.log.Warn("removing the virtual MAC interface of a failed start", "interface", name, "err", err)
			}
			v.mu.Unlock()
		case tables: // else no nftables here, and nothing was made
			if err := f.closeIfUnused(); err != nil {
				h.log.Warn("removing the virtual MAC filter tables after a failed start", "err", err)
			}
		}
		h.mu.Lock()
		delete(h.vmacs, name)
		h.mu.Unlock()
	}()
	if err := f.ensure(); err != nil {
		return nil, fmt.Errorf("virtualMAC needs nftables with the arp and ip6 families: %w", err)
	}
	tables = true
	d, created, err := v.ensure()
	if err != nil {
		return nil, err
	}
	il, err := h.Link(name)
	if err != nil {
		return nil, err
	}
	bl, err := h.Link(parent)
	if err != nil {
		return nil, err
	}
	v.inner, v.base = il.(*link), bl.(*link)
	v.inner.metric = vmacRouteMetric
	if err := f.add(nil, name); err != nil {
		return nil, err
	}
	if d.flags&unix.IFF_UP != 0 {
		// Handed over by a predecessor that was MASTER: its addresses are bound there, and the
		// parent must go on leaving them alone.
		v.up.Store(true)
		if !ipv6 {
			rt, err := h.handles()
			if err != nil {
				return nil, err
			}
			have, err := rt.addrs(d.index)
			if err != nil {
				return nil, err
			}
			var ps []netip.Prefix
			for _, a := range have {
				if a.Prefix.Addr().Is4() {
					ps = append(ps, a.Prefix)
				}
			}
			v.mu.Lock()
			err = v.enterARPLocked(ps)
			v.mu.Unlock()
			if err != nil {
				return nil, err
			}
		}
	}
	if v.conn, err = vmacListen(h, name, primary); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.vmacs[name] = v
	h.mu.Unlock()
	ok = true
	return v, nil
}

// Name returns the interface's name.
func (v *vmacLink) Name() string { return v.name }

// allARPFilter reports whether net.ipv4.conf.all.arp_filter is 1 in the host's namespace: it
// applies to every interface whatever the interface's own value, and no per-interface setting
// can undo it (docs/design.md §5.9). Readable in a container, whose /proc/sys is read-only.
func (h *Host) allARPFilter() bool {
	var b []byte
	err := h.do(func() error {
		var err error
		b, err = os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_filter")
		return err
	})
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// owned reports whether d is this interface as the package made it: a macvlan of its name and
// virtual MAC, recorded in the state (or, without a state, created by this Host).
func (v *vmacLink) owned(d linkDetail) bool {
	r := vmacRecord{Name: v.name, Parent: v.parent, VRID: v.vrid, IPv6: v.ipv6, Primary: v.primary}
	if !ownsVMAC(d, r) {
		return false
	}
	if st := v.h.state; st != nil {
		_, ok := st.vmacRecorded(v.name)
		return ok
	}
	v.h.mu.Lock()
	defer v.h.mu.Unlock()
	return v.h.vmacMade[v.name]
}

// ensure returns the interface, checked as the package's own and on the parent, or creates
// and configures it (down) when it does not exist (created): at the start, when the parent
// comes back after a rebuild (which deleted the macvlan with it), and at every Bind.
func (v *vmacLink) ensure() (d linkDetail, created bool, err error) {
	rt, err := v.h.handles()
	if err != nil {
		return linkDetail{}, false, err
	}
	d, err = rt.linkDetailByName(v.name)
	if err == nil {
		if !v.owned(d) {
			return linkDetail{}, false, fmt.Errorf("an interface named %s exists and is not kube-vrrp's virtual MAC interface: rename or delete it", v.name)
		}
		p, err := rt.linkDetailByName(v.parent)
		if err != nil {
			return linkDetail{}, false, fmt.Errorf("parent: %w", err)
		}
		if d.parent != p.index {
			return linkDetail{}, false, fmt.Errorf("%s is on another link than %s (index %d, not %d)", v.name, v.parent, d.parent, p.index)
		}
		if st := v.h.state; st != nil {
			// The record follows the instance's source address.
			if err := st.recordVMAC(vmacRecord{Name: v.name, Parent: v.parent, VRID: v.vrid, IPv6: v.ipv6, Primary: v.primary}); err != nil {
				return linkDetail{}, false, err
			}
		}
		return d, false, nil
	}
	if !errors.Is(err, unix.ENODEV) {
		return linkDetail{}, false, err
	}
	d, err = v.create(rt)
	if err != nil {
		return linkDetail{}, false, err
	}
	return d, true, nil
}

// create creates and configures the interface, down. A failure leaves neither the interface
// nor its record.
func (v *vmacLink) create(rt *rtnl) (linkDetail, error) {
	p, err := rt.linkDetailByName(v.parent)
	if err != nil {
		return linkDetail{}, fmt.Errorf("parent: %w", err)
	}
	if len(p.mac) != 6 {
		return linkDetail{}, fmt.Errorf("%s is not an Ethernet link", v.parent)
	}
	if p.kind == "macvlan" {
		// The kernel would make it on the macvlan's lower link, where the parent's filter
		// entries and state do not apply, and every Bind would find it on another link.
		return linkDetail{}, fmt.Errorf("%s is itself a macvlan, on which no virtual MAC interface can be made (the kernel puts it on the lower link)", v.parent)
	}
	// Recorded before it is created: a kill in between leaves a record of an absent link,
	// never an unrecorded one.
	if st := v.h.state; st != nil {
		if err := st.recordVMAC(vmacRecord{Name: v.name, Parent: v.parent, VRID: v.vrid, IPv6: v.ipv6, Primary: v.primary}); err != nil {
			return linkDetail{}, err
		}
	}
	v.h.mu.Lock()
	if v.h.vmacMade == nil {
		v.h.vmacMade = map[string]bool{}
	}
	v.h.vmacMade[v.name] = true
	v.h.mu.Unlock()
	// Not made (or made and deleted again): the record of an absent interface goes, and one
	// that took the name meanwhile (EEXIST) is not kube-vrrp's.
	unrecord := func() {
		v.h.mu.Lock()
		delete(v.h.vmacMade, v.name)
		v.h.mu.Unlock()
		if st := v.h.state; st != nil {
			if err := st.forgetVMAC(v.name); err != nil {
				v.h.log.Warn("forgetting a virtual MAC interface not made", "interface", v.name, "err", err)
			}
		}
	}
	if err := rt.newMacvlan(v.name, p.index, vmacAddr(v.vrid, v.ipv6), p.group); err != nil {
		// Unless it might have been made after all (an error other than the kernel's
		// refusal, and a link of the name there now).
		if _, lerr := rt.linkDetailByName(v.name); errors.Is(err, unix.EEXIST) || errors.Is(lerr, unix.ENODEV) {
			unrecord()
		}
		return linkDetail{}, err
	}
	d, err := rt.linkDetailByName(v.name)
	if err == nil {
		err = v.configure(rt, d.index)
	}
	if err == nil {
		err = rt.setAlias(d.index, vmacAlias(v.parent, v.vrid, v.ipv6))
	}
	if err != nil {
		if d.index > 0 {
			if derr := rt.delLink(d.index); derr != nil && !errors.Is(derr, unix.ENODEV) {
				// Still there: its record stays, for Close or the next start to delete it.
				return linkDetail{}, fmt.Errorf("configure %s: %w", v.name, errors.Join(err, derr))
			}
		}
		unrecord()
		return linkDetail{}, fmt.Errorf("configure %s: %w", v.name, err)
	}
	v.h.log.Info("created the virtual MAC interface", "interface", v.name, "parent", v.parent, "mac", vmacAddr(v.vrid, v.ipv6).String())
	return d, nil
}

// vmacListen is Host.listenSendOnly, replaced by tests to fail.
var vmacListen = (*Host).listenSendOnly

// vmacSetLink is rtnl.setLink, replaced by tests to play a kernel without IPv6.
var vmacSetLink = (*rtnl).setLink

// configure writes the settings of the new interface index: vmacDevconf, and no IPv6
// link-local address (RFC 5798 §7.4 forbids one from the virtual MAC, and a shared address
// would fail duplicate address detection on the next MASTER).
// A kernel booted with ipv6.disable=1 refuses any change naming AF_INET6 (EAFNOSUPPORT): an
// IPv4 interface gets its IPv4 settings alone there, since it can have no IPv6 address.
func (v *vmacLink) configure(rt *rtnl, index int) error {
	err := vmacSetLink(rt, index, nil, vmacDevconf, true)
	if errors.Is(err, unix.EAFNOSUPPORT) && !v.ipv6 {
		err = vmacSetLink(rt, index, nil, vmacDevconf, false)
	}
	return err
}

// setUp sets the interface administratively up or down.
func (v *vmacLink) setUp(index int, up bool) error {
	rt, err := v.h.handles()
	if err != nil {
		return err
	}
	return rt.setLink(index, &up, nil, false)
}

// enterARPLocked enters the IPv4 addresses of ps in the filter, with links: the parent must
// neither answer for them nor announce them from the moment they are local.
func (v *vmacLink) enterARPLocked(ps []netip.Prefix, links ...string) error {
	var es []vmacARPEntry
	for _, p := range ps {
		if a := p.Addr(); a.Is4() && !v.arp[a] && v.primary.Is4() {
			es = append(es, vmacARPEntry{parent: v.parent, addr: a, primary: v.primary})
		}
	}
	if err := v.h.vmacFilter.add(es, links...); err != nil {
		return err
	}
	for _, e := range es {
		v.arp[e.addr] = true
	}
	return nil
}

// leaveARPLocked takes the IPv4 addresses of ps out of the filter.
func (v *vmacLink) leaveARPLocked(ps []netip.Prefix) error {
	var es []vmacARPEntry
	for _, p := range ps {
		if a := p.Addr(); v.arp[a] {
			es = append(es, vmacARPEntry{parent: v.parent, addr: a, primary: v.primary})
		}
	}
	if err := v.h.vmacFilter.remove(es); err != nil {
		return err
	}
	for _, e := range es {
		delete(v.arp, e.addr)
	}
	return nil
}

var errVMACClosed = errors.New("hostnet: virtual MAC interface closed")

// Bind sets the macvlan up, creating it first if it is missing, and binds ps there (see
// link.Bind), after entering the IPv4 ones in the filter.
func (v *vmacLink) Bind(ctx context.Context, ps []netip.Prefix) error {
	if err := v.bind(ctx, ps); err != nil {
		return fmt.Errorf("bind addresses on %s: %w", v.name, err)
	}
	return nil
}

func (v *vmacLink) bind(ctx context.Context, ps []netip.Prefix) error {
	if err := checkPrefixes(ps); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return errVMACClosed
	}
	d, _, err := v.ensure()
	if err != nil {
		return err
	}
	// The interface's own entry too, so that every Bind writes to the tables, even one that
	// enters no address (IPv6, or addresses entered already): a batch that finds them deleted
	// by another tool writes them again (vmacFilter.update) before the interface is up.
	if err := v.enterARPLocked(ps, v.name); err != nil {
		return err
	}
	if d.flags&unix.IFF_UP == 0 {
		if err := v.setUp(d.index, true); err != nil {
			return fmt.Errorf("set %s up: %w", v.name, err)
		}
	}
	v.up.Store(true)
	return v.inner.bind(ctx, ps)
}

// Unbind removes ps from the macvlan (see link.Unbind). When no address is left wanted there,
// it sets the macvlan down first: the instance is no longer MASTER, and a down link sends
// nothing, not even the MLD reports that leaving the addresses' groups would send with the
// virtual MAC.
func (v *vmacLink) Unbind(ctx context.Context, ps []netip.Prefix) error {
	if err := v.unbind(ctx, ps); err != nil {
		return fmt.Errorf("unbind addresses on %s: %w", v.name, err)
	}
	return nil
}

func (v *vmacLink) unbind(ctx context.Context, ps []netip.Prefix) error {
	if err := checkPrefixes(ps); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var errs []error
	if rest := slices.DeleteFunc(v.inner.wanted(), func(p netip.Prefix) bool { return slices.Contains(ps, p) }); len(rest) == 0 {
		// Not reported as removed by the watch when the kernel takes the IPv6 ones down.
		v.inner.unwant(ps)
		v.up.Store(false)
		if err := v.down(); err != nil {
			errs = append(errs, err)
		}
	}
	err := v.inner.unbind(ctx, ps)
	if err == nil {
		err = v.leaveARPLocked(ps)
	}
	return errors.Join(append(errs, err)...)
}

// down sets the macvlan down if it is up; a missing one is down.
func (v *vmacLink) down() error {
	rt, err := v.h.handles()
	if err != nil {
		return err
	}
	d, err := rt.linkDetailByName(v.name)
	if errors.Is(err, unix.ENODEV) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.flags&unix.IFF_UP == 0 || !v.owned(d) {
		return nil
	}
	if err := v.setUp(d.index, false); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("set %s down: %w", v.name, err)
	}
	return nil
}

// Announce announces addrs from the macvlan, with the virtual MAC.
func (v *vmacLink) Announce(ctx context.Context, addrs []netip.Addr) error {
	return v.inner.Announce(ctx, addrs)
}

// AnnounceBurst announces addrs count times from the macvlan, with the virtual MAC.
func (v *vmacLink) AnnounceBurst(ctx context.Context, addrs []netip.Addr, count int) error {
	return v.inner.AnnounceBurst(ctx, addrs, count)
}

// WatchRemoved reports the addresses bound on the macvlan that something else removes (its
// deletion included).
func (v *vmacLink) WatchRemoved(ctx context.Context, fn func(netip.Prefix)) error {
	return v.inner.WatchRemoved(ctx, fn)
}

// Retain gives the addresses on the macvlan a lifetime (a handoff, docs/design.md §4.9.1).
func (v *vmacLink) Retain(ctx context.Context, ps []netip.Prefix, lifetime time.Duration) error {
	return v.inner.Retain(ctx, ps, lifetime)
}

// WatchLinkState reports the parent's state: the instance follows its interface. When the
// parent is up the macvlan is made to exist (the kernel deletes it with a parent that is
// deleted, and a rebuild brings the parent back under its name).
func (v *vmacLink) WatchLinkState(ctx context.Context, fn func(up bool)) error {
	return v.base.WatchLinkState(ctx, func(up bool) {
		if up {
			v.mu.Lock()
			if !v.closed {
				if _, _, err := v.ensure(); err != nil {
					v.h.log.Warn("creating the virtual MAC interface again; retrying at the next bind", "interface", v.name, "err", err)
				}
			}
			v.mu.Unlock()
		}
		fn(up)
	})
}

// Sender returns what the instance sends its adverts with: while the macvlan is up (MASTER),
// multicast adverts leave from it, with the virtual MAC as source (RFC 5798 §7.3: switches
// learn where the virtual MAC is); everything else, a backup's and a resigning MASTER's last
// adverts, and unicast adverts (a routed peer cannot be reached from the macvlan, which has no
// route of its own), goes through s, the instance's socket on the parent.
func (v *vmacLink) Sender(s vrrp.Sender) vrrp.Sender { return &vmacSender{v: v, parent: s} }

type vmacSender struct {
	v      *vmacLink
	parent vrrp.Sender
	warned atomic.Bool
}

func (s *vmacSender) WriteTo(b []byte, dst netip.Addr) error {
	if dst.IsMulticast() && s.v.up.Load() {
		s.v.mu.Lock()
		c := s.v.conn
		s.v.mu.Unlock()
		if c != nil {
			err := c.WriteTo(b, dst)
			if err == nil {
				return nil
			}
			if !s.warned.Swap(true) {
				s.v.h.log.Warn("sending an advert from the virtual MAC interface; sending from the interface instead", "interface", s.v.name, "err", err)
			}
		}
	}
	return s.parent.WriteTo(b, dst)
}

// Close stops using the interface. With keep (a MASTER handed over to its successor on this
// host, docs/design.md §4.9.1), the macvlan stays as it is, up with its addresses, and so do
// its record and filter entries, for the successor to adopt. Otherwise it is deleted, with
// its addresses, its record and its filter entries; the tables go with the last interface.
func (v *vmacLink) Close(keep bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	c := v.conn
	v.conn = nil
	v.up.Store(false)
	var errs []error
	if c != nil {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	h := v.h
	defer func() {
		h.mu.Lock()
		delete(h.vmacs, v.name)
		h.mu.Unlock()
	}()
	if keep {
		return errors.Join(errs...)
	}
	if err := v.remove(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the virtual MAC interface %s: %w", v.name, err)
	}
	return nil
}

// remove deletes the macvlan (its addresses go with it), then its filter entries and record.
// v.mu is held.
func (v *vmacLink) remove() error {
	rt, err := v.h.handles()
	if err != nil {
		return err
	}
	d, err := rt.linkDetailByName(v.name)
	switch {
	case errors.Is(err, unix.ENODEV):
	case err != nil:
		return err
	case !v.owned(d):
		v.h.log.Warn("not deleting an interface that is not kube-vrrp's", "interface", v.name)
	default:
		if err := rt.delLink(d.index); err != nil && !errors.Is(err, unix.ENODEV) {
			return err
		}
		v.h.log.Info("deleted the virtual MAC interface", "interface", v.name)
	}
	// Its addresses went with it: out of what this process added, and of the record.
	if v.inner != nil {
		v.inner.mu.Lock()
		var gone []netip.Prefix
		for p := range v.inner.added {
			gone = append(gone, p)
		}
		v.inner.mu.Unlock()
		v.inner.unwant(gone)
		v.inner.forget(gone)
	}
	var errs []error
	var es []vmacARPEntry
	for a := range v.arp {
		es = append(es, vmacARPEntry{parent: v.parent, addr: a, primary: v.primary})
	}
	if err := v.h.vmacFilter.remove(es, v.name); err != nil {
		errs = append(errs, err)
	} else {
		clear(v.arp)
	}
	if st := v.h.state; st != nil {
		if err := st.forgetVMAC(v.name); err != nil {
			errs = append(errs, err)
		}
	}
	v.h.mu.Lock()
	delete(v.h.vmacMade, v.name)
	v.h.mu.Unlock()
	if err := v.h.vmacFilter.closeIfUnused(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DropVirtualMAC deletes the virtual MAC interface of VRID vrid for a family on parent that a
// predecessor handed over and no instance of this Host took over (docs/design.md §4.9.1),
// with its addresses and filter entries. An interface an instance of this Host uses, or one
// that is not in the state's record, is left alone; none is no error.
func (h *Host) DropVirtualMAC(parent string, vrid uint8, ipv6 bool) error {
	name := vmacName(parent, vrid, ipv6)
	h.mu.Lock()
	_, live := h.vmacs[name]
	closed := h.closed
	h.mu.Unlock()
	if live || closed || h.state == nil {
		return nil
	}
	r, ok := h.state.vmacRecorded(name)
	if !ok || r.Parent != parent {
		return nil
	}
	if err := h.dropVMAC(r); err != nil {
		return fmt.Errorf("remove the handed-over virtual MAC interface %s: %w", name, err)
	}
	return nil
}

func (h *Host) dropVMAC(r vmacRecord) error {
	rt, err := h.handles()
	if err != nil {
		return err
	}
	h.mu.Lock()
	if h.vmacFilter == nil {
		h.vmacFilter = &vmacFilter{h: h}
	}
	f := h.vmacFilter
	h.mu.Unlock()
	d, err := rt.linkDetailByName(r.Name)
	var es []vmacARPEntry
	switch {
	case errors.Is(err, unix.ENODEV):
	case err != nil:
		return err
	case !ownsVMAC(d, r):
	default:
		have, err := rt.addrs(d.index)
		if err != nil {
			return err
		}
		for _, a := range have {
			if a.Prefix.Addr().Is4() && !r.IPv6 {
				es = append(es, vmacARPEntry{parent: r.Parent, addr: a.Prefix.Addr(), primary: r.Primary})
			}
		}
		if err := rt.delLink(d.index); err != nil && !errors.Is(err, unix.ENODEV) {
			return err
		}
		h.log.Info("deleted the handed-over virtual MAC interface no instance took over", "interface", r.Name)
	}
	var errs []error
	if err := f.remove(es, r.Name); err != nil {
		errs = append(errs, err)
	}
	if err := h.state.forgetVMAC(r.Name); err != nil {
		errs = append(errs, err)
	}
	if err := f.closeIfUnused(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeVMACs releases the virtual MAC interfaces still open when the Host closes: their
// sockets close, the interfaces stay (their instances did not stop; a handoff may be under
// way).
func (h *Host) closeVMACs() {
	h.mu.Lock()
	var vs []*vmacLink
	for _, v := range h.vmacs {
		if v != nil {
			vs = append(vs, v)
		}
	}
	h.mu.Unlock()
	for _, v := range vs {
		_ = v.Close(true)
	}
}
