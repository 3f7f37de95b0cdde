package vmac_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
)

var (
	vip4 = netip.MustParsePrefix("198.18.0.200/24")
	vip6 = netip.MustParsePrefix("2001:db8::200/64")
)

const (
	vrid = 51
	// interval is the advert interval (VRRPv3): Master_Down_Interval is about 0.35 s.
	interval = 100 * time.Millisecond
	// settle bounds "happens at all" waits.
	settle = 10 * time.Second
	// nice is the niceness of the speakers and of the test process, as in test/speaker: a
	// speaker stalled for longer than Master_Down_Interval on a busy machine loses its role.
	nice = -10
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "vmac tests:", err)
		}
	}
	os.Exit(m.Run())
}

// group is kube-vrrp run on n1 (priority 110) and n2 (100) serving one VIP, with or without
// virtualMAC.
type group struct {
	t     *testing.T
	l     *lab.Lab
	vip   netip.Prefix
	spec  lab.VirtualIP
	procs map[string]*lab.Proc
}

func newGroup(t *testing.T, l *lab.Lab, vip netip.Prefix, vmac bool) *group {
	g := &group{t: t, l: l, vip: vip, procs: map[string]*lab.Proc{}, spec: lab.VirtualIP{
		VRID: vrid, Version: 3, AdvertInt: interval, Addresses: []netip.Prefix{vip},
		NodePriorities: map[string]int{"n1": 110, "n2": 100},
	}}
	if vmac {
		g.spec.Extra = []string{"virtualMAC: true"}
	}
	return g
}

func (g *group) v6() bool { return g.vip.Addr().Is6() }

// vmacName is the virtual MAC interface's name on a lab node.
func (g *group) vmacName() string { return hostnet.VirtualMACName("eth0", vrid, g.v6()) }

func (g *group) mac() net.HardwareAddr { return hostnet.VirtualMACAddr(vrid, g.v6()) }

// start starts (or restarts) n's speaker with the group's manifest.
func (g *group) start(n *lab.Node, args ...string) *lab.Proc {
	g.t.Helper()
	p := n.StartKubeVRRP(g.t, g.spec.String(), args...)
	g.procs[n.Name] = p
	return p
}

// startBoth starts n1, waits until it is the MASTER, then starts n2 and waits until it is a
// backup.
func (g *group) startBoth() {
	g.t.Helper()
	n1, n2 := g.l.Node(1), g.l.Node(2)
	g.start(n1)
	g.wait(n1, "Master")
	g.start(n2)
	g.wait(n2, "Backup")
	if err := lab.WaitSoleHolder(g.l.Nodes(), g.vip, n1, 3*interval, settle); err != nil {
		g.t.Fatal(err)
	}
}

func (g *group) wait(n *lab.Node, state string) {
	g.t.Helper()
	if err := lab.WaitKubeVRRPState(g.procs[n.Name], "lab", state, settle); err != nil {
		g.t.Fatalf("%s: %v\n%s", n, err, g.procs[n.Name].Tail(20))
	}
}

// stop SIGTERMs n's speaker and waits for it.
func (g *group) stop(n *lab.Node) {
	g.t.Helper()
	p := g.procs[n.Name]
	if p == nil || p.Exited() {
		return
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		g.t.Fatal(err)
	}
	if err := p.Wait(settle); err != nil {
		g.t.Fatalf("%s: kube-vrrp after SIGTERM: %v\n%s", n, err, p.Tail(20))
	}
}

// linkState reports whether the link name exists in n's namespace, its index and whether it
// is administratively up.
func linkState(t *testing.T, n *lab.Node, name string) (exists bool, index int, up bool) {
	t.Helper()
	err := n.InNetns(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil
		}
		exists, index, up = true, ifi.Index, ifi.Flags&net.FlagUp != 0
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return exists, index, up
}

// waitLink waits until the link name in n's namespace exists (or not) and, if it does, is up
// (or down).
func waitLink(t *testing.T, n *lab.Node, name string, exists, up bool) int {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		e, idx, u := linkState(t, n, name)
		if e == exists && (!e || u == up) {
			return idx
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s exists %t up %t, want exists %t up %t", n, name, e, u, exists, up)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fdbPort returns the bridge port on which the lab's switch has learned mac ("" if none).
func fdbPort(t *testing.T, l *lab.Lab, mac net.HardwareAddr) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.Switch, "bridge", "-j", "fdb", "show", "br", lab.Bridge).Output()
	if err != nil {
		t.Fatalf("bridge fdb in the switch: %v", err)
	}
	var es []struct {
		MAC    string `json:"mac"`
		Ifname string `json:"ifname"`
		Flags  []string
	}
	if err := json.Unmarshal(out, &es); err != nil {
		t.Fatalf("bridge fdb: %v: %s", err, out)
	}
	for _, e := range es {
		if e.MAC == mac.String() {
			return e.Ifname
		}
	}
	return ""
}

