package controllers

import (
	"log/slog"
	"slices"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// The Nodes of the Node informer's first list enqueue nothing: every VirtualIP is reconciled
// after the caches sync anyway (the VirtualIP informer's first list), and in a cluster of
// thousands of Nodes each of them matching every VirtualIP was millions of matches at every
// start. A Node created later enqueues what it concerns (TestVirtualIPNodeEvents).
func TestVirtualIPNodeEventsInitialList(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(testVIP("a", nil), testVIP("b", func(v *v1alpha1.VirtualIP) {
		v.Spec.VRID, v.Spec.Addresses = 52, []string{"198.18.0.101/24"}
	})).Build()
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	h := r.nodeEvents()
	for _, n := range []string{"lb1", "lb2"} {
		if got := queued(t, h, event.CreateEvent{Object: testNode(n, "198.18.0.11", nil), IsInInitialList: true}); len(got) != 0 {
			t.Errorf("%s in the first list enqueued %v, want nothing", n, got)
		}
	}
	if got := queued(t, h, event.CreateEvent{Object: testNode("lb1", "198.18.0.11", nil)}); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("this node created later enqueued %v, want a and b", got)
	}
}

// Nor do the VirtualIPs of the first list enqueue their overlaps: each is enqueued for itself.
// One created later enqueues the VirtualIPs it overlaps.
func TestOverlappingEventsInitialList(t *testing.T) {
	a := testVIP("a", nil)
	b := testVIP("b", func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"198.18.0.101/24"} }) // a's VRID
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(a, b).Build()
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	h := r.overlappingEvents()
	if got := queued(t, h, event.CreateEvent{Object: a, IsInInitialList: true}); len(got) != 0 {
		t.Errorf("a in the first list enqueued %v, want nothing", got)
	}
	if got := queued(t, h, event.CreateEvent{Object: a}); !slices.Equal(got, []string{"b"}) {
		t.Errorf("a created later enqueued %v, want b", got)
	}
	if got := queued(t, h, event.DeleteEvent{Object: a}); !slices.Equal(got, []string{"b"}) {
		t.Errorf("a deleted enqueued %v, want b", got)
	}
}
