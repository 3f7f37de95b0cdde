package probe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var certSerial atomic.Int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(certSerial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate of ca for names (IP addresses or DNS names), for a client or a
// server, and its certificate and key as PEM.
func (ca *testCA) issue(t *testing.T, client bool, names ...string) (cert tls.Certificate, certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(certSerial.Add(1)),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, keyPEM
}

// writeFile writes b to a new file name in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceFile replaces the file at p by one holding b, as a rotation does (write, rename).
func replaceFile(t *testing.T, p string, b []byte) {
	t.Helper()
	tmp := p + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// tlsServer serves h over TLS with cfg on 127.0.0.1, HTTP/1.1, until the test ends.
func tlsServer(t *testing.T, cfg *tls.Config, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes the tests make fail
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// httpsCheck runs one check of c within timeout and returns its verdict and how long it took.
func httpsCheck(t *testing.T, c *httpChecker, timeout time.Duration) (ok bool, reason string, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	ok, reason = c.check(ctx)
	return ok, reason, time.Since(start)
}

// wantCheck runs one check of c and fails the test unless it reports ok with a reason holding
// one of the |-separated substrings of want, within httpTimeout and a margin, with none of
// secrets in its reason.
func wantCheck(t *testing.T, c *httpChecker, ok bool, want string, secrets ...string) {
	t.Helper()
	got, reason, took := httpsCheck(t, c, httpTimeout)
	t.Logf("%t %q after %v", got, reason, took)
	if got != ok || !slices.ContainsFunc(strings.Split(want, "|"), func(s string) bool { return strings.Contains(reason, s) }) {
		t.Errorf("check() = %t, %q; want %t and a reason containing %q", got, reason, ok, want)
	}
	if took > httpTimeout+time.Second {
		t.Errorf("the check took %v, want about the %v timeout at most", took, httpTimeout)
	}
	for _, s := range secrets {
		if strings.Contains(reason, s) {
			t.Errorf("the reason %q carries a secret", reason)
		}
	}
}

// The server's certificate is verified against the CA file, under the server name if given.
func TestHTTPSVerify(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", ca.pem)
	const secret = "s3cr3t-token-verify"
	tokenFile := writeFile(t, dir, "token", []byte(secret+"\n"))

	serve := func(ca *testCA, names ...string) string {
		cert, _, _ := ca.issue(t, false, names...)
		return tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor != 1 {
				t.Errorf("request over %s, want HTTP/1.1", r.Proto)
			}
		}).URL + "/healthz"
	}
	good := serve(ca, "127.0.0.1")
	foreign := serve(other, "127.0.0.1")
	named := serve(ca, "apiserver.test")

	tests := []struct {
		name string
		url  string
		opts HTTPSOptions
		ok   bool
		want string
	}{
		{"the CA", good, HTTPSOptions{CAFile: caFile}, true, "status 200"},
		{"the CA and a token", good, HTTPSOptions{CAFile: caFile, BearerTokenFile: tokenFile}, true, "status 200"},
		{"another CA", foreign, HTTPSOptions{CAFile: caFile, BearerTokenFile: tokenFile}, false,
			"certificate verification failed: x509: certificate signed by unknown authority (verified against the CA file " + caFile + ")"},
		{"the system's roots", good, HTTPSOptions{}, false, "certificate verification failed: x509: certificate signed by unknown authority (verified against the system's roots"},
		{"server name", named, HTTPSOptions{CAFile: caFile, ServerName: "apiserver.test"}, true, "status 200"},
		{"the URL's host", named, HTTPSOptions{CAFile: caFile}, false, "certificate verification failed: x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs (verified against the CA file " + caFile + "; give the probe a server name that the certificate names)"},
		{"wrong server name", good, HTTPSOptions{CAFile: caFile, ServerName: "apiserver.test"}, false, "certificate verification failed: x509: certificate is not valid for any names, but wanted to match apiserver.test"},
		{"insecure", foreign, HTTPSOptions{InsecureSkipVerify: true}, true, "status 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCheck(t, newHTTPChecker(Spec{URL: tt.url, HTTPS: tt.opts}), tt.ok, tt.want, secret)
		})
	}
}

