package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Node is one host namespace of the lab (a node "n1".. or the client). The exported fields
// are fixed once the lab is built.
type Node struct {
	// Name is "n1", "n2", ... or "client".
	Name string
	// NetNS is the network namespace's name (for `ip netns exec`, `ip -n`).
	NetNS string
	// Interface is the lab link's name inside the namespace ("eth0").
	Interface string
	// Port is the name of the bridge port (the veth's other end) in the switch namespace.
	Port string
	// IPv4 and IPv6 are the node's own addresses (198.18.0.11/24, 2001:db8::11/64, ...).
	IPv4, IPv6 netip.Addr
	// LinkLocal is the IPv6 link-local address of Interface, with the zone set.
	LinkLocal netip.Addr
	// MAC is the hardware address of Interface (02:6b:76:00:00:<host>).
	MAC net.HardwareAddr
	// Dir is the node's own directory for configs, pid files and logs.
	Dir string

	lab  *Lab
	nlMu sync.Mutex
	nl   *netlink.Handle // NETLINK_ROUTE socket opened inside the namespace
}

// Prefix4 returns the node's IPv4 address with the lab prefix length (198.18.0.11/24).
func (n *Node) Prefix4() netip.Prefix { return netip.PrefixFrom(n.IPv4, Net4.Bits()) }

// Prefix6 returns the node's IPv6 address with the lab prefix length (2001:db8::11/64).
func (n *Node) Prefix6() netip.Prefix { return netip.PrefixFrom(n.IPv6, Net6.Bits()) }

// Lab returns the lab the node belongs to.
func (n *Node) Lab() *Lab { return n.lab }

func (n *Node) String() string { return n.Name }

func (n *Node) openNetlink() error {
	return inNetns(n.NetNS, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink in %s: %w", n.NetNS, err)
		}
		n.nl = h
		return nil
	})
}

func (n *Node) closeNetlink() {
	n.nlMu.Lock()
	defer n.nlMu.Unlock()
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
}

func (n *Node) waitLinkLocal(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		addrs, err := n.addrs(true)
		if err != nil {
			return err
		}
		ok := 0
		for _, a := range addrs {
			if (a.IP.Equal(n.LinkLocal.AsSlice()) || a.IP.Equal(n.IPv6.AsSlice())) && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				ok++
			}
		}
		if ok == 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: IPv6 addresses not ready after %v: %v", n.Name, timeout, addrs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *Node) addrs(labLinkOnly bool) ([]netlink.Addr, error) {
	n.nlMu.Lock()
	defer n.nlMu.Unlock()
	if n.nl == nil {
		return nil, errors.New("lab closed")
	}
	var link netlink.Link
	if labLinkOnly {
		l, err := n.nl.LinkByName(n.Interface)
		if err != nil {
			return nil, fmt.Errorf("%s: link %s: %w", n.Name, n.Interface, err)
		}
		link = l
	}
	a, err := n.nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("%s: list addresses: %w", n.Name, err)
	}
	return a, nil
}

// Addresses returns every address on the node's links except loopback ones, link-local
// included, with prefix lengths, sorted.
func (n *Node) Addresses() ([]netip.Prefix, error) {
	as, err := n.addrs(false)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap().IsLoopback() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out, nil
}

// HasAddress reports whether the node has p's address on any link. The prefix length is
// ignored (a VIP written "198.18.0.200/24" matches the address bound with /32 too); an error
// reading the addresses counts as "no".
func (n *Node) HasAddress(p netip.Prefix) bool {
	as, err := n.Addresses()
	if err != nil {
		return false
	}
	want := p.Addr().WithZone("")
	return slices.ContainsFunc(as, func(a netip.Prefix) bool { return a.Addr() == want })
}

// Neighbor returns the link-layer address the node's neighbour table holds for ip on the lab
// link (the client's view of who owns a VIP), or nil if there is no usable entry.
func (n *Node) Neighbor(ip netip.Addr) (net.HardwareAddr, error) {
	n.nlMu.Lock()
	defer n.nlMu.Unlock()
	if n.nl == nil {
		return nil, errors.New("lab closed")
	}
	link, err := n.nl.LinkByName(n.Interface)
	if err != nil {
		return nil, fmt.Errorf("%s: link %s: %w", n.Name, n.Interface, err)
	}
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := n.nl.NeighList(link.Attrs().Index, fam)
	if err != nil {
		return nil, fmt.Errorf("%s: neighbours: %w", n.Name, err)
	}
	for _, e := range ns {
		if e.IP.Equal(ip.AsSlice()) && len(e.HardwareAddr) > 0 &&
			e.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return e.HardwareAddr, nil
		}
	}
	return nil, nil
}

