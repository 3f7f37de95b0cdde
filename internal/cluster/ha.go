package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// A control plane of several API servers, as kubeadm makes one with --control-plane-endpoint
// (docs/design.md §9.1): kube-apiserver on every control-plane node, reachable at the node's
// address and, through the control-plane VIP, at the VIP, all against one etcd. The VIP is
// the lab's to move (kube-vrrp or keepalived in the nodes); this file only runs the servers.

// HAServingPrefix starts the common name of each node's serving certificate, followed by the
// node's name: a client tells which API server answered from the certificate it was shown
// (HA.ServedBy).
const HAServingPrefix = "kube-apiserver-"

// HAOptions configure StartHA.
type HAOptions struct {
	// Nodes run one kube-apiserver each (required): the control-plane nodes.
	Nodes []*lab.Node
	// EtcdHost is the lab namespace etcd runs in (default: the lab's client). It must not be
	// one of Nodes: a fault injected on a node must take that node's API server away from
	// etcd, not every API server.
	EtcdHost *lab.Node
	// VIPs are added to every serving certificate, as kubeadm adds --control-plane-endpoint:
	// clients verify the server at the VIP against the cluster CA.
	VIPs []netip.Addr
	// Port is the API servers' secure port (default 6443).
	Port int
	// ServiceCIDR is --service-cluster-ip-range (default DefaultServiceCIDR).
	ServiceCIDR netip.Prefix
	// AssetsDir holds kube-apiserver and etcd (default: envtestassets.Dir()).
	AssetsDir string
	// Nice is the niceness etcd and the API servers run at (0: unchanged).
	Nice int
	// APIServerArgs are appended to every kube-apiserver's flags.
	APIServerArgs []string
	// Logf receives progress (default: the test's Logf with NewHA, nothing with StartHA).
	Logf func(format string, args ...any)
	// StartTimeout bounds each start until ready (default 3 min: three API servers starting
	// together on two busy cores take far longer than one).
	StartTimeout time.Duration
}

// HA is etcd and one kube-apiserver per control-plane node. Its methods are safe for
// concurrent use.
type HA struct {
	// Nodes are the control-plane nodes, in the order given.
	Nodes []*lab.Node
	// EtcdHost is where etcd runs.
	EtcdHost *lab.Node
	// CAFile is the PEM of the cluster CA that signed every serving certificate: what a
	// client (and kube-vrrp's https probe, tls.caFile) verifies the API servers against.
	CAFile string

	opts     HAOptions
	assets   string
	dir      string
	etcdDir  string
	etcdURL  string
	pki      *pki
	files    map[string]string
	roots    *x509.CertPool
	nodeDirs map[string]string

	mu        sync.Mutex
	etcd      *lab.Proc
	apiserver map[string]*lab.Proc
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// NewHA starts etcd and the API servers for a test, waits until every API server is ready,
// and closes them in t.Cleanup. Any error is fatal to the test.
func NewHA(t testing.TB, l *lab.Lab, o HAOptions) *HA {
	t.Helper()
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h, err := StartHA(ctx, l, o)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("control plane cleanup: %v", err)
		}
	})
	return h
}

// StartHA starts etcd, then every API server at once, and returns when all are ready. The
// caller must Close it (the lab's close does it too, on every path).
func StartHA(ctx context.Context, l *lab.Lab, o HAOptions) (*HA, error) {
	h, err := PrepareHA(l, o)
	if err != nil {
		return nil, err
	}
	if err := h.StartEtcd(ctx); err != nil {
		return nil, errors.Join(err, h.Close())
	}
	if err := h.StartAPIServers(ctx, h.Nodes...); err != nil {
		return nil, errors.Join(err, h.Close())
	}
	return h, nil
}

