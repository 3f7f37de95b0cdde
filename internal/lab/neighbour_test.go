package lab_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// A NeighbourWatch on the client sees its entry for a node's address appear with the node's
// MAC at the first ping, and every change after it: an entry replaced by hand, then deleted.
func TestWatchNeighbour(t *testing.T) {
	privtest.Require(t)
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1})
	n, client := l.Node(1), l.Client()
	for _, addr := range []netip.Addr{n.IPv4, n.IPv6} {
		ip := addr.String()
		w, err := client.WatchNeighbour(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Ping(addr, 1); err != nil {
			t.Fatal(err)
		}
		const other = "02:00:00:00:00:01"
		if out, err := client.Run("ip", "neigh", "replace", ip, "lladdr", other, "dev", client.Interface, "nud", "stale"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if out, err := client.Run("ip", "neigh", "del", ip, "dev", client.Interface); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
		cs, err := w.Stop()
		if err != nil {
			t.Errorf("%s: notifications ended: %v", ip, err)
		}
		if got, want := lab.MACs(cs), []string{n.MAC.String(), other}; !slices.Equal(got, want) {
			t.Errorf("%s: MACs %v, want %v; changes %v", ip, got, want, cs)
		}
		if len(cs) == 0 || cs[len(cs)-1].State != "deleted" {
			t.Errorf("%s: changes %v, want the deletion last", ip, cs)
		}
	}
}
