package lbpool

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

func TestParseEntry(t *testing.T) {
	for _, c := range []struct {
		s      string
		family int
		want   string // the range, or the error
		err    error
	}{
		{"198.18.0.96/28", 4, "198.18.0.96-198.18.0.111", nil},
		{"198.18.0.100-198.18.0.120", 4, "198.18.0.100-198.18.0.120", nil},
		{"198.18.0.7-198.18.0.7", 4, "198.18.0.7-198.18.0.7", nil},
		{"198.18.0.7/32", 4, "198.18.0.7-198.18.0.7", nil},
		{"198.18.0.100-198.19.0.3", 4, "198.18.0.100-198.19.0.3", nil},
		{"2001:db8::/120", 6, "2001:db8::-2001:db8::ff", nil},
		{"2001:db8::100-2001:DB8::01ff", 6, "2001:db8::100-2001:db8::1ff", nil},
		{"2001:db8::/64", 6, "2001:db8::-2001:db8::ffff:ffff:ffff:ffff", nil},
		{"198.18.0.5/28", 4, "", ErrNetwork},
		{"198.18.0.120-198.18.0.100", 4, "", ErrOrder},
		{"198.18.0.1", 4, "", ErrSyntax},
		{"198.18.0.01-198.18.0.5", 4, "", ErrSyntax},
		{"198.18.0.1 - 198.18.0.5", 4, "", ErrSyntax},
		{"fe80::1%eth0-fe80::5", 6, "", ErrSyntax},
		{"::ffff:198.18.0.0/120", 6, "", ErrSyntax},
		{"2001:db8::/120", 4, "", ErrFamily},
		{"198.18.0.0-2001:db8::1", 4, "", ErrFamily},
		{"2001:db8::c612:1-2001:db8::198.18.0.5", 6, "", ErrHex},
		{"2001:db8::100-2001:db8::1:0", 6, "", ErrSpan},
		{"2001:db8::1ff-2001:db8::100", 6, "", ErrOrder},
		{"126.0.0.0-128.0.0.0", 4, "", ErrUnicast},
		{"224.0.0.0/4", 4, "", ErrUnicast},
		{"240.0.0.0/4", 4, "", ErrUnicast}, // holds 255.255.255.255
		{"0.0.0.0-0.0.0.5", 4, "", ErrUnicast},
		{"ff02::/16", 6, "", ErrUnicast},
		{"::-::5", 6, "", ErrUnicast},
	} {
		e, err := ParseEntry(c.s, c.family)
		switch {
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("%s (IPv%d): err %v, want %v", c.s, c.family, err, c.err)
		case c.err == nil && err != nil:
			t.Errorf("%s (IPv%d): %v", c.s, c.family, err)
		case c.err == nil && e.String() != c.want:
			t.Errorf("%s (IPv%d) = %s, want %s", c.s, c.family, e, c.want)
		}
	}
}

func family(t *testing.T, f int, first, last int32, entries ...string) Family {
	t.Helper()
	fam := Family{Family: f, FirstVRID: first, LastVRID: last}
	for _, s := range entries {
		e, err := ParseEntry(s, f)
		if err != nil {
			t.Fatal(err)
		}
		fam.Entries = append(fam.Entries, e)
	}
	return fam
}

// The n-th address of the entries, in order, has the n-th VRID; the shorter of the two decides
// how many the family offers.
func TestPairs(t *testing.T) {
	f := family(t, 4, 10, 14, "198.18.0.100-198.18.0.102", "198.18.0.96/30")
	if got := f.Len(); got != 5 {
		t.Fatalf("Len = %d, want 5 (7 addresses, 5 VRIDs)", got)
	}
	want := []string{"198.18.0.100=10", "198.18.0.101=11", "198.18.0.102=12", "198.18.0.96=13", "198.18.0.97=14"}
	var got []string
	for i := range f.Len() {
		a, vrid := f.At(i)
		got = append(got, fmt.Sprintf("%s=%d", a, vrid))
		j, v, ok := f.Index(a)
		if !ok || j != i || v != vrid {
			t.Errorf("Index(%s) = %d, %d, %v; want %d, %d", a, j, v, ok, i, vrid)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pairs %v, want %v", got, want)
	}
	for _, s := range []string{"198.18.0.98", "198.18.0.99", "198.18.0.103", "198.18.0.95"} {
		if _, _, ok := f.Index(netip.MustParseAddr(s)); ok {
			t.Errorf("Index(%s) found: it has no VRID or is not in the pool", s)
		}
	}
	if !f.Contains(netip.MustParseAddr("198.18.0.99")) || f.Contains(netip.MustParseAddr("198.18.0.103")) {
		t.Error("Contains is wrong")
	}

	// A /64 offers as many addresses as it has VRIDs.
	f6 := family(t, 6, 1, 255, "2001:db8::/64")
	if got := f6.Len(); got != 255 {
		t.Errorf("IPv6 /64 with 255 VRIDs: Len = %d", got)
	}
	if a, v := f6.At(254); a != netip.MustParseAddr("2001:db8::fe") || v != 255 {
		t.Errorf("At(254) = %s, %d", a, v)
	}
	if got := f6.Addresses(); got != 65536 {
		t.Errorf("Addresses of a /64 = %d, want the cap 65536", got)
	}
	// Carry across bytes.
	f4 := family(t, 4, 1, 3, "198.18.0.255-198.18.1.1")
	if a, _ := f4.At(1); a != netip.MustParseAddr("198.18.1.0") {
		t.Errorf("At(1) = %s, want 198.18.1.0", a)
	}
	// A VRID range out of bounds offers nothing.
	if n := family(t, 4, 0, 3, "198.18.0.0/30").Len(); n != 0 {
		t.Errorf("VRIDs 0-3: Len = %d, want 0", n)
	}

	a, b := family(t, 4, 10, 20, "198.18.0.0/28"), family(t, 4, 20, 30, "198.18.0.15-198.18.0.20")
	if addrs, vrids := a.Overlaps(b); !addrs || !vrids {
		t.Errorf("Overlaps = %v, %v; want true, true", addrs, vrids)
	}
	c := family(t, 4, 21, 30, "198.18.0.16-198.18.0.20")
	if addrs, vrids := a.Overlaps(c); addrs || vrids {
		t.Errorf("disjoint: Overlaps = %v, %v", addrs, vrids)
	}
}

// Name is one name per address, a valid object name, and the same for every spelling.
func TestName(t *testing.T) {
	for s, want := range map[string]string{
		"198.18.0.100":      "lb-198-18-0-100",
		"2001:db8::100":     "lb-2001-db8--100",
		"2001:DB8::":        "lb-2001-db8--0",
		"2001:db8:0:0:1::1": "lb-2001-db8--1-0-0-1",
	} {
		if got := Name(netip.MustParseAddr(s)); got != want {
			t.Errorf("Name(%s) = %s, want %s", s, got, want)
		}
	}
	seen := map[string]netip.Addr{}
	f := []Family{family(t, 4, 1, 255, "198.18.0.0/24"), family(t, 6, 1, 255, "2001:db8::/64"), family(t, 6, 1, 255, "2001:db8:0:1::/64"),
		family(t, 6, 1, 255, "::100-::1ff"), family(t, 4, 1, 255, "1.0.0.0/24")}
	for _, fam := range f {
		for i := range fam.Len() {
			a, _ := fam.At(i)
			n := Name(a)
			if prev, dup := seen[n]; dup {
				t.Fatalf("%s and %s are both %s", prev, a, n)
			}
			seen[n] = a
			if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
				t.Fatalf("Name(%s) = %s: %v", a, n, msgs)
			}
		}
	}
}

