//go:build linux

package hostnet

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// addrState is what the address tests look at.
type addrState struct {
	Marked    bool
	Tentative bool
}

// testAddrs returns the state of ifname's addresses within the test ranges (link-locals
// excluded), keyed by prefix.
func testAddrs(t *testing.T, n *testNS, ifname string) map[netip.Prefix]addrState {
	t.Helper()
	ranges := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:db8::/32")}
	got := map[netip.Prefix]addrState{}
	for _, a := range n.addrs(t, ifname) {
		if slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return r.Contains(a.Prefix.Addr()) }) {
			got[a.Prefix] = addrState{Marked: a.ours(), Tentative: a.Flags&unix.IFA_F_TENTATIVE != 0}
		}
	}
	return got
}

// vethNS is a namespace with a veth pair x0-x1, both up and both in it, with duplicate address
// detection on: an IPv6 address added without NODAD stays tentative for a second.
func vethNS(t *testing.T) *testNS {
	t.Helper()
	n := newTestNS(t)
	if err := n.nl.LinkAdd(vethPair("x0", "x1")); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	n.sysctl(t, "net/ipv6/conf/x0/accept_dad", "1")
	n.sysctl(t, "net/ipv6/conf/x0/dad_transmits", "3")
	n.up(t, "x0", "x1")
	return n
}

func TestBindUnbind(t *testing.T) {
	n := vethNS(t)
	pfx := netip.MustParsePrefix
	// Someone else's addresses, there first; the IPv6 one goes through DAD.
	foreign := []netip.Prefix{pfx("198.18.1.50/24"), pfx("2001:db8:1::50/64")}
	for _, p := range foreign {
		n.addAddr(t, "x0", p, false)
	}
	vips := []netip.Prefix{pfx("198.18.1.100/24"), pfx("198.18.1.101/32"), pfx("2001:db8:1::100/64"), pfx("2001:db8:1::101/128")}

	h := n.host(t)
	l, err := h.Link("x0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range 2 {
		if err := l.Bind(ctx, vips); err != nil {
			t.Fatalf("Bind #%d: %v", i+1, err)
		}
	}
	// Binding an address that is already there, unmarked, succeeds and leaves it unmarked.
	if err := l.Bind(ctx, foreign); err != nil {
		t.Fatalf("Bind of existing addresses: %v", err)
	}
	want := map[netip.Prefix]addrState{
		pfx("198.18.1.50/24"):      {},
		pfx("2001:db8:1::50/64"):   {Tentative: true}, // proves DAD runs on x0
		pfx("198.18.1.100/24"):     {Marked: true},
		pfx("198.18.1.101/32"):     {Marked: true},
		pfx("2001:db8:1::100/64"):  {Marked: true}, // NODAD: usable at once
		pfx("2001:db8:1::101/128"): {Marked: true},
	}
	if diff := cmp.Diff(want, testAddrs(t, n, "x0"), netipOpt); diff != "" {
		t.Errorf("after Bind (-want +got):\n%s", diff)
	}

	// Unbind everything, foreign addresses included: only ours go, twice is fine.
	all := append(slices.Clone(vips), foreign...)
	for i := range 2 {
		if err := l.Unbind(ctx, all); err != nil {
			t.Fatalf("Unbind #%d: %v", i+1, err)
		}
	}
	want = map[netip.Prefix]addrState{
		pfx("198.18.1.50/24"):    {},
		pfx("2001:db8:1::50/64"): {Tentative: true},
	}
	if diff := cmp.Diff(want, testAddrs(t, n, "x0"), netipOpt); diff != "" {
		t.Errorf("after Unbind (-want +got):\n%s", diff)
	}

	if err := l.Bind(ctx, []netip.Prefix{{}}); err == nil {
		t.Error("Bind of an invalid prefix succeeded")
	}
	if _, err := h.Link("nosuchlink"); err == nil {
		t.Error("Link of a missing interface succeeded")
	}
}

