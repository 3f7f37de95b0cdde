package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addressing of every lab. Fixed, because namespaces isolate labs from each other and tests
// read better with literal addresses.
var (
	// Net4 is the lab LAN's IPv4 subnet (RFC 2544 benchmarking range).
	Net4 = netip.MustParsePrefix("198.18.0.0/24")
	// Net6 is the lab LAN's IPv6 subnet (RFC 3849 documentation range).
	Net6 = netip.MustParsePrefix("2001:db8::/64")
	// ClientHost is the host number of the client (198.18.0.250, 2001:db8::250); .100 and up
	// are left for virtual addresses.
	ClientHost = 250
)

// NodeHost returns the host number of node i (1-based): 11, 12, ... It is used for the IPv4
// address (198.18.0.11) and written as hex digits for IPv6 (2001:db8::11), so both read alike.
func NodeHost(i int) int { return 10 + i }

// Addr4 returns 198.18.0.<host>; Addr6 returns 2001:db8::<host> with host written in hex
// digits that read as the decimal number (host 11 -> ::11).
func Addr4(host int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(host)}) }

// Addr6 returns 2001:db8::<host>, host's decimal digits used as hex digits (11 -> ::11).
func Addr6(host int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", host))
}

// mac returns the lab MAC of a host: 02:6b:76:00:00:<host>, locally administered ("kv").
func mac(host int) net.HardwareAddr { return net.HardwareAddr{0x02, 0x6b, 0x76, 0, 0, byte(host)} }

const (
	// Interface is the name of the lab link inside every node and the client.
	Interface = "eth0"
	// Bridge is the name of the bridge in the switch namespace.
	Bridge = "br0"
	// DefaultResponderPort is the UDP port of the responder every node runs (echo).
	DefaultResponderPort = 7
	maxNodes             = 80
)

// Options configure a lab. The zero value is a two-node lab.
type Options struct {
	// Nodes is the number of node namespaces, n1..nN (default 2, at most 80).
	Nodes int
	// ResponderPort is the UDP port on which every node answers the client's probes with its
	// name, so the client can tell which node holds a VIP. 0 means DefaultResponderPort;
	// negative disables the responders.
	ResponderPort int
	// Dir is where node directories, configs and process logs go. New uses t.TempDir(); Open
	// creates (and Close removes) a temporary directory when Dir is empty, and keeps a Dir
	// given here. The directory Open creates is os.TempDir()/<Prefix>-<digits>: named after
	// the process, so that Sweep removes it once the process is gone without closing the lab.
	Dir string
	// Logf receives progress and diagnostics of a lab opened with Open. Nil discards them.
	Logf func(format string, args ...any)
	// Nice is the niceness (-20..19) the VRRP speakers of this lab run at (keepalived and
	// kube-vrrp started with the Node methods); 0 leaves it alone. A negative value keeps a
	// loaded machine's other work from stalling them for longer than a failover takes, so
	// that tests on such a machine see protocol behaviour rather than scheduling.
	Nice int
	// NoSignalHandler leaves signals to the caller, for a program that stops what runs beside
	// the lab first and then closes it (hack/demo). Without it, the first SIGINT, SIGTERM,
	// SIGHUP or SIGQUIT closes every lab of the process (and removes the directories of
	// New's labs) before the process dies of it.
	NoSignalHandler bool
}

// Lab is a running namespace lab. Its methods are safe for concurrent use.
type Lab struct {
	// Prefix starts the name of every namespace of this lab ("kvl1234-ab12").
	Prefix string
	// Switch is the name of the namespace that holds the bridge.
	Switch string

	nodes  []*Node
	client *Node
	dir    string
	rmDir  bool // the lab made dir: Close removes it
	// testDir: dir is New's t.TempDir(), which the signal handler removes (the test's
	// cleanup does not run when the process dies of a signal).
	testDir   bool
	noSignals bool
	tb        testing.TB // nil when opened with Open
	logf      func(string, ...any)
	port      int
	nice      int

	swMu sync.Mutex
	sw   *netlink.Handle // NETLINK_ROUTE in the switch namespace, for faults

	mu         sync.Mutex
	namespaces []string // created, to delete on Close
	procs      []*Proc
	closers    []func() // probes and responders
	blocked    map[string]bool
	closed     bool
	closeErr   error
	closeOnce  sync.Once
	nameCounts map[string]int
}

