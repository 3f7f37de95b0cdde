package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FRR's vrrpd (Debian's frr package, 8.4) in the lab. vrrpd needs zebra (it learns interfaces
// and addresses from it and asks it to set links protodown), so every node runs both, with
// sockets, pid files and configs in a directory of its own: nothing under /etc/frr or
// /var/run/frr, no TCP vty port. Both run in the foreground inside the node's namespace
// (never the host's) and log to stdout.
//
// vrrpd creates no interfaces. As FRR's documentation describes, each virtual router needs a
// macvlan device on the parent link, in bridge mode, with the virtual router's MAC
// (00:00:5e:00:01:VRID for IPv4, 00:00:5e:00:02:VRID for IPv6) and the virtual addresses
// bound on it: [Node.AddVRRPMacvlan] makes it. vrrpd keeps the addresses there in every
// state; a BACKUP's macvlan is set protodown (no carrier), a MASTER's is up. So a node
// "holds" a virtual address only when the link it is bound on has carrier: [Node.Serves] and
// [WaitServingHolders] tell, where [Node.HasAddress] does not.

// FRRDir is where Debian installs FRR's daemons.
const FRRDir = "/usr/lib/frr"

// frrTmpDir is where every FRR daemon keeps its crash log buffers, in <daemon>.<pid>; the
// daemon removes its directory when it exits cleanly, not when it is killed.
const frrTmpDir = "/var/tmp/frr"

// execFRRDaemon starts FRR daemon d with its files in dir, and removes its crash log
// directory when it has ended (also when the lab had to kill it).
func (n *Node) execFRRDaemon(d, dir string) (*Proc, error) {
	p, err := n.Exec(context.Background(), d, n.lab.speakerArgv(frrArgv(d, dir))...)
	if err != nil {
		return nil, err
	}
	go func() {
		<-p.Done()
		_ = os.RemoveAll(filepath.Join(frrTmpDir, fmt.Sprintf("%s.%d", d, p.Pid())))
	}()
	return p, nil
}

// FRRRouter describes one FRR VRRP virtual router (the "vrrp VRID ..." lines of an interface
// block). Zero fields take FRR's defaults.
type FRRRouter struct {
	// Interface is the parent link (default "eth0"); the macvlan hangs off it.
	Interface string
	// VRID, 1..255 (required).
	VRID int
	// Version is 2 or 3 (default 3). IPv6 needs 3. FRR's VRRPv2 has no authentication.
	Version int
	// Priority, 1..254 (default 100).
	Priority int
	// AdvertInt, in 10 ms steps (default 1 s). VRRPv2 sends it in whole seconds.
	AdvertInt time.Duration
	// NoPreempt writes "no vrrp VRID preempt".
	NoPreempt bool
	// Addresses are the virtual addresses, one family, in the order FRR advertises them. For
	// IPv6, RFC 5798 §5.2.9 wants the virtual router's link-local address first; FRR sends the
	// list as configured, so list it first when peers check (kube-vrrp does).
	Addresses []netip.Addr
}

// String renders the interface block.
func (r FRRRouter) String() string {
	ifname := r.Interface
	if ifname == "" {
		ifname = Interface
	}
	version := r.Version
	if version == 0 {
		version = 3
	}
	var b strings.Builder
	fmt.Fprintf(&b, "interface %s\n", ifname)
	fmt.Fprintf(&b, " vrrp %d version %d\n", r.VRID, version)
	if r.Priority != 0 {
		fmt.Fprintf(&b, " vrrp %d priority %d\n", r.VRID, r.Priority)
	}
	if r.AdvertInt != 0 {
		fmt.Fprintf(&b, " vrrp %d advertisement-interval %d\n", r.VRID, r.AdvertInt.Milliseconds())
	}
	if r.NoPreempt {
		fmt.Fprintf(&b, " no vrrp %d preempt\n", r.VRID)
	}
	for _, a := range r.Addresses {
		kw := "ip"
		if a.Is6() {
			kw = "ipv6"
		}
		fmt.Fprintf(&b, " vrrp %d %s %s\n", r.VRID, kw, a.WithZone(""))
	}
	b.WriteString("exit\n")
	return b.String()
}

// FRRConf renders a vrrpd configuration: extra global lines (e.g. "debug vrrp packets"),
// then one interface block per router.
func FRRConf(global []string, routers ...FRRRouter) string {
	var b strings.Builder
	for _, g := range global {
		b.WriteString(g)
		b.WriteByte('\n')
	}
	for _, r := range routers {
		b.WriteString("!\n")
		b.WriteString(r.String())
	}
	return b.String()
}

// FRRMacvlan returns the name of the macvlan AddVRRPMacvlan makes for virtual router vrid of
// the family of v6: "vrrp4-51", "vrrp6-60".
func FRRMacvlan(vrid int, v6 bool) string {
	if v6 {
		return fmt.Sprintf("vrrp6-%d", vrid)
	}
	return fmt.Sprintf("vrrp4-%d", vrid)
}

// VirtualMAC returns the virtual router MAC of vrid (RFC 5798 §7.3): 00:00:5e:00:01:VRID for
// IPv4, 00:00:5e:00:02:VRID for IPv6.
func VirtualMAC(vrid int, v6 bool) net.HardwareAddr {
	fam := byte(1)
	if v6 {
		fam = 2
	}
	return net.HardwareAddr{0, 0, 0x5e, 0, fam, byte(vrid)}
}

// FRRLinkLocal returns the link-local address AddVRRPMacvlan gives an IPv6 macvlan on n,
// fe80::5e:<host> (host's decimal digits as hex digits, like n.IPv6): the source of FRR's
// IPv6 adverts, which vrrpd takes from the macvlan. FRR's documentation asks for one that is
// not derived from the macvlan's MAC, which every router of the group shares.
func FRRLinkLocal(n *Node) netip.Addr {
	host := n.IPv4.As4()[3]
	return netip.MustParseAddr(fmt.Sprintf("fe80::5e:%d", host))
}

// AddVRRPMacvlan creates the macvlan device FRR's vrrpd needs for virtual router vrid on n's
// lab link, as FRR's documentation describes it: bridge mode (so the parent still receives
// the other routers' adverts while the macvlan is protodown), the virtual router MAC, the
// virtual addresses vips (one family) bound on it, up but protodown (vrrpd lifts that when it
// becomes MASTER). For IPv6 it has no EUI-64 link-local address (addrgenmode none) but
// FRRLinkLocal(n), added before the virtual addresses. It returns the device's name.
//
// It also sets sysctls of n that FRR's setup needs beside the macvlan; the lab found each one
// missing moving clients to the wrong MAC:
//   - arp_ignore=1 on all links: otherwise the parent, and every other macvlan (bridge mode
//     hands them the same broadcasts), answers ARP requests for the virtual address with its
//     own MAC in every state (Linux answers for a local address on any link by default), so a
//     BACKUP draws clients too;
//   - arp_announce=2 on all links: otherwise the ARP request the node sends to reach a client
//     it answers from the virtual address through the parent (whose subnet route comes
//     first) names the virtual address with the parent's MAC, and the client takes that for
//     the VIP's;
//   - ignore_routes_with_linkdown=1, so that the subnet route of a protodown macvlan is not
//     used (FRR's troubleshooting notes).
func (n *Node) AddVRRPMacvlan(vrid int, vips []netip.Prefix) (string, error) {
	if vrid < 1 || vrid > 255 || len(vips) == 0 {
		return "", fmt.Errorf("macvlan: vrid %d, %d addresses", vrid, len(vips))
	}
	v6 := vips[0].Addr().Is6()
	for _, v := range vips {
		if v.Addr().Is6() != v6 {
			return "", fmt.Errorf("macvlan: %v mixes families", vips)
		}
	}
	name := FRRMacvlan(vrid, v6)
	if err := writeSysctls(n.NetNS, [][2]string{
		{"net.ipv4.conf.all.arp_ignore", "1"},
		{"net.ipv4.conf.all.arp_announce", "2"},
		{"net.ipv4.conf.all.ignore_routes_with_linkdown", "1"},
		{"net.ipv6.conf.all.ignore_routes_with_linkdown", "1"},
	}, false); err != nil {
		return "", err
	}
	lines := []string{
		fmt.Sprintf("link add %s link %s type macvlan mode bridge", name, n.Interface),
		// Not on "link add": iproute2 6.1 sends it in a way that kernel refuses on creation.
		fmt.Sprintf("link set dev %s addrgenmode none", name),
		fmt.Sprintf("link set dev %s address %s", name, VirtualMAC(vrid, v6)),
	}
	if v6 {
		lines = append(lines, fmt.Sprintf("addr add %s/64 dev %s nodad", FRRLinkLocal(n), name))
	}
	for _, v := range vips {
		if v6 {
			lines = append(lines, fmt.Sprintf("addr add %s dev %s nodad", v, name))
		} else {
			lines = append(lines, fmt.Sprintf("addr add %s dev %s", v, name))
		}
	}
	// Protodown until vrrpd decides, as it sets a BACKUP's: up at once, the node would serve
	// the address before any election.
	lines = append(lines, fmt.Sprintf("link set dev %s protodown on", name), fmt.Sprintf("link set dev %s up", name))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ipBatch(ctx, n.NetNS, lines...); err != nil {
		return "", fmt.Errorf("%s: macvlan for FRR: %w", n.Name, err)
	}
	return name, nil
}

// FRR is FRR's zebra and vrrpd running in one node.
type FRR struct {
	Node *Node
	// Zebra and VRRPd are the daemons; VRRPd is the latest one StartVRRPd started.
	Zebra, VRRPd *Proc
	// Dir holds the configs, the vty and zserv sockets and the pid files.
	Dir string
}

// frrArgv returns the command line of FRR daemon d ("zebra", "vrrpd") with its files in dir.
// -u root -g frrvty: FRR drops root for its own user by default, which could not reach a
// test's directory (0700, root's); FRR only wants the user in the vty group, which -g
// makes it. -P 0: no TCP vty. -z: zebra's API socket, --vty_socket: the vtysh sockets, -i:
// the pid file, all in dir, so nodes do not meet in /var/run/frr.
func frrArgv(d, dir string) []string {
	return []string{
		filepath.Join(FRRDir, d), "-u", "root", "-g", "frrvty", "-P", "0",
		"--vty_socket", dir, "-z", filepath.Join(dir, "zserv.api"), "-i", filepath.Join(dir, d+".pid"),
		"-f", filepath.Join(dir, d+".conf"), "--log", "stdout", "--log-level", "info",
	}
}

// ExecFRR writes vrrpdConf into a new directory of the node, starts zebra, waits for its API
// socket, and starts vrrpd with vrrpdConf. Create the macvlans (AddVRRPMacvlan) first: vrrpd
// finds them when it starts (or when zebra reports them later). The lab stops both on Close
// (SIGTERM: a MASTER vrrpd sends priority 0 and sets its macvlan protodown).
func (n *Node) ExecFRR(vrrpdConf string) (*FRR, error) {
	if _, err := os.Stat(filepath.Join(FRRDir, "vrrpd")); err != nil {
		return nil, fmt.Errorf("FRR's vrrpd (Debian package frr; hack/install-deps.sh): %w", err)
	}
	name := n.lab.procName(n.Name, "frr")
	dir := filepath.Join(n.Dir, name)
	if _, err := n.WriteFile(filepath.Join(name, "zebra.conf"), []byte("hostname "+n.Name+"\n")); err != nil {
		return nil, err
	}
	if _, err := n.WriteFile(filepath.Join(name, "vrrpd.conf"), []byte(vrrpdConf)); err != nil {
		return nil, err
	}
	f := &FRR{Node: n, Dir: dir}
	z, err := n.execFRRDaemon("zebra", dir)
	if err != nil {
		return nil, err
	}
	f.Zebra = z
	sock := filepath.Join(dir, "zserv.api")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		if z.Exited() || time.Now().After(deadline) {
			z.Stop()
			return nil, fmt.Errorf("%s: zebra did not open %s:\n%s", n.Name, sock, z.Tail(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := f.StartVRRPd(); err != nil {
		z.Stop()
		return nil, err
	}
	return f, nil
}

// StartFRR is ExecFRR for tests.
func (n *Node) StartFRR(t testing.TB, vrrpdConf string) *FRR {
	t.Helper()
	f, err := n.ExecFRR(vrrpdConf)
	if err != nil {
		t.Fatalf("%s: FRR: %v", n.Name, err)
	}
	return f
}

// StartVRRPd starts vrrpd (again, after it stopped) with the same configuration and zebra.
func (f *FRR) StartVRRPd() (*Proc, error) {
	if f.VRRPd != nil && !f.VRRPd.Exited() {
		return nil, errors.New("vrrpd is running")
	}
	p, err := f.Node.execFRRDaemon("vrrpd", f.Dir)
	if err != nil {
		return nil, err
	}
	f.VRRPd = p
	return p, nil
}

var frrTransition = regexp.MustCompile(`\[VRID (\d+)\] \[(IPv[46])\] (\w+) -> (\w+)`)

// FRRState returns the state vrrpd process p last logged for virtual router vrid of the
// family of v6 ("Initialize", "Backup", "Master"; "" before the first transition).
func FRRState(p *Proc, vrid int, v6 bool) string {
	fam := "IPv4"
	if v6 {
		fam = "IPv6"
	}
	st := ""
	for _, m := range frrTransition.FindAllStringSubmatch(p.Log(), -1) {
		if m[1] == fmt.Sprint(vrid) && m[2] == fam {
			st = m[4]
		}
	}
	return st
}

// WaitFRRState waits until the latest state vrrpd process p logged for vrid (family of v6)
// is state ("Master", "Backup").
func WaitFRRState(p *Proc, vrid int, v6 bool, state string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := FRRState(p, vrid, v6)
		if got == state {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s vrrpd exited; VRID %d is %q, want %s:\n%s", p.Node.Name, vrid, got, state, p.Tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s vrrpd: VRID %d is %q after %v, want %s", p.Node.Name, vrid, got, timeout, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Serves reports whether the node has p's address bound on a link that is administratively
// up and has carrier (LOWER_UP): one that answers ARP and neighbour solicitations for it and
// sends. A link set protodown, as FRR's vrrpd sets a BACKUP's macvlan, has no carrier. It
// still receives, though: a client that kept the virtual MAC for the address is still
// answered by that node (TestFRRBackupStillReceives). The prefix length is ignored, as in
// HasAddress.
func (n *Node) Serves(p netip.Prefix) bool {
	as, err := n.addrs(false)
	if err != nil {
		return false
	}
	want := p.Addr().WithZone("")
	n.nlMu.Lock()
	defer n.nlMu.Unlock()
	if n.nl == nil {
		return false
	}
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap() != want {
			continue
		}
		l, err := n.nl.LinkByIndex(a.LinkIndex)
		if err != nil {
			continue
		}
		const running = unix.IFF_UP | unix.IFF_LOWER_UP
		if l.Attrs().RawFlags&running == running {
			return true
		}
	}
	return false
}

// ServingHolders returns the nodes among nodes that serve vip now (Node.Serves).
func ServingHolders(nodes []*Node, vip netip.Prefix) []*Node {
	var h []*Node
	for _, n := range nodes {
		if n.Serves(vip) {
			h = append(h, n)
		}
	}
	return h
}

// WaitServingHolders is WaitHolders by Node.Serves: it waits until exactly the nodes in want
// among nodes serve vip.
func WaitServingHolders(nodes []*Node, vip netip.Prefix, want []*Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		h := ServingHolders(nodes, vip)
		if names(h) == names(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes serving %s after %v: %s, want %s", vip.Addr(), timeout, names(h), names(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
