package lab_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// TestHAProxyInPIDNamespaces: each node's HAProxy runs in the node's own PID namespace, so a
// `pgrep -x haproxy` there sees its own and no other; HAProxy serves the VIP (bound before
// the address exists) with the node's name; the client's HTTP load sees who serves; SIGKILL
// of one HAProxy ends only that one.
func TestHAProxyInPIDNamespaces(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2})
	vip := netip.MustParseAddr("198.18.0.100")
	var ns []*lab.PIDNamespace
	var haps []*lab.HAProxy
	for _, n := range l.Nodes() {
		p := n.StartPIDNamespace(t)
		ns = append(ns, p)
		haps = append(haps, p.StartHAProxy(t, vip))
	}
	// pgrep -x haproxy, with only sh and cat (procps is not always installed).
	pgrep := func(p *lab.PIDNamespace) []string {
		t.Helper()
		pr, err := p.Exec(context.Background(), "pgrep", "sh", "-c",
			`for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" = haproxy ] && echo ${d#/proc/}; done; exit 0`)
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Wait(10 * time.Second); err != nil {
			t.Fatalf("listing processes in %s's namespace: %v", p.Node.Name, err)
		}
		return strings.Fields(pr.Log())
	}
	for i, p := range ns {
		if got := pgrep(p); len(got) != 1 {
			t.Errorf("pgrep -x haproxy in %s's namespace: %v, want its own one", p.Node.Name, got)
		}
		if haps[i].HostPid() <= 0 || haps[i].Exited() {
			t.Errorf("%s: haproxy pid %d, exited %v", p.Node.Name, haps[i].HostPid(), haps[i].Exited())
		}
	}

	n1 := l.Node(1)
	if _, err := n1.Run("ip", "addr", "add", vip.String()+"/24", "dev", lab.Interface); err != nil {
		t.Fatal(err)
	}
	web := netip.AddrPortFrom(vip, 80)
	load := l.StartHTTPLoad(web, lab.HTTPLoadOptions{})
	if _, err := load.WaitServed("n1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	haps[0].Kill()
	time.Sleep(200 * time.Millisecond)
	r := load.Stop()
	t.Log(r)
	if r.Failed() == 0 || len(r.Gaps()) == 0 || !r.Gaps()[len(r.Gaps())-1].Open {
		t.Errorf("after SIGKILL of n1's HAProxy the requests should fail to the end: %s", r)
	}
	if r.Last() != "n1" {
		t.Errorf("served by %q, want n1", r.Last())
	}
	if got := pgrep(ns[0]); len(got) != 0 {
		t.Errorf("pgrep -x haproxy in n1 after SIGKILL: %v, want none", got)
	}
	if got := pgrep(ns[1]); len(got) != 1 || haps[1].Exited() {
		t.Errorf("n2's haproxy: pgrep %v, exited %v; want it untouched", got, haps[1].Exited())
	}
}
