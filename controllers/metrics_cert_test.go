package controllers

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// The self-signed certificate serves TLS for its name, now, as a server certificate; its key
// is ECDSA (RSA-2048 keys took hundreds of ms on a loaded node, before the agent resumes the
// VIPs handed over to it).
func TestSelfSignedCert(t *testing.T) {
	cert, err := selfSignedCert("kube-vrrp-agent.kube-vrrp.svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("key %T, want ECDSA", cert.PrivateKey)
	}
	leaf := cert.Leaf
	now := time.Now()
	switch {
	case leaf == nil:
		t.Fatal("no parsed leaf")
	case now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) || leaf.NotAfter.Sub(now) < 300*24*time.Hour:
		t.Errorf("valid %s to %s, want from now for about a year", leaf.NotBefore, leaf.NotAfter)
	case leaf.IsCA:
		t.Error("the serving certificate is a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "kube-vrrp-agent.kube-vrrp.svc", Roots: pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("verify as a server certificate for its name: %v", err)
	}

	// A TLS handshake with it, as a scraper that trusts it would make.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: pool, ServerName: "kube-vrrp-agent.kube-vrrp.svc"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	_ = c.Close()

	if other, err := selfSignedCert(""); err != nil || other.Leaf.Subject.CommonName != "kube-vrrp-agent" ||
		other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Errorf("default name or serial: %v, %v", other.Leaf.Subject.CommonName, err)
	}
}

func BenchmarkSelfSignedCert(b *testing.B) {
	for b.Loop() {
		if _, err := selfSignedCert("kube-vrrp-agent"); err != nil {
			b.Fatal(err)
		}
	}
}
