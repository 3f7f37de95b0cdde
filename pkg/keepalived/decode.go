package keepalived

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// maxErrors bounds the errors Decode collects before it stops.
const maxErrors = 50

type decoder struct {
	cfg  *Config
	errs ErrorList
	red  *redactor
}

// Decode interprets a block tree. It collects every error it finds (up to a limit) and
// returns them as an ErrorList.
func Decode(ast *AST) (*Config, error) {
	red := newRedactor(astSecrets(ast.Nodes))
	cfg := &Config{Files: ast.Files, Warnings: append([]Warning(nil), ast.Warnings...), secrets: red.secrets}
	red.warnings(cfg.Warnings)
	if len(ast.Files) > 0 {
		cfg.File = ast.Files[0]
	}
	d := &decoder{cfg: cfg, red: red}
	d.top(ast.Nodes)
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// errorf and warnf are the decoder's only ways to report; both redact (see redact.go).
func (d *decoder) errorf(p Pos, format string, args ...any) {
	if len(d.errs) < maxErrors {
		d.errs = append(d.errs, &Error{Pos: p, Msg: d.red.text(fmt.Sprintf(format, args...))})
	}
}

func (d *decoder) warnf(p Pos, format string, args ...any) {
	d.cfg.Warnings = append(d.cfg.Warnings, Warning{Pos: p, Msg: d.red.text(fmt.Sprintf(format, args...))})
}

func directive(n *Node) Directive {
	args := make([]string, len(n.Args))
	for i, a := range n.Args {
		args[i] = a.Value
	}
	return Directive{Keyword: n.Keyword, Args: args, Pos: n.Pos, HasBlock: n.HasBlock}
}

// Top-level sections that are keepalived's but not VRRP instances: read, not converted.
var ignoredSections = map[string]string{
	"virtual_server":       "LVS virtual servers are not part of kube-vrrp",
	"virtual_server_group": "LVS virtual servers are not part of kube-vrrp",
	"bfd_instance":         "BFD is not supported by kube-vrrp",
	"track_file":           "track_file has no kube-vrrp equivalent (a file probe only checks that a path exists)",
	"vrrp_track_file":      "track_file has no kube-vrrp equivalent (a file probe only checks that a path exists)",
	"garp_group":           "kube-vrrp sends gratuitous ARP / unsolicited NA bursts itself; their timing is not configurable",
	"linkbeat_interfaces":  "kube-vrrp watches links through netlink",
	"static_ipaddress":     "kube-vrrp manages virtual addresses only; configure static addresses on the node",
	"static_routes":        "kube-vrrp manages virtual addresses only; configure static routes on the node",
	"static_rules":         "kube-vrrp manages virtual addresses only; configure static rules on the node",
	"static_track_group":   "static track groups have no kube-vrrp equivalent",
	"net_namespace":        "kube-vrrp runs in the node's network namespace (hostNetwork)",
	"net_namespace_ipvs":   "LVS is not part of kube-vrrp",
	"instance":             "kube-vrrp has no keepalived instance names",
	"use_pid_dir":          "kube-vrrp has no pid files",
	"include_check":        "include checks are not needed: includes that match nothing are warnings",
}

func (d *decoder) top(nodes []*Node) {
	names := map[string]map[string]Pos{}
	unique := func(kind string, n *Node) (string, bool) {
		if len(n.Args) == 0 {
			d.errorf(n.Pos, "%s needs a name", kind)
			return "", false
		}
		if len(n.Args) > 1 {
			d.errorf(n.Args[1].Pos, "%s %s: unexpected %q after the name", kind, n.Args[0].Value, n.Args[1].Value)
			return "", false
		}
		if !n.HasBlock {
			d.errorf(n.Pos, "%s %s needs a block { ... }", kind, n.Args[0].Value)
			return "", false
		}
		name := n.Args[0].Value
		if names[kind] == nil {
			names[kind] = map[string]Pos{}
		}
		if prev, dup := names[kind][name]; dup {
			d.errorf(n.Pos, "%s %s is defined twice (first at %s)", kind, name, prev)
			return "", false
		}
		names[kind][name] = n.Pos
		return name, true
	}
	for _, n := range nodes {
		switch n.Keyword {
		case "global_defs":
			if !n.HasBlock {
				d.errorf(n.Pos, "global_defs needs a block { ... }")
				continue
			}
			d.globalDefs(n)
		case "vrrp_script":
			if name, ok := unique(n.Keyword, n); ok {
				d.cfg.Scripts = append(d.cfg.Scripts, d.script(name, n))
			}
		case "vrrp_track_process":
			if name, ok := unique(n.Keyword, n); ok {
				d.cfg.TrackProcesses = append(d.cfg.TrackProcesses, d.trackProcess(name, n))
			}
		case "vrrp_instance":
			if name, ok := unique(n.Keyword, n); ok {
				d.cfg.Instances = append(d.cfg.Instances, d.instance(name, n))
			}
		case "vrrp_sync_group":
			if name, ok := unique(n.Keyword, n); ok {
				d.cfg.SyncGroups = append(d.cfg.SyncGroups, d.syncGroup(name, n))
			}
		default:
			if _, ok := ignoredSections[n.Keyword]; ok {
				d.cfg.Ignored = append(d.cfg.Ignored, directive(n))
				continue
			}
			d.unknown(n, "")
		}
	}
}

// unknown reports a keyword no handler knows. An unknown block is an error: a misspelt
// section name (vrrp_instnace) would otherwise lose a whole instance.
func (d *decoder) unknown(n *Node, in string) {
	where := ""
	if in != "" {
		where = " in " + in
	}
	if n.HasBlock {
		d.errorf(n.Pos, "unknown block %q%s", n.Keyword, where)
		return
	}
	d.warnf(n.Pos, "unknown keyword %q%s ignored", n.Keyword, where)
}

// set records where a keyword was set and warns when it is set again.
func (d *decoder) set(keys map[string]Pos, n *Node, in string) {
	if prev, ok := keys[n.Keyword]; ok {
		d.warnf(n.Pos, "%s is set again in %s (first at %s); the last one counts, as in keepalived", n.Keyword, in, prev.lineString())
	}
	keys[n.Keyword] = n.Pos
}

func (d *decoder) noBlock(n *Node) bool {
	if n.HasBlock {
		d.errorf(n.BlockPos, "%s does not take a block", n.Keyword)
		return false
	}
	return true
}

// arg returns the single argument of n; extra arguments are warned about.
func (d *decoder) arg(n *Node) (Arg, bool) {
	if !d.noBlock(n) {
		return Arg{}, false
	}
	if len(n.Args) == 0 {
		d.errorf(n.Pos, "%s needs a value", n.Keyword)
		return Arg{}, false
	}
	if len(n.Args) > 1 {
		d.warnf(n.Args[1].Pos, "%s: extra arguments after %q ignored", n.Keyword, n.Args[0].Value)
	}
	return n.Args[0], true
}

func (d *decoder) flag(n *Node) {
	if !d.noBlock(n) {
		return
	}
	if len(n.Args) > 0 {
		d.warnf(n.Args[0].Pos, "%s takes no value; %q ignored", n.Keyword, n.Args[0].Value)
	}
}

func (d *decoder) intArg(n *Node, lo, hi int) (int, bool) {
	a, ok := d.arg(n)
	if !ok {
		return 0, false
	}
	return d.intValue(n.Keyword, a, lo, hi)
}

func (d *decoder) intValue(what string, a Arg, lo, hi int) (int, bool) {
	v, err := strconv.ParseInt(a.Value, 10, 64)
	if err != nil {
		d.errorf(a.Pos, "%s: %q is not an integer", what, a.Value)
		return 0, false
	}
	if v < int64(lo) || v > int64(hi) {
		d.errorf(a.Pos, "%s: %d is outside %d..%d", what, v, lo, hi)
		return 0, false
	}
	return int(v), true
}

// durArg reads a decimal number of seconds ("1", "0.1", "2.71828") with keepalived's
// microsecond resolution; lo and hi bound it.
func (d *decoder) durArg(n *Node, lo, hi time.Duration) (time.Duration, bool) {
	a, ok := d.arg(n)
	if !ok {
		return 0, false
	}
	return d.durValue(n.Keyword, a, lo, hi)
}

func (d *decoder) durValue(what string, a Arg, lo, hi time.Duration) (time.Duration, bool) {
	v, ok := parseSeconds(a.Value)
	if !ok {
		d.errorf(a.Pos, "%s: %q is not a number of seconds", what, a.Value)
		return 0, false
	}
	if v < lo || v > hi {
		d.errorf(a.Pos, "%s: %s is outside %s..%s", what, a.Value, secs(lo), secs(hi))
		return 0, false
	}
	return v, true
}

// parseSeconds parses digits with an optional fraction, exactly (no float rounding), to
// microseconds; digits beyond the microsecond are rounded half up.
func parseSeconds(s string) (time.Duration, bool) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" && (!dot || frac == "") || len(whole) > 9 {
		return 0, false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	var us int64
	for _, c := range whole {
		us = us*10 + int64(c-'0')
	}
	us *= 1e6
	var f int64
	for i := 0; i < 6; i++ {
		f *= 10
		if i < len(frac) {
			f += int64(frac[i] - '0')
		}
	}
	if len(frac) > 6 && frac[6] >= '5' {
		f++
	}
	return time.Duration(us+f) * time.Microsecond, true
}

