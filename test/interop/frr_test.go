package interop

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// frrPair is a mixed lab of two nodes: FRR's vrrpd on n1, kube-vrrp on n2.
type frrPair struct {
	*mixed
	frr            *frr
	kv             *kubeVRRP
	master, backup speaker // by configured priority
}

func newFRRPair(t *testing.T, g group, frrMaster bool, frrGlobal ...string) *frrPair {
	t.Helper()
	frrPrio, kvPrio := backupPriority, masterPriority
	if frrMaster {
		frrPrio, kvPrio = masterPriority, backupPriority
	}
	p := &frrPair{}
	p.mixed = newMixed(t, g,
		func(n *lab.Node) speaker { p.frr = newFRR(t, n, g, frrPrio, frrGlobal...); return p.frr },
		func(n *lab.Node) speaker { p.kv = newKubeVRRP(t, n, g, kvPrio); return p.kv },
	)
	p.master, p.backup = speaker(p.kv), speaker(p.frr)
	if frrMaster {
		p.master, p.backup = p.frr, p.kv
	}
	return p
}

// frrDirections: which side is configured as the MASTER.
var frrDirections = []struct {
	name      string
	frrMaster bool
}{{"kube-vrrp-master", false}, {"frr-master", true}}

// run drives the pair through an election, a graceful failover (SIGTERM: priority 0) and a
// hand back by restarting, then a failover on a link cut and a hand back when the link
// returns (last: that hand back may leave the client behind, see mixed.handback). It checks
// the adverts each side sent, captured on the BACKUP's node, with the checksum form form
// ("pseudo-header" or "ipv6") for both.
func (p *frrPair) run(form string) {
	t := p.t
	c := startCapture(t, p.backup.Node()) // it hears the MASTER, and sends when it takes over
	p.start(p.master)
	p.failover(sigterm, p.master, p.backup)
	p.handback(sigterm, p.master, p.backup)
	p.failover(linkCut, p.master, p.backup)
	p.handback(linkCut, p.master, p.backup)
	p.checkWire(c.stop(t), map[speaker]string{p.frr: form, p.kv: form})
	p.expectNoDrops()
}

// expectNoDrops checks that kube-vrrp dropped none of FRR's adverts (a drop event names the
// reason: bad checksum, address list, TTL, ...).
func (p *frrPair) expectNoDrops() {
	p.t.Helper()
	for _, e := range lab.KubeVRRPEvents(p.kv.Proc(), vrrp.EventPacketDrop) {
		p.t.Errorf("kube-vrrp dropped an advert: %+v", e)
	}
}

// TestFRRV3IPv4 runs kube-vrrp beside FRR's vrrpd (Debian's frr 8.4) with VRRPv3 over IPv4
// multicast at 100 ms, both directions: elect, fail over on SIGTERM (FRR's vrrpd and
// kube-vrrp both send priority 0) and hand back by restarting, fail over on a link cut and
// hand back when the link returns. Both send the VRRPv3 IPv4 checksum with the IPv4
// pseudo-header, as keepalived does, and each accepts the other's.
//
// FRR needs what FRR's documentation describes and the test sets up before starting it: a
// macvlan in bridge mode with the virtual MAC (00:00:5e:00:01:VRID) carrying the VIP
// (lab.Node.AddVRRPMacvlan); a BACKUP's macvlan is protodown, a MASTER's up. Clients reach
// FRR's MASTER at the virtual MAC and kube-vrrp's at its node's MAC; gratuitous ARPs move
// them both ways.
//
// spec.checksumMode: RFC9568 sends the checksum without the pseudo-header (RFC 9568 §5.2.8).
// FRR 8.4 computes and checks only the pseudo-header form: it drops every such advert ("Bad
// VRRP checksum" in its packet debug log), hears nobody and becomes MASTER too. kube-vrrp
// accepts both forms, so it hears FRR and stays MASTER by priority: the group is split, both
// serve the VIP. RFC9568 mode does not interoperate with FRR 8.4; the default does.
func TestFRRV3IPv4(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 71, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}}
	for _, d := range frrDirections {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			newFRRPair(t, g, d.frrMaster).run("pseudo-header")
		})
	}
	t.Run("checksum-rfc9568", func(t *testing.T) {
		t.Parallel()
		g := g
		g.ChecksumMode = "RFC9568"
		p := newFRRPair(t, g, false, "log stdout debugging", "debug vrrp packets")
		c := startCapture(t, p.frr.Node())
		for _, s := range p.sp {
			s.Start()
		}
		if err := lab.WaitServingHolders(p.nodes(), g.vip(), p.nodes(), 5*g.Interval+10*time.Second); err != nil {
			t.Fatalf("kube-vrrp with RFC 9568 checksums: %v", err)
		}
		time.Sleep(10 * g.Interval)
		if err := lab.WaitServingHolders(p.nodes(), g.vip(), p.nodes(), 0); err != nil {
			t.Error(err)
		}
		if err := p.frr.Proc().WaitLog("Bad VRRP checksum", 0, 2*time.Second); err != nil {
			t.Errorf("FRR: %v", err)
		}
		if strings.Contains(p.kv.Proc().Log(), `"reason":"bad_checksum"`) {
			t.Errorf("kube-vrrp dropped FRR's pseudo-header checksums:\n%s", p.kv.Proc().Tail(10))
		}
		if err := p.frr.WaitState(true, 2*time.Second); err != nil {
			t.Error(err)
		}
		if err := p.kv.WaitState(true, 2*time.Second); err != nil {
			t.Error(err)
		}
		p.checkWire(c.stop(t), map[speaker]string{p.frr: "pseudo-header", p.kv: "rfc9568"})
		p.expectNoDrops()
	})
}

