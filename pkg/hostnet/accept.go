//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names inside AcceptTable, shown by `nft list table inet kube_vrrp`.
const (
	acceptChain = "input"
	blockedV4   = "blocked_v4"
	blockedV6   = "blocked_v6"
)

// acceptPriority is the priority of the input chain, a little before the standard filter
// priority (0). In netfilter an accept verdict ends only the chain that issues it while a drop
// is final, so the priority does not decide whether a blocked packet is dropped; it decides
// what the other chains of the hook see. At -10 the chain runs after connection tracking
// (-200) and destination NAT (-100), so the destination matched is the one the packet is
// finally delivered to, and before the filter-priority chains of iptables-nft, firewalld and
// distribution rulesets, which therefore never log, count or reject (with an ICMP error that
// would reveal the address is held here) the packets this table drops.
const acceptPriority nftables.ChainPriority = -10

// icmpv6NS is the ICMPv6 type of a neighbour solicitation (RFC 4861 §4.3); icmpv6NA, the
// advertisement, is next to it.
const icmpv6NS = 135

var errAcceptFilterClosed = errors.New("hostnet: accept filter closed")

// AcceptFilter drops the packets addressed to a set of virtual addresses on the Host's network
// namespace: it is how a master that does not own the addresses honours Accept_Mode off
// (RFC 5798 §6.1 defines the parameter; by §6.4.3 such a master accepts packets addressed to
// the virtual addresses only when Accept_Mode is True). The addresses stay bound and the node still answers ARP and IPv6 neighbour
// discovery for them, so traffic it routes for the virtual router keeps coming.
//
// The filter is one nftables table, AcceptTable:
//
//	table inet kube_vrrp {  # as `nft list table inet kube_vrrp` shows it, comments left out
//		set blocked_v4 { type ipv4_addr; }
//		set blocked_v6 { type ipv6_addr; }
//		chain input {
//			type filter hook input priority -10; policy accept;
//			icmpv6 type 135-136 accept
//			ip daddr @blocked_v4 counter drop
//			ip6 daddr @blocked_v6 counter drop
//		}
//	}
//
// Neighbour solicitations and advertisements are accepted before the drops because a neighbour
// unreachability probe (RFC 4861 §7.3.3) is a solicitation sent to the address itself: dropping
// it would make the clients' neighbour entries for the address fail. ARP is not seen by the
// inet family and needs no exception.
//
// The caller decides which addresses to block; the design is to block the addresses of every
// instance configured with accept off whatever its state: on a backup they are not local, so
// the drop costs nothing, and on takeover there is no window in which they are accepted. An
// address owner (priority 255) always accepts and is never blocked.
//
// An AcceptFilter is safe for concurrent use. Close it before its Host: once the Host is
// closed, every method fails and the table is left for RemoveStaleAcceptTable.
type AcceptFilter struct {
	h *Host

	mu     sync.Mutex // serialises the batches, so each method is one atomic change
	closed bool
}

// AcceptFilter creates the filter's table in the Host's network namespace, empty, replacing
// in the same atomic batch any table of that name an earlier agent left. It needs
// CAP_NET_ADMIN and a kernel with nf_tables.
func (h *Host) AcceptFilter() (*AcceptFilter, error) {
	f := &AcceptFilter{h: h}
	err := f.h.nftConn(func(c *nftables.Conn) error {
		t := acceptTable()
		// Adding the table first makes the delete succeed whether or not a stale table exists;
		// the kernel applies the whole batch or none of it.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		ch := c.AddChain(&nftables.Chain{
			Name:     acceptChain,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookInput,
			Priority: nftables.ChainPriorityRef(acceptPriority),
		})
		v4, v6 := acceptSets(t)
		comment := "virtual addresses of VRRP instances with accept: false (RFC 5798 Accept_Mode)"
		v4.Comment, v6.Comment = comment, comment
		if err := c.AddSet(v4, nil); err != nil {
			return err
		}
		if err := c.AddSet(v6, nil); err != nil {
			return err
		}
		for _, r := range acceptRules(t, ch, v4, v6) {
			c.AddRule(r)
		}
		return c.Flush()
	})
	if err != nil {
		return nil, fmt.Errorf("create nftables table inet %s: %w", AcceptTable, err)
	}
	return f, nil
}

