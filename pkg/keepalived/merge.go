package keepalived

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// member is one node's instance of a VRRP group.
type member struct {
	node string
	d    *draft
}

// Merge combines the configurations of the hosts of one or more VRRP groups, keyed by the
// Kubernetes node name of each host. Instances are matched by virtual_router_id and address
// family (and by interface when a host has the same VRID on two interfaces). Each group
// becomes one VirtualIP: nodes[] lists every host that had the instance, by its node name, and
// without a nodeSelector those hosts are exactly the members; spec.priority is the most common
// priority (the lowest on a tie) and the nodes[] entries of the other hosts carry their own
// priorities and interfaces; unicast.peers lists every member's unicast_src_ip and every
// unicast_peer. Every difference that one VirtualIP cannot hold (addresses, interval, version,
// preemption, authentication, probes, ...) is an error naming both files.
func Merge(perNode map[string]*Config) (*Result, error) {
	if len(perNode) == 0 {
		return nil, fmt.Errorf("keepalived: Merge needs at least one node")
	}
	nodes := make([]string, 0, len(perNode))
	for n, cfg := range perNode {
		if cfg == nil {
			return nil, fmt.Errorf("keepalived: Merge: node %q has no configuration", n)
		}
		if n == "" || len(n) > 253 || sanitizeNodeName(n) != n {
			return nil, fmt.Errorf("keepalived: Merge: %q is not a valid node name (lower-case DNS subdomain)", n)
		}
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)

	var errs ErrorList
	groups := map[string][]member{}
	// The messages of one node may name what is a secret of another (the same password, a
	// URL with credentials in another script): every message is redacted with the secrets
	// of all nodes.
	red := newRedactor()
	convs := make([]*converter, len(nodes))
	for i, n := range nodes {
		cfg := perNode[n]
		c := newConverter(cfg)
		drafts := c.all()
		errs = append(errs, c.errs...)
		for _, d := range drafts {
			if d.src.IsValid() && d.spec.Unicast != nil {
				c.warnf(d.inst.Keys["unicast_src_ip"], "unicast_src_ip %s of node %s is listed in unicast.peers with every other member's address; a node skips its own addresses", d.src, n)
			}
			k := fmt.Sprintf("%03d/%d", d.spec.VRID, d.family)
			groups[k] = append(groups[k], member{node: n, d: d})
		}
		red = red.merge(c.red)
		convs[i] = c
	}
	var warnings []string
	for i, n := range nodes {
		red.warnings(convs[i].warns)
		warnings = append(warnings, convs[i].warningStrings(perNode[n].Files)...)
	}
	red.errors(errs)
	if err := errs.err(); err != nil {
		return nil, err
	}

	// A host may run one VRID on two interfaces (two LANs): then the interface tells the
	// groups apart.
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ordered [][]member
	for _, k := range keys {
		ms := groups[k]
		if !hasDuplicateNode(ms) {
			ordered = append(ordered, ms)
			continue
		}
		byIf := map[string][]member{}
		for _, m := range ms {
			byIf[m.d.spec.Interface] = append(byIf[m.d.spec.Interface], m)
		}
		ifs := make([]string, 0, len(byIf))
		for i := range byIf {
			ifs = append(ifs, i)
		}
		sort.Strings(ifs)
		for _, i := range ifs {
			if hasDuplicateNode(byIf[i]) {
				m := byIf[i][0]
				errs = append(errs, errorf(m.d.inst.Pos, "node %s has two vrrp_instances with virtual_router_id %d for IPv%d on interface %q", m.node, m.d.spec.VRID, m.d.family, i))
				continue
			}
			ordered = append(ordered, byIf[i])
		}
	}

	res := &Result{}
	names := newNamer()
	var mergeWarns []Warning
	for _, ms := range ordered {
		vip, password, ws, es := mergeGroup(ms, nodes, names)
		mergeWarns = append(mergeWarns, ws...)
		errs = append(errs, es...)
		if len(es) > 0 {
			continue
		}
		if password != "" {
			sec := secretFor(vip.Name, password)
			vip.Spec.Authentication.SecretRef.Name = sec.Name
			res.Secrets = append(res.Secrets, sec)
		}
		res.VirtualIPs = append(res.VirtualIPs, vip)
	}
	red.errors(errs)
	red.warnings(mergeWarns)
	if err := errs.err(); err != nil {
		return nil, err
	}
	var files []string
	for _, n := range nodes {
		files = append(files, perNode[n].Files...)
	}
	res.Warnings = append(warnings, formatWarnings(mergeWarns, files)...)
	return res, nil
}

