package controllers

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/flaphost"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

type recordedEvent struct{ Type, Reason, Note string }

type fakeRecorder struct{ events []recordedEvent }

func (f *fakeRecorder) Eventf(_ runtime.Object, _ runtime.Object, typ, reason, _, note string, args ...any) {
	f.events = append(f.events, recordedEvent{typ, reason, fmt.Sprintf(note, args...)})
}

func (f *fakeRecorder) count(reason string) int {
	n := 0
	for _, e := range f.events {
		if e.Reason == reason {
			n++
		}
	}
	return n
}

// newReporter is an EventReporter for the VirtualIP "web" on node lb1, recording into rec and
// logging into log.
func newReporter(t *testing.T, rec *fakeRecorder, log *bytes.Buffer) *EventReporter {
	vip := &v1alpha1.VirtualIP{}
	vip.Name = "web"
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(vip).Build()
	return &EventReporter{Reader: cl, Recorder: rec, NodeName: "lb1", Log: slog.New(slog.NewTextHandler(log, nil)),
		probeSeen: map[string]bool{}, flaps: map[string]*flapWindow{}}
}

// Probe results become Events: a failure (Warning) and a recovery (Normal), once each; the
// first healthy result after the instance is applied is not news.
func TestEventReporterProbes(t *testing.T) {
	rec := &fakeRecorder{}
	r := newReporter(t, rec, &bytes.Buffer{})
	probe := func(healthy bool) vrrp.Event {
		return vrrp.Event{Kind: vrrp.EventProbe, Instance: "web", Probe: "haproxy", Healthy: healthy, Message: `no process named "haproxy"`}
	}
	now := time.Now()
	for _, e := range []vrrp.Event{
		{Kind: vrrp.EventApplied, Instance: "web", Reason: "Applied"},
		probe(true), probe(false), probe(true),
		// Applied again (a new instance): its first healthy result is not news either.
		{Kind: vrrp.EventApplied, Instance: "web", Reason: "Applied"},
		probe(true),
		{Kind: vrrp.EventProbe, Instance: "gone", Probe: "x"}, // no such VirtualIP: nothing
	} {
		r.record(t.Context(), e, now)
	}
	want := []recordedEvent{
		{"Warning", "ProbeFailed", `node lb1: probe haproxy failing: no process named "haproxy"`},
		{"Normal", "ProbeRecovered", `node lb1: probe haproxy healthy: no process named "haproxy"`},
	}
	if diff := cmp.Diff(want, rec.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// 1000 flaps in a burst: the metric counts every transition; a reporter that keeps up records
// the first ten as Became* Events and the rest in one Flapping Event that counts them, and one
// that read too slowly records what it got and logs how many events it lost; nothing is
// unaccounted for.
func TestFlapsReachMetricsAndEvents(t *testing.T) {
	h := flaphost.New()
	a := agent.New(h, nil, agent.Options{})
	keeping := a.Subscribe("events", 1<<12)
	slow := a.Subscribe("slow", 8)
	cfg := vrrp.Config{Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: 100,
		Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.100/24")}, Primary: netip.MustParseAddr("198.18.0.11"),
		Preempt: true, Accept: true}
	if err := a.Apply("web", cfg); err != nil {
		t.Fatal(err)
	}
	const flaps = 1000
	if err := flaphost.Flap(t.Context(), a, h, "web", flaps); err != nil {
		t.Fatal(err)
	}
	// Started, 1000 flaps, Shutdown.
	const transitions = flaps + 2

	var total float64
	for _, v := range scrape(t, &Collector{Agent: a, Node: "lb1"})["kube_vrrp_transitions_total"].series {
		total += v
	}
	if total != transitions {
		t.Errorf("kube_vrrp_transitions_total sums to %v, want %d", total, transitions)
	}

	rec := &fakeRecorder{}
	r := newReporter(t, rec, &bytes.Buffer{})
	now := time.Now()
	evs := keeping.Take()
	for _, e := range evs {
		r.record(t.Context(), e, now)
	}
	r.flush(t.Context(), now.Add(30*time.Second)) // the window is still full
	if n := rec.count(ReasonFlapping); n != 0 {
		t.Errorf("%d Flapping Events before the window has room", n)
	}
	r.flush(t.Context(), now.Add(transitionEventWindow))
	became := 0
	for _, s := range []string{"Initialize", "Backup", "Master", "Fault"} {
		became += rec.count(becameReason(s))
	}
	if became != transitionEventBurst || rec.count(ReasonFlapping) != 1 {
		t.Fatalf("%d Became* and %d Flapping Events, want %d and 1: %v", became, rec.count(ReasonFlapping), transitionEventBurst, rec.events)
	}
	flapping := rec.events[len(rec.events)-1]
	wantNote := fmt.Sprintf("node lb1: %d transitions in 1m0s not recorded one by one; the last: Backup -> Initialize: Shutdown", transitions-transitionEventBurst)
	if flapping.Note != wantNote {
		t.Errorf("Flapping note %q, want %q", flapping.Note, wantNote)
	}

	// The slow subscriber: 8 events kept, the rest counted, and the count logged.
	var log bytes.Buffer
	rec = &fakeRecorder{}
	r = newReporter(t, rec, &log)
	got := slow.Take()
	if got[0].Kind != vrrp.EventDropped || got[0].Count+uint64(len(got)-1) != uint64(len(evs)) {
		t.Fatalf("slow subscriber: first %+v and %d more, want a Dropped marker closing the count of %d", got[0], len(got)-1, len(evs))
	}
	kept := 0
	for _, e := range got {
		if e.Kind == vrrp.EventTransition {
			kept++
		}
		r.record(t.Context(), e, now)
	}
	if became := rec.count(becameReason("Fault")) + rec.count(becameReason("Backup")) + rec.count(becameReason("Initialize")); became != kept {
		t.Errorf("%d Became* Events for the %d transitions the slow subscriber kept", became, kept)
	}
	if want := fmt.Sprintf("count=%d", got[0].Count); !strings.Contains(log.String(), want) {
		t.Errorf("the lost events are not logged with %s: %s", want, log.String())
	}
	if lost := a.LostEvents()["slow"]; lost != got[0].Count {
		t.Errorf("LostEvents[slow] = %d, want %d", lost, got[0].Count)
	}
}

// Fault is a Warning, except while an instance waits for its probes' first check (ProbePending):
// every start of an agent with a weight-0 probe passes through it.
func TestEventReporterPendingIsNormal(t *testing.T) {
	rec := &fakeRecorder{}
	r := newReporter(t, rec, &bytes.Buffer{})
	now := time.Now()
	for _, e := range []vrrp.Event{
		{Kind: vrrp.EventTransition, Instance: "web", From: vrrp.Initialize, State: vrrp.Fault, Reason: vrrp.ReasonProbePending,
			Message: "probe haproxy not checked yet"},
		{Kind: vrrp.EventTransition, Instance: "web", From: vrrp.Fault, State: vrrp.Backup, Reason: vrrp.ReasonProbeRecovered},
		{Kind: vrrp.EventTransition, Instance: "web", From: vrrp.Backup, State: vrrp.Fault, Reason: vrrp.ReasonProbeFailed,
			Message: "probe haproxy failing"},
	} {
		r.record(t.Context(), e, now)
	}
	want := []recordedEvent{
		{"Normal", "BecameFault", "node lb1: Initialize -> Fault: ProbePending: probe haproxy not checked yet"},
		{"Normal", "BecameBackup", "node lb1: Fault -> Backup: ProbeRecovered"},
		{"Warning", "BecameFault", "node lb1: Backup -> Fault: ProbeFailed: probe haproxy failing"},
	}
	if diff := cmp.Diff(want, rec.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
