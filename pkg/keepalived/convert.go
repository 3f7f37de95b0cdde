package keepalived

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// SecretNamespace is the namespace of the Secrets Convert writes: the agent reads Secrets
// from its own namespace, kube-vrrp in the documented installation.
const SecretNamespace = "kube-vrrp"

// SecretKey is the key of the password in those Secrets.
const SecretKey = "password"

// keepalived's defaults, where they matter to the conversion.
const (
	defaultPriority    = 100
	defaultVersion     = 2
	defaultAdvertInt   = time.Second
	defaultCheckPeriod = time.Second
)

// What a VirtualIP can hold: the bounds' homes are pkg/vrrp, pkg/probe and api/v1alpha1, and
// the conversion clamps or refuses what is beyond them.
const (
	ownerPriority       = vrrp.OwnerPriority
	maxAuthPass         = packet.PassLen
	maxAddresses        = v1alpha1.MaxAddresses
	maxProbes           = v1alpha1.MaxProbes
	maxProbeWeight      = probe.MaxWeight
	maxProbeCount       = probe.MaxCount
	v3MaxAdvertInterval = vrrp.MaxIntervalV3
	maxProbeInterval    = probe.MaxInterval
	// A VirtualIP's probe checks at most every 10ms and waits at least 1ms (see
	// probe.MinInterval); keepalived takes intervals and timeouts down to 1ms.
	minProbeInterval = probe.MinInterval
	minProbeTimeout  = probe.MinTimeout
)

// Result is the Kubernetes equivalent of keepalived configurations.
type Result struct {
	VirtualIPs []v1alpha1.VirtualIP
	// Secrets hold PASS passwords, one per VirtualIP that uses authentication.
	Secrets []corev1.Secret
	// Warnings list, as "file:line: message", everything that is not expressed exactly.
	Warnings []string
}

// draft is one vrrp_instance converted on its own, before naming and merging.
type draft struct {
	cfg      *Config
	inst     *Instance
	family   int // 4 or 6
	spec     v1alpha1.VirtualIPSpec
	priority int32
	src      netip.Addr   // unicast_src_ip
	peers    []netip.Addr // unicast_peer
	password string       // PASS password (already cut to 8 bytes); "" without PASS
	// probeFrom is where each probe was defined, for merge messages.
	probeFrom map[string]Pos
	// notifyAll is where the generic notify converted into spec.notify.all was set (zero when
	// none was): its warning names the VirtualIP, so it is made once the name is known.
	notifyAll Pos
}

type converter struct {
	cfg     *Config
	warns   []Warning
	errs    ErrorList
	scripts map[string]*Script
	procs   map[string]*TrackProcess
	groupOf map[string]*SyncGroup
	red     *redactor
}

// warnf and errorf are the converter's only ways to report; both redact (see redact.go).
func (c *converter) warnf(p Pos, format string, args ...any) {
	c.warns = append(c.warns, Warning{Pos: p, Msg: c.red.text(fmt.Sprintf(format, args...))})
}

func (c *converter) errorf(p Pos, format string, args ...any) {
	if len(c.errs) < maxErrors {
		c.errs = append(c.errs, &Error{Pos: p, Msg: c.red.text(fmt.Sprintf(format, args...))})
	}
}

// Convert turns one host's configuration into one VirtualIP per vrrp_instance (and a
// Secret per PASS password). The VirtualIP carries this host's priority; use Merge to
// combine the configurations of every host of a group.
//
// One file names no Kubernetes node, so each VirtualIP has nodeSelector: {}, which selects
// every node that runs the agent (docs/design.md §1.1); one warning (EveryNodeWarning, at the
// first instance) says so and how to name the members instead (Merge lists them in spec.nodes).
func Convert(cfg *Config) (*Result, error) {
	if cfg == nil {
		return nil, fmt.Errorf("keepalived: Convert of a nil Config")
	}
	c := newConverter(cfg)
	drafts := c.all()
	if err := c.errs.err(); err != nil {
		return nil, err
	}
	res := &Result{}
	names := newNamer()
	for _, d := range drafts {
		name := names.name(d.inst.Name, d.spec.VRID)
		spec := d.spec
		spec.Priority = ptr(d.priority)
		spec.NodeSelector = &metav1.LabelSelector{}
		if d.inst.UnicastSrcIP.IsValid() && spec.Unicast != nil {
			c.warnf(d.inst.Keys["unicast_src_ip"], "unicast_src_ip %s: kube-vrrp sends from the node's own address; %s is listed in unicast.peers with the other peers, because a node skips its own addresses and one list then serves every member", d.src, d.src)
			spec.Unicast.Peers = addrStrings(unionAddrs(d.peers, []netip.Addr{d.src}))
		}
		if d.password != "" {
			sec := secretFor(name, d.password)
			spec.Authentication.SecretRef.Name = sec.Name
			res.Secrets = append(res.Secrets, sec)
		}
		if w, ok := notifyAllWarning(d, name); ok {
			c.warnf(w.Pos, "%s", w.Msg)
		}
		res.VirtualIPs = append(res.VirtualIPs, virtualIP(name, spec))
	}
	if len(drafts) > 0 {
		c.warnf(drafts[0].inst.Pos, "%s", EveryNodeWarning)
	}
	res.Warnings = c.warningStrings(cfg.Files)
	return res, nil
}

// EveryNodeWarning is Convert's warning that its VirtualIPs select every node.
const EveryNodeWarning = "nodeSelector: {} on every VirtualIP: one host's file names no node, so each selects every node " +
	"that runs the agent; to name the members, convert with --node NAME=FILE for each host (NAME is its node name), " +
	"or list them in spec.nodes and remove nodeSelector"

func newConverter(cfg *Config) *converter {
	c := &converter{cfg: cfg, scripts: map[string]*Script{}, procs: map[string]*TrackProcess{}, groupOf: map[string]*SyncGroup{},
		red: newRedactor(configSecrets(cfg))}
	c.warns = append(c.warns, cfg.Warnings...)
	c.red.warnings(c.warns)
	for _, s := range cfg.Scripts {
		c.scripts[s.Name] = s
	}
	for _, p := range cfg.TrackProcesses {
		c.procs[p.Name] = p
	}
	return c
}

