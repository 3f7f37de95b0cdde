package probes_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

const (
	pass = http.StatusOK
	fail = http.StatusServiceUnavailable
)

// TestHysteresis: an http probe with fall 3, rise 2 and weight -20 on n1 (110 -> 90 < n2 100)
// checks a health endpoint inside n1 whose answers the test scripts, so the probe sees exactly
// the sequence of results the test wants, whatever the timing. (The process probe cannot show
// this: an exit is definitive for it, and it fails at once whatever fall is.)
//
//   - fail, fail, pass changes nothing: no health transition, the VIP stays on n1;
//   - a target flapping fail/pass (and fail, fail, pass) changes nothing either;
//   - three failures in a row make the probe unhealthy only at the third, and n2 preempts;
//   - flapping pass/fail while unhealthy does not bring it back: rise 2 wants two passes in
//     a row, then n1 preempts back.
//
// The VIP moves exactly twice in all.
func TestHysteresis(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	n1, n2 := l.Node(1), l.Node(2)
	nodes := l.Nodes()
	health := netip.MustParseAddrPort("127.0.0.1:8404")
	hs := map[string]*lab.HealthServer{}
	for _, n := range nodes {
		s, err := n.StartHealthServer(health)
		if err != nil {
			t.Fatal(err)
		}
		hs[n.Name] = s
	}
	target := hs[n1.Name]
	spec := lab.VirtualIP{
		VRID: 51, Version: 3, AdvertInt: 100 * time.Millisecond, Addresses: []netip.Prefix{vip},
		NodePriorities: map[string]int{"n1": 110, "n2": 100},
		Extra: probes(probeSpec{name: "backend", check: fmt.Sprintf("http: {url: 'http://%s/healthz'}", health),
			interval: 200 * time.Millisecond, fall: 3, rise: 2, weight: -20}),
	}
	p1 := n1.StartKubeVRRP(t, spec.String())
	if err := lab.WaitKubeVRRPState(p1, vipName, "Master", settle); err != nil {
		t.Fatal(err)
	}
	p2 := n2.StartKubeVRRP(t, spec.String())
	if err := lab.WaitKubeVRRPState(p2, vipName, "Backup", settle); err != nil {
		t.Fatal(err)
	}
	if err := waitSole(nodes, n1, 300*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	if _, err := waitProbe(p1, "backend", true, time.Time{}, settle); err != nil {
		t.Fatal(err)
	}
	w := watchHolders(nodes)
	defer w.stop()

	// run scripts the target's next answers, waits until the probe has seen them and two
	// more (default) answers, and returns the index of the first scripted answer.
	run := func(what string, codes ...int) int {
		t.Helper()
		first := target.Script(codes...)
		if err := target.WaitServed(first+len(codes)+2, settle+time.Duration(len(codes))*time.Second); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return first
	}
	healthChanges := func(since time.Time) []probeRecord {
		var out []probeRecord
		for _, r := range probeRecords(p1) {
			if r.Time.After(since) {
				out = append(out, r)
			}
		}
		return out
	}

	start := time.Now()
	run("fail, fail, pass", fail, fail, pass)
	if ch := healthChanges(start); len(ch) > 0 {
		t.Fatalf("fail, fail, pass with fall 3 changed the probe's health: %+v", ch)
	}
	t.Logf("fail, fail, pass: no health transition, VIP on %s", names(lab.Holders(nodes, vip)))

	var flap []int
	for range 8 {
		flap = append(flap, fail, pass)
	}
	for range 3 {
		flap = append(flap, fail, fail, pass)
	}
	run("flapping", flap...)
	if ch := healthChanges(start); len(ch) > 0 {
		t.Fatalf("a target flapping %v changed the probe's health: %+v", statuses(flap), ch)
	}
	if moves := w.moves(); len(moves) > 0 {
		t.Fatalf("the VIP moved while n1's probe stayed healthy: %v", moves)
	}
	t.Logf("flapping %d answers (%s): no health transition, VIP on %s", len(flap), statuses(flap), names(lab.Holders(nodes, vip)))

	// Three failures: unhealthy at the third; then pass/fail flapping keeps it unhealthy
	// (rise 2) until the default passes come.
	down := []int{fail, fail, fail}
	for range 5 {
		down = append(down, pass, fail)
	}
	phase := time.Now()
	first := run("fail x3 then flapping", down...)
	if _, err := waitProbe(p1, "backend", true, phase, settle); err != nil {
		t.Fatal(err)
	}
	if err := waitSole(nodes, n1, 300*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	served := target.Served()
	ch := healthChanges(phase)
	if len(ch) != 2 || ch[0].Healthy || !ch[1].Healthy {
		t.Fatalf("health transitions for %s then passes: %+v, want exactly unhealthy then healthy", statuses(down), ch)
	}
	thirdFail := served[first+2].At
	lastFlap := served[first+len(down)-1].At
	secondPass := served[first+len(down)+1].At
	if ch[0].Time.Before(thirdFail) {
		t.Errorf("unhealthy at %s, before the third failure was answered (%s)", ch[0].Time.Format("15:04:05.000"), thirdFail.Format("15:04:05.000"))
	}
	if ch[1].Time.Before(secondPass) {
		t.Errorf("healthy again at %s, before the second pass in a row was answered (%s): flapping while unhealthy ended at %s",
			ch[1].Time.Format("15:04:05.000"), secondPass.Format("15:04:05.000"), lastFlap.Format("15:04:05.000"))
	}
	took := transitionsAfter(p2, phase, "Master")
	if len(took) == 0 || took[0].Reason != "Preempting" || at(took[0]).Before(thirdFail) {
		t.Errorf("n2's transitions to Master: %+v, want Preempting after the third failure (%s)", took, thirdFail.Format("15:04:05.000"))
	}
	back := transitionsAfter(p1, phase, "Master")
	if len(back) == 0 || back[0].Reason != "Preempting" || at(back[0]).Before(secondPass) {
		t.Errorf("n1's transitions to Master: %+v, want Preempting after the second pass (%s)", back, secondPass.Format("15:04:05.000"))
	}
	moves := w.moves()
	if len(moves) != 2 || moves[0].to != n2.Name || moves[1].to != n1.Name {
		t.Errorf("the VIP moved %v, want exactly n1 -> n2 -> n1", moves)
	}
	if len(moves) == 2 && len(took) > 0 {
		t.Logf("%s: unhealthy %v after the third failure, n2 holds the VIP %v after it; "+
			"healthy %v after the second pass in a row, n1 holds it %v after that",
			statuses(down), ch[0].Time.Sub(thirdFail).Round(time.Millisecond), moves[0].at.Sub(thirdFail).Round(time.Millisecond),
			ch[1].Time.Sub(secondPass).Round(time.Millisecond), moves[1].at.Sub(secondPass).Round(time.Millisecond))
	}
}

func statuses(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = "P"
		if c != pass {
			s[i] = "F"
		}
	}
	return strings.Join(s, "")
}

func names(ns []*lab.Node) string {
	if len(ns) == 0 {
		return "none"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	return strings.Join(s, ",")
}

// holderWatch samples who holds the VIP every 5 ms.
type holderWatch struct {
	stopc chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	sole []move // changes of the sole holder (samples with none or two are skipped)
}

type move struct {
	at       time.Time
	from, to string
}

func (m move) String() string {
	return fmt.Sprintf("%s %s->%s", m.at.Format("15:04:05.000"), m.from, m.to)
}

func watchHolders(nodes []*lab.Node) *holderWatch {
	w := &holderWatch{stopc: make(chan struct{})}
	cur := names(lab.Holders(nodes, vip))
	w.wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
			h := lab.Holders(nodes, vip)
			if len(h) != 1 || h[0].Name == cur {
				continue
			}
			w.mu.Lock()
			w.sole = append(w.sole, move{at: time.Now(), from: cur, to: h[0].Name})
			w.mu.Unlock()
			cur = h[0].Name
		}
	})
	return w
}

func (w *holderWatch) moves() []move {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]move(nil), w.sole...)
}

func (w *holderWatch) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	w.wg.Wait()
}
