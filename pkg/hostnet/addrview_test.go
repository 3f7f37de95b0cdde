//go:build linux

package hostnet

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// viewPresent asks h's address view about ps on ifname, failing the test if it cannot answer.
func viewPresent(t *testing.T, n *testNS, h *Host, ifname string, ps ...netip.Prefix) []bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	found, ok := h.events.present(ctx, h, n.link(t, ifname).Attrs().Index, ps)
	if !ok {
		t.Fatalf("the address view did not answer for %v", ps)
	}
	out := make([]bool, len(found))
	for i, f := range found {
		out[i] = f.present
	}
	return out
}

// The view answers for the link as it is once the question is asked: a change another program
// made just before is in the answer, however fast the question follows it. Without the barrier
// the view would lag behind the kernel by the events the reader has not read yet.
func TestAddrViewSeesChangesMadeBefore(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	h := n.host(t)
	p := netip.MustParsePrefix("198.18.6.1/24")
	viewPresent(t, n, h, "d0", p) // the first question on a link syncs the view
	for i := range 300 {
		n.addAddr(t, "d0", p, true)
		if got := viewPresent(t, n, h, "d0", p); !got[0] {
			t.Fatalf("#%d: an address added before the question is absent from the answer", i)
		}
		n.delAddr(t, "d0", p)
		if got := viewPresent(t, n, h, "d0", p); got[0] {
			t.Fatalf("#%d: an address removed before the question is present in the answer", i)
		}
	}
}

// When the kernel drops events (the subscription overran: ENOBUFS), the view is built again
// before it answers, and misses none of the changes made meanwhile.
func TestAddrViewResyncsAfterLoss(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	h := n.host(t)
	var ps []netip.Prefix
	for i := range 400 {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 7, byte(i % 250)}), 24+i/250))
	}
	viewPresent(t, n, h, "d0", ps[0])
	e := &h.events
	e.mu.Lock()
	syncs := e.view.syncs
	// The reader blocks on the lock with a receive buffer a few events fill.
	if err := e.sock.SetReceiveBufferSize(1, true); err != nil {
		e.mu.Unlock()
		t.Fatal(err)
	}
	for _, p := range ps {
		n.addAddr(t, "d0", p, true)
	}
	e.mu.Unlock()
	got := viewPresent(t, n, h, "d0", ps...)
	if i := slices.Index(got, false); i >= 0 {
		t.Errorf("%s, added while events were lost, is absent from the answer", ps[i])
	}
	e.mu.Lock()
	resynced := e.view.syncs > syncs
	e.mu.Unlock()
	if !resynced {
		t.Error("no sync after the subscription overran: the test did not make the kernel drop events")
	}
}

// A deleted link takes its addresses with it; one created again under the name is another
// link (another index), which the view learns when first asked about it.
func TestAddrViewLinkRecreated(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	h := n.host(t)
	p := netip.MustParsePrefix("198.18.8.1/24")
	n.addAddr(t, "d0", p, true)
	old := n.link(t, "d0").Attrs().Index
	if got := viewPresent(t, n, h, "d0", p); !got[0] {
		t.Fatal("address absent from the view")
	}
	if err := n.nl.LinkDel(n.link(t, "d0")); err != nil {
		t.Fatal(err)
	}
	found, ok := h.events.present(t.Context(), h, old, []netip.Prefix{p})
	if !ok || found[0].present {
		t.Errorf("deleted link: %v, %v; want the address absent", found, ok)
	}
	// A dump of a link that is gone finds nothing, as a dump of every link would.
	rt, err := h.handles()
	if err != nil {
		t.Fatal(err)
	}
	if have, err := rt.addrs(old); err != nil || len(have) != 0 {
		t.Errorf("dump of the deleted link: %v, %v; want nothing", have, err)
	}
	n.addLink(t, "d0")
	if got := viewPresent(t, n, h, "d0", p); got[0] {
		t.Error("the recreated link has the old one's address")
	}
	n.addAddr(t, "d0", p, true)
	if got := viewPresent(t, n, h, "d0", p); !got[0] {
		t.Error("address on the recreated link absent from the view")
	}
}

