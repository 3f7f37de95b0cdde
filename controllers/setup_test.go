//go:build linux

package controllers

import (
	"log/slog"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// `kube-vrrp agent` builds a new manager and registers the reconcilers again each time the
// previous manager failed (keepRunning: API server unreachable at start), so
// registering them a second time in one process must work. controller-runtime refuses a
// controller name it has seen before unless the controller skips that check. Registering
// reads the API server's discovery (the member indexes need VirtualIPMember's REST mapping):
// with the API server unreachable it fails, and keepRunning tries again.
func TestSetupWithManagerAgain(t *testing.T) {
	cfg := apiServer(t)
	for round := range 2 {
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme:                 testScheme(t),
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
		})
		if err != nil {
			t.Fatal(err)
		}
		fa := newFakeAgent()
		log := slog.New(slog.DiscardHandler)
		rej := NewRejections(nil)
		if err := (&VirtualIPReconciler{Client: mgr.GetClient(), NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa,
			Interfaces: eth0("198.18.0.11"), Rejected: rej, Log: log}).SetupWithManager(mgr); err != nil {
			t.Errorf("round %d: VirtualIPReconciler: %v", round, err)
		}
		if err := (&StatusReconciler{Client: mgr.GetClient(), Reader: mgr.GetClient(), NodeName: "lb1", Agent: fa,
			Rejected: rej, Log: log, Changes: make(chan struct{})}).SetupWithManager(mgr); err != nil {
			t.Errorf("round %d: StatusReconciler: %v", round, err)
		}
		if err := (&Aggregator{Client: mgr.GetClient(), NodeName: "lb1", Log: log}).SetupWithManager(mgr); err != nil {
			t.Errorf("round %d: Aggregator: %v", round, err)
		}
	}
}
