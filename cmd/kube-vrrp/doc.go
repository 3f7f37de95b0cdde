// Command kube-vrrp is the kube-vrrp binary: the per-node agent of the DaemonSet (agent), the
// Service controller that gives LoadBalancer Services addresses from VirtualIPPools
// (controller), the standalone VRRP speaker (run), the manifest checker (validate), the
// keepalived.conf converter (convert), the kubeadm static pod of a control-plane VIP
// (static-pod), the state directory's preparation for the chart's init container (state-dir)
// and build information (version). It only wires packages together; validate, convert and
// version also build and run on macOS and Windows.
package main
