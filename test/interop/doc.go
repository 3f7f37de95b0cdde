// Package interop checks that kube-vrrp and keepalived (Debian's keepalived 2.2.7) speak the
// same VRRP on the wire. In a two-node namespace lab (internal/lab), n1 runs keepalived and n2
// `kube-vrrp run`; every test drives the group in both directions (kube-vrrp MASTER with
// keepalived BACKUP, and the reverse) through an election, a failover and a hand back,
// asserting who holds the virtual address and whom the client reaches.
//
// Covered: VRRPv2 multicast with auth_type PASS (and a wrong password, which must split the
// group), VRRPv3 multicast over IPv4 with keepalived's default checksum (IPv4 pseudo-header)
// and with kube-vrrp's RFC 9568 checksum (which keepalived 2.2.7 rejects), VRRPv3 unicast
// peers, graceful handover on SIGTERM (priority 0) both ways, and VRRPv3 over IPv6 (which
// needs keepalived's virtual_ipaddress to start with the virtual router's link-local
// address). Captures taken with tcpdump inside the lab are decoded with kube-vrrp's own codec
// (pkg/vrrp/packet): keepalived's adverts decode and encode again byte for byte.
//
// What the tests found about healing a split brain (a link cut on the MASTER, then restored)
// is described at pair.handback: the VIP always ends on the higher priority, but the client
// follows only if the winner heard a lower-priority advert before the loser stepped down.
//
// The tests need root and keepalived, iproute2, nftables and tcpdump (hack/install-deps.sh);
// they never touch the host's own network namespace.
package interop
