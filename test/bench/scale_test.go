package bench_test

import (
	"cmp"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// BenchmarkScale measures what many VIPs cost on one node that is MASTER of all of them,
// keepalived and kube-vrrp (`kube-vrrp run`) each in turn in a fresh one-node lab of the same
// shape, for each case:
//
//   - memory: VmRSS (and PSS, RssAnon) of the speaker's process tree (keepalived's parent and its
//     VRRP child; kube-vrrp's one process), sampled every 500 ms; the steady value is the
//     median of the samples in the window, the peak the largest since the start; and VmHWM,
//     the kernel's own peak of each process (summed), read at the end of the window;
//   - the time from the start until every group is MASTER (heard twice on the wire), and the
//     CPU the speaker used from the start to the window (start-up, takeover, settling): what
//     a takeover costs, whatever else the machine runs;
//   - CPU: utime+stime ticks (1/100 s) of the process tree over the window;
//   - advert send jitter, from a capture of the adverts on the wire in the client's namespace
//     (a packet socket, kernel receive timestamps): per VRID, each gap between two adverts in
//     the window minus the interval; p50, p99 and the largest over all VRIDs.
//
// Cases: 100 VIPs at 100 ms, 1000 VIPs at 1 s, and 100 VIPs at 10 ms, after one VIP at 100 ms
// for the fixed cost. Each VIP is its own VRRPv3 group (one address, its own VRID, priority
// 100, the node alone, so it becomes MASTER of all). VRIDs are per link, so the VIPs are spread
// over links of 200: the lab link eth0 and veth pairs from the node straight to the client.
// The window opens once every group has been heard twice, after a settling pause (-scale.settle,
// past the takeovers' second announcement burst). It prints a
// table with the targets beside the figures and asserts nothing about them. -scale.cases runs
// only the cases it names (e.g. -scale.cases 1000vips-1s).
func BenchmarkScale(b *testing.B) {
	privtest.Require(b)
	lab.KubeVRRPBinary(b) // build before the first measurement
	var rows []scaleRow
	for ci, c := range scaleCases {
		if !scaleSelected(c) {
			continue
		}
		b.Run(c.name(), func(b *testing.B) {
			r := scaleRow{c: c, res: map[string]scaleResult{}}
			for range b.N {
				order := slices.Clone(scaleImpls)
				if ci%2 == 1 {
					slices.Reverse(order)
				}
				for _, im := range order {
					res, err := scaleMeasure(b, im, c)
					if err != nil {
						b.Errorf("%s %s: %v", im.name, c, err)
						continue
					}
					b.Logf("%-10s %s", im.name, res)
					r.res[im.name] = res
					b.ReportMetric(kib2mib(res.rss), im.name+"-RSS-MiB")
					b.ReportMetric(kib2mib(res.hwm), im.name+"-VmHWM-MiB")
					b.ReportMetric(res.toMaster.Seconds(), im.name+"-MASTER-s")
					b.ReportMetric(float64(res.startTicks), im.name+"-start-CPU-ticks")
					b.ReportMetric(float64(res.ticks), im.name+"-CPU-ticks")
					b.ReportMetric(ms(res.late.p99), im.name+"-late-p99-ms")
				}
			}
			b.ReportMetric(0, "ns/op")
			rows = append(rows, r)
		})
	}
	printScaleTable(rows)
}

var (
	scaleWindow = flag.Duration("scale.window", 20*time.Second, "BenchmarkScale: length of the measurement window")
	// The default settle is past the second announcement burst of a takeover, which rebinds the
	// addresses (vrrp.DefaultAnnounceRepeat after it): the window sees the steady state.
	scaleSettle = flag.Duration("scale.settle", 5*time.Second, "BenchmarkScale: pause between every group being MASTER and the window")
	scaleOnly   = flag.String("scale.cases", "", "BenchmarkScale: run only the cases named in this comma-separated `LIST` (e.g. 1000vips-1s; empty: every case)")
)

// scaleSelected reports whether -scale.cases selects c.
func scaleSelected(c scaleCase) bool {
	if *scaleOnly == "" {
		return true
	}
	for n := range strings.SplitSeq(*scaleOnly, ",") {
		if strings.TrimSpace(n) == c.name() {
			return true
		}
	}
	return false
}

type scaleCase struct {
	vips     int
	interval time.Duration
}

func (c scaleCase) name() string { return fmt.Sprintf("%dvips-%v", c.vips, c.interval) }

func (c scaleCase) String() string { return fmt.Sprintf("%d VIPs @%v", c.vips, c.interval) }

var (
	scaleBase = scaleCase{vips: 1, interval: 100 * time.Millisecond}
	scale100  = scaleCase{vips: 100, interval: 100 * time.Millisecond}
	scale1000 = scaleCase{vips: 1000, interval: time.Second}
	scaleFast = scaleCase{vips: 100, interval: 10 * time.Millisecond}
	// scaleBase is the fixed cost, which the others add to.
	scaleCases = []scaleCase{scaleBase, scale100, scale1000, scaleFast}
)

// vipsPerLink is how many groups share one link: VRIDs 1..vipsPerLink, host numbers
// 20..20+vipsPerLink-1 of the link's /24 (clear of the node's .11 and the client's .250).
const vipsPerLink = 200

// scaleLink is one link of the node and the VIPs on it.
type scaleLink struct {
	name string
	vips []netip.Prefix // the VIP of VRID i+1 is vips[i]
}

// scaleImpl starts a speaker on n for every VIP of links, at interval.
type scaleImpl struct {
	name  string
	start func(b *testing.B, n *lab.Node, links []scaleLink, interval time.Duration) (*lab.Proc, error)
}

var scaleImpls = []scaleImpl{
	{"keepalived", func(b *testing.B, n *lab.Node, links []scaleLink, interval time.Duration) (*lab.Proc, error) {
		var ins []lab.VRRPInstance
		for j, l := range links {
			for i, v := range l.vips {
				ins = append(ins, lab.VRRPInstance{Name: fmt.Sprintf("VI_%d_%d", j, i+1), Interface: l.name, VRID: i + 1,
					Version: 3, AdvertInt: interval, VIPs: []netip.Prefix{v}})
			}
		}
		return n.ExecKeepalived(lab.KeepalivedConf(n.Name, ins...))
	}},
	{"kube-vrrp", func(b *testing.B, n *lab.Node, links []scaleLink, interval time.Duration) (*lab.Proc, error) {
		var docs []string
		for j, l := range links {
			for i, v := range l.vips {
				docs = append(docs, lab.VirtualIP{Name: fmt.Sprintf("v%d-%d", j, i+1), VRID: i + 1, Version: 3,
					Interface: l.name, Addresses: []netip.Prefix{v}, AdvertInt: interval,
					NodePriorities: map[string]int{n.Name: 100}}.String())
			}
		}
		return n.ExecKubeVRRP(lab.KubeVRRPBinary(b), strings.Join(docs, "---\n"))
	}},
}

// scaleLinks adds to the lab the links the case needs beyond eth0 (veth pairs sc1, sc2, ...
// from n to the client, 198.18.j.11/24 on n's end) and returns every link with its VIPs.
func scaleLinks(n, client *lab.Node, vips int) ([]scaleLink, error) {
	var links []scaleLink
	for j := 0; j*vipsPerLink < vips; j++ {
		l := scaleLink{name: lab.Interface}
		if j > 0 {
			l.name = fmt.Sprintf("sc%d", j)
			for _, argv := range [][]string{
				{"ip", "link", "add", l.name, "type", "veth", "peer", "name", l.name, "netns", client.NetNS},
				{"ip", "addr", "add", fmt.Sprintf("198.18.%d.11/24", j), "dev", l.name},
				{"ip", "link", "set", l.name, "up"},
			} {
				if out, err := n.Run(argv...); err != nil {
					return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out)
				}
			}
			if out, err := client.Run("ip", "link", "set", l.name, "up"); err != nil {
				return nil, fmt.Errorf("client: %s up: %w: %s", l.name, err, out)
			}
		}
		for i := range min(vipsPerLink, vips-j*vipsPerLink) {
			l.vips = append(l.vips, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(j), byte(20 + i)}), 24))
		}
		links = append(links, l)
	}
	return links, nil
}

