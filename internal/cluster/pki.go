package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// AdminUser and AdminGroup name the admin client certificate's subject. system:masters is
// authorised for everything, impersonation included.
const (
	AdminUser  = "kube-vrrp-lab-admin"
	AdminGroup = "system:masters"
)

// KubeletAPIUser is the API server's identity towards the kubelets.
const KubeletAPIUser = "kube-apiserver-kubelet-client"

// pki holds the PEM files of a control plane. Every key is ECDSA P-256: generated in
// microseconds and accepted everywhere (TLS, client certificates, ES256 ServiceAccount
// tokens).
type pki struct {
	caCert                      *x509.Certificate
	caSigner                    *ecdsa.PrivateKey
	ca, caKey                   []byte
	serving, servingKey         []byte
	admin, adminKey             []byte
	kubeletClient, kubeletKey   []byte
	serviceAccountKey, saPublic []byte
}

// newPKI generates the CA, a serving certificate for ips and dnsNames, an admin client
// certificate, and the ServiceAccount signing key.
func newPKI(ips []netip.Addr, dnsNames []string) (*pki, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kube-vrrp-lab-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &pki{ca: pemBlock("CERTIFICATE", caDER), caCert: caCert, caSigner: caKey}
	if p.caKey, err = keyPEM(caKey); err != nil {
		return nil, err
	}
	leaf := p.leaf
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
	}
	for _, ip := range ips {
		serving.IPAddresses = append(serving.IPAddresses, net.IP(ip.AsSlice()))
	}
	if p.serving, p.servingKey, err = leaf(serving); err != nil {
		return nil, err
	}
	if p.admin, p.adminKey, err = p.client(AdminUser, AdminGroup); err != nil {
		return nil, err
	}
	// The API server's client certificate towards the kubelets (logs, exec, port-forward):
	// no group; the kubelets authorise it by RBAC (KubeletAPIUser, bound to
	// system:kubelet-api-admin by StartNodes).
	if p.kubeletClient, p.kubeletKey, err = p.client(KubeletAPIUser); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if p.serviceAccountKey, err = keyPEM(saKey); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	p.saPublic = pemBlock("PUBLIC KEY", pub)
	return p, nil
}

// leaf issues a certificate of tmpl (its subject and usages) signed by the CA, with a new key.
func (p *pki) leaf(tmpl *x509.Certificate) (cert, key []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(7 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caSigner)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	kp, err := keyPEM(k)
	return pemBlock("CERTIFICATE", der), kp, err
}

// client issues a client certificate for user in groups (the API server reads the user from
// the common name and the groups from the organizations).
func (p *pki) client(user string, groups ...string) (cert, key []byte, err error) {
	return p.leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// write stores the files the API server reads under dir and returns their paths by name.
func (p *pki) write(dir string) (map[string]string, error) {
	files := map[string][]byte{
		"ca.crt":             p.ca,
		"apiserver.crt":      p.serving,
		"apiserver.key":      p.servingKey,
		"sa.key":             p.serviceAccountKey,
		"sa.pub":             p.saPublic,
		"kubelet-client.crt": p.kubeletClient,
		"kubelet-client.key": p.kubeletKey,
	}
	paths := map[string]string{}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
		paths[name] = path
	}
	return paths, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}
