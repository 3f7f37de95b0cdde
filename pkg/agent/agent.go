package agent

import (
	"net/netip"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Host is what the agent needs of the machine; hostnet.Host implements it on Linux.
type Host interface {
	// Listen opens (or the agent reuses) the VRRP socket of ifname sending from src.
	Listen(ifname string, src netip.Addr) (vrrp.PacketConn, error)
	// Link returns the address and announcement side of ifname.
	Link(ifname string) (vrrp.Link, error)
}
