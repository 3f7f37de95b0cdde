package envtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
)

// The agent's cache (controllers.CacheOptions, as cmd/kube-vrrp/agent.go and the harness use
// it) against a real API server: Nodes trimmed to what the controllers read, VirtualIPs
// without managedFields, Secrets never listed or watched.

// cacheLabel marks the Nodes these tests create.
const cacheLabel = "kubevrrp.test/cache"

// fatNode is a Node as a kubelet of a big cluster writes it, created (metadata, spec) and then
// given its status, so that the API server also records the managedFields of both writers.
func fatNode(t *testing.T, c client.Client, name, ip string, labels map[string]string) {
	t.Helper()
	if err := createFatNode(t.Context(), c, name, ip, labels); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Delete(context.WithoutCancel(t.Context()), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
}

func createFatNode(ctx context.Context, c client.Client, name, ip string, labels map[string]string) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"node.kubernetes.io/instance-type": "m7i.16xlarge", "topology.kubernetes.io/region": "eu-west-1",
			"topology.kubernetes.io/zone": "eu-west-1a", "rack.example.com/row": "17",
		}, Annotations: map[string]string{
			"node.alpha.kubernetes.io/ttl":                           "0",
			"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			"csi.volume.kubernetes.io/nodeid":                        `{"ebs.csi.aws.com":"i-0123456789abcdef0","efs.csi.aws.com":"i-0123456789abcdef0"}`,
			"kubeadm.alpha.kubernetes.io/cri-socket":                 "unix:///run/containerd/containerd.sock",
			"projectcalico.org/IPv4Address":                          ip + "/24",
		}},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.7.0/24", PodCIDRs: []string{"10.244.7.0/24"},
			ProviderID: "aws:///eu-west-1a/i-0123456789abcdef0"},
	}
	for k, v := range labels {
		n.Labels[k] = v
	}
	if err := c.Create(ctx, n); err != nil {
		return err
	}
	gi := resource.MustParse("1Gi")
	n.Status = corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}},
		Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
			corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("200Gi"), "hugepages-2Mi": gi},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("63500m"), corev1.ResourceMemory: resource.MustParse("250Gi"),
			corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("180Gi"), "hugepages-2Mi": gi},
		NodeInfo: corev1.NodeSystemInfo{MachineID: "ec2d3c6a1b2c4d5e6f708192a3b4c5d6", SystemUUID: "ec2d3c6a-1b2c-4d5e-6f70-8192a3b4c5d6",
			BootID: "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f", KernelVersion: "6.12.0-31-cloud-amd64", OSImage: "Debian GNU/Linux 13 (trixie)",
			ContainerRuntimeVersion: "containerd://2.1.0", KubeletVersion: "v1.35.0", KubeProxyVersion: "", OperatingSystem: "linux",
			Architecture: "amd64"},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
	}
	for _, c := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeReady} {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: c, Status: corev1.ConditionFalse,
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "Kubelet" + string(c), Message: "kubelet reports " + string(c)})
	}
	for i := range 50 {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{SizeBytes: 50_000_000 + int64(i), Names: []string{
			fmt.Sprintf("registry.example.com/platform/component-%02d@sha256:%064x", i, i+1),
			fmt.Sprintf("registry.example.com/platform/component-%02d:v1.%d.0", i, i)}})
	}
	return c.Status().Update(ctx, n)
}