// all converts every instance and reports what the whole file has that is not converted.
func (c *converter) all() []*draft {
	cfg := c.cfg
	c.global()
	for _, d := range cfg.Ignored {
		c.warnf(d.Pos, "%s: not converted: %s", d.Keyword, ignoredSections[d.Keyword])
	}
	instances := map[string]*Instance{}
	for _, in := range cfg.Instances {
		instances[in.Name] = in
	}
	for _, g := range cfg.SyncGroups {
		c.syncGroup(g, instances)
	}
	used := map[string]bool{}
	var drafts []*draft
	for _, in := range cfg.Instances {
		d := c.instance(in)
		if d == nil {
			continue
		}
		key := fmt.Sprintf("%d/%d/%s", d.spec.VRID, d.family, d.spec.Interface)
		if used[key] {
			c.errorf(in.Keys["virtual_router_id"], "vrrp_instance %s: virtual_router_id %d is used twice for IPv%d on interface %q", in.Name, d.spec.VRID, d.family, d.spec.Interface)
			continue
		}
		used[key] = true
		drafts = append(drafts, d)
	}
	for _, s := range cfg.Scripts {
		if !c.scriptUsed(s.Name) {
			c.warnf(s.Pos, "vrrp_script %s is not tracked by any vrrp_instance or sync group; keepalived does not run it, and it is not converted", s.Name)
		}
	}
	for _, p := range cfg.TrackProcesses {
		if !c.procUsed(p.Name) {
			c.warnf(p.Pos, "vrrp_track_process %s is not tracked by any vrrp_instance or sync group; not converted", p.Name)
		}
	}
	return drafts
}

func (c *converter) scriptUsed(name string) bool {
	for _, in := range c.cfg.Instances {
		for _, r := range in.TrackScripts {
			if r.Name == name {
				return true
			}
		}
	}
	for _, g := range c.cfg.SyncGroups {
		for _, r := range g.TrackScripts {
			if r.Name == name {
				return true
			}
		}
	}
	return false
}

func (c *converter) procUsed(name string) bool {
	for _, in := range c.cfg.Instances {
		for _, r := range in.TrackProcesses {
			if r.Name == name {
				return true
			}
		}
	}
	for _, g := range c.cfg.SyncGroups {
		for _, r := range g.TrackProcesses {
			if r.Name == name {
				return true
			}
		}
	}
	return false
}

// Hints shared by global_defs and vrrp_instance keywords.
const (
	lowerPrioHint = "not configurable: a kube-vrrp MASTER that hears a lower-priority advert answers it at once with an advert " +
		"and a new announcement of its addresses, at most once per advert interval (docs/design.md §4.4)"
	garpIntervalHint = "kube-vrrp sends the messages of a burst back to back; the spacing is not configurable"
	garpExtraIfHint  = "a VirtualIP announces its addresses on its own interface only; announcements.refreshInterval repeats those announcements while MASTER"
	notifyFifoHint   = "kube-vrrp has no notify FIFO; spec.notify runs commands on state changes (where exec is enabled), and the VirtualIPMembers' status and Events report them"
)

var globalHints = map[string]string{
	"vrrp_mcast_group4":            "kube-vrrp always uses 224.0.0.18",
	"vrrp_mcast_group6":            "kube-vrrp always uses ff02::12",
	"vrrp_check_unicast_src":       "kube-vrrp always accepts unicast adverts only from known peers",
	"vrrp_skip_check_adv_addr":     "kube-vrrp checks adverts as the RFCs say",
	"vrrp_garp_lower_prio_delay":   lowerPrioHint,
	"vrrp_garp_lower_prio_repeat":  lowerPrioHint,
	"vrrp_garp_interval":           garpIntervalHint,
	"vrrp_gna_interval":            garpIntervalHint,
	"vrrp_garp_extra_if":           garpExtraIfHint,
	"vrrp_vmac_garp_intvl":         garpExtraIfHint,
	"notify_fifo":                  notifyFifoHint,
	"notify_fifo_script":           notifyFifoHint,
	"vrrp_notify_fifo":             notifyFifoHint,
	"vrrp_notify_fifo_script":      notifyFifoHint,
	"vrrp_notify_priority_changes": "watch the VirtualIPMembers' status.priority (kubectl get vipm)",
	"vrrp_lower_prio_no_advert":    "kube-vrrp answers a lower-priority advert at once (RFC 9568)",
	"vrrp_higher_prio_send_advert": "not configurable in kube-vrrp",
	"notification_email":           "kube-vrrp has no e-mail alerts; alert on its Events or metrics",
	"notification_email_from":      "kube-vrrp has no e-mail alerts; alert on its Events or metrics",
	"smtp_server":                  "kube-vrrp has no e-mail alerts; alert on its Events or metrics",
	"smtp_connect_timeout":         "kube-vrrp has no e-mail alerts; alert on its Events or metrics",
	"dynamic_interfaces":           "kube-vrrp waits for a missing interface in FAULT",
	"max_auto_priority":            "the agent's scheduling is set by its DaemonSet",
}

func (c *converter) global() {
	g := &c.cfg.Global
	if g.RouterID != "" {
		c.warnf(g.Keys["router_id"], "router_id %s: kube-vrrp names each member by its Kubernetes node name", g.RouterID)
	}
	if g.EnableScriptSecurity {
		c.warnf(g.Keys["enable_script_security"], "enable_script_security: no equivalent; kube-vrrp runs exec probes and notify commands only where the agent enables exec, without a shell and with an empty environment")
	}
	if g.ScriptUser != "" {
		c.warnf(g.Keys["script_user"], "script_user %s: no equivalent; exec probes and notify commands run as the agent's user inside its container", g.ScriptUser)
	}
	for _, d := range g.Ignored {
		hint := globalHints[d.Keyword]
		if hint == "" {
			hint = "no kube-vrrp equivalent"
		}
		c.warnf(d.Pos, "global_defs %s: not converted: %s", d.Keyword, hint)
	}
}

func (c *converter) syncGroup(g *SyncGroup, instances map[string]*Instance) {
	for _, m := range g.Group {
		if instances[m] == nil {
			c.warnf(g.GroupPos, "vrrp_sync_group %s: no vrrp_instance named %s (keepalived ignores it too)", g.Name, m)
			continue
		}
		if prev := c.groupOf[m]; prev != nil {
			c.errorf(g.GroupPos, "vrrp_instance %s is in two sync groups (%s and %s)", m, prev.Name, g.Name)
			continue
		}
		c.groupOf[m] = g
	}
	c.warnf(g.Pos, "vrrp_sync_group %s (%s): kube-vrrp has no sync groups: each VirtualIP elects on its own, and a fault moves only the VirtualIPs that see it. The nearest pattern: the same nodes and priorities for every member, and the same probes with weight 0 in each, so that any failure puts all of them in FAULT on that node. The conversion adds the group's track_* to every member; add a member's own tracked objects, and each member's interface as an interface probe, to the others where they must move together", g.Name, strings.Join(g.Group, ", "))
	for _, n := range g.Notify {
		c.groupNotify(n, g.Name)
	}
	for _, d := range g.Ignored {
		c.warnf(d.Pos, "vrrp_sync_group %s: %s is not converted: %s", g.Name, d.Keyword, instanceHint(d.Keyword))
	}
}

