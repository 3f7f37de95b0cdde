package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// Defaults of Options.
const (
	// DefaultPort is the API server's secure port.
	DefaultPort = 6443
	// etcdClientURL is where etcd listens: the loopback of the control plane's namespace,
	// which nothing outside that namespace can reach.
	etcdClientURL = "http://127.0.0.1:2379"
	etcdPeerURL   = "http://127.0.0.1:2380"
)

// DefaultServiceCIDR is the API server's --service-cluster-ip-range: inside the lab's
// 198.18.0.0/15 and apart from the lab LAN (198.18.0.0/24). Nothing routes it; the API server
// only allocates the "kubernetes" Service's address from it.
var DefaultServiceCIDR = netip.MustParsePrefix("198.18.128.0/24")

// APIServerStart is one start of kube-apiserver: from the process's start until it was seen ready
// (zero if it never was). In between it may serve requests before its RBAC caches are loaded,
// and refuse them (403) although the caller's role allows them.
type APIServerStart struct {
	Started, Ready time.Time
}

// Options configure a control plane. The zero value runs it in the lab's client namespace.
type Options struct {
	// Host is the lab namespace etcd and kube-apiserver run in (default: the lab's client,
	// 198.18.0.250). Every node reaches it over the bridge unless its link is cut.
	Host *lab.Node
	// Port is the API server's secure port (default 6443).
	Port int
	// ServiceCIDR is --service-cluster-ip-range (default DefaultServiceCIDR).
	ServiceCIDR netip.Prefix
	// AssetsDir holds kube-apiserver and etcd (default: envtestassets.Dir()).
	AssetsDir string
	// Nice is the niceness etcd and kube-apiserver run at (0: unchanged), like lab.Options.Nice
	// for the speakers: on a loaded machine it keeps API latencies about the API server.
	Nice int
	// APIServerArgs are appended to kube-apiserver's flags (a later flag wins).
	APIServerArgs []string
	// Logf receives progress (default: the test's Logf with New, nothing with Start).
	Logf func(format string, args ...any)
	// StartTimeout bounds each start of etcd or the API server until it is ready (default 2 min:
	// kube-apiserver takes ~10 s on an idle 2-core machine and much longer on a busy one).
	StartTimeout time.Duration
}

// ControlPlane is etcd and kube-apiserver running in a lab namespace. Its methods are safe
// for concurrent use.
type ControlPlane struct {
	// Host is the namespace the processes run in.
	Host *lab.Node
	// Endpoint is the API server's address on the lab LAN (198.18.0.250:6443).
	Endpoint netip.AddrPort

	opts    Options
	assets  string
	dir     string // certificates, kubeconfigs
	etcdDir string // etcd's data (on tmpfs when there is one)
	pki     *pki
	files   map[string]string
	scheme  *runtime.Scheme
	cfg     *rest.Config
	cl      client.Client

	mu        sync.Mutex
	etcd      *lab.Proc
	apiserver *lab.Proc
	// kube-controller-manager and kube-scheduler (StartControllers), stopped first.
	controllers []*lab.Proc
	starts      []APIServerStart
	closed      bool
	closeOnce   sync.Once
	closeErr    error
}

// New starts a control plane in l for a test and stops it (and removes its files) in
// t.Cleanup. Any error is fatal to the test.
func New(t testing.TB, l *lab.Lab, o Options) *ControlPlane {
	t.Helper()
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, l, o)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("control plane cleanup: %v", err)
		}
	})
	return c
}

