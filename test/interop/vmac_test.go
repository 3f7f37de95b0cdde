package interop

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// kubeVRRPVMAC is `kube-vrrp run` with virtualMAC: true (docs/design.md §5.9): the VIP on a
// macvlan with the virtual router MAC, up only while MASTER.
type kubeVRRPVMAC struct{ *kubeVRRP }

func newKubeVRRPVMAC(t *testing.T, n *lab.Node, g group, prio int) *kubeVRRPVMAC {
	return &kubeVRRPVMAC{newKubeVRRP(t, n, g, prio)}
}

func (s *kubeVRRPVMAC) String() string { return "kube-vrrp-vmac(" + s.n.Name + ")" }

func (s *kubeVRRPVMAC) Start() {
	s.t.Helper()
	v := lab.VirtualIP{
		Name: vipName, VRID: s.g.VRID, Version: s.g.Version, Interface: s.n.Interface,
		Addresses: s.g.VIPs, AdvertInt: s.g.Interval, Priority: s.prio, Extra: []string{"virtualMAC: true"},
	}
	s.proc = s.n.StartKubeVRRP(s.t, v.String())
}

// keepalivedVMAC is keepalived with use_vmac: it makes its own macvlan with the virtual
// router MAC (vrrp.VRID) and binds the VIP there.
type keepalivedVMAC struct{ *keepalived }

func newKeepalivedVMAC(t *testing.T, n *lab.Node, g group, prio int) *keepalivedVMAC {
	return &keepalivedVMAC{newKeepalived(t, n, g, prio)}
}

func (s *keepalivedVMAC) String() string { return "keepalived-vmac(" + s.n.Name + ")" }

// Start sets arp_announce 2 on the parent first: keepalived 2.2.7 sets its arp_ignore 1 and
// arp_filter 1 but leaves arp_announce 0, and the node's ARP requests for the replies it sends
// from the VIP (out of the parent, whose prefix route comes first) then name the VIP with the
// parent's MAC, which the client takes for the VIP's (seen in the lab).
func (s *keepalivedVMAC) Start() {
	s.t.Helper()
	key := "net.ipv4.conf." + s.n.Interface + ".arp_announce=2"
	if out, err := s.n.Run("sysctl", "-qw", key); err != nil {
		s.t.Fatalf("%s: sysctl %s: %v: %s", s.n, key, err, out)
	}
	in := lab.VRRPInstance{VRID: s.g.VRID, Version: s.g.Version, AdvertInt: s.g.Interval, VIPs: s.vips(), UseVMAC: true}
	s.proc = s.n.StartKeepalived(s.t, lab.KeepalivedConf(s.n.Name, in.ForNode(s.n, s.prio)))
}

// vmacPair is a mixed lab of two nodes that both answer for the VIP with the virtual router
// MAC: another implementation on n1 (FRR, keepalived with use_vmac) and kube-vrrp with
// virtualMAC on n2.
type vmacPair struct {
	*mixed
	other          speaker
	kv             *kubeVRRPVMAC
	master, backup speaker // by configured priority
}

func newVMACPair(t *testing.T, g group, otherMaster bool, other func(t *testing.T, n *lab.Node, g group, prio int) speaker) *vmacPair {
	t.Helper()
	otherPrio, kvPrio := backupPriority, masterPriority
	if otherMaster {
		otherPrio, kvPrio = masterPriority, backupPriority
	}
	p := &vmacPair{}
	p.mixed = newMixed(t, g,
		func(n *lab.Node) speaker { p.other = other(t, n, g, otherPrio); return p.other },
		func(n *lab.Node) speaker { p.kv = newKubeVRRPVMAC(t, n, g, kvPrio); return p.kv },
	)
	p.master, p.backup = speaker(p.kv), p.other
	if otherMaster {
		p.master, p.backup = p.other, p.kv
	}
	return p
}

// virtualMAC is the group's virtual router MAC.
func (p *vmacPair) virtualMAC() string {
	return lab.VirtualMAC(p.g.VRID, p.g.vip().Addr().Is6()).String()
}

// watch starts recording the client's neighbour entry for the VIP.
func (p *vmacPair) watch() *lab.NeighbourWatch {
	p.t.Helper()
	w, err := p.l.Client().WatchNeighbour(p.g.vip().Addr())
	if err != nil {
		p.t.Fatal(err)
	}
	return w
}