var instanceHints = map[string]string{
	"use_vmac_addr":           "kube-vrrp names and manages its own macvlan (virtualMAC), one on the VirtualIP's interface, binds all the addresses there and always sends from it; it makes none for another interface's addresses",
	"vmac_xmit_base":          "kube-vrrp names and manages its own macvlan (virtualMAC) and always sends its adverts and announcements from it, never from the base interface",
	"use_ipvlan":              "kube-vrrp does not create ipvlan interfaces",
	"native_ipv6":             "the address family follows the addresses",
	"vrf":                     "kube-vrrp has no VRF support",
	"mcast_src_ip":            "kube-vrrp sends from the node's address on the interface",
	"mcast_dst_ip":            "kube-vrrp always uses 224.0.0.18 / ff02::12",
	"track_src_ip":            "not configurable",
	"check_unicast_src":       "kube-vrrp always accepts unicast adverts only from known peers",
	"unicast_fault_no_peer":   "kube-vrrp always goes to FAULT with an empty unicast peer set",
	"unicast_ttl":             "kube-vrrp sends with TTL 255",
	"old_unicast_checksum":    "see spec.checksumMode (PseudoHeader is what keepalived sends)",
	"garp_lower_prio_delay":   lowerPrioHint,
	"garp_lower_prio_repeat":  lowerPrioHint,
	"garp_extra_if":           garpExtraIfHint,
	"garp_extra_if_vmac":      garpExtraIfHint,
	"vmac_garp_intvl":         garpExtraIfHint,
	"garp_interval":           garpIntervalHint,
	"gna_interval":            garpIntervalHint,
	"down_timer_adverts":      "kube-vrrp uses the RFC's Master_Down_Interval (3 adverts plus skew)",
	"lower_prio_no_advert":    "kube-vrrp answers a lower-priority advert at once (RFC 9568)",
	"higher_prio_send_advert": "not configurable",
	"promote_secondaries":     "set net.ipv4.conf.<if>.promote_secondaries on the node if needed",
	"virtual_routes":          "kube-vrrp manages addresses only; manage these routes separately",
	"virtual_rules":           "kube-vrrp manages addresses only; manage these rules separately",
	"skip_check_adv_addr":     "kube-vrrp checks adverts as the RFCs say",
	"debug":                   "use the agent's log level",
	"smtp_alert":              "kube-vrrp has no e-mail alerts; alert on its Events or metrics",
	"notify_priority_changes": "watch the VirtualIPMembers' status.priority (kubectl get vipm)",
	"kernel_rx_buf_size":      "not configurable",
	"linkbeat_use_polling":    "kube-vrrp watches links through netlink",
	"track_file":              "track_file reads a weight from a file; a kube-vrrp file probe only checks that a path exists",
	"track_bfd":               "BFD is not supported",
}

func instanceHint(k string) string {
	if h := instanceHints[k]; h != "" {
		return h
	}
	return "no kube-vrrp equivalent"
}

func (c *converter) instance(in *Instance) *draft {
	cfg := c.cfg
	where := "vrrp_instance " + in.Name
	d := &draft{cfg: cfg, inst: in, probeFrom: map[string]Pos{}}
	spec := &d.spec
	spec.VRID = int32(in.VRID)
	spec.Interface = in.Interface
	if !c.text(in.Keys["interface"], where+": interface", in.Interface) {
		return nil
	}

	// Addresses and their family.
	fam := 0
	// A VirtualIP holds each address once, whatever its prefix length: the adverts carry no
	// prefix length, and an interface holds an IPv6 address only once.
	seen := map[netip.Addr]VIP{}
	for _, v := range in.VIPs {
		f := 4
		if v.Prefix.Addr().Is6() {
			f = 6
		}
		if fam == 0 {
			fam = f
		} else if f != fam {
			c.errorf(v.Pos, "%s: virtual_ipaddress mixes IPv4 and IPv6 (keepalived requires one family; put the other family in a second vrrp_instance)", where)
			return nil
		}
		if why := unusableAddr(v.Prefix.Addr()); why != "" || v.Prefix.Bits() == 0 {
			if why == "" {
				why = "a /0 prefix would claim every address"
			}
			c.errorf(v.Pos, "%s: address %s cannot be a virtual address: %s", where, v.Address, why)
			return nil
		}
		if first, dup := seen[v.Prefix.Addr()]; dup {
			if first.Prefix == v.Prefix {
				c.warnf(v.Pos, "%s: address %s is listed twice; kept once", where, v.Address)
			} else {
				c.warnf(v.Pos, "%s: address %s is listed again (first as %s at %s); kube-vrrp holds each address once, so %s is kept", where, v.Address, first.Address, first.Pos.lineString(), first.Address)
			}
			continue
		}
		seen[v.Prefix.Addr()] = v
		spec.Addresses = append(spec.Addresses, v.Address)
		c.vipOptions(v, in, where)
	}
	if len(spec.Addresses) == 0 {
		c.errorf(in.Pos, "%s has no virtual_ipaddress; a VirtualIP needs at least one address", where)
		return nil
	}
	if len(spec.Addresses) > maxAddresses {
		c.errorf(in.Keys["virtual_ipaddress"], "%s has %d addresses; a VirtualIP holds at most %d", where, len(spec.Addresses), maxAddresses)
		return nil
	}
	d.family = fam
	for _, v := range in.ExcludedVIPs {
		c.warnf(v.Pos, "%s: virtual_ipaddress_excluded %s is not converted: kube-vrrp has no excluded addresses (held by the MASTER but left out of the adverts). In spec.addresses it would be in the adverts, and a keepalived peer of the group drops adverts whose address list differs from its own: add it there once no keepalived peer is left (one address family, at most %d addresses per VirtualIP), or give it a VirtualIP of its own with another VRID and the same nodes and priorities", where, v.Address, maxAddresses)
	}
	if spec.Interface == "" {
		devs := map[string]bool{}
		for _, v := range in.VIPs {
			devs[v.Dev] = true
		}
		if len(devs) == 1 && !devs[""] {
			for dev := range devs {
				spec.Interface = dev
			}
			if !c.text(in.Pos, where+": dev", spec.Interface) {
				return nil
			}
			if err := probe.CheckInterfaceName(spec.Interface); err != nil {
				c.errorf(in.Pos, "%s: dev %q is not a valid interface name: %v", where, spec.Interface, err)
				return nil
			}
			c.warnf(in.Pos, "%s has no interface; its addresses name dev %s, which becomes spec.interface", where, spec.Interface)
		} else {
			c.warnf(in.Pos, "%s has no interface; kube-vrrp picks the interface holding a node address in the first address's subnet", where)
		}
	}

	// Version.
	ver, verPos := in.Version, in.Keys["version"]
	if ver == 0 {
		ver, verPos = cfg.Global.VRRPVersion, cfg.Global.Keys["vrrp_version"]
	}
	explicit := ver != 0
	if ver == 0 {
		ver = defaultVersion
	}
	if fam == 6 && ver == 2 {
		ver = 3
		if explicit {
			c.warnf(verPos, "%s: IPv6 needs VRRPv3; keepalived runs IPv6 instances as version 3, and so does the conversion", where)
		}
	}
	spec.Version = int32(ver)

	// Advertisement interval: always written, since keepalived's default (1s) is not
	// kube-vrrp's v3 default (100ms).
	spec.AdvertisementInterval = &v1alpha1.Duration{Duration: c.advertInterval(in, ver, where)}

	c.priority(d, where)
	c.preempt(in, spec, where)
	c.accept(in, spec, where)
	c.unicast(d, where)
	c.auth(d, ver, where)
	c.probes(d, where)
	c.weightedWithoutPreempt(d, where)

	c.vmac(d, where)
	c.announcements(d, where)
	c.notifies(d, where)
	for _, dr := range in.Ignored {
		c.warnf(dr.Pos, "%s: %s is not converted: %s", where, dr.Keyword, instanceHint(dr.Keyword))
	}
	if in.DontTrackPrimary {
		c.warnf(in.Keys["dont_track_primary"], "%s: dont_track_primary is not converted: kube-vrrp goes to FAULT when its interface is unusable", where)
	}
	return d
}