// Start starts etcd and kube-apiserver in l and returns when the API server is ready. The
// caller must Close it (before l is closed, so the processes stop in order).
func Start(ctx context.Context, l *lab.Lab, o Options) (*ControlPlane, error) {
	if o.Host == nil {
		o.Host = l.Client()
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
		o.StartTimeout = 2 * time.Minute
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
	c := &ControlPlane{
		Host:     o.Host,
		Endpoint: netip.AddrPortFrom(o.Host.IPv4, uint16(o.Port)),
		opts:     o,
		assets:   assets,
	}
	if err := c.start(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	// Also on the lab's every path (a signal included, when no test cleanup or deferred Close
	// will run), after the nodes (registered later, closed first).
	l.OnClose(func() { _ = c.Close() })
	return c, nil
}

func (c *ControlPlane) start(ctx context.Context) error {
	var err error
	if c.dir, err = os.MkdirTemp("", dirPrefix()); err != nil {
		return err
	}
	// etcd fsyncs every write; on tmpfs that costs nothing, and the data is throwaway.
	shm := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm = "/dev/shm"
	}
	if c.etcdDir, err = os.MkdirTemp(shm, dirPrefix()); err != nil {
		return err
	}
	// The serving certificate names every address a client may use: the lab address, the
	// namespace's loopback, and the "kubernetes" Service's address and names.
	svc := c.ServiceIP()
	c.pki, err = newPKI(
		[]netip.Addr{c.Host.IPv4, netip.MustParseAddr("127.0.0.1"), svc},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if c.files, err = c.pki.write(c.dir); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if c.scheme, err = Scheme(); err != nil {
		return err
	}
	c.cfg = &rest.Config{
		Host: "https://" + c.Endpoint.String(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: c.pki.ca, CertData: c.pki.admin, KeyData: c.pki.adminKey,
		},
		Dial:    c.DialContext,
		QPS:     200,
		Burst:   400,
		Timeout: 30 * time.Second,
	}
	if c.cl, err = client.New(c.cfg, client.Options{Scheme: c.scheme}); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}

	t0 := time.Now()
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	c.opts.Logf("cluster: etcd ready in %v", time.Since(t0).Round(time.Millisecond))
	return c.StartAPIServer(ctx)
}

func (c *ControlPlane) argv(argv ...string) []string {
	if c.opts.Nice == 0 {
		return argv
	}
	return append([]string{"nice", "-n", strconv.Itoa(c.opts.Nice)}, argv...)
}

func (c *ControlPlane) startEtcd(ctx context.Context) error {
	p, err := c.Host.Exec(context.Background(), "etcd", c.argv(filepath.Join(c.assets, "etcd"),
		"--name", "kvlab",
		"--data-dir", c.etcdDir,
		"--listen-client-urls", etcdClientURL,
		"--advertise-client-urls", etcdClientURL,
		"--listen-peer-urls", etcdPeerURL,
		"--initial-advertise-peer-urls", etcdPeerURL,
		"--initial-cluster", "kvlab="+etcdPeerURL,
		"--logger", "zap",
		"--log-level", "warn",
		// The API server's watch cache learns that etcd's revision moved on (writes to other
		// resources) from progress notifications; kube-apiserver asks for them on demand
		// (RequestProgress) only from etcd 3.4.31 and 3.5.13 on, and Debian's 3.4.23 is older.
		// Without them, a watch opened at the current revision waits up to 3 s for the cache
		// and fails with "Too large resource version": every informer (re)start costs seconds.
		"--experimental-watch-progress-notify-interval", "100ms",
	)...)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	c.mu.Lock()
	c.etcd = p
	c.mu.Unlock()
	hc := &http.Client{Transport: &http.Transport{DialContext: c.DialContext}, Timeout: 2 * time.Second}
	return c.waitReady(ctx, p, "etcd", func() error {
		return getOK(ctx, hc, etcdClientURL+"/health")
	})
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) and waits until it is
// ready (/readyz).
func (c *ControlPlane) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("control plane closed")
	}
	if c.apiserver != nil && !c.apiserver.Exited() {
		c.mu.Unlock()
		return errors.New("kube-apiserver is running")
	}
	c.mu.Unlock()
	f := c.files
	args := []string{
		filepath.Join(c.assets, "kube-apiserver"),
		"--advertise-address=" + c.Host.IPv4.String(),
		"--bind-address=0.0.0.0",
		"--secure-port=" + strconv.Itoa(c.opts.Port),
		"--etcd-servers=" + etcdClientURL,
		"--client-ca-file=" + f["ca.crt"],
		"--tls-cert-file=" + f["apiserver.crt"],
		"--tls-private-key-file=" + f["apiserver.key"],
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f["sa.pub"],
		"--service-account-signing-key-file=" + f["sa.key"],
		"--service-cluster-ip-range=" + c.opts.ServiceCIDR.Masked().String(),
		// Node: each kubelet (system:node:<name>) may touch only its own Node, its pods and
		// what they use, as in a real cluster (NodeRestriction enforces it on writes).
		"--authorization-mode=Node,RBAC",
		// kubectl logs and exec: the API server dials each kubelet at its Node's InternalIP
		// (the lab has no DNS for node names) with a client certificate the kubelets accept.
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate=" + f["kubelet-client.crt"],
		"--kubelet-client-key=" + f["kubelet-client.key"],
		"--enable-admission-plugins=NodeRestriction",
		"--cert-dir=" + c.dir,
		"--profiling=false",
		"--event-ttl=1h",
	}
	args = append(args, c.opts.APIServerArgs...)
	t0 := time.Now()
	p, err := c.Host.Exec(context.Background(), "kube-apiserver", c.argv(args...)...)
	if err != nil {
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	c.mu.Lock()
	c.apiserver = p
	c.mu.Unlock()
	hc, err := rest.HTTPClientFor(c.cfg)
	if err != nil {
		return err
	}
	st := APIServerStart{Started: t0}
	err = c.waitReady(ctx, p, "kube-apiserver", func() error {
		return getOK(ctx, hc, c.cfg.Host+"/readyz")
	})
	if err == nil {
		st.Ready = time.Now()
	}
	c.mu.Lock()
	c.starts = append(c.starts, st)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.opts.Logf("cluster: kube-apiserver ready at %s in %v", c.cfg.Host, time.Since(t0).Round(time.Millisecond))
	return nil
}