// Servers that misbehave over TLS fail the check within its timeout, with a bounded read.
func TestHTTPSMisbehavingServers(t *testing.T) {
	const maxRead = 128 << 10 // MaxBodyBytes or maxHeaderBytes, plus buffers
	ca := newTestCA(t, "ca")
	caFile := writeFile(t, t.TempDir(), "ca.crt", ca.pem)
	cert, _, _ := ca.issue(t, false, "127.0.0.1")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}

	garbage := []byte(strings.Repeat("\x00\xffgarbage", 512))
	tests := []struct {
		name string
		// maxVersion, if set, is the server's highest TLS version; without tls the server
		// reads the ClientHello and never answers it.
		maxVersion uint16
		tls        bool
		handle     func(net.Conn) // after the handshake
		reason     string         // one of these, |-separated
	}{
		{"never completes the handshake", 0, false, nil,
			"no complete answer within the timeout: the TLS handshake did not complete"},
		{"hangs after the handshake", 0, true, func(c net.Conn) {
			readRequest(c)
			c.Read(make([]byte, 1)) // until the probe goes away
		}, "no complete answer within the timeout"},
		{"answers 500", 0, true, func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 6\r\n\r\nbroken"))
		}, "status 500, want 2xx or 3xx"},
		{"endless body", 0, true, func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")) // no length: until close
			writeForever(c, garbage)
		}, "the body is longer than 64 KiB|no complete answer within the timeout"},
		{"endless headers", 0, true, func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\n"))
			writeForever(c, []byte("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"))
		}, "exceeded"},
		{"TLS 1.1 at most", tls.VersionTLS11, true, func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		}, "protocol version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var handshakes atomic.Int32
			url := "https" + strings.TrimPrefix(rawServer(t, func(c net.Conn) {
				if !tt.tls {
					io.Copy(io.Discard, c) // the ClientHello, then nothing until the probe goes away
					return
				}
				cfg := serverTLS.Clone()
				if tt.maxVersion != 0 {
					cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tt.maxVersion
				}
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				handshakes.Add(1)
				tt.handle(tc)
			}), "http")
			var n atomic.Int64
			dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countConn{c, &n}, nil
			}
			c := newHTTPCheckerDial(Spec{URL: url, HTTPS: HTTPSOptions{CAFile: caFile}}, dial)
			wantCheck(t, c, false, tt.reason)
			// The server saw the handshake through where it was meant to, so the failure
			// is the one the case is about.
			if got, want := handshakes.Load() > 0, tt.tls && tt.maxVersion == 0; got != want {
				t.Errorf("handshake completed: %t, want %t", got, want)
			}
			if read := n.Load(); read > maxRead {
				t.Errorf("the check read %d bytes, want at most %d", read, maxRead)
			}
		})
	}
}

