// Package probes holds the namespace-lab tests of kube-vrrp's health probes (docs/design.md §6):
// real HAProxy (Debian's haproxy) serving HTTP on the VIP on two nodes, a client sending a request
// every 10 ms, and kube-vrrp run on each node with spec.probes. SIGKILL of the MASTER's HAProxy
// must move the address in far less than keepalived's 3.6 s; weighted probes must let the BACKUP
// preempt at once; rise/fall must hold against a flapping target; exec probes must be refused
// unless enabled. Each node has its own PID namespace (lab.PIDNamespace), so that a node's process
// probe sees only its own HAProxy. The tests assert behaviour with generous bounds and log the
// figures; test/bench measures them.
package probes
