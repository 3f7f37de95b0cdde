// Package hostnet is the Linux side of the VRRP engine: raw IP protocol 112 sockets for
// adverts (RFC 3768, RFC 5798), netlink address binding with an ownership mark, the link's
// carrier state, gratuitous ARP (RFC 5227) and unsolicited neighbour advertisements (RFC 4861
// §7.2.6), the virtual MAC interfaces of instances with virtualMAC (macvlans with the RFC 5798
// §7.3 address, vmac.go), and a host lock.
//
// A Host works in the network namespace of the thread that created it, whichever goroutine
// later calls it; the package-level functions work in the namespace of the calling thread.
//
// On other systems the package has the same API, but every operation fails with an error
// wrapping errors.ErrUnsupported (Supported says so up front): the command builds everywhere
// for what needs no host, such as validating manifests.
package hostnet