func (c *converter) vipOptions(v VIP, in *Instance, where string) {
	if v.Dev != "" && v.Dev != in.Interface && in.Interface != "" {
		c.warnf(v.Pos, "%s: address %s dev %s: kube-vrrp binds every address on the VirtualIP's interface (%s); put addresses of another interface in their own VirtualIP", where, v.Address, v.Dev, in.Interface)
	}
	if v.Label != "" {
		c.warnf(v.Pos, "%s: address %s label %s: kube-vrrp does not set address labels", where, v.Address, v.Label)
	}
	if v.Scope != "" && v.Scope != "global" {
		c.warnf(v.Pos, "%s: address %s scope %s: kube-vrrp adds addresses with global scope", where, v.Address, v.Scope)
	}
	if v.Brd != "" {
		c.warnf(v.Pos, "%s: address %s brd %s: the broadcast address cannot be set in a VirtualIP", where, v.Address, v.Brd)
	}
	if v.Peer != "" {
		c.warnf(v.Pos, "%s: address %s peer %s: point-to-point addresses cannot be expressed", where, v.Address, v.Peer)
	}
	for _, f := range v.Flags {
		if (f == "-nodad" || f == "nodad") && v.Prefix.Addr().Is6() {
			continue // kube-vrrp always adds IPv6 VIPs with NODAD
		}
		if f == "use_vmac" {
			c.warnf(v.Pos, "%s: address %s option use_vmac (a macvlan on the address's own dev) cannot be expressed: virtualMAC puts all of a VirtualIP's addresses on one macvlan of its interface", where, v.Address)
			continue
		}
		c.warnf(v.Pos, "%s: address %s option %s cannot be expressed in a VirtualIP", where, v.Address, f)
	}
}

// advertInterval applies keepalived's rounding: whole seconds (half up, at least 1) for
// VRRPv2, 10ms steps (half up, at most 40.95s) for VRRPv3.
func (c *converter) advertInterval(in *Instance, ver int, where string) time.Duration {
	d := in.AdvertInt
	if d == 0 {
		return defaultAdvertInt
	}
	at := in.Keys["advert_int"]
	if ver == 2 {
		s := (d + 500*time.Millisecond) / time.Second
		if s < 1 {
			s = 1
		}
		r := s * time.Second
		if r != d {
			c.warnf(at, "%s: advert_int %s: VRRPv2 advertises whole seconds; keepalived rounds it to %s, and so does the conversion (use version 3 for sub-second intervals)", where, secs(d), r)
		}
		return r
	}
	cs := (d + 5*time.Millisecond) / (10 * time.Millisecond)
	r := cs * 10 * time.Millisecond
	if r > v3MaxAdvertInterval {
		c.warnf(at, "%s: advert_int %s is above VRRPv3's 40.95s; keepalived uses 40.95s, and so does the conversion", where, secs(d))
		return v3MaxAdvertInterval
	}
	if r != d {
		c.warnf(at, "%s: advert_int %s: VRRPv3 advertises in 10ms steps; keepalived rounds it to %s, and so does the conversion", where, secs(d), r)
	}
	return r
}

func (c *converter) priority(d *draft, where string) {
	in := d.inst
	p := in.Priority
	at := in.Keys["priority"]
	if p == 0 {
		p = defaultPriority
		if in.State == "MASTER" {
			p = ownerPriority
			at = in.Keys["state"]
		}
	}
	switch {
	case p == ownerPriority:
		why := "priority 255 makes this node the address owner in keepalived"
		if in.Priority == 0 {
			why = "state MASTER without a priority gives this node keepalived's address-owner priority 255"
		}
		c.warnf(at, "%s: %s; kube-vrrp accepts 255 only for a node that owns the addresses, so the conversion uses 254, which still wins every election (keepalived ignores weighted tracking at 255, so weighted probes are dropped too)", where, why)
		p = 254
	case in.State != "":
		c.warnf(in.Keys["state"], "%s: state %s is not converted: kube-vrrp has no initial state, nodes elect by priority (this node's is %d)", where, in.State, p)
	}
	d.priority = int32(p)
}