func hasDuplicateNode(ms []member) bool {
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.node] {
			return true
		}
		seen[m.node] = true
	}
	return false
}

// sanitizeNodeName keeps what a node name may contain (a DNS subdomain): Merge refuses names
// it would change.
func sanitizeNodeName(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = sanitizeName(p)
	}
	return strings.Join(parts, ".")
}

// mergeGroup merges the members (sorted by node) of one VRRP group.
func mergeGroup(ms []member, allNodes []string, names *namer) (v1alpha1.VirtualIP, string, []Warning, ErrorList) {
	ref := ms[0]
	group := fmt.Sprintf("vrid %d (IPv%d)", ref.d.spec.VRID, ref.d.family)
	var errs ErrorList
	var warns []Warning

	// Compare every member with the first one.
	for _, m := range ms[1:] {
		errs = append(errs, compareMembers(group, ref, m)...)
	}

	// The name: the most common instance name, the first in order on a tie.
	instNames := make([]string, len(ms))
	for i, m := range ms {
		instNames[i] = m.d.inst.Name
	}
	instName := mostCommon(instNames, func(a, b string) bool { return a < b })
	if distinct(instNames) > 1 {
		warns = append(warns, Warning{Pos: ref.d.inst.Pos, Msg: fmt.Sprintf("%s: the instance has different names on different nodes (%s); the VirtualIP is named after %s", group, strings.Join(slices.Compact(slices.Sorted(slices.Values(instNames))), ", "), instName)})
	}

	spec := ref.d.spec
	spec.Addresses = slices.Clone(spec.Addresses)

	// Priority: the most common one, the lowest on a tie, so that a node added later joins
	// as a backup; the others as per-node overrides.
	prios := make([]int32, len(ms))
	ifaces := make([]string, len(ms))
	for i, m := range ms {
		prios[i] = m.d.priority
		ifaces[i] = m.d.spec.Interface
	}
	prio := mostCommon(prios, func(a, b int32) bool { return a < b })
	iface := mostCommon(ifaces, func(a, b string) bool { return a < b })
	spec.Priority = ptr(prio)
	spec.Interface = iface
	// The members, and only they, run the group: spec.nodes lists every one of them by node
	// name (without nodeSelector that list is the member set), with its own priority and
	// interface where they differ from the group's.
	spec.NodeSelector = nil
	spec.Nodes = nil
	for _, m := range ms {
		o := v1alpha1.NodeOverride{Name: m.node}
		if m.d.priority != prio {
			o.Priority = ptr(m.d.priority)
		}
		if m.d.spec.Interface != iface {
			if m.d.spec.Interface == "" {
				warns = append(warns, Warning{Pos: m.d.inst.Pos, Msg: fmt.Sprintf("%s: node %s names no interface; it uses spec.interface %s", group, m.node, iface)})
			} else {
				o.Interface = m.d.spec.Interface
			}
		}
		spec.Nodes = append(spec.Nodes, o)
	}

	// Unicast: every member's source address and every peer, in one list.
	if spec.Unicast != nil {
		var all []netip.Addr
		for _, m := range ms {
			all = append(all, m.d.peers...)
			all = append(all, m.d.src)
		}
		spec.Unicast = &v1alpha1.UnicastSpec{Peers: addrStrings(unionAddrs(all))}
	}

	memberNodes := make([]string, len(ms))
	for i, m := range ms {
		memberNodes[i] = m.node
	}
	if len(ms) < len(allNodes) {
		var missing []string
		for _, n := range allNodes {
			if !slices.Contains(memberNodes, n) {
				missing = append(missing, n)
			}
		}
		warns = append(warns, Warning{Pos: ref.d.inst.Pos, Msg: fmt.Sprintf("%s (vrrp_instance %s) is configured only on %s, not on %s; the VirtualIP selects only %s", group, instName, strings.Join(memberNodes, ", "), strings.Join(missing, ", "), strings.Join(memberNodes, ", "))})
	}
	if len(ms) == 1 {
		warns = append(warns, Warning{Pos: ref.d.inst.Pos, Msg: fmt.Sprintf("%s: only node %s runs this group, so there is no failover", group, ref.node)})
	}

	name := names.name(instName, spec.VRID)
	for _, m := range ms {
		if w, ok := notifyAllWarning(m.d, name); ok {
			warns = append(warns, w)
		}
	}
	return virtualIP(name, spec), ref.d.password, warns, errs
}

