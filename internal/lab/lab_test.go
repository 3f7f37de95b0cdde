package lab_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// labNamespaces lists the namespaces whose names start with prefix.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func hostSysctl(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestLabUpAndReachable(t *testing.T) {
	privtest.Require(t)
	const dadKey = "net.ipv6.conf.default.accept_dad"
	hostDAD := hostSysctl(t, dadKey)
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 3})
	// Lab sysctls are written inside the lab namespaces, never on the host.
	if got := hostSysctl(t, dadKey); got != hostDAD {
		t.Errorf("host %s changed from %s to %s", dadKey, hostDAD, got)
	}
	if out, err := l.Node(1).Run("cat", "/proc/sys/net/ipv6/conf/eth0/accept_dad"); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("n1 eth0 accept_dad = %q (%v), want 0", out, err)
	}

	nodes := l.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("nodes = %d, want 3", len(nodes))
	}
	want := map[string][2]string{
		"n1":     {"198.18.0.11", "2001:db8::11"},
		"n2":     {"198.18.0.12", "2001:db8::12"},
		"n3":     {"198.18.0.13", "2001:db8::13"},
		"client": {"198.18.0.250", "2001:db8::250"},
	}
	all := append(nodes, l.Client())
	for _, n := range all {
		w := want[n.Name]
		if n.IPv4.String() != w[0] || n.IPv6.String() != w[1] {
			t.Errorf("%s: addresses %s %s, want %s %s", n.Name, n.IPv4, n.IPv6, w[0], w[1])
		}
		if !n.HasAddress(n.Prefix4()) || !n.HasAddress(n.Prefix6()) || !n.HasAddress(netip.PrefixFrom(n.LinkLocal.WithZone(""), 64)) {
			addrs, err := n.Addresses()
			t.Errorf("%s: addresses %v (%v), want %s, %s and %s", n.Name, addrs, err, n.Prefix4(), n.Prefix6(), n.LinkLocal)
		}
		// DAD is off in lab namespaces: nothing may be tentative.
		out, err := n.Run("ip", "-6", "addr", "show", "dev", n.Interface)
		if err != nil || strings.Contains(out, "tentative") {
			t.Errorf("%s: ip -6 addr: %v\n%s", n.Name, err, out)
		}
	}

	// Every host pings every other over IPv4, IPv6 and IPv6 link-local.
	var wg sync.WaitGroup
	for _, src := range all {
		for _, dst := range all {
			if src == dst {
				continue
			}
			for _, addr := range []netip.Addr{dst.IPv4, dst.IPv6, dst.LinkLocal} {
				wg.Go(func() {
					if err := src.Ping(addr, 2); err != nil {
						t.Errorf("%s -> %s (%s): %v", src.Name, dst.Name, addr, err)
					}
				})
			}
		}
	}
	wg.Wait()

	// The responders name the node that owns an address.
	for _, n := range nodes {
		for _, addr := range []netip.Addr{n.IPv4, n.IPv6} {
			who, err := l.WhoAnswers(addr, 2*time.Second)
			if err != nil || who != n.Name {
				t.Errorf("WhoAnswers(%s) = %q, %v; want %s", addr, who, err, n.Name)
			}
		}
	}
}

