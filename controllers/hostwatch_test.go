package controllers

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// A VirtualIP refused because the node has no interface in its subnet is not retried every
// few hundred milliseconds while nothing changes; when an interface in the subnet appears,
// the host watch (the poll SetupWithManager starts) reconciles it within about one poll, long
// before its retry is due. A refusal for a missing Secret keeps its fast retry. The reconciler
// runs in a controller-runtime controller, its queue honouring RequeueAfter, fed by the host
// watch through a channel source as in SetupWithManager.
func TestHostChangeReconciles(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		testNode("lb1", "198.18.1.11", nil),
		testVIP("offlink", nil), // 198.18.0.100/24: no interface in that subnet yet
		testVIP("secret", func(v *v1alpha1.VirtualIP) {
			v.Spec.VRID, v.Spec.Addresses = 52, []string{"198.18.1.100/24"}
			v2Pass(v) // its Secret does not exist
		}),
	).Build()

	var mu sync.Mutex
	ifs := []desired.Interface{
		{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24")}},
	}
	fa := newFakeAgent()
	const poll = 100 * time.Millisecond
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa,
		Interfaces: func() ([]desired.Interface, error) {
			mu.Lock()
			defer mu.Unlock()
			return append([]desired.Interface(nil), ifs...), nil
		},
		Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler), HostPoll: poll}

	counts := map[string]int{}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[name]
	}
	c, err := controller.NewTypedUnmanaged("hostwatch-test", controller.TypedOptions[reconcile.Request]{
		SkipNameValidation: ptrTo(true),
		Reconciler: reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			mu.Lock()
			counts[req.Name]++
			mu.Unlock()
			return r.Reconcile(ctx, req)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan event.TypedGenericEvent[*v1alpha1.VirtualIP])
	if err := c.Watch(source.Channel(ch, &handler.TypedEnqueueRequestForObject[*v1alpha1.VirtualIP]{})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = c.Start(ctx) })
	w := &hostWatch{}
	r.pollHost(w, nil)
	wg.Go(func() { r.watchHost(ctx, w, sendTo(ctx, ch)) })
	enqueue := sendTo(ctx, ch)
	enqueue("offlink")
	enqueue("secret")

	time.Sleep(2 * time.Second)
	if why, ok := r.Rejected.Get("offlink"); !ok || !why.OffLink {
		t.Fatalf("offlink: refusal %+v, %v; want off-link", why, ok)
	}
	if n := count("offlink"); n != 1 {
		t.Errorf("the off-link VirtualIP was reconciled %d times in 2 s, the host unchanged; want once", n)
	}
	if n := count("secret"); n < 3 {
		t.Errorf("the VirtualIP without its Secret was reconciled %d times in 2 s; want its fast retries (at least 3)", n)
	}

	mu.Lock()
	ifs = append(ifs, desired.Interface{Name: "eth1", Index: 3, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}})
	mu.Unlock()
	changed := time.Now()
	for {
		if _, ok := fa.config("offlink"); ok {
			break
		}
		if time.Since(changed) > 10*poll {
			t.Fatalf("an interface in the subnet appeared %s ago; the off-link VirtualIP is not applied (%d reconciles)",
				time.Since(changed).Round(time.Millisecond), count("offlink"))
		}
		time.Sleep(poll / 10)
	}
	t.Logf("applied %s after the interface appeared (poll %s)", time.Since(changed).Round(time.Millisecond), poll)
	if _, ok := r.Rejected.Get("offlink"); ok {
		t.Error("applied, yet still refused")
	}
	if _, ok := fa.config("secret"); ok {
		t.Error("the VirtualIP without its Secret was applied")
	}
}

// The fingerprint of the interfaces changes with each thing desired.For reads of them.
func TestInterfaceFingerprint(t *testing.T) {
	base := func() []desired.Interface {
		return []desired.Interface{
			{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24"), netip.MustParsePrefix("2001:db8::11/64")}},
		}
	}
	fp := interfaceFingerprint(base())
	if fp != interfaceFingerprint(base()) {
		t.Fatal("the same interfaces give two fingerprints")
	}
	for name, mut := range map[string]func([]desired.Interface) []desired.Interface{
		"renamed":   func(f []desired.Interface) []desired.Interface { f[1].Name = "eth1"; return f },
		"new index": func(f []desired.Interface) []desired.Interface { f[1].Index = 7; return f },
		"down":      func(f []desired.Interface) []desired.Interface { f[1].Up = false; return f },
		"address added": func(f []desired.Interface) []desired.Interface {
			f[0].Prefixes = append(f[0].Prefixes, netip.MustParsePrefix("::1/128"))
			return f
		},
		"address removed": func(f []desired.Interface) []desired.Interface { f[1].Prefixes = f[1].Prefixes[:1]; return f },
		"prefix length": func(f []desired.Interface) []desired.Interface {
			f[1].Prefixes[0] = netip.MustParsePrefix("198.18.1.11/25")
			return f
		},
		"primary changed": func(f []desired.Interface) []desired.Interface {
			f[1].Prefixes[0], f[1].Prefixes[1] = f[1].Prefixes[1], f[1].Prefixes[0]
			return f
		},
		"interface gone": func(f []desired.Interface) []desired.Interface { return f[:1] },
		"address moved": func(f []desired.Interface) []desired.Interface {
			f[0].Prefixes, f[1].Prefixes = f[1].Prefixes, f[0].Prefixes
			return f
		},
		"interface appears": func(f []desired.Interface) []desired.Interface {
			return append(f, desired.Interface{Name: "eth1", Index: 3})
		},
	} {
		if interfaceFingerprint(mut(base())) == fp {
			t.Errorf("%s: same fingerprint", name)
		}
	}
}

// nodeListCounter counts the lists of Nodes through it.
type nodeListCounter struct {
	client.Reader
	lists int
}

func (c *nodeListCounter) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*corev1.NodeList); ok {
		c.lists++
	}
	return c.Reader.List(ctx, list, opts...)
}

// A node with no interface in a VirtualIP's subnet refuses it from its own Node and the host's
// interfaces alone, before reading every Node (in a cluster of thousands, each such reconcile
// read them all), and before its Secret: it is not on the group's link, whatever the Secret.
// On the link it reads them as before.
func TestOffLinkReadsNoNodes(t *testing.T) {
	cl := &nodeListCounter{Reader: fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(testNode("lb1", "198.18.1.11", nil), testNode("lb2", "198.18.0.12", nil), testVIP("vip", func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb2"})
			v2Pass(v) // its Secret does not exist
		})).Build()}
	ifs := eth0("198.18.1.11")
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: newFakeAgent(),
		Interfaces: func() ([]desired.Interface, error) { return ifs() }, Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler)}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "vip"}}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if why, _ := r.Rejected.Get("vip"); why.Reason != ReasonCannotResolve || !why.OffLink {
		t.Errorf("off the link: refusal %+v, want an off-link CannotResolve", why)
	}
	if cl.lists != 0 {
		t.Errorf("off the link: %d lists of Nodes, want none", cl.lists)
	}
	ifs = eth0("198.18.0.11")
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if why, _ := r.Rejected.Get("vip"); why.Reason != ReasonSecretMissing {
		t.Errorf("on the link: refusal %+v, want SecretMissing", why)
	}
	if cl.lists != 1 {
		t.Errorf("on the link: %d lists of Nodes, want one", cl.lists)
	}
}