// TestFRRV3IPv6 runs kube-vrrp beside FRR's vrrpd with VRRPv3 over IPv6 multicast at 100 ms,
// both directions, through the same scenario as TestFRRV3IPv4.
//
// FRR sends its IPv6 adverts from the macvlan's link-local address (which must not be
// derived from the shared virtual MAC, FRR's documentation warns; the lab gives each node
// fe80::5e:<host>) and lists its addresses as configured. kube-vrrp drops IPv6 adverts whose
// first address is not link-local (RFC 5798 §5.2.9), so FRR is configured with the virtual
// router's link-local address fe80::200:5eff:fe00:2XX first, as kube-vrrp sends it; FRR
// checks neither the list nor its length. The checksum is RFC 5798's, with the IPv6
// pseudo-header, on both sides.
func TestFRRV3IPv6(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 72, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip6}}
	for _, d := range frrDirections {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			newFRRPair(t, g, d.frrMaster).run("ipv6")
		})
	}
}

// TestFRRV2 runs kube-vrrp beside FRR's vrrpd with VRRPv2 (RFC 3768) at 1 s, FRR's only
// VRRPv2 form (no authentication: FRR implements none), kube-vrrp as the MASTER: elect, fail
// over on SIGTERM (priority 0) and hand back by restarting. FRR drops VRRPv2 adverts whose
// interval differs from its own, so both run 1 s.
func TestFRRV2(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 73, Version: 2, Interval: time.Second, VIPs: []netip.Prefix{vip4}}
	p := newFRRPair(t, g, false)
	c := startCapture(t, p.backup.Node())
	p.start(p.master)
	p.failover(sigterm, p.master, p.backup)
	p.handback(sigterm, p.master, p.backup)
	p.checkWire(c.stop(t), map[speaker]string{p.frr: "v2", p.kv: "v2"})
	p.expectNoDrops()
}

// TestThreeImplementations runs one VRRPv3 group (IPv4, 100 ms) of three routers, FRR's
// vrrpd on n1, keepalived on n2 and kube-vrrp on n3, with distinct priorities, in three
// orders, so that each implementation is once the first, the second and the third. The
// highest becomes MASTER; it is stopped (SIGTERM: priority 0) and the second takes over; the
// second's link is cut and the third takes over. Then the first, started again, preempts the
// third, and the second's link returns: the second, MASTER alone on its side until then,
// steps down, and the client stays with the first. At every step the routers still connected
// agree on the MASTER (their logged states) and the client reaches the VIP there.
//
// The second's link returns last, when the first already holds the VIP: had it returned while
// the third was MASTER, the second would win the healed split brain and FRR, as the winner,
// announces nothing (see mixed.handback), which would leave the client behind.
func TestThreeImplementations(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 81, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}}
	// Priorities, n1 (FRR), n2 (keepalived), n3 (kube-vrrp): each order puts each first once.
	orders := [][3]int{{130, 120, 110}, {110, 130, 120}, {120, 110, 130}}
	for _, prio := range orders {
		name := fmt.Sprintf("frr%d-keepalived%d-kube-vrrp%d", prio[0], prio[1], prio[2])
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newMixed(t, g,
				func(n *lab.Node) speaker { return newFRR(t, n, g, prio[0]) },
				func(n *lab.Node) speaker { return newKeepalived(t, n, g, prio[1]) },
				func(n *lab.Node) speaker { return newKubeVRRP(t, n, g, prio[2]) },
			)
			s := m.byPriority()
			first, second, third := s[0], s[1], s[2]
			c := startCapture(t, third.Node()) // never cut off: it hears every MASTER
			m.start(first)
			m.failover(sigterm, first, second)
			m.failover(linkCut, second, third, first)
			m.handback(sigterm, first, third, second)
			m.rejoin(second, first)
			m.expectSoleHolder(first, 2*time.Second)
			m.expectStates(first)
			m.checkWire(c.stop(t), map[speaker]string{first: "pseudo-header", second: "pseudo-header", third: "pseudo-header"})
		})
	}
}
