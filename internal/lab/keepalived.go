package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// VRRPInstance describes one keepalived vrrp_instance, the way the setups kube-vrrp replaces
// write them. Zero fields take keepalived's usual values.
type VRRPInstance struct {
	// Name of the instance (default "VI_1").
	Name string
	// Interface (default "eth0").
	Interface string
	// VRID, 1..255 (required).
	VRID int
	// Version is 2 or 3 (default 3). IPv6 VIPs need 3; AuthPass needs 2.
	Version int
	// State is the initial state, "BACKUP" (default) or "MASTER".
	State string
	// Priority, 1..255 (default 100).
	Priority int
	// AdvertInt (default 1 s). Version 3 takes centiseconds (0.01 s steps); version 2 whole
	// seconds.
	AdvertInt time.Duration
	// NoPreempt writes `nopreempt` (keepalived wants State BACKUP with it).
	NoPreempt bool
	// PreemptDelay writes `preempt_delay` (whole seconds in keepalived 2.2).
	PreemptDelay time.Duration
	// AuthPass writes `authentication { auth_type PASS ... }` (VRRPv2 only; keepalived uses
	// the first 8 characters).
	AuthPass string
	// UnicastSrc and UnicastPeers switch the instance to unicast adverts.
	UnicastSrc   netip.Addr
	UnicastPeers []netip.Addr
	// VIPs are the virtual addresses ("198.18.0.200/24"); one family per instance.
	VIPs []netip.Prefix
	// TrackScripts names vrrp_script blocks (KeepalivedConfig.Scripts) to track.
	TrackScripts []string
	// UseVMAC writes `use_vmac`: keepalived makes a macvlan with the virtual router MAC
	// (RFC 5798 §7.3; named vrrp.VRID) and puts the VIPs on it, so they are written without
	// `dev`.
	UseVMAC bool
	// Extra lines go verbatim inside the instance block.
	Extra []string
}

// VRRPScript is a keepalived vrrp_script: the health check of the setups kube-vrrp replaces
// (`pgrep -x haproxy`, interval 2, fall 2, rise 2, weight -20).
type VRRPScript struct {
	// Name of the block, referenced by VRRPInstance.TrackScripts.
	Name string
	// Script is the command line (keepalived runs it without a shell).
	Script string
	// Interval between runs (default 1 s), whole seconds in keepalived 2.2.
	Interval time.Duration
	// Timeout of one run (0: keepalived's default, the interval).
	Timeout time.Duration
	// Fall and Rise (default 1): consecutive failures/successes that change the state.
	Fall, Rise int
	// Weight: 0 puts the instance in FAULT while failing; negative is added to the priority
	// while failing; positive while succeeding.
	Weight int
}

// String renders the vrrp_script block.
func (s VRRPScript) String() string {
	iv := s.Interval
	if iv == 0 {
		iv = time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "vrrp_script %s {\n    script %q\n    interval %s\n", s.Name, s.Script, seconds(iv))
	if s.Timeout > 0 {
		fmt.Fprintf(&b, "    timeout %s\n", seconds(s.Timeout))
	}
	fmt.Fprintf(&b, "    fall %d\n    rise %d\n", max(1, s.Fall), max(1, s.Rise))
	if s.Weight != 0 {
		fmt.Fprintf(&b, "    weight %d\n", s.Weight)
	}
	b.WriteString("}\n")
	return b.String()
}

// ForNode returns a copy of in for node n with the given priority. With unicast peers, the
// copy sends unicast adverts from n's address to theirs (IPv6 addresses if the first VIP is
// IPv6, else IPv4); n itself is skipped if listed, so one peer list serves every member.
func (in VRRPInstance) ForNode(n *Node, priority int, unicastPeers ...*Node) VRRPInstance {
	in.Priority = priority
	in.UnicastPeers = nil
	in.UnicastSrc = netip.Addr{}
	if len(unicastPeers) == 0 {
		return in
	}
	v6 := len(in.VIPs) > 0 && in.VIPs[0].Addr().Is6()
	pick := func(m *Node) netip.Addr {
		if v6 {
			return m.IPv6
		}
		return m.IPv4
	}
	in.UnicastSrc = pick(n)
	for _, m := range unicastPeers {
		if m != n {
			in.UnicastPeers = append(in.UnicastPeers, pick(m))
		}
	}
	return in
}

// KeepalivedConfig is a whole keepalived.conf: global_defs plus instances.
type KeepalivedConfig struct {
	// RouterID for global_defs (default "lab").
	RouterID string
	// Global lines go verbatim inside global_defs.
	Global []string
	// Scripts are vrrp_script blocks. With any, global_defs also gets `script_user root` and
	// `enable_script_security` (keepalived otherwise warns and may refuse to run them).
	Scripts []VRRPScript
	// Instances are the vrrp_instance blocks.
	Instances []VRRPInstance
}

