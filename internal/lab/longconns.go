package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// LongConnsOptions configure a LongConns.
type LongConnsOptions struct {
	// Conns is the number of connections (default 10).
	Conns int
	// Period is the pause between two requests on one connection (default 100 ms); the
	// connections start spread over it.
	Period time.Duration
	// Timeout bounds one request, write to end of body (default 2 s): a connection whose
	// server is gone fails after it.
	Timeout time.Duration
	// DialTimeout bounds each connection's dial at the start (default 5 s).
	DialTimeout time.Duration
}

// LongConns is long-lived TCP connections from the client to a target: each sends an HTTP/1.1
// GET for / and reads the answer, then again after Period, on the same connection, until
// stopped. A connection that fails once (reset, timeout, an answer other than 200 keep-alive)
// is broken: it is recorded and not dialled again. What a move of the target's address costs
// the connections already open, where HTTPLoad shows what it costs new ones.
type LongConns struct {
	target netip.AddrPort
	opts   LongConnsOptions
	stopc  chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu       sync.Mutex
	requests int
	served   map[string]int
	broken   []ConnBreak
}

// ConnBreak is a connection of a LongConns that failed.
type ConnBreak struct {
	// Conn numbers the connection (0 is the first).
	Conn int
	// At is when the failing request was sent, and Requests how many it had carried before.
	At       time.Time
	Requests int
	Err      string
}

func (b ConnBreak) String() string {
	return fmt.Sprintf("connection %d at %s after %d requests: %s", b.Conn, b.At.Format("15:04:05.000"), b.Requests, b.Err)
}

// LongConnsResult is what a LongConns saw.
type LongConnsResult struct {
	Target netip.AddrPort
	Conns  int
	// Requests counts the answered requests of every connection; Served counts them by who
	// answered (the body: the lab's HAProxy answers the node's name).
	Requests int
	Served   map[string]int
	// Broken are the connections that failed, in order of failure.
	Broken []ConnBreak
}

func (r LongConnsResult) String() string {
	var served []string
	for n, c := range r.Served {
		served = append(served, fmt.Sprintf("%s×%d", n, c))
	}
	slices.Sort(served)
	return fmt.Sprintf("%d long-lived connections to %s: %d requests, served by %s, %d broken",
		r.Conns, r.Target, r.Requests, strings.Join(served, " "), len(r.Broken))
}

// StartLongConns dials o.Conns connections to target from the client and starts their
// requests. It returns an error (and closes what it opened) if one cannot be dialled. Stop it
// for the result; the lab stops it on Close at the latest.
func (l *Lab) StartLongConns(target netip.AddrPort, o LongConnsOptions) (*LongConns, error) {
	if o.Conns <= 0 {
		o.Conns = 10
	}
	if o.Period <= 0 {
		o.Period = 100 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	c := &LongConns{target: target, opts: o, stopc: make(chan struct{}), served: map[string]int{}}
	conns := make([]net.Conn, 0, o.Conns)
	for i := range o.Conns {
		ctx, cancel := context.WithTimeout(context.Background(), o.DialTimeout)
		conn, err := l.client.DialContext(ctx, "tcp", target.String())
		cancel()
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("connection %d to %s: %w", i, target, err)
		}
		conns = append(conns, conn)
	}
	for i, conn := range conns {
		c.wg.Go(func() { c.run(i, conn) })
	}
	l.addCloser(func() { c.Stop() })
	return c, nil
}

func (c *LongConns) run(i int, conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	// Spread over the period.
	select {
	case <-c.stopc:
		return
	case <-time.After(time.Duration(i) * c.opts.Period / time.Duration(c.opts.Conns)):
	}
	n := 0
	for {
		at := time.Now()
		body, err := c.request(conn, br)
		if err != nil {
			select {
			case <-c.stopc:
				return
			default:
			}
			c.mu.Lock()
			c.broken = append(c.broken, ConnBreak{Conn: i, At: at, Requests: n, Err: err.Error()})
			c.mu.Unlock()
			return
		}
		n++
		c.mu.Lock()
		c.requests++
		c.served[body]++
		c.mu.Unlock()
		select {
		case <-c.stopc:
			return
		case <-time.After(c.opts.Period):
		}
	}
}

// request sends one GET on conn and returns the body of its 200 keep-alive answer.
func (c *LongConns) request(conn net.Conn, br *bufio.Reader) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(c.opts.Timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+c.target.String()+"\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return "", fmt.Errorf("status %d, close %v", resp.StatusCode, resp.Close)
	}
	return strings.TrimSpace(string(b)), nil
}

// Result returns what the connections saw so far.
func (c *LongConns) Result() LongConnsResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	served := make(map[string]int, len(c.served))
	for k, v := range c.served {
		served[k] = v
	}
	return LongConnsResult{Target: c.target, Conns: c.opts.Conns, Requests: c.requests, Served: served, Broken: slices.Clone(c.broken)}
}

// Stop closes the connections (after the request each has open, at most Timeout) and returns
// the result.
func (c *LongConns) Stop() LongConnsResult {
	c.once.Do(func() {
		close(c.stopc)
		c.wg.Wait()
	})
	return c.Result()
}
