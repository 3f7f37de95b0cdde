// Package lblab holds the namespace-lab test of Services of type LoadBalancer on real VRRP
// (docs/design.md §7.12): etcd and kube-apiserver in the lab (internal/cluster), `kube-vrrp
// agent` on three nodes, and `kube-vrrp controller` as a process beside the API server, with
// the generated role of each (the controller's: config/rbac/lb_controller_role.yaml) and
// nothing more. A VirtualIPPool of 198.18.0.0/15 addresses and a Service of class
// kubevrrp.io/vrrp: the Service gets its address in status.loadBalancer.ingress, the
// VirtualIP's MASTER holds it and the client reaches that node; a link cut of the MASTER moves
// the address to another node (the client's outage is logged), and deleting the Service
// releases it everywhere. `make bench` BenchmarkLoadBalancer (test/bench) measures the same
// failovers beside MetalLB's layer 2 mode.
package lblab
