// Package lbpool is the pure side of VirtualIPPools (docs/design.md §7.12): a pool's address
// entries read into ranges, the pairing of its n-th address with its n-th VRID, the VirtualIP
// an allocation becomes and its name, and Validate, which applies the rules of the CRD to
// pools written before a rule existed. No I/O: controllers/loadbalancer allocates with it.
package lbpool

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// Entry is one entry of a pool's addresses: the addresses First..Last, both included.
type Entry struct {
	First, Last netip.Addr
}

// Contains reports whether a is in the entry.
func (e Entry) Contains(a netip.Addr) bool {
	return e.First.BitLen() == a.BitLen() && e.First.Compare(a) <= 0 && a.Compare(e.Last) <= 0
}

// Overlaps reports whether the entries share an address.
func (e Entry) Overlaps(o Entry) bool { return e.Contains(o.First) || o.Contains(e.First) }

// String writes the entry as a range.
func (e Entry) String() string { return e.First.String() + "-" + e.Last.String() }

// special are the addresses no VirtualIP may have (desired.Validate refuses them, as the
// VirtualIP's CRD does): unspecified, loopback, multicast, the IPv4 broadcast address.
var special = map[int][]netip.Prefix{
	4: {netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("255.255.255.255/32")},
	6: {netip.MustParsePrefix("::/128"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("ff00::/8")},
}

// Errors of ParseEntry, one per rule of the CRD (api/v1alpha1/virtualippool_types.go), with
// the words of its message.
var (
	ErrSyntax  = errors.New("write a CIDR or a range first-last (no spaces, zones or leading zeros)")
	ErrFamily  = errors.New("the entry is of the other family")
	ErrNetwork = errors.New("write a CIDR by its network address, its host bits zero")
	ErrOrder   = errors.New("a range goes from its first to its last address")
	ErrHex     = errors.New("write IPv6 addresses in hex only")
	ErrSpan    = errors.New("an IPv6 range lies in one /112 (its addresses differ only in the last group): write a larger one as a CIDR")
	ErrUnicast = errors.New("the pool's addresses are unicast: an entry must not take in the unspecified, loopback, multicast or broadcast addresses")
)

// ParseEntry reads an entry of the family's addresses (4 or 6): a CIDR by its network address
// or a range first-last, of that family, as the CRD's rules take them. Its error is one of the
// Err* values, wrapped with the entry.
func ParseEntry(s string, family int) (Entry, error) {
	e, err := parseEntry(s, family)
	if err != nil {
		return Entry{}, fmt.Errorf("%q: %w", s, err)
	}
	return e, nil
}

func parseEntry(s string, family int) (Entry, error) {
	var e Entry
	if strings.Contains(s, "/") {
		p, err := parseCIDR(s)
		if err != nil {
			return e, ErrSyntax
		}
		if fam(p.Addr()) != family {
			return e, ErrFamily
		}
		if family == 6 && strings.Contains(s, ".") {
			return e, ErrHex
		}
		if p.Masked().Addr() != p.Addr() {
			return e, ErrNetwork
		}
		e = Entry{p.Addr(), lastOf(p)}
	} else {
		first, last, ok := strings.Cut(s, "-")
		if !ok || strings.Contains(last, "-") {
			return e, ErrSyntax
		}
		a, errA := parseIP(first)
		b, errB := parseIP(last)
		if errA != nil || errB != nil {
			return e, ErrSyntax
		}
		if fam(a) != family || fam(b) != family {
			return e, ErrFamily
		}
		if family == 6 && strings.Contains(s, ".") {
			return e, ErrHex
		}
		if family == 6 && !netip.PrefixFrom(a, 112).Masked().Contains(b) {
			return e, ErrSpan
		}
		if a.Compare(b) > 0 {
			return e, ErrOrder
		}
		e = Entry{a, b}
	}
	for _, p := range special[family] {
		if e.Overlaps(Entry{p.Addr(), lastOf(p)}) {
			return e, ErrUnicast
		}
	}
	return e, nil
}

// parseIP reads an address as CEL's isIP does (netip.ParseAddr): no zone, no IPv4-mapped IPv6.
func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, err
	}
	if a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, errors.New("zone or IPv4-mapped address")
	}
	return a, nil
}

// parseCIDR reads a CIDR as CEL's isCIDR does (netip.ParsePrefix, no IPv4-mapped IPv6).
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, errors.New("IPv4-mapped address")
	}
	return p, nil
}

