// Package speaker holds the namespace-lab scenario tests of `kube-vrrp run`: three speakers
// and a client on one bridge (see internal/lab), driven through election, link cut, graceful
// handover, preemption, split brain, SIGKILL and restart, for IPv4 and IPv6, multicast and
// unicast. The tests assert behaviour; the figures they log are measured precisely by the
// benchmarks in test/bench.
package speaker
