package controlplane_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var (
	// vip is the control-plane endpoint (kubeadm's --control-plane-endpoint).
	vip = netip.MustParsePrefix("198.18.0.100/24")
	// priorities of n1, n2, n3: n1 is the MASTER while its API server lives; a dead API server
	// costs a node more than the gap to the lowest (the probe's weight), so n2 then wins.
	priorities = []int{150, 140, 130}
)

const (
	// nice is the niceness of the speakers and of the test process (its HTTPS client): the
	// machine is busy with three API servers and often with compiling too.
	nice = -10
	// recoverBound is the assertion on a client-observed outage: far above what each fault
	// costs (well under a second), so that a loaded machine does not fail a correct run.
	recoverBound = 5 * time.Second
	// settle bounds "happens at all" waits (a VIP moving back, a restarted speaker).
	settle = 30 * time.Second
	// apiStart bounds an API server's start: seconds on an idle machine, far more on a busy one.
	apiStart = 3 * time.Minute
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "controlplane tests:", err)
		}
	}
	os.Exit(m.Run())
}

// cpLab is three control-plane nodes, etcd in the client's namespace, and kube-vrrp on each
// node as the generated static Pod runs it.
type cpLab struct {
	l   *lab.Lab
	ha  *cluster.HA
	bin string
	// args are each node's kube-vrrp arguments, from its generated manifest.
	args map[string][]string
	kv   map[string]*lab.Proc
}

// TestControlPlaneVIP runs the cases in one lab, whose API servers start once (they are the
// expensive part): a cold start first, as a cluster's first boot, then each fault on the
// MASTER n1, after which the lab is restored and n1 must take the VIP back before the next.
func TestControlPlaneVIP(t *testing.T) {
	privtest.Require(t)
	envtestassets.Require(t)
	if testing.Short() {
		t.Skip("starts etcd and three kube-apiservers; skipped in -short mode")
	}
	ctx := t.Context()
	l := lab.New(t, lab.Options{Nodes: 3, Nice: nice})
	ha, err := cluster.PrepareHA(l, cluster.HAOptions{Nodes: l.Nodes(), VIPs: []netip.Addr{vip.Addr()}, Logf: t.Logf, StartTimeout: apiStart})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ha.Close(); err != nil {
			t.Errorf("control plane cleanup: %v", err)
		}
	})
	if err := ha.StartEtcd(ctx); err != nil {
		t.Fatal(err)
	}
	c := &cpLab{l: l, ha: ha, bin: lab.KubeVRRPBinary(t), args: map[string][]string{}, kv: map[string]*lab.Proc{}}
	for i, n := range l.Nodes() {
		args, err := c.generate(n, priorities[i])
		if err != nil {
			t.Fatal(err)
		}
		c.args[n.Name] = args
	}
	t.Logf("kube-vrrp on n1: kube-vrrp %s (then the lab's --log-format, --state-dir and --events)", strings.Join(c.args["n1"], " "))

	ok := t.Run("cold-start", c.coldStart)
	if !ok {
		t.Fatal("the cold start failed: the fault cases need its cluster")
	}
	t.Run("apiserver-kill", func(t *testing.T) {
		n1 := l.Node(1)
		c.fault(t, "SIGKILL of n1's kube-apiserver", false, func() error { ha.KillAPIServer(n1); return nil }, func() error {
			return ha.StartAPIServers(ctx, n1)
		})
	})
	t.Run("link-cut", func(t *testing.T) {
		n1 := l.Node(1)
		c.fault(t, "n1's link cut", true, n1.CutLink, n1.RestoreLink)
	})
	t.Run("graceful-stop", func(t *testing.T) {
		n1 := l.Node(1)
		c.fault(t, "SIGTERM to n1's kube-vrrp", false, func() error {
			return c.kv[n1.Name].Signal(syscall.SIGTERM)
		}, func() error {
			if err := c.kv[n1.Name].Wait(10 * time.Second); err != nil {
				return fmt.Errorf("n1's kube-vrrp after SIGTERM: %w", err)
			}
			return c.startKubeVRRP(n1)
		})
	})
}

