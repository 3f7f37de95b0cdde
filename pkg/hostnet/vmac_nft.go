//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names inside the virtual MAC filter's two tables, VMACTable in the arp and ip6 families, as
// `nft list table arp kube_vrrp_vmac` shows them.
const (
	// vmacAddrsSet (arp) holds "parent . address" for every virtual IPv4 address bound on a
	// virtual MAC interface of parent; vmacSrcMap (arp) maps the same keys to the address the
	// parent writes as the sender of its ARP requests instead (the instance's own, primary
	// address).
	vmacAddrsSet = "vips"
	vmacSrcMap   = "src"
	// vmacLinksSet (ip6) holds the names of the virtual MAC interfaces.
	vmacLinksSet = "links"
)

// ARP hooks (include/uapi/linux/netfilter_arp.h): NF_ARP_IN and NF_ARP_OUT.
var (
	arpHookIn  = nftables.ChainHookRef(0)
	arpHookOut = nftables.ChainHookRef(1)
)

// icmpv6RA is the ICMPv6 type of a router advertisement (RFC 4861 §4.2).
const icmpv6RA = 134

// ARP packet layout (RFC 826) for Ethernet and IPv4, from the start of the ARP header.
const (
	arpOffOp       = 6  // operation, 2 bytes
	arpOffSenderIP = 14 // sender protocol address, 4 bytes
	arpOffTargetIP = 24 // target protocol address, 4 bytes
)

// arpEthIPv4 is the start of an ARP header for Ethernet and IPv4: hardware type 1, protocol
// type 0x0800, address lengths 6 and 4.
var arpEthIPv4 = []byte{0, 1, 0x08, 0x00, 6, 4}

// vmacFilter keeps the host from undoing what the virtual MAC interfaces do (docs/design.md
// §5.9), with two nftables tables that belong to kube-vrrp alone:
//
//	table arp kube_vrrp_vmac {   # as `nft list ruleset` shows them, comments left out
//		set vips { type ifname . ipv4_addr; }
//		map src { type ifname . ipv4_addr : ipv4_addr; }
//		chain input {
//			type filter hook input priority filter; policy accept;
//			arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation request
//				iifname . arp daddr ip @vips counter drop
//		}
//		chain output {
//			type filter hook output priority filter; policy accept;
//			arp htype 1 arp ptype ip arp hlen 6 arp plen 4
//				arp saddr ip set oifname . arp saddr ip map @src counter
//		}
//	}
//	table ip6 kube_vrrp_vmac {
//		set links { type ifname; }
//		chain input {
//			type filter hook input priority filter; policy accept;
//			iifname @links meta l4proto ipv6-icmp icmpv6 type nd-router-advert counter drop
//		}
//	}
//
// A virtual address bound on the macvlan is still a local address of the host, and its parent
// link receives every broadcast the macvlan does: by default (arp_ignore 0) the parent answers
// ARP requests for it with its own MAC address, and sends ARP requests for the address's
// replies (which are routed out of the parent) with the virtual address as sender and its own
// MAC, which every neighbour asked takes as the virtual address's. The arp table drops the
// former on the parent and writes the parent's own address into the latter, for the virtual
// addresses only and without changing a sysctl of the parent. IPv6 needs neither: neighbour
// discovery answers only for the addresses of the receiving link and solicits from the
// sending link's own addresses.
//
// The ip6 table drops the router advertisements that reach a virtual MAC interface: with
// accept_ra (the default where the link does not forward) the kernel would configure a SLAAC
// address from the virtual MAC (addr_gen_mode none stops only the link-local address) and a
// default route through the macvlan, neither of which is the node's. The sysctl that says so
// cannot be set over netlink, and a container's /proc/sys is read-only.
//
// The tables belong to kube-vrrp, but another tool may delete them (`nft flush ruleset`, as a
// reload of Debian's nftables.service does): a batch that fails while the tables were thought
// to exist is tried once more, writing the tables again with everything this Host has entered
// (entries and links, kept as a mirror), so that the next Bind restores the filter instead of
// failing for as long as the agent runs.
//
// A vmacFilter is safe for concurrent use.
type vmacFilter struct {
	h *Host

	mu    sync.Mutex // serialises the batches; guards the fields below
	ready bool       // the tables and chains exist as this package writes them
	// entries (by key) and links are what this Host has entered in the tables and not
	// removed since.
	entries map[string]vmacARPEntry
	links   map[string]bool
}

