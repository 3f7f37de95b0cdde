package bench_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// What BenchmarkStatusAPI's simulated agents share, and why it does not bias what it measures.
//
// Every agent caches every Node (docs/design.md §7.2). N agents in one process on two cores
// each listing N Nodes, decoding them and keeping its own copy is N² work at the start (and N
// watches that carry nothing: the bench's Nodes never change): at N = 500 the agents could not
// sync their informers within controller-runtime's cache-sync timeout (2 min) and their
// managers restarted in a herd. So the agents of one size share one Node informer, built as
// the agent's cache builds it (controllers.CacheOptionsFor: the list read one Node at a time,
// each trimmed by controllers.TrimNode), listed and watched once with the agent's identity;
// each agent's cache gets a view of it (apiNodeView) to which its controllers add their
// handlers, as to their own informer, and from which they are removed when its manager stops.
//
// They share one REST mapper too: the API discovery a manager reads when it starts, the same
// for every agent (500 agents starting read it 500 times, at a time when each start is slow).
//
// It does not bias the figures measured: writes per failover, 409s and the time until
// status.master is right are made of member and summary writes and of the VirtualIPMember and
// VirtualIP watch events each agent receives, and every agent keeps its own connection and its
// own VirtualIP and VirtualIPMember informers (its own lists and watches), so the API server
// sends each write to N agent watchers, as in a cluster. No Node changes during the measured windows: a Node informer
// delivers nothing then, shared or not. What differs from a cluster is at the start (one Node
// list instead of N, which the setup time does not include per agent) and the API server's
// memory (one Node watcher instead of N idle ones).
//
// The agents also start at most -apiscale.start-concurrency at a time: one waits to start its
// node manager until fewer than that many are syncing their caches (a restarted manager too),
// as a DaemonSet's pods start over some time rather than in the same second. Starts are
// outside every measured window.
const apiSharedSummary = "shared by the simulated agents: one Node informer (the agent's Node cache: list read one Node at a time, trimmed),\n" +
	"listed and watched once, each agent's controllers adding their handlers to a view of it, and one REST mapper (the API\n" +
	"discovery a manager reads at its start); not shared: each agent's connection, VirtualIP and VirtualIPMember informers\n" +
	"(lists and watches), controllers and queues, so every member and summary write goes to N agent watchers.\n" +
	"No Node changes during the failovers, so a Node informer delivers nothing in the measured windows, shared or not:\n" +
	"writes/fo, 409/fo and the status.master latency are those of N agents each with its own watches. Agents start\n" +
	"%d at a time (a node manager starts once fewer are syncing their caches), outside the measured windows. Their HTTP/2\n" +
	"health check waits %v (the agent's 5 s: under this process's load a ping waits behind N decodes, and each connection\n" +
	"closed for it is a relist; this API server never goes away, which is what the check is for).\n"

var apiStartConcurrency = flag.Int("apiscale.start-concurrency", 16,
	"BenchmarkStatusAPI: node managers syncing their caches at once (a start waits for a slot)")

// apiSharedNodes is the Node informer the simulated agents of one size share.
type apiSharedNodes struct {
	inf toolscache.SharedIndexInformer
}

// apiResyncPeriod is the informers' resync period, controller-runtime's default SyncPeriod.
const apiResyncPeriod = 10 * time.Hour

// newAPISharedNodes builds the informer the agent's cache builds for Nodes, through cfg (the
// agent's identity), and runs it until ctx is done. It returns once it has synced.
func newAPISharedNodes(ctx context.Context, cfg *rest.Config) (*apiSharedNodes, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	opts := controllers.CacheOptionsFor(cfg)
	inf := opts.NewInformer(lw, &corev1.Node{}, apiResyncPeriod,
		toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	var transform toolscache.TransformFunc
	for o, by := range opts.ByObject {
		if _, ok := o.(*corev1.Node); ok {
			transform = by.Transform
		}
	}
	if transform == nil {
		return nil, errors.New("the agent's cache options have no transform for Nodes")
	}
	if err := inf.SetTransform(transform); err != nil {
		return nil, err
	}
	go inf.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("the shared Node informer did not sync: %w", context.Cause(ctx))
	}
	return &apiSharedNodes{inf: inf}, nil
}

