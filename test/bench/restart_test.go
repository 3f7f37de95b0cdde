package bench_test

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// BenchmarkRestart restarts the MASTER's VRRP speaker in the restart lab of test/agentlab
// (docs/design.md §4.9.1) and counts what that costs a client, for three ways of restarting:
//
//   - kube-vrrp run stopped with SIGUSR2 (a restart: it hands off), then a new process, which
//     resumes;
//   - kube-vrrp run stopped with SIGTERM (final: priority 0, the backup takes over), then a new
//     process, which preempts back: a restart before the handoff;
//   - keepalived 2.2 restarted as `systemctl restart keepalived` does: SIGTERM (priority 0,
//     the backup takes over), then a new keepalived, which preempts back.
//
// The lab, fresh for every measurement: two nodes with HAProxy on the VIP, the speaker on both
// (n1 priority 110, n2 100, VRRPv3 adverts every 100 ms, preemption on; kube-vrrp with
// --handoff-timeout 8s), each node in its own PID namespace. The client holds 50 long-lived
// connections through the VIP (a GET every 100 ms on each) and opens a new one every 10 ms
// (1 s timeout); which nodes hold the VIP is checked every 10 ms. The restart comes after
// 0.5 s of steady service, the new process right after the old one has exited; the
// measurement ends once n1 has held the VIP alone for 1 s and at least the handoff bound
// (+1 s) has passed. Each mode runs -restart.runs times, the modes in turns. It prints each
// run and the totals: VIP moves, long-lived connections reset, failed new requests, the
// longest outage of the new requests.
func BenchmarkRestart(b *testing.B) {
	privtest.Require(b)
	lab.KubeVRRPBinary(b) // build before the first measurement
	results := map[string][]restartSample{}
	for range b.N {
		for i := range *restartRuns {
			for k := range restartModes {
				m := restartModes[(i+k)%len(restartModes)]
				s, err := restartMeasure(b, m)
				if err != nil {
					b.Errorf("%s run %d: %v", m.name, i+1, err)
					continue
				}
				b.Logf("%-30s run %d: %v", m.name, i+1, s)
				results[m.name] = append(results[m.name], s)
			}
		}
	}
	restartReport(b, results)
}

var restartRuns = flag.Int("restart.runs", 5, "measurements of each mode in BenchmarkRestart (modes take turns)")

const (
	// restartBound is kube-vrrp's --handoff-timeout in the lab (its default).
	restartBound = 8 * time.Second
	// restartConns is how many long-lived connections the client holds.
	restartConns = 50
	// restartVRID and restartAdvert are the lab's VRRP instance's.
	restartVRID   = 61
	restartAdvert = 100 * time.Millisecond
)

var (
	restartVIP = netip.MustParsePrefix("198.18.0.150/24")
	restartWeb = netip.AddrPortFrom(restartVIP.Addr(), 80)
)

// restartMode is a speaker and the way it is restarted.
type restartMode struct {
	name string
	// start starts the speaker in ns at priority prio.
	start func(b *testing.B, ns *lab.PIDNamespace, prio int) (*lab.NSProc, error)
	// stop is the signal that stops it for the restart.
	stop syscall.Signal
	// masters counts the times a speaker of this kind logged becoming MASTER.
	masters func(p *lab.NSProc) int
}

// kubeVRRPMasters counts the transitions to Master a kube-vrrp process reported.
func kubeVRRPMasters(p *lab.NSProc) int {
	n := 0
	for _, t := range lab.KubeVRRPTransitions(p.Proc) {
		if t.State == "Master" {
			n++
		}
	}
	return n
}

func restartKubeVRRP(b *testing.B, ns *lab.PIDNamespace, prio int) (*lab.NSProc, error) {
	v := lab.VirtualIP{Name: "web", VRID: restartVRID, Addresses: []netip.Prefix{restartVIP}, AdvertInt: restartAdvert,
		NodePriorities: map[string]int{ns.Node.Name: prio}}
	return ns.ExecKubeVRRP(lab.KubeVRRPBinary(b), v.String(), "--handoff-timeout", restartBound.String())
}