func testPool() *v1alpha1.VirtualIPPool {
	return &v1alpha1.VirtualIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "lan"},
		Spec: v1alpha1.VirtualIPPoolSpec{
			IPv4: &v1alpha1.IPv4Pool{Addresses: []string{"198.18.0.100-198.18.0.120"}, PrefixLength: ptr.To[int32](24), VRIDs: v1alpha1.VRIDRange{First: 100, Last: 120}},
			IPv6: &v1alpha1.IPv6Pool{Addresses: []string{"2001:db8::100-2001:db8::1ff"}, PrefixLength: ptr.To[int32](64), VRIDs: v1alpha1.VRIDRange{First: 100, Last: 120}},
			Template: v1alpha1.VirtualIPTemplate{
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}},
				Priority:     ptr.To[int32](100),
				Unicast:      &v1alpha1.UnicastSpec{Peers: []string{"198.18.0.11", "2001:db8::11"}},
			},
		},
	}
}

// The VirtualIP of an allocation: the template, the address with the family's prefix length,
// the peers of its family, named after the address and labelled with its Service and pool; the
// agent's rules accept it.
func TestVirtualIP(t *testing.T) {
	pool := testPool()
	if errs := Validate(pool); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs.ToAggregate())
	}
	fs, err := Families(pool)
	if err != nil || len(fs) != 2 {
		t.Fatalf("Families: %v, %v", fs, err)
	}
	owner := Owner{Namespace: "web", Name: "front", UID: "0b3f6f8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"}
	for _, f := range fs {
		a, vrid := f.At(3)
		vip := VirtualIP(pool, f, a, vrid, owner)
		if errs := desired.Validate(vip); len(errs) > 0 {
			t.Errorf("IPv%d: desired.Validate: %v", f.Family, errs.ToAggregate())
		}
		if vip.Name != Name(a) || vip.Spec.VRID != 103 {
			t.Errorf("IPv%d: name %s, vrid %d", f.Family, vip.Name, vip.Spec.VRID)
		}
		wantAddr, wantPeer := "198.18.0.103/24", "198.18.0.11"
		if f.Family == 6 {
			wantAddr, wantPeer = "2001:db8::103/64", "2001:db8::11"
		}
		if !slices.Equal(vip.Spec.Addresses, []string{wantAddr}) || !slices.Equal(vip.Spec.Unicast.Peers, []string{wantPeer}) {
			t.Errorf("IPv%d: addresses %v, peers %v", f.Family, vip.Spec.Addresses, vip.Spec.Unicast.Peers)
		}
		if got, ok := AddressOf(vip); !ok || got != a {
			t.Errorf("AddressOf = %s", got)
		}
		for k, v := range map[string]string{v1alpha1.LabelServiceNamespace: "web", v1alpha1.LabelServiceName: "front",
			v1alpha1.LabelServiceUID: owner.UID, v1alpha1.LabelPool: "lan"} {
			if vip.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, vip.Labels[k], v)
			}
		}
	}
	// The pool's template is not changed by it.
	if len(pool.Spec.Template.Unicast.Peers) != 2 {
		t.Errorf("the template's peers were changed: %v", pool.Spec.Template.Unicast.Peers)
	}
	// Without a prefix length, a bare address.
	pool.Spec.IPv4.PrefixLength = nil
	f, _ := FamilyOf(pool, 4)
	a, vrid := f.At(0)
	if vip := VirtualIP(pool, f, a, vrid, owner); vip.Spec.Addresses[0] != "198.18.0.100" {
		t.Errorf("bare address: %v", vip.Spec.Addresses)
	}
}
