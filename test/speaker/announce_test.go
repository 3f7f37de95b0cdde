package speaker_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// TestAnnouncements runs spec.announcements (docs/design.md §5.2) under `kube-vrrp run` and
// counts, on a packet socket in the client's namespace, the gratuitous ARPs (IPv4) or
// unsolicited neighbour advertisements (IPv6) each speaker sends for the VIP.
func TestAnnouncements(t *testing.T) {
	privtest.Require(t)
	lab.KubeVRRPBinary(t)
	for _, fam := range []struct {
		name string
		vip  netip.Prefix
	}{{"ipv4", vip4}, {"ipv6", vip6}} {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			t.Run("refresh", func(t *testing.T) {
				t.Parallel()
				testAnnounceRefresh(t, fam.vip)
			})
			t.Run("no-refresh", func(t *testing.T) {
				t.Parallel()
				testAnnounceNoRefresh(t, fam.vip)
			})
		})
	}
}

// burstGap separates two bursts of one sender: the messages of a burst leave back to back,
// and two bursts here are at least 500 ms apart.
const burstGap = 150 * time.Millisecond

// 1. count 3, repeatDelay 500ms, refreshInterval 1s, refreshCount 2: n1's takeover sends 3
// messages, 3 more 500 ms later, then 2 every second. After a SIGTERM n2 takes over and
// refreshes in turn; when n1 is back and preempts, n2 steps down and sends none from then on,
// while n1 refreshes.
func testAnnounceRefresh(t *testing.T, vip netip.Prefix) {
	g, c := announceGroup(t, vip, "announcements: {count: 3, repeatDelay: 500ms, refreshInterval: 1s, refreshCount: 2}")
	n1, n2 := g.l.Node(1), g.l.Node(2)

	bs := c.waitBursts(t, n1, 3500*time.Millisecond)
	t.Logf("n1 after its takeover: %s", bs)
	if got, want := bs.sizes(), "3 3 2 2 2"; got != want {
		t.Errorf("n1's bursts in the 3.5 s after its takeover: %s, want %s (count 3 twice, then refreshCount 2 every 1 s)", got, want)
	} else {
		bs.checkSpacing(t, n1, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second})
	}

	stopped := g.sigterm(n1)
	g.expectMaster(n2)
	c.from = stopped
	bs = c.waitBursts(t, n2, 2500*time.Millisecond)
	refreshes := 0
	for _, b := range bs {
		if b.n == 2 {
			refreshes++
		}
	}
	if refreshes < 2 {
		t.Errorf("n2's bursts in the 2.5 s after it took over: %s, want at least two refreshes of 2", bs)
	}

	g.start(n1)
	g.expectMaster(n1)
	down := g.transitionTo(g.proc(n2), "Backup")
	if down.Reason != "HigherPriorityMaster" {
		t.Errorf("n2 stepped down for %q, want HigherPriorityMaster", down.Reason)
	}
	// What n2 sent up to its step-down may still be on its way for a moment.
	quietFrom := down.Since.Add(100 * time.Millisecond)
	time.Sleep(time.Until(down.Since.Add(3500 * time.Millisecond)))
	after := c.bursts(n2, quietFrom, time.Now())
	t.Logf("n2 before its step-down: %s; after it: %s", c.bursts(n2, stopped, quietFrom), after)
	if len(after) > 0 {
		t.Errorf("n2 announced %s after stepping down at %s", after, down.Since.Format("15:04:05.000"))
	}
	refreshes = 0
	for _, b := range c.bursts(n1, down.Since.Add(time.Second), time.Now()) {
		if b.n == 2 {
			refreshes++
		}
	}
	if refreshes < 2 {
		t.Errorf("n1 sent %d refreshes of 2 from 1 s to 3.5 s after taking over again, want 2 or more: %s",
			refreshes, c.bursts(n1, down.Since, time.Now()))
	}
}

// 2. count 1, repeatDelay 500ms, no refreshInterval: n1's takeover sends one message, one
// more 500 ms later, and nothing after that.
func testAnnounceNoRefresh(t *testing.T, vip netip.Prefix) {
	g, c := announceGroup(t, vip, "announcements: {count: 1, repeatDelay: 500ms}")
	n1 := g.l.Node(1)
	bs := c.waitBursts(t, n1, 4*time.Second)
	t.Logf("n1 after its takeover: %s", bs)
	if got, want := bs.sizes(), "1 1"; got != want {
		t.Errorf("n1's bursts in the 4 s after its takeover: %s, want %s (count 1, twice, no refresh)", got, want)
	} else {
		bs.checkSpacing(t, n1, []time.Duration{500 * time.Millisecond})
	}
}

// announceGroup is newGroup (staggered: n1 alone first, so that its takeover is the only one)
// with the capture of the client's announcements open before any speaker starts, and extra
// under the VirtualIP's spec.
func announceGroup(t *testing.T, vip netip.Prefix, extra string) (*group, *announceCapture) {
	t.Helper()
	l := lab.New(t, lab.Options{Nodes: 3, Nice: nice})
	g := &group{t: t, l: l, vip: vip, nodes: l.Nodes()[:3], procs: map[string]*lab.Proc{}}
	g.spec = lab.VirtualIP{
		VRID: 51, Version: 3, AdvertInt: interval, Addresses: []netip.Prefix{vip},
		NodePriorities: priorities, Extra: []string{extra},
	}
	c := captureAnnouncements(t, l.Client(), vip.Addr())
	c.from = time.Now()
	n1 := l.Node(1)
	g.start(n1)
	if err := lab.WaitHolders(g.nodes, vip, []*lab.Node{n1}, settle); err != nil {
		t.Fatal(err)
	}
	g.start(l.Node(2))
	g.start(l.Node(3))
	g.expectMaster(n1)
	return g, c
}

