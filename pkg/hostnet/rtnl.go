//go:build linux

package hostnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Kernel constants missing from x/sys/unix.
const (
	ifaProto    = 11     // IFA_PROTO, include/uapi/linux/if_addr.h
	nlaTypeMask = 0x3fff // NLA_TYPE_MASK, include/uapi/linux/netlink.h
	// rtextFilterSkipStats (RTEXT_FILTER_SKIP_STATS, include/uapi/linux/rtnetlink.h) leaves
	// the statistics out of a link message; kernels before it ignore the bit.
	rtextFilterSkipStats = 1 << 3
)

// rtnl sends address requests over one NETLINK_ROUTE socket. vishvananda/netlink v1.3.1 neither
// sets nor reports IFA_PROTO, so address messages are built and parsed here; the library's
// request machinery (sequence numbers, acks, multipart dumps) is reused.
type rtnl struct {
	sockets map[int]*nl.SocketHandle
	// strict is set when the kernel checks the socket's requests strictly (Linux 4.20 and
	// later), which is also when it filters an address dump by link: then a dump of one link
	// sends that link's addresses alone, not every address of the namespace.
	strict bool
}

// newRTNL opens the socket in the calling thread's network namespace.
func newRTNL() (*rtnl, error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	// Extended acks make the kernel say why a request failed; not fatal if unsupported.
	_ = s.SetExtAck(true)
	strict := unix.SetsockoptInt(s.GetFd(), unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1) == nil
	return &rtnl{sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}, strict: strict}, nil
}

func (r *rtnl) close() {
	for _, sh := range r.sockets {
		sh.Close()
	}
}

// execute sends req and returns the answers of type resType (0: an acknowledged request), on a
// goroutine of its own (offStack).
func execute(req *nl.NetlinkRequest, resType uint16) ([][]byte, error) {
	return offStack(func() ([][]byte, error) { return req.Execute(unix.NETLINK_ROUTE, resType) })
}

// offStack runs fn on a goroutine of its own and returns its result. vishvananda/netlink reads
// every answer into a 64 KiB array on the stack (nl.NetlinkSocket.Receive), so a goroutine that
// makes a request keeps a stack of 128 KiB until the garbage collector has shrunk it, by half
// per cycle. The goroutines that make them are the agent's, several per instance (its router,
// its watches' resynchronisations): with a thousand instances, hundreds of MiB of stacks. The
// goroutine of one request takes the large stack and frees it when it returns.
func offStack[T any](fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	c := make(chan result, 1)
	go func() {
		v, err := fn()
		c <- result{v, err}
	}()
	r := <-c
	return r.v, r.err
}

func (r *rtnl) request(typ, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags)
	req.Sockets = r.sockets
	return req
}

// kernelAddr is one address as the kernel reports it.
type kernelAddr struct {
	Index  int
	Prefix netip.Prefix // the address with its prefix length, host bits kept
	Flags  uint32       // IFA_F_*
	Scope  uint8
	Proto  uint8 // IFA_PROTO; 0 when absent
}

// ours reports whether a carries this package's mark.
func (a kernelAddr) ours() bool { return a.Proto == AddrProto }

// addrDumps counts the address dumps of the process (addrs), for tests.
var addrDumps atomic.Uint64

