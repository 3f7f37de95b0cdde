package agentlab_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// The restart lab (docs/design.md §4.9.1): two nodes with HAProxy serving a VIP, `kube-vrrp
// run` on both with VRRPv3 adverts every 100 ms, a client holding long-lived connections
// through the VIP and opening a new one every 10 ms.
const (
	handoffBound = 8 * time.Second
	// handoffConns is how many long-lived connections the client holds.
	handoffConns = 50
)

var (
	handoffVIP = netip.MustParsePrefix("198.18.0.150/24")
	handoffWeb = netip.AddrPortFrom(handoffVIP.Addr(), 80)
)

type handoffNode struct {
	*lab.Node
	ns *lab.PIDNamespace
	kv *lab.NSProc
}

type handoffLab struct {
	t        *testing.T
	l        *lab.Lab
	manifest string
	n1, n2   *handoffNode
}

// newHandoffLab starts HAProxy on both nodes and kube-vrrp on n1 (priority 110, MASTER) and
// then on n2 (100, BACKUP).
func newHandoffLab(t *testing.T) *handoffLab {
	t.Helper()
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	h := &handoffLab{t: t, l: l}
	var ns []*handoffNode
	for _, n := range l.Nodes() {
		hn := &handoffNode{Node: n, ns: n.StartPIDNamespace(t)}
		hn.ns.StartHAProxy(t, handoffVIP.Addr())
		ns = append(ns, hn)
	}
	h.n1, h.n2 = ns[0], ns[1]
	h.manifest = lab.VirtualIP{Name: "web", VRID: 61, Addresses: []netip.Prefix{handoffVIP},
		AdvertInt: 100 * time.Millisecond, NodePriorities: map[string]int{h.n1.Name: 110, h.n2.Name: 100}}.String()
	h.n1.kv = h.start(h.n1)
	if err := lab.WaitKubeVRRPState(h.n1.kv.Proc, "web", "Master", settle); err != nil {
		t.Fatal(err)
	}
	h.n2.kv = h.start(h.n2)
	if err := lab.WaitKubeVRRPState(h.n2.kv.Proc, "web", "Backup", settle); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitSoleHolder(l.Nodes(), handoffVIP, h.n1.Node, 300*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	return h
}

// start starts a new `kube-vrrp run` on n, from the binary lab.KubeVRRPBinary built for this
// test process.
func (h *handoffLab) start(n *handoffNode) *lab.NSProc {
	return n.ns.StartKubeVRRP(h.t, h.manifest, "--handoff-timeout", handoffBound.String())
}

// stopForRestart sends SIGUSR2 to n's agent and waits for it to exit 0, having handed off.
func (h *handoffLab) stopForRestart(n *handoffNode) {
	h.t.Helper()
	if err := n.kv.Signal(syscall.SIGUSR2); err != nil {
		h.t.Fatal(err)
	}
	if err := n.kv.Wait(5 * time.Second); err != nil {
		h.t.Fatalf("%s: kube-vrrp after SIGUSR2: %v, want exit 0:\n%s", n.Name, err, n.kv.Tail(20))
	}
	if !strings.Contains(n.kv.Log(), `"msg":"handed over to the successor"`) {
		h.t.Fatalf("%s: kube-vrrp did not hand off:\n%s", n.Name, n.kv.Tail(20))
	}
}

// holderWatch records, every 10 ms, whether n holds the VIP.
type holderWatch struct {
	n     *lab.Node
	stopc chan struct{}
	done  chan struct{}

	mu     sync.Mutex
	checks int
	first  time.Time // the first check that found the VIP on n
}

func watchHolder(n *lab.Node) *holderWatch {
	w := &holderWatch{n: n, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			held := n.HasAddress(handoffVIP)
			w.mu.Lock()
			w.checks++
			if held && w.first.IsZero() {
				w.first = time.Now()
			}
			w.mu.Unlock()
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *holderWatch) stop() (checks int, first time.Time) {
	close(w.stopc)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checks, w.first
}

// connLoad is the client's long-lived connections to the VIP: each sends a GET every 100 ms
// on the same connection (HTTP/1.1 keep-alive) and records the first error, which ends it.
type connLoad struct {
	stopc chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	requests int
	errs     []string
	served   map[string]int
}

func startConnLoad(t *testing.T, client *lab.Node, n int) *connLoad {
	t.Helper()
	c := &connLoad{stopc: make(chan struct{}), served: map[string]int{}}
	for i := range n {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		conn, err := client.DialContext(ctx, "tcp", handoffWeb.String())
		cancel()
		if err != nil {
			c.stop()
			t.Fatalf("connection %d to %s: %v", i, handoffWeb, err)
		}
		c.wg.Go(func() { c.run(i, conn) })
	}
	return c
}

func (c *connLoad) run(i int, conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	// Spread over the period.
	time.Sleep(time.Duration(i) * 2 * time.Millisecond)
	for {
		err := func() error {
			if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
				return err
			}
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || resp.Close {
				return fmt.Errorf("status %d, close %v", resp.StatusCode, resp.Close)
			}
			c.mu.Lock()
			c.requests++
			c.served[strings.TrimSpace(string(body))]++
			c.mu.Unlock()
			return nil
		}()
		if err != nil {
			select {
			case <-c.stopc:
				return
			default:
			}
			c.mu.Lock()
			c.errs = append(c.errs, fmt.Sprintf("connection %d at %s: %v", i, time.Now().Format("15:04:05.000"), err))
			c.mu.Unlock()
			return
		}
		select {
		case <-c.stopc:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the connections and returns the requests they carried, their errors and who
// served them.
func (c *connLoad) stop() (int, []string, map[string]int) {
	select {
	case <-c.stopc:
	default:
		close(c.stopc)
	}
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, c.errs, c.served
}

// TestHandoffRestart restarts the MASTER's agent as a service manager does (SIGUSR2, exit, a
// new process of the freshly built binary): nothing moves. The backup never holds the VIP
// (checked every 10 ms), no long-lived connection breaks, no new request fails, and the new
// process is MASTER with reason Resumed.
func TestHandoffRestart(t *testing.T) {
	h := newHandoffLab(t)
	n1, n2 := h.n1, h.n2
	watch := watchHolder(n2.Node)
	conns := startConnLoad(t, h.l.Client(), handoffConns)
	load := h.l.StartHTTPLoad(handoffWeb, lab.HTTPLoadOptions{Interval: 10 * time.Millisecond, Timeout: time.Second})
	if _, err := load.WaitServed(n1.Name, settle); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)

	signalled := time.Now()
	h.stopForRestart(n1)
	exited := time.Now()
	n1.kv = h.start(n1)
	resumed, err := lab.WaitKubeVRRPEvent(n1.kv.Proc, 0, settle, lab.Entered("Master", "Resumed"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGUSR2 to exit %s, exit to the successor's Resumed %s", exited.Sub(signalled).Round(time.Millisecond),
		resumed.At.Sub(exited).Round(time.Millisecond))
	if !strings.Contains(n1.kv.Log(), `"msg":"resuming the instance handed over by the previous agent"`) {
		t.Errorf("%s: the successor does not say it resumed:\n%s", n1.Name, n1.kv.Tail(20))
	}
	// Past the longest the backup could have waited on the stretched interval.
	time.Sleep(handoffBound + time.Second)

	res := load.Stop()
	requests, errs, served := conns.stop()
	checks, first := watch.stop()
	t.Logf("new connections: %s", res)
	t.Logf("long-lived connections: %d, %d requests, served by %v; %d checks of %s", handoffConns, requests, served, checks, n2.Name)
	if !first.IsZero() {
		t.Errorf("%s held %s at %s, %s after SIGUSR2: the VIP moved", n2.Name, handoffVIP.Addr(), first.Format("15:04:05.000"),
			first.Sub(signalled).Round(time.Millisecond))
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d long-lived connections broke: %s", len(errs), handoffConns, strings.Join(errs, "; "))
	}
	if n := res.Failed(); n > 0 {
		t.Errorf("%d new requests failed: %v", n, res.Errors())
	}
	if len(served) != 1 || served[n1.Name] == 0 {
		t.Errorf("long-lived connections served by %v, want %s alone", served, n1.Name)
	}
	if st := lab.KubeVRRPState(n1.kv.Proc, "web"); st != "Master" {
		t.Errorf("%s: the successor is %s, want Master", n1.Name, st)
	}
	if st := lab.KubeVRRPState(n2.kv.Proc, "web"); st != "Backup" {
		t.Errorf("%s: %s, want Backup", n2.Name, st)
	}
}

// TestHandoffNoSuccessor stops the MASTER's agent for a restart and starts none: the backup
// takes over within the bound (+1 s), and the old node's kernel removes the address by the
// end of its lifetime (the bound, +1 s).
func TestHandoffNoSuccessor(t *testing.T) {
	h := newHandoffLab(t)
	n1, n2 := h.n1, h.n2
	signalled := time.Now()
	h.stopForRestart(n1)
	if !n1.HasAddress(handoffVIP) {
		t.Fatalf("%s removed %s at a handoff", n1.Name, handoffVIP.Addr())
	}
	var took, gone time.Time
	for deadline := signalled.Add(handoffBound + 2*time.Second); time.Now().Before(deadline) && (took.IsZero() || gone.IsZero()); time.Sleep(10 * time.Millisecond) {
		if took.IsZero() && n2.HasAddress(handoffVIP) {
			took = time.Now()
		}
		if gone.IsZero() && !n1.HasAddress(handoffVIP) {
			gone = time.Now()
		}
	}
	t.Logf("after SIGUSR2: %s took over at %s, %s dropped the address at %s", n2.Name, sinceStr(took, signalled), n1.Name, sinceStr(gone, signalled))
	switch {
	case took.IsZero():
		t.Errorf("%s never took over", n2.Name)
	case took.Sub(signalled) > handoffBound+time.Second:
		t.Errorf("%s took over %s after SIGUSR2, want within %s", n2.Name, took.Sub(signalled), handoffBound+time.Second)
	case took.Sub(signalled) < handoffBound/2:
		t.Errorf("%s took over %s after SIGUSR2: the stretched interval did not hold it", n2.Name, took.Sub(signalled))
	}
	if gone.IsZero() || gone.Sub(signalled) > handoffBound+time.Second {
		t.Errorf("%s still had %s %s after SIGUSR2, want it gone by the bound (+1 s)", n1.Name, handoffVIP.Addr(), sinceStr(gone, signalled))
	}
	if _, err := lab.WaitKubeVRRPEvent(n2.kv.Proc, 0, time.Second, lab.Entered("Master", "")); err != nil {
		t.Error(err)
	}
	// The next agent, later, starts as usual from the expired record: it preempts back.
	n1.kv = h.start(n1)
	if err := lab.WaitSoleHolder(h.l.Nodes(), handoffVIP, n1.Node, 300*time.Millisecond, settle); err != nil {
		t.Error(err)
	}
	if strings.Contains(n1.kv.Log(), `"msg":"resuming the instance handed over by the previous agent"`) {
		t.Errorf("%s resumed from an expired handoff:\n%s", n1.Name, n1.kv.Tail(20))
	}
}

// TestHandoffFinalStop: SIGTERM is still final, the handover to the backup a matter of
// milliseconds for the client (its UDP probes to the VIP every 10 ms, which each node answers
// with its name); the HTTP client's view is logged beside it.
func TestHandoffFinalStop(t *testing.T) {
	h := newHandoffLab(t)
	n1, n2 := h.n1, h.n2
	load := h.l.StartHTTPLoad(handoffWeb, lab.HTTPLoadOptions{Interval: 10 * time.Millisecond, Timeout: time.Second})
	if _, err := load.WaitServed(n1.Name, settle); err != nil {
		t.Fatal(err)
	}
	out, err := h.l.MeasureOutage(t.Context(), handoffVIP.Addr(), func() error { return n1.kv.Signal(syscall.SIGTERM) },
		lab.OutageOptions{AwaitNode: n2.Name, Timeout: settle})
	if err != nil {
		t.Fatalf("%v: %s", err, out.Result)
	}
	res := load.Stop()
	t.Logf("SIGTERM: client outage %s; HTTP: %s", out, res)
	// A client that itself stalled (a loaded machine) overstates the outage by up to the
	// stall beyond its probe interval.
	stall := out.Result.MaxSendGap()
	if allowed := 100*time.Millisecond + max(0, stall-10*time.Millisecond); out.Duration > allowed {
		t.Errorf("handover after SIGTERM: client outage %s, want at most 100 ms (the client stalled up to %s)",
			out.Duration, stall.Round(time.Millisecond))
	}
	if err := n1.kv.Wait(5 * time.Second); err != nil {
		t.Errorf("%s after SIGTERM: %v", n1.Name, err)
	}
	if strings.Contains(n1.kv.Log(), `"msg":"handed over to the successor"`) {
		t.Errorf("%s handed off at SIGTERM", n1.Name)
	}
	if n1.HasAddress(handoffVIP) {
		t.Errorf("%s kept %s after SIGTERM", n1.Name, handoffVIP.Addr())
	}
}

func sinceStr(t, from time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(from).Round(time.Millisecond).String()
}
