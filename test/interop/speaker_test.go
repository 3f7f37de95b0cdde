package interop

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// speaker is one VRRP implementation on one lab node, as the mixed groups drive it
// (mixed_test.go): kube-vrrp, keepalived or FRR's vrrpd, configured for a group with a
// priority.
type speaker interface {
	// Node is where it runs.
	Node() *lab.Node
	// String names it for logs: "frr(n1)".
	String() string
	// Start starts it, or starts it again after a graceful stop.
	Start()
	// Proc is the process whose SIGTERM stops it gracefully (priority 0).
	Proc() *lab.Proc
	// WaitState waits until it says it is MASTER (master) or BACKUP.
	WaitState(master bool, timeout time.Duration) error
	// Priority is its configured priority.
	Priority() int
	// Src is the source address of its adverts.
	Src() netip.Addr
	// Adverts is the address list its adverts carry.
	Adverts() []netip.Addr
	// Reannounces says whether, as MASTER, it announces its addresses again (gratuitous
	// ARP / unsolicited NA) when it hears a lower-priority advert, which is what moves a
	// client back when a split brain heals (see handback).
	Reannounces() bool
	// Quiet is how long after it took over its own late announcements may still come
	// (waitQuiet).
	Quiet() time.Duration
}

// advertSrc is the source of kube-vrrp's and keepalived's multicast adverts on n: its IPv4
// address, or for IPv6 the link's link-local address (RFC 5798 §5.1.2.1).
func advertSrc(n *lab.Node, g group) netip.Addr {
	if g.vip().Addr().Is6() {
		return n.LinkLocal.WithZone("")
	}
	return n.IPv4
}

// kubeVRRP is `kube-vrrp run` with the VirtualIP of the group.
type kubeVRRP struct {
	t    *testing.T
	n    *lab.Node
	g    group
	prio int
	proc *lab.Proc
}

func newKubeVRRP(t *testing.T, n *lab.Node, g group, prio int) *kubeVRRP {
	return &kubeVRRP{t: t, n: n, g: g, prio: prio}
}

func (s *kubeVRRP) Node() *lab.Node { return s.n }
func (s *kubeVRRP) String() string  { return "kube-vrrp(" + s.n.Name + ")" }
func (s *kubeVRRP) Proc() *lab.Proc { return s.proc }
func (s *kubeVRRP) Priority() int   { return s.prio }
func (s *kubeVRRP) Src() netip.Addr { return advertSrc(s.n, s.g) }

func (s *kubeVRRP) Start() {
	s.t.Helper()
	v := lab.VirtualIP{
		Name: vipName, VRID: s.g.VRID, Version: s.g.Version, Interface: s.n.Interface,
		Addresses: s.g.VIPs, AdvertInt: s.g.Interval, Priority: s.prio,
	}
	if s.g.ChecksumMode != "" {
		v.Extra = append(v.Extra, "checksumMode: "+s.g.ChecksumMode)
	}
	s.proc = s.n.StartKubeVRRP(s.t, v.String())
}

func (s *kubeVRRP) WaitState(master bool, timeout time.Duration) error {
	want := "Backup"
	if master {
		want = "Master"
	}
	return lab.WaitKubeVRRPState(s.proc, vipName, want, timeout)
}

func (s *kubeVRRP) Adverts() []netip.Addr {
	var a []netip.Addr
	for _, v := range s.g.VIPs {
		a = append(a, v.Addr())
	}
	if a[0].Is6() && !a[0].IsLinkLocalUnicast() {
		a = append([]netip.Addr{vrrpLinkLocal(s.g.VRID)}, a...)
	}
	return a
}

// Reannounces: RFC 9568 §6.4.3, as pair.handback describes.
func (s *kubeVRRP) Reannounces() bool { return true }

// Quiet: kube-vrrp repeats its burst 2 s after a takeover.
func (s *kubeVRRP) Quiet() time.Duration { return quiet }

// keepalived is keepalived with one vrrp_instance for the group.
type keepalived struct {
	t    *testing.T
	n    *lab.Node
	g    group
	prio int
	proc *lab.Proc
}

func newKeepalived(t *testing.T, n *lab.Node, g group, prio int) *keepalived {
	return &keepalived{t: t, n: n, g: g, prio: prio}
}

func (s *keepalived) Node() *lab.Node { return s.n }
func (s *keepalived) String() string  { return "keepalived(" + s.n.Name + ")" }
func (s *keepalived) Proc() *lab.Proc { return s.proc }
func (s *keepalived) Priority() int   { return s.prio }
func (s *keepalived) Src() netip.Addr { return advertSrc(s.n, s.g) }

func (s *keepalived) vips() []netip.Prefix {
	if s.g.KeepalivedVIPs != nil {
		return s.g.KeepalivedVIPs
	}
	return s.g.VIPs
}

