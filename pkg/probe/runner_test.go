package probe

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeChecker returns scripted results: steps[i] for the i-th check, then the last step, or
// the value of ok when steps is empty. ev, if set, makes it an event source.
type fakeChecker struct {
	mu    sync.Mutex
	steps []bool
	ok    bool
	calls int
	ev    chan string
}

func (f *fakeChecker) check(context.Context) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.ok
	if len(f.steps) > 0 {
		r = f.steps[min(f.calls, len(f.steps)-1)]
	}
	f.calls++
	return r, fmt.Sprintf("check %d ok=%t", f.calls, r)
}

func (f *fakeChecker) set(ok bool) {
	f.mu.Lock()
	f.ok = ok
	f.mu.Unlock()
}

func (f *fakeChecker) nCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type fakeEvents struct{ *fakeChecker }

func (f fakeEvents) events() <-chan string { return f.ev }

// step is a transition seen in a synctest bubble: at which interval tick, to which health.
type step struct {
	Tick    int
	Healthy bool
}

// steps parses "PFFP" (pass, fail) into check results.
func steps(s string) []bool {
	out := make([]bool, len(s))
	for i, c := range s {
		out[i] = c == 'P'
	}
	return out
}

// runTicks runs one probe with checker c in a synctest bubble for n intervals of 1s and
// returns its transitions by tick.
func runTicks(t *testing.T, spec Spec, c checker, n int) []step {
	t.Helper()
	var got []step
	synctest.Test(t, func(t *testing.T) {
		spec.Interval = time.Second
		r := newRunner([]*probe{{spec: spec, check: c}}, nil)
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		read := make(chan struct{})
		go func() { // a reader that keeps up, as Results asks
			defer close(read)
			for res := range r.Results() {
				d := res.At.Sub(start)
				if d%time.Second != 0 {
					t.Errorf("result at %v, not on a check tick", d)
				}
				got = append(got, step{int(d / time.Second), res.Healthy})
			}
		}()
		time.Sleep(time.Duration(n-1)*time.Second + time.Second/2)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		<-read
	})
	return got
}

func TestRunnerHysteresis(t *testing.T) {
	tests := []struct {
		name       string
		fall, rise int
		checks     string
		want       []step
	}{
		{"first pass decides healthy at once, even with rise 3", 1, 3, "P", []step{{0, true}}},
		{"first failure decides unhealthy at once, even with fall 3", 3, 1, "F", []step{{0, false}}},
		{"fall 3: fail, fail, pass changes nothing", 3, 1, "PFFPFFPFFP", []step{{0, true}}},
		{"fall 3: third failure in a row", 3, 1, "PFFF", []step{{0, true}, {3, false}}},
		{"fall 1: first failure", 1, 1, "PPF", []step{{0, true}, {2, false}}},
		{"rise 2: pass, fail, pass, pass", 1, 2, "FPFPP", []step{{0, false}, {4, true}}},
		{"fall 2 rise 2 round trip", 2, 2, "PFFPPF", []step{{0, true}, {2, false}, {4, true}}},
		{"alternating never moves with fall 2 rise 2", 2, 2, "PFPFPFPFPFPFPFPF", []step{{0, true}}},
		{"alternating moves every check with fall 1 rise 1", 1, 1, "PFPF", []step{{0, true}, {1, false}, {2, true}, {3, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := Spec{Name: "p", Kind: KindFile, Path: "/x", Fall: tt.fall, Rise: tt.rise}
			got := runTicks(t, spec, &fakeChecker{steps: steps(tt.checks)}, len(tt.checks))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("transitions for %s (-want +got):\n%s", tt.checks, diff)
			}
		})
	}
}

// A flapping target cannot move the health faster than rise/fall allow: after a transition to
// unhealthy the next one comes at least rise checks later, and vice versa.
func TestRunnerFlappingBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		fall, rise := 1+rng.IntN(4), 1+rng.IntN(4)
		var b strings.Builder
		for range 60 {
			if rng.IntN(3) == 0 { // mostly passing, failing in bursts
				b.WriteByte('F')
			} else {
				b.WriteByte('P')
			}
		}
		checks := b.String()
		got := runTicks(t, Spec{Name: "p", Kind: KindFile, Path: "/x", Fall: fall, Rise: rise}, &fakeChecker{steps: steps(checks)}, len(checks))
		for j := 1; j < len(got); j++ {
			need := fall
			if got[j].Healthy {
				need = rise
			}
			if gap := got[j].Tick - got[j-1].Tick; gap < need {
				t.Errorf("case %d fall %d rise %d checks %s: transition to healthy=%t %d checks after the previous, want at least %d",
					i, fall, rise, checks, got[j].Healthy, gap, need)
			}
		}
		// Cross-check with the pure counter.
		h := hysteresis{fall: fall, rise: rise}
		var want []step
		for k, ok := range steps(checks) {
			if h.observe(ok) {
				want = append(want, step{k, ok})
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("case %d: Runner and hysteresis disagree (-hysteresis +runner):\n%s", i, diff)
		}
	}
}