var restartModes = []restartMode{
	{name: "kube-vrrp SIGUSR2 (handoff)", start: restartKubeVRRP, stop: syscall.SIGUSR2, masters: kubeVRRPMasters},
	{name: "kube-vrrp SIGTERM, start", start: restartKubeVRRP, stop: syscall.SIGTERM, masters: kubeVRRPMasters},
	{name: "keepalived restart", stop: syscall.SIGTERM,
		start: func(b *testing.B, ns *lab.PIDNamespace, prio int) (*lab.NSProc, error) {
			in := lab.VRRPInstance{VRID: restartVRID, Version: 3, AdvertInt: restartAdvert, VIPs: []netip.Prefix{restartVIP}}
			return ns.ExecKeepalived(lab.KeepalivedConf(ns.Node.Name, in.ForNode(ns.Node, prio)))
		},
		masters: func(p *lab.NSProc) int { return strings.Count(p.Log(), "(VI_1) Entering MASTER STATE") }},
}

// restartSample is one restart.
type restartSample struct {
	// moves counts the changes of the VIP's sole holder the 10 ms checks saw; backupMaster the
	// times n2's speaker logged becoming MASTER (a hold shorter than a check is seen there).
	moves, backupMaster int
	// reset counts the long-lived connections that broke.
	reset int
	// failed and requests count the new requests.
	failed, requests int
	// outage is the longest run of failed new requests, from the last success before it to
	// the first after it.
	outage time.Duration
	// backupHeld is how long n2 held the VIP; exited is how long the old process took to exit.
	backupHeld, exited time.Duration
	// sendGap is the client's longest pause between two new requests (a stall of its own).
	sendGap time.Duration
}

func (s restartSample) String() string {
	return fmt.Sprintf("%d moves (n2 MASTER %d times), %d/%d long-lived connections reset, %d/%d new requests failed, longest outage %v, n2 held the VIP %v, old process exited after %v, client max send gap %v",
		s.moves, s.backupMaster, s.reset, restartConns, s.failed, s.requests, s.outage.Round(time.Millisecond), s.backupHeld.Round(time.Millisecond),
		s.exited.Round(time.Millisecond), s.sendGap.Round(time.Millisecond))
}

