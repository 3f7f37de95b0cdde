package controllers

import (
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// TestReadyzWaitsForInstances: /readyz answers 503 until the VirtualIPs of the first list have
// been reconciled and every instance has started (MASTER, BACKUP having heard a MASTER, Fault
// for a cause other than its probes' first check), then 200 for good. A rolling update replaces
// the next node's agent (perhaps a MASTER handing off with one stretched advert, then silent)
// once this one is ready: an instance not yet listening would miss that advert and take the VIP
// beside the old MASTER (seen on the real cluster: test/e2e testUpgrade).
func TestReadyzWaitsForInstances(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		testNode("lb1", "198.18.0.11", nil), testNode("lb2", "198.18.0.12", nil),
		testVIP("a", nil),
		testVIP("b", func(v *v1alpha1.VirtualIP) { // lb2's alone
			v.Spec.VRID, v.Spec.Addresses = 52, []string{"198.18.0.101/24"}
			v.Spec.Nodes = []v1alpha1.NodeOverride{{Name: "lb2", Priority: ptr.To[int32](110)}}
		}),
	).Build()
	fa := newFakeAgent()
	ready := NewReadiness(fa)
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
		Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler), Readiness: ready}
	srv, err := ServeHealthReady("127.0.0.1:0", fakeLiveness{}, ready)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	readyz := func(want int, why string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !strings.Contains(string(body), why) {
			t.Errorf("GET /readyz: %d %q, want %d saying %q", resp.StatusCode, body, want, why)
		}
	}
	reconcile1 := func(name string) {
		t.Helper()
		if _, err := r.Reconcile(t.Context(), reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	status := func(state vrrp.State, reason string, master string) []agent.Status {
		st := agent.Status{Status: vrrp.Status{Name: "a", State: state, Reason: reason}}
		if master != "" {
			st.Master = netip.MustParseAddr(master)
		}
		return []agent.Status{st}
	}

	readyz(http.StatusServiceUnavailable, "not read yet")
	// Reconciled before the list is read (the reconciles start as the cache syncs): counted.
	reconcile1("a")
	if _, ok := fa.config("a"); !ok {
		t.Fatal("a not applied")
	}
	readyz(http.StatusServiceUnavailable, "not read yet")
	ready.listedNames([]string{"a", "b"})
	readyz(http.StatusServiceUnavailable, "1 VirtualIPs not reconciled yet (b)")
	reconcile1("b") // not this node's: nothing to run, but decided
	fa.statuses = status(vrrp.Initialize, "", "")
	readyz(http.StatusServiceUnavailable, "a: Initialize")
	fa.statuses = status(vrrp.Fault, vrrp.ReasonProbePending, "")
	readyz(http.StatusServiceUnavailable, "a: Fault, probes not checked yet")
	fa.statuses = status(vrrp.Backup, vrrp.ReasonProbeRecovered, "")
	readyz(http.StatusServiceUnavailable, "a: Backup, no MASTER heard yet")
	fa.statuses = status(vrrp.Backup, vrrp.ReasonProbeRecovered, "198.18.0.12")
	readyz(http.StatusOK, "ok")
	// For good: what happens later (an API server away, a failover) is no rollout's business.
	fa.statuses = status(vrrp.Initialize, "", "")
	readyz(http.StatusOK, "ok")

	// Masters and real faults are started; a later manager's list adds nothing to wait for.
	for _, st := range [][]agent.Status{status(vrrp.Master, vrrp.ReasonResumed, "198.18.0.11"), status(vrrp.Fault, vrrp.ReasonProbeFailed, "")} {
		fa := newFakeAgent()
		fa.statuses = st
		ready := NewReadiness(fa)
		ready.listedNames(nil)
		ready.listedNames([]string{"late"})
		if err := ready.Ready(); err != nil {
			t.Errorf("%s (%s): %v, want ready", st[0].State, st[0].Reason, err)
		}
	}
}