// startCache starts a cache with opts (and the tests' scheme) and stops it when the test ends.
func startCache(t *testing.T, opts cache.Options) cache.Cache {
	t.Helper()
	opts.Scheme = fullScheme(t)
	c, err := cache.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// TestAgentCacheTrimsNodes: the cache holds of a Node its name, UID, resourceVersion, labels
// and InternalIP and ExternalIP addresses, also after an update, and of a VirtualIP everything
// but managedFields.
func TestAgentCacheTrimsNodes(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	fatNode(t, admin, "cache-fat", "198.18.0.71", map[string]string{cacheLabel: "trim"})
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "cache-trim", Annotations: map[string]string{"team": "net"}},
		Spec: v1alpha1.VirtualIPSpec{VRID: 71, Addresses: []string{"198.18.0.171/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "cache-fat"}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), vip) })

	c := startCache(t, controllers.CacheOptions())
	check := func(label string) {
		t.Helper()
		var stored corev1.Node
		if err := admin.Get(ctx, types.NamespacedName{Name: "cache-fat"}, &stored); err != nil {
			t.Fatal(err)
		}
		if len(stored.ManagedFields) == 0 || len(stored.Status.Images) == 0 || len(stored.Annotations) == 0 {
			t.Fatalf("the stored Node is not fat: %+v", stored.ObjectMeta)
		}
		if !slices.ContainsFunc(stored.Status.Addresses, func(a corev1.NodeAddress) bool { return a.Type == corev1.NodeHostName }) {
			t.Fatalf("the stored Node has no Hostname address: %+v", stored.Status.Addresses)
		}
		var kept []corev1.NodeAddress
		for _, a := range stored.Status.Addresses {
			if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
				kept = append(kept, a)
			}
		}
		want := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: stored.Name, UID: stored.UID, ResourceVersion: stored.ResourceVersion,
			Labels: stored.Labels}, Status: corev1.NodeStatus{Addresses: kept}}
		eventually(t, 10*time.Second, "the cached Node "+label, func() error {
			var got corev1.Node
			if err := c.Get(ctx, types.NamespacedName{Name: "cache-fat"}, &got); err != nil {
				return err
			}
			got.TypeMeta = metav1.TypeMeta{}
			if d := cmp.Diff(want, got); d != "" {
				return fmt.Errorf("(-want +got):\n%s", d)
			}
			return nil
		})
	}
	check("as created")
	// An update goes through the transform too.
	patch := []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/lb":""},"annotations":{"more":"` + strings.Repeat("x", 512) + `"}}}`)
	if err := admin.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cache-fat"}}, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	check("after an update")

	var stored, cached v1alpha1.VirtualIP
	if err := admin.Get(ctx, client.ObjectKeyFromObject(vip), &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored.ManagedFields) == 0 {
		t.Fatal("the stored VirtualIP has no managedFields: the test proves nothing")
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(vip), &cached); err != nil {
		t.Fatal(err)
	}
	stored.ManagedFields = nil
	cached.TypeMeta = stored.TypeMeta
	if d := cmp.Diff(stored, cached); d != "" {
		t.Errorf("cached VirtualIP: want the stored one without managedFields (-want +got):\n%s", d)
	}
}

// requestLog records the method, path and query of every request of a rest.Config.
type requestLog struct {
	mu    sync.Mutex
	lines []string
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (l *requestLog) wrap(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			l.mu.Lock()
			l.lines = append(l.lines, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
			l.mu.Unlock()
			return rt.RoundTrip(r)
		})
	})
	return c
}

func (l *requestLog) matching(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

// TestAgentReadsReferencedSecretsOnly: the agent's node controllers, wired as the agent wires
// them, get the one Secret a VirtualIP references, by name, and never list or watch Secrets.
func TestAgentReadsReferencedSecretsOnly(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	ensureNamespace(t, admin, agentNamespace)
	for _, name := range []string{"cache-ref", "cache-other"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name},
			StringData: map[string]string{"password": "Pw8!xq#z"}}
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), s) })
	}
	createNode(t, admin, "cache-sec", "198.18.0.72", nil)
	var reqs requestLog
	n := startNode(t, reqs.wrap(cfg), slog.New(slog.DiscardHandler), "cache-sec", "198.18.0.72")
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "cache-sec"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 72, Version: 2, AdvertisementInterval: &v1alpha1.Duration{Duration: time.Second},
		Addresses: []string{"198.18.0.172/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "cache-sec", Priority: ptr.To[int32](110)}},
		Authentication: &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "cache-ref", Key: "password"}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	eventually(t, 10*time.Second, "the VirtualIP applied with its password", func() error {
		c, ok := n.agent.config("cache-sec")
		if !ok || string(c.Password) != "Pw8!xq#z" {
			return fmt.Errorf("config %v, password set %v", ok, ok && len(c.Password) > 0)
		}
		return nil
	})
	secrets := reqs.matching("/secrets")
	if len(secrets) == 0 {
		t.Fatal("no request for a Secret recorded: the test proves nothing")
	}
	want := "GET /api/v1/namespaces/" + agentNamespace + "/secrets/cache-ref?"
	for _, r := range secrets {
		if r != want {
			t.Errorf("request %q: want only %q (the referenced Secret by name; no list, no watch)", r, want)
		}
	}
}

