//go:build linux

package hostnet

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// frameSocket is the Host's one AF_PACKET socket for announcements, opened on first use in the
// Host's network namespace and kept until Close. Its protocol is 0, so the kernel delivers it
// no frame; each frame is sent to a link by index. A socket per Announce call (opened, bound,
// filtered and closed each time) cost four blocking system calls per call: a takeover of 1000
// addresses at once ran them on hundreds of OS threads, each with its stack, for tens of MiB.
// The socket is non-blocking and sends through the runtime's poller, so a full transmit queue
// parks the goroutine, not a thread.
type frameSocket struct {
	mu sync.Mutex
	f  *os.File
	rc syscall.RawConn
}

// conn returns the socket, opening it in h's namespace if it is not open yet.
func (s *frameSocket) conn(h *Host) (syscall.RawConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
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

// send sends frame, whose Ethernet header says dst and proto, out of the link with index.
func (s *frameSocket) send(h *Host, index int, dst net.HardwareAddr, proto uint16, frame []byte) error {
	rc, err := s.conn(h)
	if err != nil {
		return err
	}
	sa := &unix.SockaddrLinklayer{Protocol: proto<<8 | proto>>8, Ifindex: index, Halen: uint8(len(dst))}
	copy(sa.Addr[:], dst)
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), frame, 0, sa)
		return serr != unix.EAGAIN
	})
	if werr != nil {
		return werr
	}
	return serr
}

// close closes the socket if it was opened.
func (s *frameSocket) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_ = s.f.Close()
		s.f, s.rc = nil, nil
	}
}
