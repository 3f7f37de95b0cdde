package chaos

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// The helpers of the network scenarios (network_test.go). Names carry "net" where another
// scenario file of the package could want the plain word.

const (
	// netAdvert is the advert interval of the network scenarios (VRRPv3), as in test/speaker.
	netAdvert = 100 * time.Millisecond
	// netSettle bounds "happens at all" waits: far above any VRRP timer here, so a loaded
	// machine does not fail a scenario that behaves correctly.
	netSettle = 10 * time.Second
	// netHold is how long one node must be the only holder before the group counts as
	// converged: an election may pass through a moment with two holders, which resolves
	// within an advert interval.
	netHold = 3 * netAdvert
	// netQuiet is how long a converged group is watched for a second MASTER (ten adverts).
	netQuiet = 10 * netAdvert
)

// netVIP is the virtual address of the one-VIP scenarios.
var netVIP = netip.MustParsePrefix("198.18.0.100/24")

// netPriorities are the priorities of the speakers n1, n2, n3 (test/speaker's group).
var netPriorities = map[string]int{"n1": 110, "n2": 100, "n3": 90}

// netMasterDown is Master_Down_Interval (RFC 5798 §6.1) of a backup of priority prio.
func netMasterDown(prio int) time.Duration {
	return 3*netAdvert + time.Duration(256-prio)*netAdvert/256
}

// netGroup is a lab with kube-vrrp speakers (`kube-vrrp run`) on its first nodes, all
// serving the VirtualIPs of one manifest.
type netGroup struct {
	t     *testing.T
	l     *lab.Lab
	vips  []netip.Prefix // every virtual address of the manifest
	names []string       // every VirtualIP's name
	nodes []*lab.Node    // the speakers' nodes
	procs map[*lab.Node]*lab.Proc
}

type netGroupOpts struct {
	// speakers is the number of nodes running kube-vrrp (default 3: n1..n3, priorities
	// netPriorities); extra nodes beyond them run none.
	speakers, extra int
	// specs are the VirtualIPs (default: one, VRID 51, netVIP, netPriorities).
	specs []lab.VirtualIP
	// before runs once the lab is up, before any speaker starts.
	before func(l *lab.Lab)
}

// newNetGroup builds the lab, starts the speakers together and waits until n1 is the only
// holder of every VIP, MASTER of each, and the others BACKUP.
func newNetGroup(t *testing.T, o netGroupOpts) *netGroup {
	t.Helper()
	if o.speakers == 0 {
		o.speakers = 3
	}
	if o.specs == nil {
		o.specs = []lab.VirtualIP{{
			VRID: 51, Version: 3, AdvertInt: netAdvert, Addresses: []netip.Prefix{netVIP},
			NodePriorities: netPriorities,
		}}
	}
	l := lab.New(t, lab.Options{Nodes: o.speakers + o.extra, Nice: nice})
	g := &netGroup{t: t, l: l, nodes: l.Nodes()[:o.speakers], procs: map[*lab.Node]*lab.Proc{}}
	docs := make([]string, len(o.specs))
	for i, s := range o.specs {
		docs[i] = s.String()
		g.vips = append(g.vips, s.Addresses...)
		g.names = append(g.names, s.VIPName())
	}
	if o.before != nil {
		o.before(l)
	}
	manifest := strings.Join(docs, "---\n")
	for _, n := range g.nodes {
		g.procs[n] = n.StartKubeVRRP(t, manifest)
	}
	if _, err := g.converge(l.Node(1), time.Now()); err != nil {
		t.Fatalf("initial election: %v", err)
	}
	return g
}

