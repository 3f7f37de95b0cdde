package bench_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// BenchmarkHAProxyKill measures what a client sending an HTTP request every 10 ms (new
// connection each, 200 ms timeout) to HAProxy on the VIP sees when HAProxy is SIGKILLed on
// the MASTER: the longest run of failed requests until the BACKUP serves steadily. Each
// setup runs -haproxy.runs times, alternating setups in one run, each measurement in a fresh
// two-node lab (n1 priority 110, n2 100, preemption on, HAProxy on both, each node with its
// own PID namespace so a node's probe sees only its own HAProxy):
//
//   - kube-vrrp, process probe `haproxy` (interval 1s, fall 2, rise 2), weight 0 (FAULT) and
//     weight -20, at v3 100 ms adverts (its default) and at 1 s (as keepalived users run),
//     multicast, and weight 0 at 1 s in unicast (the BACKUP knows it is the only one left);
//   - keepalived 2.2 with the classic `vrrp_script { script "/usr/bin/pgrep -x haproxy"
//     interval 1 fall 2 rise 2 weight -20 }`, and with weight 0 (FAULT), at advert_int 1
//     (VRRPv2, as users run it) and, for fairness, at 0.1 s (VRRPv3).
//
// HAProxy is killed at a random phase of the 1 s check period. It prints a table (median, min,
// max ms per setup) and reports each median as a metric.
func BenchmarkHAProxyKill(b *testing.B) {
	privtest.Require(b)
	lab.KubeVRRPBinary(b) // build before the first measurement
	results := map[string][]hapSample{}
	for range b.N {
		for i := range *hapRuns {
			order := slices.Clone(hapSetups)
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				m, err := hapMeasure(b, s)
				if err != nil {
					b.Errorf("%s run %d: %v", s.name(), i+1, err)
					continue
				}
				b.Logf("%-38s run %d: %v", s.name(), i+1, m)
				results[s.name()] = append(results[s.name()], m)
			}
		}
	}
	hapReport(b, results)
}

var hapRuns = flag.Int("haproxy.runs", 5, "measurements of each setup in BenchmarkHAProxyKill (setups alternate)")

// hapNice is the niceness of the speakers: the bench package's -nice if it has one (the test
// process itself is reniced by its TestMain), else -10.
func hapNice() int {
	if f := flag.Lookup("nice"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil {
			return n
		}
	}
	return -10
}

var (
	hapVIP = netip.MustParsePrefix("198.18.0.100/24")
	hapWeb = netip.AddrPortFrom(hapVIP.Addr(), 80)
)

const (
	hapPrioMaster = 110
	hapPrioBackup = 100
)

type hapSetup struct {
	speaker string // "kube-vrrp" or "keepalived"
	weight  int
	advert  time.Duration
	version int
	// unicast lists both nodes as peers: kube-vrrp's BACKUP then knows it is the best one
	// left and takes over at once on the MASTER's priority-0 advert, without Skew_Time.
	unicast bool
}

func (s hapSetup) name() string {
	w := "weight 0 (FAULT)"
	if s.weight != 0 {
		w = fmt.Sprintf("weight %+d", s.weight)
	}
	probe := "process probe"
	if s.speaker == "keepalived" {
		probe = "pgrep script"
	}
	name := fmt.Sprintf("%s %s %s, v%d %v", s.speaker, probe, w, s.version, s.advert)
	if s.unicast {
		name += " unicast"
	}
	return name
}

// metric is the setup's name as a metric unit (no spaces).
func (s hapSetup) metric() string {
	m := fmt.Sprintf("%s-w%d-%s", s.speaker, s.weight, strings.ReplaceAll(s.advert.String(), ".", "_"))
	if s.unicast {
		m += "-unicast"
	}
	return m + "-ms"
}

