//go:build linux

package hostnet

import (
	"net/netip"
	"testing"
	"time"
)

// A VLAN, bond or netplan rebuild deletes the interface and creates it again under the same
// name with a new index. The link-state watch reports it down, then follows the new link and
// reports it up, without being restarted.
func TestWatchLinkStateFollowsRecreatedLink(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	n.waitOperUp(t, "d0")
	l, err := n.host(t).Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	w := startStateWatch(t, l)
	w.want(true)
	old := n.link(t, "d0").Attrs().Index
	if err := n.nl.LinkDel(n.link(t, "d0")); err != nil {
		t.Fatal(err)
	}
	w.want(false)
	n.addLink(t, "d0")
	if idx := n.link(t, "d0").Attrs().Index; idx == old {
		t.Fatalf("recreated link has the old index %d", idx)
	}
	w.want(true)
	n.setLink(t, "d0p", false) // and its carrier is followed on the new link
	w.want(false)
	w.stop()
}

// The VRRP socket is bound to the link's index. After the link is deleted and created again,
// a ReadPacket pending across the rebuild receives on the new link, and WriteTo sends on it.
func TestPacketConnFollowsRecreatedLink(t *testing.T) {
	l := newLab(t)
	ha, hb := l.a.host(t), l.b.host(t)
	srcA, srcB := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	ca := listen(t, ha, "a0", srcA)
	cb := listen(t, hb, "b0", srcB)
	advert := []byte{0x31, 51, 100, 1, 0x00, 0x64, 0xab, 0xcd, 198, 18, 0, 100}

	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 1500)
		_, err := ca.ReadPacket(buf) // pending across the rebuild
		got <- err
	}()
	oldA := l.aIndex
	if err := l.a.nl.LinkDel(l.a.link(t, "a0")); err != nil { // takes b0 with it
		t.Fatal(err)
	}
	l.connect(t)
	if l.aIndex == oldA {
		t.Fatalf("recreated a0 has the old index %d", oldA)
	}
	// The reopen follows the link's creation asynchronously: send until a receives.
	deadline := time.Now().Add(5 * time.Second)
	for received := false; !received; {
		if err := cb.WriteTo(advert, groupV4); err != nil {
			t.Logf("b WriteTo: %v", err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("ReadPacket across the rebuild: %v", err)
			}
			received = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("a received nothing on the recreated link")
			}
		}
	}
	// And a sends on the new link, to the group and to b's address.
	for _, dst := range []netip.Addr{groupV4, srcB} {
		if err := ca.WriteTo(advert, dst); err != nil {
			t.Fatalf("a WriteTo %s after the rebuild: %v", dst, err)
		}
		if p := readPacket(t, cb); p.Src != srcA || p.IfIndex != l.bIndex {
			t.Errorf("b received %+v, want from %s on index %d", p, srcA, l.bIndex)
		}
	}
	// IPv6 too: link-local destinations carry the new link's index as their zone.
	c6a := listen(t, ha, "a0", l.aLinkLocal)
	c6b := listen(t, hb, "b0", l.bLinkLocal)
	if err := l.a.nl.LinkDel(l.a.link(t, "a0")); err != nil {
		t.Fatal(err)
	}
	l.connect(t)
	from := make(chan netip.Addr, 1)
	go func() {
		buf := make([]byte, 1500)
		p, err := c6b.ReadPacket(buf)
		if err != nil {
			t.Errorf("b ReadPacket: %v", err)
		}
		from <- p.Src
	}()
	deadline = time.Now().Add(5 * time.Second)
	for {
		err := c6a.WriteTo(advert, l.bLinkLocal)
		select {
		case src := <-from:
			if src != l.aLinkLocal {
				t.Errorf("b received from %s, want %s", src, l.aLinkLocal)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's IPv6 socket does not reach b on the recreated link (last send: %v)", err)
		}
	}
}
