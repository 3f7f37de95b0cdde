package lbpool

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Validate checks every rule of a VirtualIPPool that needs no other object, as the CRD's
// schema and CEL rules do (test/envtest proves they agree), so that a pool written before a
// rule existed is refused by the controller in its Ready condition instead of allocating what
// no VirtualIP may have. The template's rules are desired.Validate's, applied to the template
// as a VirtualIP without its address and VRID.
func Validate(pool *v1alpha1.VirtualIPPool) field.ErrorList {
	var errs field.ErrorList
	if pool == nil {
		return field.ErrorList{field.Required(field.NewPath("spec"), "a VirtualIPPool is required")}
	}
	meta := field.NewPath("metadata", "name")
	switch {
	case pool.Name == "":
		errs = append(errs, field.Required(meta, "give the pool a name"))
	case len(pool.Name) > v1alpha1.MaxPoolNameLength:
		errs = append(errs, field.TooLong(meta, pool.Name, v1alpha1.MaxPoolNameLength))
	default:
		for _, msg := range validation.IsDNS1123Subdomain(pool.Name) {
			errs = append(errs, field.Invalid(meta, pool.Name, msg))
		}
	}
	spec := &pool.Spec
	p := field.NewPath("spec")
	if spec.IPv4 == nil && spec.IPv6 == nil {
		errs = append(errs, field.Required(p, "give the pool its addresses: set ipv4, ipv6 or both"))
	}
	hasInterface := spec.Template.Interface != ""
	if f := spec.IPv4; f != nil {
		errs = append(errs, validateFamily(4, f.Addresses, f.PrefixLength, f.VRIDs, hasInterface, p.Child("ipv4"))...)
	}
	if f := spec.IPv6; f != nil {
		errs = append(errs, validateFamily(6, f.Addresses, f.PrefixLength, f.VRIDs, hasInterface, p.Child("ipv6"))...)
		if spec.Template.Version == 2 {
			errs = append(errs, field.Invalid(p.Child("template", "version"), spec.Template.Version,
				"VRRPv2 carries only IPv4: set template.version: 3 for a pool with ipv6 addresses, or give the IPv6 addresses a pool of their own"))
		}
	}
	errs = append(errs, validateTemplate(&spec.Template, p.Child("template"))...)
	errs = append(errs, validatePeersOutside(pool, p.Child("template", "unicast", "peers"))...)

	np := p.Child("namespaces")
	if len(spec.Namespaces) > v1alpha1.MaxPoolNamespaces {
		errs = append(errs, field.TooMany(np, len(spec.Namespaces), v1alpha1.MaxPoolNamespaces))
	}
	seen := map[string]bool{}
	for i, ns := range spec.Namespaces {
		if seen[ns] {
			errs = append(errs, field.Duplicate(np.Index(i), ns))
		}
		seen[ns] = true
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(np.Index(i), ns, msg))
		}
	}
	if sel := spec.ServiceSelector; sel != nil {
		sp := p.Child("serviceSelector")
		selErrs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, sp)
		errs = append(errs, selErrs...)
		if len(selErrs) == 0 {
			if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
				errs = append(errs, field.Invalid(sp, sel, err.Error()))
			}
		}
	}
	return errs
}

// entryMessages are the words of the CRD's rules, by ParseEntry's errors.
var entryMessages = map[error]string{
	ErrSyntax:  "write a CIDR such as %s or a range such as %s (first-last; no spaces, zones or leading zeros)",
	ErrNetwork: "write a CIDR by its network address, its host bits zero (%s, not %s)",
	ErrOrder:   "a range goes from its first to its last address",
	ErrHex:     "write IPv6 addresses in hex only: 2001:db8::c000:205, not 2001:db8::192.0.2.5",
	ErrSpan:    "an IPv6 range lies in one /112 (its addresses differ only in the last group, as 2001:db8::100-2001:db8::1ff): write a larger one as a CIDR",
	ErrUnicast: "the pool's addresses are unicast: an entry must not take in the unspecified, loopback, multicast or broadcast addresses",
}

