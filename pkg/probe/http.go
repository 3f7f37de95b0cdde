package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
)

// maxHeaderBytes bounds the status line and headers of a response, so that a server sending
// garbage without end costs a few KiB.
const maxHeaderBytes = 16 << 10

// httpChecker implements KindHTTP: a GET answered with the expected status (any 2xx or 3xx by
// default) and a complete body of at most MaxBodyBytes, all within the timeout.
//
// A health check must end: a server that hangs (before, during or after the TLS handshake),
// sends garbage or streams a body without end fails the check within its timeout, having cost
// at most a few tens of KiB. Each check uses a new connection and transport (no keep-alive: a
// pooled connection would be a check of the past, and a TLS session of the past would not be
// checked against a rotated CA), no proxy from the environment, no compression (no
// decompression bomb), HTTP/1.1, and does not follow redirects: a 3xx is judged by its own
// status. https certificates are verified, against the system's roots or the probe's CA file
// (HTTPSOptions), with TLS 1.2 at least.
type httpChecker struct {
	url string
	// shown is url with any password and query values replaced (redactURL): what messages, and
	// so the VirtualIP's status and Events, carry.
	shown    string
	expected int
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	// https makes the TLS configuration and token of each check of an https:// URL; nil for
	// http://, which sends no credentials whatever the options.
	https *httpsSource
}

func newHTTPChecker(s Spec) *httpChecker {
	return newHTTPCheckerDial(s, (&net.Dialer{}).DialContext)
}

// newHTTPCheckerDial is newHTTPChecker with the dial function given, for tests that count the
// bytes read.
func newHTTPCheckerDial(s Spec, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *httpChecker {
	c := &httpChecker{
		url:      s.URL,
		shown:    redactURL(s.URL),
		expected: s.ExpectedStatus,
		dial:     dial,
	}
	if u, err := url.Parse(s.URL); err == nil && u.Scheme == "https" {
		c.https = &httpsSource{opts: s.HTTPS}
	}
	return c
}

// client returns the client of one check, with tlsConfig for an https URL.
func (c *httpChecker) client(tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            c.dial,
			TLSClientConfig:        tlsConfig, // with DialContext set: HTTP/1.1, no HTTP/2
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: maxHeaderBytes,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// redactURL is u with its password and the values of its query replaced (a token is often
// passed as ?token=...), without its fragment, or a placeholder when u does not parse (its
// text may then hold anything).
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the probe's URL"
	}
	if p.RawQuery != "" {
		q := p.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		p.RawQuery = q.Encode()
	}
	p.Fragment, p.RawFragment = "", ""
	return p.Redacted()
}

func (c *httpChecker) check(ctx context.Context) (bool, string) {
	// handshake is 1 while a TLS handshake runs, 2 once one completed: a timeout says which.
	var handshake atomic.Int32
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() { handshake.Store(1) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { handshake.Store(2) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, c.url, nil)
	if err != nil {
		// The parse error quotes the URL, password and all.
		return false, fmt.Sprintf("GET %s: not a URL that can be requested", c.shown)
	}
	req.Close = true
	req.Header.Set("User-Agent", "kube-vrrp-probe")
	var tlsConfig *tls.Config
	if c.https != nil {
		cfg, token, err := c.https.load()
		if err != nil {
			return false, fmt.Sprintf("GET %s: %v", c.shown, err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		tlsConfig = cfg
	}
	resp, err := c.client(tlsConfig).Do(req)
	if err != nil {
		if ctx.Err() != nil && handshake.Load() == 1 {
			return false, fmt.Sprintf("GET %s: no complete answer within the timeout: the TLS handshake did not complete", c.shown)
		}
		return false, c.failure(ctx, err)
	}
	defer resp.Body.Close()

	if !c.statusOK(resp.StatusCode) {
		want := "2xx or 3xx"
		if c.expected != 0 {
			want = fmt.Sprint(c.expected)
		}
		return false, fmt.Sprintf("GET %s: status %d, want %s", c.shown, resp.StatusCode, want)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBodyBytes+1))
	switch {
	case err != nil:
		return false, c.failure(ctx, fmt.Errorf("read body: %w", err))
	case n > MaxBodyBytes:
		return false, fmt.Sprintf("GET %s: the body is longer than %d KiB; point the probe at a small health endpoint", c.shown, MaxBodyBytes>>10)
	}
	return true, fmt.Sprintf("GET %s: status %d", c.shown, resp.StatusCode)
}

func (c *httpChecker) statusOK(code int) bool {
	if c.expected != 0 {
		return code == c.expected
	}
	return code >= 200 && code < 400
}

func (c *httpChecker) failure(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("GET %s: no complete answer within the timeout", c.shown)
	}
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		err = uerr.Err // it repeats the method and URL
	}
	if verr, ok := errors.AsType[*tls.CertificateVerificationError](err); ok && c.https != nil {
		hint := ""
		if _, ok := errors.AsType[x509.HostnameError](verr.Err); ok {
			hint = "; give the probe a server name that the certificate names"
		}
		return fmt.Sprintf("GET %s: certificate verification failed: %v (%s%s)", c.shown, verr.Err, c.https.verifiedAgainst(), hint)
	}
	// The transport reports a connection closed before any answer as io.EOF or, when it
	// cannot tell that from a stale pooled connection, as "server closed idle connection".
	if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "server closed idle connection") {
		return fmt.Sprintf("GET %s: the server closed the connection without an answer", c.shown)
	}
	return fmt.Sprintf("GET %s: %v", c.shown, err)
}
