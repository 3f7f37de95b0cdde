package vrrp_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// vmacConfig is config4 with Config.VirtualMAC: the host's link is a macvlan with the virtual
// router MAC that is down until Bind, and adverts leave from it only while it is up
// (docs/design.md §5.9).
func vmacConfig() vrrp.Config {
	return with(config4(), func(c *vrrp.Config) { c.VirtualMAC = true })
}

// docs/design.md §3.1 and §5.9: with VirtualMAC a takeover binds first, which sets the virtual
// MAC interface up, and only then sends its first advert, so that the advert that claims the
// role already leaves from the virtual MAC and the switches learn it on the new MASTER's port
// at once; the announcements follow the advert, as RFC 5798 §6.4.1/§6.4.2 order them. Every
// way into MASTER is covered: Master_Down_Timer, preemption, a resigned master, the address
// owner, and the second burst's bind beside an advert. (Before, the advert went first, from the
// parent's MAC.)
func TestRouterVirtualMACBindsBeforeAdvert(t *testing.T) {
	takeover := []string{bindVIP, sendMcast(100), annVIP}

	t.Run("MasterDownTimer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rig := startRouter(t, with(vmacConfig(), func(c *vrrp.Config) { c.AnnounceRepeat = 200 * time.Millisecond }))
			time.Sleep(mdi100)
			synctest.Wait()
			rig.requireState(t, vrrp.Master)
			diffEvents(t, takeover, rig.host.take())
			// The second burst, 200 ms later, falls on an advert's tick: the bind comes
			// before that advert too.
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			diffEvents(t, []string{sendMcast(100)}, rig.host.take())
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			diffEvents(t, takeover, rig.host.take())
		})
	})
	t.Run("Preempting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := vmacConfig()
			rig := startRouter(t, cfg)
			rig.r.Deliver(advert(t, cfg, higher, 50))
			synctest.Wait()
			rig.requireState(t, vrrp.Master)
			diffEvents(t, takeover, rig.host.take())
		})
	})
	t.Run("MasterResigned", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := vmacConfig()
			rig := startRouter(t, cfg)
			rig.r.Deliver(advert(t, cfg, higher, 200))
			synctest.Wait()
			rig.r.Deliver(advert(t, cfg, higher, 0))
			synctest.Wait()
			time.Sleep(skew100)
			synctest.Wait()
			rig.requireState(t, vrrp.Master)
			diffEvents(t, takeover, rig.host.take())
		})
	})
	t.Run("AddressOwner", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rig := startRouter(t, with(vmacConfig(), func(c *vrrp.Config) { c.Priority = vrrp.OwnerPriority }))
			rig.requireState(t, vrrp.Master)
			diffEvents(t, []string{bindVIP, sendMcast(vrrp.OwnerPriority), annVIP}, rig.host.take())
		})
	})
}

// docs/design.md §5.3 with VirtualMAC: a takeover whose bind fails sends no advert claiming the
// role (with the bind first there is none to take back), only the Fault's priority 0.
func TestRouterVirtualMACBindFailureSendsNoClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fl *failingLink
		rig := startRouterOn(t, vmacConfig(), func(h *fakeHost) vrrp.Link {
			fl = &failingLink{fakeHost: h}
			return fl
		})
		fl.set(true, false)
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Fault)
		diffEvents(t, []string{"bind failed [" + vip.String() + "]",
			unbindVIP, sendMcast(0), sendMcast(0), sendMcast(0)}, rig.host.take())
	})
}

// Without VirtualMAC the takeover keeps claiming the role on the wire first (docs/design.md
// §3.1): the advert, then the bind, then the announcements.
func TestRouterTakeoverAdvertFirstWithoutVirtualMAC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := startRouter(t, config4())
		time.Sleep(mdi100)
		synctest.Wait()
		rig.requireState(t, vrrp.Master)
		diffEvents(t, []string{sendMcast(100), bindVIP, annVIP}, rig.host.take())
	})
}