func fam(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// lastOf is the last address of p.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Family is one family of a pool, read: its entries in order, the prefix length its addresses
// get (0: a bare address, /32 or /128), and its VRIDs.
type Family struct {
	Family       int // 4 or 6
	Entries      []Entry
	PrefixLength int
	FirstVRID    int32
	LastVRID     int32
}

// Families reads the families of a pool, IPv4 first. An entry the rules refuse is an error
// (Validate says which rule): a pool that fails them offers nothing.
func Families(pool *v1alpha1.VirtualIPPool) ([]Family, error) {
	var out []Family
	add := func(family int, addrs []string, prefix *int32, vrids v1alpha1.VRIDRange) error {
		f := Family{Family: family, FirstVRID: vrids.First, LastVRID: vrids.Last}
		if prefix != nil {
			f.PrefixLength = int(*prefix)
		}
		for _, s := range addrs {
			e, err := ParseEntry(s, family)
			if err != nil {
				return err
			}
			f.Entries = append(f.Entries, e)
		}
		out = append(out, f)
		return nil
	}
	if p := pool.Spec.IPv4; p != nil {
		if err := add(4, p.Addresses, p.PrefixLength, p.VRIDs); err != nil {
			return nil, err
		}
	}
	if p := pool.Spec.IPv6; p != nil {
		if err := add(6, p.Addresses, p.PrefixLength, p.VRIDs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Family returns the pool's family f (4 or 6), if it has it and it is valid.
func FamilyOf(pool *v1alpha1.VirtualIPPool, f int) (Family, bool) {
	fs, err := Families(pool)
	if err != nil {
		return Family{}, false
	}
	for _, x := range fs {
		if x.Family == f {
			return x, true
		}
	}
	return Family{}, false
}

// vrids is the number of VRIDs, 0 if the range is empty or out of 1..255.
func (f Family) vrids() int {
	if f.FirstVRID < 1 || f.LastVRID > 255 || f.FirstVRID > f.LastVRID {
		return 0
	}
	return int(f.LastVRID-f.FirstVRID) + 1
}

// size is the number of addresses of e, or max if it has more.
func size(e Entry, max int) int {
	n := new(big.Int).Sub(new(big.Int).SetBytes(e.Last.AsSlice()), new(big.Int).SetBytes(e.First.AsSlice()))
	n.Add(n, big.NewInt(1))
	if !n.IsInt64() || n.Int64() > int64(max) {
		return max
	}
	return int(n.Int64())
}

// Len is the number of addresses the family offers: each with a VRID, as many as the shorter
// of its addresses and its VRIDs.
func (f Family) Len() int {
	n, left := 0, f.vrids()
	for _, e := range f.Entries {
		k := size(e, left)
		n += k
		left -= k
		if left == 0 {
			break
		}
	}
	return n
}

// Addresses is the number of addresses of the entries, counted up to 65536.
func (f Family) Addresses() int {
	n := 0
	for _, e := range f.Entries {
		n += size(e, 65536-n)
		if n >= 65536 {
			break
		}
	}
	return n
}

// At returns the i-th address of the family (0 <= i < Len) and its VRID, the i-th of the range.
func (f Family) At(i int) (netip.Addr, int32) {
	vrid := f.FirstVRID + int32(i)
	for _, e := range f.Entries {
		k := size(e, i+1)
		if i < k {
			return add(e.First, i), vrid
		}
		i -= k
	}
	return netip.Addr{}, 0
}

// Index returns the position of a among the addresses the family offers, and its VRID.
func (f Family) Index(a netip.Addr) (int, int32, bool) {
	n := f.Len()
	i := 0
	for _, e := range f.Entries {
		if i >= n {
			break
		}
		if e.Contains(a) {
			off := new(big.Int).Sub(new(big.Int).SetBytes(a.AsSlice()), new(big.Int).SetBytes(e.First.AsSlice()))
			if !off.IsInt64() || i+int(off.Int64()) >= n {
				return 0, 0, false
			}
			j := i + int(off.Int64())
			return j, f.FirstVRID + int32(j), true
		}
		i += size(e, n-i)
	}
	return 0, 0, false
}

// Contains reports whether a is in one of the family's entries (whether or not it has a VRID).
func (f Family) Contains(a netip.Addr) bool {
	for _, e := range f.Entries {
		if e.Contains(a) {
			return true
		}
	}
	return false
}

// Overlaps reports whether f and o (of one family) share an address, and whether their VRID
// ranges overlap.
func (f Family) Overlaps(o Family) (addresses, vrids bool) {
	if f.Family != o.Family {
		return false, false
	}
	for _, a := range f.Entries {
		for _, b := range o.Entries {
			if a.Overlaps(b) {
				addresses = true
			}
		}
	}
	vrids = f.FirstVRID <= o.LastVRID && o.FirstVRID <= f.LastVRID
	return addresses, vrids
}

// add returns a + n.
func add(a netip.Addr, n int) netip.Addr {
	b := a.AsSlice()
	carry := n
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		s := int(b[i]) + carry
		b[i] = byte(s)
		carry = s >> 8
	}
	r, _ := netip.AddrFromSlice(b)
	return r
}
