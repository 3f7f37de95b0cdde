package bench_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// advertCapture receives every IPv4 VRRP advert that reaches a lab namespace (all its links)
// on a packet socket, with the kernel's receive timestamp, and measures each group's gaps.
type advertCapture struct {
	fd       int
	interval time.Duration
	done     chan struct{}

	mu sync.Mutex
	// last is the receive time of each group's latest advert (ns since the epoch); heard
	// counts its adverts. A group is a link and a VRID (groupKey).
	last  map[uint32]int64
	heard map[uint32]int
	// Set by record: only gaps whose two adverts both came from from on are measured.
	recording bool
	from      int64
	late      []time.Duration
	adverts   int
	groups    map[uint32]bool
	// badPriority counts adverts in the window whose priority is not 100, the one every
	// group of BenchmarkScale has (0 would be a MASTER resigning).
	badPriority int
	err         error
}

type captureResult struct {
	late        scaleLateness
	adverts     int
	groups      int
	badPriority int
	drops       uint32
	err         error
}

func groupKey(ifindex int, vrid byte) uint32 { return uint32(ifindex)<<8 | uint32(vrid) }

// startAdvertCapture opens the capture in n's network namespace and starts reading.
func startAdvertCapture(n *lab.Node, interval time.Duration) (*advertCapture, error) {
	c := &advertCapture{fd: -1, interval: interval, done: make(chan struct{}),
		last: map[uint32]int64{}, heard: map[uint32]int{}, groups: map[uint32]bool{}}
	err := n.InNetns(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(nativeToNet16(unix.ETH_P_IP)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.setup(); err != nil {
		unix.Close(c.fd)
		return nil, err
	}
	go c.read(c.fd)
	return c, nil
}

func nativeToNet16(v uint16) uint16 { return v<<8 | v>>8 }

func (c *advertCapture) setup() error {
	// IP protocol 112 only (a SOCK_DGRAM packet socket starts at the IP header).
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 9, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 112, SkipFalse: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	if err := unix.SetsockoptSockFprog(c.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return fmt.Errorf("capture filter: %w", err)
	}
	// 10000 adverts a second must not overrun it while the reader is descheduled.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
		return fmt.Errorf("capture buffer: %w", err)
	}
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("capture timestamps: %w", err)
	}
	// A blocked recvmsg is not woken by close: the reader polls for the end.
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("capture timeout: %w", err)
	}
	// Drops counted from here on.
	_, err = unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	return err
}

func (c *advertCapture) read(fd int) {
	defer close(c.done)
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for !c.closing() {
		n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			c.fail(err)
			return
		}
		sll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || sll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		ts, ok := rxTimestamp(oob[:oobn])
		if !ok {
			c.fail(errors.New("no receive timestamp"))
			return
		}
		pkt := buf[:n]
		if len(pkt) < 20 || pkt[9] != 112 {
			continue
		}
		ihl := int(pkt[0]&0x0f) * 4
		if len(pkt) < ihl+8 {
			continue
		}
		vrrp := pkt[ihl:]
		c.advert(groupKey(sll.Ifindex, vrrp[1]), vrrp[2], ts)
	}
}

// rxTimestamp returns the SCM_TIMESTAMPNS time of a received packet, in ns since the epoch.
func rxTimestamp(oob []byte) (int64, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			// struct timespec on a 64-bit kernel: two 64-bit words.
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return sec*int64(time.Second) + nsec, true
		}
	}
	return 0, false
}

func (c *advertCapture) advert(k uint32, prio byte, ts int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, seen := c.last[k]
	c.last[k] = ts
	c.heard[k]++
	if !c.recording || ts < c.from {
		return
	}
	c.adverts++
	c.groups[k] = true
	if prio != 100 {
		c.badPriority++
	}
	if seen && last >= c.from {
		c.late = append(c.late, time.Duration(ts-last)-c.interval)
	}
}

// closing reports whether close has asked the reader to stop.
func (c *advertCapture) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fd < 0
}

func (c *advertCapture) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.fd >= 0 {
		c.err = err
	}
}

// groupsHeard returns how many groups have sent at least min adverts.
func (c *advertCapture) groupsHeard(min int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, h := range c.heard {
		if h >= min {
			n++
		}
	}
	return n
}

// record starts the window at from.
func (c *advertCapture) record(from time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recording, c.from = true, from.UnixNano()
}

// stopRecording ends the window.
func (c *advertCapture) stopRecording() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recording = false
}

// results returns the window's figures and the drops of the socket since setup.
func (c *advertCapture) results() captureResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := captureResult{late: summarizeLateness(c.late), adverts: c.adverts, groups: len(c.groups),
		badPriority: c.badPriority, err: c.err}
	if c.fd >= 0 {
		if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			r.drops = st.Drops
		}
	}
	return r
}

// close stops the reader and closes the socket.
func (c *advertCapture) close() {
	c.mu.Lock()
	fd := c.fd
	c.fd = -1
	c.mu.Unlock()
	if fd < 0 {
		return
	}
	<-c.done
	unix.Close(fd)
}
