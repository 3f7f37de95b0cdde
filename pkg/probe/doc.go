// Package probe runs the health probes of a VRRP instance (process, tcp, http, interface,
// file, exec) with keepalived's rise/fall hysteresis, and computes the effective priority from
// their health with keepalived's weight semantics (Effective). It imports no Kubernetes package:
// pkg/desired translates a VirtualIP's probes into Specs.
//
// Probes run in the network and PID namespaces of the process: a process probe sees the
// processes of the agent's PID namespace (a DaemonSet needs hostPID to see the node's HAProxy),
// and tcp, http and interface probes use the agent's network namespace.
package probe