// view is what one agent's cache gets as its Node informer.
func (s *apiSharedNodes) view() *apiNodeView { return &apiNodeView{SharedIndexInformer: s.inf} }

// apiNodeView is one agent's Node informer: the shared one, whose run is not its own (Run waits
// for the agent's cache to stop, then removes the handlers added through the view) and whose
// transform is set already (controllers.TrimNode, which the agent's cache would set).
type apiNodeView struct {
	toolscache.SharedIndexInformer

	mu      sync.Mutex
	regs    []toolscache.ResourceEventHandlerRegistration
	stopped atomic.Bool
}

func (v *apiNodeView) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return v.AddEventHandlerWithOptions(h, toolscache.HandlerOptions{})
}

func (v *apiNodeView) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, p time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	return v.AddEventHandlerWithOptions(h, toolscache.HandlerOptions{ResyncPeriod: &p})
}

func (v *apiNodeView) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, o toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped.Load() {
		return nil, errors.New("the agent's Node informer has stopped")
	}
	reg, err := v.SharedIndexInformer.AddEventHandlerWithOptions(h, o)
	if err == nil {
		v.regs = append(v.regs, reg)
	}
	return reg, err
}

func (v *apiNodeView) RemoveEventHandler(reg toolscache.ResourceEventHandlerRegistration) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, r := range v.regs {
		if r == reg {
			v.regs = append(v.regs[:i], v.regs[i+1:]...)
			break
		}
	}
	return v.SharedIndexInformer.RemoveEventHandler(reg)
}

func (v *apiNodeView) Run(stop <-chan struct{}) {
	<-stop
	v.stop()
}

func (v *apiNodeView) RunWithContext(ctx context.Context) {
	<-ctx.Done()
	v.stop()
}

func (v *apiNodeView) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopped.Store(true)
	for _, r := range v.regs {
		_ = v.SharedIndexInformer.RemoveEventHandler(r)
	}
	v.regs = nil
}

func (v *apiNodeView) IsStopped() bool { return v.stopped.Load() || v.SharedIndexInformer.IsStopped() }

// SetTransform: the shared informer has the agent's transform of Nodes already.
func (v *apiNodeView) SetTransform(toolscache.TransformFunc) error { return nil }

// SetWatchErrorHandler and SetWatchErrorHandlerWithContext: the shared informer's watch errors
// are its own (client-go's default handler logs them).
func (v *apiNodeView) SetWatchErrorHandler(toolscache.WatchErrorHandler) error { return nil }

func (v *apiNodeView) SetWatchErrorHandlerWithContext(toolscache.WatchErrorHandlerWithContext) error {
	return nil
}

// AddIndexers would add to every agent's Node index: the agent adds none (no field index).
func (v *apiNodeView) AddIndexers(toolscache.Indexers) error {
	return errors.New("the simulated agents share their Node informer: no indexers can be added to it")
}

// apiAgentCacheOptions are the agent's cache options (controllers.CacheOptionsFor, as
// cmd/kube-vrrp/agent.go builds them) with the shared Node informer in place of the agent's
// own; built is told each other informer the cache builds (VirtualIPs, VirtualIPMembers) and
// of what.
func apiAgentCacheOptions(cfg *rest.Config, nodes *apiSharedNodes, built func(runtime.Object, toolscache.SharedIndexInformer)) cache.Options {
	opts := controllers.CacheOptionsFor(cfg)
	own := opts.NewInformer
	opts.NewInformer = func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
		if _, ok := obj.(*corev1.Node); ok {
			return nodes.view()
		}
		inf := own(lw, obj, resync, idx)
		if built != nil {
			built(obj, inf)
		}
		return inf
	}
	return opts
}

// newAPISharedMapper is the REST mapper the simulated agents share: the API discovery each
// manager reads when it starts (lazily, per API group), the same for every agent, read once.
func newAPISharedMapper(cfg *rest.Config) (meta.RESTMapper, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return apiutil.NewDynamicRESTMapper(cfg, hc)
}

// apiStartGate lets at most n node managers sync their caches at once.
type apiStartGate struct{ slots chan struct{} }

func newAPIStartGate(n int) *apiStartGate {
	return &apiStartGate{slots: make(chan struct{}, max(n, 1))}
}