func acceptTable() *nftables.Table {
	return &nftables.Table{Name: AcceptTable, Family: nftables.TableFamilyINet}
}

// acceptSets returns the two sets of blocked addresses. Their IDs only name them within a
// batch; they are set here so that the library's process-wide ID counter is not used.
func acceptSets(t *nftables.Table) (v4, v6 *nftables.Set) {
	v4 = &nftables.Set{Table: t, Name: blockedV4, ID: 1, KeyType: nftables.TypeIPAddr}
	v6 = &nftables.Set{Table: t, Name: blockedV6, ID: 2, KeyType: nftables.TypeIP6Addr}
	return v4, v6
}

func acceptRules(t *nftables.Table, ch *nftables.Chain, v4, v6 *nftables.Set) []*nftables.Rule {
	nfproto := func(p byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		}
	}
	rule := func(comment string, exprs ...[]expr.Any) *nftables.Rule {
		return &nftables.Rule{
			Table:    t,
			Chain:    ch,
			Exprs:    slices.Concat(exprs...),
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
		}
	}
	nd := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{icmpv6NS}, ToData: []byte{icmpv6NA}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
	drop := func(s *nftables.Set, offset, length uint32) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}
	}
	return []*nftables.Rule{
		rule("neighbour discovery for blocked addresses is still answered", nfproto(unix.NFPROTO_IPV6), nd),
		// Destination address: IPv4 header bytes 16-19, IPv6 header bytes 24-39.
		rule("accept: false", nfproto(unix.NFPROTO_IPV4), drop(v4, 16, 4)),
		rule("accept: false", nfproto(unix.NFPROTO_IPV6), drop(v6, 24, 16)),
	}
}

// nftConn runs fn with an nftables connection in the Host's network namespace, opened for this
// call only (the accept filter's and the virtual MAC filter's). The Host's lock is held so that
// the Host cannot close its namespace handle under fn.
func (h *Host) nftConn(fn func(c *nftables.Conn) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errHostClosed
	}
	return h.do(func() error {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return fmt.Errorf("open nftables netlink socket: %w", err)
		}
		defer func() { _ = c.CloseLasting() }()
		return fn(c)
	})
}

// Block adds addrs to the blocked addresses, in one atomic batch; addresses already blocked
// are kept. A zone is ignored: the block holds on every link. Invalid input changes nothing.
func (f *AcceptFilter) Block(addrs []netip.Addr) error {
	if err := f.update(addrs, false); err != nil {
		return fmt.Errorf("block %v (accept: false): %w", addrs, err)
	}
	return nil
}

// Unblock removes addrs from the blocked addresses, in one atomic batch; addresses that are
// not blocked are ignored. A zone is ignored. Invalid input changes nothing.
func (f *AcceptFilter) Unblock(addrs []netip.Addr) error {
	if err := f.update(addrs, true); err != nil {
		return fmt.Errorf("unblock %v: %w", addrs, err)
	}
	return nil
}

func (f *AcceptFilter) update(addrs []netip.Addr, remove bool) error {
	v4, v6, err := acceptElements(addrs)
	if err != nil {
		return err
	}
	if len(v4)+len(v6) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errAcceptFilterClosed
	}
	return f.h.nftConn(func(c *nftables.Conn) error {
		s4, s6 := acceptSets(acceptTable())
		for _, u := range []struct {
			s    *nftables.Set
			elts []nftables.SetElement
		}{{s4, v4}, {s6, v6}} {
			if len(u.elts) == 0 {
				continue
			}
			// Adding is idempotent (no NLM_F_EXCL). Deleting an element that is not in the set
			// fails the whole batch, so an unblock adds the elements first: within a batch the
			// delete then always finds them, with no read-modify-write race.
			if err := c.SetAddElements(u.s, u.elts); err != nil {
				return err
			}
			if remove {
				if err := c.SetDeleteElements(u.s, u.elts); err != nil {
					return err
				}
			}
		}
		return c.Flush()
	})
}

