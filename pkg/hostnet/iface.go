//go:build linux

package hostnet

import (
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Interfaces lists the interfaces of the calling thread's network namespace, by index.
func Interfaces() ([]Interface, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	rt, err := newRTNL()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	defer rt.close()
	addrs, err := rt.addrs(0)
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make([]Interface, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		ifc := Interface{
			Name:         a.Name,
			Index:        a.Index,
			Up:           a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_RUNNING != 0,
			HardwareAddr: a.HardwareAddr,
		}
		// A virtual MAC interface's addresses are virtual ones, never the node's, even on a
		// kernel that drops their mark.
		vmac := isVMAC(a.Name, l.Type(), a.HardwareAddr)
		for _, ad := range addrs {
			if ad.Index == a.Index && !vmac && !ad.ours() && ad.Flags&unix.IFA_F_DADFAILED == 0 {
				ifc.Prefixes = append(ifc.Prefixes, ad.Prefix)
			}
		}
		out = append(out, ifc)
	}
	slices.SortFunc(out, func(a, b Interface) int { return a.Index - b.Index })
	return out, nil
}
