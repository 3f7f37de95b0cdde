// Package e2e is kube-vrrp as a user installs it, on a real cluster in the lab: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, and three nodes, each a network
// namespace with containerd and a kubelet (internal/cluster). The release image is built by
// `make image` and imported into every node's containerd; the chart is installed with the helm
// binary, objects are applied with kubectl, and the agents run as the DaemonSet's pods with
// their own ServiceAccount tokens. TestStaticPod runs, on a lab of one node, the kubeadm static
// pod `kube-vrrp static-pod` generates for a control-plane VIP under the node's kubelet
// (staticPodPath), without the chart.
//
// It needs root, the Kubernetes binaries (make envtest-assets) and Debian's containerd, runc and
// containernetworking-plugins (make deps). Without them it skips, except under CI, where it
// fails.
package e2e