func (c *converter) preempt(in *Instance, spec *v1alpha1.VirtualIPSpec, where string) {
	master := in.State == "MASTER"
	owner := in.Priority == ownerPriority || in.Priority == 0 && master
	switch {
	case in.NoPreempt && master:
		c.warnf(in.Keys["nopreempt"], "%s: nopreempt is ignored by keepalived with state MASTER (it clears it), so preemption stays on; use state BACKUP on every node for nopreempt", where)
	case in.NoPreempt && owner:
		c.warnf(in.Keys["nopreempt"], "%s: nopreempt is ignored by keepalived with priority 255 (it clears it), so preemption stays on", where)
	case in.NoPreempt:
		spec.Preempt = ptr(false)
	}
	if in.PreemptDelay > 0 {
		switch {
		case master:
			c.warnf(in.Keys["preempt_delay"], "%s: preempt_delay is ignored by keepalived with state MASTER (it clears it); not converted", where)
		case in.NoPreempt:
			c.warnf(in.Keys["preempt_delay"], "%s: preempt_delay has no effect with nopreempt; not converted", where)
		default:
			spec.PreemptDelay = &v1alpha1.Duration{Duration: in.PreemptDelay}
		}
	}
}

func (c *converter) strict(in *Instance) bool {
	if in.StrictMode != nil {
		return *in.StrictMode
	}
	return c.cfg.Global.VRRPStrict
}

func (c *converter) accept(in *Instance, spec *v1alpha1.VirtualIPSpec, where string) {
	if in.Accept != nil {
		spec.Accept = ptr(*in.Accept)
	}
	if !c.strict(in) {
		return
	}
	at := in.Keys["strict_mode"]
	if in.StrictMode == nil {
		at = c.cfg.Global.Keys["vrrp_strict"]
	}
	if in.Accept == nil && in.Priority != ownerPriority {
		spec.Accept = ptr(false)
	}
	c.warnf(at, "%s: strict mode is converted as accept: %v (keepalived's no_accept unless accept is set or the priority is 255); kube-vrrp has no strict mode, so its other checks (no unicast, no authentication, no preempt_delay, ...) are not enforced", where, spec.Accept == nil || *spec.Accept)
}

func (c *converter) unicast(d *draft, where string) {
	in := d.inst
	if len(in.UnicastPeers) == 0 {
		if in.UnicastSrcIP.IsValid() {
			c.warnf(in.Keys["unicast_src_ip"], "%s: unicast_src_ip without unicast_peer: keepalived stays in multicast; not converted", where)
		}
		return
	}
	vips := map[netip.Addr]bool{}
	for _, v := range in.VIPs {
		vips[v.Prefix.Addr()] = true
	}
	peerOK := func(at Pos, what string, a netip.Addr) bool {
		if why := unusableAddr(a); why != "" {
			c.errorf(at, "%s: %s %s cannot be a peer: %s", where, what, a, why)
			return false
		}
		if vips[a] {
			c.errorf(at, "%s: %s %s is also a virtual address; peers are the routers' own addresses", where, what, a)
			return false
		}
		return true
	}
	for _, p := range in.UnicastPeers {
		if !peerOK(p.Pos, "unicast peer", p.Addr) {
			continue
		}
		if f := familyOf(p.Addr); f != d.family {
			c.errorf(p.Pos, "%s: unicast peer %s is IPv%d but the addresses are IPv%d", where, p.Addr, f, d.family)
			continue
		}
		if p.MinTTL >= 0 || p.MaxTTL >= 0 {
			c.warnf(p.Pos, "%s: unicast peer %s: min_ttl/max_ttl cannot be expressed; kube-vrrp checks that unicast adverts come from known peers", where, p.Addr)
		}
		d.peers = append(d.peers, p.Addr)
	}
	d.peers = unionAddrs(d.peers)
	if in.UnicastSrcIP.IsValid() {
		if !peerOK(in.Keys["unicast_src_ip"], "unicast_src_ip", in.UnicastSrcIP) {
			return
		}
		if f := familyOf(in.UnicastSrcIP); f != d.family {
			c.errorf(in.Keys["unicast_src_ip"], "%s: unicast_src_ip %s is IPv%d but the addresses are IPv%d", where, in.UnicastSrcIP, f, d.family)
		}
		d.src = in.UnicastSrcIP
	}
	d.spec.Unicast = &v1alpha1.UnicastSpec{Peers: addrStrings(d.peers)}
}

func (c *converter) auth(d *draft, ver int, where string) {
	a := d.inst.Auth
	if a == nil {
		return
	}
	switch {
	case a.Type == "AH":
		c.warnf(a.Pos, "%s: auth_type AH is not supported by kube-vrrp (RFC 3768 removed authentication from VRRP); the VirtualIP has no authentication, so keepalived peers that still use AH will not accept its adverts", where)
	case ver == 3:
		c.warnf(a.Pos, "%s: authentication is ignored by keepalived with VRRPv3 (it exists only in v2); not converted", where)
	case a.Pass == "":
		c.errorf(a.Pos, "%s: auth_type PASS without auth_pass", where)
	default:
		pass := a.Pass
		if len(pass) > maxAuthPass {
			c.warnf(a.PassPos, "%s: auth_pass is longer than 8 bytes; keepalived uses only the first 8, and so does the Secret", where)
			pass = pass[:maxAuthPass]
		}
		d.password = pass
		d.spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Key: SecretKey}}
	}
}

// tracker is one tracked object resolved to its effective weight.
type tracker struct {
	kind    string // script, process, interface
	name    string
	pos     Pos // of the reference
	weight  int
	reverse bool
	group   string // sync group name when it comes from the group
}