// soleHolder returns the node that alone holds every VIP of the group among its speakers'
// nodes, or nil and a description of who holds what.
func (g *netGroup) soleHolder() (*lab.Node, string) {
	holds := map[*lab.Node]int{}
	for _, n := range g.nodes {
		as, _ := n.Addresses()
		for _, a := range as {
			if slices.ContainsFunc(g.vips, func(v netip.Prefix) bool { return v.Addr() == a.Addr() }) {
				holds[n]++
			}
		}
	}
	var desc []string
	for _, n := range g.nodes {
		if holds[n] > 0 {
			desc = append(desc, fmt.Sprintf("%s holds %d", n, holds[n]))
		}
	}
	if len(holds) == 1 {
		for n, k := range holds {
			if k == len(g.vips) {
				return n, ""
			}
		}
	}
	if len(desc) == 0 {
		return nil, "nobody holds any VIP"
	}
	return nil, strings.Join(desc, ", ")
}

// converge waits until m has been the only holder of every VIP for netHold, and returns the
// time from ref to the start of that stretch as this loop saw it (a scenario that runs a
// holderWatch has the finer figure: settledAfter). It then asserts the converged state: m logs
// MASTER and every other running speaker BACKUP for every VirtualIP, and nobody else holds a
// VIP for netQuiet (at most one MASTER after convergence).
func (g *netGroup) converge(m *lab.Node, ref time.Time) (time.Duration, error) {
	deadline := time.Now().Add(netSettle)
	var since time.Time
	last := ""
	for {
		h, desc := g.soleHolder()
		now := time.Now()
		switch {
		case h != m:
			since, last = time.Time{}, desc
		case since.IsZero():
			since = now
		case now.Sub(since) >= netHold:
			took := since.Sub(ref)
			return took, g.checkConverged(m)
		}
		if now.After(deadline) {
			return 0, fmt.Errorf("%s not the only holder of the VIPs within %v (%s)", m, netSettle, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *netGroup) checkConverged(m *lab.Node) error {
	var errs []error
	for _, n := range g.nodes {
		p := g.procs[n]
		if p == nil || p.Exited() {
			continue
		}
		want := "Backup"
		if n == m {
			want = "Master"
		}
		for _, name := range g.names {
			if err := lab.WaitKubeVRRPState(p, name, want, netSettle); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	for end := time.Now().Add(netQuiet); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if h, desc := g.soleHolder(); h != m {
			errs = append(errs, fmt.Errorf("after convergence on %s: %s", m, desc))
			break
		}
	}
	return errors.Join(errs...)
}

// mustConverge is converge that fails the test.
func (g *netGroup) mustConverge(m *lab.Node, ref time.Time) time.Duration {
	g.t.Helper()
	took, err := g.converge(m, ref)
	if err != nil {
		g.t.Fatal(err)
	}
	return took
}

// transitions returns the transitions p logged for the group's first VirtualIP whose engine
// time (Since) is in [from, to) and that enter state ("" for any).
func (g *netGroup) transitions(n *lab.Node, state string, from, to time.Time) []lab.KubeVRRPTransition {
	var out []lab.KubeVRRPTransition
	for _, tr := range lab.KubeVRRPTransitions(g.procs[n]) {
		if tr.VIP == g.names[0] && (state == "" || tr.State == state) && !tr.Since.Before(from) && tr.Since.Before(to) {
			out = append(out, tr)
		}
	}
	return out
}

// stop sends SIGTERM to every running speaker at once, checks each exits 0 after logging a
// clean stop, and returns what was left on the speakers' hosts (leftOnHosts).
func (g *netGroup) stop() string {
	g.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(g.nodes))
	for i, n := range g.nodes {
		p := g.procs[n]
		if p == nil || p.Exited() {
			continue
		}
		if err := p.Signal(syscall.SIGCONT); err != nil { // a stopped speaker cannot act on SIGTERM
			errs[i] = err
			continue
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			errs[i] = err
			continue
		}
		wg.Go(func() {
			if err := p.Wait(netSettle); err != nil {
				errs[i] = fmt.Errorf("%s exited with %v after SIGTERM, want status 0:\n%s", n, err, p.Tail(20))
			} else if len(lab.KubeVRRPLog(p, "kube-vrrp stopped")) == 0 {
				errs[i] = fmt.Errorf("%s logged no clean stop:\n%s", n, p.Tail(20))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			g.t.Error(err)
		}
	}
	left := leftOnHosts(g.nodes, g.vips)
	if left != "nothing" {
		g.t.Errorf("left behind after the speakers stopped: %s", left)
	}
	return left
}

// leftOnHosts describes what kube-vrrp left on nodes once its speakers stopped: any of vips
// still bound, an nftables table kube_vrrp (the accept-mode filter), entries in the state
// directory's record of bound addresses (lab.Node.StateDir, "bound"). "nothing" when clean.
func leftOnHosts(nodes []*lab.Node, vips []netip.Prefix) string {
	var left []string
	for _, n := range nodes {
		as, err := n.Addresses()
		if err != nil {
			left = append(left, fmt.Sprintf("%s: addresses unreadable (%v)", n, err))
		}
		bound := 0
		for _, a := range as {
			if slices.ContainsFunc(vips, func(v netip.Prefix) bool { return v.Addr() == a.Addr() }) {
				bound++
			}
		}
		if bound > 0 {
			left = append(left, fmt.Sprintf("%s: %d VIPs bound", n, bound))
		}
		if out, err := n.Run("nft", "list", "tables"); err != nil {
			left = append(left, fmt.Sprintf("%s: nft list tables failed (%v)", n, err))
		} else if strings.Contains(out, "kube_vrrp") {
			left = append(left, fmt.Sprintf("%s: nftables table kube_vrrp", n))
		}
		b, err := os.ReadFile(filepath.Join(n.Dir, "state", "bound"))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			left = append(left, fmt.Sprintf("%s: state record unreadable (%v)", n, err))
		case strings.TrimSpace(string(b)) != "":
			left = append(left, fmt.Sprintf("%s: %d entries in the state record", n, len(strings.Fields(string(b)))/2))
		}
	}
	if len(left) == 0 {
		return "nothing"
	}
	return strings.Join(left, "; ")
}

// holderWatch samples, every 5 ms, which nodes hold a VIP and whose MAC the client's neighbour
// entry for it holds, and keeps the changes: a scenario's timeline.
type holderWatch struct {
	stop    chan struct{}
	done    chan struct{}
	start   time.Time
	changes []watchChange
}

type watchChange struct {
	At      time.Time
	Holders string // "n1,n2"; "none"
	Client  string // the node whose MAC the client's entry holds; "-" when it has none
}

func watchHolders(l *lab.Lab, nodes []*lab.Node, vip netip.Prefix) *holderWatch {
	w := &holderWatch{stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(w.done)
		for {
			c := watchChange{Holders: nodeNames(lab.Holders(nodes, vip)), Client: "-"}
			if mac, _ := l.Client().Neighbor(vip.Addr()); mac != nil {
				c.Client = mac.String()
				if n := l.NodeByMAC(mac); n != nil {
					c.Client = n.Name
				}
			}
			c.At = time.Now()
			if k := len(w.changes); k == 0 || w.changes[k-1].Holders != c.Holders || w.changes[k-1].Client != c.Client {
				w.changes = append(w.changes, c)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

// Stop ends the watch and returns the changes; safe to call twice.
func (w *holderWatch) Stop() []watchChange {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.changes
}

// timeline renders changes relative to ref: "n1 (client n1); +362ms n1,n2 (client n2); ...".
func timeline(changes []watchChange, ref time.Time) string {
	var s []string
	for i, c := range changes {
		e := fmt.Sprintf("%s (client %s)", c.Holders, c.Client)
		if i > 0 {
			e = fmt.Sprintf("%+dms %s", c.At.Sub(ref).Milliseconds(), e)
		}
		s = append(s, e)
	}
	return strings.Join(s, "; ")
}

// twoHolders returns how long, in all, changes show more than one holder between from and to,
// and how many separate stretches that was.
func twoHolders(changes []watchChange, from, to time.Time) (total time.Duration, stretches int) {
	for i, c := range changes {
		if !strings.Contains(c.Holders, ",") {
			continue
		}
		end := to
		if i+1 < len(changes) {
			end = changes[i+1].At
		}
		s, e := c.At, end
		if s.Before(from) {
			s = from
		}
		if e.After(to) {
			e = to
		}
		if e.After(s) {
			total += e.Sub(s)
			if i == 0 || !strings.Contains(changes[i-1].Holders, ",") {
				stretches++
			}
		}
	}
	return total, stretches
}

// settledAfter returns the time from ref until the last stretch of changes in which m alone
// held the VIP began: the time to converge, from the watch's 5 ms samples. It is 0 when m was
// alone already at ref, and negative when the watch does not end with m alone.
func settledAfter(changes []watchChange, m *lab.Node, ref time.Time) time.Duration {
	start := -1
	for i := len(changes) - 1; i >= 0 && changes[i].Holders == m.Name; i-- {
		start = i
	}
	if start < 0 {
		return -1
	}
	return max(0, changes[start].At.Sub(ref))
}

// staleEntry returns how long, between from and to, the client's neighbour entry for the VIP
// named a node that did not hold it: the client's packets went to the wrong host.
func staleEntry(changes []watchChange, from, to time.Time) time.Duration {
	var total time.Duration
	for i, c := range changes {
		if c.Client == "-" || slices.Contains(strings.Split(c.Holders, ","), c.Client) {
			continue
		}
		s, e := c.At, to
		if i+1 < len(changes) {
			e = changes[i+1].At
		}
		if s.Before(from) {
			s = from
		}
		if e.After(to) {
			e = to
		}
		if e.After(s) {
			total += e.Sub(s)
		}
	}
	return total
}

// clientBack says when, after ref, the client's neighbour entry for the VIP last came to name
// m (0 when it did already at ref), or that it still names another node at the watch's end.
func clientBack(changes []watchChange, m *lab.Node, ref time.Time) string {
	if len(changes) == 0 {
		return "not watched"
	}
	if last := changes[len(changes)-1]; last.Client != m.Name {
		return fmt.Sprintf("still at %s %v after", last.Client, ms(last.At.Sub(ref)))
	}
	start := len(changes) - 1
	for start > 0 && changes[start-1].Client == m.Name {
		start--
	}
	return fmt.Sprintf("at %s +%v", m, ms(max(0, changes[start].At.Sub(ref))))
}

// clientShare says how the client's neighbour entry for the VIP was shared between from and
// to: "n1 95%, n2 5%", in order of first appearance.
func clientShare(changes []watchChange, from, to time.Time) string {
	share := map[string]time.Duration{}
	var order []string
	for i, c := range changes {
		s, e := c.At, to
		if i+1 < len(changes) {
			e = changes[i+1].At
		}
		if s.Before(from) {
			s = from
		}
		if e.After(to) {
			e = to
		}
		if !e.After(s) {
			continue
		}
		if _, seen := share[c.Client]; !seen {
			order = append(order, c.Client)
		}
		share[c.Client] += e.Sub(s)
	}
	var out []string
	for _, who := range order {
		out = append(out, fmt.Sprintf("%s %.0f%%", who, 100*share[who].Seconds()/to.Sub(from).Seconds()))
	}
	return strings.Join(out, ", ")
}

func nodeNames(ns []*lab.Node) string {
	if len(ns) == 0 {
		return "none"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	return strings.Join(s, ",")
}

// netRow starts the table row of a scenario; recordNetRow, deferred, records it with Pass set
// from the test's outcome, also when the scenario stopped with t.Fatal.
func netRow(scenario string) *Row {
	return &Row{Scenario: scenario, Impl: "kube-vrrp", Outcome: "did not finish", Left: "not checked"}
}

func recordNetRow(t *testing.T, r *Row) {
	r.Pass = !t.Failed()
	Record(*r)
}

// ms rounds d for the table.
func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
