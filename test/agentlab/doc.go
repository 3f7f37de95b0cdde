// Package agentlab holds the namespace-lab tests of `kube-vrrp agent` against a real API
// server: etcd and kube-apiserver run inside the lab (test/cluster), one agent per node
// namespace with its own Node object and credentials limited to the generated RBAC (the
// admin certificate impersonating the agent's ServiceAccount). The tests drive a VirtualIP
// through election, a failover, address edits on the MASTER, deletion and an API server
// outage, and check status, the VIP on the nodes, what the client reaches, and that no agent
// was ever refused by the API server or the kernel. They log the figures the design asks
// for: `kubectl apply` to VIP bound, and status latency after a failover.
package agentlab