func TestLabFaults(t *testing.T) {
	privtest.Require(t)
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)

	// CutLink: no traffic either way, but n1 keeps its carrier.
	if err := n1.CutLink(); err != nil {
		t.Fatal(err)
	}
	if unreachable(n2, n1.IPv4) != nil {
		t.Errorf("n2 reaches n1 through a cut link")
	}
	if unreachable(n1, n2.IPv6) != nil {
		t.Errorf("n1 reaches n2 through a cut link")
	}
	out, _ := n1.Run("ip", "link", "show", "eth0")
	if strings.Contains(out, "NO-CARRIER") || !strings.Contains(out, "state UP") {
		t.Errorf("after CutLink n1's eth0 should keep its carrier:\n%s", out)
	}
	if err := n1.RestoreLink(); err != nil {
		t.Fatal(err)
	}
	if err := n2.Reachable(n1.IPv4, 3*time.Second); err != nil {
		t.Errorf("after RestoreLink: %v", err)
	}

	// LinkDown: no traffic, and n1 sees its carrier go.
	if err := n1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	out, _ = n1.Run("ip", "link", "show", "eth0")
	if !strings.Contains(out, "NO-CARRIER") {
		t.Errorf("after LinkDown n1's eth0 should have no carrier:\n%s", out)
	}
	if unreachable(n2, n1.IPv6) != nil {
		t.Errorf("n2 reaches n1 through a downed link")
	}
	if err := n1.RestoreLink(); err != nil {
		t.Fatal(err)
	}
	if err := n2.Reachable(n1.IPv6, 3*time.Second); err != nil {
		t.Errorf("after RestoreLink: %v", err)
	}

	// BlockVRRP is exercised with keepalived (split brain); here: it leaves other traffic alone.
	if err := n1.BlockVRRP(); err != nil {
		t.Fatal(err)
	}
	if err := n2.Ping(n1.IPv4, 1); err != nil {
		t.Errorf("BlockVRRP blocked ICMP: %v", err)
	}
	if err := n1.UnblockVRRP(); err != nil {
		t.Fatal(err)
	}

	// Processes: output captured, signals, exit status.
	p := n1.Start(t.Context(), "sleeper", "sh", "-c", `echo started in $(ip -br addr show dev eth0 | tr -s " "); trap "echo got TERM; exit 3" TERM; while :; do sleep 0.01; done`)
	if err := p.WaitLog("got", 0, 0); err == nil {
		t.Fatal("WaitLog found text that was not logged yet")
	}
	if err := p.WaitLog("198.18.0.11/24", 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(50 * time.Millisecond); err != lab.ErrRunning {
		t.Fatalf("Wait = %v, want ErrRunning", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(5 * time.Second); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Wait after SIGTERM = %v, want the trap's exit status 3", err)
	}
	if err := p.WaitLog("got TERM", 0, time.Second); err != nil {
		t.Error(err)
	}
	out, err := n2.Run("sh", "-c", "echo hello from $(hostname -I 2>/dev/null || true); ip -br -4 addr show dev eth0")
	if err != nil || !strings.Contains(out, "198.18.0.12/24") {
		t.Errorf("Run in n2: %v\n%s", err, out)
	}
	path := n2.MustWriteFile("sub/hello.txt", []byte("hi"))
	if filepath.Dir(filepath.Dir(path)) != n2.Dir {
		t.Errorf("WriteFile path %s outside %s", path, n2.Dir)
	}
}

// unreachable returns nil if a ping from n to dst goes unanswered for 300 ms.
func unreachable(n *lab.Node, dst netip.Addr) error {
	if _, err := n.Run("ping", "-n", "-q", "-c", "1", "-W", "0.3", dst.String()); err == nil {
		return fmt.Errorf("%s reaches %s", n.Name, dst)
	}
	return nil
}

func TestOpenCloseLeavesNothing(t *testing.T) {
	privtest.Require(t)
	l, closeLab, err := lab.Open(lab.Options{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	prefix := l.Prefix
	if got := labNamespaces(t, prefix); len(got) != 4 {
		t.Errorf("namespaces of %s: %v, want sw, n1, n2, cl", prefix, got)
	}
	p, err := l.Node(1).Exec(t.Context(), "sleep", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	// A grandchild that escaped the process group still dies: it is inside the namespace.
	if _, err := l.Node(2).Exec(t.Context(), "escape", "setsid", "sleep", "601"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	dir := l.Dir()
	if err := closeLab(); err != nil {
		t.Fatal(err)
	}
	if got := labNamespaces(t, prefix); len(got) != 0 {
		t.Errorf("left behind: %v", got)
	}
	if !p.Exited() {
		t.Errorf("process still running after Close")
	}
	if out, _ := exec.Command("pgrep", "-f", "sleep 601").Output(); len(out) > 0 {
		t.Errorf("escaped process still running: %s", out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir %s not removed: %v", dir, err)
	}
	if err := closeLab(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSweepRemovesDeadRunsOnly(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 1}) // first: New sweeps once per process
	// A pid above pid_max cannot be running: this namespace looks like a crashed run's.
	dead := fmt.Sprintf("kvl%d-beef-n1", 1<<23)
	if out, err := exec.Command("ip", "netns", "add", dead).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", dead).Run() })

	removed, err := lab.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	// Other dead runs' leftovers may go too; this one must.
	if !slices.Contains(removed, dead) || len(labNamespaces(t, dead)) != 0 {
		t.Errorf("Sweep removed %v, want %s among them", removed, dead)
	}
	if got := labNamespaces(t, l.Prefix); len(got) != 3 {
		t.Errorf("Sweep touched a live lab: %v", got)
	}
}

// TestMeasureOutageAccuracy checks the probe against a fault of known length: n2's link cut
// for 300 ms. Its address keeps its MAC, so the client's view returns the moment the link does.
func TestMeasureOutageAccuracy(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2})
	n2 := l.Node(2)
	const cut = 300 * time.Millisecond
	for _, mode := range []lab.ProbeMode{lab.ProbeUDP, lab.ProbeICMP} {
		for _, target := range []netip.Addr{n2.IPv4, n2.IPv6} {
			// The link is down at most from the start of CutLink to the end of RestoreLink: on
			// a loaded machine the timer and the ip commands themselves run late, and the
			// fault lasts longer than cut.
			var cutStart time.Time
			restored := make(chan time.Time, 1)
			fault := func() error {
				cutStart = time.Now()
				if err := n2.CutLink(); err != nil {
					return err
				}
				time.AfterFunc(cut, func() {
					if err := n2.RestoreLink(); err != nil {
						t.Error(err)
					}
					restored <- time.Now()
				})
				return nil
			}
			out, err := l.MeasureOutage(t.Context(), target, fault, lab.OutageOptions{
				Probe: lab.ProbeOptions{Mode: mode}, Settle: 300 * time.Millisecond,
			})
			t.Logf("%s %s: %s; %s", mode, target, out, out.Result)
			if err != nil {
				t.Fatal(err)
			}
			down := (<-restored).Sub(cutStart)
			// Resolution is one 10 ms interval (plus timer slack); a prober starved of CPU
			// (a loaded CI machine) overestimates by up to its longest stall.
			slack := 30*time.Millisecond + out.Result.MaxSendGap()
			if out.Duration < cut || out.Duration > down+slack {
				t.Errorf("%s %s: outage %v for a %v cut (the link was down at most %v; allowed slack %v)", mode, target, out.Duration, cut, down, slack)
			}
			if r := out.Result; r.WrongSource != 0 || r.Duplicates != 0 {
				t.Errorf("%s %s: %s", mode, target, r)
			}
			if mode == lab.ProbeUDP && (out.Before != "n2" || out.After != "n2") {
				t.Errorf("%s %s: answered by %q then %q, want n2", mode, target, out.Before, out.After)
			}
		}
	}

	// Without a fault: nothing lost, about one interval between answers.
	p, err := l.StartProbe(l.Node(1).IPv6, lab.ProbeOptions{Mode: lab.ProbeICMP})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	r := p.Stop()
	if r.Lost() != 0 || r.Sent < 5 || r.MaxGap() > r.MaxSendGap()+10*time.Millisecond || len(r.Gaps()) != 0 {
		t.Errorf("steady probe: %s, gaps %v", r, r.Gaps())
	}
}