// InNetns runs fn on an OS thread that has entered the node's network namespace, for
// in-process tests of code that opens sockets or netlink handles: whatever fn opens stays
// in the namespace after it returns. fn must not start goroutines that expect to be in the
// namespace (they run on other threads). The thread returns to the host namespace before
// it is reused, or is destroyed.
func (n *Node) InNetns(fn func() error) error { return inNetns(n.NetNS, fn) }

// DialContext dials addr from inside the node's network namespace (the socket keeps the
// namespace it was created in): an http.Transport's DialContext for clients that must
// connect as the node does.
func (n *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := n.InNetns(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Run runs a short command inside the node's namespace and returns its combined output.
// It gives up after 30 s.
func (n *Node) Run(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return run(ctx, "", append([]string{"ip", "netns", "exec", n.NetNS}, argv...)...)
}

// Ping sends count ICMP echoes from the node to dst (IPv4 or IPv6) and fails unless all are
// answered within about a second each.
func (n *Node) Ping(dst netip.Addr, count int) error {
	_, err := n.Run("ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.05", "-W", "1", dst.String())
	return err
}

// Reachable pings dst from the node until one echo is answered, for up to timeout: the
// check to use right after a link comes back (neighbour entries may need a retry).
func (n *Node) Reachable(dst netip.Addr, timeout time.Duration) error {
	secs := max(1, int((timeout+time.Second-1)/time.Second))
	_, err := n.Run("ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", fmt.Sprint(secs), dst.String())
	return err
}

// Exec starts argv[0] with argv[1:] inside the node's namespace (`ip netns exec`), working
// directory n.Dir, stdout and stderr to n.Dir/<name>.log. ctx's end sends SIGTERM (then
// SIGKILL after 5 s). The lab stops the process on Close at the latest.
func (n *Node) Exec(ctx context.Context, name string, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: empty argv")
	}
	l := n.lab
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, errors.New("exec: lab closed")
	}
	name = l.procName(n.Name, name)
	p, err := startProc(ctx, n, name, argv)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Start is Exec that fails the test (or panics outside tests) on error.
func (n *Node) Start(ctx context.Context, name string, argv ...string) *Proc {
	p, err := n.Exec(ctx, name, argv...)
	if err != nil {
		n.lab.fatalf("%s: start %s: %v", n.Name, name, err)
	}
	return p
}

// StartBinary starts the program at path with args in the node (e.g. kube-vrrp run -f
// vip.yaml --node n1), logging to n.Dir/<basename>.log. It stops with the test: SIGTERM,
// then SIGKILL after 5 s.
func (n *Node) StartBinary(t testing.TB, path string, args ...string) *Proc {
	t.Helper()
	p, err := n.Exec(context.Background(), filepath.Base(path), append([]string{path}, args...)...)
	if err != nil {
		t.Fatalf("%s: start %s: %v", n.Name, path, err)
	}
	return p
}

// WriteFile writes data to n.Dir/name (creating subdirectories) and returns the path.
func (n *Node) WriteFile(name string, data []byte) (string, error) {
	p := filepath.Join(n.Dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return "", err
	}
	return p, nil
}

// MustWriteFile is WriteFile that fails the test (or panics outside tests) on error.
func (n *Node) MustWriteFile(name string, data []byte) string {
	p, err := n.WriteFile(name, data)
	if err != nil {
		n.lab.fatalf("%s: write %s: %v", n.Name, name, err)
	}
	return p
}

// Faults. They act on the node's bridge port in the switch namespace, never inside the node,
// so the software under test sees exactly what a real network fault would show it.

// CutLink detaches the node's port from the bridge: all traffic both ways stops, but the
// node's link keeps its carrier (operstate UP), as when a switch or a cable further along
// fails. A VRRP speaker on the node notices nothing locally and stays MASTER on its side.
// Faults are netlink calls from this process (no `ip` to spawn), so they take effect within
// a millisecond of the call and timings measured around them are exact.
func (n *Node) CutLink() error {
	return n.lab.switchLink(n.Port, func(h *netlink.Handle, port, _ netlink.Link) error {
		return h.LinkSetNoMaster(port)
	})
}

// LinkDown sets the node's bridge-side veth down: traffic stops both ways and the node's
// link loses carrier (NO-CARRIER, operstate LOWERLAYERDOWN), as when its own cable is
// pulled. keepalived goes to FAULT and releases its VIPs.
func (n *Node) LinkDown() error {
	return n.lab.switchLink(n.Port, func(h *netlink.Handle, port, _ netlink.Link) error {
		return h.LinkSetDown(port)
	})
}

// RestoreLink undoes CutLink and LinkDown: port attached to the bridge and up.
func (n *Node) RestoreLink() error {
	return n.lab.switchLink(n.Port, func(h *netlink.Handle, port, br netlink.Link) error {
		if port.Attrs().MasterIndex != br.Attrs().Index {
			if err := h.LinkSetMaster(port, br); err != nil {
				return err
			}
		}
		return h.LinkSetUp(port)
	})
}

// BlockVRRP drops IP protocol 112 (VRRP, IPv4 and IPv6, multicast and unicast) from and to
// this node at its bridge port; everything else still flows. Blocking every node of a VRRP
// group (or all but one) makes a split brain. The node's own sends still succeed, as with a
// filtering switch.
func (n *Node) BlockVRRP() error { return n.lab.setBlocked(n.Port, true) }

// UnblockVRRP undoes BlockVRRP.
func (n *Node) UnblockVRRP() error { return n.lab.setBlocked(n.Port, false) }

// setBlocked rewrites the switch's bridge filter for the current set of blocked ports in
// one nft transaction. The table lives in the switch namespace only.
func (l *Lab) setBlocked(port string, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.blocked[port] = true
	} else {
		delete(l.blocked, port)
	}
	ports := make([]string, 0, len(l.blocked))
	for p := range l.blocked {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	var b strings.Builder
	b.WriteString("add table bridge kvlab\n")
	b.WriteString("add chain bridge kvlab forward { type filter hook forward priority 0; policy accept; }\n")
	b.WriteString("flush chain bridge kvlab forward\n")
	for _, p := range ports {
		for _, dir := range []string{"iifname", "oifname"} {
			fmt.Fprintf(&b, "add rule bridge kvlab forward %s %q ip protocol 112 drop\n", dir, p)
			fmt.Fprintf(&b, "add rule bridge kvlab forward %s %q ip6 nexthdr 112 drop\n", dir, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := run(ctx, b.String(), "ip", "netns", "exec", l.Switch, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("vrrp filter on %s (is nftables installed? hack/install-deps.sh): %w", port, err)
	}
	return nil
}

// RecreateLink deletes the node's lab link (both ends of its veth) and, after gap, creates it
// again with the same names, MAC and addresses, as a VLAN, bond or netplan rebuild does: the
// interface comes back under its name with a new index.
func (n *Node) RecreateLink(gap time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := n.lab
	if err := l.switchLink(n.Port, func(h *netlink.Handle, port, _ netlink.Link) error {
		return h.LinkDel(port)
	}); err != nil {
		return err
	}
	time.Sleep(gap)
	if err := ipBatch(ctx, l.Switch,
		fmt.Sprintf("link add %s type veth peer name %s address %s netns %s", n.Port, n.Interface, n.MAC, n.NetNS),
		fmt.Sprintf("link set %s master %s", n.Port, Bridge),
		fmt.Sprintf("link set %s up", n.Port),
	); err != nil {
		return fmt.Errorf("recreate %s's link: %w", n, err)
	}
	if err := ipBatch(ctx, n.NetNS,
		fmt.Sprintf("link set %s up", n.Interface),
		fmt.Sprintf("addr add %s/%d dev %s", n.IPv4, Net4.Bits(), n.Interface),
		fmt.Sprintf("addr add %s/%d dev %s nodad", n.IPv6, Net6.Bits(), n.Interface),
	); err != nil {
		return fmt.Errorf("recreate %s's link: %w", n, err)
	}
	return n.waitLinkLocal(5 * time.Second)
}

// StateDir returns the node's kube-vrrp state directory (the host lock and the record of bound
// addresses; --state-dir), creating it for uid, mode 0700, as the chart's init container does
// for the agent's user. Every speaker of the node, restarted or not, shares it, as the agents of
// one host share /run/kube-vrrp. It lies in the node's directory, which only root can reach, so
// it serves speakers run as root (uid 0); the agents of a real cluster get theirs from the
// chart's init container.
func (n *Node) StateDir(uid int) (string, error) {
	dir := filepath.Join(n.Dir, "state")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o700)
}
