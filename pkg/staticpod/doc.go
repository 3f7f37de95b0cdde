// Package staticpod generates what it takes to run kube-vrrp as a kubeadm static pod that
// holds the control-plane endpoint (the VIP of `kubeadm init --control-plane-endpoint
// VIP:6443`) in front of the node's own kube-apiserver: the Pod manifest for the kubelet's
// static pod directory, the VirtualIP that `kube-vrrp run` reads, and, with a PASS password,
// the Secret file that holds it. Generate validates every input and the generated VirtualIP
// with desired.Validate, so its output always passes `kube-vrrp validate`.
//
// # How the probe decides
//
// Each node's VirtualIP has one http probe, ProbeName, of https://<APIServer>/readyz, the
// node's own kube-apiserver, verified against the cluster CA (kubeadm's
// /etc/kubernetes/pki/ca.crt) under the server name "kubernetes", which kubeadm's API server
// certificate always holds (127.0.0.1 is not in it). /readyz is open to anonymous requests in
// a kubeadm cluster (the system:public-info-viewer role); an API server started with
// --anonymous-auth=false answers 401 and counts as down.
//
// The probe checks every ProbeInterval (start to start) and gives up on a check after
// ProbeTimeout; ProbeFall failures in a row make it failing, ProbeRise successes healthy
// again. A dead or hung API server is therefore seen within DetectWithin (fall intervals plus
// one timeout: 0.55 s); the MASTER then advertises its lowered priority at once and the best
// backup whose API server is ready takes over at once (docs/design.md §4.3), so the VIP moves
// in well under a second. kube-apiserver fails /readyz as soon as it begins to shut down;
// with --shutdown-delay-duration of a second (kubeadm leaves it 0) it keeps serving meanwhile,
// so that a restart moves the VIP before the port closes.
//
// # Priorities and weight
//
// The probe has weight APIServerWeight (-100): while it fails (and before its first check,
// docs/design.md §6.2) it lowers the node's priority by 100, and the node stays in the
// election instead of going to FAULT (docs/design.md §6.3). Priorities are held to
// MinPriority..MaxPriority (101..200), which makes two promises for any set of nodes whose
// manifests this package generated:
//
//   - A node whose API server is down always loses to one whose API server is up: the former
//     advertises at most 200-100 = 100, the latter at least 101.
//   - When no API server is up (the first `kubeadm init`, or a cold start of the whole control
//     plane) every node still takes part, at 1..100, so the node of highest configured priority
//     holds the VIP and the first API server to come up is reachable through it; with weight 0
//     every node would be in FAULT and the VIP nowhere.
//
// For example, priorities 150, 140 and 130: all API servers up, 150 holds the VIP; its API
// server down, it advertises 50 and 140 takes over; all down, 50/40/30 and 150's node still
// holds it. Equal priorities are allowed; the greater node address then wins (RFC 5798 §6.4.3),
// but distinct ones make the choice plain.
//
// # The Pod
//
// The kubelet refuses a static pod that references API objects (ServiceAccounts, Secrets,
// ConfigMaps, projected tokens) and validates it as the API server would; the Pod therefore
// has no ServiceAccount and only hostPath volumes. It runs on the host network with the
// chart's least privilege (docs/design.md §7.10): uid 65532, drop ALL, add NET_ADMIN and
// NET_RAW (the image's binary carries them as file capabilities), no privilege escalation, a
// read-only root filesystem, RuntimeDefault seccomp; an init container as root with CHOWN
// prepares the state directory (docs/design.md §5.6), as the chart's does. It mounts, read-only,
// ConfigDir (the VirtualIP and the Secret file) and the CA file's directory, at the same paths
// as on the host; kubeadm's private keys there are root's, mode 0600, which uid 65532 cannot
// read. The password reaches the agent only through the Secret file (`kube-vrrp run -f`), never
// through the manifest or the command line; that file must belong to uid 65532, mode 0600.
//
// `kube-vrrp run` reads its files only at start. The Pod carries the SHA-256 of the VirtualIP
// file (VirtualIPHashAnnotation), so that installing a changed VirtualIP with its manifest makes
// the kubelet restart the pod; a new password alone changes neither (a hash of a password of at
// most 8 bytes would give it away), so the pod must then be restarted by hand.
//
// With Options.Kubeconfig, `kube-vrrp run` also reports the VIP's state to the cluster once
// the API server answers (docs/design.md §7.11): the pod then reads a kubeconfig in ConfigDir
// with a client certificate of user kube-vrrp:node:<node> in group kube-vrrp:control-plane
// (owner uid 65532, mode 0600), since a static pod cannot use a ServiceAccount. The file may be
// installed after the pod started (after `kubeadm init` made the CA): run looks for it again,
// and starts again with a changed one. VRRP never waits for the API server.
//
// `kube-vrrp run` treats SIGTERM as a final stop: the kubelet stopping the pod (a manifest
// change, a graceful node shutdown) makes a MASTER hand the VIP over with priority 0 at once
// (docs/design.md §4.9), well within terminationGracePeriodSeconds.
package staticpod