func validateFamily(family int, addrs []string, prefix *int32, vrids v1alpha1.VRIDRange, hasInterface bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	ap := p.Child("addresses")
	maxLen, bits, ex := v1alpha1.MaxPoolEntryLength4, 32, [2]string{"198.18.0.0/28", "198.18.0.100-198.18.0.120"}
	other := 6
	if family == 6 {
		maxLen, bits, ex, other = v1alpha1.MaxPoolEntryLength6, 128, [2]string{"2001:db8::/120", "2001:db8::100-2001:db8::1ff"}, 4
	}
	if len(addrs) == 0 {
		errs = append(errs, field.Required(ap, fmt.Sprintf("list at least one CIDR or range, e.g. [%q]", ex[1])))
	}
	if len(addrs) > v1alpha1.MaxPoolEntries {
		errs = append(errs, field.TooMany(ap, len(addrs), v1alpha1.MaxPoolEntries))
	}
	var entries []Entry
	seen := map[string]bool{}
	for i, s := range addrs {
		ip := ap.Index(i)
		if seen[s] {
			errs = append(errs, field.Duplicate(ip, s))
			continue
		}
		seen[s] = true
		if len(s) > maxLen {
			errs = append(errs, field.TooLong(ip, s, maxLen))
			continue
		}
		e, err := parseEntry(s, family)
		switch {
		case err == nil:
			entries = append(entries, e)
			continue
		case errors.Is(err, ErrFamily):
			errs = append(errs, field.Invalid(ip, s, fmt.Sprintf("%s.addresses holds IPv%d addresses only: move %s to ipv%d.addresses",
				p.String()[len("spec."):], family, s, other)))
		case errors.Is(err, ErrSyntax):
			errs = append(errs, field.Invalid(ip, s, fmt.Sprintf(entryMessages[err], ex[0], ex[1])))
		case errors.Is(err, ErrNetwork):
			pf, _ := netip.ParsePrefix(s)
			errs = append(errs, field.Invalid(ip, s, fmt.Sprintf(entryMessages[err], pf.Masked(), s)+
				fmt.Sprintf("; a single address is %s/%d", pf.Addr(), bits)))
		case errors.Is(err, ErrOrder):
			first, last, _ := strings.Cut(s, "-")
			errs = append(errs, field.Invalid(ip, s, entryMessages[err]+": write "+last+"-"+first))
		default:
			errs = append(errs, field.Invalid(ip, s, entryMessages[err]))
		}
	}
	var overlapping []string
	for i, a := range entries {
		for j, b := range entries {
			if i != j && a.Overlaps(b) {
				overlapping = append(overlapping, a.String())
				break
			}
		}
	}
	if len(overlapping) > 0 {
		errs = append(errs, field.Invalid(ap, strings.Join(addrs, ", "), fmt.Sprintf(
			"each address is in one entry of the pool, but entries of %s overlap: merge them or make them disjoint", strings.Join(addrs, ", "))))
	}
	if prefix != nil && (*prefix < 1 || int(*prefix) > bits) {
		errs = append(errs, field.Invalid(p.Child("prefixLength"), *prefix, fmt.Sprintf("set 1..%d: the prefix length of the subnet the addresses are on", bits)))
	}
	if prefix == nil && !hasInterface {
		errs = append(errs, field.Required(p.Child("prefixLength"), fmt.Sprintf(
			"set %s.prefixLength to the prefix length of the subnet the addresses are on, or name the interface in template.interface",
			p.String()[len("spec."):])))
	}
	vp := p.Child("vrids")
	for _, v := range []struct {
		name string
		id   int32
	}{{"first", vrids.First}, {"last", vrids.Last}} {
		if v.id < vrrp.MinVRID || v.id > vrrp.MaxVRID {
			errs = append(errs, field.Invalid(vp.Child(v.name), v.id, fmt.Sprintf("a VRID is %d..%d (keepalived's virtual_router_id)", vrrp.MinVRID, vrrp.MaxVRID)))
		}
	}
	if vrids.First > vrids.Last {
		errs = append(errs, field.Invalid(vp, fmt.Sprintf("%d-%d", vrids.First, vrids.Last),
			"vrids go from first to last: first must be at most last, e.g. {first: 100, last: 149}"))
	}
	return errs
}

