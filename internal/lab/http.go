package lab

import (
	"context"
	"crypto/tls"
	"errors"
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

// HTTP from the client namespace. Sockets belong to the network namespace of the thread that
// creates them, so every connection is dialled from a thread that entered the client's
// namespace (Node.InNetns); reads and writes then run anywhere.

// maxHTTPBody bounds what the client reads of an answer: the lab's servers answer a node name.
const maxHTTPBody = 4 << 10

// httpClient returns an HTTP client that dials from node n's namespace, a new connection for
// every request.
func httpClient(n *Node, timeout time.Duration) *http.Client {
	return httpsClient(n, timeout, nil)
}

// httpsClient is httpClient with a TLS configuration for https:// URLs (nil: Go's default).
func httpsClient(n *Node, timeout time.Duration, tc *tls.Config) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := n.InNetns(func() error {
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:              nil,
			DialContext:        dial,
			TLSClientConfig:    tc,
			DisableKeepAlives:  true,
			DisableCompression: true,
		},
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// get sends one GET and returns the body of a 200 answer.
func get(ctx context.Context, c *http.Client, url string) (string, error) {
	return getServed(ctx, c, url, nil)
}

// getServed sends one GET and returns, for a 200 answer, served(answer, body), or the body
// when served is nil.
func getServed(ctx context.Context, c *http.Client, url string, served func(*http.Response, string) string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	body := strings.TrimSpace(string(b))
	if served != nil {
		return served(resp, body), nil
	}
	return body, nil
}

// HTTPGet sends one GET for / to target from the client (a new connection) and returns the
// body of a 200 answer; any other status is an error.
func (l *Lab) HTTPGet(target netip.AddrPort, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return get(ctx, httpClient(l.client, timeout), "http://"+target.String()+"/")
}

// HTTPLoadOptions configure an HTTPLoad.
type HTTPLoadOptions struct {
	// Interval between the starts of two requests (default 10 ms).
	Interval time.Duration
	// Timeout of one request, connect to end of body (default 200 ms): a request to an
	// address that nobody holds fails after it.
	Timeout time.Duration
	// MaxInFlight bounds the requests open at once (default 64); a request due while that
	// many are open is not sent and counts as failed.
	MaxInFlight int
	// MaxDuration stops the load by itself (default 2 min), whatever happens to the test.
	MaxDuration time.Duration
	// URL is what every request GETs (default http://<target>/), e.g.
	// https://198.18.0.100:6443/readyz for an API server behind a control-plane VIP.
	URL string
	// TLS configures the client for an https:// URL: the roots it verifies the server
	// against (nil: the system's).
	TLS *tls.Config
	// Served names who served a successful request (HTTPRequest.Node) from the answer and
	// its body (default: the body, which the lab's HAProxy answers with its node's name).
	Served func(resp *http.Response, body string) string
}

// HTTPLoad sends a GET for / to a target from the client every Interval, each on a new
// connection, and records which succeeded (status 200), when, and which node answered (the
// body: HAProxyConfig answers the node's name). Requests overlap: a slow one does not delay
// the next.
type HTTPLoad struct {
	target netip.AddrPort
	opts   HTTPLoadOptions
	client *http.Client
	stopc  chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	start  time.Time

	mu       sync.Mutex
	reqs     []HTTPRequest
	inFlight int
	stopped  bool
}

// HTTPRequest is one request of an HTTPLoad.
type HTTPRequest struct {
	// Seq numbers the request (0 is the first).
	Seq int
	// Start is when it was sent; End when it ended (zero while it runs).
	Start, End time.Time
	// OK reports a 200 answer; Node is its body, Err says why it failed.
	OK   bool
	Node string
	Err  string
}

// StartHTTPLoad starts requests to target (e.g. the VIP's port 80) from the client. Stop it
// for the result; the lab stops it on Close at the latest, and it stops itself after
// MaxDuration.
func (l *Lab) StartHTTPLoad(target netip.AddrPort, o HTTPLoadOptions) *HTTPLoad {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 200 * time.Millisecond
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 2 * time.Minute
	}
	if o.URL == "" {
		o.URL = "http://" + target.String() + "/"
	}
	h := &HTTPLoad{
		target: target,
		opts:   o,
		client: httpsClient(l.client, o.Timeout, o.TLS),
		stopc:  make(chan struct{}),
		start:  time.Now(),
	}
	h.wg.Go(h.loop)
	l.addCloser(func() { h.Stop() })
	return h
}

func (h *HTTPLoad) loop() {
	tick := time.NewTicker(h.opts.Interval)
	defer tick.Stop()
	limit := time.NewTimer(h.opts.MaxDuration)
	defer limit.Stop()
	url := h.opts.URL
	for {
		h.mu.Lock()
		seq := len(h.reqs)
		now := time.Now()
		h.reqs = append(h.reqs, HTTPRequest{Seq: seq, Start: now})
		full := h.inFlight >= h.opts.MaxInFlight
		if full {
			h.reqs[seq].End, h.reqs[seq].Err = now, "not sent: too many requests open"
		} else {
			h.inFlight++
		}
		h.mu.Unlock()
		if !full {
			h.wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), h.opts.Timeout)
				body, err := getServed(ctx, h.client, url, h.opts.Served)
				cancel()
				h.mu.Lock()
				defer h.mu.Unlock()
				h.inFlight--
				r := &h.reqs[seq]
				r.End, r.OK, r.Node = time.Now(), err == nil, body
				if err != nil {
					r.Err = err.Error()
				}
			})
		}
		select {
		case <-h.stopc:
			return
		case <-limit.C:
			return
		case <-tick.C:
		}
	}
}

