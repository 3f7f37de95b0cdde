package desired

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	probepkg "github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// Defaults of a VirtualIP (docs/design.md §1.1).
const (
	// DefaultVersion is the VRRP version of a VirtualIP that sets none.
	DefaultVersion = 3
	// DefaultIntervalV3 fails a lost node over in about 0.36 s (3 intervals plus skew).
	DefaultIntervalV3 = 100 * time.Millisecond
	// DefaultIntervalV2 is keepalived's advert_int 1.
	DefaultIntervalV2 = time.Second
	// DefaultPriority is the priority of a node without spec.priority or a nodes[] override.
	DefaultPriority = 100
	// DefaultProbeInterval is the interval of a probe that sets none: pkg/probe's default.
	DefaultProbeInterval = probepkg.DefaultInterval
	// OwnerPriority is vrrp.OwnerPriority, the priority of the address owner (RFC 5798 §6.1);
	// For accepts it only on a node that has the addresses as its own.
	OwnerPriority = vrrp.OwnerPriority
)

// passwordMaxLength is the longest PASS password: the size of the authentication data.
const passwordMaxLength = packet.PassLen

// Checksum modes of spec.checksumMode.
const (
	ChecksumPseudoHeader = "PseudoHeader"
	ChecksumRFC9568      = "RFC9568"
)

// AuthPass is the only supported spec.authentication.type.
const AuthPass = "PASS"

