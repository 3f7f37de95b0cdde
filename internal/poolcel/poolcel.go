// Package poolcel writes the CEL rules of a VirtualIPPool's address entries
// (api/v1alpha1/virtualippool_types.go), which the markers there hold verbatim.
//
// The CRD CEL of Kubernetes 1.31 (the chart's oldest) has no bindings (cel.bind) and no ordering
// of IP addresses, so each rule spells out, inline, every address it compares as a key that
// orders like the address: an int for IPv4, the 32 hex digits of the expanded form for IPv6.
// Written by hand, the rules would be thousands of characters of repetition; here they are
// built from a few named parts. TestMarkers checks that the markers are these rules and, when
// they are not, prints the markers to paste.
package poolcel

import (
	"fmt"
	"strings"
)

// valid: e is a CIDR, or two IP addresses joined by '-'.
func valid(e string) string {
	return fmt.Sprintf("(isCIDR(%[1]s) || (%[1]s.split('-').size() == 2 && isIP(%[1]s.split('-')[0]) && isIP(%[1]s.split('-')[1])))", e)
}

// hex: e has no dotted IPv4 part, which key cannot read in an IPv6 address.
func hex(e string) string { return "!" + e + ".contains('.')" }

// family: every address of the valid entry e is of family f.
func family(e string, f int) string {
	return fmt.Sprintf("(isCIDR(%[1]s) ? cidr(%[1]s).ip().family() == %[2]d : (ip(%[1]s.split('-')[0]).family() == %[2]d && ip(%[1]s.split('-')[1]).family() == %[2]d))", e, f)
}

// ok: e is a valid entry of family f.
func ok(e string, f int) string {
	if f == 6 {
		return "(" + valid(e) + " && " + family(e, f) + " && " + hex(e) + ")"
	}
	return "(" + valid(e) + " && " + family(e, f) + ")"
}

// key4 is an int that orders like the IPv4 address s (a string that isIP accepts).
func key4(s string) string {
	return fmt.Sprintf("(int(%[1]s.split('.')[0]) * 16777216 + int(%[1]s.split('.')[1]) * 65536 + int(%[1]s.split('.')[2]) * 256 + int(%[1]s.split('.')[3]))", s)
}

// group6 is the last group of the IPv6 address s (a string that isIP accepts, in hex only) as
// four lower-case hex digits, which order like it: of two addresses in one /112, the lesser. It
// reads the text as written (after "::", an empty group is zero) rather than string(ip(s)),
// whose length the API server's cost estimator cannot bound, and no IPv6 address is expanded
// whole: the estimator prices each split of each of them so high that the rules would exceed
// the CRD's budget.
func group6(s string) string {
	return fmt.Sprintf("('0000' + %[1]s.substring(%[1]s.lastIndexOf(':') + 1)).substring(size(%[1]s.substring(%[1]s.lastIndexOf(':') + 1))).lowerAscii()", s)
}

// same112 is true when the IPv6 addresses a and b (strings) share their first 112 bits.
func same112(a, b string) string { return fmt.Sprintf("cidr(%s + '/112').containsIP(%s)", a, b) }

// first is the first address of the valid entry e, as written (a CIDR's is its network address,
// which the rule "network" requires).
func first(e string) string {
	return fmt.Sprintf("(isCIDR(%[1]s) ? %[1]s.split('/')[0] : %[1]s.split('-')[0])", e)
}

// contains: the valid entry e of family f holds the address s (a string of family f). An IPv6
// range lies in one /112 (the rule "span"), so s is in it when it is in that /112 and its last
// group is between theirs.
func contains(e, s string, f int) string {
	lo, hi := e+".split('-')[0]", e+".split('-')[1]"
	var between string
	if f == 4 {
		between = fmt.Sprintf("%s <= %s && %s <= %s", key4(lo), key4(s), key4(s), key4(hi))
	} else {
		between = fmt.Sprintf("%s && %s <= %s && %s <= %s", same112(lo, s), group6(lo), group6(s), group6(s), group6(hi))
	}
	return fmt.Sprintf("(isCIDR(%s) ? cidr(%s).containsIP(%s) : (%s))", e, e, s, between)
}

// overlap: two intervals share an address exactly when one holds the other's first address.
func overlap(a, b string, f int) string {
	return "(" + contains(a, first(b), f) + " || " + contains(b, first(a), f) + ")"
}

// special are the addresses no VirtualIP may have (desired.Validate, the VirtualIP's CRD):
// unspecified, loopback, multicast, IPv4 broadcast.
var special = map[int][]string{
	4: {"0.0.0.0/32", "127.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32"},
	6: {"::/128", "::1/128", "ff00::/8"},
}

func list(ss []string) string { return "['" + strings.Join(ss, "', '") + "']" }

// Marker is one rule's marker line (without the comment's "// ").
type Marker struct {
	Name, Text string
}