func (s *keepalived) Start() {
	s.t.Helper()
	in := lab.VRRPInstance{VRID: s.g.VRID, Version: s.g.Version, AdvertInt: s.g.Interval, VIPs: s.vips()}
	s.proc = s.n.StartKeepalived(s.t, lab.KeepalivedConf(s.n.Name, in.ForNode(s.n, s.prio)))
}

func (s *keepalived) WaitState(master bool, timeout time.Duration) error {
	want := "BACKUP"
	if master {
		want = "MASTER"
	}
	return lab.WaitKeepalivedState(s.proc, "VI_1", want, timeout)
}

func (s *keepalived) Adverts() []netip.Addr {
	var a []netip.Addr
	for _, v := range s.vips() {
		a = append(a, v.Addr())
	}
	return a
}

// Reannounces: "forcing new election" and gratuitous ARPs, as pair.handback describes.
func (s *keepalived) Reannounces() bool { return true }

// Quiet: keepalived repeats its gratuitous ARPs 5 s after a takeover (garp_master_delay).
func (s *keepalived) Quiet() time.Duration { return quiet + time.Second }

// frr is FRR's zebra and vrrpd with one virtual router for the group, on the macvlan FRR's
// documentation asks for (lab.Node.AddVRRPMacvlan).
type frr struct {
	t      *testing.T
	n      *lab.Node
	g      group
	prio   int
	global []string // extra vrrpd config lines ("debug vrrp packets")
	daemon *lab.FRR
}

func newFRR(t *testing.T, n *lab.Node, g group, prio int, global ...string) *frr {
	t.Helper()
	if _, err := n.AddVRRPMacvlan(g.VRID, g.VIPs); err != nil {
		t.Fatal(err)
	}
	return &frr{t: t, n: n, g: g, prio: prio, global: global}
}

func (s *frr) Node() *lab.Node { return s.n }
func (s *frr) String() string  { return "frr(" + s.n.Name + ")" }
func (s *frr) Priority() int   { return s.prio }

func (s *frr) v6() bool { return s.g.vip().Addr().Is6() }

// Src: FRR sends IPv4 adverts from the parent's first IPv4 address and IPv6 ones from the
// macvlan's link-local address.
func (s *frr) Src() netip.Addr {
	if s.v6() {
		return lab.FRRLinkLocal(s.n)
	}
	return s.n.IPv4
}

// Adverts: the configured list; for IPv6 the virtual router's link-local address first, as
// RFC 5798 §5.2.9 asks and kube-vrrp checks (FRR checks nothing of the list it receives).
func (s *frr) Adverts() []netip.Addr {
	var a []netip.Addr
	for _, v := range s.g.VIPs {
		a = append(a, v.Addr())
	}
	if s.v6() && !a[0].IsLinkLocalUnicast() {
		a = append([]netip.Addr{vrrpLinkLocal(s.g.VRID)}, a...)
	}
	return a
}

func (s *frr) conf() string {
	return lab.FRRConf(s.global, lab.FRRRouter{
		VRID: s.g.VRID, Version: s.g.Version, Priority: s.prio, AdvertInt: s.g.Interval, Addresses: s.Adverts(),
	})
}

// Start starts zebra and vrrpd, or vrrpd alone again after it stopped (zebra stays).
func (s *frr) Start() {
	s.t.Helper()
	if s.daemon == nil {
		s.daemon = s.n.StartFRR(s.t, s.conf())
		return
	}
	if _, err := s.daemon.StartVRRPd(); err != nil {
		s.t.Fatalf("%s: %v", s, err)
	}
}

// Proc is vrrpd: on SIGTERM a MASTER sends priority 0 and sets its macvlan protodown.
func (s *frr) Proc() *lab.Proc { return s.daemon.VRRPd }

func (s *frr) WaitState(master bool, timeout time.Duration) error {
	want := "Backup"
	if master {
		want = "Master"
	}
	return lab.WaitFRRState(s.daemon.VRRPd, s.g.VRID, s.v6(), want, timeout)
}

// Reannounces: FRR 8.4's MASTER discards a lower-priority advert and announces nothing; it
// sends gratuitous ARPs / unsolicited NAs only when it becomes MASTER.
func (s *frr) Reannounces() bool { return false }

// Quiet: FRR announces once, on taking over; a second is the client's neighbour locktime.
func (s *frr) Quiet() time.Duration { return 1500 * time.Millisecond }

// sigtermOf returns a fault function that stops s gracefully.
func sigtermOf(s speaker) func() error {
	return func() error {
		p := s.Proc()
		if p == nil {
			return fmt.Errorf("%s not running", s)
		}
		return p.Signal(syscall.SIGTERM)
	}
}