// PrepareHA writes the certificates and returns the control plane with nothing started:
// StartEtcd, then StartAPIServers, e.g. for a lab that starts the VIP's speakers before any
// API server, as on a cluster's first boot.
func PrepareHA(l *lab.Lab, o HAOptions) (*HA, error) {
	if len(o.Nodes) == 0 {
		return nil, errors.New("control plane: no nodes")
	}
	if o.EtcdHost == nil {
		o.EtcdHost = l.Client()
	}
	if slices.Contains(o.Nodes, o.EtcdHost) {
		return nil, fmt.Errorf("control plane: etcd's host %s is a control-plane node", o.EtcdHost)
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if !o.ServiceCIDR.IsValid() {
		o.ServiceCIDR = DefaultServiceCIDR
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 3 * time.Minute
	}
	assets := o.AssetsDir
	if assets == "" {
		d, err := envtestassets.Dir()
		if err != nil {
			return nil, err
		}
		assets = d
	}
	sweepDirs()
	h := &HA{
		Nodes:     slices.Clone(o.Nodes),
		EtcdHost:  o.EtcdHost,
		opts:      o,
		assets:    assets,
		etcdURL:   "http://" + netip.AddrPortFrom(o.EtcdHost.IPv4, 2379).String(),
		nodeDirs:  map[string]string{},
		apiserver: map[string]*lab.Proc{},
	}
	if err := h.prepare(); err != nil {
		return nil, errors.Join(err, h.Close())
	}
	l.OnClose(func() { _ = h.Close() })
	return h, nil
}

func (h *HA) prepare() error {
	var err error
	if h.dir, err = os.MkdirTemp("", dirPrefix()); err != nil {
		return err
	}
	shm := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm = "/dev/shm"
	}
	if h.etcdDir, err = os.MkdirTemp(shm, dirPrefix()); err != nil {
		return err
	}
	svc := h.opts.ServiceCIDR.Masked().Addr().Next()
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1"), svc}
	for _, n := range h.Nodes {
		ips = append(ips, n.IPv4)
	}
	ips = append(ips, h.opts.VIPs...)
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if h.pki, err = newPKI(ips, dns); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if h.files, err = h.pki.write(h.dir); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	h.CAFile = h.files["ca.crt"]
	h.roots = x509.NewCertPool()
	h.roots.AddCert(h.pki.caCert)
	// Every node has a serving certificate of its own, as kubeadm issues one per control-plane
	// node, for every address a client may use: each node's, the VIPs, loopback and the
	// Service's. The common name tells the client which server it reached.
	for _, n := range h.Nodes {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: HAServingPrefix + n.Name},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:    dns,
		}
		for _, ip := range ips {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
		}
		cert, key, err := h.pki.leaf(tmpl)
		if err != nil {
			return err
		}
		d := filepath.Join(h.dir, n.Name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "apiserver.crt"), cert, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "apiserver.key"), key, 0o600); err != nil {
			return err
		}
		h.nodeDirs[n.Name] = d
	}
	return nil
}

func (h *HA) argv(argv ...string) []string {
	if h.opts.Nice == 0 {
		return argv
	}
	return append([]string{"nice", "-n", strconv.Itoa(h.opts.Nice)}, argv...)
}

// StartEtcd starts etcd on its host, listening on the host's lab address (the API servers
// reach it over the bridge) and loopback, and returns when it is healthy.
func (h *HA) StartEtcd(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("control plane closed")
	}
	if h.etcd != nil && !h.etcd.Exited() {
		h.mu.Unlock()
		return errors.New("etcd is running")
	}
	h.mu.Unlock()
	t0 := time.Now()
	p, err := h.EtcdHost.Exec(context.Background(), "etcd", h.argv(filepath.Join(h.assets, "etcd"),
		"--name", "kvlab",
		"--data-dir", h.etcdDir,
		"--listen-client-urls", h.etcdURL+","+etcdClientURL,
		"--advertise-client-urls", h.etcdURL,
		"--listen-peer-urls", etcdPeerURL,
		"--initial-advertise-peer-urls", etcdPeerURL,
		"--initial-cluster", "kvlab="+etcdPeerURL,
		"--logger", "zap",
		"--log-level", "warn",
		// As in ControlPlane.startEtcd: Debian's etcd is too old for on-demand progress
		// notifications, which the API servers' watch caches need.
		"--experimental-watch-progress-notify-interval", "100ms",
	)...)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	h.mu.Lock()
	h.etcd = p
	h.mu.Unlock()
	hc := &http.Client{Transport: &http.Transport{DialContext: h.EtcdHost.DialContext}, Timeout: 2 * time.Second}
	if err := h.waitReady(ctx, p, "etcd", func() error { return getOK(ctx, hc, etcdClientURL+"/health") }); err != nil {
		return err
	}
	h.opts.Logf("cluster: etcd ready at %s in %v", h.etcdURL, time.Since(t0).Round(time.Millisecond))
	return nil
}

// Endpoint returns the address node n's API server serves on (the node's address, port 6443).
func (h *HA) Endpoint(n *lab.Node) netip.AddrPort {
	return netip.AddrPortFrom(n.IPv4, uint16(h.opts.Port))
}

// Port returns the API servers' secure port.
func (h *HA) Port() int { return h.opts.Port }