// Validate checks every rule of a VirtualIP that needs no cluster or node state, as the CRD's
// schema and CEL rules do, so that objects written before a rule existed and manifests read
// from files get the same answers. Each error names the field and says what to change.
//
// A priority of 255 says "this node owns the addresses" (has them as real interface addresses,
// RFC 5798 §5.2.4), and only one node can. So it is refused for the whole group
// (spec.priority) and for more than one nodes[] override; whether the one node that has it
// really owns the addresses cannot be known statically: For checks it against the node's
// interfaces.
//
// The bounds are constants with one home each: the protocol's in pkg/vrrp (VRID, priorities,
// intervals, link names), the probes' in pkg/probe (timing, fall and rise, weights, process
// names), the API's own in api/v1alpha1 (list sizes, string lengths, preemptDelay). The CRD's
// markers repeat the numbers; TestCRDBounds checks the generated schema against the constants.
// The rules of a probe (its target, timing, fall, rise and weight) and of an interface name are
// pkg/probe's (probe.Check*), which the agent's probe.Spec.Validate applies too; here they get
// the field's path.
func Validate(vip *v1alpha1.VirtualIP) field.ErrorList {
	var errs field.ErrorList
	if vip == nil {
		return field.ErrorList{field.Required(field.NewPath("spec"), "a VirtualIP is required")}
	}
	meta := field.NewPath("metadata")
	switch {
	case vip.Name == "":
		errs = append(errs, field.Required(meta.Child("name"), "give the VirtualIP a name"))
	default:
		for _, msg := range validation.IsDNS1123Subdomain(vip.Name) {
			errs = append(errs, field.Invalid(meta.Child("name"), vip.Name, msg))
		}
	}

	spec := &vip.Spec
	p := field.NewPath("spec")

	if spec.VRID < vrrp.MinVRID || spec.VRID > vrrp.MaxVRID {
		errs = append(errs, field.Invalid(p.Child("vrid"), spec.VRID, fmt.Sprintf(
			"set vrid to %d..%d, the virtual_router_id shared by every member of the group", vrrp.MinVRID, vrrp.MaxVRID)))
	}

	ver := versionOf(spec)
	if ver != 2 && ver != 3 {
		e := field.NotSupported(p.Child("version"), spec.Version, []string{"2", "3"})
		e.Detail += "; omit it for the default 3"
		errs = append(errs, e)
	}

	family, addrErrs := validateAddresses(spec.Addresses, p.Child("addresses"))
	errs = append(errs, addrErrs...)
	if family == 6 && ver == 2 {
		errs = append(errs, field.Invalid(p.Child("version"), spec.Version,
			"VRRPv2 carries only IPv4: set version: 3 for IPv6 addresses"))
	}

	if spec.AdvertisementInterval != nil && (ver == 2 || ver == 3) {
		errs = append(errs, validateInterval(ver, spec.AdvertisementInterval.Duration, p.Child("advertisementInterval"))...)
	}

	if spec.Priority != nil {
		pp := p.Child("priority")
		if *spec.Priority == OwnerPriority {
			errs = append(errs, field.Invalid(pp, *spec.Priority,
				"255 here would make every selected node claim to own the addresses, and only one node can (RFC 5798 §5.2.4): "+
					"set 1..254 here, and 255 only in the nodes[] override of the one node that has the addresses as its own interface addresses"))
		} else {
			errs = append(errs, validatePriority(*spec.Priority, pp)...)
		}
	}

	errs = append(errs, validateNodes(spec.Nodes, p.Child("nodes"))...)

	if spec.NodeSelector == nil && len(spec.Nodes) == 0 {
		errs = append(errs, field.Required(p.Child("nodeSelector"), MembersRequired))
	}
	if spec.NodeSelector != nil {
		sp := p.Child("nodeSelector")
		selErrs := metav1validation.ValidateLabelSelector(spec.NodeSelector, metav1validation.LabelSelectorValidationOptions{}, sp)
		errs = append(errs, selErrs...)
		if len(selErrs) == 0 {
			if _, err := metav1.LabelSelectorAsSelector(spec.NodeSelector); err != nil {
				errs = append(errs, field.Invalid(sp, spec.NodeSelector, err.Error()))
			}
		}
	}

	if spec.PreemptDelay != nil {
		d := spec.PreemptDelay.Duration
		if d < 0 || d > v1alpha1.MaxPreemptDelay {
			errs = append(errs, field.Invalid(p.Child("preemptDelay"), d.String(),
				"set preemptDelay to 0s..1h (0s preempts at once)"))
		}
	}

	if spec.Interface != "" {
		errs = append(errs, invalid(p.Child("interface"), spec.Interface, probepkg.CheckInterfaceName(spec.Interface))...)
	}

	if spec.Unicast != nil {
		errs = append(errs, validatePeers(spec.Unicast.Peers, family, spec.Addresses, p.Child("unicast", "peers"))...)
	}

	if a := spec.Authentication; a != nil {
		ap := p.Child("authentication")
		if ver == 3 {
			errs = append(errs, field.Forbidden(ap,
				"VRRPv3 has no authentication (RFC 5798 §9): remove authentication or set version: 2"))
		}
		if a.Type != AuthPass {
			e := field.NotSupported(ap.Child("type"), a.Type, []string{AuthPass})
			e.Detail += " (keepalived's auth_type PASS; AH is not supported)"
			errs = append(errs, e)
		}
		if a.SecretRef.Name == "" {
			errs = append(errs, field.Required(ap.Child("secretRef", "name"), "name the Secret holding the password"))
		} else if len(a.SecretRef.Name) > v1alpha1.MaxNameLength {
			errs = append(errs, field.TooLong(ap.Child("secretRef", "name"), "", v1alpha1.MaxNameLength))
		}
		if a.SecretRef.Key == "" {
			errs = append(errs, field.Required(ap.Child("secretRef", "key"), "name the key of the Secret holding the password"))
		} else if len(a.SecretRef.Key) > v1alpha1.MaxNameLength {
			errs = append(errs, field.TooLong(ap.Child("secretRef", "key"), "", v1alpha1.MaxNameLength))
		}
	}

	switch spec.ChecksumMode {
	case "", ChecksumPseudoHeader, ChecksumRFC9568:
	default:
		errs = append(errs, field.NotSupported(p.Child("checksumMode"), spec.ChecksumMode,
			[]string{ChecksumPseudoHeader, ChecksumRFC9568}))
	}

	errs = append(errs, validateProbes(spec.Probes, p.Child("probes"))...)
	errs = append(errs, validateAnnouncements(spec.Announcements, p.Child("announcements"))...)
	errs = append(errs, validateNotify(spec.Notify, p.Child("notify"))...)

	if spec.Preempt != nil && !*spec.Preempt && len(spec.Probes) > 0 {
		weighted, zero := 0, 0
		for _, pr := range spec.Probes {
			if pr.Weight == 0 {
				zero++
			} else {
				weighted++
			}
		}
		if weighted > 0 && zero == 0 {
			errs = append(errs, field.Invalid(p.Child("preempt"), false,
				"a weighted probe only changes the priority, and without preemption a lower priority never moves the VIP: "+
					"set preempt: true, or give a probe weight 0 so that its failure resigns the VIP"))
		}
	}
	return errs
}