// Stop stops sending, waits for the requests still open (at most Timeout) and returns the
// result.
func (h *HTTPLoad) Stop() HTTPResult {
	h.once.Do(func() {
		close(h.stopc)
		h.wg.Wait()
		h.mu.Lock()
		h.stopped = true
		h.mu.Unlock()
	})
	return h.Result()
}

// Result returns the requests so far up to the first one still open: every request in it has
// ended, so its gaps are final.
func (h *HTTPLoad) Result() HTTPResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Requests end out of order: cut at the first one still open.
	n := len(h.reqs)
	for i, q := range h.reqs {
		if q.End.IsZero() {
			n = i
			break
		}
	}
	return HTTPResult{Target: h.target, URL: h.opts.URL, Interval: h.opts.Interval, Start: h.start, Requests: slices.Clone(h.reqs[:n])}
}

// WaitServed waits up to timeout for a successful request sent after the call and answered
// by node (any node if ""), and returns it.
func (h *HTTPLoad) WaitServed(node string, timeout time.Duration) (HTTPRequest, error) {
	since := time.Now()
	deadline := since.Add(timeout)
	for {
		for _, q := range h.Result().Requests {
			if q.OK && q.Start.After(since) && (node == "" || q.Node == node) {
				return q, nil
			}
		}
		if time.Now().After(deadline) {
			return HTTPRequest{}, fmt.Errorf("no request to %s served by %q within %v (%s)", h.target, node, timeout, h.Result())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HTTPResult is what an HTTPLoad saw.
type HTTPResult struct {
	Target netip.AddrPort
	// URL is what the requests got (HTTPLoadOptions.URL).
	URL      string
	Interval time.Duration
	Start    time.Time
	// Requests are the ended requests, in order.
	Requests []HTTPRequest
}

// MaxSendGap returns the longest time between the starts of two consecutive requests: above
// a few Intervals the client itself stalled (a loaded machine), and an outage measured around
// that time is overestimated by up to the stall.
func (r HTTPResult) MaxSendGap() time.Duration {
	var g time.Duration
	for i := 1; i < len(r.Requests); i++ {
		g = maxDur(g, r.Requests[i].Start.Sub(r.Requests[i-1].Start))
	}
	return g
}

// Failed counts the failed requests.
func (r HTTPResult) Failed() int {
	n := 0
	for _, q := range r.Requests {
		if !q.OK {
			n++
		}
	}
	return n
}

// Gaps returns every run of failed requests, as Gap: From is the start of the last
// successful request before it (or the load's start), To the start of the first successful
// one after it (or the last request's start, Open, if none has succeeded since). Duration is
// then the client-observed HTTP outage, to one Interval.
func (r HTTPResult) Gaps() []Gap {
	var gaps []Gap
	prevAt, lost := r.Start, 0
	for _, q := range r.Requests {
		if !q.OK {
			lost++
			continue
		}
		if lost > 0 {
			gaps = append(gaps, Gap{From: prevAt, To: q.Start, Lost: lost})
		}
		prevAt, lost = q.Start, 0
	}
	if lost > 0 {
		gaps = append(gaps, Gap{From: prevAt, To: r.Requests[len(r.Requests)-1].Start, Lost: lost, Open: true})
	}
	return gaps
}

// Outage returns the longest gap that ends after t, and the failed requests after t.
func (r HTTPResult) Outage(t time.Time) (time.Duration, int) {
	var longest time.Duration
	failed := 0
	for _, g := range r.Gaps() {
		if !g.To.After(t) {
			continue
		}
		longest = maxDur(longest, g.Duration())
		failed += g.Lost
	}
	return longest, failed
}

// CleanSince reports whether every request sent at or after t succeeded.
func (r HTTPResult) CleanSince(t time.Time) bool {
	for _, q := range r.Requests {
		if !q.OK && !q.Start.Before(t) {
			return false
		}
	}
	return true
}

// Last returns the node that answered the last successful request ("" if none).
func (r HTTPResult) Last() string {
	for _, q := range slices.Backward(r.Requests) {
		if q.OK {
			return q.Node
		}
	}
	return ""
}

// Runs returns who served the successful requests, in runs: "n1×120 n2×80".
func (r HTTPResult) Runs() string {
	var b strings.Builder
	cur, count := "", 0
	flush := func() {
		if count > 0 {
			fmt.Fprintf(&b, " %s×%d", cur, count)
		}
	}
	for _, q := range r.Requests {
		if !q.OK {
			continue
		}
		if q.Node != cur {
			flush()
			cur, count = q.Node, 0
		}
		count++
	}
	flush()
	return strings.TrimSpace(b.String())
}

// Errors counts the failed requests by error message (first 60 bytes).
func (r HTTPResult) Errors() map[string]int {
	m := map[string]int{}
	for _, q := range r.Requests {
		if !q.OK {
			e := q.Err
			if len(e) > 60 {
				e = e[:60]
			}
			m[e]++
		}
	}
	return m
}

func (r HTTPResult) String() string {
	longest := time.Duration(0)
	for _, g := range r.Gaps() {
		longest = maxDur(longest, g.Duration())
	}
	url := r.URL
	if url == "" {
		url = "http://" + r.Target.String() + "/"
	}
	return fmt.Sprintf("GET %s every %v: %d requests, %d failed, longest outage %v, served by %s",
		url, r.Interval, len(r.Requests), r.Failed(), longest.Round(time.Millisecond), r.Runs())
}

// HTTPOutageOptions configure MeasureHTTPOutage.
type HTTPOutageOptions struct {
	// Load configures the client's requests (default: every 10 ms, 200 ms timeout).
	Load HTTPLoadOptions
	// Warmup is how long every request must succeed before the fault (default 300 ms).
	Warmup time.Duration
	// Settle is how long every request must succeed after the fault for the measurement to
	// end (default 1 s).
	Settle time.Duration
	// AwaitNode keeps measuring until this node has served a request sent after the fault
	// (and then Settle passed).
	AwaitNode string
	// Timeout bounds the measurement after the fault (default 30 s).
	Timeout time.Duration
}

// HTTPOutage is what the client's HTTP requests saw of a fault.
type HTTPOutage struct {
	// Duration is the longest time between the starts of two successful requests around
	// failed ones, from the fault on (to one Load.Interval); 0 when none failed.
	Duration time.Duration
	// Failed counts the failed requests sent after the fault.
	Failed int
	// Before and After name the node that served just before the fault and at the end.
	Before, After string
	// FaultAt is when the fault function was called.
	FaultAt time.Time
	// Result is the complete record.
	Result HTTPResult
}

func (o HTTPOutage) String() string {
	return fmt.Sprintf("HTTP outage %v (%d requests failed), %s -> %s",
		o.Duration.Round(time.Millisecond), o.Failed, o.Before, o.After)
}

// MeasureHTTPOutage sends HTTP requests to target from the client, waits until they succeed
// steadily, calls fault (e.g. SIGKILL of HAProxy on the MASTER) and measures the longest run
// of failed requests until they succeed steadily again (served by AwaitNode, if set). It
// returns an error, with what was measured so far, if the target never served before the
// fault or did not recover within Timeout.
func (l *Lab) MeasureHTTPOutage(ctx context.Context, target netip.AddrPort, fault func() error, o HTTPOutageOptions) (HTTPOutage, error) {
	if o.Warmup <= 0 {
		o.Warmup = 300 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Load.MaxDuration <= 0 {
		o.Load.MaxDuration = o.Timeout + o.Warmup + o.Settle + 30*time.Second
	}
	h := l.StartHTTPLoad(target, o.Load)
	defer h.Stop()

	if err := pollUntil(ctx, time.Now().Add(o.Timeout), func() bool {
		r := h.Result()
		n := len(r.Requests)
		return n > 0 && r.Requests[n-1].Start.Sub(r.Start) >= o.Warmup &&
			r.CleanSince(r.Requests[n-1].Start.Add(-o.Warmup))
	}); err != nil {
		r := h.Stop()
		if errors.Is(err, errPollDeadline) {
			err = fmt.Errorf("%s is not served steadily before the fault: %s", target, r)
		}
		return HTTPOutage{Result: r}, err
	}
	out := HTTPOutage{Before: h.Result().Last(), FaultAt: time.Now()}
	if err := fault(); err != nil {
		out.Result = h.Stop()
		return out, fmt.Errorf("fault: %w", err)
	}
	var reached bool
	werr := pollUntil(ctx, out.FaultAt.Add(o.Timeout), func() bool {
		r := h.Result()
		reached = o.AwaitNode == ""
		for _, q := range r.Requests {
			if q.OK && q.Node == o.AwaitNode && q.Start.After(out.FaultAt) {
				reached = true
				break
			}
		}
		n := len(r.Requests)
		settled := n > 0 && r.Requests[n-1].Start.Sub(out.FaultAt) >= o.Settle && r.CleanSince(r.Requests[n-1].Start.Add(-o.Settle))
		return settled && reached
	})
	if errors.Is(werr, errPollDeadline) {
		werr = fmt.Errorf("%s was not served steadily again within %v of the fault", target, o.Timeout)
		if !reached {
			werr = fmt.Errorf("%s not served by %s within %v of the fault", target, o.AwaitNode, o.Timeout)
		}
	}
	out.Result = h.Stop()
	out.Duration, out.Failed = out.Result.Outage(out.FaultAt)
	out.After = out.Result.Last()
	return out, werr
}

// HealthServer is a node-local HTTP health endpoint whose answers a test scripts: each
// request takes the next status of the script, or the default once the script is used up,
// so a test decides the exact sequence of results a health probe sees (fail, fail, pass)
// whatever the timing. It runs in the test process; its listening socket is in the node's
// namespace.
type HealthServer struct {
	// Addr is where it listens, e.g. 127.0.0.1:8404 inside the node.
	Addr netip.AddrPort

	ln  net.Listener
	srv *http.Server

	mu      sync.Mutex
	def     int
	script  []int
	served  []HealthCheck
	changed chan struct{}
}

// HealthCheck is one request a HealthServer answered.
type HealthCheck struct {
	At     time.Time
	Status int
}

// ErrHealthClosed is returned by HealthServer.WaitServed after Close.
var ErrHealthClosed = errors.New("health server closed")

// StartHealthServer listens on addr inside n's namespace and answers 200 (the default) until
// scripted otherwise. The lab closes it on Close at the latest.
func (n *Node) StartHealthServer(addr netip.AddrPort) (*HealthServer, error) {
	h := &HealthServer{Addr: addr, def: http.StatusOK, changed: make(chan struct{})}
	err := n.InNetns(func() error {
		var err error
		h.ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: health server on %s: %w", n.Name, addr, err)
	}
	h.srv = &http.Server{Handler: http.HandlerFunc(h.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = h.srv.Serve(h.ln) }()
	n.lab.addCloser(h.Close)
	return h, nil
}

func (h *HealthServer) serve(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	code := h.def
	if len(h.script) > 0 {
		code, h.script = h.script[0], h.script[1:]
	}
	h.served = append(h.served, HealthCheck{At: time.Now(), Status: code})
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
	w.Header().Set("Connection", "close")
	w.WriteHeader(code)
	fmt.Fprintln(w, http.StatusText(code))
}

// Script queues statuses for the next requests, after any still queued, and returns the
// index in Served of the request that will take the first of them.
func (h *HealthServer) Script(codes ...int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := len(h.served) + len(h.script)
	h.script = append(h.script, codes...)
	return first
}

// SetDefault sets the status of requests beyond the script.
func (h *HealthServer) SetDefault(code int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.def = code
}

// Served returns every answered request so far.
func (h *HealthServer) Served() []HealthCheck {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]HealthCheck(nil), h.served...)
}

// Pending returns how many scripted statuses are still queued.
func (h *HealthServer) Pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.script)
}

// WaitServed waits up to timeout until at least count requests have been answered in all.
func (h *HealthServer) WaitServed(count int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		n, ch := len(h.served), h.changed
		h.mu.Unlock()
		if n >= count {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("health server %s: %d requests answered after %v, want %d", h.Addr, n, timeout, count)
		}
	}
}

// Close stops the server.
func (h *HealthServer) Close() {
	_ = h.srv.Close()
}
