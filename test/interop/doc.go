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
// FRR (frr_test.go, Debian's frr 8.4.4): n1 runs FRR's zebra and vrrpd, each lab node its
// own pair with sockets, pid files and configs in the node's directory, started with argv in
// the node's namespace (lab.Node.StartFRR), and on a macvlan in bridge mode with the virtual
// MAC that carries the VIP, as FRR's documentation asks the operator to create
// (lab.Node.AddVRRPMacvlan). A BACKUP's macvlan is protodown, so who holds the VIP is asked
// with lab.Node.Serves. Covered, both directions: VRRPv3 multicast over IPv4 and IPv6 at
// 100 ms (elect, fail over on SIGTERM and hand back by restarting, fail over on a link cut
// and hand back when it returns), VRRPv2 at 1 s without authentication (FRR has none), and
// the checksum forms: FRR 8.4 sends the IPv4 pseudo-header form and rejects RFC 9568's,
// which splits the group. FRR, as MASTER, never announces its addresses again after a split
// brain heals, so the client stays with the loser (TestFRRV3IPv4's frr-master hand back).
// TestThreeImplementations runs FRR, keepalived and kube-vrrp in one group of three, in three
// priority orders: elect, stop the MASTER, cut the next one's link, restart the first, heal;
// all agree on the MASTER at every step. The mixed groups (mixed_test.go, speaker_test.go)
// generalise pair to any implementations and number of routers.
//
// virtualMAC (vmac_test.go): kube-vrrp with spec.virtualMAC beside FRR and beside keepalived
// with use_vmac (its own private-mode vmac interface), IPv4 and IPv6, both directions: elect,
// SIGTERM failover and restart hand back, link-cut failover and heal. A lab.NeighbourWatch on
// the client asserts that its entry for the VIP holds the virtual MAC throughout, and the
// client must follow every change: with one MAC on both sides the switch learns where it is
// from the winner's adverts, so the heal that FRR wins (FRR announces nothing) and a start
// race that FRR wins after kube-vrrp announced (TestVirtualMACFRRStartRace, beside the same
// start without virtualMAC, which leaves the IPv4 client on kube-vrrp's node MAC) cost no
// probe. keepalived 2.2.7 sets arp_ignore and arp_filter on the parent of its vmac but not
// arp_announce: the test sets arp_announce 2 there, without which the node's ARP requests
// from the VIP turned the client's entry to the node's MAC.
//
// The tests need root and keepalived, frr, iproute2, nftables and tcpdump
// (hack/install-deps.sh); they never touch the host's own network namespace.
package interop