// A server that requires a client certificate accepts the probe's, also after it is rotated.
func TestHTTPSClientCertificate(t *testing.T) {
	ca, clientCA, other := newTestCA(t, "ca"), newTestCA(t, "client-ca"), newTestCA(t, "other")
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", ca.pem)
	serverCert, _, _ := ca.issue(t, false, "127.0.0.1")
	clients := x509.NewCertPool()
	clients.AddCert(clientCA.cert)
	srv := tlsServer(t, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
	}, func(w http.ResponseWriter, r *http.Request) {})

	_, certPEM, keyPEM := clientCA.issue(t, true, "kube-vrrp")
	certFile := writeFile(t, dir, "client.crt", certPEM)
	keyFile := writeFile(t, dir, "client.key", keyPEM)
	bothFile := writeFile(t, dir, "client.pem", append(slices.Clone(certPEM), keyPEM...))

	probe := func(o HTTPSOptions) *httpChecker {
		o.CAFile = caFile
		return newHTTPChecker(Spec{URL: srv.URL, HTTPS: o})
	}
	t.Run("no certificate", func(t *testing.T) {
		wantCheck(t, probe(HTTPSOptions{}), false, "certificate required|bad certificate", string(keyPEM))
	})
	t.Run("certificate", func(t *testing.T) {
		wantCheck(t, probe(HTTPSOptions{CertFile: certFile, KeyFile: keyFile}), true, "status 200")
	})
	t.Run("one file", func(t *testing.T) {
		wantCheck(t, probe(HTTPSOptions{CertFile: bothFile, KeyFile: bothFile}), true, "status 200")
	})
	t.Run("rotated", func(t *testing.T) {
		dir := t.TempDir()
		certFile := writeFile(t, dir, "client.crt", certPEM)
		keyFile := writeFile(t, dir, "client.key", keyPEM)
		c := probe(HTTPSOptions{CertFile: certFile, KeyFile: keyFile})
		wantCheck(t, c, true, "status 200")
		// A certificate of a CA the server does not trust, then one it does.
		_, otherCert, otherKey := other.issue(t, true, "kube-vrrp")
		replaceFile(t, certFile, otherCert)
		replaceFile(t, keyFile, otherKey)
		wantCheck(t, c, false, "unknown certificate authority|bad certificate", string(otherKey))
		_, newCert, newKey := clientCA.issue(t, true, "kube-vrrp")
		replaceFile(t, certFile, newCert)
		replaceFile(t, keyFile, newKey)
		wantCheck(t, c, true, "status 200")
	})
}

