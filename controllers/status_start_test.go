package controllers

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// At the agent's start the StatusReconciler and the VirtualIPReconciler both reconcile every
// VirtualIP, in no set order. The member this node's previous agent left of a VirtualIP that
// takes this node in stays until the agent runs or refuses it: withdrawn first and written
// again once the agent runs it, it was two writes each sent to every agent (at 500 nodes,
// BenchmarkStatusAPI saw 235 of 500 starting agents withdraw their entry, 219 of the writes
// timing out at the API server), and a MASTER resuming after a restart was no MASTER in status
// meanwhile. A member of a VirtualIP that no longer takes this node in, or that is being
// deleted, or that this node refuses off its link, is withdrawn (deleted) as before.
func TestStatusReconcilerStartKeepsEntry(t *testing.T) {
	since := metav1.NewTime(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	left := v1alpha1.NodeStatus{Name: "lb1", State: "Master", Priority: 110, Interface: "eth0", Address: "198.18.0.11",
		LastTransitionTime: &since, Reason: vrrp.ReasonMasterDown}
	// web, with the members of lb1 (left) and lb2.
	webVIP := func(mut func(*v1alpha1.VirtualIP)) *v1alpha1.VirtualIP { return testVIP("web", mut) }
	offLink := Rejection{Reason: ReasonCannotResolve, Message: noInterfaceInSubnet + "198.18.0.100/24", OffLink: true}
	tests := []struct {
		name      string
		vip       *v1alpha1.VirtualIP
		running   bool       // the agent runs web (as Backup)
		rejection *Rejection // this node refuses web
		withdraws bool
		writes    bool
	}{
		{name: "not run yet, takes this node in (spec.nodes)", vip: webVIP(nil)},
		{name: "not run yet, takes this node in (selector)", vip: webVIP(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = nil
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "yes"}}
		})},
		{name: "not run, no longer takes this node in", vip: webVIP(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = []v1alpha1.NodeOverride{{Name: "lb2"}}
		}), withdraws: true, writes: true},
		{name: "not run, selector no longer matches", vip: webVIP(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = nil
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "no"}}
		}), withdraws: true, writes: true},
		{name: "not run, being deleted", vip: webVIP(func(v *v1alpha1.VirtualIP) {
			v.DeletionTimestamp, v.Finalizers = &since, []string{"kubevrrp.test/hold"}
		}), withdraws: true, writes: true},
		{name: "refused off its link", vip: webVIP(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = nil
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "yes"}}
		}), rejection: &offLink, withdraws: true, writes: true},
		{name: "run: its entry written", vip: webVIP(nil), running: true, writes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var applied, deleted []string // member names
			cl := fakeClient(t).
				WithObjects(append(testMembers(tt.vip, left, v1alpha1.NodeStatus{Name: "lb2", State: "Backup"}),
					tt.vip, testNode("lb1", "198.18.0.11", map[string]string{"lb": "yes"}))...).
				WithInterceptorFuncs(interceptor.Funcs{
					Apply: func(_ context.Context, _ client.WithWatch, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
						if a, ok := obj.(*memberApply); ok {
							applied = append(applied, *a.Name)
						}
						return nil
					},
					Delete: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.DeleteOption) error {
						deleted = append(deleted, obj.GetName())
						return nil
					},
				}).Build()
			fa := newFakeAgent()
			if tt.running {
				fa.configs["web"] = vrrp.Config{}
				fa.statuses = []agent.Status{{Status: vrrp.Status{Name: "web", State: vrrp.Backup, Reason: vrrp.ReasonStarted}}}
			}
			rej := NewRejections(nil)
			if tt.rejection != nil {
				rej.Set("web", *tt.rejection)
			}
			r := &StatusReconciler{Client: cl, Reader: cl, NodeName: "lb1", Agent: fa, Rejected: rej, Log: slog.New(slog.DiscardHandler)}
			if _, err := r.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKey{Name: "web"}}); err != nil {
				t.Fatal(err)
			}
			if got := len(applied)+len(deleted) > 0; got != tt.writes {
				t.Fatalf("applied %v, deleted %v: want a write %v", applied, deleted, tt.writes)
			}
			if got := slices.Equal(deleted, []string{"web.lb1"}); got != tt.withdraws || len(applied)+len(deleted) > 1 {
				t.Errorf("applied %v, deleted %v: withdrawn %v, want %v (one write at most)", applied, deleted, got, tt.withdraws)
			}
		})
	}
}
