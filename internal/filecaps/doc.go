// Package filecaps is how the kube-vrrp image gives a non-root agent exactly NET_ADMIN and
// NET_RAW (see the Dockerfile), reproduced outside a container: SetFileCaps gives a binary the
// image's file capabilities (cap_net_admin,cap_net_raw=ep) and Command runs it as the chart's
// pod runs the agent (uid 65532, bounding set NET_ADMIN and NET_RAW, no_new_privs), for
// make demo.
//
// Its tests check the kernel rules this relies on: a container runtime's setup of the agent's
// process (bounding and permitted sets from the pod's capabilities, uid 65532, no_new_privs
// from allowPrivilegeEscalation: false) is replayed on one thread, which then executes a
// binary with and without the file capabilities, in a throwaway network namespace where it
// opens raw and packet sockets and adds an address. They need root (CI runs them).
package filecaps
