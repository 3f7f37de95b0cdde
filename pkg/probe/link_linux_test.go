package probe

import (
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

func TestInterfaceLoopback(t *testing.T) {
	if ok, reason := (linkChecker{name: "lo"}).check(t.Context()); !ok || reason != "link lo is up" {
		t.Errorf("check(lo) = %t, %q; want true: up", ok, reason)
	}
	if ok, reason := (linkChecker{name: "kvp-missing0"}).check(t.Context()); ok || reason != "link kvp-missing0 does not exist" {
		t.Errorf("check(kvp-missing0) = %t, %q; want false: does not exist", ok, reason)
	}
}

// In a throwaway network namespace: a veth pair, whose carrier needs both ends up, and a
// loopback that starts down.
func TestInterfaceStates(t *testing.T) {
	privtest.Require(t)
	inNewNetns(t, func() {
		check := func(name string, wantOK bool, want string) {
			t.Helper()
			if ok, reason := (linkChecker{name: name}).check(t.Context()); ok != wantOK || reason != want {
				t.Errorf("check(%s) = %t, %q; want %t, %q", name, ok, reason, wantOK, want)
			}
		}
		check("lo", false, "link lo is administratively down")
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "kvp-a"}, PeerName: "kvp-b"}
		if err := netlink.LinkAdd(v); err != nil {
			t.Fatalf("add veth pair: %v", err)
		}
		peer, err := netlink.LinkByName("kvp-b")
		if err != nil {
			t.Fatal(err)
		}
		check("kvp-a", false, "link kvp-a is administratively down")
		if err := netlink.LinkSetUp(v); err != nil {
			t.Fatal(err)
		}
		check("kvp-a", false, "link kvp-a has no carrier (operstate lower-layer-down)")
		if err := netlink.LinkSetUp(peer); err != nil {
			t.Fatal(err)
		}
		waitLink(t, "kvp-a", true)
		check("kvp-a", true, "link kvp-a is up")
		if err := netlink.LinkSetDown(peer); err != nil {
			t.Fatal(err)
		}
		waitLink(t, "kvp-a", false)
		check("kvp-a", false, "link kvp-a has no carrier (operstate lower-layer-down)")
	})
}

// waitLink waits until the kernel's link watch has settled name's state to up or not.
func waitLink(t *testing.T, name string, up bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, _ := (linkChecker{name: name}).check(t.Context()); ok == up || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inNewNetns runs fn on the test goroutine's thread in a new network namespace, which goes
// away when fn returns (nothing else holds it), and restores the thread's namespace.
func inNewNetns(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get network namespace: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("create network namespace: %v", err)
	}
	defer func() {
		err := netns.Set(orig)
		orig.Close()
		ns.Close()
		if err != nil {
			// Keep the thread locked: it is discarded with the test goroutine.
			panic("cannot restore the test thread's network namespace: " + err.Error())
		}
		runtime.UnlockOSThread()
	}()
	fn()
}