// addrs dumps the addresses of every link; index > 0 keeps only that link's (none when there is
// no such link).
func (r *rtnl) addrs(index int) ([]kernelAddr, error) {
	addrDumps.Add(1)
	dump := func() ([][]byte, error) {
		req := r.request(unix.RTM_GETADDR, unix.NLM_F_DUMP)
		msg := nl.NewIfAddrmsg(unix.AF_UNSPEC)
		if r.strict && index > 0 {
			msg.Index = uint32(index)
		}
		req.AddData(msg)
		return execute(req, unix.RTM_NEWADDR)
	}
	msgs, err := dump()
	if err != nil && errors.Is(err, nl.ErrDumpInterrupted) {
		// A dump interrupted by a concurrent change is inconsistent; one retry is enough in
		// practice and a second failure is reported.
		msgs, err = dump()
	}
	if errors.Is(err, unix.ENODEV) && r.strict && index > 0 {
		// A link that is not there has no addresses, as a dump of every link would say.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dump addresses: %w", err)
	}
	out := make([]kernelAddr, 0, len(msgs))
	for _, m := range msgs {
		a, err := parseAddrMsg(m)
		if err != nil {
			return nil, fmt.Errorf("dump addresses: %w", err)
		}
		if index > 0 && a.Index != index {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// linkByName asks the kernel for the link named name, without its statistics: what the Host
// needs of it (linkInfo). vishvananda/netlink's LinkByName asks for, and decodes, everything
// the kernel reports, statistics included: several times the work, for a lookup done by every
// Bind and Announce. A missing link gives an error wrapping ENODEV.
func (r *rtnl) linkByName(name string) (linkInfo, error) {
	if !validIfname(name) {
		return linkInfo{}, fmt.Errorf("invalid interface name %q: %w", name, unix.ENODEV)
	}
	// No acknowledgement: the answer ends the request (an error is sent in any case).
	req := r.request(unix.RTM_GETLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
	msgs, err := execute(req, unix.RTM_NEWLINK)
	if err != nil {
		return linkInfo{}, err
	}
	for _, m := range msgs {
		li, err := parseLinkInfo(m)
		if err != nil {
			return linkInfo{}, err
		}
		if li.name == name {
			return li, nil
		}
	}
	return linkInfo{}, fmt.Errorf("no answer for it: %w", unix.ENODEV)
}

// parseLinkInfo decodes what linkInfo holds of an RTM_NEWLINK payload, checking every length.
func parseLinkInfo(b []byte) (linkInfo, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return linkInfo{}, fmt.Errorf("link message: %d bytes, want at least %d", len(b), unix.SizeofIfInfomsg)
	}
	li := linkInfo{index: int(int32(binary.NativeEndian.Uint32(b[4:8])))}
	raw := binary.NativeEndian.Uint32(b[8:12])
	for _, f := range []struct {
		iff  uint32
		flag net.Flags
	}{
		{unix.IFF_UP, net.FlagUp}, {unix.IFF_BROADCAST, net.FlagBroadcast}, {unix.IFF_LOOPBACK, net.FlagLoopback},
		{unix.IFF_POINTOPOINT, net.FlagPointToPoint}, {unix.IFF_MULTICAST, net.FlagMulticast}, {unix.IFF_RUNNING, net.FlagRunning},
	} {
		if raw&f.iff != 0 {
			li.flags |= f.flag
		}
	}
	err := walkAttrs(b[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
		switch typ {
		case unix.IFLA_IFNAME:
			if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			li.name = string(v)
		case unix.IFLA_ADDRESS:
			if len(v) > 0 {
				li.mac = net.HardwareAddr(bytes.Clone(v))
			}
		}
	})
	if err != nil {
		return linkInfo{}, fmt.Errorf("link message: %w", err)
	}
	return li, nil
}

// addr6 asks the kernel whether the IPv6 address a is on the link index, and returns it as the
// kernel has it (its prefix length, flags, IFA_PROTO). The kernel answers from its table of
// addresses, which an added address is in when its request returns; IPv4 has no such question
// (only dumps).
func (r *rtnl) addr6(index int, a netip.Addr) (kernelAddr, bool, error) {
	if !a.Is6() || a.Is4In6() {
		return kernelAddr{}, false, fmt.Errorf("not an IPv6 address: %s", a)
	}
	req := r.request(unix.RTM_GETADDR, 0)
	msg := nl.NewIfAddrmsg(unix.AF_INET6)
	msg.Index = uint32(index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, a.AsSlice()))
	msgs, err := execute(req, unix.RTM_NEWADDR)
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return kernelAddr{}, false, nil
	}
	if err != nil {
		return kernelAddr{}, false, fmt.Errorf("get address %s: %w", a, err)
	}
	for _, m := range msgs {
		ka, err := parseAddrMsg(m)
		if err != nil {
			return kernelAddr{}, false, fmt.Errorf("get address %s: %w", a, err)
		}
		if ka.Index == index && ka.Prefix.Addr() == a.WithZone("") {
			return ka, true, nil
		}
	}
	return kernelAddr{}, false, nil
}

// add adds p to the link, with this package's mark when mark is set; IPv6 addresses skip
// duplicate address detection so they are usable at once. A metric other than 0 is that of
// the address's prefix route (IFA_RT_PRIORITY). An existing address gives an error wrapping
// EEXIST.
func (r *rtnl) add(index int, p netip.Prefix, mark bool, metric uint32) error {
	req := r.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	var flags uint32
	if p.Addr().Is6() {
		flags = unix.IFA_F_NODAD
	}
	addrRequest(req, index, p, flags)
	if mark {
		req.AddData(nl.NewRtAttr(ifaProto, []byte{AddrProto}))
	}
	if metric != 0 {
		req.AddData(nl.NewRtAttr(unix.IFA_RT_PRIORITY, nl.Uint32Attr(metric)))
	}
	if _, err := execute(req, 0); err != nil {
		return fmt.Errorf("add address %s: %w", p, err)
	}
	return nil
}

// del removes p from the link. A missing address gives an error wrapping EADDRNOTAVAIL.
func (r *rtnl) del(index int, p netip.Prefix) error {
	req := r.request(unix.RTM_DELADDR, unix.NLM_F_ACK)
	addrRequest(req, index, p, 0)
	if _, err := execute(req, 0); err != nil {
		return fmt.Errorf("delete address %s: %w", p, err)
	}
	return nil
}

func addrRequest(req *nl.NetlinkRequest, index int, p netip.Prefix, flags uint32) {
	family := unix.AF_INET6
	if p.Addr().Is4() {
		family = unix.AF_INET
	}
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(index)
	msg.Prefixlen = uint8(p.Bits())
	msg.Flags = uint8(flags)
	req.AddData(msg)
	ip := p.Addr().AsSlice()
	// IFA_LOCAL is the address, IFA_ADDRESS the peer; equal means no peer.
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	if flags > 0xff {
		req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(flags)))
	}
}

