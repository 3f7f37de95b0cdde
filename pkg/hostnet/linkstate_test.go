//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// linkMsg is an ifinfomsg with attributes, as the kernel sends it.
func linkMsg(family uint8, index int32, flags uint32, attrs ...[]byte) []byte {
	b := []byte{family, 0}
	b = binary.NativeEndian.AppendUint16(b, unix.ARPHRD_ETHER)
	b = binary.NativeEndian.AppendUint32(b, uint32(index))
	b = binary.NativeEndian.AppendUint32(b, flags)
	b = binary.NativeEndian.AppendUint32(b, 0) // ifi_change
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func TestParseLinkMsg(t *testing.T) {
	const running = unix.IFF_UP | unix.IFF_RUNNING | unix.IFF_LOWER_UP | unix.IFF_BROADCAST | unix.IFF_MULTICAST
	oper := func(s uint8) []byte { return rtattr(unix.IFLA_OPERSTATE, []byte{s}) }
	name := rtattr(unix.IFLA_IFNAME, []byte("eth0\x00"))
	const (
		operDown           = 2
		operLowerLayerDown = 3
		operDormant        = 5
	)
	tests := []struct {
		name    string
		in      []byte
		want    kernelLink
		wantUp  bool
		wantErr bool
	}{
		{"up", linkMsg(unix.AF_UNSPEC, 3, running, name, oper(ifOperUp)),
			kernelLink{Index: 3, Name: "eth0", Flags: running, Oper: ifOperUp, HasOper: true}, true, false},
		{"unknown (dummy, loopback)", linkMsg(unix.AF_UNSPEC, 1, running, oper(ifOperUnknown)),
			kernelLink{Index: 1, Flags: running, Oper: ifOperUnknown, HasOper: true}, true, false},
		{"no carrier: peer down", linkMsg(unix.AF_UNSPEC, 3, unix.IFF_UP|unix.IFF_BROADCAST, oper(operLowerLayerDown)),
			kernelLink{Index: 3, Flags: unix.IFF_UP | unix.IFF_BROADCAST, Oper: operLowerLayerDown, HasOper: true}, false, false},
		{"admin down", linkMsg(unix.AF_UNSPEC, 3, unix.IFF_BROADCAST, oper(operDown)),
			kernelLink{Index: 3, Flags: unix.IFF_BROADCAST, Oper: operDown, HasOper: true}, false, false},
		{"carrier but dormant", linkMsg(unix.AF_UNSPEC, 3, unix.IFF_UP|unix.IFF_LOWER_UP, oper(operDormant)),
			kernelLink{Index: 3, Flags: unix.IFF_UP | unix.IFF_LOWER_UP, Oper: operDormant, HasOper: true}, false, false},
		{"operationally up, carrier flag lagging", linkMsg(unix.AF_UNSPEC, 3, unix.IFF_UP|unix.IFF_RUNNING, oper(ifOperUp)),
			kernelLink{Index: 3, Flags: unix.IFF_UP | unix.IFF_RUNNING, Oper: ifOperUp, HasOper: true}, false, false},
		{"no operstate: IFF_RUNNING decides", linkMsg(unix.AF_UNSPEC, 3, running),
			kernelLink{Index: 3, Flags: running}, true, false},
		{"no operstate, not running", linkMsg(unix.AF_UNSPEC, 3, unix.IFF_UP|unix.IFF_LOWER_UP),
			kernelLink{Index: 3, Flags: unix.IFF_UP | unix.IFF_LOWER_UP}, false, false},
		{"short header", linkMsg(unix.AF_UNSPEC, 3, running)[:15], kernelLink{}, false, true},
		{"attribute overruns", append(linkMsg(unix.AF_UNSPEC, 3, running), 0xff, 0, 1, 0), kernelLink{}, false, true},
		{"trailing bytes", append(linkMsg(unix.AF_UNSPEC, 3, running, oper(ifOperUp)), 1), kernelLink{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, family, err := parseLinkMsg(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseLinkMsg: error %v, want error %t", err, tt.wantErr)
			}
			if err == nil && family != unix.AF_UNSPEC {
				t.Errorf("family %d", family)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseLinkMsg (-want +got):\n%s", diff)
			}
			if got.up() != tt.wantUp {
				t.Errorf("up() = %t, want %t", got.up(), tt.wantUp)
			}
		})
	}
}

func FuzzParseLinkMsg(f *testing.F) {
	f.Add(linkMsg(unix.AF_UNSPEC, 3, unix.IFF_UP, rtattr(unix.IFLA_OPERSTATE, []byte{ifOperUp})))
	f.Add(linkMsg(unix.AF_BRIDGE, -1, 0, rtattr(unix.IFLA_OPERSTATE, nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, _, err := parseLinkMsg(b)
		if err != nil && k != (kernelLink{}) {
			t.Fatalf("parseLinkMsg(%x) = %+v with error %v", b, k, err)
		}
	})
}

// setLink sets ifname of n administratively up or down.
func (n *testNS) setLink(t *testing.T, ifname string, up bool) {
	t.Helper()
	set := n.nl.LinkSetDown
	if up {
		set = n.nl.LinkSetUp
	}
	if err := set(n.link(t, ifname)); err != nil {
		t.Fatalf("set %s up=%t: %v", ifname, up, err)
	}
}

// waitOperUp waits until the kernel has finished bringing ifname up (its operational state
// follows the carrier asynchronously), so a watch started now sees a settled link.
func (n *testNS) waitOperUp(t *testing.T, ifname string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); n.link(t, ifname).Attrs().OperState != netlink.OperUp; {
		if time.Now().After(deadline) {
			t.Fatalf("%s not operationally up: %s", ifname, n.link(t, ifname).Attrs().OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stateWatch is a running WatchLinkState whose reports arrive on a channel.
type stateWatch struct {
	t        *testing.T
	states   chan bool
	finished chan struct{}
	err      error
	cancel   context.CancelFunc
}

func startStateWatch(t *testing.T, l vrrp.Link) *stateWatch {
	t.Helper()
	w, ok := l.(vrrp.LinkStateWatcher)
	if !ok {
		t.Fatalf("%T is not a vrrp.LinkStateWatcher", l)
	}
	ctx, cancel := context.WithCancel(t.Context())
	sw := &stateWatch{t: t, states: make(chan bool, 16), finished: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(sw.finished)
		sw.err = w.WatchLinkState(ctx, func(up bool) { sw.states <- up })
	}()
	t.Cleanup(func() {
		cancel()
		<-sw.finished
	})
	return sw
}

// next returns the next report.
func (sw *stateWatch) next() bool {
	sw.t.Helper()
	select {
	case up := <-sw.states:
		return up
	case <-sw.finished:
		sw.t.Fatalf("WatchLinkState returned early: %v", sw.err)
	case <-time.After(3 * time.Second):
		sw.t.Fatal("no link state reported")
	}
	return false
}

func (sw *stateWatch) want(up bool) {
	sw.t.Helper()
	if got := sw.next(); got != up {
		sw.t.Fatalf("link reported up=%t, want %t", got, up)
	}
}

// quiet checks nothing is reported for a while: repeated states are not.
func (sw *stateWatch) quiet() {
	sw.t.Helper()
	select {
	case up := <-sw.states:
		sw.t.Fatalf("unexpected report up=%t", up)
	case <-time.After(200 * time.Millisecond):
	}
}

func (sw *stateWatch) stop() {
	sw.t.Helper()
	sw.cancel()
	select {
	case <-sw.finished:
		if sw.err != nil {
			sw.t.Errorf("WatchLinkState: %v", sw.err)
		}
	case <-time.After(3 * time.Second):
		sw.t.Fatal("WatchLinkState did not return after cancel")
	}
}

// keepalived's FAULT trigger: the VRRP interface loses carrier (its peer, the switch port, goes
// down) or is set down itself. The watch runs from the test's threads, outside the namespace:
// the Host subscribes in its own.
func TestWatchLinkState(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0") // d0 - d0p: d0p plays the switch port
	n.addLink(t, "e0") // another link, whose changes are not d0's
	n.waitOperUp(t, "d0")
	h := n.host(t)
	l, err := h.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	w := startStateWatch(t, l)
	w.want(true) // the current state first
	w.quiet()

	n.setLink(t, "d0p", false) // carrier lost
	w.want(false)
	n.setLink(t, "d0p", true)
	w.want(true)

	// Other links, and changes of d0 that leave it usable, are not reported.
	n.setLink(t, "e0p", false)
	n.setLink(t, "e0", false)
	if err := n.nl.LinkSetMTU(n.link(t, "d0"), 1400); err != nil {
		t.Fatal(err)
	}
	w.quiet()

	n.setLink(t, "d0", false) // its own link set down
	w.want(false)
	n.setLink(t, "d0p", false) // still down: nothing new
	n.setLink(t, "d0", true)   // up, but without carrier
	w.quiet()
	n.setLink(t, "d0p", true)
	w.want(true)
	w.stop()

	// A watch started on a link that is down reports it down first; deleting the link is
	// reported too.
	n.setLink(t, "d0p", false)
	w = startStateWatch(t, l)
	w.want(false)
	n.setLink(t, "d0p", true)
	w.want(true)
	if err := n.nl.LinkDel(n.link(t, "d0")); err != nil {
		t.Fatal(err)
	}
	w.want(false)
	w.stop()

	// With the link gone, a new watch fails at once (the router retries it later).
	if err := l.(vrrp.LinkStateWatcher).WatchLinkState(t.Context(), func(bool) {}); err == nil {
		t.Error("WatchLinkState of a deleted link succeeded")
	}
}