// versionOf returns the effective protocol version.
func versionOf(spec *v1alpha1.VirtualIPSpec) int32 {
	if spec.Version == 0 {
		return DefaultVersion
	}
	return spec.Version
}

// ParseAddress parses a virtual address written as CIDR or bare IP (a bare address is a /32 or
// /128). The address keeps its host bits: "192.0.2.10/24" is the address 192.0.2.10 on a /24.
func ParseAddress(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if pfx.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write the IPv4 address", s)
		}
		return pfx, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has a zone; drop the %%%s, the interface comes from spec.interface", s, a.Zone())
	}
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write the IPv4 address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func familyName(f int) string {
	if f == 4 {
		return "IPv4"
	}
	return "IPv6"
}

// validateAddresses checks spec.addresses and returns their family (4 or 6, 0 if unknown).
func validateAddresses(addrs []string, p *field.Path) (int, field.ErrorList) {
	var errs field.ErrorList
	if len(addrs) == 0 {
		return 0, field.ErrorList{field.Required(p, `list at least one virtual address, e.g. ["192.0.2.10/24"]`)}
	}
	if len(addrs) > v1alpha1.MaxAddresses {
		e := field.TooMany(p, len(addrs), v1alpha1.MaxAddresses)
		e.Detail += "; split the addresses over several VirtualIPs (one VRID each)"
		errs = append(errs, e)
	}
	family := 0
	seen := make(map[netip.Addr]int, len(addrs))
	for i, s := range addrs {
		ip := p.Index(i)
		pfx, err := ParseAddress(s)
		if err != nil {
			errs = append(errs, field.Invalid(ip, s,
				"write an IP address or CIDR such as 192.0.2.10, 192.0.2.10/24 or 2001:db8::10/64: "+err.Error()))
			continue
		}
		a := pfx.Addr()
		switch {
		case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			errs = append(errs, field.Invalid(ip, s, "use a unicast address: unspecified, loopback, multicast and broadcast addresses cannot be virtual addresses"))
			continue
		case pfx.Bits() == 0:
			errs = append(errs, field.Invalid(ip, s, "a /0 prefix would claim every address; use the subnet's length (e.g. /24) or a bare address"))
			continue
		}
		f := familyOf(a)
		if family == 0 {
			family = f
		} else if f != family {
			errs = append(errs, field.Invalid(ip, s, fmt.Sprintf(
				"all addresses of a VirtualIP are one family and the first is %s: move %s addresses to another VirtualIP",
				familyName(family), familyName(f))))
			continue
		}
		if j, dup := seen[a]; dup {
			e := field.Duplicate(ip, s)
			e.Detail = fmt.Sprintf("the address is already listed at index %d; remove one", j)
			errs = append(errs, e)
			continue
		}
		seen[a] = i
	}
	return family, errs
}

