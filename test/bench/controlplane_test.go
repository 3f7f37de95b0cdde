package bench_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var cpRuns = flag.Int("controlplane.runs", 3, "measurements of each implementation per event in BenchmarkControlPlane (implementations alternate)")

// The control-plane lab: three nodes with a kube-apiserver each, etcd in the client's namespace,
// the VIP in front of the API servers (kubeadm's --control-plane-endpoint).
var cpVIP = netip.MustParsePrefix("198.18.0.100/24")

const (
	// cpTimeout bounds one measurement after the fault: the guide's keepalived takes about
	// 30 s to notice a dead API server (interval 3 s, fall 10).
	cpTimeout = 90 * time.Second
	// cpSettle bounds the return to the baseline after a restore: an API server's restart,
	// then the guide's rise 2 at 3 s intervals, before n1 takes the VIP back.
	cpSettle = 2 * time.Minute
)

// cpImpl is a VRRP speaker set up as a control-plane VIP.
type cpImpl struct {
	name string
	// start starts the speaker on node i (1-based) and returns its process.
	start func(c *cpBench, n *lab.Node, i int) (*lab.Proc, error)
}

var cpImpls = []cpImpl{
	// keepalived as the kubeadm HA guide (kubernetes/kubeadm docs/ha-considerations.md)
	// writes it: vrrp_script check_apiserver every 3 s, weight -2, fall 10, rise 2; MASTER 101
	// and BACKUPs 100 and 99; VRID 51, advert_int 1 (VRRPv2, keepalived's default), PASS 42.
	{"keepalived", func(c *cpBench, n *lab.Node, i int) (*lab.Proc, error) {
		script, err := c.checkScript(n)
		if err != nil {
			return nil, err
		}
		state := "BACKUP"
		if i == 1 {
			state = "MASTER"
		}
		cfg := lab.KeepalivedConfig{
			RouterID: "LVS_DEVEL",
			Scripts: []lab.VRRPScript{{Name: "check_apiserver", Script: script,
				Interval: 3 * time.Second, Weight: -2, Fall: 10, Rise: 2}},
			Instances: []lab.VRRPInstance{{State: state, Interface: lab.Interface, VRID: 51, Version: 2,
				Priority: 102 - i, AdvertInt: time.Second, AuthPass: "42", VIPs: []netip.Prefix{cpVIP},
				TrackScripts: []string{"check_apiserver"}}},
		}
		return n.ExecKeepalived(cfg.String())
	}},
	// kube-vrrp as pkg/staticpod generates its static Pod: the command line of the Pod's
	// container, run in the node with the files it names.
	{"kube-vrrp", func(c *cpBench, n *lab.Node, i int) (*lab.Proc, error) {
		args, err := c.staticPod(n, 160-10*i)
		if err != nil {
			return nil, err
		}
		return n.ExecKubeVRRPCommand(c.bin, args...)
	}},
}

// cpEvent is a fault on the MASTER n1 and its undoing.
type cpEvent struct {
	name string
	// isolated: the fault cuts n1 off the LAN, where it may keep the VIP unseen.
	isolated bool
	fault    func(c *cpBench) error
	restore  func(c *cpBench) error
}

var cpEvents = []cpEvent{
	{name: "apiserver SIGKILL", fault: func(c *cpBench) error {
		c.ha.KillAPIServer(c.l.Node(1))
		return nil
	}, restore: func(c *cpBench) error {
		return c.ha.StartAPIServers(c.b.Context(), c.l.Node(1))
	}},
	{name: "link cut", isolated: true, fault: func(c *cpBench) error {
		return c.l.Node(1).CutLink()
	}, restore: func(c *cpBench) error {
		return c.l.Node(1).RestoreLink()
	}},
	{name: "VRRP daemon SIGTERM", fault: func(c *cpBench) error {
		return c.speakers[0].Signal(syscall.SIGTERM)
	}, restore: func(c *cpBench) error {
		// Its exit status does not matter, only that it is gone.
		if err := c.speakers[0].Wait(10 * time.Second); errors.Is(err, lab.ErrRunning) {
			return fmt.Errorf("n1's %s still runs 10 s after SIGTERM", c.impl.name)
		}
		p, err := c.impl.start(c, c.l.Node(1), 1)
		c.speakers[0] = p
		return err
	}},
}

type cpBench struct {
	b        *testing.B
	l        *lab.Lab
	ha       *cluster.HA
	bin      string
	impl     cpImpl
	speakers []*lab.Proc
}