// New builds a lab for a test and removes it in t.Cleanup. Process logs go under t.TempDir()
// and the tail of each is logged if the test fails. Any error is fatal to the test.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	opts.Dir = t.TempDir()
	l, err := open(t, opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.dumpLogs()
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	return l
}

// Open builds a lab outside a test (e.g. `make demo`). The returned func is l.Close; call it
// on every path. SIGINT, SIGTERM, SIGHUP and SIGQUIT also close the lab before the process
// exits (unless Options.NoSignalHandler).
func Open(opts Options) (*Lab, func() error, error) {
	l, err := open(nil, opts)
	if err != nil {
		return nil, nil, err
	}
	return l, l.Close, nil
}

func open(tb testing.TB, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the namespace lab needs root")
	}
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	if opts.Nice < -20 || opts.Nice > 19 {
		return nil, fmt.Errorf("nice=%d: want -20..19", opts.Nice)
	}
	if opts.Nodes < 1 || opts.Nodes > maxNodes {
		return nil, fmt.Errorf("nodes=%d: want 1..%d", opts.Nodes, maxNodes)
	}
	port := opts.ResponderPort
	if port == 0 {
		port = DefaultResponderPort
	}
	sweepOnce.Do(func() {
		removed, err := Sweep()
		if len(removed) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "lab: swept leftovers of dead runs: %v (err=%v)\n", removed, err)
		}
	})

	var b [2]byte
	_, _ = rand.Read(b[:])
	prefix := fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(b[:]))
	l := &Lab{
		Prefix:     prefix,
		Switch:     prefix + "-sw",
		tb:         tb,
		logf:       opts.Logf,
		port:       port,
		nice:       opts.Nice,
		noSignals:  opts.NoSignalHandler,
		blocked:    map[string]bool{},
		nameCounts: map[string]int{},
	}
	if l.logf == nil {
		l.logf = func(string, ...any) {}
	}
	if tb != nil {
		l.logf = tb.Logf
	}
	l.dir = opts.Dir
	l.testDir = tb != nil
	if l.dir == "" {
		d, err := os.MkdirTemp("", prefix+"-")
		if err != nil {
			return nil, fmt.Errorf("lab dir: %w", err)
		}
		l.dir, l.rmDir = d, true
	}
	register(l)
	if err := l.build(opts.Nodes); err != nil {
		cerr := l.Close()
		return nil, errors.Join(fmt.Errorf("build lab %s: %w", prefix, err), cerr)
	}
	return l, nil
}

func (l *Lab) newNode(name string, host int) (*Node, error) {
	n := &Node{
		Name:      name,
		NetNS:     l.Prefix + "-" + name,
		Interface: Interface,
		Port:      name,
		IPv4:      Addr4(host),
		IPv6:      Addr6(host),
		MAC:       mac(host),
		Dir:       filepath.Join(l.dir, name),
		lab:       l,
	}
	if name == "client" {
		n.NetNS = l.Prefix + "-cl"
		n.Port = "cl"
	}
	// eui64 link-local from the MAC: fe80::6b:76ff:fe00:<host>.
	m := n.MAC
	ll := [16]byte{0xfe, 0x80, 8: m[0] ^ 0x02, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]}
	n.LinkLocal = netip.AddrFrom16(ll).WithZone(Interface)
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("node dir: %w", err)
	}
	return n, nil
}

