package agent_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/internal/flaphost"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// A burst of 1000 flaps (link down, link up) reaches every consumer exactly: the transition
// counters, a subscriber that keeps up, and a slow one, which sees the newest events after an
// EventDropped whose count, with what it received, is every event published.
func TestStreamCountsEveryFlap(t *testing.T) {
	h := flaphost.New()
	a := agent.New(h, nil, agent.Options{})
	fast := a.Subscribe("fast", 1<<16)
	slow := a.Subscribe("slow", 16)
	// A reader that takes a little at a time, slower than the flaps come.
	trickle := a.Subscribe("trickle", 8)
	trickled := make(chan []vrrp.Event)
	stopTrickle := make(chan struct{})
	go func() {
		var got []vrrp.Event
		for {
			select {
			case <-stopTrickle:
				trickled <- append(got, trickle.Take()...)
				return
			case <-trickle.Ready():
				got = append(got, trickle.Take()...)
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	cfg := vrrp.Config{Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: 100,
		Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.100/24")}, Primary: netip.MustParseAddr("198.18.0.11"),
		Preempt: true, Accept: true}
	if err := a.Apply("vip", cfg); err != nil {
		t.Fatal(err)
	}
	const flaps = 1000
	if err := flaphost.Flap(t.Context(), a, h, "vip", flaps); err != nil {
		t.Fatal(err)
	}
	close(stopTrickle)

	all := fast.Take()
	byKey := map[agent.TransitionKey]uint64{}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the stream has a gap or is out of order", i, e.Seq)
		}
		if e.Kind == vrrp.EventTransition {
			byKey[agent.TransitionKey{e.Instance, e.State, e.Reason}]++
		}
	}
	want := map[agent.TransitionKey]uint64{
		{"vip", vrrp.Backup, vrrp.ReasonStarted}:      1,
		{"vip", vrrp.Fault, vrrp.ReasonInterfaceDown}: flaps / 2,
		{"vip", vrrp.Backup, vrrp.ReasonInterfaceUp}:  flaps / 2,
		{"vip", vrrp.Initialize, vrrp.ReasonShutdown}: 1,
	}
	if diff := cmp.Diff(want, byKey); diff != "" {
		t.Errorf("transitions in the stream (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, a.TransitionCounts()); diff != "" {
		t.Errorf("TransitionCounts (-want +got):\n%s", diff)
	}

	total := uint64(len(all))
	// The slow subscriber never read: it holds the newest 16, after one marker for the rest.
	got := slow.Take()
	if len(got) != 17 || got[0].Kind != vrrp.EventDropped || got[0].Count != total-16 {
		t.Fatalf("slow subscriber took %d events, first %+v; want a Dropped of %d then 16", len(got), got[0], total-16)
	}
	if got[1].Seq != total-15 || got[16].Seq != total {
		t.Errorf("slow subscriber kept seqs %d..%d, want %d..%d", got[1].Seq, got[16].Seq, total-15, total)
	}
	// The trickling one: every event is either received or counted, in order.
	var seen, lost, last uint64
	for _, e := range <-trickled {
		if e.Kind == vrrp.EventDropped {
			lost += e.Count
			continue
		}
		if e.Seq <= last {
			t.Fatalf("trickle: seq %d after %d", e.Seq, last)
		}
		last = e.Seq
		seen++
	}
	if seen+lost != total {
		t.Errorf("trickle: %d received + %d reported lost = %d, want %d events", seen, lost, seen+lost, total)
	}
	lostBy := a.LostEvents()
	if lostBy["fast"] != 0 || lostBy["slow"] != total-16 || lostBy["trickle"] != lost {
		t.Errorf("LostEvents = %v, want fast 0, slow %d, trickle %d", lostBy, total-16, lost)
	}
	t.Logf("%d events for %d flaps; trickle received %d, lost %d", total, flaps, seen, lost)
}
