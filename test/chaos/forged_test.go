package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// Forged adverts: a host on the LAN (the lab's client) sends VRRP packets no member of the
// group sent, to a group of two kube-vrrp speakers and, in a separate lab of the same run, to
// two keepalived 2.2.7, configured alike: n1 priority 110 (MASTER), n2 100, VRID 51, VRRPv3,
// 100 ms adverts, multicast. Each scenario is a table row per implementation. kube-vrrp's
// expectations are asserted; keepalived's behaviour is reported beside them. Who holds the VIP
// is read every 10 ms; what the speakers did comes from their logs.
//
// What keepalived 2.2.7 does, for comparison: adverts to a node's own address are not seen at
// all; every packet it rejects (TTL, address list, junk) is logged, one line each; and a BACKUP
// that rejects adverts now and then takes over while the MASTER is alive ("Receive
// advertisement timeout"), for a few milliseconds each time, so its group flaps under any of
// them. Its MASTER answers each lower-priority advert with an advert and gratuitous ARPs
// ("forcing new election"): a flood of them comes back several times over.

const (
	forgedVRID     = 51
	forgedInterval = 100 * time.Millisecond
	// forgedSettle bounds "happens at all" waits, far above any VRRP timer here.
	forgedSettle = 10 * time.Second
	// forgedPoll is how often the holders of the VIP are read while a forger runs.
	forgedPoll = 10 * time.Millisecond
	// forgedStall is the longest pause of the test's own sampling with which a timing is
	// still asserted; after a longer one the machine, not the protocol, decided it.
	forgedStall = 50 * time.Millisecond
	// forgedTrickle is the rate of the forged-advert scenarios, per destination.
	forgedTrickle = 20
	// forgedFlood is the rate of the flood scenarios, and forgedFloodFor their length.
	forgedFlood    = 10000
	forgedFloodFor = 5 * time.Second
	// forgedCPUBound is the most CPU a kube-vrrp speaker may use during a flood, as a share of
	// one core.
	forgedCPUBound = 0.5
	// forgedLogEvery is kube-vrrp's rate limit of one drop warning per reason (vrrp.dropLogEvery).
	forgedLogEvery = 10 * time.Second
)

const (
	forgedKubeVRRP   = "kube-vrrp"
	forgedKeepalived = "keepalived"
)

var (
	forgedVIP = netip.MustParsePrefix("198.18.0.100/24")
	// forgedOther is the address list of scenario 3: another group's.
	forgedOther = netip.MustParseAddr("198.18.0.222")
	// Sources of the forged adverts, one per scenario so that logs tell them apart.
	forgedSrcOffLink = netip.MustParseAddr("198.18.0.91")
	forgedSrcVRID    = netip.MustParseAddr("198.18.0.92")
	forgedSrcForeign = netip.MustParseAddr("198.18.0.93")
	forgedSrcOwner   = netip.MustParseAddr("198.18.0.99")
	forgedSrcFlood   = netip.MustParseAddr("198.18.0.95")
	forgedSrcJunk    = netip.MustParseAddr("198.18.0.96")
	forgedPriorities = map[string]int{"n1": 110, "n2": 100}
)

// forgedMasterDown is Master_Down_Interval (RFC 5798 §6.1) of a backup of priority prio.
func forgedMasterDown(prio int) time.Duration {
	return 3*forgedInterval + time.Duration(256-prio)*forgedInterval/256
}

// TestForged runs the forged-advert scenarios against kube-vrrp and keepalived, each in its
// own lab, the two labs side by side; then the floods, one implementation at a time, so that
// the CPU they measure is the speakers' and not a neighbour's. It is not parallel with the
// package's other tests for the same reason.
func TestForged(t *testing.T) {
	privtest.Require(t)
	lab.KubeVRRPBinary(t)
	groups := []*forgedGroup{newForgedGroup(t, forgedKubeVRRP), newForgedGroup(t, forgedKeepalived)}
	t.Run("adverts", func(t *testing.T) {
		for _, g := range groups {
			t.Run(g.impl, func(t *testing.T) {
				t.Parallel()
				g.scenario(t, "1a-off-link-unicast", "forged 1a: TTL 64, priority 254, to .11/.12, 20/s each, 3s", g.offLinkUnicast)
				g.scenario(t, "2-wrong-vrid", "forged 2: VRID 52, priority 254, to 224.0.0.18, 20/s, 2s", g.wrongVRID)
				g.scenario(t, "3-other-addresses", "forged 3: VRID 51, other addresses, priority 254, 20/s, 2s", g.otherAddresses)
				g.scenario(t, "4-priority-255", "forged 4: priority 255 from a non-owner, 20/s, 2s", g.priority255)
				g.scenario(t, "1b-off-link-multicast", "forged 1b: TTL 64, priority 254, to 224.0.0.18, 20/s, 3s", g.offLinkMulticast)
			})
		}
	})
	t.Run("flood", func(t *testing.T) {
		for _, g := range groups {
			t.Run(g.impl, func(t *testing.T) {
				g.scenario(t, "5a-valid", "forged 5a: flood of valid adverts, priority 1, 10000/s, 5s", g.floodValid)
				g.scenario(t, "5b-junk", "forged 5b: flood of junk, 10000/s, 5s", g.floodJunk)
			})
		}
	})
	for _, g := range groups {
		left := g.stop(t)
		for _, r := range g.rows {
			r.Left = left
			Record(r)
		}
	}
}

