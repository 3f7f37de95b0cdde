package vmac_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// takeoverFrames returns, from what n sent into the switch (cap), its VRRP adverts of the
// group and its announcements of vip, in order, as "advert prio 100 from MAC" and
// "announce VIP from MAC".
func takeoverFrames(frames []lab.Frame, n *lab.Node, vip netip.Addr) []string {
	src := n.IPv4
	if vip.Is6() {
		src = n.LinkLocal.WithZone("")
	}
	var out []string
	for _, f := range frames {
		if s, id, prio, ok := f.VRRP(); ok && s == src && id == vrid {
			out = append(out, fmt.Sprintf("advert prio %d from %s", prio, f.Src))
		} else if a, ok := f.Announcement(); ok && a == vip {
			out = append(out, fmt.Sprintf("announce %s from %s", a, f.Src))
		}
	}
	return out
}

// checkTakeover checks that the first thing n sent for the group after it had been silent is
// an advert claiming the role from the virtual MAC, before any announcement (RFC 5798
// §6.4.1/§6.4.2: advert, then gratuitous ARP / NA), and that everything it sent came from the
// virtual MAC.
func (g *group) checkTakeover(what string, n *lab.Node, frames []lab.Frame) {
	g.t.Helper()
	seen := takeoverFrames(frames, n, g.vip.Addr())
	if len(seen) == 0 {
		g.t.Errorf("%s: %s sent no advert or announcement into the switch", what, n)
		return
	}
	mac := g.mac().String()
	if !strings.HasPrefix(seen[0], "advert prio ") || !strings.HasSuffix(seen[0], " from "+mac) || strings.HasPrefix(seen[0], "advert prio 0 ") {
		g.t.Errorf("%s: the first frame %s sent is %q, want an advert from the virtual MAC %s; all:\n%s",
			what, n, seen[0], mac, strings.Join(seen, "\n"))
	}
	for _, s := range seen {
		if !strings.HasSuffix(s, " from "+mac) {
			g.t.Errorf("%s: %s sent %q, not from the virtual MAC %s", what, n, s, mac)
		}
	}
	g.t.Logf("%s: %s sent first %s", what, n, strings.Join(seen[:min(3, len(seen))], ", "))
}

// docs/design.md §5.9: with virtualMAC a takeover binds first (which sets the macvlan up) and
// then sends its first advert, so the switch sees the claim itself come from the virtual MAC
// on the new MASTER's port, and the announcements after it. Seen from the switch, at the
// backup's port, on the Master_Down_Timer takeover after a link cut of the MASTER, and at the
// preempting node's port when it comes back. (Before, the first advert left from the parent's
// MAC.)
func TestTakeoverFirstAdvertFromVirtualMAC(t *testing.T) {
	privtest.Require(t)
	lab.KubeVRRPBinary(t)
	for _, c := range []struct {
		name string
		vip  netip.Prefix
	}{{"ipv4", vip4}, {"ipv6", vip6}} {
		t.Run(c.name, func(t *testing.T) {
			l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
			n1, n2 := l.Node(1), l.Node(2)
			g := newGroup(t, l, c.vip, true)
			g.startBoth()

			cap2, err := n2.Capture()
			if err != nil {
				t.Fatal(err)
			}
			if err := n1.CutLink(); err != nil {
				t.Fatal(err)
			}
			g.wait(n2, "Master")
			time.Sleep(300 * time.Millisecond) // adverts and the first burst
			g.checkTakeover("link cut, Master_Down_Timer", n2, cap2.Stop())

			// n1 comes back fresh and preempts.
			g.stop(n1)
			if err := n1.RestoreLink(); err != nil {
				t.Fatal(err)
			}
			cap1, err := n1.Capture()
			if err != nil {
				t.Fatal(err)
			}
			g.start(n1)
			g.wait(n1, "Master")
			g.wait(n2, "Backup")
			time.Sleep(300 * time.Millisecond)
			g.checkTakeover("preemption", n1, cap1.Stop())
		})
	}
}
