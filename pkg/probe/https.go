package probe

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"slices"
)

// The largest files an https probe reads: a PEM file (CA bundle, client certificate, key) and
// a bearer token. A larger file fails the check, so that a path naming the wrong file (a log,
// /dev/zero) costs at most this much per check.
const (
	maxPEMFileBytes   = 1 << 20
	maxTokenFileBytes = 16 << 10
)

// HTTPSOptions are the TLS settings and credentials of an http probe with an https:// URL, for
// a probe of a server that wants them, such as kube-apiserver.
//
// The files are read at every check and parsed again when their content changed, so that a
// rotated CA bundle, client certificate or token is used from the next check on without a
// restart. A file that is missing, larger than its bound or malformed fails the check with a
// message naming its path; the messages never carry a file's content. Whatever the options,
// the probe speaks at least TLS 1.2.
type HTTPSOptions struct {
	// CAFile is the path of a PEM bundle of CA certificates (at most 1 MiB). The server's
	// certificate is verified against them instead of the system's roots.
	CAFile string
	// CertFile is the path of a PEM client certificate, optionally followed by its
	// intermediates (at most 1 MiB), sent to a server that asks for one. It needs KeyFile.
	CertFile string
	// KeyFile is the path of the PEM private key of CertFile (at most 1 MiB). It may be the
	// same file as CertFile when that holds both, as the kubelet's kubelet-client-current.pem.
	KeyFile string
	// BearerTokenFile is the path of a file holding a token (at most 16 KiB, white space
	// around it ignored), sent as "Authorization: Bearer <token>".
	BearerTokenFile string
	// ServerName, if set, replaces the URL's host as the name sent in SNI and the name (DNS
	// name or IP address) the server's certificate must be valid for.
	ServerName string
	// InsecureSkipVerify accepts whatever certificate the server presents: it then proves
	// nothing of its identity, and a token or client certificate goes to whoever answers. It
	// is never implied; it excludes CAFile.
	InsecureSkipVerify bool
}

// validate reports everything wrong with o as the options of a probe of rawURL.
func (o HTTPSOptions) validate(rawURL string) []error {
	var errs []error
	file := func(what, p string) {
		if p == "" {
			return
		}
		if err := CheckCredentialFile(p); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", what, p, err))
		}
	}
	file("CA file", o.CAFile)
	file("client certificate file", o.CertFile)
	file("client key file", o.KeyFile)
	file("bearer token file", o.BearerTokenFile)
	if o.ServerName != "" {
		if err := CheckServerName(o.ServerName); err != nil {
			errs = append(errs, fmt.Errorf("server name %q: %w", o.ServerName, err))
		}
	}
	if err := CheckHTTPS(rawURL, o); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// httpsSource makes the TLS configuration and the token of each check of an https probe from
// its options, reading their files every time and parsing them again only when their content
// changed. It serves one probe, whose checks never overlap.
type httpsSource struct {
	opts  HTTPSOptions
	roots parsed[*x509.CertPool]
	pair  parsed[*tls.Certificate]
	token parsed[string]
}

// load returns the TLS configuration of a check and its bearer token ("" for none).
func (s *httpsSource) load() (*tls.Config, string, error) {
	o := s.opts
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify,
	}
	if o.CAFile != "" {
		raw, err := readBounded(o.CAFile, "CA file", maxPEMFileBytes, "give a PEM bundle of CA certificates")
		if err != nil {
			return nil, "", err
		}
		if cfg.RootCAs, err = s.roots.get(func() (*x509.CertPool, error) { return parseRoots(o.CAFile, raw) }, raw); err != nil {
			return nil, "", err
		}
	}
	if o.CertFile != "" || o.KeyFile != "" {
		certPEM, err := readBounded(o.CertFile, "client certificate file", maxPEMFileBytes, "give a PEM certificate")
		if err != nil {
			return nil, "", err
		}
		keyPEM, err := readBounded(o.KeyFile, "client key file", maxPEMFileBytes, "give a PEM private key")
		if err != nil {
			return nil, "", err
		}
		cert, err := s.pair.get(func() (*tls.Certificate, error) {
			c, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				// X509KeyPair's errors name what is wrong, never the key's bytes.
				return nil, fmt.Errorf("the client certificate file %s and key file %s: %v", o.CertFile, o.KeyFile, err)
			}
			return &c, nil
		}, certPEM, keyPEM)
		if err != nil {
			return nil, "", err
		}
		// Sent whatever CAs the server says it accepts: a server that refuses it says so,
		// where a certificate left out for not matching its list would leave the failure
		// unexplained.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	var token string
	if o.BearerTokenFile != "" {
		raw, err := readBounded(o.BearerTokenFile, "bearer token file", maxTokenFileBytes, "give the token alone")
		if err != nil {
			return nil, "", err
		}
		if token, err = s.token.get(func() (string, error) { return parseToken(o.BearerTokenFile, raw) }, raw); err != nil {
			return nil, "", err
		}
	}
	return cfg, token, nil
}

// verifiedAgainst says what the server's certificate was verified against, for a failure's message.
func (s *httpsSource) verifiedAgainst() string {
	if s.opts.CAFile != "" {
		return "verified against the CA file " + s.opts.CAFile
	}
	return "verified against the system's roots; give the probe a CA file for a private CA"
}

// parsed is what was parsed from some files' last content, kept until the content changes.
type parsed[T any] struct {
	raw [][]byte // nil: nothing kept
	val T
}

// get returns the value parsed from raw, calling parse when raw differs from the last content.
func (p *parsed[T]) get(parse func() (T, error), raw ...[]byte) (T, error) {
	if p.raw != nil && slices.EqualFunc(p.raw, raw, bytes.Equal) {
		return p.val, nil
	}
	v, err := parse()
	if err != nil {
		var zero T
		p.raw, p.val = nil, zero
		return zero, err
	}
	p.raw, p.val = raw, v
	return v, nil
}

// readBounded reads the regular file at path, refusing one longer than limit. what names the
// file in errors, hint says what it should hold.
func readBounded(path, what string, limit int64, hint string) ([]byte, error) {
	// Stat first: opening a FIFO would wait for a writer.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read the %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the %s %s is not a regular file; %s", what, path, hint)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the %s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the %s: %w", what, err)
	case int64(len(b)) > limit:
		return nil, fmt.Errorf("the %s %s is larger than %s; %s", what, path, sizeText(limit), hint)
	}
	return b, nil
}

// sizeText writes a limit of whole KiB or MiB.
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// parseRoots returns the certificates of the PEM bundle b, read from path; blocks of other
// types are skipped. A bundle without a certificate, or with one that does not parse, is an
// error: AppendCertsFromPEM would skip a bad certificate silently.
func parseRoots(path string, b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the CA file %s: certificate %d: %v", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("the CA file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----); give a PEM bundle of CA certificates", path)
	}
	return pool, nil
}

// parseToken returns the token of b, read from path: its content without the white space
// around it, one run of visible ASCII characters (what a header can carry). Errors never
// quote it.
func parseToken(path string, b []byte) (string, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return "", fmt.Errorf("the bearer token file %s is empty", path)
	}
	for _, c := range t {
		if c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("the bearer token file %s holds white space or characters other than visible ASCII inside the token; give the token alone, on one line", path)
		}
	}
	return string(t), nil
}
