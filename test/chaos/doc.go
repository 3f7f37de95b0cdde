// Package chaos runs kube-vrrp (and, for forged adverts, keepalived beside it) through the faults
// a hostile or broken LAN and a failing host inflict, in the namespace lab, and prints what
// happened as a table: scenario, implementation, outcome, time to converge, and what was left
// behind. Every scenario asserts that after convergence at most one node is MASTER (holds the
// VIP) and that nothing of kube-vrrp's is left on any host once it stopped.
//
// The tests need root (network namespaces); under CI a missing privilege fails them.
package chaos