func validateInterval(ver int32, d time.Duration, p *field.Path) field.ErrorList {
	switch ver {
	case 2:
		if d < vrrp.MinIntervalV2 || d > vrrp.MaxIntervalV2 || d%vrrp.IntervalStepV2 != 0 {
			return field.ErrorList{field.Invalid(p, d.String(),
				"VRRPv2 advertises whole seconds: set 1s..255s, or set version: 3 for sub-second intervals")}
		}
	case 3:
		if d < vrrp.MinIntervalV3 || d > vrrp.MaxIntervalV3 || d%vrrp.IntervalStepV3 != 0 {
			return field.ErrorList{field.Invalid(p, d.String(),
				"VRRPv3 advertises centiseconds: set 10ms..40.95s in steps of 10ms (default 100ms)")}
		}
	}
	return nil
}

func validatePriority(v int32, p *field.Path) field.ErrorList {
	if v < vrrp.MinPriority || v > vrrp.OwnerPriority {
		return field.ErrorList{field.Invalid(p, v,
			"set a priority of 1..254 (255 only on the node that owns the addresses)")}
	}
	return nil
}

func validateNodes(nodes []v1alpha1.NodeOverride, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(nodes) > v1alpha1.MaxNodes {
		errs = append(errs, field.TooMany(p, len(nodes), v1alpha1.MaxNodes))
	}
	seen := make(map[string]int, len(nodes))
	owner := -1 // the first override with priority 255
	for i, n := range nodes {
		np := p.Index(i)
		if n.Name == "" {
			errs = append(errs, field.Required(np.Child("name"), "name the Node this override applies to"))
		} else if j, dup := seen[n.Name]; dup {
			e := field.Duplicate(np.Child("name"), n.Name)
			e.Detail = fmt.Sprintf("node is already overridden at index %d; merge the two entries", j)
			errs = append(errs, e)
		} else {
			seen[n.Name] = i
			if len(n.Name) > v1alpha1.MaxNameLength {
				errs = append(errs, field.TooLong(np.Child("name"), n.Name, v1alpha1.MaxNameLength))
			}
		}
		if n.Priority != nil {
			errs = append(errs, validatePriority(*n.Priority, np.Child("priority"))...)
			if *n.Priority == OwnerPriority {
				if owner >= 0 {
					errs = append(errs, field.Invalid(np.Child("priority"), *n.Priority, fmt.Sprintf(
						"only one node can own the addresses, and nodes[%d] (%s) has priority 255 already: "+
							"keep 255 only for the node that has the addresses as its own interface addresses, and set 1..254 for the others",
						owner, nodes[owner].Name)))
				} else {
					owner = i
				}
			}
		}
		if n.Interface != "" {
			errs = append(errs, invalid(np.Child("interface"), n.Interface, probepkg.CheckInterfaceName(n.Interface))...)
		}
	}
	return errs
}

// invalid is an Invalid error at p with the message of a rule's err, or nothing when err is
// nil. The rules of probes and interface names are pkg/probe's (probe.Check*): a rule has one
// home, and its message says what to write.
func invalid(p *field.Path, v any, err error) field.ErrorList {
	if err == nil {
		return nil
	}
	return field.ErrorList{field.Invalid(p, v, err.Error())}
}

func validatePeers(peers []string, family int, vips []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(peers) > v1alpha1.MaxPeers {
		errs = append(errs, field.TooMany(p, len(peers), v1alpha1.MaxPeers))
	}
	vipSet := make(map[netip.Addr]bool, len(vips))
	for _, s := range vips {
		if pfx, err := ParseAddress(s); err == nil {
			vipSet[pfx.Addr()] = true
		}
	}
	seen := make(map[netip.Addr]int, len(peers))
	for i, s := range peers {
		ip := p.Index(i)
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, field.Invalid(ip, s, "write a peer's IP address without prefix length, e.g. 192.0.2.12"))
			continue
		}
		if a.Zone() != "" {
			errs = append(errs, field.Invalid(ip, s, "drop the zone; the interface comes from spec.interface"))
			continue
		}
		a = a.Unmap()
		switch {
		case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
			errs = append(errs, field.Invalid(ip, s, "a unicast peer is the unicast address of another router"))
			continue
		case family != 0 && familyOf(a) != family:
			errs = append(errs, field.Invalid(ip, s, fmt.Sprintf(
				"the addresses are %s, so the peers must be %s addresses too", familyName(family), familyName(family))))
			continue
		case vipSet[a]:
			errs = append(errs, field.Invalid(ip, s, "a peer cannot be one of spec.addresses: list the routers' own addresses"))
			continue
		}
		if j, dup := seen[a]; dup {
			e := field.Duplicate(ip, s)
			e.Detail = fmt.Sprintf("the peer is already listed at index %d; remove one", j)
			errs = append(errs, e)
			continue
		}
		seen[a] = i
	}
	return errs
}

