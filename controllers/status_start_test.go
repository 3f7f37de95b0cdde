package controllers

import (
	"context"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// At the agent's start the StatusReconciler and the VirtualIPReconciler both reconcile every
// VirtualIP, in no set order. The entry this node's previous agent left in a VirtualIP that
// takes this node in stays until the agent runs or refuses it: withdrawn first and written
// again once the agent runs it, it was two writes each sent to every agent (at 500 nodes,
// BenchmarkStatusAPI saw 235 of 500 starting agents withdraw their entry, 219 of the writes
// timing out at the API server), and a MASTER resuming after a restart was no MASTER in status
// meanwhile. An entry of a VirtualIP that no longer takes this node in, or that is being
// deleted, or that this node refuses off its link, is withdrawn as before.
func TestStatusReconcilerStartKeepsEntry(t *testing.T) {
	since := metav1.NewTime(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	left := v1alpha1.NodeStatus{Name: "lb1", State: "Master", Priority: 110, Interface: "eth0", Address: "198.18.0.11",
		LastTransitionTime: &since, Reason: vrrp.ReasonMasterDown}
	withEntry := func(mut func(*v1alpha1.VirtualIP)) *v1alpha1.VirtualIP {
		return testVIP("web", func(v *v1alpha1.VirtualIP) {
			v.Status.Nodes = []v1alpha1.NodeStatus{left, {Name: "lb2", State: "Backup"}}
			if mut != nil {
				mut(v)
			}
		})
	}
	offLink := Rejection{Reason: ReasonCannotResolve, Message: noInterfaceInSubnet + "198.18.0.100/24", OffLink: true}
	tests := []struct {
		name      string
		vip       *v1alpha1.VirtualIP
		running   bool       // the agent runs web (as Backup)
		rejection *Rejection // this node refuses web
		withdraws bool
		writes    bool
	}{
		{name: "not run yet, takes this node in (spec.nodes)", vip: withEntry(nil)},
		{name: "not run yet, takes this node in (selector)", vip: withEntry(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = nil
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "yes"}}
		})},
		{name: "not run, no longer takes this node in", vip: withEntry(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = []v1alpha1.NodeOverride{{Name: "lb2"}}
		}), withdraws: true, writes: true},
		{name: "not run, selector no longer matches", vip: withEntry(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = nil
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "no"}}
		}), withdraws: true, writes: true},
		{name: "not run, being deleted", vip: withEntry(func(v *v1alpha1.VirtualIP) {
			v.DeletionTimestamp, v.Finalizers = &since, []string{"kubevrrp.test/hold"}
		}), withdraws: true, writes: true},
		{name: "refused off its link", vip: withEntry(func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = nil
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "yes"}}
		}), rejection: &offLink, withdraws: true, writes: true},
		{name: "run: its entry written", vip: withEntry(nil), running: true, writes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var applied []entryStatus
			cl := fake.NewClientBuilder().WithScheme(testScheme(t)).
				WithObjects(tt.vip, testNode("lb1", "198.18.0.11", map[string]string{"lb": "yes"})).
				WithInterceptorFuncs(interceptor.Funcs{SubResourceApply: func(_ context.Context, _ client.Client, sub string, obj runtime.ApplyConfiguration, _ ...client.SubResourceApplyOption) error {
					if a, ok := obj.(*statusApply[entryStatus]); ok && sub == "status" {
						applied = append(applied, a.Status)
					}
					return nil
				}}).Build()
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
			if got := len(applied) > 0; got != tt.writes {
				t.Fatalf("wrote %v, want a write %v", applied, tt.writes)
			}
			if got := len(applied) > 0 && len(applied[0].Nodes) == 0; got != tt.withdraws {
				t.Errorf("applied %+v: withdrawn %v, want %v", applied, got, tt.withdraws)
			}
		})
	}
}
