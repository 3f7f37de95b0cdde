// Package bench holds the failover benchmarks of `make bench`: the outage a client sees
// (a UDP probe every 10 ms) when the MASTER's link is cut and when it is stopped with SIGTERM,
// at advert intervals of 1 s, 100 ms and 10 ms, for keepalived and kube-vrrp side by side in
// the same run and lab, and when HAProxy dies under either. The link is cut a fixed time
// (-phase, 5 ms) after an advert leaves the MASTER, so that every run measures the same
// point of the advert cycle. They print tables and, with -out, write them and PNG plots of
// the samples' distributions there; they assert nothing about timing. BenchmarkScale prints
// what one node MASTER of 100 and 1000 VIPs costs each (memory, CPU, advert send jitter on the
// wire), and BenchmarkInstanceHeap what one instance costs the Go runtime of the agent.
// BenchmarkStatusAPI prints what a failover costs a real kube-apiserver with N agents (the
// real controllers, the VRRP engine scripted) and V VirtualIPs selecting every node: its
// writes by verb and code, the time until status.master is right, CPU; BenchmarkAgentMemory
// one real agent's memory in a cluster of 5000 Nodes and 1000 VirtualIPs.
// BenchmarkControlPlane prints a control-plane VIP's API outage (lab test: test/controlplane).
// BenchmarkLoadBalancer prints what a client of a Service of type LoadBalancer sees when the
// announcing node fails (link cut, SIGTERM, power-off), kube-vrrp beside MetalLB's layer 2 mode
// (built by hack/metallb.sh; lab test: test/lblab).
package bench