// compareMembers reports each field in which m differs from ref and that one VirtualIP
// cannot hold per node.
func compareMembers(group string, ref, m member) ErrorList {
	var errs ErrorList
	diff := func(field, key string, a, b string) {
		pa, pb := fieldPos(ref.d, key), fieldPos(m.d, key)
		errs = append(errs, errorf(pa, "%s: %s differs between nodes: %s has %s here, %s has %s at %s; make them equal (kube-vrrp keeps it per group, not per node)", group, field, ref.node, a, m.node, b, pb))
	}
	r, o := ref.d.spec, m.d.spec
	if ra, oa := sortedCopy(r.Addresses), sortedCopy(o.Addresses); !slices.Equal(ra, oa) {
		diff("virtual_ipaddress", "virtual_ipaddress", "["+strings.Join(ra, " ")+"]", "["+strings.Join(oa, " ")+"]")
	}
	if r.Version != o.Version {
		diff("VRRP version", "version", fmt.Sprint(r.Version), fmt.Sprint(o.Version))
	}
	if ri, oi := r.AdvertisementInterval.Duration, o.AdvertisementInterval.Duration; ri != oi {
		diff("advert_int", "advert_int", ri.String(), oi.String())
	}
	if rp, op := boolStr(r.Preempt, "preempt"), boolStr(o.Preempt, "preempt"); rp != op {
		diff("preemption", "nopreempt", rp, op)
	}
	if rd, od := durStr(r.PreemptDelay), durStr(o.PreemptDelay); rd != od {
		diff("preempt_delay", "preempt_delay", rd, od)
	}
	if ra, oa := boolStr(r.Accept, "accept"), boolStr(o.Accept, "accept"); ra != oa {
		diff("accept mode", "accept", ra, oa)
	}
	if (r.Unicast == nil) != (o.Unicast == nil) {
		diff("unicast", "unicast_peer", modeStr(r.Unicast), modeStr(o.Unicast))
	}
	switch {
	case (ref.d.password == "") != (m.d.password == ""):
		diff("authentication", "authentication", authStr(ref.d.password), authStr(m.d.password))
	case ref.d.password != m.d.password:
		// Never print passwords.
		diff("auth_pass", "authentication", "one password", "another")
	}
	if r.VirtualMAC != o.VirtualMAC {
		diff("use_vmac", "use_vmac", vmacStr(r.VirtualMAC), vmacStr(o.VirtualMAC))
	}
	if ra, oa := jsonStr(r.Announcements), jsonStr(o.Announcements); ra != oa {
		k := garpKey(ref.d)
		if k == "" {
			k = garpKey(m.d)
		}
		diff("the gratuitous ARP timing (garp_master_*)", k, ra, oa)
	}
	for _, k := range []string{"notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"} {
		ra, oa := notifyStr(r.Notify, k), notifyStr(o.Notify, k)
		if ra != oa {
			diff(k, k, ra, oa)
		}
	}
	errs = append(errs, compareProbes(group, ref, m)...)
	return errs
}

