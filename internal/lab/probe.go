package lab

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Probe wire format (UDP): magic, prober id (8 bytes), sequence (8 bytes). The responder
// echoes it and appends its node name.
var probeMagic = []byte("KVLP")

const probeHeader = 4 + 8 + 8

// startResponder answers UDP probes on l.port in node n: it echoes the request with the
// node's name appended, sent from the address the request was sent to (so a reply to a VIP
// comes from the VIP). The sockets live in n's namespace; the goroutines run on any thread.
func (l *Lab) startResponder(n *Node) error {
	var c4, c6 *net.UDPConn
	err := inNetns(n.NetNS, func() error {
		var err error
		if c4, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: l.port}); err != nil {
			return err
		}
		if c6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: l.port}); err != nil {
			c4.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: responder on port %d: %w", n.Name, l.port, err)
	}
	p4 := ipv4.NewPacketConn(c4)
	p6 := ipv6.NewPacketConn(c6)
	if err := p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		c4.Close()
		c6.Close()
		return fmt.Errorf("%s: responder: %w", n.Name, err)
	}
	if err := p6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		c4.Close()
		c6.Close()
		return fmt.Errorf("%s: responder: %w", n.Name, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			k, cm, src, err := p4.ReadFrom(buf)
			if err != nil {
				return
			}
			if k != probeHeader || !bytes.HasPrefix(buf, probeMagic) || cm == nil {
				continue
			}
			reply := append(buf[:k:k], n.Name...)
			_, _ = p4.WriteTo(reply, &ipv4.ControlMessage{Src: cm.Dst}, src)
		}
	})
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			k, cm, src, err := p6.ReadFrom(buf)
			if err != nil {
				return
			}
			if k != probeHeader || !bytes.HasPrefix(buf, probeMagic) || cm == nil {
				continue
			}
			reply := append(buf[:k:k], n.Name...)
			_, _ = p6.WriteTo(reply, &ipv6.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex}, src)
		}
	})
	l.addCloser(func() {
		c4.Close()
		c6.Close()
		wg.Wait()
	})
	return nil
}

// ProbeMode selects what a Probe sends.
type ProbeMode int

const (
	// ProbeUDP sends UDP datagrams to the nodes' responders, which name themselves in the
	// reply: the result tells which node answered. Needs the lab's responders (default).
	ProbeUDP ProbeMode = iota
	// ProbeICMP sends ICMP echo requests, answered by the kernel of whichever node holds the
	// address; no responder needed, but the result cannot name the node.
	ProbeICMP
)

func (m ProbeMode) String() string {
	if m == ProbeICMP {
		return "icmp"
	}
	return "udp"
}

// ProbeOptions configure a Probe.
type ProbeOptions struct {
	// Mode is ProbeUDP (default) or ProbeICMP.
	Mode ProbeMode
	// Interval between probes; default 10 ms.
	Interval time.Duration
	// Port is the UDP destination port; default the lab's responder port.
	Port int
}

// Probe sends a probe to a target address from the client namespace every Interval and
// records which ones were answered, when and by whom.
type Probe struct {
	target   netip.Addr
	opts     ProbeOptions
	id       uint64
	udp      *net.UDPConn
	icmp     *icmp.PacketConn
	stopOnce sync.Once
	stopc    chan struct{}
	wg       sync.WaitGroup
	lab      *Lab

	mu       sync.Mutex
	stopped  bool
	start    time.Time
	stopAt   time.Time
	sent     []time.Time
	replies  map[int]Reply
	dups     int
	wrongSrc int
}

// Reply is one answered probe.
type Reply struct {
	// Seq numbers the probe (0 is the first sent).
	Seq int
	// Sent and Received are the send time of the probe and the arrival of its reply.
	Sent, Received time.Time
	// Node names the node that answered (UDP mode), "" in ICMP mode.
	Node string
}

// replyGrace is how long a probe may wait for its reply before it counts as lost.
const replyGrace = 100 * time.Millisecond

