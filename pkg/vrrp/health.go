package vrrp

import (
	"sync"
	"time"
)

// heartbeat records what a Router's loop has done and what waits for it, so that Stalled can
// tell a wedged loop (stuck in a host call that never returns, a callback that blocks, a
// deadlock) from one that merely has nothing to do: an instance in Fault may have no timer
// and receive nothing for hours, and that is not a failure.
type heartbeat struct {
	mu      sync.Mutex
	running bool      // the loop has started and Run has not returned
	beat    time.Time // when the loop last came back to wait for work
	due     time.Time // when its timer fires next; zero: no timer
	pending int       // packets and commands handed to the loop and not yet taken
	since   time.Time // when the oldest of them was handed over, or the loop last took one
}

// waiting records that the loop is back waiting for work at now, with its timer set for due.
func (h *heartbeat) waiting(now, due time.Time) {
	h.mu.Lock()
	h.running, h.beat, h.due = true, now, due
	h.mu.Unlock()
}

// queued records a packet or command about to be handed to the loop.
func (h *heartbeat) queued(now time.Time) {
	h.mu.Lock()
	if h.pending == 0 {
		h.since = now
	}
	h.pending++
	h.mu.Unlock()
}

// dropped records that a queued packet or command was not handed over after all (queue full,
// router stopped).
func (h *heartbeat) dropped() {
	h.mu.Lock()
	h.pending--
	h.mu.Unlock()
}

// took records that the loop took a queued packet or command at now: the ones still waiting
// are measured from here, since the loop was making progress until now.
func (h *heartbeat) took(now time.Time) {
	h.mu.Lock()
	h.pending--
	h.since = now
	h.mu.Unlock()
}

// stopped records that Run has returned.
func (h *heartbeat) stopped() {
	h.mu.Lock()
	h.running = false
	h.mu.Unlock()
}

// Stalled reports whether the router's loop has had work waiting for longer than limit
// without making progress: a packet or a command handed to it and not taken, or its timer
// due, and the loop has not come back to wait for work since. A loop that is idle (nothing
// queued, no timer due) is not stalled however long it waits, and neither is a router that is
// not running. limit must be well above the longest host operation the loop may legitimately
// wait for (hostTimeout for each of unbind, bind and announce).
func (r *Router) Stalled(now time.Time, limit time.Duration) bool {
	h := &r.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running {
		return false
	}
	if h.pending > 0 && now.Sub(later(h.since, h.beat)) > limit {
		return true
	}
	return !h.due.IsZero() && now.Sub(later(h.due, h.beat)) > limit
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