func validateProbes(probes []v1alpha1.ProbeSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(probes) > v1alpha1.MaxProbes {
		errs = append(errs, field.TooMany(p, len(probes), v1alpha1.MaxProbes))
	}
	seen := make(map[string]int, len(probes))
	for i := range probes {
		pr := &probes[i]
		pp := p.Index(i)
		switch {
		case pr.Name == "":
			errs = append(errs, field.Required(pp.Child("name"), "name the probe (it appears in status and metrics)"))
		default:
			if j, dup := seen[pr.Name]; dup {
				e := field.Duplicate(pp.Child("name"), pr.Name)
				e.Detail = fmt.Sprintf("probe names are unique; index %d has the same name", j)
				errs = append(errs, e)
			} else {
				seen[pr.Name] = i
			}
			for _, msg := range validation.IsDNS1123Label(pr.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), pr.Name, msg))
			}
		}
		errs = append(errs, validateProbeHandler(pr, pp)...)

		interval := DefaultProbeInterval
		if pr.Interval != nil {
			interval = pr.Interval.Duration
			errs = append(errs, invalid(pp.Child("interval"), interval.String(), probepkg.CheckInterval(interval))...)
		}
		if t := pr.Timeout; t != nil {
			errs = append(errs, invalid(pp.Child("timeout"), t.Duration.String(), probepkg.CheckTimeout(t.Duration, interval))...)
		}
		if pr.Fall != nil {
			errs = append(errs, invalid(pp.Child("fall"), *pr.Fall, probepkg.CheckFall(int(*pr.Fall)))...)
		}
		if pr.Rise != nil {
			errs = append(errs, invalid(pp.Child("rise"), *pr.Rise, probepkg.CheckRise(int(*pr.Rise)))...)
		}
		errs = append(errs, invalid(pp.Child("weight"), pr.Weight, probepkg.CheckWeight(int(pr.Weight)))...)
	}
	return errs
}

