package agent

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The agent's event stream (docs/design.md §3.2): every event of every instance, numbered in
// one sequence, handed to each subscriber through a bounded buffer. Publishing never blocks
// the instance that emitted the event: a subscriber that falls behind loses its oldest
// events, and the next Take starts with an EventDropped saying how many.

// TransitionKey names one transition counter: the instance, the state entered and why.
type TransitionKey struct {
	VIP    string
	State  vrrp.State
	Reason string
}

type stream struct {
	mu   sync.Mutex
	seq  uint64
	subs []*Subscription
	// transitions counts every transition published, by instance, state and reason: the
	// metrics read it, exact whatever the subscribers do.
	transitions map[TransitionKey]uint64
	// lost counts the events each subscriber (by name) lost, for the metrics.
	lost map[string]uint64
}

func newStream() *stream {
	return &stream{transitions: map[TransitionKey]uint64{}, lost: map[string]uint64{}}
}

// publish numbers e and hands it to every subscriber.
func (s *stream) publish(e vrrp.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	e.Seq = s.seq
	switch e.Kind {
	case vrrp.EventTransition:
		s.transitions[TransitionKey{e.Instance, e.State, e.Reason}]++
	case vrrp.EventRemoved:
		// A removed instance's counters go with it (Prometheus sees a reset if it returns).
		maps.DeleteFunc(s.transitions, func(k TransitionKey, _ uint64) bool { return k.VIP == e.Instance })
	}
	for _, sub := range s.subs {
		if n := sub.push(e); n > 0 {
			s.lost[sub.name] += n
		}
	}
}

// Subscription is one consumer's share of the event stream.
type Subscription struct {
	name   string
	stream *stream
	ready  chan struct{}

	mu sync.Mutex
	// buf holds the events not yet taken, at most max: appended to until it is full, then a
	// ring whose oldest event is at head (each new one takes its place, so that dropping
	// costs the publisher the same whatever the buffer holds).
	buf  []vrrp.Event
	head int
	max  int
	lost uint64 // lost since the last Take
}

// Subscribe starts a subscription named name (it labels the lost-events metric) that holds
// at most buffer events not yet taken; it sees the events published from now on.
func (a *Agent) Subscribe(name string, buffer int) *Subscription {
	sub := &Subscription{name: name, stream: a.events, ready: make(chan struct{}, 1), max: max(buffer, 1)}
	a.events.mu.Lock()
	a.events.subs = append(a.events.subs, sub)
	if _, ok := a.events.lost[name]; !ok {
		a.events.lost[name] = 0
	}
	a.events.mu.Unlock()
	return sub
}

// push queues e, dropping the oldest event when the buffer is full; it returns how many it
// dropped (0 or 1).
func (sub *Subscription) push(e vrrp.Event) uint64 {
	sub.mu.Lock()
	var dropped uint64
	if len(sub.buf) < sub.max {
		sub.buf = append(sub.buf, e) // head is 0 until the buffer is full
	} else {
		sub.buf[sub.head] = e
		sub.head = (sub.head + 1) % sub.max
		sub.lost++
		dropped = 1
	}
	sub.mu.Unlock()
	select {
	case sub.ready <- struct{}{}:
	default:
	}
	return dropped
}

// Ready is signalled when events are waiting to be taken.
func (sub *Subscription) Ready() <-chan struct{} { return sub.ready }

// Take returns the events waiting, oldest first. When some were lost since the last Take, the
// first is an EventDropped whose Count says how many.
func (sub *Subscription) Take() []vrrp.Event {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.buf) == 0 && sub.lost == 0 {
		return nil
	}
	out := make([]vrrp.Event, 0, len(sub.buf)+1)
	if sub.lost > 0 {
		out = append(out, vrrp.Event{Kind: vrrp.EventDropped, At: time.Now(), Count: sub.lost})
		sub.lost = 0
	}
	out = append(out, sub.buf[sub.head:]...)
	out = append(out, sub.buf[:sub.head]...)
	clear(sub.buf) // what the events point to is the taker's now
	sub.buf, sub.head = sub.buf[:0], 0
	return out
}

// Next waits for events and takes them; it returns ctx's error once ctx is done.
func (sub *Subscription) Next(ctx context.Context) ([]vrrp.Event, error) {
	for {
		if evs := sub.Take(); len(evs) > 0 {
			return evs, nil
		}
		select {
		case <-sub.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the subscription.
func (sub *Subscription) Close() {
	s := sub.stream
	s.mu.Lock()
	s.subs = slices.DeleteFunc(s.subs, func(x *Subscription) bool { return x == sub })
	s.mu.Unlock()
}

// TransitionCounts returns how many transitions each instance made, by state entered and
// reason, since it was applied (exact: counted as they are published).
func (a *Agent) TransitionCounts() map[TransitionKey]uint64 {
	a.events.mu.Lock()
	defer a.events.mu.Unlock()
	return maps.Clone(a.events.transitions)
}

// LostEvents returns how many events each subscription, by name, lost by reading too slowly.
func (a *Agent) LostEvents() map[string]uint64 {
	a.events.mu.Lock()
	defer a.events.mu.Unlock()
	return maps.Clone(a.events.lost)
}

// emit is every instance's event sink (vrrp.NewRouter's emit) and the agent's own: it logs
// the event, publishes it and wakes Changes. It never blocks.
func (a *Agent) emit(e vrrp.Event) {
	logEvent(a.log, e)
	a.events.publish(e)
	a.notify()
}

// logEvent writes e as one log record: the agent's log, in Kubernetes and in run mode.
func logEvent(log *slog.Logger, e vrrp.Event) {
	ctx := context.Background()
	attrs := []any{"vip", e.Instance, "state", e.State.String(), "priority", e.Priority}
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
	}
	if e.Message != "" {
		attrs = append(attrs, "message", e.Message)
	}
	switch e.Kind {
	case vrrp.EventTransition:
		level := slog.LevelInfo
		if e.State == vrrp.Fault {
			level = slog.LevelWarn
		}
		attrs = append(attrs, "from", e.From.String())
		if e.Master.IsValid() {
			attrs = append(attrs, "master", e.Master.String())
		}
		log.Log(ctx, level, "transition", attrs...)
	case vrrp.EventPriority:
		log.Info("priority changed", attrs...)
	case vrrp.EventReason:
		log.Info("reason changed", attrs...)
	case vrrp.EventHostError:
		if e.Message == "" {
			log.Info("host operations recovered", attrs...)
		} else {
			log.Warn("host operation failing", attrs...)
		}
	case vrrp.EventForeign:
		srcs := make([]string, len(e.Foreign))
		for i, f := range e.Foreign {
			srcs[i] = f.Src.String()
		}
		log.Warn("routers using this VRID with other addresses", append(attrs, "foreign", srcs)...)
	case vrrp.EventPacketDrop:
		log.Warn("dropped VRRP packets", append(attrs, "drop", string(e.Drop), "from", e.Src.String(), "count", e.Count)...)
	case vrrp.EventProbe:
		log.Info("probe", append(attrs, "probe", e.Probe, "healthy", e.Healthy)...)
	case vrrp.EventApplied:
		log.Info("instance applied", attrs...)
	case vrrp.EventRemoved:
		log.Info("instance removed", "vip", e.Instance)
	}
}
