// Package lab builds throwaway network-namespace labs for privileged tests, benchmarks and
// `make demo`: a switch namespace with a Linux bridge, N node namespaces and one client
// namespace, each wired to the bridge with a veth pair, addressed from 198.18.0.0/24 and
// 2001:db8::/64 only.
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
// client sees with a 10 ms probe of the VIP ([Lab.StartProbe], [Lab.MeasureOutage]).
package lab
