package hostnet

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sys/unix"
)

// lockName is the abstract unix socket whose binding is the host lock. Abstract sockets live
// in the network namespace, so the lock is per node even in a namespace lab, and the kernel
// drops the binding when the process dies, so a SIGKILLed agent leaves no stale lock.
const lockName = "@kube-vrrp.lock"

// ErrLocked is returned by Lock when another process in the same network namespace holds the
// lock: two speakers on one node would fight over the same addresses.
var ErrLocked = errors.New("another kube-vrrp agent holds the host lock")

// Lock takes the host lock of the calling thread's network namespace; Close releases it.
// It fails with an error wrapping ErrLocked while another process (or an earlier Lock of this
// one) holds it.
func Lock() (io.Closer, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("take host lock: socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: lockName}); err != nil {
		_ = unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("take host lock %s: %w", lockName, ErrLocked)
		}
		return nil, fmt.Errorf("take host lock %s: %w", lockName, err)
	}
	return &hostLock{fd: fd}, nil
}

type hostLock struct {
	once sync.Once
	fd   int
}

func (l *hostLock) Close() error {
	err := error(nil)
	l.once.Do(func() {
		if e := unix.Close(l.fd); e != nil {
			err = fmt.Errorf("release host lock: %w", e)
		}
	})
	return err
}