// generate writes node n's static Pod files (the manifest, the VirtualIP) to a directory of
// its own, the manifest's ConfigDir, and returns the arguments its container passes to
// kube-vrrp, with the manifest's paths as the node sees them.
func (c *cpLab) generate(n *lab.Node, prio int) ([]string, error) {
	dir := filepath.Join(n.Dir, "kube-vrrp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var peers []netip.Addr
	for _, m := range c.l.Nodes() {
		peers = append(peers, m.IPv4)
	}
	files, err := staticpod.Generate(staticpod.Options{
		Node:      n.Name,
		Address:   vip,
		Interface: lab.Interface,
		VRID:      51,
		Priority:  prio,
		Peers:     peers,
		APIServer: c.ha.Endpoint(n).String(),
		CAFile:    c.ha.CAFile,
		Image:     staticpod.DefaultImage("lab"),
		ConfigDir: dir,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: generate: %w", n, err)
	}
	// The manifest goes beside the other files here: the lab has no kubelet to read it from
	// staticpod.ManifestDir.
	for name, data := range map[string][]byte{staticpod.VirtualIPFile: files.VirtualIP, staticpod.ManifestFile: files.Manifest} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	if len(files.Secret) > 0 {
		if err := os.WriteFile(filepath.Join(dir, staticpod.SecretFile), files.Secret, 0o600); err != nil {
			return nil, err
		}
	}
	return cluster.StaticPodArgs(files.Manifest, staticpod.PodName)
}

func (c *cpLab) startKubeVRRP(n *lab.Node) error {
	p, err := n.ExecKubeVRRPCommand(c.bin, c.args[n.Name]...)
	if err != nil {
		return err
	}
	c.kv[n.Name] = p
	return nil
}

// coldStart starts kube-vrrp on every node while no API server runs: one node, and one only,
// must hold the VIP (every probe fails alike, so the priorities keep their order), and the
// client's /readyz through the VIP must succeed once the API servers are up.
func (c *cpLab) coldStart(t *testing.T) {
	nodes := c.l.Nodes()
	for _, n := range nodes {
		if p := c.ha.APIServer(n); p != nil {
			t.Fatalf("%s runs an API server before the cold start", n)
		}
		if err := c.startKubeVRRP(n); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	m, err := lab.WaitMaster(nodes, vip, settle)
	if err != nil {
		t.Fatalf("no API server yet: %v", err)
	}
	t.Logf("no API server running: %s holds the VIP %v after the speakers started", m, time.Since(t0).Round(time.Millisecond))
	// Held by exactly that node, steadily, while every probe fails.
	if err := lab.WaitSoleHolder(nodes, vip, m, 2*time.Second, 10*time.Second); err != nil {
		t.Fatalf("no API server yet: %v", err)
	}
	for _, n := range nodes {
		if p := c.ha.APIServer(n); p != nil {
			t.Fatalf("%s runs an API server", n)
		}
	}
	if m != c.l.Node(1) {
		t.Errorf("with every API server down, %s holds the VIP; want n1 (priorities keep their order)", m)
	}

	t1 := time.Now()
	if err := c.ha.StartAPIServers(t.Context(), nodes...); err != nil {
		t.Fatal(err)
	}
	t.Logf("API servers ready %v after their start", time.Since(t1).Round(time.Millisecond))
	body, by, err := c.readyzVIP(t.Context(), settle)
	if err != nil {
		t.Fatalf("/readyz through the VIP: %v", err)
	}
	t.Logf("GET https://%s/readyz: %q served by %s, %v after the API servers' start", c.vipEndpoint(), body, by, time.Since(t1).Round(time.Millisecond))
	if err := lab.WaitSoleHolder(nodes, vip, c.l.Node(1), time.Second, settle); err != nil {
		t.Fatalf("every API server up: %v", err)
	}
}

func (c *cpLab) vipEndpoint() netip.AddrPort {
	return netip.AddrPortFrom(vip.Addr(), uint16(c.ha.Port()))
}

// readyzVIP sends GET /readyz to the VIP from the client (CA-verified) until one answers 200,
// for up to timeout, and returns the body and which node's API server answered.
func (c *cpLab) readyzVIP(ctx context.Context, timeout time.Duration) (body, node string, err error) {
	hc := c.ha.HTTPClient(c.l.Client(), 2*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		body, node, err = getReadyz(ctx, hc, "https://"+c.vipEndpoint().String()+"/readyz")
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return body, node, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpsLoad is the client's load: a CA-verified GET /readyz to the VIP every 10 ms, each on a
// new connection, the answering node told by its serving certificate.
func (c *cpLab) httpsLoad() lab.HTTPLoadOptions {
	return lab.HTTPLoadOptions{
		URL:         "https://" + c.vipEndpoint().String() + "/readyz",
		TLS:         c.ha.TLSConfig(),
		Served:      cluster.ServedBy,
		Timeout:     time.Second,
		MaxInFlight: 300,
	}
}

// baseline waits until the lab is whole again: every API server ready, kube-vrrp running on
// every node, n1 the only holder of the VIP and serving the client.
func (c *cpLab) baseline(t *testing.T) {
	t.Helper()
	for _, n := range c.l.Nodes() {
		if err := c.ha.Ready(t.Context(), n); err != nil {
			if err := c.ha.WaitAPIServer(t.Context(), n); err != nil {
				t.Fatalf("baseline: %v", err)
			}
		}
		if p := c.kv[n.Name]; p == nil || p.Exited() {
			t.Fatalf("baseline: kube-vrrp on %s is not running", n)
		}
	}
	if err := lab.WaitSoleHolder(c.l.Nodes(), vip, c.l.Node(1), time.Second, settle); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	if _, by, err := c.readyzVIP(t.Context(), settle); err != nil || by != "n1" {
		t.Fatalf("baseline: /readyz through the VIP served by %q: %v", by, err)
	}
}

// fault measures what the client sees of fault on the MASTER n1: n2 (the next priority, its
// API server alive) must take the VIP and serve the client within recoverBound. restore then
// undoes the fault, and n1 must take the VIP back. isolated says the fault cuts n1 off the
// LAN: n1 then keeps the VIP on its side, where nobody reaches it, and only n2 and n3 count.
func (c *cpLab) fault(t *testing.T, what string, isolated bool, fault, restore func() error) {
	c.baseline(t)
	nodes := c.l.Nodes()
	n2 := c.l.Node(2)
	out, err := c.l.MeasureHTTPOutage(t.Context(), c.vipEndpoint(), fault, lab.HTTPOutageOptions{
		Load:      c.httpsLoad(),
		AwaitNode: n2.Name,
		Settle:    time.Second,
		Timeout:   settle,
	})
	t.Logf("%s: client %s; prober max send gap %v", what, out, out.Result.MaxSendGap().Round(time.Millisecond))
	if len(out.Result.Errors()) > 0 {
		t.Logf("failed requests by error: %v", out.Result.Errors())
	}
	c.logTransitions(t, out.FaultAt)
	if err != nil {
		t.Errorf("%s: %v (%s)", what, err, out.Result)
	} else if out.Duration > recoverBound {
		t.Errorf("%s: the client could not reach an API server through the VIP for %v, want < %v", what, out.Duration, recoverBound)
	}
	seen := nodes
	if isolated {
		seen = nodes[1:]
	}
	if h := lab.Holders(seen, vip); !slices.Equal(h, []*lab.Node{n2}) {
		t.Errorf("%s: VIP held by %v among %v, want n2", what, h, seen)
	}
	t0 := time.Now()
	if err := restore(); err != nil {
		t.Fatalf("restore after %s: %v", what, err)
	}
	if err := lab.WaitSoleHolder(nodes, vip, c.l.Node(1), time.Second, settle); err != nil {
		t.Fatalf("restored after %s: %v", what, err)
	}
	t.Logf("restored: n1 holds the VIP again %v after the restore began", time.Since(t0).Round(time.Millisecond))
}

// logTransitions logs each node's kube-vrrp transitions and priority changes since t0, in
// milliseconds after t0.
func (c *cpLab) logTransitions(t *testing.T, t0 time.Time) {
	t.Helper()
	for _, n := range c.l.Nodes() {
		p := c.kv[n.Name]
		if p == nil {
			continue
		}
		var s []string
		for _, e := range lab.KubeVRRPEvents(p) {
			if e.At.Before(t0) {
				continue
			}
			switch e.Kind {
			case vrrp.EventTransition:
				s = append(s, fmt.Sprintf("+%dms %s (%s, %d)", e.At.Sub(t0).Milliseconds(), e.State, e.Reason, e.Priority))
			case vrrp.EventPriority:
				s = append(s, fmt.Sprintf("+%dms priority %d", e.At.Sub(t0).Milliseconds(), e.Priority))
			}
		}
		if len(s) > 0 {
			t.Logf("  %s: %s", n, strings.Join(s, ", "))
		}
	}
}

// getReadyz sends one GET and returns the body of a 200 answer and the node that served it.
func getReadyz(ctx context.Context, hc *http.Client, url string) (body, node string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), cluster.ServedBy(resp, ""), nil
}