type cpSample struct {
	outage  time.Duration
	failed  int
	sendGap time.Duration
	// after is the node that served the client at the end.
	after string
	// masters are the nodes whose speaker entered Master after the fault, in order.
	masters []string
}

func (s cpSample) times() (outage, sendGap time.Duration) { return s.outage, s.sendGap }

// BenchmarkControlPlane measures what a client of the Kubernetes API sees through the
// control-plane VIP when the MASTER's kube-apiserver is SIGKILLed, when its link is cut and
// when its VRRP daemon is stopped with SIGTERM: a CA-verified HTTPS GET /readyz to the VIP
// every 10 ms (new connection each, 1 s timeout), the longest run of failed requests until n2
// serves steadily. keepalived as the kubeadm guide configures it and kube-vrrp as
// pkg/staticpod generates its static Pod run in the same lab, one after the other in
// alternating order, -controlplane.runs times each. Three nodes, one kube-apiserver each (its
// own serving certificate for every node address and the VIP), one etcd in the client's
// namespace; after each fault the lab is restored and n1 takes the VIP back. It prints the
// median, min and max outage per event and implementation and reports the medians.
func BenchmarkControlPlane(b *testing.B) {
	privtest.Require(b)
	envtestassets.Require(b)
	bin := lab.KubeVRRPBinary(b)
	l, closeLab, err := lab.Open(lab.Options{Nodes: 3, Nice: *nice})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := closeLab(); err != nil {
			b.Errorf("closing lab: %v", err)
		}
	}()
	ha, err := cluster.StartHA(b.Context(), l, cluster.HAOptions{Nodes: l.Nodes(), VIPs: []netip.Addr{cpVIP.Addr()}, Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer ha.Close()
	c := &cpBench{b: b, l: l, ha: ha, bin: bin}
	results := map[string]map[string][]cpSample{}
	for _, im := range cpImpls {
		results[im.name] = map[string][]cpSample{}
	}
	for range b.N {
		for i := range *cpRuns {
			order := slices.Clone(cpImpls)
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, im := range order {
				if err := c.runImpl(im, i+1, results[im.name]); err != nil {
					b.Errorf("%s run %d: %v", im.name, i+1, err)
				}
			}
		}
	}
	cpReport(b, results)
}

// runImpl starts im on every node, measures every event once and stops im again.
func (c *cpBench) runImpl(im cpImpl, run int, results map[string][]cpSample) (err error) {
	c.impl, c.speakers = im, nil
	defer func() { err = errors.Join(err, c.stopSpeakers()) }()
	for i, n := range c.l.Nodes() {
		p, err := im.start(c, n, i+1)
		if err != nil {
			return err
		}
		c.speakers = append(c.speakers, p)
	}
	for _, ev := range cpEvents {
		if err := c.baseline(); err != nil {
			return fmt.Errorf("before %s: %w", ev.name, err)
		}
		s, err := c.measure(ev)
		if err != nil {
			return fmt.Errorf("%s: %w", ev.name, err)
		}
		c.b.Logf("%-10s run %d %-20s: HTTP outage %v (%d requests failed), -> %s, Master after the fault: %s, client max send gap %v",
			im.name, run, ev.name, s.outage.Round(time.Millisecond), s.failed, s.after, strings.Join(s.masters, ","),
			s.sendGap.Round(time.Millisecond))
		results[ev.name] = append(results[ev.name], s)
		if err := ev.restore(c); err != nil {
			return fmt.Errorf("restore after %s: %w", ev.name, err)
		}
	}
	return c.baseline()
}

// measure injects ev at a random phase of the speakers' check and advert cycles (keepalived
// checks on a fixed 3 s tick from its start, and every run would otherwise reach the fault at
// the same point of it) and returns what the client saw.
func (c *cpBench) measure(ev cpEvent) (cpSample, error) {
	n2 := c.l.Node(2)
	warmup := 300*time.Millisecond + rand.N(3*time.Second)
	logAt := make([]int64, len(c.speakers))
	for i, p := range c.speakers {
		logAt[i] = p.LogSize()
	}
	out, err := c.l.MeasureHTTPOutage(c.b.Context(), netip.AddrPortFrom(cpVIP.Addr(), uint16(c.ha.Port())),
		func() error { return ev.fault(c) },
		lab.HTTPOutageOptions{
			Load: lab.HTTPLoadOptions{
				URL:         fmt.Sprintf("https://%s/readyz", netip.AddrPortFrom(cpVIP.Addr(), uint16(c.ha.Port()))),
				TLS:         c.ha.TLSConfig(),
				Served:      cluster.ServedBy,
				Timeout:     time.Second,
				MaxInFlight: 300,
			},
			AwaitNode: n2.Name,
			Warmup:    warmup,
			Timeout:   cpTimeout,
		})
	if err != nil {
		return cpSample{}, fmt.Errorf("%w (%s)", err, out.Result)
	}
	if out.Before != "n1" {
		return cpSample{}, fmt.Errorf("served by %s before the fault, want n1 (%s)", out.Before, out.Result)
	}
	seen := c.l.Nodes()
	if ev.isolated {
		seen = seen[1:]
	}
	if h := lab.Holders(seen, cpVIP); !slices.Equal(h, []*lab.Node{n2}) {
		return cpSample{}, fmt.Errorf("VIP held by %v after the fault, want n2", h)
	}
	return cpSample{outage: out.Duration, failed: out.Failed, sendGap: out.Result.MaxSendGap(), after: out.After,
		masters: c.mastersSince(out.FaultAt, logAt)}, nil
}

// mastersSince returns the nodes whose speaker entered Master since t (kube-vrrp's events) or
// since its log had the size in logAt (keepalived's "Entering MASTER STATE"), in order for
// kube-vrrp: two of them mean both backups took over before one heard the other.
func (c *cpBench) mastersSince(t time.Time, logAt []int64) []string {
	type entry struct {
		at   time.Time
		node string
	}
	var es []entry
	for i, p := range c.speakers {
		if p == nil {
			continue
		}
		node := c.l.Node(i + 1).Name
		if p.EventsPath != "" {
			for _, e := range lab.KubeVRRPEvents(p, vrrp.EventTransition) {
				if !e.At.Before(t) && e.State.String() == "Master" {
					es = append(es, entry{e.At, node})
				}
			}
			continue
		}
		if log := p.Log(); int64(len(log)) > logAt[i] {
			for range strings.Count(log[logAt[i]:], "Entering MASTER STATE") {
				es = append(es, entry{time.Time{}, node})
			}
		}
	}
	slices.SortStableFunc(es, func(a, b entry) int { return a.at.Compare(b.at) })
	var out []string
	for _, e := range es {
		out = append(out, e.node)
	}
	return out
}

// baseline waits until every API server is ready, every speaker runs and n1 alone holds the
// VIP and serves the client.
func (c *cpBench) baseline() error {
	ctx, cancel := context.WithTimeout(c.b.Context(), cpSettle)
	defer cancel()
	for _, n := range c.l.Nodes() {
		if c.ha.Ready(ctx, n) != nil {
			if err := c.ha.WaitAPIServer(ctx, n); err != nil {
				return err
			}
		}
	}
	for i, p := range c.speakers {
		if p == nil || p.Exited() {
			return fmt.Errorf("%s on n%d is not running", c.impl.name, i+1)
		}
	}
	if err := lab.WaitSoleHolder(c.l.Nodes(), cpVIP, c.l.Node(1), time.Second, cpSettle); err != nil {
		return err
	}
	hc := c.ha.HTTPClient(c.l.Client(), 2*time.Second)
	url := fmt.Sprintf("https://%s/readyz", netip.AddrPortFrom(cpVIP.Addr(), uint16(c.ha.Port())))
	for {
		resp, err := hc.Get(url)
		if err == nil {
			by := cluster.ServedBy(resp, "")
			resp.Body.Close()
			if resp.StatusCode == 200 && by == "n1" {
				return nil
			}
			err = fmt.Errorf("%s, served by %q", resp.Status, by)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopSpeakers stops every speaker with SIGTERM (a MASTER hands over, then removes the VIP)
// and waits until no node holds the VIP.
func (c *cpBench) stopSpeakers() error {
	var errs []error
	for _, p := range c.speakers {
		if p != nil {
			_ = p.Stop() // the exit status of a SIGTERMed speaker says nothing here
		}
	}
	c.speakers = nil
	if err := lab.WaitHolders(c.l.Nodes(), cpVIP, nil, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkScript writes the guide's check_apiserver.sh for node n and returns its path. The
// guide's script asks https://localhost:6443/healthz; here it asks the node's address, where
// the node's API server listens as well.
func (c *cpBench) checkScript(n *lab.Node) (string, error) {
	script := fmt.Sprintf(`#!/bin/sh

errorExit() {
    echo "*** $*" 1>&2
    exit 1
}

curl -sfk --max-time 2 https://%[1]s/healthz -o /dev/null || errorExit "Error GET https://%[1]s/healthz"
`, c.ha.Endpoint(n))
	p, err := n.WriteFile("check_apiserver.sh", []byte(script))
	if err != nil {
		return "", err
	}
	return p, os.Chmod(p, 0o755)
}

// staticPod generates node n's static Pod at priority prio (n1 150, n2 140, n3 130) into a
// directory of n's, its ConfigDir, and returns its container's arguments.
func (c *cpBench) staticPod(n *lab.Node, prio int) ([]string, error) {
	dir := filepath.Join(n.Dir, "kube-vrrp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var peers []netip.Addr
	for _, m := range c.l.Nodes() {
		peers = append(peers, m.IPv4)
	}
	f, err := staticpod.Generate(staticpod.Options{Node: n.Name, Address: cpVIP, Interface: lab.Interface, VRID: 51,
		Priority: prio, Peers: peers, APIServer: c.ha.Endpoint(n).String(), CAFile: c.ha.CAFile,
		Image: staticpod.DefaultImage("lab"), ConfigDir: dir})
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{staticpod.VirtualIPFile: f.VirtualIP, staticpod.ManifestFile: f.Manifest} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	return cluster.StaticPodArgs(f.Manifest, staticpod.PodName)
}

// cpReport prints the table, reports each median (ms) as a metric and, with -out, writes the
// table and samples to controlplane.txt and their distributions to controlplane.png.
func cpReport(b *testing.B, results map[string]map[string][]cpSample) {
	var sb strings.Builder
	w := newTable(&sb)
	fmt.Fprintf(w, "event\tkeepalived (kubeadm guide) ms\tkube-vrrp (staticpod) ms\tratio\truns\tclient\n")
	var panels []panel
	samples := "\nsamples (HTTP outage ms, in the order measured)\n"
	for _, ev := range cpEvents {
		k, v := summarize(results["keepalived"][ev.name]), summarize(results["kube-vrrp"][ev.name])
		ratio := "-"
		if k.n > 0 && v.n > 0 && k.median > 0 {
			ratio = fmt.Sprintf("%.3f", ms(v.median)/ms(k.median))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", ev.name, cell(k), cell(v), ratio, k.n, v.n,
			stallCell(max(k.sendGap, v.sendGap), 50*time.Millisecond))
		p := panel{title: "control plane: " + ev.name}
		for i, im := range cpImpls {
			var ds []float64
			for _, s := range results[im.name][ev.name] {
				ds = append(ds, ms(s.outage))
			}
			if st := summarize(results[im.name][ev.name]); st.n > 0 {
				b.ReportMetric(ms(st.median), im.name+"-"+strings.ReplaceAll(ev.name, " ", "-")+"-ms")
			}
			p.series = append(p.series, series{label: im.name, ms: ds, color: i})
			var masters []string
			for _, s := range results[im.name][ev.name] {
				masters = append(masters, strings.Join(s.masters, "+"))
			}
			samples += fmt.Sprintf("%s\t%s\t%s\t(Master after the fault: %s)\n", ev.name, im.name, msList(ds), strings.Join(masters, " "))
		}
		panels = append(panels, p)
	}
	w.Flush()
	b.ReportMetric(0, "ns/op") // the lab's time, not a figure of interest
	text := fmt.Sprintf("\ncontrol-plane VIP in front of three kube-apiservers: client-observed API outage, median (min-max) ms\n"+
		"(CA-verified HTTPS GET /readyz to the VIP every 10 ms, new connection each, 1 s timeout; the longest time between\n"+
		"two successful requests around failed ones, so 10 means none failed); fault on the MASTER n1, n2 takes over.\n"+
		"keepalived: the kubeadm guide's config (check_apiserver.sh every 3 s, fall 10, rise 2, weight -2; 101/100/99;\n"+
		"advert_int 1, VRRPv2, PASS); kube-vrrp: pkg/staticpod's (readyz probe every %v, fall %d, weight %d; 150/140/130;\n"+
		"VRRPv3 100 ms, unicast to the peers); speakers at nice %d; ratio = kube-vrrp / keepalived\n%s",
		staticpod.ProbeInterval, staticpod.ProbeFall, staticpod.APIServerWeight, *nice, sb.String())
	fmt.Print(text)
	for _, err := range []error{
		written(writeOut("controlplane.txt", []byte(text+samples))),
		written(writePanels("controlplane.png", panels, 3, 5*vg.Inch, 3.5*vg.Inch)),
	} {
		if err != nil {
			b.Error(err)
		}
	}
}