// StopAPIServer stops kube-apiserver as for maintenance: SIGTERM, then SIGKILL if it has not
// exited after 5 s (with watches open it often takes longer to drain). It returns when the
// process is gone. etcd keeps running with the data.
func (c *ControlPlane) StopAPIServer() error {
	p := c.APIServer()
	if p == nil {
		return nil
	}
	_ = p.Stop() // its exit status says how it ended, which does not matter here
	return nil
}

// KillAPIServer kills kube-apiserver at once (SIGKILL), as in a crash, and returns when the
// process is gone.
func (c *ControlPlane) KillAPIServer() {
	if p := c.APIServer(); p != nil {
		p.Kill()
	}
}

// APIServer returns the current (or last) kube-apiserver process, for its log.
func (c *ControlPlane) APIServer() *lab.Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiserver
}

// APIServerStarts returns every start of kube-apiserver so far, in order.
func (c *ControlPlane) APIServerStarts() []APIServerStart {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.starts)
}

// Etcd returns the etcd process.
func (c *ControlPlane) Etcd() *lab.Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.etcd
}

func (c *ControlPlane) waitReady(ctx context.Context, p *lab.Proc, what string, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
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
			return fmt.Errorf("%s not ready after %v: %v; log %s:\n%s", what, c.opts.StartTimeout, err, p.LogPath, p.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func getOK(ctx context.Context, hc *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return nil
}

// DialContext opens a connection from the control plane's namespace: the socket is created
// by a thread inside that namespace and stays there, so the test process reaches the lab
// without touching the host's network. It is the Dial of RESTConfig.
func (c *ControlPlane) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.Host.DialContext(ctx, network, addr)
}

// RESTConfig returns a copy of the admin's configuration (system:masters), dialling through
// the lab.
func (c *ControlPlane) RESTConfig() *rest.Config { return rest.CopyConfig(c.cfg) }

// Client returns the admin's client (system:masters), dialling through the lab.
func (c *ControlPlane) Client() client.Client { return c.cl }

// ClientAs returns a client that impersonates user (and groups), e.g. AgentUser, to check
// what RBAC allows it.
func (c *ControlPlane) ClientAs(user string, groups ...string) (client.Client, error) {
	cfg := c.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return client.New(cfg, client.Options{Scheme: c.scheme})
}

// Scheme returns a scheme with client-go's types and kube-vrrp's API.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the directory of the control plane's certificates and kubeconfigs.
func (c *ControlPlane) Dir() string { return c.dir }

// CACert returns the PEM of the cluster CA.
func (c *ControlPlane) CACert() []byte { return c.pki.ca }

// WriteKubeconfig writes a kubeconfig to path with the API server's lab address and the admin
// certificate; if impersonate is not empty, every request acts as that user instead
// (`as:`), with the groups the API server gives it (a ServiceAccount's groups for
// "system:serviceaccount:..."). The file holds the admin key: mode 0600.
func (c *ControlPlane) WriteKubeconfig(path, impersonate string) error {
	return c.writeKubeconfig(path, &clientcmdapi.AuthInfo{
		ClientCertificateData: c.pki.admin,
		ClientKeyData:         c.pki.adminKey,
		Impersonate:           impersonate,
	})
}

func (c *ControlPlane) writeKubeconfig(path string, user *clientcmdapi.AuthInfo) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthorityData: c.pki.ca}
	cfg.AuthInfos["user"] = user
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: "user"}
	cfg.CurrentContext = "lab"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// WriteClientKubeconfig writes a kubeconfig to path with the API server's lab address and a
