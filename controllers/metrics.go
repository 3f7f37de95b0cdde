package controllers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// MetricsSource is what the Collector reads; *agent.Agent implements it.
type MetricsSource interface {
	Snapshot() []agent.Status
	TransitionCounts() map[agent.TransitionKey]uint64
	LostEvents() map[string]uint64
}

// Collector exposes the agent's instances as Prometheus metrics, read at scrape time from the
// snapshot (states, priorities, the engine's packet counters) and from the counters the agent
// keeps as it publishes its event stream (transitions, exact however fast they come, and the
// events a slow subscriber lost; docs/design.md §3.3): no counter is kept twice.
type Collector struct {
	Agent MetricsSource
	Node  string
	// Notify, if set, is the runner of spec.notify's commands (pkg/notify; exec enabled):
	// the changes its full queues dropped are exported.
	Notify interface{ Dropped() uint64 }
}

var (
	descState = prometheus.NewDesc("kube_vrrp_state",
		"1 for the VRRP state each VirtualIP instance on this node is in, 0 for the others.",
		[]string{"vip", "node", "state"}, nil)
	descPriority = prometheus.NewDesc("kube_vrrp_priority",
		"Effective VRRP priority of the instance (after probe weights).", []string{"vip", "node"}, nil)
	descTransitions = prometheus.NewDesc("kube_vrrp_transitions_total",
		"State transitions of the instance, by the state entered and the reason.", []string{"vip", "node", "state", "reason"}, nil)
	descLost = prometheus.NewDesc("kube_vrrp_events_lost_total",
		"Events a consumer of the agent's event stream lost because it read too slowly (Kubernetes Events, --events).",
		[]string{"node", "consumer"}, nil)
	descSent = prometheus.NewDesc("kube_vrrp_adverts_sent_total",
		"VRRP advertisements sent.", []string{"vip", "node"}, nil)
	descReceived = prometheus.NewDesc("kube_vrrp_adverts_received_total",
		"Valid VRRP advertisements received.", []string{"vip", "node"}, nil)
	descDrops = prometheus.NewDesc("kube_vrrp_packets_dropped_total",
		"Received VRRP packets dropped, by reason (bad_ttl, bad_checksum, auth_failed, ...).",
		[]string{"vip", "node", "reason"}, nil)
	descNotifyDropped = prometheus.NewDesc("kube_vrrp_notify_dropped_total",
		"State changes whose spec.notify commands never ran because a VirtualIP's queue was full (a command kept running while changes piled up).",
		[]string{"node"}, nil)
	descProbe = prometheus.NewDesc("kube_vrrp_probe_healthy",
		"1 while the probe is healthy, 0 while failing; absent until its first check.",
		[]string{"vip", "node", "probe"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descPriority, descTransitions, descLost, descSent, descReceived, descDrops, descProbe, descNotifyDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	states := []vrrp.State{vrrp.Initialize, vrrp.Backup, vrrp.Master, vrrp.Fault}
	for _, st := range c.Agent.Snapshot() {
		for _, s := range states {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.Name, c.Node, s.String())
		}
		ch <- prometheus.MustNewConstMetric(descPriority, prometheus.GaugeValue, float64(st.Priority), st.Name, c.Node)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(st.Stats.AdvertsSent), st.Name, c.Node)
		ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(st.Stats.AdvertsReceived), st.Name, c.Node)
		for reason, n := range st.Stats.Drops {
			ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(n), st.Name, c.Node, string(reason))
		}
		for _, p := range st.Probes {
			if !p.Known {
				continue
			}
			v := 0.0
			if p.Healthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descProbe, prometheus.GaugeValue, v, st.Name, c.Node, p.Name)
		}
	}
	for k, n := range c.Agent.TransitionCounts() {
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(n), k.VIP, c.Node, k.State.String(), k.Reason)
	}
	for consumer, n := range c.Agent.LostEvents() {
		ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(n), c.Node, consumer)
	}
	if c.Notify != nil {
		ch <- prometheus.MustNewConstMetric(descNotifyDropped, prometheus.CounterValue, float64(c.Notify.Dropped()), c.Node)
	}
}

// MetricsOptions say where and how the agent serves /metrics.
type MetricsOptions struct {
	// BindAddress is host:port.
	BindAddress string
	// Secure serves HTTPS, each request authenticated and authorized by the API server;
	// false serves plain HTTP to whoever can connect (a lab only).
	Secure bool
	// CertDir holds tls.crt and tls.key, reloaded when they change; empty: a self-signed
	// certificate for ServerName, made now.
	CertDir    string
	ServerName string
}

