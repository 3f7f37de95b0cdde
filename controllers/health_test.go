package controllers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestServeHealth: /healthz and /readyz answer in plain HTTP at the given address, and the
// server bounds what a client can make it hold: slow headers, idle connections, huge headers.
func TestServeHealth(t *testing.T) {
	srv, err := ServeHealth("127.0.0.1:0", fakeLiveness{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	for _, path := range []string{"/healthz", "/readyz"} { // a healthy agent
		resp, err := http.Get("http://" + srv.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > 10*time.Second {
		t.Errorf("ReadHeaderTimeout = %v, want a few seconds", srv.ReadHeaderTimeout)
	}
	if srv.IdleTimeout <= 0 || srv.IdleTimeout > time.Minute {
		t.Errorf("IdleTimeout = %v, want at most a minute", srv.IdleTimeout)
	}
	if srv.WriteTimeout <= 0 || srv.ReadTimeout <= 0 {
		t.Errorf("ReadTimeout %v, WriteTimeout %v: want both bounded", srv.ReadTimeout, srv.WriteTimeout)
	}

	// A header far beyond MaxHeaderBytes is refused, not buffered.
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "431") {
		t.Errorf("a 64 KiB header: %q %v, want 431 Request Header Fields Too Large", line, err)
	}
}

// TestServeHealthConnectionLimit: connections beyond healthMaxConns wait for a free slot
// instead of each costing the agent a goroutine and a socket.
func TestServeHealthConnectionLimit(t *testing.T) {
	srv, err := ServeHealth("127.0.0.1:0", fakeLiveness{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range healthMaxConns {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Every slot is held by a connection that sends nothing: one more is not served...
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := hc.Get("http://" + srv.Addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("served a request beyond %d held connections", healthMaxConns)
	}
	// ...until one is released.
	idle[0].Close()
	idle = idle[1:]
	hc.Timeout = 5 * time.Second
	resp, err := hc.Get("http://" + srv.Addr + "/healthz")
	if err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}
	resp.Body.Close()
}

// fakeLiveness answers Healthy with err, after block is closed if set.
type fakeLiveness struct {
	err   error
	block chan struct{}
}

func (f fakeLiveness) Healthy(time.Time) error {
	if f.block != nil {
		<-f.block
	}
	return f.err
}

// TestHealthzFailsWhenWedged: /healthz fails with the reason when the agent reports a wedged
// instance, and when the agent does not answer at all (its lock held by a wedged call); a
// check stuck that way does not pile up goroutines: the next ones fail at once. /readyz does
// not depend on it.
func TestHealthzFailsWhenWedged(t *testing.T) {
	get := func(h http.Handler, path string) (int, string) {
		mux := http.NewServeMux()
		mux.Handle(path, h)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(healthz(fakeLiveness{}, time.Second), "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthy: %d %q", code, body)
	}
	wedged := fakeLiveness{err: errors.New("VRRP instance(s) web made no progress for more than 30s with work waiting")}
	code, body := get(healthz(wedged, time.Second), "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "web made no progress") {
		t.Errorf("wedged instance: %d %q, want 503 with the reason", code, body)
	}

	block := make(chan struct{})
	defer close(block)
	h := healthz(fakeLiveness{block: block}, 50*time.Millisecond)
	start := time.Now()
	code, body = get(h, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "did not answer within 50ms") {
		t.Errorf("no answer: %d %q", code, body)
	}
	code, body = get(h, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "previous check has not answered") {
		t.Errorf("second check while the first is stuck: %d %q", code, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two checks took %v", d)
	}

	// The served endpoint: /healthz follows the agent, /readyz does not.
	srv, err := ServeHealth("127.0.0.1:0", wedged)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	for path, want := range map[string]int{"/healthz": http.StatusServiceUnavailable, "/readyz": http.StatusOK} {
		resp, err := http.Get("http://" + srv.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
