//go:build linux

package hostnet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Kernel constants of the virtual MAC interfaces missing from x/sys/unix
// (include/uapi/linux/if_link.h, ip.h).
const (
	macvlanModeBridge = 4 // MACVLAN_MODE_BRIDGE
	addrGenModeNone   = 1 // IN6_ADDR_GEN_MODE_NONE
	// IPV4_DEVCONF_* ids of the IPv4 settings of a link (the net.ipv4.conf.<link>.* sysctls),
	// set over netlink (IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF) so that no /proc/sys write is
	// needed: a container's /proc/sys is read-only.
	devconfProxyArp           = 3
	devconfRPFilter           = 8
	devconfArpFilter          = 13
	devconfArpAnnounce        = 18
	devconfArpIgnore          = 19
	devconfPromoteSecondaries = 20
)

// linkDetail is what the Host reads of a link to tell a virtual MAC interface of its own from
// anything else: its kind, lower link, address and state.
type linkDetail struct {
	index int
	name  string
	// kind is IFLA_INFO_KIND ("macvlan"); empty for a link without one (a physical NIC).
	kind string
	// parent is IFLA_LINK, the lower link's index; 0 when absent.
	parent int
	mac    net.HardwareAddr
	flags  uint32 // ifi_flags: IFF_*
	group  uint32 // IFLA_GROUP
	// macvlanMode is IFLA_MACVLAN_MODE of a macvlan.
	macvlanMode uint32
}

// linkDetailByName asks the kernel for the link named name; a missing link gives an error
// wrapping ENODEV.
func (r *rtnl) linkDetailByName(name string) (linkDetail, error) {
	if !validIfname(name) {
		return linkDetail{}, fmt.Errorf("invalid interface name %q: %w", name, unix.ENODEV)
	}
	req := r.request(unix.RTM_GETLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
	msgs, err := execute(req, unix.RTM_NEWLINK)
	if err != nil {
		return linkDetail{}, fmt.Errorf("look up link %q: %w", name, err)
	}
	for _, m := range msgs {
		d, err := parseLinkDetail(m)
		if err != nil {
			return linkDetail{}, fmt.Errorf("look up link %q: %w", name, err)
		}
		if d.name == name {
			return d, nil
		}
	}
	return linkDetail{}, fmt.Errorf("look up link %q: no answer for it: %w", name, unix.ENODEV)
}

// parseLinkDetail decodes an RTM_NEWLINK payload into a linkDetail, checking every length.
func parseLinkDetail(b []byte) (linkDetail, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return linkDetail{}, fmt.Errorf("link message: %d bytes, want at least %d", len(b), unix.SizeofIfInfomsg)
	}
	d := linkDetail{
		index: int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		flags: binary.NativeEndian.Uint32(b[8:12]),
	}
	var inner error
	err := walkAttrs(b[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
		switch typ {
		case unix.IFLA_IFNAME:
			if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			if len(v) < unix.IFNAMSIZ {
				d.name = string(v)
			}
		case unix.IFLA_ADDRESS:
			d.mac = net.HardwareAddr(bytes.Clone(v))
		case unix.IFLA_LINK:
			if len(v) >= 4 {
				d.parent = int(int32(binary.NativeEndian.Uint32(v)))
			}
		case unix.IFLA_GROUP:
			if len(v) >= 4 {
				d.group = binary.NativeEndian.Uint32(v)
			}
		case unix.IFLA_LINKINFO:
			if err := walkAttrs(v, func(typ uint16, v []byte) {
				switch typ {
				case unix.IFLA_INFO_KIND:
					if i := bytes.IndexByte(v, 0); i >= 0 {
						v = v[:i]
					}
					d.kind = string(v)
				case unix.IFLA_INFO_DATA:
					if err := walkAttrs(v, func(typ uint16, v []byte) {
						if typ == unix.IFLA_MACVLAN_MODE && len(v) >= 4 {
							d.macvlanMode = binary.NativeEndian.Uint32(v)
						}
					}); err != nil {
						inner = err
					}
				}
			}); err != nil {
				inner = err
			}
		}
	})
	if err == nil {
		err = inner
	}
	if err != nil {
		return linkDetail{}, fmt.Errorf("link message: %w", err)
	}
	return d, nil
}

// newMacvlan creates the macvlan name on the link parent, in bridge mode, with the address mac
// and the interface group group, administratively down. An existing link of that name gives an
// error wrapping EEXIST.
func (r *rtnl) newMacvlan(name string, parent int, mac net.HardwareAddr, group uint32) error {
	req := r.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_LINK, nl.Uint32Attr(uint32(parent))))
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(mac)))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(unix.IFLA_INFO_KIND, nl.NonZeroTerminated("macvlan"))
	data := info.AddRtAttr(unix.IFLA_INFO_DATA, nil)
	data.AddRtAttr(unix.IFLA_MACVLAN_MODE, nl.Uint32Attr(macvlanModeBridge))
	req.AddData(info)
	if _, err := execute(req, 0); err != nil {
		return fmt.Errorf("create macvlan %s: %w", name, err)
	}
	return nil
}

// setLink changes the link index: its administrative state (up), and, when inet is set, its
// IPv4 settings (IPV4_DEVCONF_* id -> value) and, when genNone, its IPv6 address generation
// mode to none.
func (r *rtnl) setLink(index int, up *bool, inet map[int]uint32, genNone bool) error {
	req := r.request(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	if up != nil {
		msg.Change = unix.IFF_UP
		if *up {
			msg.Flags = unix.IFF_UP
		}
	}
	req.AddData(msg)
	if len(inet) > 0 || genNone {
		af := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
		if len(inet) > 0 {
			conf := af.AddRtAttr(unix.AF_INET, nil).AddRtAttr(unix.IFLA_INET_CONF, nil)
			for id, v := range inet {
				conf.AddRtAttr(id, nl.Uint32Attr(v))
			}
		}
		if genNone {
			af.AddRtAttr(unix.AF_INET6, nil).AddRtAttr(unix.IFLA_INET6_ADDR_GEN_MODE, []byte{addrGenModeNone})
		}
		req.AddData(af)
	}
	if _, err := execute(req, 0); err != nil {
		return fmt.Errorf("set link %d: %w", index, err)
	}
	return nil
}

// setAlias sets the link's alias (IFLA_IFALIAS, `ip link` shows it).
func (r *rtnl) setAlias(index int, alias string) error {
	req := r.request(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(alias)))
	if _, err := execute(req, 0); err != nil {
		return fmt.Errorf("set the alias of link %d: %w", index, err)
	}
	return nil
}

// delLink deletes the link index; a missing link gives an error wrapping ENODEV.
func (r *rtnl) delLink(index int) error {
	req := r.request(unix.RTM_DELLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	if _, err := execute(req, 0); err != nil {
		return fmt.Errorf("delete link %d: %w", index, err)
	}
	return nil
}