// NewMetricsServer returns the server of /metrics (controller-runtime's metrics.Registry, where
// the Collector is registered), the way controller-runtime's managers serve it, but to run on
// its own: the agent's node manager is restarted whenever the API server is unreachable, and
// scraping must not depend on it.
//
// Secure: HTTPS, GET and HEAD only (others get 405), and every request carries a bearer token
// that the API server authenticates (TokenReview) and authorizes for a get of the non-resource
// URL /metrics (SubjectAccessReview), with cfg's credentials and client-go's typed clients: the
// agent's ClusterRole may create both reviews (rbac.go). Answers are cached, at most
// reviewCacheSize of each kind (accepted and rejected tokens for a minute, allows for five,
// denies for thirty seconds), so an API server outage stops scrapes only once they expire. A
// request without a token or with one the API server rejects gets 401, an identity RBAC does
// not allow 403, one that would make a review while maxMetricsInFlight are asking the API
// server 429, and 500 only means the API server could not be asked (reviewedByAPIServer).
func NewMetricsServer(o MetricsOptions, cfg *rest.Config) (metricsserver.Server, error) {
	opts := metricsserver.Options{BindAddress: o.BindAddress, SecureServing: o.Secure}
	if o.Secure {
		opts.FilterProvider = reviewedByAPIServer
		// HTTP/2 off: its rapid-reset and stream floods (CVE-2023-44487, CVE-2023-39325) cost
		// more than a scrape is worth; Prometheus scrapes in HTTP/1.1.
		opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
		if o.CertDir != "" {
			opts.CertDir = o.CertDir
		} else {
			// Made here rather than by controller-runtime, which would first look for a
			// certificate in a directory under $TMPDIR that is not the agent's to trust.
			cert, err := selfSignedCert(o.ServerName)
			if err != nil {
				return nil, fmt.Errorf("metrics server: %w", err)
			}
			opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) {
				c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
			})
		}
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("metrics server: %w", err)
	}
	srv, err := metricsserver.NewServer(opts, cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("metrics server: %w", err)
	}
	return srv, nil
}

// maxMetricsInFlight bounds the reviews asking the API server at once. Each unknown token costs
// a TokenReview, made with the agent's credentials: without a bound, anyone who can reach the
// port could spend the agent's share of the API server (API Priority and Fairness) on random
// tokens. A scrape answered from the caches asks nothing and takes no slot, so Prometheus is
// not turned away by a flood of unknown tokens once its own are reviewed.
const maxMetricsInFlight = 4

// selfSignedCert makes the certificate /metrics serves when none is given: it encrypts the
// scrape (and the scraper's token), it does not prove who the agent is. Its key is ECDSA P-256,
// made in well under a millisecond: the two RSA-2048 keys of client-go's self-signed pair took
// hundreds of milliseconds on a loaded node, on the path of an agent resuming the VIPs its
// predecessor handed over (docs/design.md §4.9.1) before the handoff's deadline. It is valid
// from an hour ago (clock skew) for selfSignedValidity.
func selfSignedCert(name string) (*tls.Certificate, error) {
	if name == "" {
		name = "kube-vrrp-agent"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// selfSignedValidity is how long the self-signed certificate is valid: a year, as client-go's
// was; an agent is restarted far more often (every upgrade).
const selfSignedValidity = 365 * 24 * time.Hour

// Bounds of the plain health endpoint: its only client is the kubelet, every few seconds.
const (
	healthTimeout     = 5 * time.Second
	healthIdleTimeout = 30 * time.Second
	healthMaxHeader   = 8 << 10
	// healthMaxConns caps concurrent connections: whoever can reach the port cannot make the
	// agent hold more sockets and goroutines than this for it.
	healthMaxConns = 16
)

// Liveness is what /healthz asks: *agent.Agent implements it. Healthy returns why the agent
// should be restarted (a VRRP instance's loop wedged), or nil.
type Liveness interface {
	Healthy(now time.Time) error
}

// livenessTimeout bounds how long /healthz waits for Healthy: one that does not answer (the
// agent's state lock held by a wedged call) is itself the failure to report.
const livenessTimeout = 2 * time.Second

// ServeHealth answers /healthz and /readyz at addr from the agent itself, so that a kubelet
// probe never restarts a healthy agent (and moves its VIPs) because the API server is down.
// /healthz fails (503, with the reason) when live says the agent is wedged, so that the
// kubelet restarts it; /readyz answers once the agent runs. Plain HTTP, since a kubelet probe
// sends no credentials: bind it to the loopback (the kubelet probes from the node's network
// namespace, which is the agent's).
func ServeHealth(addr string, live Liveness) (*http.Server, error) {
	return ServeHealthReady(addr, live, nil)
}

// ServeHealthReady is ServeHealth whose /readyz answers 503, with the reason, until ready
// says the agent is ready (Readiness: its VirtualIPs read and its instances started, so that a
// rolling update replaces the next node's agent only then); nil: ready once the agent runs.
func ServeHealthReady(addr string, live Liveness, ready *Readiness) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/healthz", healthz(live, livenessTimeout))
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health endpoint: listening on %s: %w", addr, err)
	}
	srv := newHealthServer(mux)
	srv.Addr = ln.Addr().String()
	go func() { _ = srv.Serve(netutil.LimitListener(ln, healthMaxConns)) }()
	return srv, nil
}

// healthz answers 200 while live.Healthy returns nil within timeout, 503 otherwise. At most one
// check runs at a time: while one is stuck, the others fail at once instead of piling up.
func healthz(live Liveness, timeout time.Duration) http.Handler {
	busy := make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var err error
		select {
		case busy <- struct{}{}:
			result := make(chan error, 1)
			go func() {
				defer func() { <-busy }()
				result <- live.Healthy(time.Now())
			}()
			select {
			case err = <-result:
			case <-time.After(timeout):
				err = fmt.Errorf("the agent did not answer within %s", timeout)
			}
		default:
			err = errors.New("the previous check has not answered yet")
		}
		if err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}

// newHealthServer bounds every phase of a request: a client that sends slowly, reads slowly or
// keeps an idle connection open is cut off.
func newHealthServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: healthTimeout,
		ReadTimeout:       healthTimeout,
		WriteTimeout:      healthTimeout,
		IdleTimeout:       healthIdleTimeout,
		MaxHeaderBytes:    healthMaxHeader,
	}
}