func vmacStr(on bool) string {
	if on {
		return "use_vmac"
	}
	return "no use_vmac"
}

func jsonStr(v any) string {
	j, _ := json.Marshal(v)
	return string(j)
}

// garpKey is the first garp_master_* keyword the instance sets, for the position of a merge
// error.
func garpKey(d *draft) string {
	for _, k := range []string{"garp_master_delay", "garp_master_repeat", "garp_master_refresh", "garp_master_refresh_repeat"} {
		if _, ok := d.inst.Keys[k]; ok {
			return k
		}
	}
	return ""
}

// notifyStr is the converted command of a notify keyword, quoted as a shell would need.
func notifyStr(n *v1alpha1.NotifySpec, keyword string) string {
	if n == nil {
		return "none"
	}
	argv := *notifyFields[keyword](n)
	if argv == nil {
		return "none"
	}
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strconv.Quote(strings.Join(q, " "))
}

func compareProbes(group string, ref, m member) ErrorList {
	var errs ErrorList
	index := func(d *draft) map[string]string {
		out := map[string]string{}
		for _, p := range d.spec.Probes {
			j, _ := json.Marshal(p)
			out[p.Name] = string(j)
		}
		return out
	}
	rp, op := index(ref.d), index(m.d)
	names := map[string]bool{}
	for n := range rp {
		names[n] = true
	}
	for n := range op {
		names[n] = true
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range names {
			if !yield(k) {
				return
			}
		}
	}) {
		a, inRef := rp[n]
		b, inM := op[n]
		pa, pb := probePos(ref.d, n), probePos(m.d, n)
		switch {
		case !inM:
			errs = append(errs, errorf(pa, "%s: tracked %s exists on %s but not on %s (%s); track the same scripts on every node", group, n, ref.node, m.node, m.d.cfg.File))
		case !inRef:
			errs = append(errs, errorf(pb, "%s: tracked %s exists on %s but not on %s (%s); track the same scripts on every node", group, n, m.node, ref.node, ref.d.cfg.File))
		case a != b:
			errs = append(errs, errorf(pa, "%s: tracked %s differs between nodes: %s has %s here, %s has %s at %s; make the scripts and weights equal", group, n, ref.node, a, m.node, b, pb))
		}
	}
	return errs
}

func probePos(d *draft, name string) Pos {
	if p, ok := d.probeFrom[name]; ok {
		return p
	}
	return d.inst.Pos
}

func fieldPos(d *draft, key string) Pos {
	if p, ok := d.inst.Keys[key]; ok {
		return p
	}
	return d.inst.Pos
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return c
}

func boolStr(b *bool, what string) string {
	if b == nil || *b {
		return what
	}
	return "no " + what
}

func durStr(d *v1alpha1.Duration) string {
	if d == nil {
		return "none"
	}
	return d.Duration.String()
}

func modeStr(u *v1alpha1.UnicastSpec) string {
	if u == nil {
		return "multicast"
	}
	return "unicast"
}

func authStr(pass string) string {
	if pass == "" {
		return "no PASS authentication"
	}
	return "PASS authentication"
}

func distinct[T comparable](s []T) int {
	m := map[T]bool{}
	for _, v := range s {
		m[v] = true
	}
	return len(m)
}

// mostCommon returns the most frequent value, the least by less on a tie.
func mostCommon[T comparable](s []T, less func(a, b T) bool) T {
	count := map[T]int{}
	for _, v := range s {
		count[v]++
	}
	var best T
	bestN := 0
	for v, n := range count {
		if n > bestN || n == bestN && less(v, best) {
			best, bestN = v, n
		}
	}
	return best
}
