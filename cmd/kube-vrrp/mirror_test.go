package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// TestParseRunKubeconfig: --kubeconfig is optional (no API server at all without it), and is
// not one of the manifests.
func TestParseRunKubeconfig(t *testing.T) {
	o, err := parseRunFlags([]string{"-f", "vip.yaml", "--node", "cp1"}, io.Discard)
	if err != nil || o.kubeconfig != "" {
		t.Errorf("without --kubeconfig: %q, %v", o.kubeconfig, err)
	}
	o, err = parseRunFlags([]string{"-f", "vip.yaml", "--node", "cp1", "--kubeconfig", "/etc/kube-vrrp/kubeconfig"}, io.Discard)
	if err != nil || o.kubeconfig != "/etc/kube-vrrp/kubeconfig" {
		t.Errorf("--kubeconfig: %q, %v", o.kubeconfig, err)
	}
	_, err = parseRunFlags([]string{"-f", "vip.yaml", "--node", "cp1", "--kubeconfig", "vip.yaml"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig vip.yaml is also given with -f") {
		t.Errorf("--kubeconfig naming a manifest: %v", err)
	}
}

// clientCert returns a PEM client certificate of common name cn (self-signed: only its subject
// is read).
func clientCert(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"kube-vrrp:control-plane"}},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestCheckNodeCredential: a control-plane certificate of another node is refused before any
// request (the policy would refuse each write); this node's, and any other credential, go on.
func TestCheckNodeCredential(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cp2.crt")
	if err := os.WriteFile(certFile, clientCert(t, "kube-vrrp:node:cp2"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
		want string
	}{
		{"own", &rest.Config{TLSClientConfig: rest.TLSClientConfig{CertData: clientCert(t, "kube-vrrp:node:cp1")}}, ""},
		{"token", &rest.Config{BearerToken: "x"}, ""},
		{"another user", &rest.Config{TLSClientConfig: rest.TLSClientConfig{CertData: clientCert(t, "admin")}}, ""},
		{"another node's", &rest.Config{TLSClientConfig: rest.TLSClientConfig{CertData: clientCert(t, "kube-vrrp:node:cp2")}},
			`the client certificate is node "cp2"'s (kube-vrrp:node:cp2), not this node's (--node cp1)`},
		{"another node's file", &rest.Config{TLSClientConfig: rest.TLSClientConfig{CertFile: certFile}}, `node "cp2"'s`},
		{"a prefix of the name", &rest.Config{TLSClientConfig: rest.TLSClientConfig{CertData: clientCert(t, "kube-vrrp:node:cp")}}, `node "cp"'s`},
		{"not PEM", &rest.Config{TLSClientConfig: rest.TLSClientConfig{CertData: []byte("junk")}}, "not PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkNodeCredential(tc.cfg, "cp1")
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("checkNodeCredential = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestClusterView: the status controllers of run see only the VirtualIPs run runs, and of those
// only the ones whose copy in the cluster takes this node in; each case is logged once, again
// when the spec changes.
func TestClusterView(t *testing.T) {
	sch, err := scheme()
	if err != nil {
		t.Fatal(err)
	}
	vipOf := func(name string, gen int64, vrid int32, addr string, nodes ...string) *v1alpha1.VirtualIP {
		v := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: gen},
			Spec: v1alpha1.VirtualIPSpec{VRID: vrid, Addresses: []string{addr}}}
		for _, n := range nodes {
			v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: n})
		}
		return v
	}
	files := map[string]*v1alpha1.VirtualIP{
		"cp":      vipOf("cp", 0, 51, "198.18.0.100/24", "cp1"),
		"other":   vipOf("other", 0, 52, "198.18.0.101/24", "cp1"),
		"differs": vipOf("differs", 0, 53, "198.18.0.102/24", "cp1"),
		"absent":  vipOf("absent", 0, 54, "198.18.0.103/24", "cp1"),
		"same":    vipOf("same", 0, 55, "198.18.0.104/24", "cp1"),
	}
	objs := []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1"}},
		vipOf("cp", 1, 51, "198.18.0.100/24", "cp1", "cp2", "cp3"),
		vipOf("other", 1, 52, "198.18.0.101/24", "cp2"),        // does not take cp1 in
		vipOf("differs", 1, 63, "198.18.0.102/24", "cp1"),      // another VRID
		vipOf("same", 1, 55, "198.18.0.104/24", "cp1"),         // the same
		vipOf("not-in-files", 1, 56, "198.18.0.105/24", "cp1"), // the DaemonSet's, say
	}
	c := fake.NewClientBuilder().WithScheme(sch).WithObjects(objs...).Build()
	var logs bytes.Buffer
	view := &clusterView{Client: c, node: "cp1", files: files, log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx := context.Background()
	get := func(name string) error {
		return view.Get(ctx, client.ObjectKey{Name: name}, &v1alpha1.VirtualIP{})
	}
	for range 3 {
		for name, found := range map[string]bool{"cp": true, "differs": true, "same": true, "other": false, "absent": false, "not-in-files": false} {
			if err := get(name); found && err != nil || !found && !apierrors.IsNotFound(err) {
				t.Errorf("Get %s: %v, want found %v", name, err, found)
			}
		}
	}
	// Other kinds are read as they are.
	if err := view.Get(ctx, client.ObjectKey{Name: "cp1"}, &corev1.Node{}); err != nil {
		t.Error(err)
	}
	for _, want := range []string{
		`level=INFO msg="mirroring the status of the VirtualIP to the cluster" vip=cp node=cp1`,
		`level=WARN msg="the VirtualIP in the cluster does not take in this node`,
		`vip=other`,
		`level=WARN msg="the VirtualIP in the cluster has another VRID or other addresses than the file`,
		`clusterVRID=63 fileVRID=53`,
		`level=INFO msg="no VirtualIP of this name in the cluster`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "\n"); n != 5 {
		t.Errorf("%d log lines, want one per VirtualIP run runs:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "not-in-files") {
		t.Errorf("a VirtualIP run does not run is logged:\n%s", logs.String())
	}

	// The copy in the cluster now takes cp1 in: mirrored, and said so.
	var other v1alpha1.VirtualIP
	if err := c.Get(ctx, client.ObjectKey{Name: "other"}, &other); err != nil {
		t.Fatal(err)
	}
	other.Spec.Nodes = append(other.Spec.Nodes, v1alpha1.NodeOverride{Name: "cp1"})
	other.Generation = 2
	if err := c.Update(ctx, &other); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if err := get("other"); err != nil {
		t.Errorf("Get other, which takes cp1 in now: %v", err)
	}
	if !strings.Contains(logs.String(), `msg="mirroring the status of the VirtualIP to the cluster" vip=other`) {
		t.Errorf("log:\n%s", logs.String())
	}

	// Without this node's Node, nothing is mirrored.
	if err := c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1"}}); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if err := get("cp"); !apierrors.IsNotFound(err) {
		t.Errorf("Get cp without the Node cp1: %v, want not found", err)
	}
	if !strings.Contains(logs.String(), "no Node of this node's name in the cluster") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// TestReadOnlyAgent: what the status controllers get of the agent cannot configure it.
func TestReadOnlyAgent(t *testing.T) {
	var a readOnlyAgent
	if err := a.Apply("cp", vrrp.Config{}); err == nil || !strings.Contains(err.Error(), "only the files configure VRRP") {
		t.Errorf("Apply = %v", err)
	}
	a.Remove("cp") // does nothing, and does not touch the (nil) agent
}

// TestSameAddresses compares address lists as the API server keeps them apart.
func TestSameAddresses(t *testing.T) {
	for _, tc := range []struct {
		a, b []string
		want bool
	}{
		{[]string{"198.18.0.1/24", "198.18.0.2"}, []string{"198.18.0.2/32", "198.18.0.1/24"}, true},
		{[]string{"198.18.0.1/24"}, []string{"198.18.0.1/25"}, false},
		{[]string{"2001:db8::1"}, []string{"2001:db8::1/128"}, true},
		{[]string{"198.18.0.1"}, []string{"198.18.0.1", "198.18.0.2"}, false},
	} {
		if got := sameAddresses(tc.a, tc.b); got != tc.want {
			t.Errorf("sameAddresses(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}

// TestWaitFileChanged: a changed kubeconfig (a renewed certificate) or one removed ends the
// mirror's manager, which starts again with it; an unchanged one does not.
func TestWaitFileChanged(t *testing.T) {
	name := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(name, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	was, err := fileDigest(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := waitFileChanged(ctx, name, was, 5*time.Millisecond); err != nil {
		t.Errorf("unchanged: %v", err)
	}
	if err := os.WriteFile(name, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := waitFileChanged(context.Background(), name, was, 5*time.Millisecond); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("changed: %v", err)
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	if err := waitFileChanged(context.Background(), name, was, 5*time.Millisecond); err == nil {
		t.Error("removed: no error")
	}
}