// neighbour returns the client's neighbour entry for the VIP, once it has one.
func neighbour(t *testing.T, c *lab.Node, ip netip.Addr) net.HardwareAddr {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		mac, err := c.Neighbor(ip)
		if err != nil {
			t.Fatal(err)
		}
		if mac != nil {
			return mac
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client has no neighbour entry for %s", ip)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answers waits until the client reaches the VIP at n.
func (g *group) answers(n *lab.Node) {
	g.t.Helper()
	deadline := time.Now().Add(settle)
	for {
		who, _ := g.l.WhoAnswers(g.vip.Addr(), time.Second)
		if who == n.Name {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("the client reaches %s at %q, want %s", g.vip.Addr(), who, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With virtualMAC the MASTER answers for the VIP with the virtual MAC from a macvlan that is
// up on it and down on the backup; the switch learns the virtual MAC on the MASTER's port
// only; after a failover the client's neighbour entry is still the virtual MAC, now learned
// on the new MASTER's port, and a preemption moves it back.
func TestVirtualMACFailover(t *testing.T) {
	privtest.Require(t)
	lab.KubeVRRPBinary(t)
	for _, c := range []struct {
		name string
		vip  netip.Prefix
	}{{"ipv4", vip4}, {"ipv6", vip6}} {
		t.Run(c.name, func(t *testing.T) {
			l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
			n1, n2, client := l.Node(1), l.Node(2), l.Client()
			g := newGroup(t, l, c.vip, true)
			g.startBoth()
			name, mac := g.vmacName(), g.mac()
			waitLink(t, n1, name, true, true)
			waitLink(t, n2, name, true, false)
			g.answers(n1)
			if got := neighbour(t, client, c.vip.Addr()); got.String() != mac.String() {
				t.Fatalf("the client's neighbour entry for %s: %s, want the virtual MAC %s", c.vip.Addr(), got, mac)
			}
			// The backup sends nothing with the virtual MAC: the switch never learns it on
			// n2's port.
			for range 20 {
				if port := fdbPort(t, l, mac); port != n1.Port {
					t.Fatalf("the switch learned %s on %q, want n1's port %s", mac, port, n1.Port)
				}
				time.Sleep(50 * time.Millisecond)
			}

			cut := time.Now()
			if err := n1.CutLink(); err != nil {
				t.Fatal(err)
			}
			g.wait(n2, "Master")
			g.answers(n2)
			took := time.Since(cut)
			if got := neighbour(t, client, c.vip.Addr()); got.String() != mac.String() {
				t.Errorf("after the failover the client's neighbour entry for %s is %s, want the virtual MAC %s", c.vip.Addr(), got, mac)
			}
			waitLink(t, n2, name, true, true)
			if port := fdbPort(t, l, mac); port != n2.Port {
				t.Errorf("after the failover the switch has %s on %q, want n2's port %s", mac, port, n2.Port)
			}
			t.Logf("link cut: n2 answers %v later, behind the same MAC", took.Round(time.Millisecond))

			if err := n1.RestoreLink(); err != nil {
				t.Fatal(err)
			}
			g.wait(n2, "Backup")
			g.answers(n1)
			waitLink(t, n2, name, true, false)
			if port := fdbPort(t, l, mac); port != n1.Port {
				t.Errorf("after the preemption the switch has %s on %q, want n1's port %s", mac, port, n1.Port)
			}
			if got := neighbour(t, client, c.vip.Addr()); got.String() != mac.String() {
				t.Errorf("after the preemption the client's neighbour entry for %s is %s, want %s", c.vip.Addr(), got, mac)
			}
		})
	}
}

// garpIgnoringClient makes the lab's client ignore gratuitous ARPs (IPv4) and unsolicited
// neighbour advertisements (IPv6) for vip, as some clients do, and keeps its neighbour entries
// reachable for a short, known time: base_reachable_time 3 s (an entry is reachable for 1.5 to
// 4.5 s after a confirmation), then delay_first_probe_time 2 s, then 5 unicast probes 500 ms
// apart to the MAC it has. A client that holds a departed MASTER's MAC finds the new one only
// after that: 2.5 to 9 s.
func garpIgnoringClient(t *testing.T, c *lab.Node, vip netip.Addr) {
	t.Helper()
	fam := "ipv4"
	rules := fmt.Sprintf("table arp kvlab_client {\n chain input {\n  type filter hook input priority 0; policy accept;\n"+
		"  arp saddr ip %s arp daddr ip %s drop\n }\n}\n", vip, vip)
	if vip.Is6() {
		fam = "ipv6"
		rules = "table ip6 kvlab_client {\n chain input {\n  type filter hook input priority 0; policy accept;\n" +
			"  icmpv6 type nd-neighbor-advert ip6 daddr ff02::1 drop\n }\n}\n"
	}
	path := filepath.Join(c.Dir, "garp-ignore.nft")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Run("nft", "-f", path); err != nil {
		t.Fatalf("client's nftables rules: %v: %s", err, out)
	}
	err := c.InNetns(func() error {
		for k, v := range map[string]string{
			"base_reachable_time_ms": "3000", "delay_first_probe_time": "2", "retrans_time_ms": "500",
			"ucast_solicit": "5", "mcast_solicit": "3", "gc_stale_time": "60",
		} {
			p := fmt.Sprintf("/proc/sys/net/%s/neigh/%s/%s", fam, c.Interface, k)
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("client's neighbour settings: %v", err)
	}
}

// A client that ignores gratuitous ARPs and unsolicited NAs, failover by a link cut of the
// MASTER: without virtualMAC the client goes on sending to the departed MASTER's MAC until its
// neighbour entry fails (seconds); with it, the new MASTER answers behind the same MAC once it
// has taken over (about Master_Down_Interval) and the switch has learned where it is.
func TestGARPIgnoringClient(t *testing.T) {
	privtest.Require(t)
	lab.KubeVRRPBinary(t)
	for _, c := range []struct {
		name string
		vip  netip.Prefix
	}{{"ipv4", vip4}, {"ipv6", vip6}} {
		t.Run(c.name, func(t *testing.T) {
			l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
			n1, n2, client := l.Node(1), l.Node(2), l.Client()
			garpIgnoringClient(t, client, c.vip.Addr())
			outage := map[bool]time.Duration{}
			for _, vmac := range []bool{false, true} {
				g := newGroup(t, l, c.vip, vmac)
				g.startBoth()
				if _, err := client.Run("ip", "neigh", "flush", "dev", client.Interface); err != nil {
					t.Fatal(err)
				}
				g.answers(n1)
				out, err := l.MeasureOutage(t.Context(), c.vip.Addr(), n1.CutLink,
					lab.OutageOptions{AwaitNode: n2.Name, Warmup: time.Second, Timeout: 30 * time.Second})
				if err != nil {
					t.Fatalf("virtualMAC %t: %v (%s)", vmac, err, out)
				}
				outage[vmac] = out.Duration
				t.Logf("virtualMAC %t: %s", vmac, out)
				g.stop(n1)
				g.stop(n2)
				if err := n1.RestoreLink(); err != nil {
					t.Fatal(err)
				}
			}
			without, with := outage[false], outage[true]
			t.Logf("%s client ignoring gratuitous announcements, link cut of the MASTER: outage without virtualMAC %d ms, with virtualMAC %d ms",
				c.name, without.Milliseconds(), with.Milliseconds())
			if with > time.Second || 3*with > without {
				t.Errorf("outage with virtualMAC %v, without %v: want it under 1 s and under a third of the other", with, without)
			}
		})
	}
}

// The macvlan's life under `kube-vrrp run`: removed at a SIGTERM; left by a SIGKILL and
// removed by the next start, which makes its own; kept, with its index, its address and the
// client's neighbour entry, through a hitless restart (SIGUSR2) that the backup never notices;
// created again after a rebuild of its interface; removed when a restart turns virtualMAC
// off.
func TestVirtualMACLifecycle(t *testing.T) {
	privtest.Require(t)
	lab.KubeVRRPBinary(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	n1, n2, client := l.Node(1), l.Node(2), l.Client()
	g := newGroup(t, l, vip4, true)
	name := g.vmacName()

	g.start(n1)
	g.wait(n1, "Master")
	waitLink(t, n1, name, true, true)
	g.stop(n1)
	if e, _, _ := linkState(t, n1, name); e {
		t.Errorf("%s survived SIGTERM", name)
	}
	if out, err := n1.Run("nft", "list", "tables"); err != nil || strings.Contains(out, hostnet.VMACTable) {
		t.Errorf("nftables tables after SIGTERM: %s (%v)", out, err)
	}

	// SIGKILL: left behind, removed by the next start, which creates its own.
	p := g.start(n1)
	g.wait(n1, "Master")
	killed := waitLink(t, n1, name, true, true)
	p.Kill()
	if e, _, up := linkState(t, n1, name); !e || !up {
		t.Fatalf("%s after SIGKILL: exists %t up %t; the kernel keeps it", name, e, up)
	}
	p = g.start(n1)
	g.wait(n1, "Master")
	idx := waitLink(t, n1, name, true, true)
	if idx == killed {
		t.Errorf("%s has the killed agent's index %d: not removed at the start", name, idx)
	}
	if len(lab.KubeVRRPLog(p, "removed stale virtual address")) == 0 {
		t.Errorf("the restart logged no stale address removed:\n%s", p.Tail(20))
	}

	// Hitless restart with a backup beside it.
	g.start(n2)
	g.wait(n2, "Backup")
	g.answers(n1)
	if err := p.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(settle); err != nil {
		t.Fatalf("kube-vrrp after SIGUSR2: %v\n%s", err, p.Tail(20))
	}
	if e, i, up := linkState(t, n1, name); !e || !up || i != idx || !n1.HasAddress(vip4) {
		t.Fatalf("%s after the handoff: exists %t up %t index %d (was %d), VIP held %t; want it kept as it was",
			name, e, up, i, idx, n1.HasAddress(vip4))
	}
	p = g.start(n1)
	g.wait(n1, "Master")
	trs := lab.KubeVRRPTransitions(p)
	if len(trs) == 0 || trs[len(trs)-1].Reason != "Resumed" {
		t.Errorf("the successor's transitions %v, want it Resumed", trs)
	}
	if e, i, up := linkState(t, n1, name); !e || !up || i != idx {
		t.Errorf("%s after the successor started: exists %t up %t index %d, want the same %d, up", name, e, up, i, idx)
	}
	for _, tr := range lab.KubeVRRPTransitions(g.procs[n2.Name]) {
		if tr.State == "Master" {
			t.Errorf("n2 took over during the hitless restart: %+v", tr)
		}
	}
	g.answers(n1)
	if got := neighbour(t, client, vip4.Addr()); got.String() != g.mac().String() {
		t.Errorf("the client's neighbour entry for the VIP: %s, want %s", got, g.mac())
	}

	// The interface rebuilt: the macvlan goes with it and comes back.
	if err := n1.RecreateLink(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	g.wait(n1, "Master")
	waitLink(t, n1, name, true, true)
	if err := lab.WaitSoleHolder(l.Nodes(), vip4, n1, 3*interval, settle); err != nil {
		t.Fatal(err)
	}
	g.answers(n1)

	// Deleted under the MASTER: the address watch puts the VIP back, on a new macvlan.
	_, before, _ := linkState(t, n1, name)
	if out, err := n1.Run("ip", "link", "del", name); err != nil {
		t.Fatalf("ip link del %s: %v: %s", name, err, out)
	}
	if idx := waitLink(t, n1, name, true, true); idx == before {
		t.Errorf("%s kept index %d", name, idx)
	}
	if err := lab.WaitSoleHolder(l.Nodes(), vip4, n1, 3*interval, settle); err != nil {
		t.Fatal(err)
	}
	g.answers(n1)

	// virtualMAC turned off across a restart: the macvlan goes, the VIP moves to eth0.
	if err := p.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(settle); err != nil {
		t.Fatalf("kube-vrrp after SIGUSR2: %v\n%s", err, p.Tail(20))
	}
	g.spec.Extra = nil
	g.start(n1)
	g.wait(n1, "Master")
	waitLink(t, n1, name, false, false)
	if err := lab.WaitSoleHolder(l.Nodes(), vip4, n1, 3*interval, settle); err != nil {
		t.Fatal(err)
	}
	g.answers(n1)
	g.stop(n1)
	g.stop(n2)
	if out, err := n1.Run("nft", "list", "tables"); err != nil || strings.Contains(out, hostnet.VMACTable) {
		t.Errorf("nftables tables after the last virtual MAC: %s (%v)", out, err)
	}
}