// forgedGroup is one lab: n1 and n2 running one implementation, the forger in the client.
type forgedGroup struct {
	impl   string
	l      *lab.Lab
	n1, n2 *lab.Node
	nodes  []*lab.Node
	procs  map[*lab.Node]*lab.Proc
	fg     *forger
	rows   []Row
	// offLink is what scenario 1a sent and when each node logged its first bad_ttl drop, for
	// the count that 1b reads from the next, rate-limited, warning.
	offLink      forgeStats
	offLinkFirst map[*lab.Node]time.Time
}

func newForgedGroup(t *testing.T, impl string) *forgedGroup {
	t.Helper()
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice, ResponderPort: -1})
	g := &forgedGroup{impl: impl, l: l, n1: l.Node(1), n2: l.Node(2), nodes: l.Nodes(), procs: map[*lab.Node]*lab.Proc{}}
	for _, n := range g.nodes {
		switch impl {
		case forgedKubeVRRP:
			spec := lab.VirtualIP{Name: "forged", VRID: forgedVRID, Version: 3, AdvertInt: forgedInterval,
				Addresses: []netip.Prefix{forgedVIP}, NodePriorities: forgedPriorities}
			g.procs[n] = n.StartKubeVRRP(t, spec.String())
		case forgedKeepalived:
			in := lab.VRRPInstance{VRID: forgedVRID, Version: 3, AdvertInt: forgedInterval, VIPs: []netip.Prefix{forgedVIP}}
			g.procs[n] = n.StartKeepalived(t, lab.KeepalivedConf(n.Name, in.ForNode(n, forgedPriorities[n.Name])))
		}
	}
	fg, err := newForger(l.Client())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fg.Close() })
	g.fg = fg
	if err := lab.WaitSoleHolder(g.nodes, forgedVIP, g.n1, 3*forgedInterval, forgedSettle); err != nil {
		t.Fatalf("%s: %v", impl, err)
	}
	return g
}

// scenario runs one scenario as a subtest and adds its row (scenario is its label in the
// table), with the subtest's verdict; run fills in the outcome.
func (g *forgedGroup) scenario(t *testing.T, name, scenario string, run func(t *testing.T, row *Row)) {
	row := Row{Scenario: scenario, Impl: g.impl, Outcome: "(did not finish: see the test log)"}
	t.Run(name, func(t *testing.T) {
		defer func() { row.Pass = !t.Failed() }()
		run(t, &row)
	})
	g.rows = append(g.rows, row)
}

// forgedAdvert is an advert of our group as the members send it, at priority prio.
func forgedAdvert(prio uint8, addrs ...netip.Addr) packet.Advertisement {
	if len(addrs) == 0 {
		addrs = []netip.Addr{forgedVIP.Addr()}
	}
	return packet.Advertisement{Version: 3, VRID: forgedVRID, Priority: prio, Interval: forgedInterval, Addresses: addrs}
}