// announceCapture records the gratuitous ARPs or unsolicited neighbour advertisements for one
// address that reach the client: when, and from which MAC address.
type announceCapture struct {
	// from is where waitBursts starts looking.
	from time.Time

	mu   sync.Mutex
	seen []announcement
}

type announcement struct {
	at  time.Time
	mac string
}

// captureAnnouncements opens a packet socket on the client's lab link, in its namespace, and
// records the announcements of ip until the test ends.
func captureAnnouncements(t *testing.T, client *lab.Node, ip netip.Addr) *announceCapture {
	t.Helper()
	proto, match := uint16(unix.ETH_P_ARP), garpOf
	if ip.Is6() {
		proto, match = unix.ETH_P_IPV6, unsolicitedNAOf
	}
	var conn *packet.Conn
	if err := client.InNetns(func() error {
		ifi, err := net.InterfaceByName(client.Interface)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, int(proto), nil)
		return err
	}); err != nil {
		t.Fatalf("packet socket in the client's namespace: %v", err)
	}
	c := &announceCapture{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			if mac, ok := match(buf[:n], ip); ok {
				c.mu.Lock()
				c.seen = append(c.seen, announcement{time.Now(), mac})
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
	})
	return c
}

// garpOf reports whether frame is a gratuitous ARP request for ip (sender and target
// protocol address ip), and its sender's MAC address.
func garpOf(frame []byte, ip netip.Addr) (string, bool) {
	if len(frame) < 42 || binary.BigEndian.Uint16(frame[12:14]) != unix.ETH_P_ARP {
		return "", false
	}
	a := frame[14:]
	spa, tpa := netip.AddrFrom4([4]byte(a[14:18])), netip.AddrFrom4([4]byte(a[24:28]))
	if binary.BigEndian.Uint16(a[6:8]) != 1 || spa != ip || tpa != ip {
		return "", false
	}
	return net.HardwareAddr(frame[6:12]).String(), true
}

// unsolicitedNAOf reports whether frame is an unsolicited neighbour advertisement for ip (to
// all nodes, Solicited clear), and its sender's MAC address.
func unsolicitedNAOf(frame []byte, ip netip.Addr) (string, bool) {
	if len(frame) < 14+40+24 || binary.BigEndian.Uint16(frame[12:14]) != unix.ETH_P_IPV6 {
		return "", false
	}
	h, m := frame[14:54], frame[54:]
	dst := netip.AddrFrom16([16]byte(h[24:40]))
	if h[6] != unix.IPPROTO_ICMPV6 || m[0] != 136 || dst != netip.MustParseAddr("ff02::1") ||
		m[4]&0x40 != 0 || netip.AddrFrom16([16]byte(m[8:24])) != ip {
		return "", false
	}
	return net.HardwareAddr(frame[6:12]).String(), true
}

// burst is the messages a sender sent back to back: when the first arrived, and how many.
type burst struct {
	at time.Time
	n  int
}

type bursts []burst

func (bs bursts) sizes() string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = fmt.Sprint(b.n)
	}
	return strings.Join(s, " ")
}

func (bs bursts) String() string {
	if len(bs) == 0 {
		return "none"
	}
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = fmt.Sprintf("%d at +%v", b.n, b.at.Sub(bs[0].at).Round(time.Millisecond))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// checkSpacing checks that the bursts after the first came want after it, each within
// -100 ms..+300 ms (the later bound for a loaded machine's timers).
func (bs bursts) checkSpacing(t *testing.T, n *lab.Node, want []time.Duration) {
	t.Helper()
	for i, w := range want {
		got := bs[i+1].at.Sub(bs[0].at)
		if got < w-100*time.Millisecond || got > w+300*time.Millisecond {
			t.Errorf("%s's burst %d came %v after the first, want %v: %s", n, i+2, got.Round(time.Millisecond), w, bs)
		}
	}
}

// bursts returns n's announcements from from to to, grouped into bursts.
func (c *announceCapture) bursts(n *lab.Node, from, to time.Time) bursts {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bs bursts
	var last time.Time
	for _, a := range c.seen {
		if a.mac != n.MAC.String() || a.at.Before(from) || a.at.After(to) {
			continue
		}
		if len(bs) == 0 || a.at.Sub(last) > burstGap {
			bs = append(bs, burst{at: a.at})
		}
		bs[len(bs)-1].n++
		last = a.at
	}
	return bs
}

// waitBursts waits for n's first announcement since c.from, then d more, and returns n's
// bursts from the first for d.
func (c *announceCapture) waitBursts(t *testing.T, n *lab.Node, d time.Duration) bursts {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		if bs := c.bursts(n, c.from, time.Now()); len(bs) > 0 {
			first := bs[0].at
			time.Sleep(time.Until(first.Add(d)))
			return c.bursts(n, first, first.Add(d))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announcement from %s (%s) reached the client within %v", n, n.MAC, settle)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
