package staticpod

import (
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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// hang makes the stand-in API server accept a request and never answer it.
const hang = -1

// apiServer is a stand-in for kube-apiserver's /readyz behind a certificate like kubeadm's:
// signed by the cluster CA, for the name "kubernetes" and not for 127.0.0.1.
func apiServer(t *testing.T, status *atomic.Int32) (addr, caFile string, srv *httptest.Server) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:  []string{"kubernetes", "kubernetes.default"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		code := int(status.Load())
		if code == hang {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(code)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake of the test without server name
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), caFile, srv
}

// runProbe runs the probe of spec as the agent does and returns its transitions.
func runProbe(t *testing.T, ps v1alpha1.ProbeSpec) <-chan probe.Result {
	t.Helper()
	vip := v1alpha1.VirtualIP{Spec: v1alpha1.VirtualIPSpec{Probes: []v1alpha1.ProbeSpec{ps}}}
	specs, err := desired.Probes(&vip)
	if err != nil {
		t.Fatal(err)
	}
	r, err := probe.New(specs, probe.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(t.Context()) }()
	return r.Results()
}

func next(t *testing.T, results <-chan probe.Result, within time.Duration) probe.Result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(within):
		t.Fatalf("no probe result within %s", within)
		return probe.Result{}
	}
}

// The API server probe, run by the real probe code against a server with kubeadm's kind of
// certificate: ready is healthy (the server name, not 127.0.0.1, is verified), and a server
// that stops being ready, then dies, is failing within DetectWithin (with slack for a loaded
// machine), and so is one that hangs. Without the server name the certificate does not verify.
func TestAPIServerProbeReal(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	addr, caFile, srv := apiServer(t, &status)

	results := runProbe(t, APIServerProbe(addr, caFile, DefaultServerName))
	if r := next(t, results, 5*time.Second); !r.Healthy {
		t.Fatalf("ready API server: probe failing: %s", r.Reason)
	}

	const slack = 500 * time.Millisecond
	for _, fault := range []struct {
		name  string
		do    func()
		heal  func()
		match string
	}{
		{"not ready", func() { status.Store(http.StatusInternalServerError) }, func() { status.Store(http.StatusOK) }, "500"},
		{"hung", func() { status.Store(hang) }, func() { status.Store(http.StatusOK) }, "timeout"},
		{"dead", func() { srv.Listener.Close(); srv.CloseClientConnections() }, nil, ""},
	} {
		start := time.Now()
		fault.do()
		r := next(t, results, DetectWithin+slack+time.Second)
		took := time.Since(start)
		if r.Healthy {
			t.Fatalf("%s: probe became healthy", fault.name)
		}
		if !strings.Contains(r.Reason, fault.match) {
			t.Errorf("%s: reason %q lacks %q", fault.name, r.Reason, fault.match)
		}
		t.Logf("%s: probe failing after %s (%s)", fault.name, took.Round(time.Millisecond), r.Reason)
		if took > DetectWithin+slack {
			t.Errorf("%s: probe failing after %s, want within %s (+%s slack)", fault.name, took, DetectWithin, slack)
		}
		if fault.heal != nil {
			fault.heal()
			if r := next(t, results, 5*time.Second); !r.Healthy {
				t.Fatalf("%s healed: probe failing: %s", fault.name, r.Reason)
			}
		}
	}

	var ok atomic.Int32
	ok.Store(http.StatusOK)
	addr2, caFile2, _ := apiServer(t, &ok)
	noName := APIServerProbe(addr2, caFile2, "")
	noName.HTTP.TLS.ServerName = ""
	if r := next(t, runProbe(t, noName), 5*time.Second); r.Healthy || !strings.Contains(r.Reason, "certificate") {
		t.Errorf("without the server name: healthy %v, reason %q; want a certificate failure", r.Healthy, r.Reason)
	}
}