// 1a. Off-link takeover: adverts of our group at priority 254 with TTL 64, as a router would
// forward them from another network, to each node's own address. RFC 5798 §7.1 discards an
// advert whose TTL is not 255; kube-vrrp must count and ignore them, n1 staying MASTER.
func (g *forgedGroup) offLinkUnicast(t *testing.T, row *Row) {
	pkts, err := forgeAdverts(forgedAdvert(254), forgedSrcOffLink, 64, g.n1.IPv4, g.n2.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	ph := g.run(t, pkts, forgedTrickle*2, 3*time.Second, false)
	g.offLink = ph.sent
	row.Outcome, row.Converge = ph.outcome(g), ph.converge()
	if g.impl != forgedKubeVRRP {
		return
	}
	ph.expectIgnored(t, g)
	g.offLinkFirst = map[*lab.Node]time.Time{}
	for _, n := range g.nodes {
		d := ph.drops(n, "bad_ttl", forgedSrcOffLink)
		if len(d) == 0 {
			t.Errorf("%s logged no bad_ttl drop of the adverts from %s", n, forgedSrcOffLink)
			continue
		}
		g.offLinkFirst[n] = d[0].at
	}
}

// 1b. The same to the VRRP group. It runs last of the advert scenarios: kube-vrrp logs one drop
// warning per reason every 10 s, with the reason's count, and by now the next one is due, so
// its count shows that every advert of 1a was counted.
func (g *forgedGroup) offLinkMulticast(t *testing.T, row *Row) {
	pkts, err := forgeAdverts(forgedAdvert(254), forgedSrcOffLink, 64, packet.MulticastIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if g.impl == forgedKubeVRRP {
		// Wait until the rate limit lets the next warning out.
		var last time.Time
		for _, at := range g.offLinkFirst {
			if at.After(last) {
				last = at
			}
		}
		if wait := time.Until(last.Add(forgedLogEvery + 100*time.Millisecond)); wait > 0 {
			t.Logf("waiting %v for kube-vrrp's next bad_ttl warning to be due", wait.Round(time.Millisecond))
			time.Sleep(wait)
		}
	}
	ph := g.run(t, pkts, forgedTrickle, 3*time.Second, false)
	row.Outcome, row.Converge = ph.outcome(g), ph.converge()
	if g.impl != forgedKubeVRRP {
		return
	}
	ph.expectIgnored(t, g)
	var counts []string
	for _, n := range g.nodes {
		d := ph.drops(n, "bad_ttl", forgedSrcOffLink)
		if len(d) == 0 {
			t.Errorf("%s logged no bad_ttl drop of the multicast adverts from %s", n, forgedSrcOffLink)
			continue
		}
		// Every advert sent to n in 1a, and at least the first of this scenario.
		lo, hi := g.offLink.PerDst[n.IPv4]+1, g.offLink.PerDst[n.IPv4]+ph.sent.Sent
		if d[0].count < lo || d[0].count > hi {
			t.Errorf("%s's bad_ttl count is %d, want %d..%d (%d sent to it in 1a, %d to the group now)",
				n, d[0].count, lo, hi, g.offLink.PerDst[n.IPv4], ph.sent.Sent)
		}
		counts = append(counts, fmt.Sprintf("%s %d", n, d[0].count))
	}
	row.Outcome += "; bad_ttl counts " + strings.Join(counts, ", ")
}

// 2. Adverts for another VRID (52) at priority 254: not our group's, ignored.
func (g *forgedGroup) wrongVRID(t *testing.T, row *Row) {
	adv := forgedAdvert(254)
	adv.VRID = 52
	pkts, err := forgeAdverts(adv, forgedSrcVRID, 255, packet.MulticastIPv4)
	if err != nil {
		t.Fatal(err)
	}
	ph := g.run(t, pkts, forgedTrickle, 2*time.Second, false)
	row.Outcome, row.Converge = ph.outcome(g), ph.converge()
	if g.impl != forgedKubeVRRP {
		return
	}
	ph.expectIgnored(t, g)
	// The socket sorts packets by VRID before any instance sees them and counts the rest as
	// unknown_vrid in the agent's status (and /metrics); `run` logs no drop for them.
	for _, n := range g.nodes {
		if d := ph.drops(n, "", forgedSrcVRID); len(d) > 0 {
			t.Errorf("%s logged a drop of another VRID's adverts as %q, want them left out before any instance", n, d[0].reason)
		}
	}
	row.Outcome += "; left out by VRID (unknown_vrid: counted, not logged)"
}

// 3. Adverts for our VRID with another group's address list, priority 254, TTL 255: another
// cluster (or an old keepalived) on the same VRID. kube-vrrp drops them (address_mismatch),
// warns naming the sender and asking for another VRID, and n1 stays MASTER.
func (g *forgedGroup) otherAddresses(t *testing.T, row *Row) {
	pkts, err := forgeAdverts(forgedAdvert(254, forgedOther), forgedSrcForeign, 255, packet.MulticastIPv4)
	if err != nil {
		t.Fatal(err)
	}
	ph := g.run(t, pkts, forgedTrickle, 2*time.Second, false)
	row.Outcome, row.Converge = ph.outcome(g), ph.converge()
	if g.impl != forgedKubeVRRP {
		return
	}
	ph.expectIgnored(t, g)
	for _, n := range g.nodes {
		var found bool
		for _, rec := range ph.records(n) {
			msg, _ := rec["msg"].(string)
			if rec["from"] == forgedSrcForeign.String() && strings.Contains(msg, "VRID") &&
				strings.Contains(fmt.Sprint(rec["theirs"]), forgedOther.String()) && rec["in_election"] == false {
				found = true
			}
		}
		if !found {
			t.Errorf("%s did not warn about %s advertising VRID %d with %s (not in the election):\n%s",
				n, forgedSrcForeign, forgedVRID, forgedOther, g.procs[n].Tail(10))
		}
	}
	row.Outcome += "; address_mismatch, warned naming the sender"
}

// 4. Priority 255 from a router that does not own the addresses (our address list, TTL 255).
// RFC 5798 §6.4.3: a MASTER hearing a higher priority becomes Backup, so a forger can take the
// VIP down for as long as it sends. Whatever each implementation does meanwhile is reported;
// kube-vrrp must converge back to n1 within Master_Down_Interval of the forger's last advert.
func (g *forgedGroup) priority255(t *testing.T, row *Row) {
	pkts, err := forgeAdverts(forgedAdvert(255), forgedSrcOwner, 255, packet.MulticastIPv4)
	if err != nil {
		t.Fatal(err)
	}
	ph := g.run(t, pkts, forgedTrickle, 2*time.Second, false)
	row.Outcome, row.Converge = ph.outcome(g), ph.converge()
	// The longer of the two Master_Down_Intervals, and two samples for reading the holders.
	bound := forgedMasterDown(forgedPriorities["n2"]) + 2*forgedPoll
	stall := ph.maxGapAfter(ph.sent.End)
	t.Logf("%s: converged to n1 %v after the forger stopped (Master_Down_Interval of n1 %v, of n2 %v; bound %v, sampling stalled up to %v)",
		g.impl, ph.converge().Round(time.Millisecond), forgedMasterDown(forgedPriorities["n1"]), forgedMasterDown(forgedPriorities["n2"]),
		bound, stall.Round(time.Millisecond))
	if g.impl != forgedKubeVRRP {
		return
	}
	switch {
	case ph.settled.IsZero():
		t.Errorf("no single MASTER n1 within %v of the forger's end", forgedSettle)
	case stall > forgedStall:
		t.Logf("the machine stalled the test for %v: convergence time not asserted", stall.Round(time.Millisecond))
	case ph.converge() > bound:
		t.Errorf("n1 alone MASTER again %v after the forger's last advert, want within Master_Down_Interval (bound %v)",
			ph.converge(), bound)
	}
}

// 5a. A flood of valid adverts of our group at priority 1, 10 000/s for 5 s. n1 stays MASTER,
// the backup keeps hearing it (no flap), and neither speaker uses more than half a core.
func (g *forgedGroup) floodValid(t *testing.T, row *Row) {
	pkts, err := forgeAdverts(forgedAdvert(1), forgedSrcFlood, 255, packet.MulticastIPv4)
	if err != nil {
		t.Fatal(err)
	}
	g.flood(t, row, pkts)
}

// 5b. A flood of junk (protocol 112, random payloads, most of them for our VRID), 10 000/s for
// 5 s: the same expectations.
func (g *forgedGroup) floodJunk(t *testing.T, row *Row) {
	pkts, err := forgeJunk(forgedSrcJunk, packet.MulticastIPv4, 255, forgedVRID, 256, 5798)
	if err != nil {
		t.Fatal(err)
	}
	g.flood(t, row, pkts)
}

func (g *forgedGroup) flood(t *testing.T, row *Row, pkts []forgedPacket) {
	g.waitQuiet(t)
	ph := g.run(t, pkts, forgedFlood, forgedFloodFor, true)
	row.Outcome, row.Converge = ph.outcome(g), ph.converge()
	var cpu, tx, overflow []string
	for _, n := range g.nodes {
		cpu = append(cpu, fmt.Sprintf("%s %.0f%%", n, 100*ph.cpu[n]))
		tx = append(tx, fmt.Sprintf("%s %.0f/s", n, ph.tx[n]))
		overflow = append(overflow, fmt.Sprintf("%s %d", n, ph.overflow[n]))
	}
	row.Outcome += fmt.Sprintf("; CPU %s of a core; sent %s; socket overflows %s; forger %.0f/s",
		strings.Join(cpu, ", "), strings.Join(tx, ", "), strings.Join(overflow, ", "), ph.sent.Rate())
	t.Logf("%s: CPU %s of a core; packets sent %s; VRRP socket overflows %s; forger %s; sampling stalled up to %v", g.impl,
		strings.Join(cpu, ", "), strings.Join(tx, ", "), strings.Join(overflow, ", "), ph.sent, ph.maxGap.Round(time.Millisecond))
	if g.impl != forgedKubeVRRP {
		return
	}
	ph.expectIgnored(t, g)
	for _, n := range g.nodes {
		if ph.cpu[n] >= forgedCPUBound {
			t.Errorf("%s's speaker used %.0f%% of a core during the flood, want below %.0f%%", n, 100*ph.cpu[n], 100*forgedCPUBound)
		}
	}
}

// forgedPhase is what one forger run did and what the group did meanwhile.
type forgedPhase struct {
	sent forgeStats
	// samples are the holders of the VIP every forgedPoll, from just before the forger
	// started until n1 had been the only holder for three intervals after it stopped.
	samples []forgedSample
	// maxGap is the longest pause between two samples.
	maxGap time.Duration
	// settled is when n1 became the only holder for good (zero: it did not, within
	// forgedSettle of the forger's end).
	settled time.Time
	// lines are what each speaker logged during the phase, and events what kube-vrrp reported
	// (its --events).
	lines  map[*lab.Node][]string
	events map[*lab.Node][]vrrp.Event
	// cpu is each speaker's CPU time over the forger's run, as a share of one core, and tx the
	// rate at which its node sent packets meanwhile (measured with cpu only).
	cpu, tx map[*lab.Node]float64
	// overflow counts the packets the kernel dropped because a node's VRRP sockets were full
	// (measured with cpu only).
	overflow map[*lab.Node]uint64
}

type forgedSample struct {
	at      time.Time
	holders []*lab.Node
}

// run checks that n1 alone holds the VIP, sends pkts at rate for d from the client while it
// samples the holders, and keeps sampling until n1 has held the VIP alone for three advert
// intervals after the forger stopped. With cpu it measures the speakers' CPU time, and the
// packets their nodes sent, over the forger's run.
func (g *forgedGroup) run(t *testing.T, pkts []forgedPacket, rate float64, d time.Duration, cpu bool) *forgedPhase {
	t.Helper()
	if err := lab.WaitSoleHolder(g.nodes, forgedVIP, g.n1, 3*forgedInterval, forgedSettle); err != nil {
		t.Fatalf("before forging: %v", err)
	}
	ph := &forgedPhase{lines: map[*lab.Node][]string{}, events: map[*lab.Node][]vrrp.Event{}, cpu: map[*lab.Node]float64{},
		tx: map[*lab.Node]float64{}, overflow: map[*lab.Node]uint64{}}
	offsets := map[*lab.Node]int64{}
	evOffsets := map[*lab.Node]int{}
	for _, n := range g.nodes {
		offsets[n] = g.procs[n].LogSize()
		evOffsets[n] = len(lab.KubeVRRPEvents(g.procs[n]))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ticks0, tx0, drops0 map[*lab.Node]uint64
		if cpu {
			ticks0, tx0, drops0 = g.cpuTicks(t), g.txPackets(t), g.socketDrops(t)
		}
		ph.sent = g.fg.send(t.Context(), pkts, rate, d)
		if cpu {
			ticks1, tx1, drops1 := g.cpuTicks(t), g.txPackets(t), g.socketDrops(t)
			secs := ph.sent.End.Sub(ph.sent.Start).Seconds()
			for _, n := range g.nodes {
				ph.cpu[n] = float64(ticks1[n]-ticks0[n]) / forgedUserHZ / secs
				ph.tx[n] = float64(tx1[n]-tx0[n]) / secs
				ph.overflow[n] = drops1[n] - drops0[n]
			}
		}
	}()
	forging := true
	var soleSince time.Time
	for last := time.Now(); ; time.Sleep(forgedPoll) {
		now := time.Now()
		ph.maxGap = max(ph.maxGap, now.Sub(last))
		last = now
		h := lab.Holders(g.nodes, forgedVIP)
		ph.samples = append(ph.samples, forgedSample{at: now, holders: h})
		if len(h) == 1 && h[0] == g.n1 {
			if soleSince.IsZero() {
				soleSince = now
			}
		} else {
			soleSince = time.Time{}
		}
		if forging {
			select {
			case <-done:
				forging = false
			default:
			}
			continue
		}
		if !soleSince.IsZero() && now.Sub(soleSince) >= 3*forgedInterval && now.Sub(ph.sent.End) >= 3*forgedInterval {
			ph.settled = soleSince
			break
		}
		if now.Sub(ph.sent.End) > forgedSettle {
			break
		}
	}
	for _, n := range g.nodes {
		ph.lines[n] = forgedLogSince(g.procs[n], offsets[n])
		if evs := lab.KubeVRRPEvents(g.procs[n]); len(evs) > evOffsets[n] {
			ph.events[n] = evs[evOffsets[n]:]
		}
	}
	t.Logf("%s: forger sent %s", g.impl, ph.sent)
	if ph.sent.Failed > 0 || ph.sent.Sent < int(0.9*rate*d.Seconds()) {
		t.Errorf("forger: %s, want about %.0f packets", ph.sent, rate*d.Seconds())
	}
	return ph
}

// converge is how long after the forger stopped n1 was the only holder again for good; zero
// when n1 never lost the VIP, or had it back before the forger stopped (the outcome says how
// long it was without), or never got it back.
func (ph *forgedPhase) converge() time.Duration {
	if ph.settled.IsZero() || !ph.settled.After(ph.sent.End) {
		return 0
	}
	return ph.settled.Sub(ph.sent.End)
}

// maxGapAfter is the longest pause between two samples taken after t0.
func (ph *forgedPhase) maxGapAfter(t0 time.Time) time.Duration {
	var gap time.Duration
	for i := 1; i < len(ph.samples); i++ {
		if ph.samples[i].at.After(t0) {
			gap = max(gap, ph.samples[i].at.Sub(ph.samples[i-1].at))
		}
	}
	return gap
}

func (ph *forgedPhase) allN1() bool {
	for _, s := range ph.samples {
		if len(s.holders) != 1 || s.holders[0].Name != "n1" {
			return false
		}
	}
	return true
}

// outcome describes the phase from the holders (the same for every implementation), with
// the transitions and the drops the speakers logged.
func (ph *forgedPhase) outcome(g *forgedGroup) string {
	var b strings.Builder
	tr := g.transitions(ph)
	switch {
	case ph.allN1() && len(tr) == 0:
		b.WriteString("ignored: n1 stayed MASTER")
	case ph.allN1():
		fmt.Fprintf(&b, "n1 stayed MASTER (holders read every %v)", forgedPoll)
	default:
		// Time without n1 as the only holder, split by who held the VIP.
		held := map[string]time.Duration{}
		changes := 0
		for i := 1; i < len(ph.samples); i++ {
			prev, s := ph.samples[i-1], ph.samples[i]
			if forgedNames(prev.holders) != forgedNames(s.holders) {
				changes++
			}
			if k := forgedNames(prev.holders); k != "n1" {
				held[k] += s.at.Sub(prev.at)
			}
		}
		var lost time.Duration
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(held)) {
			lost += held[k]
			parts = append(parts, fmt.Sprintf("%s %s", k, forgedSeconds(held[k])))
		}
		fmt.Fprintf(&b, "n1 without the VIP alone for %s (held by %s; %d changes)", forgedSeconds(lost), strings.Join(parts, ", "), changes)
		if ph.settled.IsZero() {
			b.WriteString(", no single MASTER n1 after")
		}
	}
	if len(tr) > 0 {
		fmt.Fprintf(&b, "; %d transitions: %s", len(tr), forgedList(tr, 3))
	}
	switch g.impl {
	case forgedKubeVRRP:
		var reasons []string
		for _, n := range g.nodes {
			for _, d := range ph.drops(n, "", netip.Addr{}) {
				if !slices.Contains(reasons, d.reason) {
					reasons = append(reasons, d.reason)
				}
			}
		}
		if len(reasons) > 0 {
			fmt.Fprintf(&b, "; drops logged: %s", strings.Join(reasons, ", "))
		}
	case forgedKeepalived:
		if notes := g.keepalivedNotes(ph); len(notes) > 0 {
			fmt.Fprintf(&b, "; logged %s", strings.Join(notes, ", "))
		} else {
			b.WriteString("; logged nothing about them")
		}
	}
	return b.String()
}

// expectIgnored asserts kube-vrrp's expectation of every scenario but 4: n1 the only holder at
// every sample, and no transition logged by either speaker.
func (ph *forgedPhase) expectIgnored(t *testing.T, g *forgedGroup) {
	t.Helper()
	for _, s := range ph.samples {
		if len(s.holders) != 1 || s.holders[0] != g.n1 {
			t.Errorf("at %s the holders of %s were %s, want only n1", s.at.Format("15:04:05.000"), forgedVIP.Addr(), forgedNames(s.holders))
			break
		}
	}
	if tr := g.transitions(ph); len(tr) > 0 {
		t.Errorf("%d transitions while forging: %s", len(tr), forgedList(tr, 10))
	}
}

func forgedNames(ns []*lab.Node) string {
	if len(ns) == 0 {
		return "none"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	return strings.Join(s, "+")
}

func forgedSeconds(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

// forgedList joins up to n items, and says how many there were in all.
func forgedList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + ", ..."
}

// forgedLogSince returns the lines p's log gained after offset.
func forgedLogSince(p *lab.Proc, offset int64) []string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil || int64(len(b)) <= offset {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b[offset:]))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// records returns the JSON records kube-vrrp logged on n during the phase.
func (ph *forgedPhase) records(n *lab.Node) []map[string]any {
	var out []map[string]any
	for _, line := range ph.lines[n] {
		var rec map[string]any
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// forgedDrop is one report of dropped packets in kube-vrrp's events (vrrp.EventPacketDrop).
type forgedDrop struct {
	at     time.Time
	reason string
	count  int
}

// drops returns the drop warnings n logged during the phase for reason from src (any reason if
// "", any sender if invalid).
func (ph *forgedPhase) drops(n *lab.Node, reason string, src netip.Addr) []forgedDrop {
	var out []forgedDrop
	for _, e := range ph.events[n] {
		if e.Kind != vrrp.EventPacketDrop || src.IsValid() && e.Src != src || reason != "" && string(e.Drop) != reason {
			continue
		}
		out = append(out, forgedDrop{at: e.At, reason: string(e.Drop), count: int(e.Count)})
	}
	return out
}

var forgedKeepalivedState = regexp.MustCompile(`\(VI_1\) Entering (\S+) STATE`)

// transitions lists the state changes the speakers logged during the phase ("n1
// Master->Backup (HigherPriorityMaster)", "n2 MASTER").
func (g *forgedGroup) transitions(ph *forgedPhase) []string {
	var out []string
	for _, n := range g.nodes {
		switch g.impl {
		case forgedKubeVRRP:
			for _, e := range ph.events[n] {
				if e.Kind == vrrp.EventTransition {
					out = append(out, fmt.Sprintf("%s %v->%v (%v)", n, e.From, e.State, e.Reason))
				}
			}
		case forgedKeepalived:
			for _, line := range ph.lines[n] {
				if m := forgedKeepalivedState.FindStringSubmatch(line); m != nil {
					out = append(out, fmt.Sprintf("%s %s", n, m[1]))
				}
			}
		}
	}
	return out
}

// forgedKeepalivedMessages are what keepalived 2.2.7 logs about received adverts (substrings
// of its messages), shortened for the table.
var forgedKeepalivedMessages = []struct{ sub, short string }{
	{"invalid TTL", "invalid TTL"},
	{"not present in MASTER advert", "address list mismatch"},
	{"forcing new election", "lower priority: forcing new election"},
	{"- discarding", "lower priority: discarding"},
	{"with higher priority", "higher priority"},
	{"Receive advertisement timeout", "advert timeout"},
	{"received priority 0", "priority 0"},
	{"packet too short", "malformed"},
	{"packet too long", "malformed"},
	{"checksum", "malformed"},
	{"invalid", "malformed"},
}

// keepalivedNotes counts keepalived's log lines about received adverts during the phase.
func (g *forgedGroup) keepalivedNotes(ph *forgedPhase) []string {
	counts := map[string]map[*lab.Node]int{}
	var order []string
	for _, n := range g.nodes {
		for _, line := range ph.lines[n] {
			for _, m := range forgedKeepalivedMessages {
				if strings.Contains(line, m.sub) {
					if counts[m.short] == nil {
						counts[m.short] = map[*lab.Node]int{}
						order = append(order, m.short)
					}
					counts[m.short][n]++
					break
				}
			}
		}
	}
	var out []string
	for _, s := range order {
		var per []string
		for _, n := range g.nodes {
			if c := counts[s][n]; c > 0 {
				per = append(per, fmt.Sprintf("%s %d", n, c))
			}
		}
		out = append(out, fmt.Sprintf("%q (%s)", s, strings.Join(per, ", ")))
	}
	return out
}

// forgedUserHZ is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// architecture.
const forgedUserHZ = 100

// cpuTicks returns the CPU time (utime + stime, every thread) of each speaker and of its
// descendants (keepalived's VRRP work runs in a child process), in clock ticks.
func (g *forgedGroup) cpuTicks(t *testing.T) map[*lab.Node]uint64 {
	procs, err := forgedProcStats()
	if err != nil {
		t.Errorf("reading /proc: %v", err)
		return nil
	}
	out := map[*lab.Node]uint64{}
	for _, n := range g.nodes {
		root := g.procs[n].Pid()
		for pid, st := range procs {
			for p := pid; p > 1; p = procs[p].ppid {
				if p == root {
					out[n] += st.ticks
					break
				}
			}
		}
	}
	return out
}

type forgedProcStat struct {
	ppid  int
	ticks uint64
}

// forgedProcStats reads the parent and the CPU time of every process.
func forgedProcStats() (map[int]forgedProcStat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]forgedProcStat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ... utime stime: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		out[pid] = forgedProcStat{ppid: ppid, ticks: ut + st}
	}
	return out, nil
}

// txPackets returns how many packets each node has sent on its lab link: the answers a
// speaker sends to forged adverts (adverts, gratuitous ARPs) show there.
func (g *forgedGroup) txPackets(t *testing.T) map[*lab.Node]uint64 {
	out := map[*lab.Node]uint64{}
	for _, n := range g.nodes {
		err := n.InNetns(func() error {
			link, err := netlink.LinkByName(n.Interface)
			if err != nil {
				return err
			}
			if s := link.Attrs().Statistics; s != nil {
				out[n] = s.TxPackets
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: link statistics: %v", n, err)
		}
	}
	return out
}

// waitQuiet waits until the nodes send no more than a group's usual traffic, so that a flood's
// figures are not the previous flood's aftermath: keepalived answers each lower-priority advert
// with gratuitous ARPs that it queues, and sends them for many seconds after the flood.
func (g *forgedGroup) waitQuiet(t *testing.T) {
	const (
		window = 500 * time.Millisecond
		quiet  = 100 // packets per second and node, ten times a MASTER's adverts
	)
	deadline := time.Now().Add(2 * forgedSettle)
	for {
		tx0 := g.txPackets(t)
		time.Sleep(window)
		tx1 := g.txPackets(t)
		loud := ""
		for _, n := range g.nodes {
			if r := float64(tx1[n]-tx0[n]) / window.Seconds(); r > quiet {
				loud += fmt.Sprintf(" %s %.0f/s", n, r)
			}
		}
		if loud == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("%s: the nodes still send%s before the flood", g.impl, loud)
			return
		}
	}
}

// socketDrops returns how many packets the kernel dropped at each node's VRRP sockets (raw
// sockets of protocol 112) because they were full: the drops column of /proc/net/raw, read
// by a thread inside the node's namespace.
func (g *forgedGroup) socketDrops(t *testing.T) map[*lab.Node]uint64 {
	out := map[*lab.Node]uint64{}
	for _, n := range g.nodes {
		var b []byte
		err := n.InNetns(func() error {
			var err error
			b, err = os.ReadFile("/proc/thread-self/net/raw")
			return err
		})
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		// sl local_address(hex addr:protocol) ... drops (last field).
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", packet.Protocol)) {
				continue
			}
			d, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
			out[n] += d
		}
	}
	return out
}

