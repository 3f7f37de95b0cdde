package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// wedgeHost is a fakeHost whose announcements block while wedged, as a host call stuck in the
// kernel would block the instance's loop.
type wedgeHost struct {
	*fakeHost
	wedged chan struct{} // closed to release
}

func (h *wedgeHost) Link(string) (vrrp.Link, error) { return h, nil }

func (h *wedgeHost) Announce(ctx context.Context, as []netip.Addr) error {
	<-h.wedged // not ctx: the call ignores its deadline, as a wedged one does
	return h.fakeHost.Announce(ctx, as)
}

// Healthy is nil while the instances run, and names the instance whose loop is wedged once it
// has had work waiting for longer than StallLimit.
func TestHealthyReportsWedgedInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &hub{}
		ok := &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}
		wedge := &wedgeHost{fakeHost: &fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{}}, wedged: make(chan struct{})}
		a := New(multiHost{"eth0": ok, "eth1": wedge}, nil, Options{})
		if err := a.Apply("web", config("198.18.0.11", 110)); err != nil {
			t.Fatal(err)
		}
		wedged := config("198.18.1.11", 110)
		wedged.Interface, wedged.Addresses = "eth1", []netip.Prefix{netip.MustParsePrefix("198.18.1.100/24")}
		if err := a.Apply("db", wedged); err != nil {
			t.Fatal(err)
		}
		if err := a.Healthy(time.Now()); err != nil {
			t.Fatalf("before Run: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { _ = a.Run(ctx); close(done) }()
		t.Cleanup(func() {
			select {
			case <-wedge.wedged:
			default:
				close(wedge.wedged)
			}
			cancel()
			<-done
		})

		// Both become MASTER; db's loop then blocks announcing its address.
		time.Sleep(time.Second)
		synctest.Wait()
		if err := a.Healthy(time.Now()); err != nil {
			t.Fatalf("within StallLimit: %v", err)
		}
		time.Sleep(StallLimit)
		synctest.Wait()
		err := a.Healthy(time.Now())
		if err == nil || !strings.Contains(err.Error(), "db") || strings.Contains(err.Error(), "web") {
			t.Fatalf("Healthy = %v, want an error naming db only", err)
		}
		close(wedge.wedged)
		time.Sleep(time.Second)
		synctest.Wait()
		if err := a.Healthy(time.Now()); err != nil {
			t.Fatalf("after the call returned: %v", err)
		}
	})
}

// multiHost gives each interface its own host.
type multiHost map[string]Host

func (m multiHost) Listen(ifname string, src netip.Addr) (vrrp.PacketConn, error) {
	return m[ifname].Listen(ifname, src)
}

func (m multiHost) Link(ifname string) (vrrp.Link, error) { return m[ifname].Link(ifname) }
