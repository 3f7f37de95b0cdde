// Package agentlab holds the namespace-lab tests of `kube-vrrp agent` against a real API
// server: etcd and kube-apiserver run inside the lab (internal/cluster), one agent per node
// namespace with its own Node object and credentials limited to the generated RBAC (the
// admin certificate impersonating the agent's ServiceAccount). The tests drive a VirtualIP
// through election, a failover, address edits on the MASTER, deletion and an API server
// outage, and check status, the VIP on the nodes, what the client reaches, and that no agent
// was ever refused by the API server or the kernel. They log the figures the design asks
// for: `kubectl apply` to VIP bound, and status latency after a failover.
//
// TestChaosK8s is the Kubernetes-mode part of the chaos suite (test/chaos): a live PASS
// password rotation, kube-apiserver down for $KUBE_VRRP_CHAOS_API_DOWN (default 10m) and etcd
// down for $KUBE_VRRP_CHAOS_ETCD_DOWN (default 1m) with a failover during each, then SIGTERM
// to every agent. Its rows are logged and, when $KUBE_VRRP_CHAOS_TABLE is set (`make test`),
// written to that path + ".k8s". A quick run: KUBE_VRRP_CHAOS_API_DOWN=30s
// KUBE_VRRP_CHAOS_ETCD_DOWN=20s go test -count=1 -v -run TestChaosK8s ./test/agentlab/
package agentlab
