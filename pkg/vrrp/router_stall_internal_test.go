package vrrp

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

type nopSender struct{}

func (nopSender) WriteTo([]byte, netip.Addr) error { return nil }

// A BACKUP whose loop stalled past its Master_Down_Interval while the MASTER's adverts kept
// arriving (queued meanwhile) stays BACKUP when the loop runs again: the queued adverts are
// taken before the timer. Go's select picks among ready cases at random, so without that the
// timer came first half the time and the backup took the VIP from a live MASTER (seen in the
// agent lab on a loaded machine). Repeated, so that a random order cannot pass by chance.
func TestRouterStallQueuedAdvertsBeforeTimer(t *testing.T) {
	master := netip.MustParseAddr("198.18.0.2")
	for i := range 20 {
		synctest.Test(t, func(t *testing.T) {
			cfg := Config{Name: "web", Interface: "eth0", VRID: 7, Version: 3, Priority: 100,
				Interval: 100 * time.Millisecond, Preempt: true,
				Primary: netip.MustParseAddr("198.18.0.1"), Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.10/32")}}
			inst, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			adv := packet.Advertisement{Version: 3, VRID: 7, Priority: 200, Interval: cfg.Interval,
				Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.10")}}
			b, err := adv.Marshal(master, packet.MulticastIPv4, packet.ChecksumPseudoHeader)
			if err != nil {
				t.Fatal(err)
			}
			pkt := Packet{Src: master, Dst: packet.MulticastIPv4, TTL: 255, Data: b}
			var mastered atomic.Int32 // transitions to MASTER, however brief
			r := NewRouter(inst, nopSender{}, &removalsLink{}, nil, func(e Event) {
				if e.State == Master && e.From != Master {
					mastered.Add(1)
				}
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() { _ = r.Run(ctx) }()
			for range 5 {
				time.Sleep(cfg.Interval)
				r.Deliver(pkt)
				synctest.Wait()
			}
			if st := r.Status(); st.State != Backup {
				t.Fatalf("run %d: %s before the stall, want Backup", i, st.State)
			}
			// The loop stalls 1 s (ten intervals) while the MASTER keeps advertising.
			release := make(chan struct{})
			// (A command's output schedules the timer as every step's does: Tick at the time
			// the command started, before the stall.)
			go r.do(func(now time.Time) Output { <-release; return r.inst.Tick(now) })
			synctest.Wait()
			for range 10 {
				time.Sleep(cfg.Interval)
				if !r.Deliver(pkt) {
					t.Fatal("advert dropped by the queue")
				}
			}
			close(release)
			synctest.Wait()
			if st, n := r.Status(), mastered.Load(); st.State != Backup || n > 0 {
				t.Fatalf("run %d: %s (%s) after the stall, MASTER %d times meanwhile; want Backup throughout: the MASTER's adverts were queued",
					i, st.State, st.Reason, n)
			}
			cancel()
			<-r.Done()
		})
	}
}