func validateProbeHandler(pr *v1alpha1.ProbeSpec, pp *field.Path) field.ErrorList {
	var set []string
	if pr.Process != nil {
		set = append(set, "process")
	}
	if pr.TCP != nil {
		set = append(set, "tcp")
	}
	if pr.HTTP != nil {
		set = append(set, "http")
	}
	if pr.Exec != nil {
		set = append(set, "exec")
	}
	if pr.Interface != nil {
		set = append(set, "interface")
	}
	if pr.File != nil {
		set = append(set, "file")
	}
	switch {
	case len(set) == 0:
		return field.ErrorList{field.Required(pp, "set exactly one of process, tcp, http, exec, interface, file")}
	case len(set) > 1:
		return field.ErrorList{field.Forbidden(pp, fmt.Sprintf(
			"a probe checks one thing but sets %s: keep exactly one, or split it into several probes", strings.Join(set, " and ")))}
	}

	var errs field.ErrorList
	switch {
	case pr.Process != nil:
		errs = append(errs, invalid(pp.Child("process", "name"), pr.Process.Name, probepkg.CheckProcessName(pr.Process.Name))...)
		switch e, ep := pr.Process.Executable, pp.Child("process", "executable"); {
		case len(e) > v1alpha1.MaxExecutableLength:
			errs = append(errs, field.TooLong(ep, "", v1alpha1.MaxExecutableLength))
		case e != "":
			errs = append(errs, invalid(ep, e, probepkg.CheckExecutable(e))...)
		}
	case pr.TCP != nil:
		ap := pp.Child("tcp", "address")
		if len(pr.TCP.Address) > v1alpha1.MaxHostPortLength {
			errs = append(errs, field.TooLong(ap, "", v1alpha1.MaxHostPortLength))
		} else {
			errs = append(errs, invalid(ap, pr.TCP.Address, probepkg.CheckAddress(pr.TCP.Address))...)
		}
	case pr.HTTP != nil:
		hp := pp.Child("http")
		if len(pr.HTTP.URL) > v1alpha1.MaxURLLength {
			errs = append(errs, field.TooLong(hp.Child("url"), "", v1alpha1.MaxURLLength))
		} else {
			errs = append(errs, invalid(hp.Child("url"), pr.HTTP.URL, probepkg.CheckURL(pr.HTTP.URL))...)
		}
		if s := pr.HTTP.ExpectedStatus; s != nil {
			errs = append(errs, invalid(hp.Child("expectedStatus"), *s, probepkg.CheckExpectedStatus(int(*s)))...)
		}
		if pr.HTTP.TLS != nil {
			errs = append(errs, validateHTTPTLS(pr.HTTP, hp.Child("tls"))...)
		}
	case pr.Exec != nil:
		ep := pp.Child("exec", "command")
		c := pr.Exec.Command
		if len(c) > v1alpha1.MaxExecArgs {
			errs = append(errs, field.TooMany(ep, len(c), v1alpha1.MaxExecArgs))
		}
		if err := probepkg.CheckCommand(c); err != nil {
			if len(c) == 0 {
				errs = append(errs, field.Required(ep, err.Error()))
			} else {
				errs = append(errs, invalid(ep.Index(0), c[0], err)...)
			}
		}
		for i, arg := range c {
			if len(arg) > v1alpha1.MaxExecArgLength {
				errs = append(errs, field.TooLong(ep.Index(i), "", v1alpha1.MaxExecArgLength))
			}
		}
	case pr.Interface != nil:
		errs = append(errs, invalid(pp.Child("interface", "name"), pr.Interface.Name, probepkg.CheckInterfaceName(pr.Interface.Name))...)
	case pr.File != nil:
		if fp := pp.Child("file", "path"); len(pr.File.Path) > v1alpha1.MaxFilePathLength {
			errs = append(errs, field.TooLong(fp, "", v1alpha1.MaxFilePathLength))
		} else {
			errs = append(errs, invalid(fp, pr.File.Path, probepkg.CheckPath(pr.File.Path))...)
		}
	}
	return errs
}

// validateHTTPTLS applies pkg/probe's rules to the tls of an http probe (p.TLS is set), each
// with its field's path: every file's path, the server name, and CheckHTTPS's rules of the
// combination. tls needs an https:// URL even when it sets nothing (checkTLSScheme).
func validateHTTPTLS(p *v1alpha1.HTTPProbe, tp *field.Path) field.ErrorList {
	var errs field.ErrorList
	t := p.TLS
	for _, f := range []struct{ name, path string }{
		{"caFile", t.CAFile}, {"certFile", t.CertFile}, {"keyFile", t.KeyFile}, {"bearerTokenFile", t.BearerTokenFile},
	} {
		switch fp := tp.Child(f.name); {
		case len(f.path) > v1alpha1.MaxTLSFileLength:
			errs = append(errs, field.TooLong(fp, "", v1alpha1.MaxTLSFileLength))
		case f.path != "":
			errs = append(errs, invalid(fp, f.path, probepkg.CheckCredentialFile(f.path))...)
		}
	}
	switch sp := tp.Child("serverName"); {
	case len(t.ServerName) > v1alpha1.MaxServerNameLength:
		errs = append(errs, field.TooLong(sp, "", v1alpha1.MaxServerNameLength))
	case t.ServerName != "":
		errs = append(errs, invalid(sp, t.ServerName, probepkg.CheckServerName(t.ServerName))...)
	}
	if err := checkTLSScheme(p); err != nil {
		errs = append(errs, field.Forbidden(tp, err.Error()))
	}
	// CheckHTTPS joins what is wrong: one error each.
	err := probepkg.CheckHTTPS(p.URL, httpsOptions(t))
	each := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		each = j.Unwrap()
	}
	for _, e := range each {
		if e != nil {
			errs = append(errs, field.Forbidden(tp, e.Error()))
		}
	}
	return errs
}