// Markers returns the markers of the ipv4 (f 4) or ipv6 (f 6) address entries: those of each
// entry (items) and the one of the list (no two entries overlap).
func Markers(f int) []Marker {
	other, sec, bits := 6, "ipv4", 32
	ex := [2]string{"198.18.0.0/28", "198.18.0.100-198.18.0.120"}
	net := [3]string{"", "198.18.0.5/28", "198.18.0.5"}
	if f == 6 {
		other, sec, bits = 4, "ipv6", 128
		ex = [2]string{"2001:db8::/120", "2001:db8::100-2001:db8::1ff"}
		net = [3]string{"", "2001:db8::5/120", "2001:db8::5"}
	}
	lo, hi := "self.split('-')[0]", "self.split('-')[1]"
	ordered := fmt.Sprintf("%s <= %s", key4(lo), key4(hi))
	if f == 6 {
		ordered = fmt.Sprintf("!%s || %s <= %s", same112(lo, hi), group6(lo), group6(hi))
	}
	blocks := special[f]
	var hexOnly []Marker
	if f == 6 {
		hexOnly = []Marker{
			{"hex", fmt.Sprintf("+kubebuilder:validation:items:XValidation:rule=`!%s || %s`,message=`write IPv6 addresses in hex only: 2001:db8::c000:205, not 2001:db8::192.0.2.5`",
				valid("self"), hex("self"))},
			{"span", fmt.Sprintf("+kubebuilder:validation:items:XValidation:rule=`isCIDR(self) || !%s || %s`,message=`an IPv6 range lies in one /112 (its addresses differ only in the last group, as 2001:db8::100-2001:db8::1ff): write a larger one as a CIDR`",
				ok("self", f), same112(lo, hi))},
		}
	}
	return append(hexOnly, []Marker{
		{"syntax", fmt.Sprintf("+kubebuilder:validation:items:XValidation:rule=`%s`,message=`write a CIDR such as %s or a range such as %s (first-last; no spaces, zones or leading zeros)`",
			valid("self"), ex[0], ex[1])},
		{"family", fmt.Sprintf("+kubebuilder:validation:items:XValidation:rule=`!%s || %s`,messageExpression=`'%s.addresses holds IPv%d addresses only: move ' + self + ' to ipv%d.addresses'`",
			valid("self"), family("self", f), sec, f, other)},
		{"network", fmt.Sprintf("+kubebuilder:validation:items:XValidation:rule=`!isCIDR(self) || cidr(self).ip() == cidr(self).masked().ip()`,message=`write a CIDR by its network address, its host bits zero (%s, not %s); a single address is %s/%d`",
			ex[0], net[1], net[2], bits)},
		{"order", fmt.Sprintf("+kubebuilder:validation:items:XValidation:rule=`isCIDR(self) || !%s || %s`,messageExpression=`'a range goes from its first to its last address: write ' + self.split('-')[1] + '-' + self.split('-')[0]`",
			ok("self", f), ordered)},
		{"unicast", fmt.Sprintf("+kubebuilder:validation:items:XValidation:rule=`!%s || !%s.exists(b, %s || cidr(b).containsIP(%s))`,message=`the pool's addresses are unicast: an entry must not take in the unspecified, loopback, multicast or broadcast addresses (%s)`",
			ok("self", f), list(blocks), contains("self", "b.split('/')[0]", f), first("self"), strings.Join(blocks, ", "))},
		{"overlap", fmt.Sprintf("+kubebuilder:validation:XValidation:rule=`self.all(a, self.all(b, a == b || !%s || !%s || !%s))`,messageExpression=`'each address is in one entry of the pool, but entries of ' + self.join(', ') + ' overlap: merge them or make them disjoint'`",
			ok("a", f), ok("b", f), overlap("a", "b", f))},
	}...)
}

// PeersMarker is the marker of the pool's spec that keeps the template's unicast peers out of
// the pool's addresses: a peer is another router's own address, never a virtual one.
func PeersMarker() string {
	in := func(f int) string {
		sec := fmt.Sprintf("ipv%d", f)
		peer := fmt.Sprintf("isIP(p) && ip(p).family() == %d", f)
		if f == 6 {
			peer += " && " + hex("p")
		}
		return fmt.Sprintf("(!has(self.%s) || self.%s.addresses.all(e, !%s || !(%s && %s)))",
			sec, sec, ok("e", f), peer, contains("e", "p", f))
	}
	return fmt.Sprintf("+kubebuilder:validation:XValidation:rule=`!has(self.template.unicast) || !has(self.template.unicast.peers) || self.template.unicast.peers.all(p, %s && %s)`,messageExpression=`'template.unicast.peers lists the routers\\' own addresses and cannot hold an address of the pool; got ' + self.template.unicast.peers.join(', ')`,fieldPath=`.template.unicast.peers`",
		in(4), in(6))
}