// secs formats a duration as keepalived writes it: seconds, with a fraction when needed.
func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// parseBool reads keepalived's <BOOL>; no argument means true.
func (d *decoder) boolArg(n *Node) (bool, bool) {
	if !d.noBlock(n) {
		return false, false
	}
	if len(n.Args) == 0 {
		return true, true
	}
	switch strings.ToLower(n.Args[0].Value) {
	case "on", "true", "yes":
		return true, true
	case "off", "false", "no":
		return false, true
	}
	d.errorf(n.Args[0].Pos, "%s: %q is not one of on, off, true, false, yes, no", n.Keyword, n.Args[0].Value)
	return false, false
}

func (d *decoder) addrArg(n *Node) (netip.Addr, bool) {
	a, ok := d.arg(n)
	if !ok {
		return netip.Addr{}, false
	}
	return d.addrValue(n.Keyword, a)
}

func (d *decoder) addrValue(what string, a Arg) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(a.Value)
	if err != nil || ip.Zone() != "" {
		d.errorf(a.Pos, "%s: %q is not an IP address", what, a.Value)
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func (d *decoder) globalDefs(n *Node) {
	g := &d.cfg.Global
	if g.Keys != nil {
		d.warnf(n.Pos, "global_defs appears again (first at %s); its keywords are merged", g.Pos.lineString())
	} else {
		g.Pos, g.Keys = n.Pos, map[string]Pos{}
	}
	for _, c := range n.Block {
		switch c.Keyword {
		case "router_id":
			if a, ok := d.arg(c); ok {
				d.set(g.Keys, c, "global_defs")
				g.RouterID = a.Value
			}
		case "enable_script_security":
			d.flag(c)
			d.set(g.Keys, c, "global_defs")
			g.EnableScriptSecurity = true
		case "script_user":
			if !d.noBlock(c) {
				continue
			}
			if len(c.Args) == 0 || len(c.Args) > 2 {
				d.errorf(c.Pos, "script_user takes a user name and an optional group name")
				continue
			}
			d.set(g.Keys, c, "global_defs")
			g.ScriptUser = c.Args[0].Value
			if len(c.Args) == 2 {
				g.ScriptGroup = c.Args[1].Value
			}
		case "vrrp_version":
			if v, ok := d.intArg(c, 2, 3); ok {
				d.set(g.Keys, c, "global_defs")
				g.VRRPVersion = v
			}
		case "vrrp_strict":
			d.flag(c)
			d.set(g.Keys, c, "global_defs")
			g.VRRPStrict = true
		case "vrrp_min_garp":
			if on, ok := d.boolArg(c); ok {
				d.set(g.Keys, c, "global_defs")
				if on {
					g.Garp.minGarp(c.Pos)
				}
			}
		default:
			if d.garp(c, "vrrp_", g.Keys, "global_defs", &g.Garp) {
				continue
			}
			// global_defs has well over a hundred keywords (mail, SNMP, DBus, timers, ...);
			// none of the others changes a VRRP group's election. Convert lists them.
			g.Ignored = append(g.Ignored, directive(c))
		}
	}
}

func (d *decoder) script(name string, n *Node) *Script {
	s := &Script{Name: name, Pos: n.Pos, Keys: map[string]Pos{}}
	in := "vrrp_script " + name
	for _, c := range n.Block {
		switch c.Keyword {
		case "script":
			if name, rest, ok := d.nameAndArgs(c, "a command"); ok {
				d.set(s.Keys, c, in)
				s.Command, s.ExtraArgs = name, rest
			}
		case "interval":
			if v, ok := d.durArg(c, time.Millisecond, 4294*time.Second); ok {
				d.set(s.Keys, c, in)
				s.Interval = v
			}
		case "timeout":
			if v, ok := d.durArg(c, time.Millisecond, 4294*time.Second); ok {
				d.set(s.Keys, c, in)
				s.Timeout = v
			}
		case "weight":
			if w, rev, ok := d.weight(c, c.Args, 253); ok {
				d.set(s.Keys, c, in)
				s.Weight, s.WeightSet, s.Reverse = w, true, rev
			}
		case "fall":
			if v, ok := d.intArg(c, 1, math.MaxInt32); ok {
				d.set(s.Keys, c, in)
				s.Fall = v
			}
		case "rise":
			if v, ok := d.intArg(c, 1, math.MaxInt32); ok {
				d.set(s.Keys, c, in)
				s.Rise = v
			}
		case "init_fail":
			d.flag(c)
			d.set(s.Keys, c, in)
			s.InitFail = true
		case "user":
			if !d.noBlock(c) {
				continue
			}
			if len(c.Args) == 0 || len(c.Args) > 2 {
				d.errorf(c.Pos, "user takes a user name and an optional group name")
				continue
			}
			d.set(s.Keys, c, in)
			s.User = c.Args[0].Value
			if len(c.Args) == 2 {
				s.Group = c.Args[1].Value
			}
		default:
			d.unknown(c, in)
		}
	}
	if s.Command == "" {
		d.errorf(n.Pos, "vrrp_script %s has no script", name)
	}
	return s
}

// weight reads "N [reverse|noreverse|no_reverse]" from args (the words after "weight").
func (d *decoder) weight(n *Node, args []Arg, limit int) (w int, reverse, ok bool) {
	if n.HasBlock {
		d.errorf(n.BlockPos, "%s does not take a block", n.Keyword)
		return 0, false, false
	}
	if len(args) == 0 {
		d.errorf(n.Pos, "weight needs a value")
		return 0, false, false
	}
	w, ok = d.intValue("weight", args[0], -limit, limit)
	if !ok {
		return 0, false, false
	}
	for _, a := range args[1:] {
		switch a.Value {
		case "reverse":
			reverse = true
		case "noreverse", "no_reverse":
			reverse = false
		default:
			d.errorf(a.Pos, "weight: unexpected %q (expected reverse or noreverse)", a.Value)
			return 0, false, false
		}
	}
	return w, reverse, true
}

// nameAndArgs reads a keyword whose first argument names something (a script's command, a
// tracked process) and whose other arguments go with it; what names a missing first argument.
func (d *decoder) nameAndArgs(c *Node, what string) (string, []string, bool) {
	if !d.noBlock(c) {
		return "", nil, false
	}
	if len(c.Args) == 0 {
		d.errorf(c.Pos, "%s needs %s", c.Keyword, what)
		return "", nil, false
	}
	var rest []string
	for _, a := range c.Args[1:] {
		rest = append(rest, a.Value)
	}
	return c.Args[0].Value, rest, true
}

func (d *decoder) trackProcess(name string, n *Node) *TrackProcess {
	t := &TrackProcess{Name: name, Pos: n.Pos, Keys: map[string]Pos{}}
	in := "vrrp_track_process " + name
	for _, c := range n.Block {
		switch c.Keyword {
		case "process":
			if name, rest, ok := d.nameAndArgs(c, "a process name"); ok {
				d.set(t.Keys, c, in)
				t.Process, t.Params = name, rest
			}
		case "param_match":
			if a, ok := d.arg(c); ok {
				if a.Value != "initial" && a.Value != "partial" {
					d.errorf(a.Pos, "param_match: %q is not initial or partial", a.Value)
					continue
				}
				d.set(t.Keys, c, in)
				t.ParamMatch = a.Value
			}
		case "weight":
			if w, rev, ok := d.weight(c, c.Args, 254); ok {
				d.set(t.Keys, c, in)
				t.Weight, t.WeightSet, t.Reverse = w, true, rev
			}
		case "quorum":
			if v, ok := d.intArg(c, 1, math.MaxInt32); ok {
				d.set(t.Keys, c, in)
				t.Quorum = v
			}
		case "quorum_max":
			if v, ok := d.intArg(c, 0, math.MaxInt32); ok {
				d.set(t.Keys, c, in)
				t.QuorumMax, t.QuorumMaxSet = v, true
			}
		case "fork_delay", "terminate_delay", "delay":
			if v, ok := d.durArg(c, 0, 4294*time.Second); ok {
				d.set(t.Keys, c, in)
				if c.Keyword != "terminate_delay" {
					t.ForkDelay = v
				}
				if c.Keyword != "fork_delay" {
					t.TerminateDelay = v
				}
			}
		case "full_command":
			d.flag(c)
			d.set(t.Keys, c, in)
			t.FullCommand = true
		default:
			d.unknown(c, in)
		}
	}
	if t.Process == "" {
		d.errorf(n.Pos, "vrrp_track_process %s has no process", name)
	}
	return t
}

// Keywords of vrrp_instance that are keepalived's but have no kube-vrrp equivalent; Convert
// warns about each with the hint in instanceHints.
var ignoredInstanceKeywords = map[string]bool{
	"use_vmac_addr": true, "vmac_xmit_base": true, "use_ipvlan": true,
	"native_ipv6": true, "vrf": true, "mcast_src_ip": true, "mcast_dst_ip": true,
	"track_src_ip": true, "check_unicast_src": true, "unicast_fault_no_peer": true,
	"unicast_ttl": true, "old_unicast_checksum": true, "garp_lower_prio_delay": true,
	"garp_lower_prio_repeat": true, "garp_extra_if": true, "vmac_garp_intvl": true,
	"garp_extra_if_vmac": true, "down_timer_adverts": true, "lower_prio_no_advert": true,
	"higher_prio_send_advert": true, "promote_secondaries": true, "virtual_routes": true,
	"virtual_rules": true, "skip_check_adv_addr": true, "debug": true, "smtp_alert": true,
	"notify_priority_changes": true, "kernel_rx_buf_size": true, "linkbeat_use_polling": true,
	"track_file": true, "track_bfd": true, "garp_interval": true, "gna_interval": true,
}

var notifyKeywords = map[string]bool{
	"notify": true, "notify_master": true, "notify_backup": true, "notify_fault": true,
	"notify_stop": true, "notify_deleted": true, "notify_master_rx_lower_pri": true,
}

func (d *decoder) instance(name string, n *Node) *Instance {
	in := "vrrp_instance " + name
	inst := &Instance{Name: name, Pos: n.Pos, Keys: map[string]Pos{}}
	for _, c := range n.Block {
		switch k := c.Keyword; {
		case k == "state":
			if a, ok := d.arg(c); ok {
				st := strings.ToUpper(a.Value)
				if st != "MASTER" && st != "BACKUP" {
					d.errorf(a.Pos, "state: %q is not MASTER or BACKUP", a.Value)
					continue
				}
				d.set(inst.Keys, c, in)
				inst.State = st
			}
		case k == "interface":
			if a, ok := d.arg(c); ok {
				if err := probe.CheckInterfaceName(a.Value); err != nil {
					d.errorf(a.Pos, "interface: %q is not a valid interface name: %v", a.Value, err)
					continue
				}
				d.set(inst.Keys, c, in)
				inst.Interface = a.Value
			}
		case k == "virtual_router_id":
			if v, ok := d.intArg(c, 1, 255); ok {
				d.set(inst.Keys, c, in)
				inst.VRID = v
			}
		case k == "priority":
			if v, ok := d.intArg(c, 1, 255); ok {
				d.set(inst.Keys, c, in)
				inst.Priority = v
			}
		case k == "advert_int":
			if v, ok := d.durArg(c, 10*time.Millisecond, 255*time.Second); ok {
				d.set(inst.Keys, c, in)
				inst.AdvertInt = v
			}
		case k == "version":
			if v, ok := d.intArg(c, 2, 3); ok {
				d.set(inst.Keys, c, in)
				inst.Version = v
			}
		case k == "nopreempt" || k == "no_preempt":
			d.flag(c)
			d.set(inst.Keys, c, in)
			inst.NoPreempt = true
			inst.Keys["nopreempt"] = c.Pos
		case k == "preempt":
			d.flag(c)
			d.set(inst.Keys, c, in)
			inst.NoPreempt = false
		case k == "preempt_delay":
			if v, ok := d.durArg(c, 0, 1000*time.Second); ok {
				d.set(inst.Keys, c, in)
				inst.PreemptDelay = v
			}
		case k == "accept" || k == "no_accept":
			d.flag(c)
			d.set(inst.Keys, c, in)
			v := k == "accept"
			inst.Accept = &v
			inst.Keys["accept"] = c.Pos
		case k == "strict_mode":
			if v, ok := d.boolArg(c); ok {
				d.set(inst.Keys, c, in)
				inst.StrictMode = &v
			}
		case k == "dont_track_primary":
			d.flag(c)
			d.set(inst.Keys, c, in)
			inst.DontTrackPrimary = true
		case k == "authentication":
			if !c.HasBlock {
				d.errorf(c.Pos, "authentication needs a block { auth_type ... auth_pass ... }")
				continue
			}
			d.set(inst.Keys, c, in)
			inst.Auth = d.auth(c, in)
		case k == "virtual_ipaddress" || k == "virtual_ipaddress_excluded":
			if !c.HasBlock {
				d.errorf(c.Pos, "%s needs a block { ... }", k)
				continue
			}
			d.set(inst.Keys, c, in)
			vips := d.vips(c)
			if k == "virtual_ipaddress" {
				inst.VIPs = append(inst.VIPs, vips...)
			} else {
				inst.ExcludedVIPs = append(inst.ExcludedVIPs, vips...)
			}
		case k == "unicast_src_ip":
			if ip, ok := d.addrArg(c); ok {
				d.set(inst.Keys, c, in)
				inst.UnicastSrcIP = ip
			}
		case k == "unicast_peer":
			if !c.HasBlock {
				d.errorf(c.Pos, "unicast_peer needs a block { ... }")
				continue
			}
			d.set(inst.Keys, c, in)
			inst.UnicastPeers = append(inst.UnicastPeers, d.peers(c)...)
		case k == "track_script" || k == "track_interface" || k == "track_process":
			if !c.HasBlock {
				d.errorf(c.Pos, "%s needs a block { ... }", k)
				continue
			}
			d.set(inst.Keys, c, in)
			refs := d.trackRefs(c)
			switch k {
			case "track_script":
				inst.TrackScripts = append(inst.TrackScripts, refs...)
			case "track_interface":
				inst.TrackInterfaces = append(inst.TrackInterfaces, refs...)
			default:
				inst.TrackProcesses = append(inst.TrackProcesses, refs...)
			}
		case notifyKeywords[k]:
			if nt, ok := d.notify(c); ok {
				inst.Notify = append(inst.Notify, nt)
				if _, set := inst.Keys[k]; !set {
					inst.Keys[k] = c.Pos // keepalived keeps the first one
				}
			}
		case k == "use_vmac":
			if !d.noBlock(c) {
				continue
			}
			d.set(inst.Keys, c, in)
			inst.VMAC = d.vmac(c)
		case d.garp(c, "", inst.Keys, in, &inst.Garp):
		case ignoredInstanceKeywords[k]:
			inst.Ignored = append(inst.Ignored, directive(c))
		default:
			d.unknown(c, in)
		}
	}
	if inst.VRID == 0 {
		d.errorf(n.Pos, "vrrp_instance %s has no virtual_router_id", name)
	}
	return inst
}

func (d *decoder) notify(c *Node) (Notify, bool) {
	if !d.noBlock(c) {
		return Notify{}, false
	}
	nt := Notify{Pos: c.Pos, Keyword: c.Keyword}
	if len(c.Args) > 0 {
		nt.Command = c.Args[0].Value
		for _, a := range c.Args[1:] {
			nt.Args = append(nt.Args, a.Value)
		}
	} else if c.Keyword != "notify_deleted" {
		d.errorf(c.Pos, "%s needs a script", c.Keyword)
		return Notify{}, false
	}
	return nt, true
}

// vmac reads use_vmac's optional interface name and MAC address (a word with a ':' is the
// address, as keepalived tells them apart).
func (d *decoder) vmac(c *Node) *VMAC {
	v := &VMAC{Pos: c.Pos}
	for i, a := range c.Args {
		switch {
		case i >= 2:
			d.warnf(a.Pos, "use_vmac: %q ignored (keepalived reads an interface name and a MAC address, and ignores the rest)", a.Value)
		case strings.Contains(a.Value, ":"):
			v.MAC = a.Value
		default:
			v.Name = a.Value
		}
	}
	return v
}

// keepalived's defaults of the gratuitous ARP timing (keepalived.conf(5); keepalived 2.2.7's
// data dump shows the same: delay 5, repeat 5, refresh 0, refresh repeat 1).
const (
	defaultGarpDelay         = 5 // seconds
	defaultGarpRepeat        = 5
	defaultGarpRefresh       = 0 // no refresh
	defaultGarpRefreshRepeat = 1
	// keepalived reads garp_master_delay as whole seconds up to UINT_MAX microseconds.
	maxGarpDelay = math.MaxUint32 / 1_000_000
)

// garp reads garp_master_delay, garp_master_repeat, garp_master_refresh and
// garp_master_refresh_repeat (with prefix "vrrp_" in global_defs: vrrp_garp_master_delay, ...)
// into g. It reports whether c is one of them. keepalived reads each as a whole number of
// seconds or messages.
func (d *decoder) garp(c *Node, prefix string, keys map[string]Pos, in string, g *Garp) bool {
	k, ok := strings.CutPrefix(c.Keyword, prefix)
	if !ok {
		return false
	}
	v, hi := (*GarpValue)(nil), math.MaxInt32
	switch k {
	case "garp_master_delay":
		v, hi = &g.Delay, maxGarpDelay
	case "garp_master_repeat":
		v = &g.Repeat
	case "garp_master_refresh":
		v = &g.Refresh
	case "garp_master_refresh_repeat":
		v = &g.RefreshRepeat
	default:
		return false
	}
	if n, ok := d.intArg(c, 0, hi); ok {
		d.set(keys, c, in)
		*v = GarpValue{Set: true, Value: n, Keyword: c.Keyword, Pos: c.Pos}
	}
	return true
}

// minGarp applies vrrp_min_garp as keepalived 2.2.7 does, at its place among the other
// keywords: each setting that still has keepalived's default value becomes the minimum (one
// message, no second burst; the refresh repeat becomes 0), the others are kept.
func (g *Garp) minGarp(at Pos) {
	set := func(v *GarpValue, def, min int) {
		if !v.Set || v.Value == def {
			*v = GarpValue{Set: true, Value: min, Keyword: "vrrp_min_garp", Pos: at}
		}
	}
	set(&g.Delay, defaultGarpDelay, 0)
	set(&g.Repeat, defaultGarpRepeat, 1)
	set(&g.RefreshRepeat, defaultGarpRefreshRepeat, 0)
}

func (d *decoder) auth(n *Node, in string) *Auth {
	a := &Auth{Pos: n.Pos}
	for _, c := range n.Block {
		switch c.Keyword {
		case "auth_type":
			if v, ok := d.arg(c); ok {
				t := strings.ToUpper(v.Value)
				if t != "PASS" && t != "AH" {
					d.errorf(v.Pos, "auth_type: %q is not PASS or AH", v.Value)
					continue
				}
				a.Type = t
			}
		case "auth_pass":
			// Not d.arg: it would show the password in its warning about extra words.
			if !d.noBlock(c) {
				continue
			}
			if len(c.Args) == 0 {
				d.errorf(c.Pos, "auth_pass needs a value")
				continue
			}
			if len(c.Args) > 1 {
				d.warnf(c.Args[1].Pos, "auth_pass: the words after the password are ignored, and not shown: keepalived takes the first word as the password (quote a password with spaces)")
			}
			a.Pass, a.PassPos = c.Args[0].Value, c.Pos
		default:
			d.unknown(c, in+" authentication")
		}
	}
	if a.Type == "" {
		d.errorf(n.Pos, "authentication without auth_type")
	}
	return a
}

// vips reads the entries of virtual_ipaddress: "<IPADDR>[/<MASK>] [brd X] [dev X]
// [scope X] [label X] [peer X] [flags...]", one address (or range a.b.c.d-e) per line.
func (d *decoder) vips(n *Node) []VIP {
	var out []VIP
	for _, c := range n.Block {
		if c.HasBlock {
			d.errorf(c.BlockPos, "%s: an address does not take a block", n.Keyword)
			continue
		}
		v := VIP{Pos: c.Pos}
		ok := true
		for i := 0; i < len(c.Args); i++ {
			a := c.Args[i]
			switch a.Value {
			case "brd", "dev", "scope", "label", "peer", "preferred_lft", "track_group":
				if i+1 >= len(c.Args) {
					d.errorf(a.Pos, "%s: %s needs a value", n.Keyword, a.Value)
					ok = false
					continue
				}
				i++
				val := c.Args[i].Value
				switch a.Value {
				case "brd":
					v.Brd = val
				case "dev":
					v.Dev = val
				case "scope":
					v.Scope = val
				case "label":
					v.Label = val
				case "peer":
					v.Peer = val
				default:
					v.Flags = append(v.Flags, a.Value+" "+val)
				}
			case "home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track", "use_vmac":
				v.Flags = append(v.Flags, a.Value)
			default:
				if _, err := netip.ParsePrefix(a.Value); err == nil || isAddr(a.Value) {
					d.errorf(a.Pos, "%s: write one address per line (keepalived would read %q as an option of %s)", n.Keyword, a.Value, c.Keyword)
				} else {
					d.errorf(a.Pos, "%s: unknown address option %q", n.Keyword, a.Value)
				}
				ok = false
			}
		}
		addrs, err := expandAddress(c.Keyword)
		if err != nil {
			d.errorf(c.Pos, "%s: %v", n.Keyword, err)
			continue
		}
		if !ok {
			continue
		}
		for _, p := range addrs {
			w := v
			w.Prefix = p.prefix
			w.Address = p.text
			w.Flags = append([]string(nil), v.Flags...)
			out = append(out, w)
		}
	}
	return out
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

type expanded struct {
	text   string
	prefix netip.Prefix
}

// maxRange bounds an address range (a.b.c.d-e): a VirtualIP holds at most 64 addresses.
const maxRange = 64

// expandAddress parses "ADDR[/MASK]" or the range form "ADDR-LAST[/MASK]" where LAST
// replaces the last octet (IPv4) or the last group (IPv6, hexadecimal).
func expandAddress(s string) ([]expanded, error) {
	addrPart, mask, hasMask := strings.Cut(s, "/")
	last := ""
	if i := strings.LastIndexByte(addrPart, '-'); i >= 0 {
		addrPart, last = addrPart[:i], addrPart[i+1:]
	}
	ip, err := netip.ParseAddr(addrPart)
	if err != nil || ip.Zone() != "" {
		return nil, fmt.Errorf("%q is not an IP address", s)
	}
	ip = ip.Unmap()
	bits := ip.BitLen()
	if hasMask {
		m, err := strconv.Atoi(mask)
		if err != nil || m < 0 || m > bits || strings.HasPrefix(mask, "+") {
			return nil, fmt.Errorf("%q has a bad prefix length", s)
		}
		bits = m
	}
	one := func(a netip.Addr) expanded {
		t := a.String()
		if hasMask {
			t += "/" + strconv.Itoa(bits)
		}
		return expanded{text: t, prefix: netip.PrefixFrom(a, bits)}
	}
	if last == "" {
		return []expanded{one(ip)}, nil
	}
	b := ip.AsSlice()
	var first, end uint64
	if ip.Is4() {
		v, err := strconv.ParseUint(last, 10, 8)
		if err != nil {
			return nil, fmt.Errorf("%q: bad range end %q", s, last)
		}
		first, end = uint64(b[3]), v
	} else {
		v, err := strconv.ParseUint(last, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("%q: bad range end %q", s, last)
		}
		first, end = uint64(b[14])<<8|uint64(b[15]), v
	}
	if end < first {
		return nil, fmt.Errorf("%q: range ends before it starts", s)
	}
	if end-first+1 > maxRange {
		return nil, fmt.Errorf("%q: range of %d addresses is larger than %d", s, end-first+1, maxRange)
	}
	var out []expanded
	for v := first; v <= end; v++ {
		if ip.Is4() {
			b[3] = byte(v)
		} else {
			b[14], b[15] = byte(v>>8), byte(v)
		}
		a, _ := netip.AddrFromSlice(b)
		out = append(out, one(a))
	}
	return out, nil
}

func (d *decoder) peers(n *Node) []UnicastPeer {
	var out []UnicastPeer
	for _, c := range n.Block {
		if c.HasBlock {
			d.errorf(c.BlockPos, "unicast_peer: an address does not take a block")
			continue
		}
		ip, ok := d.addrValue("unicast_peer", Arg{Value: c.Keyword, Pos: c.Pos})
		if !ok {
			continue
		}
		p := UnicastPeer{Pos: c.Pos, Addr: ip, MinTTL: -1, MaxTTL: -1}
		for i := 0; i < len(c.Args); i++ {
			a := c.Args[i]
			if a.Value != "min_ttl" && a.Value != "max_ttl" {
				if isAddr(a.Value) {
					d.errorf(a.Pos, "unicast_peer: write one address per line (keepalived would read %q as an option of %s)", a.Value, c.Keyword)
				} else {
					d.errorf(a.Pos, "unicast_peer: unknown option %q", a.Value)
				}
				ok = false
				break
			}
			if i+1 >= len(c.Args) {
				d.errorf(a.Pos, "unicast_peer: %s needs a value", a.Value)
				ok = false
				break
			}
			i++
			v, vok := d.intValue(a.Value, c.Args[i], 0, 255)
			if !vok {
				ok = false
				break
			}
			if a.Value == "min_ttl" {
				p.MinTTL = v
			} else {
				p.MaxTTL = v
			}
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// trackRefs reads "NAME [weight N [reverse|noreverse]]" lines.
func (d *decoder) trackRefs(n *Node) []TrackRef {
	limit := 253
	if n.Keyword == "track_process" {
		limit = 254
	}
	var out []TrackRef
	for _, c := range n.Block {
		if c.HasBlock {
			d.errorf(c.BlockPos, "%s: an entry does not take a block", n.Keyword)
			continue
		}
		r := TrackRef{Pos: c.Pos, Name: c.Keyword}
		if len(c.Args) > 0 {
			if c.Args[0].Value != "weight" {
				d.errorf(c.Args[0].Pos, "%s: unexpected %q after %s (one name per line, then an optional weight N)", n.Keyword, c.Args[0].Value, c.Keyword)
				continue
			}
			w, rev, ok := d.weight(c, c.Args[1:], limit)
			if !ok {
				continue
			}
			r.Weight, r.WeightSet, r.Reverse = w, true, rev
		}
		out = append(out, r)
	}
	return out
}

func (d *decoder) syncGroup(name string, n *Node) *SyncGroup {
	in := "vrrp_sync_group " + name
	g := &SyncGroup{Name: name, Pos: n.Pos, Keys: map[string]Pos{}}
	for _, c := range n.Block {
		switch k := c.Keyword; {
		case k == "group":
			if !c.HasBlock {
				d.errorf(c.Pos, "group needs a block { instance names }")
				continue
			}
			d.set(g.Keys, c, in)
			g.GroupPos = c.Pos
			for _, m := range c.Block {
				if m.HasBlock {
					d.errorf(m.BlockPos, "group: an instance name does not take a block")
					continue
				}
				g.Group = append(g.Group, m.Keyword)
				for _, a := range m.Args {
					g.Group = append(g.Group, a.Value)
				}
			}
		case k == "track_script" || k == "track_interface" || k == "track_process":
			if !c.HasBlock {
				d.errorf(c.Pos, "%s needs a block { ... }", k)
				continue
			}
			d.set(g.Keys, c, in)
			refs := d.trackRefs(c)
			switch k {
			case "track_script":
				g.TrackScripts = append(g.TrackScripts, refs...)
			case "track_interface":
				g.TrackInterfaces = append(g.TrackInterfaces, refs...)
			default:
				g.TrackProcesses = append(g.TrackProcesses, refs...)
			}
		case notifyKeywords[k]:
			if nt, ok := d.notify(c); ok {
				g.Notify = append(g.Notify, nt)
			}
		case k == "sync_group_tracking_weight" || k == "global_tracking":
			d.flag(c)
			d.set(g.Keys, c, in)
			g.TrackingWeight = true
		case k == "smtp_alert" || k == "notify_priority_changes" || k == "track_file" || k == "track_bfd":
			g.Ignored = append(g.Ignored, directive(c))
		default:
			d.unknown(c, in)
		}
	}
	if len(g.Group) == 0 {
		d.errorf(n.Pos, "vrrp_sync_group %s has no group { ... } of instances", name)
	}
	return g
}
