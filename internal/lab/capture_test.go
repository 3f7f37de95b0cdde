package lab_test

import (
	"bytes"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// A Capture on a node's bridge port records what the node sends (its ARP requests and pings,
// from its MAC) and nothing the switch sends to it (the client's replies); an ARP request for
// another address is no announcement, a ping no VRRP. (test/vmac decodes announcements and
// adverts with it.)
func TestCapture(t *testing.T) {
	privtest.Require(t)
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1})
	n, client := l.Node(1), l.Client()
	c, err := n.Capture()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ping(client.IPv4, 2); err != nil {
		t.Fatal(err)
	}
	frames := c.Stop()
	var arps, pings int
	for _, f := range frames {
		if !bytes.Equal(f.Src, n.MAC) {
			t.Errorf("captured a frame from %s on %s's port: %x", f.Src, n, f.Payload)
			continue
		}
		if a, ok := f.Announcement(); ok {
			t.Errorf("a frame decoded as an announcement of %s: %x", a, f.Payload)
		}
		switch f.EtherType {
		case 0x0806:
			arps++
		case 0x0800:
			pings++
		}
		if _, _, _, ok := f.VRRP(); ok {
			t.Errorf("a frame that is no VRRP decoded as VRRP: %x", f.Payload)
		}
	}
	if arps == 0 || pings < 2 {
		t.Errorf("captured %d ARP requests and %d IPv4 frames from %s, want its ARP request and 2 pings:\n%v", arps, pings, n, frames)
	}
	t.Logf("%d frames: %d ARP requests, %d IPv4", len(frames), arps, pings)
}
