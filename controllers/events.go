package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Stream is this node's typed event stream (*agent.Subscription): Ready is signalled when
// events wait, Take returns them in order, after an EventDropped if some were lost.
type Stream interface {
	Ready() <-chan struct{}
	Take() []vrrp.Event
}

// Bounds of the transition Events of one VirtualIP (EventReporter).
const (
	transitionEventBurst  = 10
	transitionEventWindow = time.Minute
)

// EventReporter records this node's transitions and probe changes as Kubernetes Events on
// their VirtualIPs, read from the agent's typed event stream (docs/design.md §3.3): every
// transition the engine made is recorded, however fast they come, or counted in a Flapping
// Event. Nothing is rebuilt from snapshots.
//
// A flapping instance must not turn into a stream of Event writes: beyond
// transitionEventBurst transition Events per VirtualIP in transitionEventWindow, transitions
// are counted, and one Flapping Event says how many were not recorded, and the state now, as
// soon as the window has room again. Events the subscription lost (it was read too slowly,
// e.g. while the API server was away) are logged with their count; the agent counts them in
// kube_vrrp_events_lost_total.
//
// It runs in the node manager, which restarts whenever the API server is unreachable. The
// subscription and the reporter outlive it (For binds the reporter to one manager's reader
// and recorder): transitions held back by the flap limit are still counted, and a probe's
// recovery is still news, after a restart; what happens while the API server is away is
// recorded when it is back, up to the buffer.
type EventReporter struct {
	Stream Stream
	// Reader gets the VirtualIP an Event is about (the manager's cache).
	Reader   client.Reader
	Recorder events.EventRecorder
	NodeName string
	Log      *slog.Logger

	// mu lets one Start run at a time (a manager being replaced may not have stopped yet);
	// what follows, Reader and Recorder belong to the one running.
	mu sync.Mutex
	// probeSeen: VirtualIP and probe -> the health of its last result since the instance was
	// applied. A first result that is healthy is not an Event (nothing changed), nor is a
	// result that repeats the last one (a probe edit starts the probes again).
	probeSeen map[string]bool
	flaps     map[string]*flapWindow
}

// flapWindow is one VirtualIP's recent transition Events and what was held back.
type flapWindow struct {
	times []time.Time
	// held counts transitions not recorded since the last Event; last is the latest.
	held uint64
	last vrrp.Event
}

// Start implements manager.Runnable: it records events until ctx is done.
func (r *EventReporter) Start(ctx context.Context) error {
	return r.For(r.Reader, r.Recorder).Start(ctx)
}

// For returns the Runnable of one node manager: r recording with reader and recorder (the
// manager's cache and its recorder) until the manager stops, remembering what it knew
// across managers (see EventReporter).
func (r *EventReporter) For(reader client.Reader, recorder events.EventRecorder) manager.Runnable {
	return boundReporter{r, reader, recorder}
}

type boundReporter struct {
	r        *EventReporter
	reader   client.Reader
	recorder events.EventRecorder
}

func (b boundReporter) Start(ctx context.Context) error {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	b.r.Reader, b.r.Recorder = b.reader, b.recorder
	return b.r.run(ctx)
}

func (b boundReporter) NeedLeaderElection() bool { return false }

// run records events until ctx is done; r.mu is held.
func (r *EventReporter) run(ctx context.Context) error {
	if r.probeSeen == nil {
		r.probeSeen = map[string]bool{}
	}
	if r.flaps == nil {
		r.flaps = map[string]*flapWindow{}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.Stream.Ready():
			for _, e := range r.Stream.Take() {
				r.record(ctx, e, time.Now())
			}
		case now := <-tick.C:
			r.flush(ctx, now)
		}
	}
}

// NeedLeaderElection is false: every node reports its own events.
func (r *EventReporter) NeedLeaderElection() bool { return false }