// scaleResult is one implementation's figures in one case.
type scaleResult struct {
	procs             int   // processes in the tree at the end of the window
	rss, rssPeak      int64 // KiB: steady (median over the window) and largest sample since start
	hwm               int64 // KiB: VmHWM (the kernel's peak RSS) at the end of the window, summed over the tree
	pss, anon         int64 // KiB, steady
	ticks             int64 // utime+stime over the window
	startTicks        int64 // utime+stime from the start to the window: start-up, takeover, settling
	window            time.Duration
	toMaster          time.Duration // from start until every group had been heard twice
	late              scaleLateness
	adverts, expected int
	captureDrops      uint32
	// badPriority counts adverts in the window with a priority other than 100.
	badPriority int
}

func (r scaleResult) cpuPercent() float64 {
	return float64(r.ticks) / clockTicks / r.window.Seconds() * 100
}

func (r scaleResult) String() string {
	return fmt.Sprintf("RSS %.1f MiB (peak %.1f, VmHWM %.1f, PSS %.1f, anon %.1f; %d processes), CPU %d ticks in %v (%.1f%% of a core), "+
		"advert lateness p50 %.2f / p99 %.2f / max %.2f ms over %d gaps, %d/%d adverts (%d not at priority 100), "+
		"all MASTER after %v (CPU %d ticks from the start to the window), capture drops %d",
		kib2mib(r.rss), kib2mib(r.rssPeak), kib2mib(r.hwm), kib2mib(r.pss), kib2mib(r.anon), r.procs, r.ticks, r.window.Round(time.Millisecond),
		r.cpuPercent(), ms(r.late.p50), ms(r.late.p99), ms(r.late.max), r.late.n, r.adverts, r.expected, r.badPriority,
		r.toMaster.Round(time.Millisecond), r.startTicks, r.captureDrops)
}

