package vrrp

import (
	"math/rand/v2"
	"testing"
)

// The router's queue is a FIFO of at most queueLen packets whatever the pattern of pushes and
// pops, its array stays bounded, and ready holds a token exactly while packets wait.
func TestPacketQueue(t *testing.T) {
	q := packetQueue{ready: make(chan struct{}, 1)}
	token := func() bool { return len(q.ready) == 1 }
	pkt := func(i int) Packet { return Packet{TTL: i} }

	for i := range queueLen {
		if !q.push(pkt(i)) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.push(pkt(queueLen)) {
		t.Fatal("push beyond queueLen accepted")
	}
	for i := range queueLen {
		if !token() {
			t.Fatalf("no token with %d packets waiting", queueLen-i)
		}
		<-q.ready
		p, ok := q.pop()
		if !ok || p.TTL != i {
			t.Fatalf("pop %d: %v %v, want TTL %d", i, p.TTL, ok, i)
		}
	}
	if token() {
		t.Error("token left with nothing waiting")
	}
	if _, ok := q.pop(); ok {
		t.Error("pop of an empty queue succeeded")
	}
	if q.buf != nil {
		t.Errorf("a drained queue keeps room for %d packets, want none above %d", cap(q.buf), queueKeep)
	}

	// A reader that keeps pace, never draining the queue: order kept, array bounded.
	next, want := 0, 0
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		if rng.IntN(2) == 0 {
			if q.push(pkt(next)) {
				next++
			} else if n := len(q.buf) - q.head; n != queueLen {
				t.Fatalf("push refused with %d waiting", n)
			}
		} else if p, ok := q.pop(); ok {
			if p.TTL != want {
				t.Fatalf("popped %d, want %d", p.TTL, want)
			}
			want++
		}
		if cap(q.buf) > 2*queueLen {
			t.Fatalf("array of %d packets for at most %d waiting", cap(q.buf), queueLen)
		}
	}

	// One packet at a time, as a BACKUP receives adverts: the small array is kept.
	for q.head < len(q.buf) {
		q.pop()
	}
	q.push(pkt(0))
	q.pop()
	q.push(pkt(1))
	kept := &q.buf[:1][0]
	q.pop()
	q.push(pkt(2))
	if &q.buf[0] != kept {
		t.Error("a queue of one packet at a time allocates for each")
	}
}