// The bearer token goes to the server, never into a message, and a rotated token is sent from
// the next check on.
func TestHTTPSBearerToken(t *testing.T) {
	ca := newTestCA(t, "ca")
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", ca.pem)
	cert, _, _ := ca.issue(t, false, "127.0.0.1")
	const (
		first  = "s3cr3t-first-eyJhbGciOiJSUzI1NiJ9.x_y-z"
		second = "s3cr3t-second-eyJhbGciOiJSUzI1NiJ9.a_b-c"
	)
	var want atomic.Pointer[string]
	want.Store(new(first))
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+*want.Load() {
			// As kube-apiserver, and echoing the header, as a careless server might.
			http.Error(w, "Unauthorized: "+r.Header.Get("Authorization"), http.StatusUnauthorized)
		}
	})
	tokenFile := writeFile(t, dir, "token", []byte(first+"\n"))
	c := newHTTPChecker(Spec{URL: srv.URL + "/readyz", HTTPS: HTTPSOptions{CAFile: caFile, BearerTokenFile: tokenFile}})

	wantCheck(t, c, true, "status 200")
	want.Store(new(second))
	wantCheck(t, c, false, "status 401, want 2xx or 3xx", "s3cr3t")
	// Written in place, the same length: the content tells the change.
	if err := os.WriteFile(tokenFile, []byte(strings.Replace(second, "second", "secnod", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCheck(t, c, false, "status 401", "s3cr3t")
	replaceFile(t, tokenFile, []byte(second))
	wantCheck(t, c, true, "status 200")

	// No token: the server says 401.
	wantCheck(t, newHTTPChecker(Spec{URL: srv.URL, HTTPS: HTTPSOptions{CAFile: caFile}}), false, "status 401")
}

// A rotated CA file is used from the next check on, whether it is replaced or rewritten.
func TestHTTPSRotatedCA(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old"), newTestCA(t, "new")
	cert, _, _ := newCA.issue(t, false, "127.0.0.1")
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(w http.ResponseWriter, r *http.Request) {})
	caFile := writeFile(t, t.TempDir(), "ca.crt", oldCA.pem)
	c := newHTTPChecker(Spec{URL: srv.URL, HTTPS: HTTPSOptions{CAFile: caFile}})

	wantCheck(t, c, false, "certificate verification failed")
	replaceFile(t, caFile, newCA.pem)
	wantCheck(t, c, true, "status 200")
	if err := os.WriteFile(caFile, oldCA.pem, 0o600); err != nil { // in place
		t.Fatal(err)
	}
	wantCheck(t, c, false, "certificate verification failed")
	// A bundle of both: the old CA and the new, as during a rotation.
	replaceFile(t, caFile, append(slices.Clone(oldCA.pem), newCA.pem...))
	wantCheck(t, c, true, "status 200")
}

// Files that are missing, too large or malformed fail the check with a message naming the file
// and what to give, never their content.
func TestHTTPSFileErrors(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert, certPEM, keyPEM := ca.issue(t, false, "127.0.0.1")
	_, _, otherKey := ca.issue(t, false, "127.0.0.1")
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(w http.ResponseWriter, r *http.Request) {})
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", ca.pem)
	const secret = "s3cr3t"
	big := writeFile(t, dir, "big.pem", append(slices.Clone(ca.pem), make([]byte, 1<<20)...))
	bigToken := writeFile(t, dir, "big-token", []byte(strings.Repeat(secret, 3000)))
	certFile := writeFile(t, dir, "tls.crt", certPEM)
	keyFile := writeFile(t, dir, "tls.key", keyPEM)
	otherKeyFile := writeFile(t, dir, "other.key", otherKey)
	notPEM := writeFile(t, dir, "not.pem", []byte(secret+" not PEM"))
	badCert := writeFile(t, dir, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(secret)}))
	twoTokens := writeFile(t, dir, "two-tokens", []byte(secret+"-a\n"+secret+"-b\n"))
	emptyToken := writeFile(t, dir, "empty-token", []byte(" \n"))
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name string
		opts HTTPSOptions
		want string
	}{
		{"missing CA", HTTPSOptions{CAFile: missing}, "read the CA file: stat " + missing + ": no such file or directory"},
		{"CA is a directory", HTTPSOptions{CAFile: dir}, "the CA file " + dir + " is not a regular file"},
		{"CA too large", HTTPSOptions{CAFile: big}, "the CA file " + big + " is larger than 1 MiB; give a PEM bundle of CA certificates"},
		{"CA not PEM", HTTPSOptions{CAFile: notPEM}, "the CA file " + notPEM + " holds no PEM certificate"},
		{"CA malformed", HTTPSOptions{CAFile: badCert}, "the CA file " + badCert + ": certificate 1: x509: malformed certificate"},
		{"key of another certificate", HTTPSOptions{CAFile: caFile, CertFile: certFile, KeyFile: otherKeyFile},
			"the client certificate file " + certFile + " and key file " + otherKeyFile + ": tls: private key does not match public key"},
		{"key not PEM", HTTPSOptions{CAFile: caFile, CertFile: certFile, KeyFile: notPEM}, "and key file " + notPEM + ": tls: failed to find any PEM data in key input"},
		{"certificate not PEM", HTTPSOptions{CAFile: caFile, CertFile: notPEM, KeyFile: keyFile}, "the client certificate file " + notPEM + " and key file " + keyFile + ": tls: failed to find any PEM data in certificate input"},
		{"key missing", HTTPSOptions{CAFile: caFile, CertFile: certFile, KeyFile: missing}, "read the client key file: stat " + missing},
		{"key too large", HTTPSOptions{CAFile: caFile, CertFile: certFile, KeyFile: big}, "the client key file " + big + " is larger than 1 MiB"},
		{"token too large", HTTPSOptions{CAFile: caFile, BearerTokenFile: bigToken}, "the bearer token file " + bigToken + " is larger than 16 KiB; give the token alone"},
		{"two tokens", HTTPSOptions{CAFile: caFile, BearerTokenFile: twoTokens}, "holds white space or characters other than visible ASCII inside the token"},
		{"empty token", HTTPSOptions{CAFile: caFile, BearerTokenFile: emptyToken}, "the bearer token file " + emptyToken + " is empty"},
		{"token missing", HTTPSOptions{CAFile: caFile, BearerTokenFile: missing}, "read the bearer token file: stat " + missing},
		{"token a directory", HTTPSOptions{CAFile: caFile, BearerTokenFile: dir}, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newHTTPChecker(Spec{URL: srv.URL, HTTPS: tt.opts})
			wantCheck(t, c, false, tt.want, secret, string(keyPEM), string(otherKey))
			// The same again, from the cache of what did parse.
			wantCheck(t, c, false, tt.want, secret)
		})
	}
	// Fixed, the same checker succeeds.
	t.Run("fixed", func(t *testing.T) {
		p := writeFile(t, t.TempDir(), "ca.crt", []byte("not yet"))
		c := newHTTPChecker(Spec{URL: srv.URL, HTTPS: HTTPSOptions{CAFile: p}})
		wantCheck(t, c, false, "holds no PEM certificate")
		replaceFile(t, p, ca.pem)
		wantCheck(t, c, true, "status 200")
	})
}