// ExecAPIServer starts node n's kube-apiserver and returns without waiting for it.
// It listens on every address of the node (--bind-address 0.0.0.0, kubeadm's default), so
// that it serves the VIP while the node holds it, and advertises the node's address.
func (h *HA) ExecAPIServer(n *lab.Node) (*lab.Proc, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errors.New("control plane closed")
	}
	if p := h.apiserver[n.Name]; p != nil && !p.Exited() {
		h.mu.Unlock()
		return nil, fmt.Errorf("%s: kube-apiserver is running", n)
	}
	d, ok := h.nodeDirs[n.Name]
	h.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s is not a control-plane node", n)
	}
	f := h.files
	args := []string{
		filepath.Join(h.assets, "kube-apiserver"),
		"--advertise-address=" + n.IPv4.String(),
		"--bind-address=0.0.0.0",
		"--secure-port=" + strconv.Itoa(h.opts.Port),
		"--etcd-servers=" + h.etcdURL,
		"--client-ca-file=" + f["ca.crt"],
		"--tls-cert-file=" + filepath.Join(d, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(d, "apiserver.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f["sa.pub"],
		"--service-account-signing-key-file=" + f["sa.key"],
		"--service-cluster-ip-range=" + h.opts.ServiceCIDR.Masked().String(),
		"--authorization-mode=Node,RBAC",
		"--cert-dir=" + d,
		"--profiling=false",
		"--event-ttl=1h",
	}
	args = append(args, h.opts.APIServerArgs...)
	p, err := n.Exec(context.Background(), "kube-apiserver", h.argv(args...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: start kube-apiserver: %w", n, err)
	}
	h.mu.Lock()
	h.apiserver[n.Name] = p
	h.mu.Unlock()
	return p, nil
}

// StartAPIServers starts the API servers of nodes at once and returns when all are ready.
func (h *HA) StartAPIServers(ctx context.Context, nodes ...*lab.Node) error {
	t0 := time.Now()
	for _, n := range nodes {
		if _, err := h.ExecAPIServer(n); err != nil {
			return err
		}
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = h.WaitAPIServer(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.opts.Logf("cluster: kube-apiserver ready on %s in %v", nodeNames(nodes), time.Since(t0).Round(time.Millisecond))
	return nil
}

func nodeNames(nodes []*lab.Node) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = n.Name
	}
	return strings.Join(s, ",")
}

// WaitAPIServer waits until node n's API server answers /readyz with 200 at the node's
// address, asked from etcd's host and verified against the CA.
func (h *HA) WaitAPIServer(ctx context.Context, n *lab.Node) error {
	p := h.APIServer(n)
	if p == nil {
		return fmt.Errorf("%s: kube-apiserver never started", n)
	}
	return h.waitReady(ctx, p, n.Name+"/kube-apiserver", func() error { return h.Ready(ctx, n) })
}

// Ready asks node n's API server for /readyz once, from etcd's host (not from n: a node whose
// link is cut is not ready for anyone else either).
func (h *HA) Ready(ctx context.Context, n *lab.Node) error {
	hc := h.HTTPClient(h.EtcdHost, 2*time.Second)
	defer hc.CloseIdleConnections()
	return getOK(ctx, hc, "https://"+h.Endpoint(n).String()+"/readyz")
}

// KillAPIServer SIGKILLs node n's API server, as in a crash, and returns when it is gone.
func (h *HA) KillAPIServer(n *lab.Node) {
	if p := h.APIServer(n); p != nil {
		p.Kill()
	}
}

// StopAPIServer stops node n's API server (SIGTERM, SIGKILL after 5 s) and returns when it
// is gone.
func (h *HA) StopAPIServer(n *lab.Node) {
	if p := h.APIServer(n); p != nil {
		_ = p.Stop() // how it ended does not matter here
	}
}

// APIServer returns node n's current (or last) kube-apiserver process, nil if none started.
func (h *HA) APIServer(n *lab.Node) *lab.Proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.apiserver[n.Name]
}

// TLSConfig returns a client configuration that verifies the API servers against the cluster
// CA (never InsecureSkipVerify), with no client certificate: anonymous, which /readyz,
// /livez, /healthz and /version allow (system:public-info-viewer).
func (h *HA) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: h.roots, MinVersion: tls.VersionTLS12}
}

// HTTPClient returns a client that dials from node n's namespace and verifies the API
// servers against the cluster CA, a new connection for every request.
func (h *HA) HTTPClient(n *lab.Node, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: n.DialContext, TLSClientConfig: h.TLSConfig(), DisableKeepAlives: true},
		Timeout:   timeout,
	}
}

// ServedBy names the node whose API server answered resp (from its serving certificate's
// common name), "" if it cannot tell. It is an HTTPLoadOptions.Served.
func ServedBy(resp *http.Response, _ string) string {
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return ""
	}
	cn := resp.TLS.PeerCertificates[0].Subject.CommonName
	if !strings.HasPrefix(cn, HAServingPrefix) {
		return ""
	}
	return strings.TrimPrefix(cn, HAServingPrefix)
}

func (h *HA) waitReady(ctx context.Context, p *lab.Proc, what string, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.StartTimeout)
	defer cancel()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", what, p.Wait(0), p.LogPath, p.Tail(30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v; log %s:\n%s", what, h.opts.StartTimeout, err, p.LogPath, p.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the API servers, then etcd, and removes the certificates and etcd's data. It
// is idempotent.
func (h *HA) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		etcd := h.etcd
		var apis []*lab.Proc
		for _, p := range h.apiserver {
			apis = append(apis, p)
		}
		h.mu.Unlock()
		// The API servers stop before etcd: without etcd they ignore SIGTERM for a minute.
		var wg sync.WaitGroup
		for _, p := range apis {
			wg.Go(func() { _ = p.Stop() })
		}
		wg.Wait()
		if etcd != nil {
			_ = etcd.Stop()
		}
		var errs []error
		for _, d := range []string{h.dir, h.etcdDir} {
			if d != "" {
				if err := os.RemoveAll(d); err != nil {
					errs = append(errs, err)
				}
			}
		}
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}
