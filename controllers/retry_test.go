package controllers

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// A refusal whose cause may go away unseen is retried: from retryMin, doubling, up to
// retryMax; a success resets the back-off.
func TestReconcileRetryBackoff(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(testNode("lb1", "198.18.0.11", nil), testVIP("vip", v2Pass)).Build()
	fa := newFakeAgent()
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
		Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}}
	next := func() time.Duration {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.RequeueAfter
	}
	var got []time.Duration
	for range 7 {
		got = append(got, next())
	}
	want := []time.Duration{retryMin, 2 * retryMin, 4 * retryMin, 8 * retryMin, 16 * retryMin, retryMax, retryMax}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("retries while the Secret is missing (-want +got):\n%s", d)
	}

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "vrrp-auth"}, Data: map[string][]byte{"password": []byte("8bytes!!")}}
	if err := cl.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if d := next(); d != 0 {
		t.Errorf("applied, and Secrets are watched: RequeueAfter %s, want none", d)
	}
	if _, ok := fa.config("vip"); !ok {
		t.Fatal("not applied once the Secret exists")
	}
	if err := cl.Delete(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if d := next(); d != retryMin {
		t.Errorf("after a success the back-off starts again at %s, got %s", retryMin, d)
	}
}

// A refusal caused by the host (here: no interface in the VirtualIP's subnet) is retried
// slowly, the host's changes enqueueing it (watchHost): from hostRetryMin, doubling, up to
// hostRetryMax, each delay longer by up to a fifth at random; a success resets the back-off.
// A thousand such VirtualIPs retried as a Secret's refusal is (retryMax) would be 200
// reconciles a second, each reading every Node and the host's interfaces.
func TestReconcileHostRetryBackoff(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(testNode("lb1", "198.18.1.11", nil), testVIP("vip", nil)).Build()
	fa := newFakeAgent()
	ifs := eth0("198.18.1.11") // not in 198.18.0.0/24, the VirtualIP's subnet
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa,
		Interfaces: func() ([]desired.Interface, error) { return ifs() }, Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}}
	next := func() time.Duration {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.RequeueAfter
	}
	within := func(got, base time.Duration) bool { return got >= base && got <= base+base/5 }
	base := hostRetryMin
	var maxed []time.Duration
	for i := range 12 {
		got := next()
		if !within(got, base) {
			t.Errorf("retry %d of an off-link refusal: %s, want %s plus at most a fifth", i+1, got, base)
		}
		if base == hostRetryMax {
			maxed = append(maxed, got)
		}
		base = min(2*base, hostRetryMax)
	}
	if why, ok := r.Rejected.Get("vip"); !ok || why.Reason != ReasonCannotResolve || !why.OffLink {
		t.Fatalf("refusal %+v, %v; want an off-link CannotResolve", why, ok)
	}
	slices.Sort(maxed)
	if len(slices.Compact(maxed)) < 2 {
		t.Errorf("every retry at the longest delay is %s: no jitter", maxed[0])
	}

	ifs = eth0("198.18.0.11")
	if d := next(); d != 0 {
		t.Errorf("applied: RequeueAfter %s, want none", d)
	}
	if _, ok := fa.config("vip"); !ok {
		t.Fatal("not applied once the node has an interface in the subnet")
	}
	ifs = eth0("198.18.1.11")
	if d := next(); !within(d, hostRetryMin) {
		t.Errorf("after a success the back-off starts again at %s, got %s", hostRetryMin, d)
	}
}

// getOnly reads Secrets by name only, as an agent whose RBAC allows nothing else.
type getOnly struct {
	client.Reader
	gets int
}

func (g *getOnly) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	g.gets++
	return g.Reader.Get(ctx, key, obj, opts...)
}

func (g *getOnly) List(context.Context, client.ObjectList, ...client.ListOption) error {
	panic("the Secrets reader is listed")
}

// With a Secrets reader, the password comes from it (not from the cache), and a running
// VirtualIP with a Secret is re-read every secretResync, its Secret not being watched.
func TestReconcileSecretsReader(t *testing.T) {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-vrrp", Name: "vrrp-auth"}, Data: map[string][]byte{"password": []byte("8bytes!!")}}
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(testNode("lb1", "198.18.0.11", nil), testVIP("vip", v2Pass), testVIP("plain", func(v *v1alpha1.VirtualIP) {
			v.Spec.VRID, v.Spec.Addresses = 52, []string{"198.18.0.101/24"}
		})).Build()
	secrets := &getOnly{Reader: fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(sec).Build()}
	fa := newFakeAgent()
	r := &VirtualIPReconciler{Client: cache, Secrets: secrets, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa,
		Interfaces: eth0("198.18.0.11"), Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := fa.config("vip"); !ok || string(c.Password) != "8bytes!!" || secrets.gets != 1 {
		t.Errorf("applied %v with the Secrets reader's password (%d gets)", ok, secrets.gets)
	}
	if res.RequeueAfter != secretResync {
		t.Errorf("RequeueAfter %s, want %s: the Secret is not watched", res.RequeueAfter, secretResync)
	}
	res, err = r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: "plain"}})
	if err != nil || res.RequeueAfter != 0 {
		t.Errorf("a VirtualIP without a Secret: %+v, %v; want no requeue", res, err)
	}
}

// The Secret watch enqueues the VirtualIPs that use that Secret, and only those.
func TestSecretUsers(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		testVIP("a", nil),
		testVIP("e", func(v *v1alpha1.VirtualIP) {
			v.Spec.VRID, v.Spec.Addresses = 54, []string{"198.18.0.104"}
			v2Pass(v)
		}),
	).Build()
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp"}
	sec := func(ns, name string) client.Object {
		s := &corev1.Secret{}
		s.Namespace, s.Name = ns, name
		return s
	}
	if got := requestNames(r.secretUsers(context.Background(), sec("kube-vrrp", "vrrp-auth"))); !slices.Equal(got, []string{"e"}) {
		t.Errorf("secretUsers(vrrp-auth) = %v, want e", got)
	}
	if got := r.secretUsers(context.Background(), sec("default", "vrrp-auth")); len(got) != 0 {
		t.Errorf("a Secret of another namespace enqueues %v", requestNames(got))
	}
	if got := r.secretUsers(context.Background(), sec("kube-vrrp", "other")); len(got) != 0 {
		t.Errorf("an unrelated Secret enqueues %v", requestNames(got))
	}
}
