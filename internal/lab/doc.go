// Package lab builds throwaway network-namespace labs for privileged tests, benchmarks and
// `make demo`: a switch namespace with a Linux bridge, N node namespaces and one client
// namespace, each wired to the bridge with a veth pair, addressed from 198.18.0.0/24 and
// 2001:db8::/64 only (node i: 198.18.0.1i and 2001:db8::1i; client: .100 and ::100).
//
// Everything the package creates lives in namespaces named "kvl<pid>-<rand>-*" and is removed
// by Close (or the test's cleanup), on failure and on SIGINT/SIGTERM too. The host's own
// network namespace is never changed: links are created directly inside the lab namespaces,
// sysctls are written by threads that entered a lab namespace, and firewall rules live in the
// lab switch's namespace. A run that crashed leaves namespaces whose owner pid is gone;
// [Sweep] (called by [New] and [Open]) removes them and the processes inside.
//
// A test drives VRRP speakers in the nodes ([Node.StartKeepalived], [Node.StartBinary]),
// injects faults ([Node.CutLink], [Node.LinkDown], [Node.BlockVRRP]), and measures what a
// client sees with a 10 ms probe of the VIP ([Lab.StartProbe], [Lab.MeasureOutage]):
//
//	l := lab.New(t, lab.Options{Nodes: 2})
//	vip := netip.MustParsePrefix("198.18.0.200/24")
//	in := lab.VRRPInstance{VRID: 51, Version: 3, AdvertInt: 100 * time.Millisecond, VIPs: []netip.Prefix{vip}}
//	for i, n := range l.Nodes() {
//		n.StartKeepalived(t, lab.KeepalivedConf(n.Name, in.ForNode(n, 110-10*i)))
//	}
//	if err := lab.WaitHolders(l.Nodes(), vip, []*lab.Node{l.Node(1)}, 5*time.Second); err != nil {
//		t.Fatal(err)
//	}
//	out, err := l.MeasureOutage(t.Context(), vip.Addr(), l.Node(1).CutLink, lab.OutageOptions{})
//	t.Logf("failover: %s", out) // "outage 351ms (34 probes lost), n1 -> n2"
//
// kube-vrrp runs the same way: write its manifest with [Node.MustWriteFile] and start it
// with [Node.StartBinary](t, bin, "run", "-f", path, "--node", n.Name).
//
// Every node runs a UDP responder (port 7) that answers with its name, sending from the
// address the probe was sent to; that is how a probe tells which node holds a VIP.
package lab