// KeepalivedConf renders a keepalived.conf with the given router id and instances.
func KeepalivedConf(routerID string, instances ...VRRPInstance) string {
	return KeepalivedConfig{RouterID: routerID, Instances: instances}.String()
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// String renders the configuration.
func (c KeepalivedConfig) String() string {
	var b strings.Builder
	id := c.RouterID
	if id == "" {
		id = "lab"
	}
	fmt.Fprintf(&b, "global_defs {\n    router_id %s\n", id)
	if len(c.Scripts) > 0 {
		b.WriteString("    script_user root\n    enable_script_security\n")
	}
	for _, g := range c.Global {
		fmt.Fprintf(&b, "    %s\n", g)
	}
	b.WriteString("}\n")
	for _, s := range c.Scripts {
		b.WriteString("\n")
		b.WriteString(s.String())
	}
	for _, in := range c.Instances {
		b.WriteString("\n")
		b.WriteString(in.String())
	}
	return b.String()
}

// String renders the vrrp_instance block.
func (in VRRPInstance) String() string {
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	version := in.Version
	if version == 0 {
		version = 3
	}
	prio := in.Priority
	if prio == 0 {
		prio = 100
	}
	adv := in.AdvertInt
	if adv == 0 {
		adv = time.Second
	}
	ifname := def(in.Interface, Interface)
	var b strings.Builder
	fmt.Fprintf(&b, "vrrp_instance %s {\n", def(in.Name, "VI_1"))
	fmt.Fprintf(&b, "    state %s\n", def(in.State, "BACKUP"))
	fmt.Fprintf(&b, "    interface %s\n", ifname)
	fmt.Fprintf(&b, "    version %d\n", version)
	fmt.Fprintf(&b, "    virtual_router_id %d\n", in.VRID)
	fmt.Fprintf(&b, "    priority %d\n", prio)
	fmt.Fprintf(&b, "    advert_int %s\n", seconds(adv))
	if in.NoPreempt {
		b.WriteString("    nopreempt\n")
	}
	if in.PreemptDelay > 0 {
		fmt.Fprintf(&b, "    preempt_delay %s\n", seconds(in.PreemptDelay))
	}
	if in.AuthPass != "" {
		fmt.Fprintf(&b, "    authentication {\n        auth_type PASS\n        auth_pass %s\n    }\n", in.AuthPass)
	}
	if in.UnicastSrc.IsValid() {
		fmt.Fprintf(&b, "    unicast_src_ip %s\n", in.UnicastSrc)
	}
	if len(in.UnicastPeers) > 0 {
		b.WriteString("    unicast_peer {\n")
		for _, p := range in.UnicastPeers {
			fmt.Fprintf(&b, "        %s\n", p)
		}
		b.WriteString("    }\n")
	}
	if len(in.VIPs) > 0 {
		b.WriteString("    virtual_ipaddress {\n")
		for _, v := range in.VIPs {
			if in.UseVMAC {
				fmt.Fprintf(&b, "        %s\n", v)
				continue
			}
			fmt.Fprintf(&b, "        %s dev %s\n", v, ifname)
		}
		b.WriteString("    }\n")
	}
	if in.UseVMAC {
		b.WriteString("    use_vmac\n")
	}
	if len(in.TrackScripts) > 0 {
		b.WriteString("    track_script {\n")
		for _, s := range in.TrackScripts {
			fmt.Fprintf(&b, "        %s\n", s)
		}
		b.WriteString("    }\n")
	}
	for _, e := range in.Extra {
		fmt.Fprintf(&b, "    %s\n", e)
	}
	b.WriteString("}\n")
	return b.String()
}

// KeepalivedArgs returns the keepalived command line for a config file in dir: VRRP only,
// in the foreground, logging to stdout (not syslog), with pid files in dir. keepalived's
// default pid files are /run/keepalived.pid and /run/vrrp.pid (and checkers.pid); a second
// keepalived on the host would find the first one's and refuse to start, so every node
// gets its own.
func KeepalivedArgs(conf, dir string) []string {
	return []string{
		"keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"),
		"-r", filepath.Join(dir, "vrrp.pid"),
		"-c", filepath.Join(dir, "checkers.pid"),
	}
}

// ExecKeepalived writes cfg to the node's directory and starts keepalived with it (see
// KeepalivedArgs). Each call gets its own directory, so a node can restart keepalived.
func (n *Node) ExecKeepalived(cfg string) (*Proc, error) {
	name := n.lab.procName(n.Name, "keepalived-conf")
	dir := filepath.Join(n.Dir, name)
	conf, err := n.WriteFile(filepath.Join(name, "keepalived.conf"), []byte(cfg))
	if err != nil {
		return nil, err
	}
	return n.Exec(context.Background(), "keepalived", n.lab.speakerArgv(KeepalivedArgs(conf, dir))...)
}

// StartKeepalived is ExecKeepalived for tests. keepalived stops (SIGTERM, which makes a
// MASTER send priority 0) with the lab.
func (n *Node) StartKeepalived(t testing.TB, cfg string) *Proc {
	t.Helper()
	p, err := n.ExecKeepalived(cfg)
	if err != nil {
		t.Fatalf("%s: keepalived: %v", n.Name, err)
	}
	return p
}

var keepalivedState = regexp.MustCompile(`\((\S+)\) Entering (\S+) STATE`)

// KeepalivedStates returns each instance's latest state as keepalived logged it ("MASTER",
// "BACKUP", "FAULT"); an instance that has logged no transition yet is missing.
func KeepalivedStates(p *Proc) map[string]string {
	st := map[string]string{}
	for _, m := range keepalivedState.FindAllStringSubmatch(p.Log(), -1) {
		st[m[1]] = m[2]
	}
	return st
}

// WaitKeepalivedState waits until instance (e.g. "VI_1") of keepalived process p has
// logged entering state (e.g. "MASTER") as its latest transition.
func WaitKeepalivedState(p *Proc, instance, state string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := KeepalivedStates(p)[instance]
		if got == state {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s keepalived exited; %s is %q, want %s:\n%s", p.Node.Name, instance, got, state, p.Tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s keepalived %s is %q after %v, want %s", p.Node.Name, instance, got, timeout, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