func vmacTables() (arp, ip6 *nftables.Table) {
	return &nftables.Table{Name: VMACTable, Family: nftables.TableFamilyARP},
		&nftables.Table{Name: VMACTable, Family: nftables.TableFamilyIPv6}
}

// vmacSets returns the sets of the tables; their IDs name them within a batch only.
func vmacSets(arp, ip6 *nftables.Table) (addrs, src, links *nftables.Set) {
	key := nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)
	addrs = &nftables.Set{Table: arp, Name: vmacAddrsSet, ID: 11, KeyType: key, Concatenation: true,
		Comment: "parent link . virtual IPv4 address bound on its virtual MAC interface"}
	src = &nftables.Set{Table: arp, Name: vmacSrcMap, ID: 12, KeyType: key, Concatenation: true, IsMap: true,
		DataType: nftables.TypeIPAddr, Comment: "the sender address the parent writes in place of the virtual one"}
	links = &nftables.Set{Table: ip6, Name: vmacLinksSet, ID: 13, KeyType: nftables.TypeIFName,
		Comment: "kube-vrrp's virtual MAC interfaces"}
	return addrs, src, links
}

// addVMACTables queues the creation of the tables, sets, chains and rules; existing ones are
// kept with their elements, and the chains' rules are written afresh.
func addVMACTables(c *nftables.Conn) error {
	arp, ip6 := vmacTables()
	c.AddTable(arp)
	c.AddTable(ip6)
	addrs, src, links := vmacSets(arp, ip6)
	for _, s := range []*nftables.Set{addrs, src, links} {
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
	}
	chain := func(t *nftables.Table, name string, hook *nftables.ChainHook) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: hook,
			Priority: nftables.ChainPriorityFilter})
		c.FlushChain(ch)
		return ch
	}
	rule := func(ch *nftables.Chain, comment string, exprs ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: slices.Concat(exprs...),
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment)})
	}
	ethIPv4 := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: uint32(len(arpEthIPv4))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: arpEthIPv4},
	}
	request := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: arpOffOp, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 1}},
	}
	// A concatenation: the name fills register 1 (16 bytes), the address register 2.
	key := func(meta expr.MetaKey, off uint32) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: meta, Register: 1},
			&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		}
	}
	rule(chain(arp, "input", arpHookIn), "the parent does not answer for a virtual address of its virtual MAC interface",
		ethIPv4, request, key(expr.MetaKeyIIFNAME, arpOffTargetIP), []expr.Any{
			&expr.Lookup{SourceRegister: 1, SetName: addrs.Name, SetID: addrs.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		})
	rule(chain(arp, "output", arpHookOut), "the parent's ARP gives its own address as the sender, not a virtual one",
		ethIPv4, key(expr.MetaKeyOIFNAME, arpOffSenderIP), []expr.Any{
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: src.Name, SetID: src.ID},
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
				Offset: arpOffSenderIP, Len: 4},
			&expr.Counter{},
		})
	rule(chain(ip6, "input", nftables.ChainHookInput), "no SLAAC address or default route on a virtual MAC interface",
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: links.Name, SetID: links.ID},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{icmpv6RA}},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		})
	return nil
}

// deleteVMACTables queues the deletion of both tables, which succeeds also when they do not
// exist.
func deleteVMACTables(c *nftables.Conn) {
	arp, ip6 := vmacTables()
	for _, t := range []*nftables.Table{arp, ip6} {
		c.AddTable(t)
		c.DelTable(t)
	}
}

// ifnameKey is an interface name as nftables keys hold it: IFNAMSIZ bytes, NUL padded.
func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// vmacARPEntry is one virtual IPv4 address bound on a virtual MAC interface of parent, and the
// parent's own address, written as the sender of its ARP requests in place of it.
type vmacARPEntry struct {
	parent  string
	addr    netip.Addr
	primary netip.Addr
}