// Each https check opens its own connection and handshake: a pooled one would answer for the
// past, and with a CA of the past.
func TestHTTPSNoKeepAlive(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert, _, _ := ca.issue(t, false, "127.0.0.1")
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newHTTPChecker(Spec{URL: srv.URL, HTTPS: HTTPSOptions{CAFile: writeFile(t, t.TempDir(), "ca.crt", ca.pem)}})
	for range 3 {
		if ok, reason := c.check(t.Context()); !ok {
			t.Fatalf("check() = false, %q", reason)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 checks, want 3", n)
	}
}

// An https URL's password and query values never reach the messages either.
func TestHTTPSMessagesRedactPassword(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert, _, _ := ca.issue(t, false, "127.0.0.1")
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	caFile := writeFile(t, t.TempDir(), "ca.crt", ca.pem)
	u := strings.Replace(srv.URL, "https://", "https://admin:s3cr3t-pw@", 1) + "/healthz?token=s3cr3t-tok"
	for _, o := range []HTTPSOptions{{CAFile: caFile}, {}, {CAFile: filepath.Join(t.TempDir(), "missing")}} {
		wantCheck(t, newHTTPChecker(Spec{URL: u, HTTPS: o}), false, "GET https://admin:xxxxx@", "s3cr3t")
	}
}

// A Runner's https probe uses its Spec's HTTPS options.
func TestRunnerHTTPS(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert, _, _ := ca.issue(t, false, "127.0.0.1")
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(w http.ResponseWriter, _ *http.Request) {})
	r, err := New([]Spec{{
		Name: "apiserver", Kind: KindHTTP, URL: srv.URL + "/readyz",
		HTTPS:    HTTPSOptions{CAFile: writeFile(t, t.TempDir(), "ca.crt", ca.pem)},
		Interval: time.Minute, Timeout: httpTimeout,
	}}, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	if res := recv(t, r, 5*time.Second); !res.Healthy {
		t.Errorf("result %+v, want healthy", res)
	}
}

// A probe with a bearer token file sends nothing unless the agent enables token files: the
// author of a VirtualIP names the file and the server. Enabled, the token reaches the server.
func TestRunnerTokenFilesGate(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert, _, _ := ca.issue(t, false, "127.0.0.1")
	var requests, authorized atomic.Int32
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") == "Bearer gate-token" {
			authorized.Add(1)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	dir := t.TempDir()
	spec := Spec{
		Name: "apiserver", Kind: KindHTTP, URL: srv.URL + "/readyz",
		HTTPS:    HTTPSOptions{CAFile: writeFile(t, dir, "ca.crt", ca.pem), BearerTokenFile: writeFile(t, dir, "token", []byte("gate-token\n"))},
		Interval: time.Minute, Timeout: httpTimeout,
	}
	run := func(opts Options) Result {
		t.Helper()
		r, err := New([]Spec{spec}, opts, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		startRunner(t, r)
		return recv(t, r, 5*time.Second)
	}
	if res := run(Options{}); res.Healthy || res.Reason != TokenFilesDisabledReason {
		t.Errorf("token files off: %+v, want unhealthy: %s", res, TokenFilesDisabledReason)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("token files off: the server got %d requests, want none", n)
	}
	if res := run(Options{TokenFilesEnabled: true}); !res.Healthy {
		t.Errorf("token files on: %+v, want healthy", res)
	}
	if n := authorized.Load(); n != 1 {
		t.Errorf("token files on: %d requests with the token, want 1", n)
	}
}