// Bind records an address before adding it, so that a kill in between leaves a record of an
// absent address (harmless), never an address without a record; and it never records an
// address that was on the link before it, not even for the moment before it finds it there,
// however closely the Bind follows its addition.
func TestBindRecordsBeforeAddAndNeverForeign(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	dir := filepath.Join(t.TempDir(), "state")
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var h *Host
	n.run(t, func() { h = NewHost(nil, WithState(st), WithoutAddressMark()) })
	t.Cleanup(func() { _ = h.Close() })
	l, err := h.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	var hooked int
	var foreign netip.Prefix
	testHookRecorded = func(ifname string, recorded []netip.Prefix) {
		hooked++
		rec, err := readRecord(dir)
		if err != nil {
			t.Errorf("reading the record: %v", err)
			return
		}
		on := testAddrs(t, n, "d0")
		for _, p := range recorded {
			if !slices.Contains(rec, BoundAddr{ifname, p}) {
				t.Errorf("%s not in the record before it is added", p)
			}
			if _, ok := on[p]; ok && p != foreign {
				t.Errorf("%s on the link before Bind added it", p)
			}
		}
		if slices.Contains(rec, BoundAddr{ifname, foreign}) {
			t.Errorf("the address another program added before Bind, %s, is in the record", foreign)
		}
	}
	t.Cleanup(func() { testHookRecorded = nil })
	vip := func(i int) netip.Prefix {
		if i%2 == 1 {
			return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 9, 15: byte(i)}), 64)
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 9, byte(i)}), 24)
	}
	for i := range 100 {
		foreign = vip(200 + i%50) // IPv4 and IPv6 in turn
		n.addAddr(t, "d0", foreign, true)
		if err := l.Bind(t.Context(), []netip.Prefix{vip(i), foreign}); err != nil {
			t.Fatal(err)
		}
		if err := l.Unbind(t.Context(), []netip.Prefix{vip(i), foreign}); err != nil {
			t.Fatal(err)
		}
		if _, ok := testAddrs(t, n, "d0")[foreign]; !ok {
			t.Fatalf("Unbind removed %s, which another program added", foreign)
		}
		n.delAddr(t, "d0", foreign)
		if t.Failed() {
			break
		}
	}
	if hooked == 0 {
		t.Fatal("the hook between record and add never ran")
	}
	if rec, err := readRecord(dir); err != nil || len(rec) != 0 {
		t.Errorf("record after every Unbind: %v, %v; want empty", rec, err)
	}
}

// Bind and Unbind answer from the view, not from a dump of every address: with a thousand
// addresses on the link, a Bind sends the same few requests as with none.
func TestBindUsesTheView(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	h := n.host(t)
	l, err := h.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	var ps []netip.Prefix
	for i := range 1000 {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 10 + byte(i/250), byte(i % 250)}), 32))
	}
	if err := l.Bind(t.Context(), ps[:1]); err != nil { // syncs the view
		t.Fatal(err)
	}
	dumps := func() uint64 { return addrDumps.Load() }
	before := dumps()
	start := time.Now()
	for _, p := range ps[1:] {
		if err := l.Bind(t.Context(), []netip.Prefix{p}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ps {
		if err := l.Unbind(t.Context(), []netip.Prefix{p}); err != nil {
			t.Fatal(err)
		}
	}
	if d := dumps() - before; d > 2 {
		t.Errorf("%d address dumps for 1999 Binds and 1000 Unbinds one by one, want none (a sync or two at most)", d)
	}
	t.Logf("%d Binds and Unbinds one by one in %v", 2*len(ps)-1, time.Since(start).Round(time.Millisecond))
}

// An Unbind right after the Bind removes the address and its record, for both families. The
// kernel notifies an IPv6 address added only later, from its duplicate address detection
// work: an Unbind that took the address's absence from the notifications would forget it,
// left on the link without a record.
func TestUnbindRightAfterBind(t *testing.T) {
	n := newTestNS(t)
	n.addLink(t, "d0")
	dir := filepath.Join(t.TempDir(), "state")
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var h *Host
	n.run(t, func() { h = NewHost(nil, WithState(st)) })
	t.Cleanup(func() { _ = h.Close() })
	l, err := h.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		ps := []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 12, byte(i)}), 32),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 12, 15: byte(i)}), 128),
		}
		if err := l.Bind(t.Context(), ps); err != nil {
			t.Fatal(err)
		}
		if err := l.Unbind(t.Context(), ps); err != nil {
			t.Fatal(err)
		}
		on := testAddrs(t, n, "d0")
		for _, p := range ps {
			if _, ok := on[p]; ok {
				t.Fatalf("#%d: %s still on the link after Unbind", i, p)
			}
		}
	}
	if rec, err := readRecord(dir); err != nil || len(rec) != 0 {
		t.Errorf("record after every Unbind: %v, %v; want empty", rec, err)
	}
}