func (e vmacARPEntry) key() []byte { return append(ifnameKey(e.parent), e.addr.AsSlice()...) }

// addVMACElements queues the addition of entries and links; adding is idempotent.
func addVMACElements(c *nftables.Conn, entries []vmacARPEntry, links []string) error {
	arp, ip6 := vmacTables()
	addrs, src, ls := vmacSets(arp, ip6)
	if len(entries) > 0 {
		var ks, ms []nftables.SetElement
		for _, e := range entries {
			ks = append(ks, nftables.SetElement{Key: e.key()})
			ms = append(ms, nftables.SetElement{Key: e.key(), Val: e.primary.AsSlice()})
		}
		if err := c.SetAddElements(addrs, ks); err != nil {
			return err
		}
		if err := c.SetAddElements(src, ms); err != nil {
			return err
		}
	}
	if len(links) > 0 {
		var es []nftables.SetElement
		for _, l := range links {
			es = append(es, nftables.SetElement{Key: ifnameKey(l)})
		}
		if err := c.SetAddElements(ls, es); err != nil {
			return err
		}
	}
	return nil
}

// update runs fn in one batch after making sure the tables exist: the first time (and after
// closeIfUnused) they are created in the same batch, with what the mirror holds. A batch that
// fails on tables thought to exist (deleted by another tool) is tried again that way. mirror,
// if set, changes the mirror as fn changes the tables, under the same lock: before the batch
// when it removes (a batch that writes the tables again leaves those out too), after it when
// it adds (only what is in the tables).
func (f *vmacFilter) update(fn func(c *nftables.Conn) error, mirror func(), removes bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries, f.links = map[string]vmacARPEntry{}, map[string]bool{}
	}
	if mirror != nil && removes {
		mirror()
	}
	batch := func() error {
		return f.h.nftConn(func(c *nftables.Conn) error {
			if !f.ready {
				if err := addVMACTables(c); err != nil {
					return err
				}
				// Kept (adding is idempotent), or written again if the tables were gone.
				entries := slices.Collect(maps.Values(f.entries))
				if err := addVMACElements(c, entries, slices.Collect(maps.Keys(f.links))); err != nil {
					return err
				}
			}
			if err := fn(c); err != nil {
				return err
			}
			return c.Flush()
		})
	}
	err := batch()
	if err != nil && f.ready && !errors.Is(err, errHostClosed) {
		f.ready = false
		err = batch()
	}
	if err != nil {
		return fmt.Errorf("nftables tables arp and ip6 %s: %w", VMACTable, err)
	}
	f.ready = true
	if mirror != nil && !removes {
		mirror()
	}
	return nil
}

// ensure creates the tables if this Host has not yet.
func (f *vmacFilter) ensure() error {
	return f.update(func(*nftables.Conn) error { return nil }, nil, false)
}

// add adds the ARP entries and the links.
func (f *vmacFilter) add(entries []vmacARPEntry, links ...string) error {
	if len(entries) == 0 && len(links) == 0 {
		return nil
	}
	return f.update(func(c *nftables.Conn) error { return addVMACElements(c, entries, links) }, func() {
		for _, e := range entries {
			f.entries[string(e.key())] = e
		}
		for _, l := range links {
			f.links[l] = true
		}
	}, false)
}

// remove removes the ARP entries and the links; those that are not there are ignored.
func (f *vmacFilter) remove(entries []vmacARPEntry, links ...string) error {
	if len(entries) == 0 && len(links) == 0 {
		return nil
	}
	mirror := func() {
		for _, e := range entries {
			delete(f.entries, string(e.key()))
		}
		for _, l := range links {
			delete(f.links, l)
		}
	}
	return f.update(func(c *nftables.Conn) error {
		// Deleting an element that is not there fails the whole batch: add them first, so
		// that the delete always finds them, with no read-modify-write race.
		if err := addVMACElements(c, entries, links); err != nil {
			return err
		}
		arp, ip6 := vmacTables()
		addrs, src, ls := vmacSets(arp, ip6)
		var ks []nftables.SetElement
		for _, e := range entries {
			ks = append(ks, nftables.SetElement{Key: e.key()})
		}
		if len(ks) > 0 {
			if err := c.SetDeleteElements(addrs, ks); err != nil {
				return err
			}
			if err := c.SetDeleteElements(src, ks); err != nil {
				return err
			}
		}
		var es []nftables.SetElement
		for _, l := range links {
			es = append(es, nftables.SetElement{Key: ifnameKey(l)})
		}
		if len(es) > 0 {
			return c.SetDeleteElements(ls, es)
		}
		return nil
	}, mirror, true)
}

