package probe

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the bytes the probe reads.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// httpTimeout is the timeout of the checks against misbehaving servers: long enough that a
// loaded machine completes a good exchange, short enough to show that a bad one stops there.
const httpTimeout = time.Second

// httpCheck runs one http check against url within timeout and returns its verdict, how long
// it took and how many bytes it read.
func httpCheck(t *testing.T, url string, expected int, timeout time.Duration) (ok bool, reason string, took time.Duration, read int64) {
	t.Helper()
	var n atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countConn{c, &n}, nil
	}
	c := newHTTPCheckerDial(Spec{URL: url, ExpectedStatus: expected}, dial)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	ok, reason = c.check(ctx)
	return ok, reason, time.Since(start), n.Load()
}

// rawServer serves each connection on 127.0.0.1 with handle, and stops them all at cleanup.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String() + "/healthz"
}

// readRequest reads the request head, so that the server answers after it as a server would.
func readRequest(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil || l == "\r\n" {
			return
		}
	}
}

// writeForever writes chunk until the peer goes away.
func writeForever(c net.Conn, chunk []byte) {
	for {
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

func TestHTTP(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	t.Cleanup(target.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Connection") != "close" || r.Header.Get("Accept-Encoding") != "" {
			t.Errorf("request headers %v: want Connection: close and no Accept-Encoding", r.Header)
		}
		switch r.URL.Path {
		case "/ok":
			fmt.Fprintln(w, "ok")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/500":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "/redirect":
			http.Redirect(w, r, target.URL, http.StatusFound)
		case "/big":
			w.Write(make([]byte, MaxBodyBytes+1))
		case "/limit":
			w.Write(make([]byte, MaxBodyBytes))
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		path     string
		expected int
		ok       bool
		reason   string
	}{
		{"/ok", 0, true, "status 200"},
		{"/204", 0, true, "status 204"},
		{"/204", 204, true, "status 204"},
		{"/ok", 204, false, "status 200, want 204"},
		{"/500", 0, false, "status 500, want 2xx or 3xx"},
		{"/500", 500, true, "status 500"},
		{"/redirect", 0, true, "status 302"}, // not followed: judged by its own status
		{"/redirect", 200, false, "status 302, want 200"},
		{"/limit", 0, true, "status 200"},
		{"/big", 0, false, "the body is longer than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s want %d", tt.path, tt.expected), func(t *testing.T) {
			ok, reason, _, _ := httpCheck(t, srv.URL+tt.path, tt.expected, 10*time.Second)
			if ok != tt.ok || !strings.Contains(reason, tt.reason) {
				t.Errorf("check() = %t, %q; want %t and a reason containing %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target was requested %d times, want 0", n)
	}
}

// Servers that misbehave fail the check within its timeout, with a bounded read and no panic.
func TestHTTPMisbehavingServers(t *testing.T) {
	const maxRead = 128 << 10 // MaxBodyBytes or maxHeaderBytes, plus buffers
	garbage := []byte(strings.Repeat("\x00\xffgarbage", 512))
	tests := []struct {
		name   string
		handle func(net.Conn)
		reason string // one of these, |-separated
	}{
		{"garbage line", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("this is not HTTP\r\n\r\n"))
		}, "malformed HTTP"},
		{"endless garbage without a newline", func(c net.Conn) {
			readRequest(c)
			writeForever(c, garbage)
		}, ""},
		{"endless headers", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\n"))
			writeForever(c, []byte("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"))
		}, "exceeded"},
		{"hangs before answering", func(c net.Conn) {
			readRequest(c)
			c.Read(make([]byte, 1)) // until the probe goes away
		}, "no complete answer within the timeout"},
		{"hangs before reading the request", func(c net.Conn) {
			c.Read(make([]byte, 0))
			time.Sleep(2 * httpTimeout)
		}, "no complete answer within the timeout"},
		{"endless body", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")) // no length: until close
			writeForever(c, garbage)
		}, "the body is longer than 64 KiB|no complete answer within the timeout"},
		{"endless chunked body", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
			writeForever(c, []byte("1000\r\n"+strings.Repeat("x", 0x1000)+"\r\n"))
		}, "the body is longer than 64 KiB|no complete answer within the timeout"}, // a race between the limit and the clock on a slow machine
		{"body trickles", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"))
			for {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}, "no complete answer within the timeout"},
		{"body shorter than its length, then hangs", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort"))
			c.Read(make([]byte, 1))
		}, "no complete answer within the timeout"},
		{"body shorter than its length, then closes", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort"))
			c.Close()
		}, "unexpected EOF"},
		// EOF or a reset, depending on whether the request arrived before the close.
		{"closes at once", func(c net.Conn) { c.Close() }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := rawServer(t, tt.handle)
			ok, reason, took, read := httpCheck(t, url, 0, httpTimeout)
			t.Logf("%t %q after %v, %d bytes read", ok, reason, took, read)
			if ok || !slices.ContainsFunc(strings.Split(tt.reason, "|"), func(s string) bool { return strings.Contains(reason, s) }) {
				t.Errorf("check() = %t, %q; want false and a reason containing %q", ok, reason, tt.reason)
			}
			if took > httpTimeout+time.Second {
				t.Errorf("the check took %v, want about the %v timeout at most", took, httpTimeout)
			}
			if read > maxRead {
				t.Errorf("the check read %d bytes, want at most %d", read, maxRead)
			}
		})
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ok, reason, _, _ := httpCheck(t, "http://"+addr+"/", 0, 10*time.Second)
	if ok || !strings.Contains(reason, "connection refused") {
		t.Errorf("check() = %t, %q; want false: connection refused", ok, reason)
	}
}

// Each check opens its own connection: a pooled one would answer for the past.
func TestHTTPNoKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newHTTPChecker(Spec{URL: srv.URL})
	for range 3 {
		if ok, reason := c.check(t.Context()); !ok {
			t.Fatalf("check() = false, %q", reason)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 checks, want 3", n)
	}
}

// A URL's password and query values (a token) never reach the probe's messages, which become
// the VirtualIP's status and Events: every outcome names the URL with them replaced.
func TestHTTPMessagesRedactPassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://admin:s3cr3t-pw@", 1) + "/healthz?token=s3cr3t-tok#s3cr3t-frag"
	for _, tc := range []struct {
		name, url string
		expected  int
	}{
		{"wrong status", u, 200},
		{"right status", u, 503},
		{"unreachable", "http://admin:s3cr3t-pw@127.0.0.1:1/healthz?token=s3cr3t-tok", 200},
		{"unparsable", "http://admin:s3cr3t-pw@[::1/healthz", 200},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, msg := newHTTPChecker(Spec{URL: tc.url, ExpectedStatus: tc.expected}).check(ctx)
		cancel()
		if strings.Contains(msg, "s3cr3t") {
			t.Errorf("%s: message %q carries a secret of the URL", tc.name, msg)
		}
		if msg == "" {
			t.Errorf("%s: empty message", tc.name)
		}
	}
}