// TestAgentCacheHeap measures what cached Nodes cost the agent's heap, with the transform and
// without it (the cache controller-runtime builds by default): KUBE_VRRP_CACHE_NODES fat Nodes
// (default 200). The trimmed cache must cost less than a fifth.
func TestAgentCacheHeap(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	start := time.Now()
	count := createFatNodes(ctx, t, admin, "heap", 200, 8)
	var one corev1.Node
	if err := admin.Get(ctx, types.NamespacedName{Name: "cache-heap-00000"}, &one); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(&one)
	t.Logf("%d Nodes of %d bytes of JSON each (%d managedFields entries) created in %s", count, len(raw),
		len(one.ManagedFields), time.Since(start).Round(time.Millisecond))

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	measure := func(name string, opts cache.Options) uint64 {
		var cost uint64
		t.Run(name, func(t *testing.T) {
			before := heap()
			c := startCache(t, opts)
			var nodes corev1.NodeList
			eventually(t, time.Minute, "the cache's Nodes", func() error {
				if err := c.List(ctx, &nodes, client.MatchingLabels{cacheLabel: "heap"}); err != nil {
					return err
				}
				if len(nodes.Items) != count {
					return fmt.Errorf("%d Nodes, want %d", len(nodes.Items), count)
				}
				return nil
			})
			nodes = corev1.NodeList{} // the cache's, not this copy
			if after := heap(); after > before {
				cost = after - before
			}
			runtime.KeepAlive(c)
			t.Logf("heap of a cache of %d Nodes: %.1f MiB (%d bytes per Node)", count, float64(cost)/(1<<20), cost/uint64(count))
		})
		heap() // the stopped cache's garbage
		return cost
	}
	full := measure("untransformed", cache.Options{})
	trimmed := measure("agent", controllers.CacheOptions())
	t.Logf("agent cache: %.1f MiB instead of %.1f MiB for %d Nodes", float64(trimmed)/(1<<20), float64(full)/(1<<20), count)
	if full == 0 || trimmed*5 > full {
		t.Errorf("the agent's cache of %d Nodes takes %d bytes, the untransformed one %d: want less than a fifth", count, trimmed, full)
	}
}

// createFatNodes creates count Nodes (KUBE_VRRP_CACHE_NODES, else def) as createFatNode makes
// them, named cache-<label>-NNNNN, labelled cacheLabel=label, with InternalIPs from
// 198.18.<octet>.1 on, eight at a time, and deletes them when the test ends; it returns count.
func createFatNodes(ctx context.Context, t *testing.T, admin client.Client, label string, def, octet int) int {
	t.Helper()
	count := def
	if s := os.Getenv("KUBE_VRRP_CACHE_NODES"); s != "" {
		var err error
		if count, err = strconv.Atoi(s); err != nil || count < 1 {
			t.Fatalf("KUBE_VRRP_CACHE_NODES=%q: want a number of Nodes", s)
		}
	}
	t.Cleanup(func() {
		_ = admin.DeleteAllOf(context.WithoutCancel(ctx), &corev1.Node{}, client.MatchingLabels{cacheLabel: label})
	})
	work := make(chan int)
	errs := make(chan error, count)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				errs <- createFatNode(ctx, admin, fmt.Sprintf("cache-%s-%05d", label, i), fmt.Sprintf("198.18.%d.%d", octet+i/250, 1+i%250),
					map[string]string{cacheLabel: label})
			}
		})
	}
	for i := range count {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return count
}