// validateAnnouncements applies the bounds of spec.announcements (api/v1alpha1 limits).
func validateAnnouncements(a *v1alpha1.AnnouncementSpec, p *field.Path) field.ErrorList {
	if a == nil {
		return nil
	}
	var errs field.ErrorList
	count := func(v *int32, name, def string) {
		if v != nil && (*v < 1 || *v > v1alpha1.MaxAnnounceCount) {
			errs = append(errs, field.Invalid(p.Child(name), *v, fmt.Sprintf(
				"set %s to 1..%d messages per address (default %s)", name, v1alpha1.MaxAnnounceCount, def)))
		}
	}
	count(a.Count, "count", "2")
	count(a.RefreshCount, "refreshCount", "1")
	if a.RepeatDelay != nil {
		if d := a.RepeatDelay.Duration; d < 0 || d > v1alpha1.MaxAnnounceRepeatDelay {
			errs = append(errs, field.Invalid(p.Child("repeatDelay"), d.String(),
				"set repeatDelay to 0s (no second burst) ..1h"))
		}
	}
	if a.RefreshInterval != nil {
		if d := a.RefreshInterval.Duration; d < v1alpha1.MinAnnounceRefresh || d > v1alpha1.MaxAnnounceRefresh {
			errs = append(errs, field.Invalid(p.Child("refreshInterval"), d.String(),
				"set refreshInterval to 1s..24h, or remove it for no refresh"))
		}
	}
	return errs
}

// validateNotify applies the rules of spec.notify: each command an argv of 1..MaxExecArgs
// elements of at most MaxExecArgLength bytes, the first an absolute path, at least one
// command, and the timeout's bounds.
func validateNotify(n *v1alpha1.NotifySpec, p *field.Path) field.ErrorList {
	if n == nil {
		return nil
	}
	var errs field.ErrorList
	cmds := []struct {
		name string
		argv []string
	}{{"master", n.Master}, {"backup", n.Backup}, {"fault", n.Fault}, {"stop", n.Stop}, {"all", n.All}}
	given := 0
	for _, c := range cmds {
		if c.argv == nil {
			continue
		}
		given++
		cp := p.Child(c.name)
		switch {
		case len(c.argv) == 0 || !strings.HasPrefix(c.argv[0], "/"):
			// Only the program is shown: the arguments may carry credentials.
			prog := ""
			if len(c.argv) > 0 {
				prog = probepkg.ShownProgram(c.argv[0])
			}
			errs = append(errs, field.Invalid(cp.Index(0), prog, "give the command as an argv list whose first element is the "+
				"program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-"+c.name+"]"))
		case len(c.argv) > v1alpha1.MaxExecArgs:
			errs = append(errs, field.TooMany(cp, len(c.argv), v1alpha1.MaxExecArgs))
		}
		for i, a := range c.argv {
			if len(a) > v1alpha1.MaxExecArgLength {
				errs = append(errs, field.TooLong(cp.Index(i), "", v1alpha1.MaxExecArgLength))
			}
		}
	}
	if given == 0 {
		errs = append(errs, field.Required(p, "give at least one of master, backup, fault, stop or all (or remove notify)"))
	}
	if n.Timeout != nil {
		if d := n.Timeout.Duration; d < v1alpha1.MinNotifyTimeout || d > v1alpha1.MaxNotifyTimeout {
			errs = append(errs, field.Invalid(p.Child("timeout"), d.String(), "set timeout to 100ms..10m (default 10s)"))
		}
	}
	return errs
}