// TestUnbindSameAddressDifferentPrefix: an unmarked 198.18.1.1/24 is not ours even when the
// agent asks to unbind 198.18.1.1/32 and has bound it itself.
func TestUnbindDifferentPrefixLength(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	pfx := netip.MustParsePrefix
	n.addAddr(t, "d0", pfx("198.18.1.1/24"), false)
	l, err := n.host(t).Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(t.Context(), []netip.Prefix{pfx("198.18.1.1/32")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Unbind(t.Context(), []netip.Prefix{pfx("198.18.1.1/32"), pfx("198.18.1.1/24")}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]addrState{pfx("198.18.1.1/24"): {}}
	if diff := cmp.Diff(want, testAddrs(t, n, "d0"), netipOpt); diff != "" {
		t.Errorf("after Unbind (-want +got):\n%s", diff)
	}
}

func TestRemoveStale(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	n.addLink(t, "d1")
	pfx := netip.MustParsePrefix
	unmarked := map[string][]netip.Prefix{
		"d0": {pfx("198.18.2.1/24"), pfx("2001:db8:2::1/64")},
		"d1": {pfx("198.18.3.1/24")},
	}
	marked := map[string][]netip.Prefix{
		"d0": {pfx("198.18.2.100/24"), pfx("2001:db8:2::100/64")},
		"d1": {pfx("198.18.3.100/32"), pfx("2001:db8:3::100/128")},
	}
	for name, ps := range unmarked {
		for _, p := range ps {
			n.addAddr(t, name, p, true)
		}
	}
	// A previous agent bound these and died without unbinding.
	dead := n.host(t)
	for name, ps := range marked {
		l, err := dead.Link(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Bind(t.Context(), ps); err != nil {
			t.Fatal(err)
		}
	}
	_ = dead.Close()

	for i, want := range [][]netip.Prefix{slices.Concat(marked["d0"], marked["d1"]), nil} {
		var (
			got []netip.Prefix
			err error
		)
		n.run(t, func() { got, err = RemoveStale(t.Context(), nil, true) })
		if err != nil {
			t.Fatalf("RemoveStale #%d: %v", i+1, err)
		}
		sortPrefixes(want)
		sortPrefixes(got)
		if diff := cmp.Diff(want, got, netipOpt); diff != "" {
			t.Errorf("RemoveStale #%d removed (-want +got):\n%s", i+1, diff)
		}
	}
	for name, ps := range unmarked {
		want := map[netip.Prefix]addrState{}
		for _, p := range ps {
			want[p] = addrState{}
		}
		if diff := cmp.Diff(want, testAddrs(t, n, name), netipOpt); diff != "" {
			t.Errorf("%s after RemoveStale (-want +got):\n%s", name, diff)
		}
	}
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
}

func TestWatchRemoved(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	pfx := netip.MustParsePrefix
	foreign := []netip.Prefix{pfx("198.18.5.1/24"), pfx("2001:db8:5::1/64")}
	for _, p := range foreign {
		n.addAddr(t, "d0", p, true)
	}
	vip4, vip6, unbound := pfx("198.18.4.100/24"), pfx("2001:db8:4::100/64"), pfx("198.18.4.101/32")
	l, err := n.host(t).Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(t.Context(), []netip.Prefix{vip4, vip6, unbound}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	removed := make(chan netip.Prefix, 16)
	var watchErr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		watchErr = l.WatchRemoved(ctx, func(p netip.Prefix) { removed <- p })
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	next := func() netip.Prefix {
		t.Helper()
		select {
		case p := <-removed:
			return p
		case <-finished:
			t.Fatalf("WatchRemoved returned early: %v", watchErr)
		case <-time.After(3 * time.Second):
			t.Fatal("no removal reported")
		}
		return netip.Prefix{}
	}
	quiet := func() {
		t.Helper()
		select {
		case p := <-removed:
			t.Errorf("unexpected removal of %s reported", p)
		case <-time.After(200 * time.Millisecond):
		}
	}

	// Not reported: foreign addresses going, and our own Unbind.
	for _, p := range foreign {
		n.delAddr(t, "d0", p)
	}
	if err := l.Unbind(t.Context(), []netip.Prefix{unbound}); err != nil {
		t.Fatal(err)
	}
	// Reported: our VIPs deleted by someone else.
	n.delAddr(t, "d0", vip4)
	n.delAddr(t, "d0", vip6)
	got := []netip.Prefix{next(), next()}
	sortPrefixes(got)
	if diff := cmp.Diff([]netip.Prefix{vip4, vip6}, got, netipOpt); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
	quiet()

	// Put back, as a MASTER does, and removed again: reported again.
	if err := l.Bind(t.Context(), []netip.Prefix{vip4}); err != nil {
		t.Fatal(err)
	}
	n.delAddr(t, "d0", vip4)
	if diff := cmp.Diff(vip4, next(), netipOpt); diff != "" {
		t.Errorf("reported after rebind (-want +got):\n%s", diff)
	}
	quiet()

	// Deleting an IPv4 primary address also deletes the secondaries of its subnet (unless
	// promote_secondaries is set): our VIP went with someone else's address.
	primary := pfx("198.18.4.1/24")
	n.addAddr(t, "d0", primary, false)
	if err := l.Bind(t.Context(), []netip.Prefix{vip4}); err != nil {
		t.Fatal(err)
	}
	n.delAddr(t, "d0", primary)
	if diff := cmp.Diff(vip4, next(), netipOpt); diff != "" {
		t.Errorf("reported after the primary went (-want +got):\n%s", diff)
	}
	quiet()

	cancel()
	select {
	case <-finished:
		if watchErr != nil {
			t.Errorf("WatchRemoved: %v", watchErr)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("WatchRemoved did not return after cancel")
	}
}

func TestInterfaces(t *testing.T) {
	l := newLab(t)
	h := l.a.host(t)
	link, err := h.Link("a0")
	if err != nil {
		t.Fatal(err)
	}
	if err := link.Bind(t.Context(), []netip.Prefix{netip.MustParsePrefix("198.18.0.100/24"), netip.MustParsePrefix("2001:db8::100/64")}); err != nil {
		t.Fatal(err)
	}
	var ifs []Interface
	l.a.run(t, func() { ifs, err = Interfaces() })
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ifs, func(i Interface) bool { return i.Name == "a0" })
	if i < 0 {
		t.Fatalf("a0 not listed: %+v", ifs)
	}
	got := ifs[i]
	sortPrefixes(got.Prefixes)
	want := Interface{
		Name:         "a0",
		Index:        l.aIndex,
		Up:           true,
		HardwareAddr: l.aMAC,
		Prefixes: []netip.Prefix{
			netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("198.18.0.3/24"),
			netip.MustParsePrefix("2001:db8::1/64"), netip.MustParsePrefix("2001:db8::3/64"),
			netip.PrefixFrom(l.aLinkLocal, 64),
		},
	}
	if diff := cmp.Diff(want, got, netipOpt); diff != "" {
		t.Errorf("a0 (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(ifs, func(i Interface) bool { return i.Name == "lo" && !i.Up }) {
		t.Errorf("lo (down in a fresh namespace) not listed: %+v", ifs)
	}
}

// The WatchRemoved calls of a link share one follow of its events: with an instance per
// address, a follow each would handle every event of the link once per instance. Each call
// still hears of every removal once; one that starts later hears of those already gone; one
// that returns leaves the others watching.
func TestWatchRemovedShared(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	h := n.host(t)
	l, err := h.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	var vips []netip.Prefix
	for i := range 20 {
		vips = append(vips, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 11, byte(i + 1)}), 32))
	}
	if err := l.Bind(t.Context(), vips); err != nil {
		t.Fatal(err)
	}
	type watch struct {
		cancel  context.CancelFunc
		done    chan struct{}
		removed chan netip.Prefix
	}
	start := func() *watch {
		ctx, cancel := context.WithCancel(t.Context())
		w := &watch{cancel: cancel, done: make(chan struct{}), removed: make(chan netip.Prefix, 64)}
		go func() {
			defer close(w.done)
			if err := l.WatchRemoved(ctx, func(p netip.Prefix) { w.removed <- p }); err != nil {
				t.Errorf("WatchRemoved: %v", err)
			}
		}()
		return w
	}
	expect := func(w *watch, want ...netip.Prefix) {
		t.Helper()
		var got []netip.Prefix
		for range want {
			select {
			case p := <-w.removed:
				got = append(got, p)
			case <-time.After(3 * time.Second):
				t.Fatalf("reported %v, want %v", got, want)
			}
		}
		sortPrefixes(got)
		if diff := cmp.Diff(want, got, netipOpt); diff != "" {
			t.Errorf("reported (-want +got):\n%s", diff)
		}
	}
	// Nothing more once a while has passed.
	quiet := func(ws []*watch) {
		t.Helper()
		time.Sleep(200 * time.Millisecond)
		for _, w := range ws {
			select {
			case p := <-w.removed:
				t.Errorf("%s reported again", p)
			default:
			}
		}
	}
	var ws []*watch
	for range 50 {
		ws = append(ws, start())
	}
	defer func() {
		for _, w := range ws {
			w.cancel()
			<-w.done
		}
	}()
	subs := func() int {
		h.events.mu.Lock()
		defer h.events.mu.Unlock()
		return len(h.events.subs)
	}
	deadline := time.Now().Add(3 * time.Second)
	for subs() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := subs(); got != 1 {
		t.Errorf("%d subscribers for 50 address watches of one link, want 1", got)
	}
	n.delAddr(t, "d0", vips[0])
	n.delAddr(t, "d0", vips[1])
	for _, w := range ws {
		expect(w, vips[0], vips[1])
	}
	late := start()
	ws = append(ws, late)
	expect(late, vips[0], vips[1])
	quiet(ws)

	// Half of them stop; the rest, and the late one, hear of the next removal.
	for _, w := range ws[:25] {
		w.cancel()
		<-w.done
	}
	ws = ws[25:]
	n.delAddr(t, "d0", vips[2])
	for _, w := range ws {
		expect(w, vips[2])
	}
	quiet(ws)
}
