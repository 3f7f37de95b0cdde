package envtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
)

// manyLabel marks the Nodes TestReconcileManyNodes creates.
const manyLabel = "kubevrrp.test/many"

// TestReconcileManyNodes (docs/design.md §7.2): a reconcile of a VirtualIP reads every Node
// (its members, and that no virtual address is a node's) from the agent's cache, without
// copying them: at start every VirtualIP is reconciled once, and a deep copy of every Node each
// time was 5 million Node copies for 1000 VirtualIPs in a cluster of 5000 Nodes. The test
// prints what one reconcile allocates with many Nodes in the cache, and what listing them costs
// with and without a copy; it fails if a reconcile allocates per Node. 1000 Nodes by default,
// KUBE_VRRP_RECONCILE_NODES=5000 for a big cluster.
func TestReconcileManyNodes(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	n := 1000
	if s := os.Getenv("KUBE_VRRP_RECONCILE_NODES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 2 || v > 60000 {
			t.Fatalf("KUBE_VRRP_RECONCILE_NODES=%q: want a number of Nodes from 2 to 60000", s)
		}
		n = v
	}
	t.Cleanup(func() {
		_ = admin.DeleteAllOf(context.WithoutCancel(ctx), &corev1.Node{}, client.MatchingLabels{manyLabel: "1"})
	})
	// The two members on the VirtualIP's link; the others elsewhere in 198.18.0.0/15.
	nodeName := func(i int) string { return fmt.Sprintf("many-%05d", i) }
	nodeIP := func(i int) string {
		if i < 2 {
			return fmt.Sprintf("198.18.6.%d", 11+i)
		}
		return netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(1 + i%250)}).String()
	}
	start := time.Now()
	createMany(t, admin, n, func(i int) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: nodeName(i), Labels: map[string]string{
				manyLabel: "1", "kubernetes.io/hostname": nodeName(i), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"node.kubernetes.io/instance-type": "m7i.16xlarge", "topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%3),
			}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: nodeIP(i)}, {Type: corev1.NodeHostName, Address: nodeName(i)}}},
		}
	})
	t.Logf("%d Nodes created in %s", n, time.Since(start).Round(time.Millisecond))

	name := "many-web"
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 53, Addresses: []string{"198.18.6.100/24"}, Nodes: []v1alpha1.NodeOverride{{Name: nodeName(0)}, {Name: nodeName(1)}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), vip) })

	c := startCache(t, controllers.CacheOptions())
	cl, err := client.New(cfg, client.Options{Scheme: fullScheme(t), Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the cache holds every Node and the VirtualIP", func() error {
		var nodes corev1.NodeList
		if err := cl.List(ctx, &nodes, client.MatchingLabels{manyLabel: "1"}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		if len(nodes.Items) != n {
			return fmt.Errorf("%d of %d Nodes", len(nodes.Items), n)
		}
		return cl.Get(ctx, types.NamespacedName{Name: name}, &v1alpha1.VirtualIP{})
	})

	fa := newFakeAgent(make(chan struct{}, 1))
	rejected := controllers.NewRejections(nil)
	self := &simNode{name: nodeName(0), ip: nodeIP(0)}
	r := &controllers.VirtualIPReconciler{Client: cl, NodeName: self.name, Namespace: agentNamespace, Agent: fa,
		Interfaces: self.interfaces, Rejected: rejected, Log: slog.New(slog.DiscardHandler)}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}
	reconcileOnce := func() {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	reconcileOnce()
	cfgd, ok := fa.config(name)
	if why, refused := rejected.Get(name); !ok || refused {
		t.Fatalf("the VirtualIP does not run: refused %v %+v", refused, why)
	}
	// Its one peer, from the Nodes read: the whole path ran.
	if len(cfgd.Members) != 1 || cfgd.Members[0].Addr != netip.MustParseAddr(nodeIP(1)) {
		t.Fatalf("members %+v, want %s alone", cfgd.Members, nodeIP(1))
	}

	const runs = 20
	reconcileAllocs, reconcileBytes := allocated(runs, reconcileOnce)
	listAllocs := func(opts ...client.ListOption) (float64, uint64) {
		return allocated(runs, func() {
			var nodes corev1.NodeList
			if err := cl.List(ctx, &nodes, opts...); err != nil {
				t.Fatal(err)
			}
		})
	}
	copyAllocs, copyBytes := listAllocs()
	sharedAllocs, sharedBytes := listAllocs(client.UnsafeDisableDeepCopy)
	t.Logf("%d Nodes in the cache: a reconcile allocates %.0f times, %s; listing the Nodes with a deep copy %.0f times, %s; without %.0f times, %s",
		n, reconcileAllocs, kib(reconcileBytes), copyAllocs, kib(copyBytes), sharedAllocs, kib(sharedBytes))
	// A copy of a Node is at least three allocations (the object, its labels, its addresses).
	if reconcileAllocs >= float64(n)/2 {
		t.Errorf("a reconcile allocates %.0f times with %d Nodes in the cache: it copies the Nodes", reconcileAllocs, n)
	}
}

// allocated returns the allocations and bytes allocated per call of f, over runs calls.
func allocated(runs int, f func()) (allocs float64, bytes uint64) {
	allocs = testing.AllocsPerRun(runs, f)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return allocs, (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

func kib(b uint64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }

// createMany creates the Nodes node(0) .. node(n-1), with their status, a few at a time.
func createMany(t *testing.T, c client.Client, n int, node func(i int) *corev1.Node) {
	t.Helper()
	ctx := t.Context()
	next := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				want := node(i)
				obj := want.DeepCopy()
				err := c.Create(ctx, obj)
				if err == nil {
					obj.Status = want.Status
					err = c.Status().Update(ctx, obj)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("node %s: %w", want.Name, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}
