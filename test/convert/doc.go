// Package convert is the behavioural check of `kube-vrrp convert` (docs/design.md §8.2): a
// converted pair must behave as the original. keepalived pairs written for the namespace lab
// (testdata/<case>/lb1.conf and lb2.conf, lb1 on lab node n1 and lb2 on n2) are run as they are,
// and then with keepalived running the original configuration on one node and `kube-vrrp run`
// running the output of `kube-vrrp convert --node lb1=... --node lb2=...` on the other, in both
// placements. Every run goes through the same script (election, link cut and repair, stop and
// restart of lb1, carrier loss and repair on lb1) and records, at each step, who holds the VIP, the
// state each speaker reports and which node the client reaches; the converted pairs must record
// what the original pair recorded.
//
// The package has only test files besides this one; it needs root (see internal/privtest).
package convert
