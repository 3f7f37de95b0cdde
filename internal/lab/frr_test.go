package lab_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

func TestFRRConfRendering(t *testing.T) {
	got := lab.FRRConf([]string{"debug vrrp packets"},
		lab.FRRRouter{VRID: 51, Priority: 110, AdvertInt: 100 * time.Millisecond, NoPreempt: true,
			Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}},
		lab.FRRRouter{Interface: "eth1", VRID: 60, Version: 3,
			Addresses: []netip.Addr{netip.MustParseAddr("fe80::200:5eff:fe00:23c"), netip.MustParseAddr("2001:db8::200")}},
	)
	want := `debug vrrp packets
!
interface eth0
 vrrp 51 version 3
 vrrp 51 priority 110
 vrrp 51 advertisement-interval 100
 no vrrp 51 preempt
 vrrp 51 ip 198.18.0.200
exit
!
interface eth1
 vrrp 60 version 3
 vrrp 60 ipv6 fe80::200:5eff:fe00:23c
 vrrp 60 ipv6 2001:db8::200
exit
`
	if got != want {
		t.Errorf("FRRConf:\n%s\nwant:\n%s", got, want)
	}
	if m := lab.VirtualMAC(60, true).String(); m != "00:00:5e:00:02:3c" {
		t.Errorf("VirtualMAC(60, v6) = %s", m)
	}
	if n := lab.FRRMacvlan(51, false); n != "vrrp4-51" {
		t.Errorf("FRRMacvlan = %s", n)
	}
}

// TestFRRPair runs FRR's vrrpd on two nodes (IPv4 and IPv6 virtual routers of one VRID):
// vrrpd accepts the rendered configuration, the higher priority serves the VIPs, the lower
// keeps them bound on its protodown macvlans (HasAddress but not Serves), the client reaches
// the MASTER at the virtual MAC, and SIGTERM hands over to the other.
func TestFRRPair(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: -10})
	vip4 := netip.MustParsePrefix("198.18.0.200/24")
	vip6 := netip.MustParsePrefix("2001:db8::200/64")
	ll := netip.MustParseAddr("fe80::200:5eff:fe00:233")
	var procs []*lab.FRR
	for i, n := range l.Nodes() {
		for _, v := range []netip.Prefix{vip4, vip6} {
			if _, err := n.AddVRRPMacvlan(51, []netip.Prefix{v}); err != nil {
				t.Fatal(err)
			}
		}
		conf := lab.FRRConf(nil, lab.FRRRouter{VRID: 51, Priority: 110 - 10*i, AdvertInt: 100 * time.Millisecond,
			Addresses: []netip.Addr{vip4.Addr(), ll, vip6.Addr()}})
		procs = append(procs, n.StartFRR(t, conf))
	}
	n1, n2 := l.Node(1), l.Node(2)
	for _, v := range []netip.Prefix{vip4, vip6} {
		if err := lab.WaitServingHolders(l.Nodes(), v, []*lab.Node{n1}, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if !n2.HasAddress(v) || n2.Serves(v) {
			t.Errorf("BACKUP n2: HasAddress(%v) %v, Serves %v; want true, false", v, n2.HasAddress(v), n2.Serves(v))
		}
		if err := lab.WaitFRRState(procs[0].VRRPd, 51, v.Addr().Is6(), "Master", 2*time.Second); err != nil {
			t.Error(err)
		}
		if err := lab.WaitFRRState(procs[1].VRRPd, 51, v.Addr().Is6(), "Backup", 2*time.Second); err != nil {
			t.Error(err)
		}
		if who, err := l.WhoAnswers(v.Addr(), 3*time.Second); err != nil || who != "n1" {
			t.Errorf("client reaches %s at %q (%v), want n1", v.Addr(), who, err)
		}
		mac, err := l.Client().Neighbor(v.Addr())
		if err != nil || mac.String() != lab.VirtualMAC(51, v.Addr().Is6()).String() {
			t.Errorf("client's neighbour entry for %s: %v (%v), want the virtual MAC", v.Addr(), mac, err)
		}
	}
	for _, p := range procs {
		if log := p.VRRPd.Log(); strings.Contains(log, "No such command") || strings.Contains(log, "Unknown command") {
			t.Errorf("vrrpd on %s refused its configuration:\n%s", p.Node.Name, p.VRRPd.Tail(20))
		}
	}
	if err := procs[0].VRRPd.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, v := range []netip.Prefix{vip4, vip6} {
		if err := lab.WaitServingHolders(l.Nodes(), v, []*lab.Node{n2}, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	// A killed daemon leaves its crash log directory, /var/tmp/frr/<daemon>.<pid>, behind;
	// the lab removes it.
	z := procs[1].Zebra
	tmp := fmt.Sprintf("/var/tmp/frr/zebra.%d", z.Pid())
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("running zebra: %v", err)
	}
	z.Kill()
	deadline := time.Now().Add(2 * time.Second)
	for _, err := os.Stat(tmp); err == nil; _, err = os.Stat(tmp) {
		if time.Now().After(deadline) {
			t.Errorf("%s still there after zebra was killed", tmp)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFRRBackupStillReceives shows what Serves does not cover: a macvlan that vrrpd set
// protodown (BACKUP, or stopped) no longer answers ARP and sends nothing, but still receives
// the frames sent to its MAC, and the node answers for the address bound on it. A client
// that still has the virtual MAC for the VIP (nothing announced a move) keeps being served by
// the node FRR calls BACKUP.
func TestFRRBackupStillReceives(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 1, Nice: -10})
	n1 := l.Node(1)
	vip := netip.MustParsePrefix("198.18.0.200/24")
	if _, err := n1.AddVRRPMacvlan(51, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	f := n1.StartFRR(t, lab.FRRConf(nil, lab.FRRRouter{VRID: 51, AdvertInt: 100 * time.Millisecond,
		Addresses: []netip.Addr{vip.Addr()}}))
	if err := lab.WaitServingHolders(l.Nodes(), vip, []*lab.Node{n1}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if who, err := l.WhoAnswers(vip.Addr(), 3*time.Second); err != nil || who != "n1" {
		t.Fatalf("client reaches %s at %q (%v), want n1", vip.Addr(), who, err)
	}
	if err := f.VRRPd.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitServingHolders(l.Nodes(), vip, nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !n1.HasAddress(vip) {
		t.Fatalf("vrrpd removed %s from its macvlan", vip)
	}
	mac, err := l.Client().Neighbor(vip.Addr())
	if err != nil || mac.String() != lab.VirtualMAC(51, false).String() {
		t.Fatalf("client's neighbour entry for %s: %v (%v), want the virtual MAC", vip.Addr(), mac, err)
	}
	if who, err := l.WhoAnswers(vip.Addr(), 2*time.Second); err != nil || who != "n1" {
		t.Errorf("client with the virtual MAC cached reaches %s at %q (%v); want n1, whose macvlan is protodown", vip.Addr(), who, err)
	}
}
