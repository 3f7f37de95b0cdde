//go:build linux

package hostnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// frameSocket is a link's AF_PACKET socket for announcements, opened on first use in the
// Host's network namespace and kept until the Host is closed. Its protocol is 0, so the kernel
// delivers it no frame; each frame is sent to the link's current index (the socket is bound to
// none, so a link recreated under its name keeps it). A socket per Announce call (opened,
// bound, filtered and closed each time) cost four blocking system calls per call: a takeover
// of 1000 addresses at once ran them on hundreds of OS threads, each with its stack, for tens
// of MiB. The socket is non-blocking, so a send never holds a thread.
//
// Each link has its own: the frames a link's queue holds (a shaping qdisc, a stalled device)
// count against their socket's send buffer until they leave, and one socket for the whole Host
// let a link that sends nothing stop the announcements of every other link.
type frameSocket struct {
	mu     sync.Mutex
	closed bool
	f      *os.File
	rc     syscall.RawConn
}

// frameSendWaitMax is the longest a send waits before it tries again while the socket's send
// buffer is full.
const frameSendWaitMax = 20 * time.Millisecond

// conn returns the socket, opening it in h's namespace if it is not open yet.
func (s *frameSocket) conn(h *Host) (syscall.RawConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errHostClosed
	}
	if s.rc != nil {
		return s.rc, nil
	}
	var fd int
	err := h.do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "packet")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	s.f, s.rc = f, rc
	return rc, nil
}

// send sends frame, whose Ethernet header says dst and proto, out of the link with index. While
// the socket's send buffer is full it tries again every few milliseconds until ctx ends: the
// runtime's poller would wait for room without regard to ctx, and a queue that does not drain
// would hold the caller (the instance's loop) for ever.
func (s *frameSocket) send(ctx context.Context, h *Host, index int, dst net.HardwareAddr, proto uint16, frame []byte) error {
	rc, err := s.conn(h)
	if err != nil {
		return err
	}
	// sll_protocol is in network byte order.
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], proto)
	sa := &unix.SockaddrLinklayer{Protocol: binary.NativeEndian.Uint16(be[:]), Ifindex: index, Halen: uint8(len(dst))}
	copy(sa.Addr[:], dst)
	wait := 100 * time.Microsecond
	for {
		var serr error
		if werr := rc.Write(func(fd uintptr) bool {
			serr = unix.Sendto(int(fd), frame, 0, sa)
			return true
		}); werr != nil {
			return werr
		}
		if serr != unix.EAGAIN {
			return serr
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("send buffer full: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, frameSendWaitMax)
	}
}

// close closes the socket if it was opened; it opens no other.
func (s *frameSocket) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f != nil {
		_ = s.f.Close()
		s.f, s.rc = nil, nil
	}
}
