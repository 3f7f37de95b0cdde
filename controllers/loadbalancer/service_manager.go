package loadbalancer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// LeaseName is the Lease of the controller's leader election, in its namespace.
const LeaseName = "kube-vrrp-lb-controller"

// EventsReporter is the reporting controller of the controller's Events.
const EventsReporter = "kube-vrrp-lb-controller"

// Options configure NewManager.
type Options struct {
	// Namespace holds the Lease (the controller's own namespace).
	Namespace string
	// LeaderElection: only the holder of the Lease allocates. Off only where one process runs
	// (a test).
	LeaderElection bool
	// ServeClassless serves the Services of type LoadBalancer that set no loadBalancerClass.
	ServeClassless bool
	// HealthProbeBindAddress serves /healthz and /readyz ("0": none).
	HealthProbeBindAddress string
	Log                    *slog.Logger
}

// NewManager is `kube-vrrp controller`: a manager with the Service and pool reconcilers,
// leader-elected on the Lease LeaseName, releasing it when stopped (a rolling update hands over
// at once). Its cache drops managedFields; it records events.k8s.io Events only (the
// leader election records none, which would be core/v1 Events: RBAC grants the controller
// no other).
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(sch); err != nil {
		return nil, err
	}
	mo := ctrl.Options{
		Scheme:                 sch,
		Logger:                 logr.FromSlogHandler(o.Log.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields(),
			// Every EndpointSlice of a Service, cluster-wide (a watch cannot ask for the
			// Services with externalTrafficPolicy Local alone), each kept as the little the
			// controller reads: its Service, family, and its endpoints' nodes and conditions.
			ByObject: map[client.Object]cache.ByObject{
				&discoveryv1.EndpointSlice{}: {Label: hasServiceName, Transform: TrimEndpointSlice},
			}},
		// A process may make more than one manager (a test replaces the controller): the names
		// only label metrics, which are not served.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if o.LeaderElection {
		lock, err := newLeaseLock(cfg, o.Namespace)
		if err != nil {
			return nil, err
		}
		mo.LeaderElection = true
		mo.LeaderElectionID = LeaseName
		mo.LeaderElectionNamespace = o.Namespace
		mo.LeaderElectionResourceLockInterface = lock
		mo.LeaderElectionReleaseOnCancel = true
		lease, renew, retry := 15*time.Second, 10*time.Second, 2*time.Second
		mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &lease, &renew, &retry
	}
	// client-go's default, 5 requests a second, would make a burst of Services wait for the
	// client instead of the API server (about four requests each); the API server's priority
	// and fairness still bounds the controller's share.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = max(cfg.QPS, 50), max(cfg.Burst, 100)
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, err
	}
	if o.HealthProbeBindAddress != "0" && o.HealthProbeBindAddress != "" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
	}
	sr := &ServiceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(EventsReporter),
		ServeClassless: o.ServeClassless, Log: o.Log.With("controller", "service")}
	if err := sr.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	pr := &PoolReconciler{Client: mgr.GetClient(), Log: o.Log.With("controller", "virtualippool")}
	if err := pr.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

// hasServiceName selects the EndpointSlices of a Service.
var hasServiceName = func() labels.Selector {
	req, err := labels.NewRequirement(discoveryv1.LabelServiceName, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}()

// TrimEndpointSlice is the cache's transform of EndpointSlices: their name, namespace, the
// label naming their Service, their address type and, of each endpoint, its node and
// conditions; no addresses, ports, hints or references, which the controller never reads. It
// returns anything else unchanged and is idempotent, as a transform must be.
func TrimEndpointSlice(in any) (any, error) {
	s, ok := in.(*discoveryv1.EndpointSlice)
	if !ok {
		return in, nil
	}
	out := &discoveryv1.EndpointSlice{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
			DeletionTimestamp: s.DeletionTimestamp},
		AddressType: s.AddressType,
	}
	if v, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: v}
	}
	if len(s.Endpoints) > 0 {
		out.Endpoints = make([]discoveryv1.Endpoint, len(s.Endpoints))
		for i, ep := range s.Endpoints {
			out.Endpoints[i] = discoveryv1.Endpoint{NodeName: ep.NodeName, Conditions: ep.Conditions}
		}
	}
	return out, nil
}

// newLeaseLock is the Lease lock of the leader election, with no event recorder.
func newLeaseLock(cfg *rest.Config, namespace string) (resourcelock.Interface, error) {
	cs, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election"))
	if err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return resourcelock.New(resourcelock.LeasesResourceLock, namespace, LeaseName, cs.CoreV1(), cs.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: fmt.Sprintf("%s_%s", host, hex.EncodeToString(b))})
}
