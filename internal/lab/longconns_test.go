package lab_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// TestLongConns: HAProxy serving two VIPs (ExecHAProxyVIPs) answers each on the same
// connection again and again; connections through a VIP that stays put all live, and moving the
// VIP to the other node (which has no socket for them) breaks every one of them with a reset.
func TestLongConns(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2})
	vips := []netip.Addr{netip.MustParseAddr("198.18.0.101"), netip.MustParseAddr("198.18.0.102")}
	for _, n := range l.Nodes() {
		if _, err := n.StartPIDNamespace(t).ExecHAProxyVIPs(vips, 8081); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := l.Node(1), l.Node(2)
	for _, v := range vips {
		if _, err := n1.Run("ip", "addr", "add", v.String()+"/24", "dev", lab.Interface); err != nil {
			t.Fatal(err)
		}
	}
	stay, err := l.StartLongConns(netip.AddrPortFrom(vips[0], 80), lab.LongConnsOptions{Conns: 5, Period: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	move, err := l.StartLongConns(netip.AddrPortFrom(vips[1], 80), lab.LongConnsOptions{Conns: 5, Period: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// The VIP moves: n1 drops it, n2 takes it, and the client's neighbour entry names n2 (what
	// a new MASTER's gratuitous ARP does).
	if _, err := n1.Run("ip", "addr", "del", vips[1].String()+"/24", "dev", lab.Interface); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Run("ip", "addr", "add", vips[1].String()+"/24", "dev", lab.Interface); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Client().Run("ip", "neigh", "replace", vips[1].String(), "lladdr", n2.MAC.String(), "dev", l.Client().Interface); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)

	rs, rm := stay.Stop(), move.Stop()
	t.Logf("stayed: %s; moved: %s", rs, rm)
	if len(rs.Broken) != 0 || rs.Requests < 5*5 || len(rs.Served) != 1 || rs.Served["n1"] != rs.Requests {
		t.Errorf("connections through a VIP that stayed on n1: %s %v, want all alive and served by n1", rs, rs.Broken)
	}
	if len(rm.Broken) != 5 {
		t.Errorf("connections through the moved VIP: %s %v, want all 5 broken", rm, rm.Broken)
	}
	for _, b := range rm.Broken {
		if b.Requests == 0 || b.At.IsZero() || b.Err == "" {
			t.Errorf("break %+v: want the requests it carried, when and why", b)
		}
	}
}
