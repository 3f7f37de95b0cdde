// Package filecaps checks, on this machine's kernel, how the kube-vrrp image gives a non-root
// agent exactly NET_ADMIN and NET_RAW (see the Dockerfile): a container runtime's setup of
// the agent's process (bounding and permitted sets from the pod's capabilities, uid 65532,
// no_new_privs from allowPrivilegeEscalation: false) is replayed on one thread, which then
// executes a binary carrying the file capabilities cap_net_admin,cap_net_raw=ep, in a
// throwaway network namespace. The test needs root (CI runs it).
package filecaps
