package controllers

import (
	"context"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// lateWatch is a watch whose channel closes only when the test says, as a stream watcher's
// closes some time after Stop (its reader has to notice the closed body).
type lateWatch struct {
	ch   chan watch.Event
	once sync.Once
}

func (w *lateWatch) Stop()                          {}
func (w *lateWatch) ResultChan() <-chan watch.Event { return w.ch }
func (w *lateWatch) end()                           { w.once.Do(func() { close(w.ch) }) }

// TestStopWatchOldWatchEndsLate: the reflector stops a watch (an error event) and opens the
// next one at once; the old watch's end, noticed after the new one opened, does not mark the
// new one closed, which made every decision final until the new watch ended (5-10 minutes).
func TestStopWatchOldWatchEndsLate(t *testing.T) {
	s := &stopWatched{onState: func() {}}
	var inners []*lateWatch
	lw := &stopListWatch{s: s, watch: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
		w := &lateWatch{ch: make(chan watch.Event)}
		inners = append(inners, w)
		return w, nil
	}}
	open := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.open
	}
	w1, err := lw.WatchWithContext(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w1.Stop()
	w2, err := lw.WatchWithContext(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	inners[0].end()
	for range w1.ResultChan() { // closed once the old watch's end is recorded
	}
	if !open() {
		t.Fatal("the new watch is open, but the old one's end marked it closed")
	}
	// The current watch's own end still counts.
	inners[1].end()
	for range w2.ResultChan() {
	}
	if open() {
		t.Fatal("the current watch ended, but it still counts as open")
	}
}