// validateTemplate applies desired.Validate to the template as a VirtualIP with an address that
// does not parse: its rules then check the template's own fields alone (those of the addresses,
// their family included, are the pool's), and the errors of spec.addresses and spec.vrid are
// dropped. The rest are reported at spec.template.
func validateTemplate(t *v1alpha1.VirtualIPTemplate, p *field.Path) field.ErrorList {
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "template"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: vrrp.MinVRID, Addresses: []string{"-"}, Version: t.Version, Interface: t.Interface,
		AdvertisementInterval: t.AdvertisementInterval, Priority: t.Priority, Nodes: t.Nodes, NodeSelector: t.NodeSelector,
		Preempt: t.Preempt, PreemptDelay: t.PreemptDelay, Accept: t.Accept, Unicast: t.Unicast, Authentication: t.Authentication,
		ChecksumMode: t.ChecksumMode, Probes: t.Probes, VirtualMAC: t.VirtualMAC, Announcements: t.Announcements, Notify: t.Notify,
	}}
	var errs field.ErrorList
	for _, e := range desired.Validate(vip) {
		if e.Field == "spec.vrid" || e.Field == "spec.addresses" || strings.HasPrefix(e.Field, "spec.addresses[") {
			continue
		}
		e := *e
		e.Field = p.String() + strings.TrimPrefix(e.Field, "spec")
		if e.Field == p.Child("nodeSelector").String() && e.Type == field.ErrorTypeRequired {
			e.Detail = "name the nodes that run the pool's VirtualIPs: set template.nodeSelector (an empty selector {} selects every node that runs the agent) or list the members in template.nodes"
		}
		errs = append(errs, &e)
	}
	return errs
}

// validatePeersOutside refuses a template peer that is one of the pool's addresses: a peer is
// another router's own address.
func validatePeersOutside(pool *v1alpha1.VirtualIPPool, p *field.Path) field.ErrorList {
	u := pool.Spec.Template.Unicast
	if u == nil || len(u.Peers) == 0 {
		return nil
	}
	var families []Family
	for _, f := range []struct {
		family int
		addrs  []string
	}{{4, addrsOf4(pool)}, {6, addrsOf6(pool)}} {
		fam := Family{Family: f.family}
		for _, s := range f.addrs {
			if e, err := parseEntry(s, f.family); err == nil {
				fam.Entries = append(fam.Entries, e)
			}
		}
		families = append(families, fam)
	}
	for _, s := range u.Peers {
		a, err := parseIP(s)
		if err != nil || (a.Is6() && strings.Contains(s, ".")) {
			continue
		}
		for _, f := range families {
			if f.Contains(a) {
				return field.ErrorList{field.Invalid(p, strings.Join(u.Peers, ", "),
					"template.unicast.peers lists the routers' own addresses and cannot hold an address of the pool; got "+strings.Join(u.Peers, ", "))}
			}
		}
	}
	return nil
}

func addrsOf4(pool *v1alpha1.VirtualIPPool) []string {
	if pool.Spec.IPv4 == nil {
		return nil
	}
	return pool.Spec.IPv4.Addresses
}

func addrsOf6(pool *v1alpha1.VirtualIPPool) []string {
	if pool.Spec.IPv6 == nil {
		return nil
	}
	return pool.Spec.IPv6.Addresses
}