// expectVirtualMAC checks that the client's neighbour entry for the VIP never held any MAC
// but the virtual one while w watched.
func (p *vmacPair) expectVirtualMAC(w *lab.NeighbourWatch) {
	p.t.Helper()
	cs, err := w.Stop()
	if err != nil {
		p.t.Errorf("the client's neighbour notifications ended early: %v", err)
	}
	if got := lab.MACs(cs); !slices.Equal(got, []string{p.virtualMAC()}) {
		var b strings.Builder
		for _, c := range cs {
			b.WriteString(c.String() + "\n")
		}
		p.t.Errorf("the client's neighbour entry for %s held %v, want only the virtual MAC %s:\n%s", p.g.vip().Addr(), got, p.virtualMAC(), b.String())
	}
}

// handbackVMAC brings back the MASTER after failover(f), as mixed.handback does, but requires
// the client to follow in every case: the MAC it holds is the virtual one whoever wins, and
// the switch learns where it is from the winner's adverts, so that a winner that announces
// nothing on a heal (FRR) no longer leaves the client behind.
func (p *vmacPair) handbackVMAC(f fault) lab.Outage {
	p.t.Helper()
	vip := p.g.vip()
	back, loser := p.master, p.backup
	// After a link cut, as long as mixed.handback waits for a heal: without the virtual MAC
	// on both sides a client left behind waits for its neighbour entry to expire (40 s).
	inject, timeout := back.Node().RestoreLink, 5*p.g.Interval+3*time.Second
	if f == sigterm {
		inject, timeout = func() error { back.Start(); return nil }, p.budget()
	}
	out, err := p.l.MeasureOutage(p.t.Context(), vip.Addr(), inject,
		lab.OutageOptions{AwaitNode: back.Node().Name, Settle: 300 * time.Millisecond, Timeout: timeout})
	p.t.Logf("hand back (%s of %s, %s steps down): %s", map[fault]string{sigterm: "restart", linkCut: "link restored"}[f], back, loser, out)
	if err != nil {
		p.t.Errorf("hand back: %v; %s", err, out.Result)
	}
	if err := lab.WaitServingHolders(p.nodes(), vip, p.nodesOf(back), 5*p.g.Interval+5*time.Second); err != nil {
		p.t.Errorf("after the hand back: %v", err)
	}
	p.expectStates(back)
	p.expectClientReaches(back, 3*time.Second)
	return out
}

// run drives the pair through an election, a failover on SIGTERM and a hand back by
// restarting, a failover on a link cut and a hand back when the link returns (a split brain
// that heals), watching the client's neighbour entry for the VIP throughout. It returns the
// four outages.
func (p *vmacPair) run() [4]lab.Outage {
	w := p.watch()
	p.start(p.master)
	var o [4]lab.Outage
	o[0] = p.failover(sigterm, p.master, p.backup)
	o[1] = p.handbackVMAC(sigterm)
	o[2] = p.failover(linkCut, p.master, p.backup)
	o[3] = p.handbackVMAC(linkCut)
	p.expectVirtualMAC(w)
	p.t.Logf("%s MASTER, %s BACKUP: outages failover SIGTERM %v, hand back (restart) %v, failover link cut %v, heal %v",
		p.master, p.backup, o[0].Duration.Round(time.Millisecond), o[1].Duration.Round(time.Millisecond),
		o[2].Duration.Round(time.Millisecond), o[3].Duration.Round(time.Millisecond))
	return o
}

// TestVirtualMACFRR runs kube-vrrp with virtualMAC beside FRR's vrrpd, which always answers
// with the virtual MAC from its macvlan (lab.Node.AddVRRPMacvlan), VRRPv3 at 100 ms, both
// directions: elect, fail over on SIGTERM and hand back by restarting, fail over on a link
// cut and heal. The client's neighbour entry for the VIP holds the virtual MAC throughout,
// and the client follows every change, the heal that FRR wins included: FRR announces
// nothing then (see mixed.handback), which without virtualMAC left the client on
// kube-vrrp's MAC until its entry expired (40 s in the lab); with it, FRR's adverts teach the
// switch where the virtual MAC is.
func TestVirtualMACFRR(t *testing.T) {
	privtest.Require(t)
	for _, c := range []struct {
		name string
		g    group
	}{
		{"ipv4", group{VRID: 74, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}}},
		{"ipv6", group{VRID: 75, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip6}}},
	} {
		for _, d := range frrDirections {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				t.Parallel()
				newVMACPair(t, c.g, d.frrMaster, func(t *testing.T, n *lab.Node, g group, prio int) speaker {
					return newFRR(t, n, g, prio)
				}).run()
			})
		}
	}
}