func (c *converter) probes(d *draft, where string) {
	in := d.inst
	group := c.groupOf[in.Name]
	var ts []tracker
	add := func(kind string, refs []TrackRef, from string) {
		for _, r := range refs {
			t := tracker{kind: kind, name: r.Name, pos: r.Pos, weight: r.Weight, reverse: r.Reverse, group: from}
			if !r.WeightSet {
				switch kind {
				case "script":
					if s := c.scripts[r.Name]; s != nil {
						t.weight, t.reverse = s.Weight, s.Reverse
					}
				case "process":
					if p := c.procs[r.Name]; p != nil {
						t.weight, t.reverse = p.Weight, p.Reverse
					}
				}
			}
			ts = append(ts, t)
		}
	}
	add("interface", in.TrackInterfaces, "")
	add("script", in.TrackScripts, "")
	add("process", in.TrackProcesses, "")
	if group != nil {
		add("interface", group.TrackInterfaces, group.Name)
		add("script", group.TrackScripts, group.Name)
		add("process", group.TrackProcesses, group.Name)
	}
	names := newNamer()
	seen := map[string]bool{}
	for _, t := range ts {
		key := t.kind + "/" + t.name
		if seen[key] {
			c.warnf(t.pos, "%s: track_%s %s is tracked twice; the first one counts", where, t.kind, t.name)
			continue
		}
		seen[key] = true
		// The kubeadm HA guide's API server check becomes the static pod's probe, whose weight
		// the mapping decides (apiserverProbe); keepalived's weight rules do not apply to it.
		api := t.kind == "script" && isAPIServerCheck(c.scripts[t.name])
		keptWeight := t.weight
		if api {
			t.weight = staticpod.APIServerWeight
		}
		// keepalived 2.2.7 in a sync group without sync_group_tracking_weight: a member's own
		// weighted interface gets weight 0, its weighted script is dropped, and its process
		// keeps its weight (keepalived -t: "ignoring ... tracked interface weight due to SYNC
		// group", "ignoring tracked script ... with weights due to SYNC group"; its data dump
		// shows the process's weight). The group's own tracking keeps its weights unless a
		// member is the address owner, which clears them for every member.
		if group != nil && t.group == "" && t.weight != 0 && !group.TrackingWeight && !api {
			switch t.kind {
			case "interface":
				c.warnf(t.pos, "%s: track_interface %s weight %d: keepalived sets the weight of a sync group member's tracked interface to 0 (FAULT on failure) unless sync_group_tracking_weight is set, and so does the conversion", where, t.name, t.weight)
				t.weight = 0
			case "script":
				c.warnf(t.pos, "%s: track_script %s (weight %d) is not converted: keepalived ignores a sync group member's weighted script unless sync_group_tracking_weight is set, so it never changed this instance (give it weight 0, or track it in the sync group, to have it count)", where, t.name, t.weight)
				continue
			}
		}
		if group != nil && t.group != "" && t.weight != 0 && c.groupHasOwner(group) {
			c.warnf(t.pos, "vrrp_sync_group %s: track_%s %s weight %d: keepalived clears the weights of a sync group's tracked objects when a member is the address owner (priority 255), so a failure puts every member in FAULT, and so does the conversion", group.Name, t.kind, t.name, t.weight)
			t.weight = 0
		}
		if t.weight != 0 && d.priority >= vrrp.MaxBackupPriority && (in.Priority == ownerPriority || in.Priority == 0 && in.State == "MASTER") {
			c.warnf(t.pos, "%s: track_%s %s with weight %d is ignored by keepalived for an address owner (priority 255); not converted", where, t.kind, t.name, t.weight)
			continue
		}
		if t.reverse {
			c.warnf(t.pos, "%s: track_%s %s uses reverse, which kube-vrrp cannot express; the probe is NOT converted (an unreversed probe would move the VIP the wrong way)", where, t.kind, t.name)
			continue
		}
		var p *v1alpha1.ProbeSpec
		var from Pos
		base := t.name
		switch t.kind {
		case "script":
			s := c.scripts[t.name]
			switch {
			case s == nil:
				c.warnf(t.pos, "%s: track_script %s: no vrrp_script of that name (keepalived ignores it too)", where, t.name)
				continue
			case api:
				p, from, base = c.apiserverProbe(s, keptWeight, t.pos), s.Pos, staticpod.ProbeName
			default:
				p, from = c.scriptProbe(s), s.Pos
			}
		case "process":
			tp := c.procs[t.name]
			if tp == nil {
				c.warnf(t.pos, "%s: track_process %s: no vrrp_track_process of that name (keepalived ignores it too)", where, t.name)
				continue
			}
			p, from = c.processProbe(tp), tp.Pos
		default:
			if err := probe.CheckInterfaceName(t.name); err != nil || !yamlSafe(t.name) {
				c.errorf(t.pos, "%s: track_interface %q is not a valid interface name", where, t.name)
				continue
			}
			p, from = &v1alpha1.ProbeSpec{Interface: &v1alpha1.InterfaceProbe{Name: t.name}}, t.pos
		}
		if p == nil {
			continue
		}
		w := t.weight
		if w > maxProbeWeight || w < -maxProbeWeight {
			clamped := max(min(w, maxProbeWeight), -maxProbeWeight)
			c.warnf(t.pos, "%s: track_%s %s weight %d is outside kube-vrrp's -253..253; %d is used", where, t.kind, t.name, w, clamped)
			w = clamped
		}
		p.Weight = int32(w)
		if t.kind == "interface" {
			base = "interface-" + t.name
		}
		p.Name = names.name(base, 0)
		d.probeFrom[p.Name] = from
		if len(d.spec.Probes) == maxProbes {
			c.errorf(t.pos, "%s: more than %d tracked objects; a VirtualIP holds at most %d probes", where, maxProbes, maxProbes)
			return
		}
		d.spec.Probes = append(d.spec.Probes, *p)
	}
}

// groupHasOwner reports whether a member of g is the address owner (priority 255, or state
// MASTER without a priority).
func (c *converter) groupHasOwner(g *SyncGroup) bool {
	for _, in := range c.cfg.Instances {
		if c.groupOf[in.Name] == g && (in.Priority == ownerPriority || in.Priority == 0 && in.State == "MASTER") {
			return true
		}
	}
	return false
}

// weightedWithoutPreempt drops weighted probes of a group without preemption when no probe
// has weight 0. A weighted probe only changes the priority, and without preemption a lower
// priority never moves the VIP (in keepalived neither); kube-vrrp rejects that combination.
func (c *converter) weightedWithoutPreempt(d *draft, where string) {
	if d.spec.Preempt == nil || *d.spec.Preempt || len(d.spec.Probes) == 0 {
		return
	}
	for _, p := range d.spec.Probes {
		if p.Weight == 0 {
			return
		}
	}
	for _, p := range d.spec.Probes {
		c.warnf(d.probeFrom[p.Name], "%s: probe %s (weight %d) is not converted: with nopreempt a weighted check only changes the priority and never moves the VIP (in keepalived neither), and kube-vrrp rejects such a probe; give it weight 0 to resign the VIP while it fails, or drop nopreempt", where, p.Name, p.Weight)
	}
	d.spec.Probes = nil
}

