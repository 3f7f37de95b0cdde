package controllers

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// A probe edit starts the probes again, and each reports its first result: a result that
// repeats the last one recorded is not news, whichever runner it comes from.
func TestEventReporterProbeEditIsNotNews(t *testing.T) {
	rec := &fakeRecorder{}
	r := newReporter(t, rec, &bytes.Buffer{})
	probe := func(healthy bool) vrrp.Event {
		return vrrp.Event{Kind: vrrp.EventProbe, Instance: "web", Probe: "haproxy", Healthy: healthy, Message: "m"}
	}
	edited := vrrp.Event{Kind: vrrp.EventApplied, Instance: "web", Reason: "Reconfigured"}
	for _, e := range []vrrp.Event{
		{Kind: vrrp.EventApplied, Instance: "web", Reason: "Applied"},
		probe(true),
		edited, probe(true), // still healthy
		probe(false),
		edited, probe(false), // still failing
		probe(true),
	} {
		r.record(t.Context(), e, time.Now())
	}
	want := []recordedEvent{
		{"Warning", "ProbeFailed", "node lb1: probe haproxy failing: m"},
		{"Normal", "ProbeRecovered", "node lb1: probe haproxy healthy: m"},
	}
	if diff := cmp.Diff(want, rec.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// flap is the transition number i of the VirtualIP web, alternating Fault and Backup.
func flap(i int) vrrp.Event {
	e := vrrp.Event{Kind: vrrp.EventTransition, Instance: "web", From: vrrp.Backup, State: vrrp.Fault,
		Reason: vrrp.ReasonInterfaceDown, Message: fmt.Sprint(i)}
	if i%2 == 1 {
		e.From, e.State, e.Reason = vrrp.Fault, vrrp.Backup, vrrp.ReasonInterfaceUp
	}
	return e
}

// transitionsCovered is how many transitions rec's Events account for: one per Became* Event,
// and the count of each Flapping one.
func transitionsCovered(t *testing.T, events []recordedEvent) int {
	t.Helper()
	n := 0
	for _, e := range events {
		if e.Reason == ReasonFlapping {
			var held int
			if _, err := fmt.Sscanf(e.Note, "node lb1: %d transitions", &held); err != nil {
				t.Fatalf("Flapping note %q: %v", e.Note, err)
			}
			n += held
			continue
		}
		if strings.HasPrefix(e.Reason, "Became") {
			n++
		}
	}
	return n
}

// Transitions held back by the flap limit are counted once each, whether the Flapping Event
// that counts them is recorded by the periodic flush or by the next transition, which finds
// the window with room again.
func TestEventReporterFlappingCountsEveryTransition(t *testing.T) {
	rec := &fakeRecorder{}
	r := newReporter(t, rec, &bytes.Buffer{})
	t0 := time.Now()
	const first, held = transitionEventBurst + 5, 1
	for i := range first {
		r.record(t.Context(), flap(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	// A minute later the window has room: this transition comes before the flush.
	last := flap(first)
	r.record(t.Context(), last, t0.Add(transitionEventWindow+time.Second))
	if got := transitionsCovered(t, rec.events); got != first+held {
		t.Errorf("the Events account for %d transitions, want %d: %v", got, first+held, rec.events)
	}
	if n := rec.count(ReasonFlapping); n != 1 {
		t.Fatalf("%d Flapping Events, want 1: %v", n, rec.events)
	}
	if note := rec.events[len(rec.events)-1].Note; !strings.HasSuffix(note, ": "+last.Reason+": "+last.Message) {
		t.Errorf("the Flapping Event %q does not end with the last transition", note)
	}
}

// lockedRecorder is a fakeRecorder safe for the reporter's goroutine and the test's.
type lockedRecorder struct {
	mu sync.Mutex
	fakeRecorder
}

func (l *lockedRecorder) Eventf(o runtime.Object, rel runtime.Object, typ, reason, action, note string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fakeRecorder.Eventf(o, rel, typ, reason, action, note, args...)
}

func (l *lockedRecorder) recorded() []recordedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// chanStream is a Stream the test feeds.
type chanStream struct {
	mu    sync.Mutex
	buf   []vrrp.Event
	ready chan struct{}
}

func (s *chanStream) Ready() <-chan struct{} { return s.ready }

func (s *chanStream) Take() []vrrp.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.buf
	s.buf = nil
	return out
}

func (s *chanStream) send(evs ...vrrp.Event) {
	s.mu.Lock()
	s.buf = append(s.buf, evs...)
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// The node manager restarts whenever the API server is away, and the reporter outlives it
// (For): the transitions the flap limit held back are counted by the next manager's Flapping
// Event, and a probe that failed under one manager recovers under the next.
func TestEventReporterOutlivesItsManager(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stream := &chanStream{ready: make(chan struct{}, 1)}
		r := newReporter(t, &fakeRecorder{}, &bytes.Buffer{})
		r.Stream = stream
		reader := r.Reader
		r.Reader, r.Recorder, r.probeSeen, r.flaps = nil, nil, nil, nil

		// The first manager: ten transitions recorded, five held back, a probe fails.
		before := &lockedRecorder{}
		ctx, stop := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.For(reader, before).Start(ctx) }()
		const n = transitionEventBurst + 5
		for i := range n {
			stream.send(flap(i))
		}
		stream.send(vrrp.Event{Kind: vrrp.EventProbe, Instance: "web", Probe: "haproxy", Message: "down"})
		synctest.Wait()
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		// The next manager, once the API server is back.
		after := &lockedRecorder{}
		ctx, stop = context.WithCancel(t.Context())
		defer stop()
		go func() { _ = r.For(reader, after).Start(ctx) }()
		stream.send(vrrp.Event{Kind: vrrp.EventProbe, Instance: "web", Probe: "haproxy", Healthy: true, Message: "up"})
		time.Sleep(transitionEventWindow + 2*time.Second)
		synctest.Wait()

		if got := transitionsCovered(t, before.recorded()) + transitionsCovered(t, after.recorded()); got != n {
			t.Errorf("the Events of both managers account for %d transitions, want %d:\n%v\n%v", got, n, before.recorded(), after.recorded())
		}
		if !slices.ContainsFunc(after.recorded(), func(e recordedEvent) bool { return e.Reason == ReasonProbeRecovered }) {
			t.Errorf("the probe's recovery under the next manager is not an Event: %v", after.recorded())
		}
	})
}
