//go:build linux

package hostnet

import (
	"fmt"
	"net/netip"
)

// ForeignAddresses returns the addresses of ifname that kube-vrrp did not add: the host's own
// and other programs'. A virtual address among them must not be taken: a MASTER would serve
// an address that is someone else's, and its resignation could not give it back (Unbind
// leaves such addresses alone).
//
// kube-vrrp's addresses are those carrying AddrProto, and, on kernels that drop the mark
// (Linux < 6.1), those this Host added (see link.owns). An address a killed predecessor left
// on such a kernel cannot be told from a foreign one, and counts as foreign.
func (h *Host) ForeignAddresses(ifname string) ([]netip.Prefix, error) {
	out, err := h.foreign(ifname)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	return out, nil
}

func (h *Host) foreign(ifname string) ([]netip.Prefix, error) {
	li, err := h.lookup(ifname)
	if err != nil {
		return nil, err
	}
	rt, err := h.handles()
	if err != nil {
		return nil, err
	}
	have, err := rt.addrs(li.index)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	l := h.links[ifname]
	h.mu.Unlock()
	var out []netip.Prefix
	for _, a := range have {
		if a.ours() || (l != nil && l.owns(a)) {
			continue
		}
		out = append(out, a.Prefix)
	}
	return out, nil
}
