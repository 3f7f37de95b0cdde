//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

var (
	vip4 = netip.MustParseAddr("198.18.0.100")
	vip6 = netip.MustParseAddr("2001:db8::100")
)

// noReply is how long a probe waits before deciding that no reply is coming; on a veth pair
// a reply takes well under a millisecond.
const noReply = 400 * time.Millisecond

// hostTables lists the nftables tables of the test process's own network namespace, only to
// check that the tests leave it alone.
func hostTables(t *testing.T) []string {
	t.Helper()
	privtest.Require(t)
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		t.Fatalf("nftables socket: %v", err)
	}
	defer c.CloseLasting()
	return tableNames(t, c)
}

func tableNames(t *testing.T, c *nftables.Conn) []string {
	t.Helper()
	ts, err := c.ListTables()
	if err != nil {
		t.Fatalf("list nftables tables: %v", err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, fmt.Sprintf("%d %s", tb.Family, tb.Name))
	}
	slices.Sort(names)
	return names
}

// keepHostTables fails t if the host's nftables tables change during t.
func keepHostTables(t *testing.T) {
	t.Helper()
	before := hostTables(t)
	t.Cleanup(func() {
		if after := hostTables(t); !slices.Equal(before, after) {
			t.Errorf("the host's nftables tables changed: %v, were %v", after, before)
		}
	})
}

// nft runs fn with an nftables connection in n.
func (n *testNS) nft(t *testing.T, fn func(c *nftables.Conn)) {
	t.Helper()
	var c *nftables.Conn
	n.run(t, func() {
		var err error
		if c, err = nftables.New(nftables.AsLasting()); err != nil {
			t.Fatalf("nftables socket: %v", err)
		}
	})
	defer c.CloseLasting()
	fn(c)
}

// acceptTableState is what the kernel holds of AcceptTable in n; exists is false without it.
type acceptTableState struct {
	exists bool
	chains []string
	sets   []string
}

func (n *testNS) acceptTable(t *testing.T) acceptTableState {
	t.Helper()
	var st acceptTableState
	n.nft(t, func(c *nftables.Conn) {
		if !slices.Contains(tableNames(t, c), fmt.Sprintf("%d %s", nftables.TableFamilyINet, AcceptTable)) {
			return
		}
		st.exists = true
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			t.Fatalf("list chains: %v", err)
		}
		for _, ch := range chains {
			if ch.Table.Name == AcceptTable {
				st.chains = append(st.chains, ch.Name)
			}
		}
		sets, err := c.GetSets(acceptTable())
		if err != nil {
			t.Fatalf("list sets: %v", err)
		}
		for _, s := range sets {
			st.sets = append(st.sets, s.Name)
		}
		slices.Sort(st.chains)
		slices.Sort(st.sets)
	})
	return st
}

// ping sends one ICMP echo request from src in n to dst and reports whether the reply came.
func (n *testNS) ping(t *testing.T, src, dst netip.Addr, seq int) bool {
	t.Helper()
	network, proto := "ip4:icmp", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		typ, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var (
		c   *icmp.PacketConn
		err error
	)
	n.run(t, func() { c, err = icmp.ListenPacket(network, src.String()) })
	if err != nil {
		t.Fatalf("icmp socket: %v", err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("kube-vrrp accept mode")}}
	b, err := m.Marshal(nil) // the kernel computes the ICMPv6 checksum
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		t.Fatalf("send echo request to %s: %v", dst, err)
	}
	return receive(t, c, proto, func(m *icmp.Message, from netip.Addr) bool {
		e, ok := m.Body.(*icmp.Echo)
		return m.Type == reply && ok && e.ID == id && e.Seq == seq && from == dst
	})
}

// answers reports whether dst answers a ping from src in n, trying a few times so that a
// slow first neighbour resolution on a loaded machine does not count as no answer.
func (n *testNS) answers(t *testing.T, src, dst netip.Addr) bool {
	t.Helper()
	for seq := 1000; seq < 1005; seq++ {
		if n.ping(t, src, dst, seq) {
			return true
		}
	}
	return false
}