func kib2mib(k int64) float64 { return float64(k) / 1024 }

// scaleMeasure builds a one-node lab, starts im for c's VIPs and measures it over the window.
func scaleMeasure(b *testing.B, im scaleImpl, c scaleCase) (scaleResult, error) {
	l, closeLab, err := lab.Open(lab.Options{Nodes: 1, ResponderPort: -1, Nice: *nice})
	if err != nil {
		return scaleResult{}, err
	}
	defer func() {
		if err := closeLab(); err != nil {
			b.Errorf("closing lab: %v", err)
		}
	}()
	n, client := l.Node(1), l.Client()
	links, err := scaleLinks(n, client, c.vips)
	if err != nil {
		return scaleResult{}, err
	}
	capt, err := startAdvertCapture(client, c.interval)
	if err != nil {
		return scaleResult{}, err
	}
	defer capt.close()
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("%s %s: load average %s", im.name, c, strings.TrimSpace(string(load)))
	}
	started := time.Now()
	p, err := im.start(b, n, links, c.interval)
	if err != nil {
		return scaleResult{}, err
	}
	mem := startMemSampler(p.Pid(), 500*time.Millisecond)
	defer mem.stop()

	// Every group MASTER: each heard at least twice (a BACKUP sends nothing).
	deadline := time.Now().Add(60*time.Second + 5*c.interval)
	for capt.groupsHeard(2) < c.vips {
		if p.Exited() {
			return scaleResult{}, fmt.Errorf("exited before all groups were MASTER:\n%s", p.Tail(20))
		}
		if time.Now().After(deadline) {
			return scaleResult{}, fmt.Errorf("%d of %d groups MASTER after %v:\n%s", capt.groupsHeard(2), c.vips,
				time.Since(started).Round(time.Second), p.Tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := scaleResult{toMaster: time.Since(started)}
	time.Sleep(*scaleSettle)

	cpu0, err := treeTicks(p.Pid())
	if err != nil {
		return scaleResult{}, err
	}
	from := time.Now()
	capt.record(from)
	time.Sleep(*scaleWindow)
	to := time.Now()
	capt.stopRecording()
	cpu1, err := treeTicks(p.Pid())
	if err != nil {
		return scaleResult{}, err
	}
	if p.Exited() {
		return scaleResult{}, fmt.Errorf("exited during the window:\n%s", p.Tail(20))
	}
	res.window = to.Sub(from)
	res.ticks, res.startTicks = cpu1-cpu0, cpu0
	res.rss, res.pss, res.anon, res.rssPeak, res.procs = mem.steady(from, to)
	res.hwm = treeHWM(p.Pid())
	cs := capt.results()
	res.late, res.adverts, res.captureDrops, res.badPriority = cs.late, cs.adverts, cs.drops, cs.badPriority
	res.expected = int(res.window / c.interval * time.Duration(c.vips))
	if cs.err != nil {
		return res, fmt.Errorf("capture: %w", cs.err)
	}
	if cs.groups != c.vips {
		return res, fmt.Errorf("%d of %d groups advertised in the window", cs.groups, c.vips)
	}
	return res, nil
}

// scaleLateness summarises the gaps between adverts of one group minus the interval.
type scaleLateness struct {
	n             int
	p50, p99, max time.Duration
}

func summarizeLateness(d []time.Duration) scaleLateness {
	if len(d) == 0 {
		return scaleLateness{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	return scaleLateness{n: len(d), p50: at(0.50), p99: at(0.99), max: d[len(d)-1]}
}

type scaleRow struct {
	c   scaleCase
	res map[string]scaleResult
}

// scaleTarget is a goal for kube-vrrp in one case.
type scaleTarget struct {
	c    scaleCase
	what string
	// check returns the figure as text and whether the goal is met (haveKA: keepalived's
	// figures are there).
	check func(kv, ka scaleResult, haveKA bool) (figure string, met bool)
}

var scaleTargets = []scaleTarget{
	{scale100, "RSS <= 40 MiB", func(kv, _ scaleResult, _ bool) (string, bool) {
		return fmt.Sprintf("%.1f MiB", kib2mib(kv.rss)), kv.rss <= 40*1024
	}},
	{scale100, "CPU <= 2x keepalived's", func(kv, ka scaleResult, haveKA bool) (string, bool) {
		if !haveKA {
			return fmt.Sprintf("%d ticks (keepalived: no figure)", kv.ticks), false
		}
		return fmt.Sprintf("%d ticks vs 2 x %d", kv.ticks, ka.ticks), kv.ticks <= 2*ka.ticks
	}},
	{scale1000, "RSS <= 120 MiB", func(kv, _ scaleResult, _ bool) (string, bool) {
		return fmt.Sprintf("%.1f MiB", kib2mib(kv.rss)), kv.rss <= 120*1024
	}},
	{scaleFast, "advert lateness p99 <= 5 ms", func(kv, ka scaleResult, haveKA bool) (string, bool) {
		fig := fmt.Sprintf("%.2f ms", ms(kv.late.p99))
		if haveKA {
			fig += fmt.Sprintf(" (keepalived %.2f ms)", ms(ka.late.p99))
		}
		return fig, kv.late.p99 <= 5*time.Millisecond
	}},
}

func printScaleTable(rows []scaleRow) {
	if len(rows) == 0 {
		return
	}
	var sb strings.Builder
	w := newTable(&sb)
	fmt.Fprintf(w, "case\tspeaker\tRSS MiB\tpeak\tVmHWM\tPSS\tanon\tCPU ticks\t%% core\tlate p50 ms\tp99\tmax\tadverts\tMASTER after\tstart CPU\tcapture drops\n")
	for _, r := range rows {
		for _, im := range scaleImpls {
			res, ok := r.res[im.name]
			if !ok {
				fmt.Fprintf(w, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", r.c, im.name)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%d/%d\t%v\t%d\t%d\n", r.c, im.name,
				kib2mib(res.rss), kib2mib(res.rssPeak), kib2mib(res.hwm), kib2mib(res.pss), kib2mib(res.anon), res.ticks, res.cpuPercent(),
				ms(res.late.p50), ms(res.late.p99), ms(res.late.max), res.adverts, res.expected,
				res.toMaster.Round(100*time.Millisecond), res.startTicks, res.captureDrops)
		}
	}
	w.Flush()
	var tb strings.Builder
	tw := newTable(&tb)
	for _, t := range scaleTargets {
		i := slices.IndexFunc(rows, func(r scaleRow) bool { return r.c == t.c })
		if i < 0 {
			continue
		}
		kv, ok := rows[i].res["kube-vrrp"]
		if !ok {
			fmt.Fprintf(tw, "%s\t%s\tno figure\t-\n", t.c, t.what)
			continue
		}
		ka, haveKA := rows[i].res["keepalived"]
		fig, met := t.check(kv, ka, haveKA)
		verdict := "not met"
		if met {
			verdict = "met"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.c, t.what, fig, verdict)
	}
	tw.Flush()
	text := fmt.Sprintf("scale: one node MASTER of every VIP (one VRRPv3 group each), speakers at nice %d, window %v;\n"+
		"RSS/PSS/anon: the speaker's process tree (keepalived: parent and VRRP child), median over the window, peak: largest 500 ms sample\n"+
		"since start, VmHWM: the kernel's peak RSS of each process, summed; MASTER after: from start until every group was heard twice;\n"+
		"start CPU: utime+stime ticks from the start to the window (start-up, takeover, settling);\n"+
		"CPU: utime+stime ticks (1/%d s) over the window; late: gap between two adverts of a group minus the interval,\n"+
		"from a capture on the wire (kernel timestamps), over all groups; adverts: captured in the window / interval x groups\n%s"+
		"\nkube-vrrp targets:\n%s", *nice, *scaleWindow, clockTicks, sb.String(), tb.String())
	fmt.Print("\n" + text)
	if err := written(writeOut("scale.txt", []byte(text))); err != nil {
		fmt.Println("bench:", err)
	}
}

// treeHWM returns the sum of VmHWM (KiB) over pid's process tree; 0 if unreadable.
func treeHWM(pid int) int64 {
	tree, err := procTree(pid)
	if err != nil {
		return 0
	}
	var sum int64
	for _, p := range tree {
		if v, err := procKiB(fmt.Sprintf("/proc/%d/status", p), "VmHWM:"); err == nil {
			sum += v[0]
		}
	}
	return sum
}

// memSampler samples the memory of a process tree.
type memSampler struct {
	mu      sync.Mutex
	samples []memSample
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

type memSample struct {
	at             time.Time
	rss, pss, anon int64 // KiB
	procs          int
}

func startMemSampler(pid int, every time.Duration) *memSampler {
	m := &memSampler{done: make(chan struct{})}
	m.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if s, err := treeMemory(pid); err == nil {
				m.mu.Lock()
				m.samples = append(m.samples, s)
				m.mu.Unlock()
			}
			select {
			case <-m.done:
				return
			case <-t.C:
			}
		}
	})
	return m
}

func (m *memSampler) stop() {
	m.once.Do(func() { close(m.done) })
	m.wg.Wait()
}

// steady returns the median sample (by RSS) between from and to, and the largest RSS of all.
func (m *memSampler) steady(from, to time.Time) (rss, pss, anon, peak int64, procs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var in []memSample
	for _, s := range m.samples {
		peak = max(peak, s.rss)
		if !s.at.Before(from) && !s.at.After(to) {
			in = append(in, s)
		}
	}
	if len(in) == 0 {
		return 0, 0, 0, peak, 0
	}
	slices.SortFunc(in, func(a, b memSample) int { return cmp.Compare(a.rss, b.rss) })
	med := in[len(in)/2]
	return med.rss, med.pss, med.anon, peak, med.procs
}
