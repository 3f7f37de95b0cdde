package packet_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// fuzzEndpoints are the IP source and destination pairs FuzzParse decodes with: multicast and
// unicast, IPv4 and IPv6.
var fuzzEndpoints = [][2]netip.Addr{
	{src4, mcast},
	{src4, netip.MustParseAddr("192.168.1.12")},
	{src6, mc6},
	{netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("2001:db8::12")},
}

// FuzzParse checks that Parse never panics on any input, and that whatever it accepts is a
// message Marshal would have produced: encoding the decoded advert gives the same bytes (RFC 5798
// §5.2, RFC 3768 §5.3). The only bits Parse may drop are the reserved ones (RFC 5798 §5.2.6:
// ignored on reception), which also changes the checksum.
func FuzzParse(f *testing.F) {
	for _, b := range [][]byte{kaV2Pass, kaV3IPv4Pseudo, kaV3IPv4RFC9568} {
		f.Add(b, uint8(0))
	}
	f.Add(kaV3IPv6, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, ep uint8) {
		e := fuzzEndpoints[int(ep)%len(fuzzEndpoints)]
		src, dst := e[0], e[1]
		checkParse(t, b, src, dst)
		if len(b) >= 8 {
			// A random checksum is almost never right; also try the input with a correct one so
			// the fuzzer reaches the rules after the checksum.
			fixed := setChecksum(append([]byte(nil), b...), src, dst, b[0]>>4 == 3)
			checkParse(t, fixed, src, dst)
		}
	})
}

func checkParse(t *testing.T, b []byte, src, dst netip.Addr) {
	t.Helper()
	adv, err := packet.Parse(b, src, dst)
	if err != nil {
		if adv != nil {
			t.Fatalf("Parse returned an advert with error %v", err)
		}
		if packet.ReasonOf(err) == "" {
			t.Fatalf("Parse error %v has no Reason", err)
		}
		return
	}
	if len(adv.Addresses) == 0 || adv.Interval <= 0 {
		t.Fatalf("Parse accepted %+v", adv)
	}
	want := append([]byte(nil), b...)
	if adv.Version == 3 && want[4]&0xf0 != 0 {
		// RFC 5798 §5.2.6: reserved bits are sent as zero; compare everything else.
		want[4] &= 0x0f
		want[6], want[7] = 0, 0
	}
	got, err := adv.Marshal(src, dst, packet.ChecksumPseudoHeader)
	if err != nil {
		t.Fatalf("Marshal(Parse(b)) = %v for %+v", err, adv)
	}
	if b[4]&0xf0 != 0 && adv.Version == 3 {
		got[6], got[7] = 0, 0
	}
	if !cmp.Equal(want, got) {
		// RFC 9568 §5.2.8: a v3 IPv4 message may carry the message-only checksum.
		if adv.Version != 3 || !src.Is4() {
			t.Fatalf("re-marshal differs (-in +out):\n%s", cmp.Diff(want, got))
		}
		got, err = adv.Marshal(src, dst, packet.ChecksumRFC9568)
		if err != nil {
			t.Fatalf("Marshal RFC 9568: %v", err)
		}
		if b[4]&0xf0 != 0 {
			got[6], got[7] = 0, 0
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("re-marshal differs in both checksum forms (-in +out):\n%s", diff)
		}
	}
	// Whatever was accepted decodes again to the same advert.
	again, err := packet.Parse(mustMarshal(t, adv, src, dst), src, dst)
	if err != nil {
		t.Fatalf("Parse(Marshal(Parse(b))): %v", err)
	}
	if diff := cmp.Diff(adv, again, cmpAddr); diff != "" {
		t.Fatalf("decode of re-encoded advert differs (-first +second):\n%s", diff)
	}
}

func mustMarshal(t *testing.T, a *packet.Advertisement, src, dst netip.Addr) []byte {
	t.Helper()
	b, err := a.Marshal(src, dst, packet.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