func (l *Lab) build(nodes int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i := 1; i <= nodes; i++ {
		n, err := l.newNode(fmt.Sprintf("n%d", i), NodeHost(i))
		if err != nil {
			return err
		}
		l.nodes = append(l.nodes, n)
	}
	client, err := l.newNode("client", ClientHost)
	if err != nil {
		return err
	}
	l.client = client
	hosts := append(slices.Clone(l.nodes), client)

	for _, ns := range append([]string{l.Switch}, nsNames(hosts)...) {
		if _, err := run(ctx, "", "ip", "netns", "add", ns); err != nil {
			return err
		}
		l.mu.Lock()
		l.namespaces = append(l.namespaces, ns)
		l.mu.Unlock()
	}

	// The switch only bridges: no IPv6 on its links (no DAD, MLD or RS noise), and bridged
	// frames skip netfilter's IP hooks even where br_netfilter is built in.
	if err := writeSysctls(l.Switch, [][2]string{
		{"net.ipv6.conf.all.disable_ipv6", "1"},
		{"net.ipv6.conf.default.disable_ipv6", "1"},
	}, false); err != nil {
		return err
	}
	if err := writeSysctls(l.Switch, [][2]string{
		{"net.bridge.bridge-nf-call-iptables", "0"},
		{"net.bridge.bridge-nf-call-ip6tables", "0"},
		{"net.bridge.bridge-nf-call-arptables", "0"},
	}, true); err != nil {
		return err
	}
	// Hosts: no duplicate address detection (addresses usable at once, VIPs never
	// "tentative"), no router solicitations. Set on "default" before the links exist.
	for _, h := range hosts {
		if err := writeSysctls(h.NetNS, [][2]string{
			{"net.ipv6.conf.all.accept_dad", "0"},
			{"net.ipv6.conf.default.accept_dad", "0"},
			{"net.ipv6.conf.all.dad_transmits", "0"},
			{"net.ipv6.conf.default.dad_transmits", "0"},
			{"net.ipv6.conf.all.accept_ra", "0"},
			{"net.ipv6.conf.default.accept_ra", "0"},
			{"net.ipv6.conf.default.router_solicitations", "0"},
		}, false); err != nil {
			return err
		}
	}

	// Both ends of each veth are created directly inside lab namespaces: nothing ever
	// appears in the host's namespace, and names cannot collide with other labs.
	sw := []string{
		"link add " + Bridge + " type bridge mcast_snooping 0 stp_state 0",
		"link set " + Bridge + " up",
	}
	for _, h := range hosts {
		sw = append(sw,
			fmt.Sprintf("link add %s type veth peer name %s address %s netns %s", h.Port, h.Interface, h.MAC, h.NetNS),
			fmt.Sprintf("link set %s master %s", h.Port, Bridge),
			fmt.Sprintf("link set %s up", h.Port),
		)
	}
	if err := ipBatch(ctx, l.Switch, sw...); err != nil {
		return err
	}
	if err := inNetns(l.Switch, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		l.sw = h
		return err
	}); err != nil {
		return fmt.Errorf("netlink in %s: %w", l.Switch, err)
	}
	for _, h := range hosts {
		if err := ipBatch(ctx, h.NetNS,
			"link set lo up",
			fmt.Sprintf("link set %s up", h.Interface),
			fmt.Sprintf("addr add %s/%d dev %s", h.IPv4, Net4.Bits(), h.Interface),
			fmt.Sprintf("addr add %s/%d dev %s nodad", h.IPv6, Net6.Bits(), h.Interface),
		); err != nil {
			return err
		}
		if err := h.openNetlink(); err != nil {
			return err
		}
	}
	for _, h := range hosts {
		if err := h.waitLinkLocal(5 * time.Second); err != nil {
			return err
		}
	}
	if l.port > 0 {
		for _, n := range l.nodes {
			if err := l.startResponder(n); err != nil {
				return err
			}
		}
	}
	return nil
}

func nsNames(ns []*Node) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.NetNS)
	}
	return s
}

// Nodes returns the node namespaces n1..nN.
func (l *Lab) Nodes() []*Node { return slices.Clone(l.nodes) }

// Node returns node i (1-based: Node(1) is "n1").
func (l *Lab) Node(i int) *Node { return l.nodes[i-1] }