// isAPIServerCheck recognises the kubeadm HA guide's vrrp_script: named check_apiserver, or
// running a check_apiserver.sh.
func isAPIServerCheck(s *Script) bool {
	if s == nil {
		return false
	}
	if s.Name == "check_apiserver" {
		return true
	}
	argv, _ := splitCommand(s.Command)
	for _, a := range argv {
		if path.Base(a) == "check_apiserver.sh" {
			return true
		}
	}
	return false
}

// apiserverProbe maps the kubeadm HA guide's API server check to the probe kube-vrrp static-pod
// generates (pkg/staticpod): the local kube-apiserver's /readyz over verified TLS, checked in
// sub-second steps, with a weight that keeps a node whose API server is down below one whose
// API server is up without putting anyone in FAULT. Running the script instead would need an
// exec probe (off by default) and curl in the agent's image, and keepalived's timing (interval
// 3, fall 10) would take about 30 s to notice a dead API server. weight is what keepalived
// would have applied, refAt the track_script line.
func (c *converter) apiserverProbe(s *Script, weight int, refAt Pos) *v1alpha1.ProbeSpec {
	in := "vrrp_script " + s.Name
	p := staticpod.APIServerProbe(staticpod.DefaultAPIServer, staticpod.DefaultCAFile, staticpod.DefaultServerName)
	c.warnf(s.Keys["script"], "%s (%s): the kubeadm HA guide's API server check is not run; it is mapped to the http probe %s of kube-apiserver's /readyz on this node, %s, verified with the CA file %s under the server name %s (the agent must be able to read that file: kube-vrrp static-pod mounts it); change the url if kube-apiserver listens elsewhere",
		in, s.Command, staticpod.ProbeName, p.HTTP.URL, staticpod.DefaultCAFile, staticpod.DefaultServerName)
	interval, fall, rise := s.Interval, max(s.Fall, 1), max(s.Rise, 1)
	if interval == 0 {
		interval = defaultCheckPeriod
	}
	at := s.Keys["interval"]
	if at.Line == 0 {
		at = s.Pos
	}
	c.warnf(at, "%s: interval %s, fall %d, rise %d (a dead API server seen after about %s) shortened to interval %s, timeout %s, fall %d, rise %d (seen within %s)",
		in, interval, fall, rise, time.Duration(fall)*interval,
		staticpod.ProbeInterval, staticpod.ProbeTimeout, staticpod.ProbeFall, staticpod.ProbeRise, staticpod.DetectWithin)
	if weight != staticpod.APIServerWeight {
		at := s.Keys["weight"]
		if at.Line == 0 {
			at = refAt
		}
		c.warnf(at, "%s: weight %d became %d: a node whose API server is down then loses to every node whose API server is up (for priorities less than %d apart, e.g. 101 and 100), and when no API server is up (kubeadm init, a cold start) a node still holds the VIP instead of every node going to FAULT",
			in, weight, staticpod.APIServerWeight, -staticpod.APIServerWeight)
	}
	return &p
}

func (c *converter) scriptProbe(s *Script) *v1alpha1.ProbeSpec {
	in := "vrrp_script " + s.Name
	at := s.Keys["script"]
	if len(s.ExtraArgs) > 0 {
		c.warnf(at, "%s: words after %q (%s) are ignored by keepalived, which takes only the first word of an unquoted script; quote the whole command to pass arguments. They are ignored here too", in, s.Command, strings.Join(s.ExtraArgs, " "))
	}
	if !c.text(at, in+": script", s.Command) {
		return nil
	}
	ck := classifyScript(s.Command)
	for _, n := range ck.notes {
		c.warnf(at, "%s (%s): %s", in, s.Command, n)
	}
	if ck.exec != nil {
		if len(ck.exec.Command) > v1alpha1.MaxExecArgs {
			ck = shellExec(s.Command, fmt.Sprintf("it has more than %d arguments", v1alpha1.MaxExecArgs))
		}
		for _, a := range ck.exec.Command {
			if len(a) > v1alpha1.MaxExecArgLength {
				c.errorf(at, "%s: an argument of the script is longer than %d bytes, which an exec probe cannot hold", in, v1alpha1.MaxExecArgLength)
				return nil
			}
		}
	}
	p := &v1alpha1.ProbeSpec{Process: ck.process, TCP: ck.tcp, HTTP: ck.http, Exec: ck.exec, File: ck.file}
	if probeHasCredentials(p) {
		// The probe needs them to work, so the manifest keeps them; the message does not.
		c.warnf(at, "%s (%s): the command holds credentials, which the probe keeps as written since it needs them: whoever can read VirtualIPs can read them; prefer a health endpoint that needs none", in, s.Command)
	}
	interval := s.Interval
	if interval == 0 {
		interval = defaultCheckPeriod
	}
	if interval > maxProbeInterval {
		c.warnf(s.Keys["interval"], "%s: interval %s is above kube-vrrp's 1h; 1h is used", in, secs(interval))
		interval = maxProbeInterval
	}
	if interval < minProbeInterval {
		c.warnf(s.Keys["interval"], "%s: interval %s is below kube-vrrp's 10ms; 10ms is used", in, secs(interval))
		interval = minProbeInterval
	}
	p.Interval = &v1alpha1.Duration{Duration: interval}
	switch {
	case s.Timeout > interval:
		c.warnf(s.Keys["timeout"], "%s: timeout %s is longer than the interval; keepalived lets a check run into the next interval, kube-vrrp never overlaps checks, so the timeout is the interval (%s)", in, secs(s.Timeout), interval)
		p.Timeout = &v1alpha1.Duration{Duration: interval}
	case s.Timeout > 0:
		p.Timeout = &v1alpha1.Duration{Duration: s.Timeout}
	case ck.timeout > 0 && ck.timeout < minProbeTimeout:
		c.warnf(at, "%s: the command's own timeout %s is below kube-vrrp's 1ms; the probe's timeout is 1ms", in, secs(ck.timeout))
		p.Timeout = &v1alpha1.Duration{Duration: minProbeTimeout}
	case ck.timeout > 0 && ck.timeout <= interval:
		// The command limited itself (curl -m, wget -T, nc -w); the probe does it now.
		p.Timeout = &v1alpha1.Duration{Duration: ck.timeout}
	}
	p.Fall = c.count(s.Fall, s.Keys["fall"], in, "fall")
	p.Rise = c.count(s.Rise, s.Keys["rise"], in, "rise")
	if s.InitFail {
		c.warnf(s.Keys["init_fail"], "%s: init_fail (start as failed) cannot be expressed; kube-vrrp decides a probe's first state from its first results", in)
	}
	if s.User != "" {
		c.warnf(s.Keys["user"], "%s: user %s: no equivalent; probes run as the agent's user", in, s.User)
	}
	return p
}

