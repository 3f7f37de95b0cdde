package envtest

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/controllers"
)

// TestAgentCachePeak: the agent's cache (controllers.CacheOptionsFor) fills with many fat Nodes
// without ever holding them whole. This API server lists Nodes (its etcd is too old for the
// WatchList stream), as a cluster without WatchList does; the informer would read the list's
// response whole and decode every Node before the transform trims any. The heap's peak growth
// while each cache syncs is measured with the GC kept tight (GOGC 5), so that the peak is what
// is held, not garbage. Nodes: KUBE_VRRP_CACHE_NODES (500 by default; 5000 for the figures of
// docs/design.md §7.2).
func TestAgentCachePeak(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	count := createFatNodes(ctx, t, admin, "peak", 500, 40)
	defer debug.SetGCPercent(debug.SetGCPercent(5))

	heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(heap)
		return heap[0].Value.Uint64()
	}
	measure := func(name string, opts cache.Options) uint64 {
		var growth uint64
		t.Run(name, func(t *testing.T) {
			runtime.GC()
			base := read()
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					if v := read(); v > peak.Load() {
						peak.Store(v)
					}
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			c := startCache(t, opts)
			var nodes corev1.NodeList
			eventually(t, 2*time.Minute, "the cache's Nodes", func() error {
				if err := c.List(ctx, &nodes, client.MatchingLabels{cacheLabel: "peak"}, client.UnsafeDisableDeepCopy); err != nil {
					return err
				}
				if len(nodes.Items) != count {
					return fmt.Errorf("%d Nodes, want %d", len(nodes.Items), count)
				}
				return nil
			})
			close(stop)
			<-sampled
			if p := peak.Load(); p > base {
				growth = p - base
			}
			nodes = corev1.NodeList{}
			t.Logf("%d Nodes: the heap grew by at most %.1f MiB while the cache synced", count, float64(growth)/(1<<20))
		})
		runtime.GC() // the stopped cache's garbage
		return growth
	}
	whole := measure("list-decoded-whole", controllers.CacheOptions())
	streamed := measure("agent", controllers.CacheOptionsFor(cfg))
	t.Logf("peak heap growth while syncing %d Nodes: %.1f MiB, %.1f MiB with the list decoded whole", count,
		float64(streamed)/(1<<20), float64(whole)/(1<<20))
	// What the agent's cache holds of a Node is what the transform keeps of it.
	c := startCache(t, controllers.CacheOptionsFor(cfg))
	var stored, cached corev1.Node
	key := types.NamespacedName{Name: "cache-peak-00000"}
	if err := admin.Get(ctx, key, &stored); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the cached Node", func() error { return c.Get(ctx, key, &cached) })
	trimmed, _ := controllers.TrimNode(&stored)
	want := trimmed.(*corev1.Node)
	want.TypeMeta, cached.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}
	if d := cmp.Diff(want, &cached); d != "" {
		t.Errorf("the cached Node (-trimmed +cached):\n%s", d)
	}
	if whole == 0 || streamed*3 > whole {
		t.Errorf("the agent's cache grew the heap by %d bytes at most while syncing, the one that decodes the list whole %d: want less than a third",
			streamed, whole)
	}
}