// NodeByName returns the node called name ("n1", "client"), or nil.
func (l *Lab) NodeByName(name string) *Node {
	for _, n := range append(l.Nodes(), l.client) {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeByMAC returns the node or client whose lab interface has address mac, or nil.
func (l *Lab) NodeByMAC(m net.HardwareAddr) *Node {
	for _, n := range append(l.Nodes(), l.client) {
		if n.MAC.String() == m.String() {
			return n
		}
	}
	return nil
}

// Client returns the client namespace. It is a Node (Run, Start, queries) without a
// responder; probes of a VIP are sent from here.
func (l *Lab) Client() *Node { return l.client }

// Dir returns the lab's directory (node directories and logs).
func (l *Lab) Dir() string { return l.dir }

// ResponderPort returns the UDP port of the nodes' responders, or -1 when disabled.
func (l *Lab) ResponderPort() int {
	if l.port <= 0 {
		return -1
	}
	return l.port
}

// OnClose registers f to run when the lab closes, on every path (a test's cleanup, Close, or
// SIGINT/SIGTERM), before its processes are stopped and its namespaces deleted; the last one
// registered runs first. It is for what lives beside the lab and must go with it (e.g. the
// mounts and cgroups of a node's container runtime, internal/cluster). After Close, f runs at once.
func (l *Lab) OnClose(f func()) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		f()
		return
	}
	l.closers = append(l.closers, f)
	l.mu.Unlock()
}

func (l *Lab) addCloser(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, f)
}

// procName returns a unique per-node log name for a process.
func (l *Lab) procName(node, name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := node + "/" + name
	l.nameCounts[key]++
	if c := l.nameCounts[key]; c > 1 {
		return fmt.Sprintf("%s.%d", name, c)
	}
	return name
}

// Close stops every process and probe of the lab and deletes its namespaces (which removes
// all links, addresses and filters with them). It is idempotent.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	closers := slices.Clone(l.closers)
	procs := slices.Clone(l.procs)
	namespaces := slices.Clone(l.namespaces)
	l.mu.Unlock()
	defer unregister(l)

	var errs []error
	for _, c := range slices.Backward(closers) {
		c()
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.Stop() })
	}
	wg.Wait()
	for _, n := range append(l.Nodes(), l.client) {
		if n != nil {
			n.closeNetlink()
		}
	}
	l.swMu.Lock()
	if l.sw != nil {
		l.sw.Close()
		l.sw = nil
	}
	l.swMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range slices.Backward(namespaces) {
		if err := killNetnsProcs(ns); err != nil {
			errs = append(errs, err)
		}
		if _, err := run(ctx, "", "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if l.rmDir {
		if err := removeTree(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dumpLogs logs the tail of every process log (called when a test failed).
func (l *Lab) dumpLogs() {
	l.mu.Lock()
	procs := slices.Clone(l.procs)
	l.mu.Unlock()
	for _, p := range procs {
		l.logf("--- %s/%s (%s) last lines:\n%s", p.Node.Name, p.Name, p.LogPath, p.Tail(40))
	}
}

func (l *Lab) fatalf(format string, args ...any) {
	if l.tb != nil {
		l.tb.Helper()
		l.tb.Fatalf(format, args...)
	}
	panic(fmt.Sprintf("lab: "+format, args...))
}

// switchLink runs f with the switch namespace's netlink handle, the named bridge port and
// the bridge.
func (l *Lab) switchLink(port string, f func(h *netlink.Handle, port, bridge netlink.Link) error) error {
	l.swMu.Lock()
	defer l.swMu.Unlock()
	if l.sw == nil {
		return errors.New("lab closed")
	}
	p, err := l.sw.LinkByName(port)
	if err != nil {
		return fmt.Errorf("switch port %s: %w", port, err)
	}
	br, err := l.sw.LinkByName(Bridge)
	if err != nil {
		return fmt.Errorf("switch bridge: %w", err)
	}
	if err := f(l.sw, p, br); err != nil {
		return fmt.Errorf("switch port %s: %w", port, err)
	}
	return nil
}