// TestVirtualMACKeepalived runs kube-vrrp with virtualMAC beside keepalived with use_vmac
// (Debian's keepalived 2.2.7, whose vmac is a private-mode macvlan kept up in every state),
// VRRPv3 at 100 ms over IPv4 and IPv6 (keepalived's list starting with the virtual router's
// link-local address, as TestV3MulticastIPv6 needs), both directions, through the scenario
// of TestVirtualMACFRR. keepalived's parent gets arp_announce 2 (keepalivedVMAC.Start):
// without it the client's entry for the VIP turned to keepalived's node MAC.
func TestVirtualMACKeepalived(t *testing.T) {
	privtest.Require(t)
	ll := netip.PrefixFrom(vrrpLinkLocal(77), 64)
	for _, c := range []struct {
		name string
		g    group
	}{
		{"ipv4", group{VRID: 76, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}}},
		{"ipv6", group{VRID: 77, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip6},
			KeepalivedVIPs: []netip.Prefix{ll, vip6}}},
	} {
		for _, d := range directions {
			t.Run(c.name+"/"+string(d), func(t *testing.T) {
				t.Parallel()
				newVMACPair(t, c.g, d == keepalivedMaster, func(t *testing.T, n *lab.Node, g group, prio int) speaker {
					return newKeepalivedVMAC(t, n, g, prio)
				}).run()
			})
		}
	}
}

// TestVirtualMACFRRStartRace: FRR (priority 110) and kube-vrrp (100) that do not hear each
// other when they start (VRRP blocked at kube-vrrp's port, as when kube-vrrp's first
// Master_Down_Timer runs out before FRR's first advert reaches it) both become MASTER, and
// kube-vrrp, last, announces the VIP; then they hear each other, kube-vrrp steps down and
// FRR, as MASTER, announces nothing on hearing the lower priority (mixed.start). With
// virtualMAC the client reaches FRR at once, its entry holding the virtual MAC throughout:
// FRR's adverts move the switch. The same start without virtualMAC (logged only; the IPv4
// client stays with kube-vrrp's node MAC until its entry expires) is the control.
func TestVirtualMACFRRStartRace(t *testing.T) {
	privtest.Require(t)
	for _, c := range []struct {
		name string
		vip  netip.Prefix
		vmac bool
	}{{"ipv4", vip4, true}, {"ipv6", vip6, true}, {"ipv4-without-virtualMAC", vip4, false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := group{VRID: 78, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{c.vip}}
			var fr, kv speaker
			m := newMixed(t, g,
				func(n *lab.Node) speaker { fr = newFRR(t, n, g, masterPriority); return fr },
				func(n *lab.Node) speaker {
					if c.vmac {
						kv = newKubeVRRPVMAC(t, n, g, backupPriority)
					} else {
						kv = newKubeVRRP(t, n, g, backupPriority)
					}
					return kv
				})
			p := &vmacPair{mixed: m, other: fr, master: fr, backup: kv}
			w := p.watch()
			if err := kv.Node().BlockVRRP(); err != nil {
				t.Fatal(err)
			}
			fr.Start()
			if err := fr.WaitState(true, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			kv.Start()
			if err := kv.WaitState(true, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			m.expectClientReaches(kv, 3*time.Second) // its announcement came last
			out, err := m.l.MeasureOutage(t.Context(), g.vip().Addr(), kv.Node().UnblockVRRP,
				lab.OutageOptions{AwaitNode: fr.Node().Name, Settle: 300 * time.Millisecond, Timeout: 3 * time.Second})
			if !c.vmac {
				cs, _ := w.Stop()
				t.Logf("without virtualMAC, after the start race: %s (%v); the client's entry held %v", out, err, lab.MACs(cs))
				return
			}
			t.Logf("after the start race: %s", out)
			if err != nil {
				t.Errorf("the client did not follow FRR: %v; %s", err, out.Result)
			}
			m.expectStates(fr)
			p.expectVirtualMAC(w)
		})
	}
}
