// Package controlplane holds the namespace-lab test of kube-vrrp as the control-plane VIP of
// a kubeadm cluster: the static Pod that pkg/staticpod generates, run on three control-plane
// nodes in front of a kube-apiserver each (internal/cluster's HA: one etcd, a serving
// certificate per node for every node address and the VIP, signed by a test CA), with a client
// sending a CA-verified HTTPS GET /readyz to the VIP every 10 ms. Each fault must move the VIP
// to the right node and the client must recover within a generous bound: the MASTER's API
// server SIGKILLed, its link cut, its kube-vrrp stopped with SIGTERM, and a cold start with no
// API server running, where one node, and only one, must hold the VIP before any API server
// is up. The test logs the client-observed outage of each; test/bench's BenchmarkControlPlane
// measures them beside keepalived as the kubeadm guide configures it.
package controlplane