// new client certificate for user in groups (mode 0600: it holds the key).
func (c *ControlPlane) WriteClientKubeconfig(path, user string, groups ...string) error {
	cert, key, err := c.pki.client(user, groups...)
	if err != nil {
		return err
	}
	return c.writeKubeconfig(path, &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key})
}

// ServiceIP is the API server's address in the service CIDR: the ClusterIP of the
// `kubernetes` Service, which in-cluster clients (KUBERNETES_SERVICE_HOST) dial on port 443.
func (c *ControlPlane) ServiceIP() netip.Addr { return c.opts.ServiceCIDR.Masked().Addr().Next() }

// AgentKubeconfig writes (once) and returns the kubeconfig the agents use: the admin
// certificate impersonating the agent's ServiceAccount (AgentUser), so that the agents have
// exactly the rights Install bound to it.
func (c *ControlPlane) AgentKubeconfig() (string, error) {
	path := filepath.Join(c.dir, "agent.kubeconfig")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, c.WriteKubeconfig(path, AgentUser)
}

// AdminKubeconfig writes (once) and returns a kubeconfig for the admin (system:masters),
// e.g. for kubectl run in the lab namespace.
func (c *ControlPlane) AdminKubeconfig() (string, error) {
	path := filepath.Join(c.dir, "admin.kubeconfig")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, c.WriteKubeconfig(path, "")
}

// Close stops kube-controller-manager and kube-scheduler (if started), kube-apiserver and
// etcd, in that order, and removes the certificates, kubeconfigs and etcd's
// data. It is idempotent.
func (c *ControlPlane) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		api, etcd, controllers := c.apiserver, c.etcd, c.controllers
		c.mu.Unlock()
		var errs []error
		// Exit statuses after SIGTERM are not interesting here; a process that would not stop
		// was killed by Stop. kube-apiserver stops before etcd: without etcd it ignores
		// SIGTERM for over a minute.
		for _, p := range slices.Backward(controllers) {
			_ = p.Stop()
		}
		if api != nil {
			_ = api.Stop()
		}
		if etcd != nil {
			_ = etcd.Stop()
		}
		for _, d := range []string{c.dir, c.etcdDir} {
			if d != "" {
				if err := os.RemoveAll(d); err != nil {
					errs = append(errs, err)
				}
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