// stop stops the speakers (SIGTERM) and returns what they left on the nodes: "nothing" when
// no node holds the VIP, no kube_vrrp nftables table is left, and kube-vrrp's record of bound
// addresses is empty.
func (g *forgedGroup) stop(t *testing.T) string {
	var left []string
	for _, n := range g.nodes {
		if err := g.procs[n].Stop(); err != nil {
			t.Errorf("%s: %s exited with %v", g.impl, n, err)
		}
	}
	for _, n := range g.nodes {
		if n.HasAddress(forgedVIP) {
			left = append(left, fmt.Sprintf("%s holds %s", n, forgedVIP.Addr()))
		}
		if out, err := n.Run("nft", "list", "tables"); err != nil {
			t.Errorf("%s: nft list tables: %v", n, err)
		} else if strings.Contains(out, "kube_vrrp") {
			left = append(left, fmt.Sprintf("%s has the kube_vrrp nftables table", n))
		}
		if g.impl == forgedKubeVRRP {
			b, err := os.ReadFile(filepath.Join(n.Dir, "state", "bound"))
			if err != nil && !os.IsNotExist(err) {
				t.Errorf("%s: %v", n, err)
			}
			if len(bytes.TrimSpace(b)) > 0 {
				left = append(left, fmt.Sprintf("%s's state records %q", n, strings.TrimSpace(string(b))))
			}
		}
	}
	if len(left) == 0 {
		return "nothing"
	}
	if g.impl == forgedKubeVRRP {
		t.Errorf("kube-vrrp left behind: %s", strings.Join(left, "; "))
	}
	return strings.Join(left, "; ")
}