var hapSetups = []hapSetup{
	{speaker: "kube-vrrp", weight: 0, advert: 100 * time.Millisecond, version: 3},
	{speaker: "kube-vrrp", weight: -20, advert: 100 * time.Millisecond, version: 3},
	{speaker: "kube-vrrp", weight: 0, advert: time.Second, version: 3},
	{speaker: "kube-vrrp", weight: 0, advert: time.Second, version: 3, unicast: true},
	{speaker: "kube-vrrp", weight: -20, advert: time.Second, version: 3},
	{speaker: "keepalived", weight: -20, advert: time.Second, version: 2},
	{speaker: "keepalived", weight: 0, advert: time.Second, version: 2},
	{speaker: "keepalived", weight: -20, advert: 100 * time.Millisecond, version: 3},
	{speaker: "keepalived", weight: 0, advert: 100 * time.Millisecond, version: 3},
}

type hapSample struct {
	outage  time.Duration
	failed  int
	sendGap time.Duration
}

func (m hapSample) times() (outage, sendGap time.Duration) { return m.outage, m.sendGap }

func (m hapSample) String() string {
	return fmt.Sprintf("HTTP outage %v (%d requests failed), client max send gap %v",
		m.outage.Round(time.Millisecond), m.failed, m.sendGap.Round(time.Millisecond))
}

// hapStart starts the setup's speaker on n (inside ns) at priority prio; peers are the lab's
// nodes.
func hapStart(b *testing.B, ns *lab.PIDNamespace, s hapSetup, prio int, peers []*lab.Node) (*lab.NSProc, error) {
	n := ns.Node
	if s.speaker == "keepalived" {
		in := lab.VRRPInstance{VRID: 51, Version: s.version, AdvertInt: s.advert, VIPs: []netip.Prefix{hapVIP},
			TrackScripts: []string{"chk_haproxy"}}
		cfg := lab.KeepalivedConfig{
			RouterID: n.Name,
			Scripts: []lab.VRRPScript{{Name: "chk_haproxy", Script: "/usr/bin/pgrep -x haproxy",
				Interval: time.Second, Fall: 2, Rise: 2, Weight: s.weight}},
			Instances: []lab.VRRPInstance{in.ForNode(n, prio)},
		}
		return ns.ExecKeepalived(cfg.String())
	}
	v := lab.VirtualIP{VRID: 51, Version: s.version, AdvertInt: s.advert, Addresses: []netip.Prefix{hapVIP},
		NodePriorities: map[string]int{n.Name: prio},
		Extra: []string{"probes:", "- name: haproxy", "  process: {name: haproxy}",
			"  interval: 1s", "  fall: 2", "  rise: 2", fmt.Sprintf("  weight: %d", s.weight)}}
	if s.unicast {
		v = v.WithPeers(peers...)
	}
	return ns.ExecKubeVRRP(lab.KubeVRRPBinary(b), v.String())
}

// hapMeasure builds a lab with HAProxy and the setup's speaker on both nodes, waits for n1 to
// hold the VIP and serve, and measures the HTTP outage of SIGKILL of n1's HAProxy.
func hapMeasure(b *testing.B, s hapSetup) (hapSample, error) {
	l, closeLab, err := lab.Open(lab.Options{Nodes: 2, Nice: hapNice()})
	if err != nil {
		return hapSample{}, err
	}
	var namespaces []*lab.PIDNamespace
	defer func() {
		// Everything in the PID namespaces dies at once; then the lab goes.
		for _, ns := range namespaces {
			ns.Close()
		}
		if err := closeLab(); err != nil {
			b.Errorf("closing lab: %v", err)
		}
	}()
	var haps []*lab.HAProxy
	for _, n := range l.Nodes() {
		ns, err := n.NewPIDNamespace()
		if err != nil {
			return hapSample{}, err
		}
		namespaces = append(namespaces, ns)
		h, err := ns.ExecHAProxy(hapVIP.Addr())
		if err != nil {
			return hapSample{}, err
		}
		haps = append(haps, h)
	}
	var speakers []*lab.NSProc
	for i, ns := range namespaces {
		p, err := hapStart(b, ns, s, []int{hapPrioMaster, hapPrioBackup}[i], l.Nodes())
		if err != nil {
			return hapSample{}, err
		}
		speakers = append(speakers, p)
	}
	n1, n2 := l.Node(1), l.Node(2)
	if err := lab.WaitSoleHolder(l.Nodes(), hapVIP, n1, max(2*s.advert, 300*time.Millisecond), 30*time.Second); err != nil {
		return hapSample{}, fmt.Errorf("before the kill: %w\n%s", err, speakers[0].Tail(10))
	}
	// The kill comes at a random phase of the checks' 1 s period: keepalived's script runs on
	// a fixed tick from its start, and every lab takes about as long to get here, so a fixed
	// warm-up would measure the same phase every time.
	warmup := 300*time.Millisecond + rand.N(time.Second)
	out, err := l.MeasureHTTPOutage(b.Context(), hapWeb, func() error { haps[0].Kill(); return nil },
		lab.HTTPOutageOptions{AwaitNode: n2.Name, Warmup: warmup, Timeout: 30 * time.Second})
	if err != nil {
		return hapSample{}, fmt.Errorf("%w (%s)\n%s", err, out.Result, speakers[0].Tail(10))
	}
	if out.Before != n1.Name {
		return hapSample{}, fmt.Errorf("served by %s before the kill, want n1 (%s)", out.Before, out.Result)
	}
	return hapSample{outage: out.Duration, failed: out.Failed, sendGap: out.Result.MaxSendGap()}, nil
}