// acceptElements checks addrs and returns them as set elements, one per address.
func acceptElements(addrs []netip.Addr) (v4, v6 []nftables.SetElement, err error) {
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		switch {
		case !a.IsValid():
			return nil, nil, errors.New("an address is empty: pass IPv4 or IPv6 virtual addresses")
		case a.Is4In6():
			return nil, nil, fmt.Errorf("%s is an IPv4-mapped IPv6 address, which never appears on the wire: pass %s", a, a.Unmap())
		case a.IsUnspecified() || a.IsMulticast():
			return nil, nil, fmt.Errorf("%s is not a unicast address: a virtual address must be unicast", a)
		}
		a = a.WithZone("")
		if seen[a] {
			continue
		}
		seen[a] = true
		e := nftables.SetElement{Key: a.AsSlice()}
		if a.Is4() {
			v4 = append(v4, e)
		} else {
			v6 = append(v6, e)
		}
	}
	return v4, v6, nil
}

// Blocked returns the blocked addresses, sorted, as the kernel holds them.
func (f *AcceptFilter) Blocked() ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errAcceptFilterClosed
	}
	var out []netip.Addr
	err := f.h.nftConn(func(c *nftables.Conn) error {
		s4, s6 := acceptSets(acceptTable())
		for _, s := range []*nftables.Set{s4, s6} {
			elts, err := c.GetSetElements(s)
			if err != nil {
				return fmt.Errorf("list set %s: %w", s.Name, err)
			}
			for _, e := range elts {
				a, ok := netip.AddrFromSlice(e.Key)
				if !ok {
					return fmt.Errorf("set %s holds a %d-byte key", s.Name, len(e.Key))
				}
				out = append(out, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list addresses blocked by accept: false: %w", err)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// Dropped returns how many packets the filter has dropped since it was created, IPv4 and IPv6
// together.
func (f *AcceptFilter) Dropped() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errAcceptFilterClosed
	}
	var n uint64
	err := f.h.nftConn(func(c *nftables.Conn) error {
		t := acceptTable()
		rules, err := c.GetRules(t, &nftables.Chain{Name: acceptChain, Table: t})
		if err != nil {
			return err
		}
		// Only the drop rules count.
		for _, r := range rules {
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					n += ctr.Packets
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the accept: false drop counters: %w", err)
	}
	return n, nil
}

// Close deletes the filter's table, unblocking every address. Closing twice is harmless;
// after Close the other methods fail.
func (f *AcceptFilter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	err := f.h.nftConn(func(c *nftables.Conn) error {
		deleteAcceptTable(c)
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("delete nftables table inet %s: %w", AcceptTable, err)
	}
	f.closed = true
	return nil
}

// deleteAcceptTable queues the deletion of AcceptTable, which succeeds also when the table
// does not exist.
func deleteAcceptTable(c *nftables.Conn) {
	t := acceptTable()
	c.AddTable(t)
	c.DelTable(t)
}

// RemoveStaleAcceptTable deletes AcceptTable from the calling thread's network namespace: the
// table of an agent that was killed before it could close its AcceptFilter, which would keep
// dropping packets for addresses no instance blocks any more. It reports whether there was
// one. Call it at start, under the host lock, before any AcceptFilter of this process exists.
func RemoveStaleAcceptTable() (bool, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return false, fmt.Errorf("remove stale nftables table inet %s: open netlink socket: %w", AcceptTable, err)
	}
	defer func() { _ = c.CloseLasting() }()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("remove stale nftables table inet %s: list tables: %w", AcceptTable, err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == AcceptTable }) {
		return false, nil
	}
	deleteAcceptTable(c)
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("remove stale nftables table inet %s: %w", AcceptTable, err)
	}
	return true, nil
}
