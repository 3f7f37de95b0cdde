package vrrp_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// A router newly heard advertising our VRID with another address list is news for status (a
// condition and an Event name it) although the state does not change: events is called when
// the set of foreign routers changes, not at each of their adverts.
func TestRouterForeignRouterNotifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config4()
		rig := startRouter(t, cfg)
		rig.becomeMaster(t)

		rig.r.Deliver(advert(t, cfg, higher, 254, otherAddrs))
		synctest.Wait()
		if diff := cmp.Diff([]string{"Foreign 1"}, rig.takeChanges()); diff != "" {
			t.Errorf("events at the first foreign advert (-want +got):\n%s", diff)
		}
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			rig.r.Deliver(advert(t, cfg, higher, 254, otherAddrs))
		}
		synctest.Wait()
		if got := rig.takeChanges(); len(got) != 0 {
			t.Errorf("events at the same router's next adverts: %v", got)
		}
		if f := rig.r.Status().Foreign; len(f) != 1 || f[0].Count != 6 {
			t.Errorf("foreign %+v, want one router heard 6 times", f)
		}

		// Another one.
		rig.r.Deliver(advert(t, cfg, netip.MustParseAddr("192.168.1.13"), 254, otherAddrs))
		synctest.Wait()
		if diff := cmp.Diff([]string{"Foreign 2"}, rig.takeChanges()); diff != "" {
			t.Errorf("events at a second foreign router (-want +got):\n%s", diff)
		}
		// Both heard in turn: the list reorders at every advert, the set does not change.
		for i := range 6 {
			time.Sleep(50 * time.Millisecond)
			src := higher
			if i%2 == 1 {
				src = netip.MustParseAddr("192.168.1.13")
			}
			rig.r.Deliver(advert(t, cfg, src, 254, otherAddrs))
			synctest.Wait()
		}
		if got := rig.takeChanges(); len(got) != 0 {
			t.Errorf("events while the same two routers are heard in turn: %v", got)
		}
		rig.requireState(t, vrrp.Master)
	})
}
