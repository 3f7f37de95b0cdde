// Package cluster runs a Kubernetes control plane inside a namespace lab (package lab): etcd
// and kube-apiserver as processes in one lab namespace (the client's, by default), reachable
// by every node over the lab bridge at https://<host>:6443, with certificates generated here
// (a CA, the serving certificate, an admin client certificate in system:masters and the
// ServiceAccount signing key).
//
// The test process talks to the API server through [ControlPlane.Client] and
// [ControlPlane.RESTConfig], whose connections are dialled by a thread that entered the lab
// namespace (a socket keeps the namespace it was created in), so nothing touches the host's
// own network. Agents in the node namespaces use kubeconfig files from
// [ControlPlane.WriteKubeconfig]: the admin certificate impersonating the agent's
// ServiceAccount, so every request is authorised by the RBAC under test and nothing else.
//
// [ControlPlane.Install] applies the CRD, the agent's namespace, ServiceAccount, generated
// ClusterRole and Role and their bindings; [ControlPlane.RegisterNodes] creates a Node per lab
// node with its addresses and a Ready condition. [ControlPlane.StopAPIServer] (or
// [ControlPlane.KillAPIServer]) and [ControlPlane.StartAPIServer] take the API server down and
// bring it back while etcd keeps the data.
//
//	l := lab.New(t, lab.Options{Nodes: 3})
//	cp := cluster.New(t, l, cluster.Options{})
//	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil { ... }
//	if err := cp.RegisterNodes(ctx, l.Nodes(), nil); err != nil { ... }
//	kubeconfig, err := cp.AgentKubeconfig() // as system:serviceaccount:kube-vrrp:kube-vrrp-agent
//	n.StartBinary(t, bin, "agent", "--node-name", n.Name, "--kubeconfig", kubeconfig)
//
// A real cluster: [ControlPlane.StartControllers] adds kube-controller-manager and
// kube-scheduler, and [ControlPlane.StartNodes] runs containerd and a kubelet on lab nodes
// (each in a private mount namespace of its own), which register themselves as Ready Nodes
// and run pods of images imported into their containerd (the pause image, [PauseImage], is
// built here). They need hack/k8s-binaries.sh's kubelet, kube-controller-manager and
// kube-scheduler and Debian's containerd, runc and containernetworking-plugins.
//
// Outside a test (`make demo`), [Start] returns the control plane and the caller closes it
// before the lab.
//
// Everything is stopped and removed by Close (a test's cleanup): the processes, the
// certificates, kubeconfigs and etcd's data. Directories left by a run that was killed are
// removed by the next one.
package cluster
