package controllers

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// forbiddenReader answers every Get as the API server does for a Secret the agent's Role does
// not name.
type forbiddenReader struct{ client.Reader }

func (forbiddenReader) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, key.Name, nil)
}

// A Secret the agent may not get (its Role lists Secrets by name) is the user's to fix, like a
// missing one: the node reports why and which chart value allows it, instead of retrying an
// error nobody sees.
func TestReconcileSecretForbidden(t *testing.T) {
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(testNode("lb1", "198.18.0.11", nil), testVIP("vip", v2Pass)).Build()
	fa := newFakeAgent()
	rej := NewRejections(nil)
	r := &VirtualIPReconciler{Client: cache, Secrets: forbiddenReader{}, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa,
		Interfaces: eth0("198.18.0.11"), Rejected: rej, Log: slog.New(slog.DiscardHandler)}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}}); err != nil {
		t.Fatalf("Reconcile: %v, want the refusal reported, not an error to retry blindly", err)
	}
	why, ok := rej.Get("vip")
	if !ok || why.Reason != ReasonSecretMissing || !strings.Contains(why.Message, "may not get Secret kube-vrrp/vrrp-auth") ||
		!strings.Contains(why.Message, "rbac.secretNames") {
		t.Errorf("rejection %+v (%v), want SecretMissing naming the Secret and rbac.secretNames", why, ok)
	}
	if _, ok := fa.config("vip"); ok {
		t.Error("the VirtualIP runs without its password")
	}
}