// record turns one event into an Event, or into a count.
func (r *EventReporter) record(ctx context.Context, e vrrp.Event, now time.Time) {
	switch e.Kind {
	case vrrp.EventDropped:
		r.Log.Warn("events lost before they could be recorded as Kubernetes Events", "count", e.Count)
	case vrrp.EventApplied, vrrp.EventRemoved:
		if e.Kind == vrrp.EventRemoved || e.Reason != agent.AppliedInPlace {
			for k := range r.probeSeen {
				if vip, _, _ := strings.Cut(k, "\x00"); vip == e.Instance {
					delete(r.probeSeen, k)
				}
			}
		}
	case vrrp.EventProbe:
		key := e.Instance + "\x00" + e.Probe
		last, seen := r.probeSeen[key]
		r.probeSeen[key] = e.Healthy
		if (!seen && e.Healthy) || (seen && last == e.Healthy) {
			return
		}
		if e.Healthy {
			r.eventf(ctx, e.Instance, corev1.EventTypeNormal, ReasonProbeRecovered, "Probe", "node %s: probe %s healthy: %s",
				r.NodeName, e.Probe, truncate(e.Message, maxNote))
		} else {
			r.eventf(ctx, e.Instance, corev1.EventTypeWarning, ReasonProbeFailed, "Probe", "node %s: probe %s failing: %s",
				r.NodeName, e.Probe, truncate(e.Message, maxNote))
		}
	case vrrp.EventTransition:
		w := r.window(e.Instance)
		w.times = slices.DeleteFunc(w.times, func(t time.Time) bool { return now.Sub(t) >= transitionEventWindow })
		full := len(w.times) >= transitionEventBurst
		if full || w.held > 0 {
			// Held back, or the last of those held back, which the window has room for now:
			// one Flapping Event counts them all (flush does the same).
			w.held++
			w.last = e
		}
		if full {
			return
		}
		w.times = append(w.times, now)
		r.transition(ctx, e, w)
	}
}

// flush records the held transitions of every VirtualIP whose window has room again.
func (r *EventReporter) flush(ctx context.Context, now time.Time) {
	for vip, w := range r.flaps {
		w.times = slices.DeleteFunc(w.times, func(t time.Time) bool { return now.Sub(t) >= transitionEventWindow })
		if w.held > 0 && len(w.times) < transitionEventBurst {
			w.times = append(w.times, now)
			r.transition(ctx, w.last, w)
		}
		if w.held == 0 && len(w.times) == 0 {
			delete(r.flaps, vip)
		}
	}
}

// transition records e as a Became<State> Event or, when transitions were held back, as one
// Flapping Event that counts them (w.held, e the last of them).
func (r *EventReporter) transition(ctx context.Context, e vrrp.Event, w *flapWindow) {
	why := e.Reason
	if e.Message != "" {
		why += ": " + e.Message
	}
	kind := corev1.EventTypeNormal
	// Waiting for a probe's first check (at start, or a probe just added) is not a failure.
	if e.State == vrrp.Fault && e.Reason != vrrp.ReasonProbePending {
		kind = corev1.EventTypeWarning
	}
	if w.held > 0 {
		r.eventf(ctx, e.Instance, corev1.EventTypeWarning, ReasonFlapping, "Transition",
			"node %s: %d transitions in %s not recorded one by one; the last: %s -> %s: %s",
			r.NodeName, w.held, transitionEventWindow, e.From, e.State, truncate(why, maxNote))
		w.held = 0
		return
	}
	r.eventf(ctx, e.Instance, kind, becameReason(e.State.String()), "Transition", "node %s: %s -> %s: %s",
		r.NodeName, e.From, e.State, truncate(why, maxNote))
}

func (r *EventReporter) window(vip string) *flapWindow {
	w := r.flaps[vip]
	if w == nil {
		w = &flapWindow{}
		r.flaps[vip] = w
	}
	return w
}

// eventf records an Event on the VirtualIP name, if it still exists.
func (r *EventReporter) eventf(ctx context.Context, name, kind, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	var vip v1alpha1.VirtualIP
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: name}, &vip); err != nil {
		r.Log.Debug("no VirtualIP to record the Event on", "vip", name, "reason", reason, "err", err)
		return
	}
	r.Recorder.Eventf(&vip, nil, kind, reason, action, "%s", fmt.Sprintf(note, args...))
}