// StartProbe starts probing target (IPv4 or IPv6) from the client namespace. Stop it to get
// the result; the lab stops it on Close at the latest.
func (l *Lab) StartProbe(target netip.Addr, o ProbeOptions) (*Probe, error) {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Port == 0 {
		o.Port = l.port
	}
	if o.Mode == ProbeUDP && o.Port <= 0 {
		return nil, errors.New("probe: UDP mode needs the lab's responders (Options.ResponderPort >= 0)")
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	p := &Probe{
		target:  target.Unmap(),
		opts:    o,
		id:      binary.BigEndian.Uint64(idb[:]),
		stopc:   make(chan struct{}),
		replies: map[int]Reply{},
		lab:     l,
	}
	err := inNetns(l.client.NetNS, func() error {
		var err error
		switch {
		case o.Mode == ProbeICMP && p.target.Is4():
			p.icmp, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		case o.Mode == ProbeICMP:
			p.icmp, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		case p.target.Is4():
			p.udp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		default:
			p.udp, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("probe %s: socket in client namespace: %w", target, err)
	}
	p.start = time.Now()
	p.wg.Go(p.sendLoop)
	p.wg.Go(p.recvLoop)
	l.addCloser(func() { p.Stop() })
	return p, nil
}

func (p *Probe) sendLoop() {
	tick := time.NewTicker(p.opts.Interval)
	defer tick.Stop()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.target, uint16(p.opts.Port)))
	ipdst := &net.IPAddr{IP: p.target.AsSlice(), Zone: p.target.Zone()}
	for seq := 0; ; seq++ {
		now := time.Now()
		p.mu.Lock()
		p.sent = append(p.sent, now)
		p.mu.Unlock()
		// Never wait for socket buffer space: while the client's neighbour entry for the
		// target is unresolved, the kernel queues probes and charges them to the socket, and
		// a blocked sender would send its next probe late and stretch the measured gap. A
		// probe that cannot be sent at once is lost, like one dropped on the wire.
		deadline := now.Add(p.opts.Interval / 2)
		if p.udp != nil {
			_ = p.udp.SetWriteDeadline(deadline)
		} else {
			_ = p.icmp.SetWriteDeadline(deadline)
		}
		if p.udp != nil {
			b := make([]byte, probeHeader)
			copy(b, probeMagic)
			binary.BigEndian.PutUint64(b[4:], p.id)
			binary.BigEndian.PutUint64(b[12:], uint64(seq))
			_, _ = p.udp.WriteToUDP(b, dst)
		} else {
			var typ icmp.Type = ipv4.ICMPTypeEcho
			if p.target.Is6() {
				typ = ipv6.ICMPTypeEchoRequest
			}
			m := icmp.Message{Type: typ, Body: &icmp.Echo{
				ID: int(uint16(p.id)), Seq: seq & 0xffff, Data: []byte("kube-vrrp lab probe"),
			}}
			// The kernel fills in the ICMPv6 checksum on raw ICMPv6 sockets.
			if b, err := m.Marshal(nil); err == nil {
				_, _ = p.icmp.WriteTo(b, ipdst)
			}
		}
		select {
		case <-p.stopc:
			return
		case <-tick.C:
		}
	}
}

func (p *Probe) recvLoop() {
	buf := make([]byte, 1500)
	for {
		var (
			k    int
			from net.Addr
			err  error
		)
		if p.udp != nil {
			k, from, err = p.udp.ReadFrom(buf)
		} else {
			k, from, err = p.icmp.ReadFrom(buf)
		}
		now := time.Now()
		if err != nil {
			return
		}
		seq, node, ok := p.parse(buf[:k])
		if !ok {
			continue
		}
		src := addrOf(from)
		p.mu.Lock()
		switch {
		case src != p.target:
			p.wrongSrc++
		case seq < 0 || seq >= len(p.sent):
		default:
			if _, dup := p.replies[seq]; dup {
				p.dups++
			} else {
				p.replies[seq] = Reply{Seq: seq, Sent: p.sent[seq], Received: now, Node: node}
			}
		}
		p.mu.Unlock()
	}
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.IPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// parse returns the sequence number and responder of a reply to this probe.
func (p *Probe) parse(b []byte) (int, string, bool) {
	if p.udp != nil {
		if len(b) < probeHeader || !bytes.HasPrefix(b, probeMagic) || binary.BigEndian.Uint64(b[4:]) != p.id {
			return 0, "", false
		}
		return int(binary.BigEndian.Uint64(b[12:])), string(b[probeHeader:]), true
	}
	proto := 1
	if p.target.Is6() {
		proto = 58
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil || (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) {
		return 0, "", false
	}
	e, ok := m.Body.(*icmp.Echo)
	if !ok || e.ID != int(uint16(p.id)) {
		return 0, "", false
	}
	// Widen the 16-bit sequence to the most recent probe with the same low bits.
	p.mu.Lock()
	n := len(p.sent)
	p.mu.Unlock()
	seq := n - 1 - ((n - 1 - e.Seq) & 0xffff)
	return seq, "", true
}

// Stop stops probing, waits briefly for replies still in flight and returns the result.
func (p *Probe) Stop() ProbeResult {
	p.stopOnce.Do(func() {
		close(p.stopc)
		time.Sleep(replyGrace)
		if p.udp != nil {
			p.udp.Close()
		} else {
			p.icmp.Close()
		}
		p.wg.Wait()
		p.mu.Lock()
		p.stopped = true
		p.stopAt = time.Now()
		p.mu.Unlock()
	})
	return p.Result()
}

// Result returns what has been observed so far. While the probe runs, probes sent in the
// last 100 ms are left out (their replies may still be on the way).
func (p *Probe) Result() ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.sent)
	if !p.stopped {
		cut := time.Now().Add(-replyGrace)
		n = sort.Search(len(p.sent), func(i int) bool { return p.sent[i].After(cut) })
	}
	r := ProbeResult{
		Target:      p.target,
		Mode:        p.opts.Mode,
		Interval:    p.opts.Interval,
		Start:       p.start,
		Sent:        n,
		Duplicates:  p.dups,
		WrongSource: p.wrongSrc,
	}
	if n > 0 {
		r.End = p.sent[n-1]
	}
	for seq := range n {
		if seq > 0 {
			r.maxSendGap = maxDur(r.maxSendGap, p.sent[seq].Sub(p.sent[seq-1]))
		}
		if rep, ok := p.replies[seq]; ok {
			r.Replies = append(r.Replies, rep)
		}
	}
	r.Received = len(r.Replies)
	return r
}

// WaitReply waits up to timeout for a reply to a probe sent after the call, from node (any
// node if node is ""), and returns it.
func (p *Probe) WaitReply(node string, timeout time.Duration) (Reply, error) {
	since := time.Now()
	deadline := since.Add(timeout)
	for {
		p.mu.Lock()
		var best *Reply
		for _, rep := range p.replies {
			if rep.Sent.After(since) && (node == "" || rep.Node == node) && (best == nil || rep.Seq < best.Seq) {
				r := rep
				best = &r
			}
		}
		p.mu.Unlock()
		if best != nil {
			return *best, nil
		}
		if time.Now().After(deadline) {
			who := "any node"
			if node != "" {
				who = node
			}
			return Reply{}, fmt.Errorf("no reply from %s to probes of %s within %v (last: %s)", who, p.target, timeout, p.Result().Last())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WhoAnswers probes target from the client until a node answers (UDP responders), and
// returns the answering node's name: the client's view of who holds a VIP.
func (l *Lab) WhoAnswers(target netip.Addr, timeout time.Duration) (string, error) {
	p, err := l.StartProbe(target, ProbeOptions{Interval: 20 * time.Millisecond})
	if err != nil {
		return "", err
	}
	defer p.Stop()
	rep, err := p.WaitReply("", timeout)
	if err != nil {
		return "", err
	}
	return rep.Node, nil
}

// ProbeResult is what a Probe saw.
type ProbeResult struct {
	Target   netip.Addr
	Mode     ProbeMode
	Interval time.Duration
	// Start is when probing began; End is the send time of the last probe counted.
	Start, End time.Time
	// Sent counts probes; Received those answered (each probe counted once).
	Sent, Received int
	// Duplicates counts extra replies to an already answered probe (two nodes answering
	// one probe: both hold the VIP and the switch delivered to both).
	Duplicates int
	// WrongSource counts replies that did not come from the target address.
	WrongSource int
	// Replies lists the answered probes in order.
	Replies []Reply

	maxSendGap time.Duration
}

// Lost returns Sent - Received.
func (r ProbeResult) Lost() int { return r.Sent - r.Received }

// Gap is a stretch of unanswered probes between two answered ones (or the window's edges).
type Gap struct {
	// From is the send time of the last answered probe before the gap (or Start); To is the
	// send time of the first answered probe after it (or End, if the gap is still open).
	From, To time.Time
	// Lost counts the unanswered probes in between.
	Lost int
	// Open is true when nothing has been answered since From.
	Open bool
}

// Duration is To - From: the client could not reach the target for between
// Duration - Interval and Duration.
func (g Gap) Duration() time.Duration { return g.To.Sub(g.From) }

// Gaps returns every gap with at least one lost probe, in order.
func (r ProbeResult) Gaps() []Gap {
	var gaps []Gap
	if r.Sent == 0 {
		return nil
	}
	prevSeq, prevAt := -1, r.Start
	for _, rep := range r.Replies {
		if lost := rep.Seq - prevSeq - 1; lost > 0 {
			gaps = append(gaps, Gap{From: prevAt, To: rep.Sent, Lost: lost})
		}
		prevSeq, prevAt = rep.Seq, rep.Sent
	}
	if lost := r.Sent - 1 - prevSeq; lost > 0 {
		gaps = append(gaps, Gap{From: prevAt, To: r.End, Lost: lost, Open: true})
	}
	return gaps
}

// MaxGap returns the longest time between the send times of consecutive answered probes,
// counting the window's start and end as edges: about Interval when nothing was lost, the
// whole window when nothing was answered.
func (r ProbeResult) MaxGap() time.Duration {
	if r.Sent == 0 {
		return 0
	}
	max, prev := time.Duration(0), r.Start
	for _, rep := range r.Replies {
		max = maxDur(max, rep.Sent.Sub(prev))
		prev = rep.Sent
	}
	return maxDur(max, r.End.Sub(prev))
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// MaxSendGap returns the longest time between two consecutive probes sent. Far above
// Interval it means the prober itself was starved of CPU, and gaps around then are
// overestimated by up to that much.
func (r ProbeResult) MaxSendGap() time.Duration {
	return r.maxSendGap
}

// Run is a stretch of consecutive replies from one node.
type Run struct {
	Node     string
	From, To time.Time // send times of the first and last reply of the run
	Replies  int
}

// Runs returns who answered over time: consecutive replies from the same node merged.
// Lost probes do not end a run; a reply from another node does.
func (r ProbeResult) Runs() []Run {
	var runs []Run
	for _, rep := range r.Replies {
		if len(runs) > 0 && runs[len(runs)-1].Node == rep.Node {
			runs[len(runs)-1].To = rep.Sent
			runs[len(runs)-1].Replies++
			continue
		}
		runs = append(runs, Run{Node: rep.Node, From: rep.Sent, To: rep.Sent, Replies: 1})
	}
	return runs
}

// Last returns the last answered probe's responder ("" if none, or in ICMP mode).
func (r ProbeResult) Last() string {
	if len(r.Replies) == 0 {
		return ""
	}
	return r.Replies[len(r.Replies)-1].Node
}

// String summarises the result in one line.
func (r ProbeResult) String() string {
	s := fmt.Sprintf("%s %s every %v: sent %d, answered %d, lost %d, max gap %v",
		r.Mode, r.Target, r.Interval, r.Sent, r.Received, r.Lost(), r.MaxGap().Round(time.Millisecond))
	if r.Duplicates > 0 {
		s += fmt.Sprintf(", %d duplicates", r.Duplicates)
	}
	if r.WrongSource > 0 {
		s += fmt.Sprintf(", %d from a wrong source", r.WrongSource)
	}
	if r.maxSendGap > 3*r.Interval {
		s += fmt.Sprintf(", prober stalled up to %v", r.maxSendGap.Round(time.Millisecond))
	}
	if r.Mode == ProbeUDP {
		s += ", answered by"
		for _, run := range r.Runs() {
			s += fmt.Sprintf(" %s×%d", run.Node, run.Replies)
		}
	}
	return s
}