// solicit sends a unicast neighbour solicitation (a neighbour unreachability probe, RFC 4861
// §7.3.3) from src in n to target and reports whether target advertised itself.
func (n *testNS) solicit(t *testing.T, src, target netip.Addr, mac net.HardwareAddr) bool {
	t.Helper()
	var (
		c   *icmp.PacketConn
		err error
	)
	n.run(t, func() { c, err = icmp.ListenPacket("ip6:ipv6-icmp", src.String()) })
	if err != nil {
		t.Fatalf("icmpv6 socket: %v", err)
	}
	defer c.Close()
	// RFC 4861 §7.1.1: a solicitation with another hop limit is discarded.
	if err := c.IPv6PacketConn().SetHopLimit(255); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4, 4+16+8) // reserved, target, source link-layer address option
	body = append(body, target.AsSlice()...)
	body = append(body, 1, 1)
	body = append(body, mac...)
	m := icmp.Message{Type: ipv6.ICMPTypeNeighborSolicitation, Body: &icmp.RawBody{Data: body}}
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	// A few tries, as in answers.
	for range 3 {
		if _, err := c.WriteTo(b, &net.IPAddr{IP: target.AsSlice()}); err != nil {
			t.Fatalf("send neighbour solicitation to %s: %v", target, err)
		}
		if receive(t, c, 58, func(m *icmp.Message, from netip.Addr) bool {
			body, ok := m.Body.(*icmp.RawBody)
			return m.Type == ipv6.ICMPTypeNeighborAdvertisement && ok && len(body.Data) >= 20 &&
				netip.AddrFrom16([16]byte(body.Data[4:20])) == target && from == target
		}) {
			return true
		}
	}
	return false
}

// receive reads c until a message matches or noReply passes.
func receive(t *testing.T, c *icmp.PacketConn, proto int, match func(*icmp.Message, netip.Addr) bool) bool {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(noReply)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for {
		k, peer, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatalf("read icmp: %v", err)
		}
		m, err := icmp.ParseMessage(proto, buf[:k])
		if err != nil {
			continue
		}
		from, _ := netip.AddrFromSlice(peer.(*net.IPAddr).IP)
		if match(m, from.Unmap()) {
			return true
		}
	}
}