// restartMeasure builds the lab, restarts n1's speaker the mode's way and measures.
func restartMeasure(b *testing.B, m restartMode) (restartSample, error) {
	l, closeLab, err := lab.Open(lab.Options{Nodes: 2, Nice: *nice})
	if err != nil {
		return restartSample{}, err
	}
	var spaces []*lab.PIDNamespace
	defer func() {
		// The processes in the PID namespaces die with them; then the lab goes.
		for _, ns := range spaces {
			ns.Close()
		}
		if err := closeLab(); err != nil {
			b.Errorf("closing lab: %v", err)
		}
	}()
	speakers := map[*lab.Node]*lab.NSProc{}
	for i, n := range l.Nodes() {
		ns, err := n.NewPIDNamespace()
		if err != nil {
			return restartSample{}, err
		}
		spaces = append(spaces, ns)
		if _, err := ns.ExecHAProxy(restartVIP.Addr()); err != nil {
			return restartSample{}, err
		}
		if speakers[n], err = m.start(b, ns, []int{prioMaster, prioBackup}[i]); err != nil {
			return restartSample{}, err
		}
	}
	n1, n2 := l.Node(1), l.Node(2)
	if err := lab.WaitSoleHolder(l.Nodes(), restartVIP, n1, 300*time.Millisecond, 30*time.Second); err != nil {
		return restartSample{}, fmt.Errorf("before the restart: %w\n%s", err, speakers[n1].Tail(10))
	}

	watch := lab.WatchHolders(l.Nodes(), restartVIP, 10*time.Millisecond)
	defer watch.Stop()
	conns, err := l.StartLongConns(restartWeb, lab.LongConnsOptions{Conns: restartConns})
	if err != nil {
		return restartSample{}, err
	}
	defer conns.Stop()
	load := l.StartHTTPLoad(restartWeb, lab.HTTPLoadOptions{Interval: 10 * time.Millisecond, Timeout: time.Second})
	defer load.Stop()
	if _, err := load.WaitServed(n1.Name, 10*time.Second); err != nil {
		return restartSample{}, err
	}
	time.Sleep(500 * time.Millisecond)

	old := speakers[n1]
	mastersBefore := m.masters(speakers[n2])
	signalled := time.Now()
	if err := old.Signal(m.stop); err != nil {
		return restartSample{}, err
	}
	if err := old.Wait(10 * time.Second); err != nil {
		return restartSample{}, fmt.Errorf("n1's speaker after %v: %v, want exit 0\n%s", m.stop, err, old.Tail(10))
	}
	exited := time.Since(signalled)
	p, err := m.start(b, spaces[0], prioMaster)
	if err != nil {
		return restartSample{}, err
	}
	// n1 alone for 1 s, and the bound (+1 s) past: a backup that takes over at the end of a
	// handoff window is seen.
	end := signalled.Add(restartBound + time.Second)
	for {
		r := watch.Record()
		last := r.Changes[len(r.Changes)-1]
		now := time.Now()
		if now.After(end) && slices.Equal(last.Holders, []string{n1.Name}) && now.Sub(last.At) >= time.Second {
			break
		}
		if now.Sub(signalled) > 30*time.Second {
			return restartSample{}, fmt.Errorf("n1 not the only holder of %s for 1 s within 30 s of the restart (%s)\n%s",
				restartVIP.Addr(), r.Timeline(signalled), p.Tail(10))
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := load.Stop()
	cr := conns.Stop()
	rec := watch.Stop()
	if p.Exited() {
		return restartSample{}, errors.New("n1's new speaker exited:\n" + p.Tail(10))
	}
	outage, _ := res.Outage(signalled)
	b.Logf("%s: holders %s; new connections: %s", m.name, rec.Timeline(signalled), res)
	if len(cr.Broken) > 0 {
		b.Logf("%s: first broken long-lived connection: %v", m.name, cr.Broken[0])
	}
	return restartSample{moves: rec.Moves(), backupMaster: m.masters(speakers[n2]) - mastersBefore, reset: len(cr.Broken), failed: res.Failed(), requests: len(res.Requests),
		outage: outage, backupHeld: rec.Held(n2.Name), exited: exited, sendGap: res.MaxSendGap()}, nil
}

// restartReport prints every run and each mode's totals, and reports the totals as metrics.
func restartReport(b *testing.B, results map[string][]restartSample) {
	var sb strings.Builder
	w := newTable(&sb)
	fmt.Fprintf(w, "mode\trun\tVIP moves\tbackup MASTER\tconnections reset (of %d)\tnew requests failed\tlongest outage ms\tbackup held VIP ms\tclient\n", restartConns)
	type total struct {
		runs, moves, masters, reset, failed, requests int
		outage, gap                                   time.Duration
	}
	totals := map[string]*total{}
	for _, m := range restartModes {
		t := &total{}
		totals[m.name] = t
		for i, s := range results[m.name] {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d/%d\t%.0f\t%.0f\t%s\n", m.name, i+1, s.moves, s.backupMaster, s.reset, s.failed, s.requests,
				ms(s.outage), ms(s.backupHeld), stallCell(s.sendGap, 50*time.Millisecond))
			t.runs++
			t.moves += s.moves
			t.masters += s.backupMaster
			t.reset += s.reset
			t.failed += s.failed
			t.requests += s.requests
			t.outage = max(t.outage, s.outage)
			t.gap = max(t.gap, s.sendGap)
		}
	}
	w.Flush()
	var tb strings.Builder
	w = newTable(&tb)
	fmt.Fprintf(w, "mode\truns\tVIP moves\tbackup MASTER\tconnections reset\tnew requests failed\tlongest outage ms (max)\tclient\n")
	for _, m := range restartModes {
		t := totals[m.name]
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d/%d\t%d/%d\t%.0f\t%s\n", m.name, t.runs, t.moves, t.masters, t.reset, t.runs*restartConns,
			t.failed, t.requests, ms(t.outage), stallCell(t.gap, 50*time.Millisecond))
		if t.runs > 0 {
			metric := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(m.name)
			b.ReportMetric(float64(t.moves)/float64(t.runs), metric+"-moves/run")
			b.ReportMetric(float64(t.reset)/float64(t.runs), metric+"-resets/run")
			b.ReportMetric(float64(t.failed)/float64(t.runs), metric+"-failed/run")
		}
	}
	w.Flush()
	b.ReportMetric(0, "ns/op") // the labs' time, not a figure of interest
	text := fmt.Sprintf("\nrestart of the MASTER's speaker (n1 110 / n2 100, VRRPv3 100 ms, preempt on, kube-vrrp --handoff-timeout %v, speakers at nice %d):\n"+
		"%d long-lived connections through the VIP (GET every 100 ms each), a new connection every 10 ms (1 s timeout);\n"+
		"VIP moves: changes of its sole holder, checked every 10 ms; backup MASTER: n2's speaker logged becoming MASTER after the restart;\n"+
		"client \"stalled\": two new requests were sent more than 50 ms apart\n%s\ntotals\n%s",
		restartBound, *nice, restartConns, sb.String(), tb.String())
	fmt.Print(text)
	if err := written(writeOut("restart.txt", []byte(text))); err != nil {
		b.Error(err)
	}
}