// parseAddrMsg decodes an RTM_NEWADDR / RTM_DELADDR payload (struct ifaddrmsg and its
// attributes), checking every length.
func parseAddrMsg(b []byte) (kernelAddr, error) {
	if len(b) < unix.SizeofIfAddrmsg {
		return kernelAddr{}, fmt.Errorf("address message: %d bytes, want at least %d", len(b), unix.SizeofIfAddrmsg)
	}
	family, bits := b[0], int(b[1])
	a := kernelAddr{
		Flags: uint32(b[2]),
		Scope: b[3],
		Index: int(binary.NativeEndian.Uint32(b[4:8])),
	}
	var local, address []byte
	err := walkAttrs(b[unix.SizeofIfAddrmsg:], func(typ uint16, v []byte) {
		switch typ {
		case unix.IFA_LOCAL:
			local = v
		case unix.IFA_ADDRESS:
			address = v
		case unix.IFA_FLAGS:
			if len(v) >= 4 {
				a.Flags = binary.NativeEndian.Uint32(v)
			}
		case ifaProto:
			if len(v) >= 1 {
				a.Proto = v[0]
			}
		}
	})
	if err != nil {
		return kernelAddr{}, fmt.Errorf("address message: %w", err)
	}
	// IPv4 always sends IFA_LOCAL (IFA_ADDRESS is the peer); IPv6 sends IFA_LOCAL only with a
	// peer.
	raw := local
	if raw == nil {
		raw = address
	}
	want := 4
	if family == unix.AF_INET6 {
		want = 16
	} else if family != unix.AF_INET {
		return kernelAddr{}, fmt.Errorf("address message: family %d", family)
	}
	if len(raw) != want {
		return kernelAddr{}, fmt.Errorf("address message: family %d with a %d-byte address", family, len(raw))
	}
	ip, _ := netip.AddrFromSlice(raw)
	if bits > ip.BitLen() {
		return kernelAddr{}, fmt.Errorf("address message: prefix length %d for %s", bits, ip)
	}
	a.Prefix = netip.PrefixFrom(ip, bits)
	return a, nil
}

// walkAttrs calls fn for each route attribute in b (struct rtattr, NLA_ALIGNTO padded), with
// its type and value, checking every length.
func walkAttrs(b []byte, fn func(typ uint16, v []byte)) error {
	for len(b) > 0 {
		if len(b) < unix.SizeofRtAttr {
			return fmt.Errorf("%d trailing bytes", len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < unix.SizeofRtAttr || l > len(b) {
			return fmt.Errorf("attribute %d length %d, %d bytes left", typ, l, len(b))
		}
		fn(typ, b[unix.SizeofRtAttr:l])
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
	}
	return nil
}