// neighbour waits until n's neighbour table has ip on ifindex resolved, and returns its
// link-layer address (nil if it does not resolve).
func (n *testNS) neighbour(t *testing.T, ifindex int, ip netip.Addr) net.HardwareAddr {
	t.Helper()
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	const resolved = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		neighs, err := n.nl.NeighList(ifindex, family)
		if err != nil {
			t.Fatalf("list neighbours: %v", err)
		}
		for _, ne := range neighs {
			if a, _ := netip.AddrFromSlice(ne.IP); a.Unmap() == ip && ne.State&resolved != 0 {
				return ne.HardwareAddr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// acceptLab is a lab whose node a holds the virtual addresses vip4 and vip6 on a0, as a
// master would, with an AcceptFilter.
func newAcceptLab(t *testing.T) (*lab, *AcceptFilter) {
	t.Helper()
	keepHostTables(t)
	l := newLab(t)
	l.a.addAddr(t, "a0", netip.PrefixFrom(vip4, 24), true)
	l.a.addAddr(t, "a0", netip.PrefixFrom(vip6, 64), true)
	f, err := l.a.host(t).AcceptFilter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return l, f
}

var (
	b4 = netip.MustParseAddr("198.18.0.2")
	b6 = netip.MustParseAddr("2001:db8::2")
)

func TestAcceptFilterBlocks(t *testing.T) {
	l, f := newAcceptLab(t)
	// Without a block the virtual addresses answer, as with accept: true.
	for _, dst := range []netip.Addr{vip4, vip6} {
		if !l.b.answers(t, srcFor(dst), dst) {
			t.Fatalf("%s does not answer before any block", dst)
		}
	}
	if err := f.Block([]netip.Addr{vip4, vip6}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Blocked(); err != nil || !slices.Equal(got, []netip.Addr{vip4, vip6}) {
		t.Fatalf("Blocked() = %v, %v; want [%s %s]", got, err, vip4, vip6)
	}
	// The client forgets the node's link-layer address, so that resolving it again is part
	// of what is checked below.
	for _, ip := range []netip.Addr{vip4, vip6} {
		_ = l.b.nl.NeighDel(&netlink.Neigh{LinkIndex: l.bIndex, IP: ip.AsSlice()})
	}
	for i, dst := range []netip.Addr{vip4, vip6} {
		if l.b.ping(t, srcFor(dst), dst, 10+i) {
			t.Errorf("blocked %s answered a ping", dst)
		}
		// The node still answers ARP and neighbour discovery for the blocked address.
		if mac := l.b.neighbour(t, l.bIndex, dst); !slices.Equal(mac, l.aMAC) {
			t.Errorf("the client resolved blocked %s to %v, want %v", dst, mac, l.aMAC)
		}
	}
	if !l.b.solicit(t, b6, vip6, l.bMAC) {
		t.Errorf("blocked %s did not answer a unicast neighbour solicitation", vip6)
	}
	// The node's own addresses are not blocked.
	for _, dst := range []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:db8::1")} {
		if !l.b.answers(t, srcFor(dst), dst) {
			t.Errorf("unblocked %s does not answer", dst)
		}
	}

	// Idempotent: blocking again and unblocking what is not blocked change nothing.
	if err := f.Block([]netip.Addr{vip4}); err != nil {
		t.Fatalf("block again: %v", err)
	}
	if err := f.Unblock([]netip.Addr{vip6, netip.MustParseAddr("198.18.0.200")}); err != nil {
		t.Fatalf("unblock: %v", err)
	}
	if err := f.Unblock([]netip.Addr{vip6}); err != nil {
		t.Fatalf("unblock again: %v", err)
	}
	if got, err := f.Blocked(); err != nil || !slices.Equal(got, []netip.Addr{vip4}) {
		t.Fatalf("Blocked() = %v, %v; want [%s]", got, err, vip4)
	}
	if !l.b.answers(t, b6, vip6) {
		t.Errorf("unblocked %s does not answer", vip6)
	}
	if l.b.ping(t, b4, vip4, 31) {
		t.Errorf("still blocked %s answered", vip4)
	}
	if err := f.Unblock([]netip.Addr{vip4}); err != nil {
		t.Fatal(err)
	}
	if !l.b.answers(t, b4, vip4) {
		t.Errorf("unblocked %s does not answer", vip4)
	}
	if got, err := f.Blocked(); err != nil || len(got) != 0 {
		t.Fatalf("Blocked() = %v, %v; want none", got, err)
	}
}

func srcFor(dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return b4
	}
	return b6
}

func TestAcceptFilterDropped(t *testing.T) {
	l, f := newAcceptLab(t)
	if n, err := f.Dropped(); err != nil || n != 0 {
		t.Fatalf("Dropped() = %d, %v before any block; want 0", n, err)
	}
	if err := f.Block([]netip.Addr{vip4, vip6}); err != nil {
		t.Fatal(err)
	}
	pings := []netip.Addr{vip4, vip4, vip4, vip6, vip6}
	for i, dst := range pings {
		if l.b.ping(t, srcFor(dst), dst, i) {
			t.Fatalf("blocked %s answered", dst)
		}
	}
	// Accepted neighbour discovery is not counted.
	if !l.b.solicit(t, b6, vip6, l.bMAC) {
		t.Fatalf("blocked %s did not answer a unicast neighbour solicitation", vip6)
	}
	if n, err := f.Dropped(); err != nil || n != uint64(len(pings)) {
		t.Fatalf("Dropped() = %d, %v; want %d", n, err, len(pings))
	}
}

func TestAcceptFilterReplacesStaleTable(t *testing.T) {
	keepHostTables(t)
	n := newTestNS(t)
	stale := func() {
		n.nft(t, func(c *nftables.Conn) {
			tb := c.AddTable(acceptTable())
			c.AddChain(&nftables.Chain{Name: "left-behind", Table: tb})
			s := &nftables.Set{Table: tb, Name: blockedV4, KeyType: nftables.TypeIPAddr}
			if err := c.AddSet(s, []nftables.SetElement{{Key: vip4.AsSlice()}}); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatalf("create a stale table: %v", err)
			}
		})
	}

	stale()
	var (
		removed bool
		err     error
	)
	n.run(t, func() { removed, err = RemoveStaleAcceptTable() })
	if err != nil || !removed {
		t.Fatalf("RemoveStaleAcceptTable() = %v, %v; want true", removed, err)
	}
	if st := n.acceptTable(t); st.exists {
		t.Fatalf("the stale table is still there: %+v", st)
	}
	n.run(t, func() { removed, err = RemoveStaleAcceptTable() })
	if err != nil || removed {
		t.Fatalf("RemoveStaleAcceptTable() without a table = %v, %v; want false", removed, err)
	}

	stale()
	f, err := n.host(t).AcceptFilter()
	if err != nil {
		t.Fatal(err)
	}
	want := acceptTableState{exists: true, chains: []string{acceptChain}, sets: []string{blockedV4, blockedV6}}
	if st := n.acceptTable(t); !st.equal(want) {
		t.Fatalf("after AcceptFilter the table is %+v, want %+v", st, want)
	}
	if got, err := f.Blocked(); err != nil || len(got) != 0 {
		t.Fatalf("Blocked() = %v, %v; the stale table's addresses must go", got, err)
	}
	if err := f.Block([]netip.Addr{vip6}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if st := n.acceptTable(t); st.exists {
		t.Fatalf("Close left the table: %+v", st)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := f.Block([]netip.Addr{vip4}); !errors.Is(err, errAcceptFilterClosed) {
		t.Fatalf("Block after Close: %v, want %v", err, errAcceptFilterClosed)
	}
	if st := n.acceptTable(t); st.exists {
		t.Fatalf("Block after Close recreated the table: %+v", st)
	}
}

func (s acceptTableState) equal(o acceptTableState) bool {
	return s.exists == o.exists && slices.Equal(s.chains, o.chains) && slices.Equal(s.sets, o.sets)
}

// TestAcceptFilterRules checks the rules as the kernel holds them: neighbour discovery is
// accepted before anything is dropped, and the chain hooks input just before filter.
func TestAcceptFilterRules(t *testing.T) {
	keepHostTables(t)
	n := newTestNS(t)
	if _, err := n.host(t).AcceptFilter(); err != nil {
		t.Fatal(err)
	}
	n.nft(t, func(c *nftables.Conn) {
		ch, err := c.ListChain(acceptTable(), acceptChain)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput || ch.Priority == nil || *ch.Priority != -10 ||
			ch.Type != nftables.ChainTypeFilter {
			t.Errorf("chain %s: type %q hook %v priority %v; want filter, input, -10", acceptChain, ch.Type, ch.Hooknum, ch.Priority)
		}
		rules, err := c.GetRules(acceptTable(), ch)
		if err != nil {
			t.Fatal(err)
		}
		var verdicts []string
		for _, r := range rules {
			for _, e := range r.Exprs {
				if v, ok := e.(*expr.Verdict); ok {
					verdicts = append(verdicts, fmt.Sprint(v.Kind))
				}
			}
		}
		want := []string{fmt.Sprint(expr.VerdictAccept), fmt.Sprint(expr.VerdictDrop), fmt.Sprint(expr.VerdictDrop)}
		if !slices.Equal(verdicts, want) {
			t.Errorf("verdicts %v, want %v (accept neighbour discovery first)", verdicts, want)
		}
	})
}

func TestAcceptFilterHostClosed(t *testing.T) {
	n := newTestNS(t)
	h := n.host(t)
	f, err := h.AcceptFilter()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Block([]netip.Addr{vip4}); !errors.Is(err, errHostClosed) {
		t.Fatalf("Block after the Host closed: %v, want %v", err, errHostClosed)
	}
	if _, err := h.AcceptFilter(); !errors.Is(err, errHostClosed) {
		t.Fatalf("AcceptFilter after the Host closed: %v, want %v", err, errHostClosed)
	}
}

func TestAcceptFilterConcurrent(t *testing.T) {
	keepHostTables(t)
	n := newTestNS(t)
	f, err := n.host(t).AcceptFilter()
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		want []netip.Addr
		errs = make(chan error, 64)
	)
	for i := range 8 {
		keep := netip.AddrFrom4([4]byte{198, 18, 1, byte(i)})
		drop := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
		want = append(want, keep)
		wg.Go(func() {
			for range 5 {
				if err := f.Block([]netip.Addr{keep, drop}); err != nil {
					errs <- err
				}
				if err := f.Unblock([]netip.Addr{drop}); err != nil {
					errs <- err
				}
				if _, err := f.Blocked(); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	if got, err := f.Blocked(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Blocked() = %v, %v; want %v", got, err, want)
	}
}

// TestAcceptFilterBadInput checks that bad input is refused whole, naming the address.
func TestAcceptFilterBadInput(t *testing.T) {
	keepHostTables(t)
	n := newTestNS(t)
	f, err := n.host(t).AcceptFilter()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr netip.Addr
		want string
	}{
		{netip.Addr{}, "empty"},
		{netip.MustParseAddr("::ffff:198.18.0.9"), "pass 198.18.0.9"},
		{netip.MustParseAddr("224.0.0.18"), "224.0.0.18 is not a unicast address"},
		{netip.MustParseAddr("ff02::12"), "ff02::12 is not a unicast address"},
		{netip.MustParseAddr("0.0.0.0"), "not a unicast address"},
	} {
		err := f.Block([]netip.Addr{vip4, tc.addr})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Block(%v): %v, want an error with %q", tc.addr, err, tc.want)
		}
	}
	if got, err := f.Blocked(); err != nil || len(got) != 0 {
		t.Fatalf("Blocked() = %v, %v; bad input must change nothing", got, err)
	}
	// A zone does not matter: the address is blocked on every link.
	if err := f.Block([]netip.Addr{netip.MustParseAddr("fe80::100%a0")}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Blocked(); err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("fe80::100")}) {
		t.Fatalf("Blocked() = %v, %v; want [fe80::100]", got, err)
	}
}

// acceptLeastPrivilegeEnv makes TestAcceptFilterLeastPrivilegeChild run, in the process that
// TestAcceptFilterLeastPrivilege starts.
const acceptLeastPrivilegeEnv = "HOSTNET_ACCEPT_LEAST_PRIVILEGE_CHILD"

// TestAcceptFilterLeastPrivilege runs the filter with only the capabilities the DaemonSet
// grants: CAP_NET_ADMIN and CAP_NET_RAW.
func TestAcceptFilterLeastPrivilege(t *testing.T) {
	n := newTestNS(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop capabilities: %v", err)
	}
	var out []byte
	// The child is forked from this thread, so it starts in n.
	n.run(t, func() {
		cmd := exec.Command(setpriv, "--bounding-set=-all,+net_admin,+net_raw", "--inh-caps=-all", "--",
			os.Args[0], "-test.run=^TestAcceptFilterLeastPrivilegeChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), acceptLeastPrivilegeEnv+"=1")
		out, err = cmd.CombinedOutput()
	})
	if err != nil || !strings.Contains(string(out), "--- PASS: TestAcceptFilterLeastPrivilegeChild") {
		t.Fatalf("with CAP_NET_ADMIN and CAP_NET_RAW only: %v\n%s", err, out)
	}
	if st := n.acceptTable(t); st.exists {
		t.Fatalf("the child left its table: %+v", st)
	}
}

func TestAcceptFilterLeastPrivilegeChild(t *testing.T) {
	if os.Getenv(acceptLeastPrivilegeEnv) == "" {
		t.Skip("runs only as the child of TestAcceptFilterLeastPrivilege")
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	const want = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW
	if eff := filecaps.ParseStatus(status).CapEff; eff != want {
		t.Fatalf("effective capabilities %x, want %x", eff, want)
	}
	if _, err := RemoveStaleAcceptTable(); err != nil {
		t.Fatal(err)
	}
	h := NewHost(nil)
	defer h.Close()
	f, err := h.AcceptFilter()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Block([]netip.Addr{vip4, vip6}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Blocked(); err != nil || len(got) != 2 {
		t.Fatalf("Blocked() = %v, %v", got, err)
	}
	if _, err := f.Dropped(); err != nil {
		t.Fatal(err)
	}
	if err := f.Unblock([]netip.Addr{vip4}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptElements needs no privilege: it checks the validation and conversion alone.
func TestAcceptElements(t *testing.T) {
	v4, v6, err := acceptElements([]netip.Addr{vip4, vip6, vip4, netip.MustParseAddr("2001:db8::100%x")})
	if err != nil {
		t.Fatal(err)
	}
	if len(v4) != 1 || len(v6) != 1 || !slices.Equal(v4[0].Key, vip4.AsSlice()) || !slices.Equal(v6[0].Key, vip6.AsSlice()) {
		t.Fatalf("elements %v %v, want one each for %s and %s", v4, v6, vip4, vip6)
	}
	if _, _, err := acceptElements([]netip.Addr{netip.MustParseAddr("::ffff:198.18.0.9")}); err == nil ||
		!strings.Contains(err.Error(), "IPv4-mapped") {
		t.Fatalf("a mapped address: %v", err)
	}
}
