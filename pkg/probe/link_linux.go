package probe

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkChecker implements KindInterface: the link is administratively up (IFF_UP), has carrier
// (IFF_LOWER_UP) and its operational state is up or unknown (loopback, tun and some drivers
// report unknown; dormant, e.g. 802.1X not authorised, is down).
type linkChecker struct {
	name string
}

func (c linkChecker) check(context.Context) (bool, string) {
	// A fresh netlink socket per check, in the network namespace of the calling thread.
	l, err := netlink.LinkByName(c.name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return false, fmt.Sprintf("link %s does not exist", c.name)
		}
		return false, fmt.Sprintf("link %s: %v", c.name, err)
	}
	a := l.Attrs()
	switch {
	case a.Flags&net.FlagUp == 0:
		return false, fmt.Sprintf("link %s is administratively down", c.name)
	case a.RawFlags&unix.IFF_LOWER_UP == 0:
		return false, fmt.Sprintf("link %s has no carrier (operstate %s)", c.name, a.OperState)
	case a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown:
		return false, fmt.Sprintf("link %s is %s", c.name, a.OperState)
	}
	return true, fmt.Sprintf("link %s is up", c.name)
}