// closeIfUnused deletes both tables when no virtual MAC interface is listed in them any more
// (none of this Host's, none a predecessor handed over).
func (f *vmacFilter) closeIfUnused() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.links) > 0 {
		return nil // this Host's own, whatever the tables hold now
	}
	err := f.h.nftConn(func(c *nftables.Conn) error {
		_, ip6 := vmacTables()
		if t, err := c.ListTableOfFamily(VMACTable, ip6.Family); err != nil || t == nil {
			return nil // no table
		}
		_, _, links := vmacSets(vmacTables())
		es, err := c.GetSetElements(links)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		if len(es) > 0 {
			return nil
		}
		deleteVMACTables(c)
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("delete nftables tables arp and ip6 %s: %w", VMACTable, err)
	}
	f.ready = false
	clear(f.entries)
	return nil
}

// vmacFilterContent reads the ARP entries and links the tables hold, in the calling thread's
// network namespace; no table: none.
func vmacFilterContent(c *nftables.Conn) ([]vmacARPEntry, []string, error) {
	arp, ip6 := vmacTables()
	_, src, links := vmacSets(arp, ip6)
	var entries []vmacARPEntry
	if t, err := c.ListTableOfFamily(VMACTable, arp.Family); err == nil && t != nil {
		es, err := c.GetSetElements(src)
		if err != nil {
			return nil, nil, fmt.Errorf("list map %s: %w", src.Name, err)
		}
		for _, e := range es {
			if len(e.Key) != unix.IFNAMSIZ+4 || len(e.Val) != 4 {
				continue
			}
			entries = append(entries, vmacARPEntry{parent: ifnameOfKey(e.Key[:unix.IFNAMSIZ]),
				addr: netip.AddrFrom4([4]byte(e.Key[unix.IFNAMSIZ:])), primary: netip.AddrFrom4([4]byte(e.Val))})
		}
	}
	var names []string
	if t, err := c.ListTableOfFamily(VMACTable, ip6.Family); err == nil && t != nil {
		es, err := c.GetSetElements(links)
		if err != nil {
			return nil, nil, fmt.Errorf("list set %s: %w", links.Name, err)
		}
		for _, e := range es {
			names = append(names, ifnameOfKey(e.Key))
		}
	}
	return entries, names, nil
}

func ifnameOfKey(b []byte) string {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// rebuildVMACFilter replaces the tables, in the calling thread's network namespace, with ones
// holding entries and links alone, in one batch; with neither, it deletes them. It reports
// whether there were tables before.
func rebuildVMACFilter(entries []vmacARPEntry, links []string) (bool, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		if len(entries) == 0 && len(links) == 0 {
			return false, nil // no nftables here, so no table either
		}
		return false, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	defer func() { _ = c.CloseLasting() }()
	existed := false
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyARP, nftables.TableFamilyIPv6} {
		if t, err := c.ListTableOfFamily(VMACTable, fam); err == nil && t != nil {
			existed = true
		}
	}
	if !existed && len(entries) == 0 && len(links) == 0 {
		return false, nil
	}
	deleteVMACTables(c)
	if len(entries) > 0 || len(links) > 0 {
		if err := addVMACTables(c); err != nil {
			return existed, err
		}
		if err := addVMACElements(c, entries, links); err != nil {
			return existed, err
		}
	}
	if err := c.Flush(); err != nil {
		return existed, fmt.Errorf("nftables tables arp and ip6 %s: %w", VMACTable, err)
	}
	return existed, nil
}
