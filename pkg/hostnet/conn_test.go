//go:build linux

package hostnet

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// readPacket reads one packet from c or fails the test after a few seconds.
func readPacket(t *testing.T, c vrrp.PacketConn) vrrp.Packet {
	t.Helper()
	type result struct {
		p   vrrp.Packet
		err error
	}
	ch := make(chan result, 1)
	go func() {
		buf := make([]byte, 1500)
		p, err := c.ReadPacket(buf)
		ch <- result{p, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("ReadPacket: %v", r.err)
		}
		return r.p
	case <-time.After(3 * time.Second):
		_ = c.Close()
		<-ch
		t.Fatal("ReadPacket: nothing received")
	}
	return vrrp.Packet{}
}

func listen(t *testing.T, h *Host, ifname string, src netip.Addr) vrrp.PacketConn {
	t.Helper()
	c, err := h.Listen(ifname, src)
	if err != nil {
		t.Fatalf("Listen(%s, %s): %v", ifname, src, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestPacketConn sends an advert from a to b and a reply from b to a, over multicast and
// unicast, IPv4 and IPv6. The reply being the first thing a reads shows multicast loopback is
// off; sources other than the kernel's own choice show WriteTo forces the source.
func TestPacketConn(t *testing.T) {
	l := newLab(t)
	ha, hb := l.a.host(t), l.b.host(t)
	ip := netip.MustParseAddr
	tests := []struct {
		name       string
		srcA, srcB netip.Addr
		// toB is where a sends; b replies to the group, or to srcA for unicast.
		toB netip.Addr
	}{
		{"v4 multicast", ip("198.18.0.1"), ip("198.18.0.2"), groupV4},
		// Without IP_PKTINFO the kernel would send from the primary 198.18.0.1.
		{"v4 multicast from a secondary address", ip("198.18.0.3"), ip("198.18.0.2"), groupV4},
		{"v4 unicast", ip("198.18.0.1"), ip("198.18.0.2"), ip("198.18.0.2")},
		{"v4 unicast from a secondary address", ip("198.18.0.3"), ip("198.18.0.2"), ip("198.18.0.2")},
		{"v6 multicast", l.aLinkLocal, l.bLinkLocal, groupV6},
		// Without IPV6_PKTINFO the kernel would send to ff02::12 from the link-local address.
		{"v6 multicast from a global address", ip("2001:db8::1"), l.bLinkLocal, groupV6},
		{"v6 unicast", ip("2001:db8::1"), ip("2001:db8::2"), ip("2001:db8::2")},
		{"v6 unicast from another address", ip("2001:db8::3"), ip("2001:db8::2"), ip("2001:db8::2")},
		{"v6 unicast link-local", l.aLinkLocal, l.bLinkLocal, l.bLinkLocal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := listen(t, ha, "a0", tt.srcA)
			cb := listen(t, hb, "b0", tt.srcB)
			advert := []byte{0x31, 51, 100, 1, 0x00, 0x64, 0xab, 0xcd, 198, 18, 0, 100}
			reply := []byte{0x31, 51, 90, 1, 0x00, 0x64, 0x12, 0x34, 198, 18, 0, 100}
			toA := tt.srcA
			if tt.toB.IsMulticast() {
				toA = tt.toB
			}

			if err := ca.WriteTo(advert, tt.toB); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			want := vrrp.Packet{Src: tt.srcA, Dst: tt.toB, TTL: 255, IfIndex: l.bIndex, Data: advert}
			if diff := cmp.Diff(want, readPacket(t, cb), netipOpt); diff != "" {
				t.Errorf("b received (-want +got):\n%s", diff)
			}

			if err := cb.WriteTo(reply, toA); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			want = vrrp.Packet{Src: tt.srcB, Dst: toA, TTL: 255, IfIndex: l.aIndex, Data: reply}
			if diff := cmp.Diff(want, readPacket(t, ca), netipOpt); diff != "" {
				t.Errorf("a received (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPacketConnRejects(t *testing.T) {
	l := newLab(t)
	h := l.a.host(t)
	c4 := listen(t, h, "a0", netip.MustParseAddr("198.18.0.1"))
	c6 := listen(t, h, "a0", netip.MustParseAddr("2001:db8::1"))
	tests := []struct {
		name string
		c    vrrp.PacketConn
		b    []byte
		dst  netip.Addr
	}{
		{"empty", c4, nil, groupV4},
		{"v6 destination on a v4 socket", c4, []byte{1}, groupV6},
		{"v4 destination on a v6 socket", c6, []byte{1}, groupV4},
		{"no destination", c4, []byte{1}, netip.Addr{}},
		{"unspecified destination", c6, []byte{1}, netip.IPv6Unspecified()},
	}
	for _, tt := range tests {
		if err := tt.c.WriteTo(tt.b, tt.dst); err == nil {
			t.Errorf("%s: WriteTo succeeded", tt.name)
		}
	}
	if _, err := h.Listen("a0", netip.Addr{}); err == nil {
		t.Error("Listen without a source succeeded")
	}
	if _, err := h.Listen("nosuchlink", netip.MustParseAddr("198.18.0.1")); err == nil {
		t.Error("Listen on a missing link succeeded")
	}
}

func TestCloseUnblocksReadPacket(t *testing.T) {
	l := newLab(t)
	c, err := l.a.host(t).Listen("a0", netip.MustParseAddr("198.18.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadPacket(make([]byte, 1500))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let ReadPacket block
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadPacket after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("ReadPacket still blocked after Close")
	}
}