// probeHasCredentials reports whether the URL or command of p holds credentials.
func probeHasCredentials(p *v1alpha1.ProbeSpec) bool {
	switch {
	case p.HTTP != nil:
		return urlUserinfo.MatchString(p.HTTP.URL)
	case p.Exec != nil:
		q := make([]string, len(p.Exec.Command))
		for i, a := range p.Exec.Command {
			q[i] = shellQuote(a)
		}
		return len(credentialsIn(strings.Join(q, " "))) > 0
	}
	return false
}

func (c *converter) count(v int, at Pos, in, what string) *int32 {
	if v == 0 {
		return nil
	}
	if v > maxProbeCount {
		c.warnf(at, "%s: %s %d is above kube-vrrp's 255; 255 is used", in, what, v)
		v = maxProbeCount
	}
	return ptr(int32(v))
}

// processProbe converts a vrrp_track_process. keepalived's documentation says its weight
// defaults to 1, but keepalived 2.2.7 puts an instance tracking a process without a weight
// in FAULT when the process is missing: weight 0, which is what Weight holds when unset.
func (c *converter) processProbe(t *TrackProcess) *v1alpha1.ProbeSpec {
	in := "vrrp_track_process " + t.Name
	name := t.Process
	if !c.text(t.Keys["process"], in+": process", name) {
		return nil
	}
	if t.FullCommand || len(t.Params) > 0 || t.ParamMatch != "" {
		c.warnf(t.Keys["process"], "%s: matching the command line (parameters, param_match, full_command) cannot be expressed; the process probe matches the process name %s only", in, name)
	}
	if strings.Contains(name, "/") {
		name = name[strings.LastIndexByte(name, '/')+1:]
	}
	if len(name) > maxProcessName {
		c.warnf(t.Keys["process"], "%s: process name %s is longer than the kernel's %d characters; the probe matches %s", in, name, maxProcessName, name[:maxProcessName])
		name = name[:maxProcessName]
	}
	if name == "" {
		c.errorf(t.Keys["process"], "%s: empty process name", in)
		return nil
	}
	p := &v1alpha1.ProbeSpec{Process: &v1alpha1.ProcessProbe{Name: name}}
	if t.Quorum > 1 {
		c.warnf(t.Keys["quorum"], "%s: quorum %d cannot be expressed; the probe succeeds while at least one process runs", in, t.Quorum)
	}
	if t.QuorumMaxSet {
		c.warnf(t.Keys["quorum_max"], "%s: quorum_max cannot be expressed; not converted", in)
	}
	// The delays debounce process changes; fall and rise do that for a polled probe.
	if t.TerminateDelay > 0 || t.ForkDelay > 0 {
		p.Interval = &v1alpha1.Duration{Duration: defaultCheckPeriod}
		if t.TerminateDelay > 0 {
			p.Fall = ptr(int32(ceilDiv(t.TerminateDelay, defaultCheckPeriod)))
		}
		if t.ForkDelay > 0 {
			p.Rise = ptr(int32(ceilDiv(t.ForkDelay, defaultCheckPeriod)))
		}
		at := t.Keys["delay"]
		if at.Line == 0 {
			at = t.Keys["terminate_delay"]
		}
		if at.Line == 0 {
			at = t.Keys["fork_delay"]
		}
		c.warnf(at, "%s: fork_delay/terminate_delay are approximated by fall/rise at a 1s interval", in)
	}
	return p
}

func ceilDiv(a, b time.Duration) int64 {
	n := int64((a + b - 1) / b)
	return min(max(n, 1), maxProbeCount)
}

// warningStrings orders warnings by file (in reading order), line and column, and formats
// them; identical lines are shown once.
func (c *converter) warningStrings(files []string) []string {
	return formatWarnings(c.warns, files)
}

func formatWarnings(ws []Warning, files []string) []string {
	idx := map[string]int{}
	for i, f := range files {
		if _, ok := idx[f]; !ok {
			idx[f] = i
		}
	}
	sorted := slices.Clone(ws)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Pos, sorted[j].Pos
		ai, aok := idx[a.File]
		bi, bok := idx[b.File]
		if aok != bok {
			return aok
		}
		if ai != bi {
			return ai < bi
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	var out []string
	seen := map[string]bool{}
	for _, w := range sorted {
		s := w.String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// unusableAddr says why a cannot be a virtual address or a peer, or returns "".
func unusableAddr(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "it is the unspecified address"
	case a.IsLoopback():
		return "it is a loopback address"
	case a.IsMulticast():
		return "it is a multicast address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "it is the broadcast address"
	}
	return ""
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// unionAddrs returns the distinct addresses of all lists, sorted.
func unionAddrs(lists ...[]netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, l := range lists {
		for _, a := range l {
			if a.IsValid() {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func virtualIP(name string, spec v1alpha1.VirtualIPSpec) v1alpha1.VirtualIP {
	return v1alpha1.VirtualIP{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VirtualIP"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
}

// secretFor holds the password as stringData, readable in the manifest, or as base64 data
// when it has bytes YAML cannot carry as text.
func secretFor(vipName, password string) corev1.Secret {
	s := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: secretName(vipName), Namespace: SecretNamespace},
		Type:       corev1.SecretTypeOpaque,
	}
	if yamlSafe(password) {
		s.StringData = map[string]string{SecretKey: password}
	} else {
		s.Data = map[string][]byte{SecretKey: []byte(password)}
	}
	return s
}

// text reports an error unless s can be written to YAML as it is (valid UTF-8 without
// control characters): the output must say exactly what the configuration says.
func (c *converter) text(at Pos, what, s string) bool {
	if yamlSafe(s) {
		return true
	}
	c.errorf(at, "%s %q has control characters or bytes that are not UTF-8, which a manifest cannot carry", what, s)
	return false
}

// yamlSafe reports whether s is valid UTF-8 made of characters YAML can print (YAML 1.1
// "printable": tab, line breaks, and no other control characters).
func yamlSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		case r >= 0x20 && r <= 0x7e:
		case r >= 0xa0 && r <= 0xd7ff:
		case r >= 0xe000 && r <= 0xfffd && r != 0xfeff:
		case r >= 0x10000 && r <= 0x10ffff:
		default:
			return false
		}
	}
	return true
}
