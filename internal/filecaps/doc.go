// Package filecaps is how the kube-vrrp image gives a non-root agent exactly NET_ADMIN and
// NET_RAW (see the Dockerfile; docs/design.md §7.10): the image's user (AgentID), its binary's
// file capabilities (ImageCaps) and the security.capability value that carries them (Xattr,
// which hack/image writes into the image's layer), and the credentials of a running process
// as /proc/PID/status reports them (ParseStatus, with which hack/demo, hack/image's test and
// pkg/hostnet's tests check what a process got).
//
// Its tests check the kernel rules the chart relies on: a container runtime's setup of the
// agent's process (bounding and permitted sets from the pod's capabilities, uid 65532,
// no_new_privs from allowPrivilegeEscalation: false) is replayed on one thread, which then
// executes a binary with and without the file capabilities, in a throwaway network namespace
// where it opens raw and packet sockets and adds an address; the init container's exec of the
// binary as root with CHOWN, NET_ADMIN and NET_RAW in the bounding set; and that Xattr is what
// setcap writes. They need root (CI runs them). test/e2e checks the real pods' credentials.
package filecaps