// An event (a watched process exited) checks at once and back to back until fall is reached:
// the probe turns unhealthy at the event's instant, not intervals later.
func TestRunnerEventChecksAtOnce(t *testing.T) {
	for _, fall := range []int{1, 3} {
		t.Run(fmt.Sprintf("fall %d", fall), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fc := &fakeChecker{ok: true, ev: make(chan string, 1)}
				spec := Spec{Name: "p", Kind: KindProcess, Process: "x", Interval: time.Hour, Fall: fall}
				r := newRunner([]*probe{{spec: spec, check: fakeEvents{fc}}}, nil)
				go r.Run(t.Context())
				start := time.Now()
				if res := <-r.Results(); !res.Healthy || !res.At.Equal(start) {
					t.Fatalf("first result %+v, want healthy at once", res)
				}
				time.Sleep(time.Second)
				fc.set(false)
				calls := fc.nCalls()
				fc.ev <- "exited"
				res := <-r.Results()
				if res.Healthy || res.At.Sub(start) != time.Second {
					t.Errorf("result %+v at %v, want unhealthy at 1s", res, res.At.Sub(start))
				}
				if n := fc.nCalls() - calls; n != fall {
					t.Errorf("%d checks after the event, want fall = %d", n, fall)
				}
			})
		})
	}
}

// An event whose check passes (another instance runs, a reload started the new process first)
// changes nothing.
func TestRunnerEventCheckPasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeChecker{ok: true, ev: make(chan string, 1)}
		spec := Spec{Name: "p", Kind: KindProcess, Process: "x", Interval: time.Hour, Fall: 3}
		r := newRunner([]*probe{{spec: spec, check: fakeEvents{fc}}}, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		<-r.Results()
		fc.ev <- "exited"
		synctest.Wait()
		if n := fc.nCalls(); n != 2 {
			t.Errorf("%d checks, want 2 (the first and one for the event)", n)
		}
		cancel()
		<-done
		for res := range r.Results() {
			t.Errorf("unexpected result %+v", res)
		}
	})
}

func TestRunnerHealthAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := &fakeChecker{ok: true}, &fakeChecker{ok: false}
		r := newRunner([]*probe{
			{spec: Spec{Name: "a", Kind: KindFile, Path: "/a"}, check: a},
			{spec: Spec{Name: "b", Kind: KindFile, Path: "/b"}, check: b},
		}, nil)
		if diff := cmp.Diff(map[string]bool{}, r.Health()); diff != "" {
			t.Errorf("Health() before Run (-want +got):\n%s", diff)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		<-r.Results()
		<-r.Results()
		if diff := cmp.Diff(map[string]bool{"a": true, "b": false}, r.Health()); diff != "" {
			t.Errorf("Health() (-want +got):\n%s", diff)
		}
		if err := r.Run(ctx); err == nil {
			t.Error("second Run() = nil, want an error")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
		if _, open := <-r.Results(); open {
			t.Error("Results() still open after Run returned")
		}
	})
}

// A check still in flight when the Runner stops reports nothing.
func TestRunnerStopDuringCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRunner([]*probe{{spec: Spec{Name: "a", Kind: KindFile, Path: "/a", Interval: time.Hour}, check: blockingChecker{}}}, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		synctest.Wait()
		cancel()
		<-done
		for res := range r.Results() {
			t.Errorf("unexpected result %+v", res)
		}
	})
}

type blockingChecker struct{}

func (blockingChecker) check(ctx context.Context) (bool, string) {
	<-ctx.Done()
	return false, "cut short"
}

// Each check gets the probe's timeout.
func TestRunnerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := Spec{Name: "a", Kind: KindFile, Path: "/a", Interval: time.Hour, Timeout: 300 * time.Millisecond}
		r := newRunner([]*probe{{spec: spec, check: blockingChecker{}}}, nil)
		go r.Run(t.Context())
		start := time.Now()
		res := <-r.Results()
		if res.Healthy || res.Reason != "cut short" || res.At.Sub(start) != 300*time.Millisecond {
			t.Errorf("result %+v after %v, want a failure after the 300ms timeout", res, res.At.Sub(start))
		}
	})
}

func TestHysteresis(t *testing.T) {
	h := hysteresis{fall: 2, rise: 3}
	var got []string
	for _, ok := range steps("FPPFPPPFPFF") {
		changed := h.observe(ok)
		got = append(got, fmt.Sprintf("%t:%v:%t", ok, h.state, changed))
	}
	want := []string{
		"false:2:true", // unknown -> unhealthy at once
		"true:2:false", "true:2:false", "false:2:false",
		"true:2:false", "true:2:false", "true:1:true", // three passes in a row
		"false:1:false", "true:1:false", "false:1:false", "false:2:true", // two failures in a row
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