// enter waits for a slot; the returned function gives it back (once, however often called).
func (g *apiStartGate) enter(ctx context.Context) (leave func(), err error) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return func() {}, ctx.Err()
	}
	var once sync.Once
	return func() { once.Do(func() { <-g.slots }) }, nil
}

// apiStartProfile starts a CPU profile of this process into path; stop ends it.
func apiStartProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// apiDeliveries records when each agent's VirtualIPMember informer delivered (to the agent's
// controllers' handlers) a failover's new MASTER's member in state MASTER: the fan-out of that
// write, as each agent sees it.
type apiDeliveries struct {
	mu         sync.Mutex
	name, node string
	at         map[int]time.Time
}

// arm starts recording the deliveries of node's MASTER member of VirtualIP name.
func (d *apiDeliveries) arm(name, node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.name, d.node, d.at = name, node, map[int]time.Time{}
}

// disarm stops recording and returns when each agent had it.
func (d *apiDeliveries) disarm() map[int]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	at := d.at
	d.name, d.node, d.at = "", "", nil
	return at
}

// observe is agent's informer delivering obj.
func (d *apiDeliveries) observe(agent int, obj any) {
	m, ok := obj.(*v1alpha1.VirtualIPMember)
	if !ok || m.Status.State != vrrp.Master.String() {
		return
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at == nil || m.Spec.VirtualIP != d.name || m.Spec.Node != d.node {
		return
	}
	if _, seen := d.at[agent]; !seen {
		d.at[agent] = now
	}
}

// apiCriticalPath is one failover's path to a stored status.master: the new MASTER's agent
// applies its member (entry: from the takeover until the API server answered), the member's
// watch event reaches the agent that writes the summary (toWriter: from that answer until the
// writer's cache had it; in this process, behind N agents decoding their copies), and the
// writer's summary is stored (react: from then until the API server answered; the
// aggregator's 250 ms batch included).
type apiCriticalPath struct {
	entry, toWriter, react time.Duration
	ok                     bool // every step was seen (else only entry may be set)
}

// addCriticalPath adds a failover's path and deliveries, from the writes of its window
// (recs), the deliveries of the new MASTER's (node's) member of VirtualIP name, and the
// takeover's time t1. isSummary is the write that stored the right status.master.
func (r *apiScaleResult) addCriticalPath(recs []apiWrite, delivered map[int]time.Time, t1 time.Time, name, node string, isSummary func(apiWrite) bool) {
	var entryAt time.Time
	for _, w := range recs {
		if w.memberApply() && w.vip == name && w.node == node && w.own() && w.code < 300 && w.at.After(t1) {
			entryAt = w.at
			break
		}
	}
	i := slices.IndexFunc(recs, isSummary)
	if i < 0 {
		r.notStored++
	} else {
		r.stored = append(r.stored, recs[i].at.Sub(t1))
	}
	if entryAt.IsZero() {
		r.paths = append(r.paths, apiCriticalPath{})
		return
	}
	for _, at := range delivered {
		r.delivery = append(r.delivery, max(at.Sub(entryAt), 0))
	}
	p := apiCriticalPath{entry: entryAt.Sub(t1)}
	if i >= 0 {
		if got, ok := delivered[recs[i].agent]; ok {
			p.toWriter, p.react, p.ok = max(got.Sub(entryAt), 0), recs[i].at.Sub(got), true
		}
	}
	r.paths = append(r.paths, p)
}

// pathQuantile is quantile q of one step of the failovers' critical paths (those seen whole).
func (r apiScaleResult) pathQuantile(q float64, step func(apiCriticalPath) time.Duration) time.Duration {
	var ds []time.Duration
	for _, p := range r.paths {
		if p.ok {
			ds = append(ds, step(p))
		}
	}
	return apiQuantile(ds, q)
}

// waitFor waits until a recorded write satisfies ok, for up to limit.
func (t *apiTraffic) waitFor(ok func(apiWrite) bool, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		t.mu.Lock()
		found := slices.ContainsFunc(t.recs, ok)
		t.mu.Unlock()
		if found {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiWithoutDelivery is a failover's time until the summary was stored, without the time the
// new MASTER's entry took to reach the summary writer's cache.
func apiWithoutDelivery(p apiCriticalPath) time.Duration { return p.entry + p.react }
