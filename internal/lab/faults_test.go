package lab_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// TestOneWayVRRPLoss checks DropVRRPOneWay with raw IP protocol 112 sockets in n1 and n2: each
// direction drops VRRP one way only, leaves other traffic alone, and ClearFaults undoes it.
func TestOneWayVRRPLoss(t *testing.T) {
	privtest.Require(t)
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2, ResponderPort: -1})
	n1, n2 := l.Node(1), l.Node(2)
	fams := []struct {
		network string
		addr    func(*lab.Node) netip.Addr
	}{
		{"ip4:112", func(n *lab.Node) netip.Addr { return n.IPv4 }},
		{"ip6:112", func(n *lab.Node) netip.Addr { return n.IPv6 }},
	}
	type sock struct {
		n *lab.Node
		c net.PacketConn
	}
	socks := map[string][2]sock{}
	for _, f := range fams {
		var pair [2]sock
		for i, n := range []*lab.Node{n1, n2} {
			var c net.PacketConn
			if err := n.InNetns(func() (err error) {
				c, err = net.ListenPacket(f.network, "")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			pair[i] = sock{n, c}
		}
		socks[f.network] = pair
	}
	// check sends VRRP-protocol packets both ways in both families and compares what arrived
	// with want (n1->n2, n2->n1).
	check := func(stage string, want [2]bool) {
		t.Helper()
		for _, f := range fams {
			pair := socks[f.network]
			for i, dir := range []string{"n1->n2", "n2->n1"} {
				from, to := pair[i], pair[1-i]
				got := delivered(t, from.c, to.c, f.addr(to.n))
				if got != want[i] {
					t.Errorf("%s: %s %s delivered %v, want %v", stage, f.network, dir, got, want[i])
				}
			}
		}
		if err := n1.Ping(n2.IPv4, 1); err != nil {
			t.Errorf("%s: ICMP n1->n2: %v", stage, err)
		}
	}

	check("no fault", [2]bool{true, true})
	if err := n1.DropVRRPOneWay(lab.FromNode); err != nil {
		t.Fatal(err)
	}
	check("n1 FromNode", [2]bool{false, true})
	if err := n1.DropVRRPOneWay(lab.ToNode); err != nil { // replaces FromNode
		t.Fatal(err)
	}
	check("n1 ToNode", [2]bool{true, false})
	if err := n1.ClearFaults(); err != nil {
		t.Fatal(err)
	}
	check("cleared", [2]bool{true, true})
	if err := n1.ClearFaults(); err != nil {
		t.Errorf("a second ClearFaults: %v", err)
	}
}

// delivered sends a few packets from one raw socket to dst and reports whether any reached the
// other socket within 300 ms.
func delivered(t *testing.T, from, to net.PacketConn, dst netip.Addr) bool {
	t.Helper()
	token := fmt.Appendf(nil, "kvlab %d", time.Now().UnixNano())
	for range 3 {
		if _, err := from.WriteTo(token, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			t.Fatalf("send to %s: %v", dst, err)
		}
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(300 * time.Millisecond)
	for {
		_ = to.SetReadDeadline(deadline)
		k, _, err := to.ReadFrom(buf)
		if err != nil {
			return false
		}
		// IPv4 raw sockets deliver the IP header too; the token ends the packet either way.
		if bytes.HasSuffix(buf[:k], token) {
			return true
		}
	}
}

// TestImpairLink checks ImpairLink's loss both ways (a ping's round trip crosses the port
// twice: 30% each way loses about 51%), and that ClearFaults restores a clean link.
func TestImpairLink(t *testing.T) {
	privtest.Require(t)
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2, ResponderPort: -1})
	n1, n2 := l.Node(1), l.Node(2)
	how, err := n1.ImpairLink(lab.LinkImpairment{LossPercent: 30, Delay: 2 * time.Millisecond, Jitter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("impairment: %s", how)
	loss := pingLoss(t, n2, n1.IPv4, 200)
	// 200 round trips at p = 0.51: the bounds are over six standard deviations away.
	if loss < 25 || loss > 75 {
		t.Errorf("round-trip loss through a link with 30%% loss each way: %.1f%%, want about 51%%", loss)
	}
	if err := n1.ClearFaults(); err != nil {
		t.Fatal(err)
	}
	if loss := pingLoss(t, n2, n1.IPv4, 50); loss != 0 {
		t.Errorf("loss after ClearFaults: %.1f%%, want 0", loss)
	}
}

var lossRE = regexp.MustCompile(`([0-9.]+)% packet loss`)

// pingLoss pings dst from n count times, 5 ms apart, and returns the loss in percent.
func pingLoss(t *testing.T, n *lab.Node, dst netip.Addr, count int) float64 {
	t.Helper()
	out, _ := n.Run("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.005", "-W", "1", dst.String())
	m := lossRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s from %s: no loss figure in %q", dst, n, out)
	}
	loss, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("ping %s from %s: loss %q: %v", dst, n, m[1], err)
	}
	return loss
}