// hapReport prints the table and reports each setup's median outage (ms) as a metric.
func hapReport(b *testing.B, results map[string][]hapSample) {
	var sb strings.Builder
	w := newTable(&sb)
	fmt.Fprintf(w, "setup\tmedian ms\tmin ms\tmax ms\tfailed requests (median)\truns\tclient\n")
	for _, s := range hapSetups {
		ss := results[s.name()]
		if len(ss) == 0 {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t0\t\n", s.name())
			continue
		}
		st := summarize(ss)
		f := make([]int, len(ss))
		for i, m := range ss {
			f[i] = m.failed
		}
		slices.Sort(f)
		fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%.0f\t%d\t%d\t%s\n", s.name(), ms(st.median), ms(st.min), ms(st.max), f[len(f)/2], st.n, stallCell(st.sendGap, 50*time.Millisecond))
		b.ReportMetric(ms(st.median), s.metric())
	}
	w.Flush()
	b.ReportMetric(0, "ns/op") // the labs' time, not a figure of interest
	text := fmt.Sprintf("\nHAProxy SIGKILLed on the MASTER: client-observed HTTP outage (GET every 10 ms, new connection each, 200 ms timeout)\n"+
		"n1 110 / n2 100, preempt on, speakers at nice %d\n%s", hapNice(), sb.String())
	fmt.Print(text)

	// With -out: the table and every sample to haproxy.txt, the distributions to haproxy.png,
	// one panel per weight and advert interval with the setups that share them side by side.
	text += "\nsamples (HTTP outage ms, in the order measured)\n"
	var panels []panel
	at := map[string]int{}
	for _, s := range hapSetups {
		var v []float64
		for _, m := range results[s.name()] {
			v = append(v, ms(m.outage))
		}
		text += fmt.Sprintf("%s\t%s\n", s.name(), msList(v))
		w := "weight 0 (FAULT)"
		if s.weight != 0 {
			w = fmt.Sprintf("weight %+d", s.weight)
		}
		title := fmt.Sprintf("HAProxy killed, %s, adverts %v", w, s.advert)
		i, ok := at[title]
		if !ok {
			i = len(panels)
			at[title] = i
			panels = append(panels, panel{title: title})
		}
		label := fmt.Sprintf("%s v%d", s.speaker, s.version)
		if s.unicast {
			label += " unicast"
		}
		color := 1
		if s.speaker == "keepalived" {
			color = 0
		}
		panels[i].series = append(panels[i].series, series{label: label, ms: v, color: color})
	}
	for _, err := range []error{
		written(writeOut("haproxy.txt", []byte(text))),
		written(writePanels("haproxy.png", panels, 2, 5*vg.Inch, 3.5*vg.Inch)),
	} {
		if err != nil {
			b.Error(err)
		}
	}
}
