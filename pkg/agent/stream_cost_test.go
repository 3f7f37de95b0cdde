package agent

import (
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// publishFull is how long publishing n events takes with one subscriber whose buffer of size
// holds size events and is full: each one drops the oldest.
func publishFull(size, n int) time.Duration {
	s := newStream()
	s.subs = append(s.subs, &Subscription{name: "full", stream: s, ready: make(chan struct{}, 1), max: size})
	e := vrrp.Event{Kind: vrrp.EventTransition, Instance: "web", Message: "m"}
	for range size {
		s.publish(e)
	}
	start := time.Now()
	for range n {
		s.publish(e)
	}
	return time.Since(start)
}

// A subscriber that stopped reading costs the instances that publish (in their VRRP loops,
// under the stream's one lock) the same whatever its buffer holds (docs/design.md §3.2): the
// oldest event is dropped in place, not by moving the others.
func TestFullSubscriptionCostsTheSameWhateverItsSize(t *testing.T) {
	const n = 2000
	small, large := publishFull(16, n), publishFull(1<<16, n)
	if large > 20*small+50*time.Millisecond {
		t.Errorf("%d events cost %v with a full buffer of 65536, %v with one of 16", n, large, small)
	}
}
