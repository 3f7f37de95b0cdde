package bench_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// advertTap sees the VRRP adverts a node sends: a packet socket in the node's namespace on
// its lab link that the kernel hands only outgoing IPv4 protocol 112 and IPv6 next header 112
// packets, each with the kernel's timestamp of the moment it left (the tap sees a packet as
// the link transmits it, before the switch does).
type advertTap struct {
	f *os.File
}

// tapAdverts opens an advertTap on n's lab link.
func tapAdverts(n *lab.Node) (*advertTap, error) {
	var fd int
	err := n.InNetns(func() error {
		ifi, err := net.InterfaceByName(n.Interface)
		if err != nil {
			return err
		}
		proto := int(bigEndian16(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		// The filter goes on before the bind: nothing else is ever queued.
		if err := attachAdvertFilter(fd); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket to %s: %w", n.Interface, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Non-blocking, so the runtime's poller serves it: reads take deadlines and Close ends them.
	return &advertTap{f: os.NewFile(uintptr(fd), "advert-tap")}, nil
}

func bigEndian16(v uint16) uint16 { return v<<8 | v>>8 }

// attachAdvertFilter keeps outgoing packets of IPv4 protocol 112 or IPv6 next header 112 (no
// extension headers: VRRP adverts carry none). A SOCK_DGRAM packet socket's filter sees the
// packet from its network header on, the outgoing ones included.
func attachAdvertFilter(fd int) error {
	const (
		accept = 0xffff
		vrrp   = 112
	)
	prog, err := bpf.Assemble([]bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipFalse: 8}, // -> 10
		/* 2 */ bpf.LoadExtension{Num: bpf.ExtProto},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IP, SkipFalse: 2}, // -> 6
		/* 4 */ bpf.LoadAbsolute{Off: 9, Size: 1}, // IPv4 protocol
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: vrrp, SkipTrue: 3, SkipFalse: 4}, // -> 9, 10
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IPV6, SkipFalse: 3}, // -> 10
		/* 7 */ bpf.LoadAbsolute{Off: 6, Size: 1}, // IPv6 next header
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: vrrp, SkipFalse: 1}, // -> 10
		/* 9 */ bpf.RetConstant{Val: accept},
		/* 10 */ bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER: %w", err)
	}
	return nil
}

// errNoAdvert is next's error when no advert left before the deadline.
var errNoAdvert = errors.New("no advert sent")

// next returns the send time of the first advert that leaves at or after from, waiting until
// deadline at most. Adverts queued from before from are skipped.
func (t *advertTap) next(from, deadline time.Time) (time.Time, error) {
	for {
		at, err := t.read(deadline)
		if err != nil {
			return time.Time{}, err
		}
		if !at.Before(from) {
			return at, nil
		}
	}
}

// latest returns the send time of the last advert queued now that left before before, or
// the zero time if none did.
func (t *advertTap) latest(before time.Time) (time.Time, error) {
	var last time.Time
	for {
		at, err := t.read(time.Time{})
		if errors.Is(err, errNoAdvert) {
			return last, nil
		}
		if err != nil {
			return last, err
		}
		if at.Before(before) {
			last = at
		}
	}
}

// read returns the timestamp of the next queued advert, waiting until deadline; with a zero
// deadline it does not wait (errNoAdvert: none queued).
func (t *advertTap) read(deadline time.Time) (time.Time, error) {
	rc, err := t.f.SyscallConn()
	if err != nil {
		return time.Time{}, err
	}
	var (
		buf  [64]byte
		oob  [128]byte
		oobn int
		rerr error
	)
	recv := func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf[:], oob[:], unix.MSG_TRUNC)
		return !errors.Is(rerr, unix.EAGAIN)
	}
	if deadline.IsZero() {
		// The poller would not even try a read past a deadline: one attempt by hand.
		err = rc.Control(func(fd uintptr) { recv(fd) })
		if errors.Is(rerr, unix.EAGAIN) {
			return time.Time{}, errNoAdvert
		}
	} else {
		if err := t.f.SetReadDeadline(deadline); err != nil {
			return time.Time{}, err
		}
		err = rc.Read(recv)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return time.Time{}, errNoAdvert
		}
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		return time.Time{}, err
	}
	return packetTime(oob[:oobn])
}

// packetTime is the SCM_TIMESTAMPNS time of a packet.
func packetTime(oob []byte) (time.Time, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, err
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			// struct timespec: two 64-bit words on the 64-bit platforms the lab runs on.
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), nil
		}
	}
	return time.Time{}, errors.New("advert without a timestamp")
}

func (t *advertTap) Close() error { return t.f.Close() }

// cutAfterAdvert cuts n's link delay after the next advert n sends and returns the time from
// the last advert n sent before the cut to the cut: delay, unless the test process was late
// (then more, or less if it was so late that a later advert left first).
func cutAfterAdvert(n *lab.Node, tap *advertTap, interval, delay time.Duration) (time.Duration, error) {
	sent, err := tap.next(time.Now(), time.Now().Add(3*interval+time.Second))
	if err != nil {
		return 0, fmt.Errorf("waiting for %s's advert: %w", n.Name, err)
	}
	time.Sleep(time.Until(sent.Add(delay)))
	// The port leaves the bridge within the call, which takes well under a millisecond.
	cut := time.Now()
	if err := n.CutLink(); err != nil {
		return 0, err
	}
	// The kernel timestamps the adverts on the same clock (CLOCK_REALTIME) as time.Now.
	last, err := tap.latest(cut)
	if err != nil {
		return 0, err
	}
	if last.IsZero() || last.Before(sent) {
		last = sent
	}
	return cut.Sub(last), nil
}
