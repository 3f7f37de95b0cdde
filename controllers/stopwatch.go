package controllers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// StopDecisionWait is the longest Decide waits for the watches to catch up when what they hold
// says "final" but may still turn into "restart" (docs/design.md §4.9.1): the API server marks
// the pod deleted before the kubelet sends SIGTERM, but the watch event may arrive after the
// signal. A definite final stop (the pod at the newest revision, a cordoned node, the
// DaemonSet gone) never waits.
const StopDecisionWait = 100 * time.Millisecond

// maxWatchError bounds the part of a reason that quotes a watch's error.
const maxWatchError = 200

// StopWatch keeps what the agent needs to tell, at SIGTERM, a restart from a final stop
// (decideStop) current from watches, so that the decision is made from memory, with no
// request to the API server, in microseconds: the agent's own pod (a field selector on its
// name), its node (likewise), the DaemonSet that controls the pod (on its name, once the pod
// names it) and that DaemonSet's ControllerRevisions (its label selector, once the DaemonSet
// is known). Each object is trimmed to what the decision reads as it is decoded, so the
// watches hold one pod, one node, one DaemonSet and its revisions, a few hundred bytes each.
//
// A watch that has not listed yet, or is not connected (it failed, or ended and is being
// opened again), cannot be trusted: the decision is then final.
type StopWatch struct {
	client                       kubernetes.Interface
	namespace, podName, nodeName string
	log                          *slog.Logger

	chain chan struct{} // poked when the pod or DaemonSet changes: which watches to follow

	mu       sync.Mutex
	changed  chan struct{} // closed, then replaced, whenever a watch's objects or state change
	started  bool
	pods     *stopWatched
	nodes    *stopWatched
	ds, revs *stopWatched // nil until the pod (the DaemonSet) names what to follow
	// deletionSeen is when the pod's watch first held it with a deletionTimestamp.
	deletionSeen time.Time
}

// NewStopWatch makes the watches of the agent's pod namespace/pod on node, not yet running
// (Run). With no pod name (no downward API), Decide always says final.
func NewStopWatch(c kubernetes.Interface, namespace, pod, node string, log *slog.Logger) *StopWatch {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StopWatch{client: c, namespace: namespace, podName: pod, nodeName: node, log: log,
		chain: make(chan struct{}, 1), changed: make(chan struct{})}
}

// Run runs the watches until ctx is done, following the DaemonSet the pod names and that
// DaemonSet's selector as they change; it returns when every watch has stopped.
func (w *StopWatch) Run(ctx context.Context) {
	if w.namespace == "" || w.podName == "" || w.nodeName == "" {
		return
	}
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return
	}
	w.started = true
	w.pods = w.watchPod(ctx)
	w.nodes = w.watchNode(ctx)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		all := []*stopWatched{w.pods, w.nodes, w.ds, w.revs}
		w.mu.Unlock()
		for _, s := range all {
			s.stop()
		}
	}()
	for {
		w.follow(ctx)
		select {
		case <-ctx.Done():
			return
		case <-w.chain:
		}
	}
}

// follow starts the watch of the DaemonSet the pod names, and of the ControllerRevisions that
// DaemonSet selects, and stops those of another name or selector (outside w.mu: a stopping
// informer waits for its handlers, which take it).
func (w *StopWatch) follow(ctx context.Context) {
	var old []*stopWatched
	defer func() {
		for _, s := range old {
			s.stop()
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	p, _ := w.pods.get(w.namespace + "/" + w.podName).(*corev1.Pod)
	if p == nil {
		return
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "DaemonSet" || groupOf(ref.APIVersion) != appsv1.GroupName {
		return
	}
	if w.ds == nil || w.ds.key != ref.Name {
		old = append(old, w.ds, w.revs)
		w.ds, w.revs = w.watchDaemonSet(ctx, ref.Name), nil
		w.notify()
	}
	ds, _ := w.ds.get(w.namespace + "/" + ref.Name).(*appsv1.DaemonSet)
	if ds == nil || ds.UID != ref.UID {
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		return
	}
	if w.revs == nil || w.revs.key != sel.String() {
		old = append(old, w.revs)
		w.revs = w.watchRevisions(ctx, sel.String())
		w.notify()
	}
}

// notify wakes whoever waits in Decide. Called with w.mu held.
func (w *StopWatch) notify() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// changedObjects is every watch's event handler: the objects changed.
func (w *StopWatch) changedObjects(chain bool) {
	w.mu.Lock()
	if p, _ := w.pods.get(w.namespace + "/" + w.podName).(*corev1.Pod); p != nil && p.DeletionTimestamp != nil && w.deletionSeen.IsZero() {
		w.deletionSeen = time.Now()
	}
	w.notify()
	w.mu.Unlock()
	if chain {
		select {
		case w.chain <- struct{}{}:
		default:
		}
	}
}

// changedState is every watch's connection callback.
func (w *StopWatch) changedState() {
	w.mu.Lock()
	w.notify()
	w.mu.Unlock()
}

// Decide says whether the stop is a restart, from what the watches hold, and why (for the log).
// When the answer is final but may still change (a watch not yet current, the pod's deletion
// not yet seen), it waits for the watches, at most wait. ctx ends the wait early. It makes
// no request.
func (w *StopWatch) Decide(ctx context.Context, wait time.Duration) (restart bool, reason string) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		w.mu.Lock()
		changed := w.changed
		w.mu.Unlock()
		v := decideStop(w, w.namespace, w.podName, w.nodeName)
		if v.restart || !v.pending {
			return v.restart, v.reason
		}
		select {
		case <-changed:
		case <-timer.C:
			return v.restart, v.reason
		case <-ctx.Done():
			return v.restart, v.reason
		}
	}
}

// DeletionSeen is when the pod's watch first held the pod marked for deletion (zero if not
// yet): against the signal's arrival, how far ahead of the kubelet's SIGTERM the watch was.
func (w *StopWatch) DeletionSeen() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.deletionSeen
}

// The stopSource of decideStop.

func (w *StopWatch) pod() (*corev1.Pod, string) {
	w.mu.Lock()
	s := w.pods
	w.mu.Unlock()
	if why := s.untrusted(); why != "" {
		return nil, why
	}
	p, _ := s.get(w.namespace + "/" + w.podName).(*corev1.Pod)
	return p, ""
}

func (w *StopWatch) daemonSet(name string) (*appsv1.DaemonSet, string) {
	w.mu.Lock()
	s := w.ds
	w.mu.Unlock()
	if s == nil || s.key != name {
		return nil, "has not started"
	}
	if why := s.untrusted(); why != "" {
		return nil, why
	}
	ds, _ := s.get(w.namespace + "/" + name).(*appsv1.DaemonSet)
	return ds, ""
}

func (w *StopWatch) revisions(selector string) ([]*appsv1.ControllerRevision, string) {
	w.mu.Lock()
	s := w.revs
	w.mu.Unlock()
	if s == nil || s.key != selector {
		return nil, "has not started"
	}
	if why := s.untrusted(); why != "" {
		return nil, why
	}
	var out []*appsv1.ControllerRevision
	for _, o := range s.store.List() {
		if r, ok := o.(*appsv1.ControllerRevision); ok {
			out = append(out, r)
		}
	}
	return out, ""
}

func (w *StopWatch) node() (*corev1.Node, string) {
	w.mu.Lock()
	s := w.nodes
	w.mu.Unlock()
	if why := s.untrusted(); why != "" {
		return nil, why
	}
	n, _ := s.get(w.nodeName).(*corev1.Node)
	return n, ""
}

// The watches.

func (w *StopWatch) watchPod(ctx context.Context) *stopWatched {
	pods := w.client.CoreV1().Pods(w.namespace)
	byName := fields.OneTermEqualSelector("metadata.name", w.podName).String()
	return w.start(ctx, "pod", w.podName, &corev1.Pod{}, true, trimStopPod,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return pods.List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return pods.Watch(ctx, o)
		})
}

func (w *StopWatch) watchNode(ctx context.Context) *stopWatched {
	nodes := w.client.CoreV1().Nodes()
	byName := fields.OneTermEqualSelector("metadata.name", w.nodeName).String()
	return w.start(ctx, "node", w.nodeName, &corev1.Node{}, false, trimStopNode,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return nodes.List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return nodes.Watch(ctx, o)
		})
}

func (w *StopWatch) watchDaemonSet(ctx context.Context, name string) *stopWatched {
	dss := w.client.AppsV1().DaemonSets(w.namespace)
	byName := fields.OneTermEqualSelector("metadata.name", name).String()
	return w.start(ctx, "DaemonSet", name, &appsv1.DaemonSet{}, true, trimStopDaemonSet,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return dss.List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return dss.Watch(ctx, o)
		})
}

func (w *StopWatch) watchRevisions(ctx context.Context, selector string) *stopWatched {
	crs := w.client.AppsV1().ControllerRevisions(w.namespace)
	return w.start(ctx, "ControllerRevisions", selector, &appsv1.ControllerRevision{}, false, trimStopRevision,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return crs.List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return crs.Watch(ctx, o)
		})
}

// start runs an informer of what list and watch return, trimmed by trim, until ctx is done or
// the watch is stopped; chain says whether its changes may change which watches to follow.
func (w *StopWatch) start(ctx context.Context, what, key string, obj runtime.Object, chain bool, trim cache.TransformFunc,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *stopWatched {
	ctx, cancel := context.WithCancel(ctx)
	s := &stopWatched{what: what, key: key, cancel: cancel, done: make(chan struct{}), onState: w.changedState}
	changed := func(any) { w.changedObjects(chain) }
	store, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: &stopListWatch{s: s, list: list, watch: watchFn},
		ObjectType:    obj,
		Handler: cache.ResourceEventHandlerFuncs{AddFunc: changed, DeleteFunc: changed,
			UpdateFunc: func(_, o any) { changed(o) }},
		Transform: trim,
	})
	s.store, s.ctrl = store, ctrl
	go func() {
		defer close(s.done)
		ctrl.RunWithContext(ctx)
	}()
	return s
}

// stopWatched is one of StopWatch's informers, and whether its watch is open.
type stopWatched struct {
	what, key string // the kind of object, and the name or selector it follows
	store     cache.Store
	ctrl      cache.Controller
	cancel    context.CancelFunc
	done      chan struct{}
	onState   func()

	mu      sync.Mutex
	open    bool   // a watch is open: what the store holds is what the API server last said
	watches uint64 // the watches opened so far: the last one is the one open says is open
	lastErr string // why the last list or watch failed
}

// stop stops the informer and waits for it. A nil stopWatched is stopped.
func (s *stopWatched) stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}

// get returns the object with key, nil if there is none (or s is nil).
func (s *stopWatched) get(key string) any {
	if s == nil {
		return nil
	}
	o, ok, err := s.store.GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	return o
}

// untrusted says why what s holds cannot be trusted ("" when it can).
func (s *stopWatched) untrusted() string {
	if s == nil {
		return "has not started"
	}
	if !s.ctrl.HasSynced() {
		return "has not listed yet" + s.lastError()
	}
	s.mu.Lock()
	open := s.open
	s.mu.Unlock()
	if !open {
		return "is not connected" + s.lastError()
	}
	return ""
}

func (s *stopWatched) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == "" {
		return ""
	}
	return " (" + s.lastErr + ")"
}

func (s *stopWatched) setOpen(open bool, err error) {
	s.mu.Lock()
	s.open = open
	if err != nil {
		s.lastErr = truncate(err.Error(), maxWatchError)
	}
	s.mu.Unlock()
	s.onState()
}

// opened records that a watch is open and returns its number, for ended.
func (s *stopWatched) opened() uint64 {
	s.mu.Lock()
	s.watches++
	n := s.watches
	s.open = true
	s.mu.Unlock()
	s.onState()
	return n
}

// ended records that watch n ended. The reflector opens the next watch as soon as it has
// stopped one (after an error event), and a stopped watch's end is noticed some time after
// Stop: the end of one that is no longer the last changes nothing.
func (s *stopWatched) ended(n uint64) {
	s.mu.Lock()
	last := n == s.watches
	if last {
		s.open = false
	}
	s.mu.Unlock()
	if last {
		s.onState()
	}
}

// stopListWatch lists and watches for a stopWatched, and records whether a watch is open.
type stopListWatch struct {
	s     *stopWatched
	list  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func (lw *stopListWatch) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	l, err := lw.list(ctx, o)
	if err != nil {
		lw.s.setOpen(false, err)
	}
	return l, err
}

func (lw *stopListWatch) List(o metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), o)
}

func (lw *stopListWatch) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), o)
}

func (lw *stopListWatch) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	wi, err := lw.watch(ctx, o)
	if err != nil {
		lw.s.setOpen(false, err)
		return nil, err
	}
	n := lw.s.opened()
	return newEndingWatch(wi, func() { lw.s.ended(n) }), nil
}

// IsWatchListSemanticsUnSupported: these are lists of one object or a few, which a plain list
// reads best; no streamed list (which API servers whose etcd is older than 3.5.13 refuse
// first).
func (lw *stopListWatch) IsWatchListSemanticsUnSupported() bool { return true }

// endingWatch passes on a watch's events and calls ended once, when the watch ends (its
// channel closed by the API server, an error, or Stop).
type endingWatch struct {
	inner watch.Interface
	out   chan watch.Event
	stopc chan struct{}
	once  sync.Once
}

func newEndingWatch(inner watch.Interface, ended func()) *endingWatch {
	e := &endingWatch{inner: inner, out: make(chan watch.Event), stopc: make(chan struct{})}
	go func() {
		defer close(e.out)
		defer ended()
		for ev := range inner.ResultChan() {
			select {
			case e.out <- ev:
			case <-e.stopc:
				return
			}
		}
	}()
	return e
}

func (e *endingWatch) ResultChan() <-chan watch.Event { return e.out }

func (e *endingWatch) Stop() {
	e.once.Do(func() {
		close(e.stopc)
		e.inner.Stop()
	})
}

// The trims: what decideStop reads of each object, and nothing else (no managedFields, no
// status, no containers, no revision data).

func trimMeta(m *metav1.ObjectMeta, keepLabels func(k string) bool) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp}
	for k, v := range m.Labels {
		if keepLabels(k) {
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			out.Labels[k] = v
		}
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		out.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return out
}

func onlyHashLabel(k string) bool { return k == appsv1.ControllerRevisionHashLabelKey }
func noLabels(string) bool        { return false }
func allLabels(string) bool       { return true }

func trimStopPod(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	return &corev1.Pod{ObjectMeta: trimMeta(&p.ObjectMeta, onlyHashLabel), Spec: corev1.PodSpec{NodeName: p.Spec.NodeName}}, nil
}

func trimStopNode(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil
	}
	return &corev1.Node{ObjectMeta: trimMeta(&n.ObjectMeta, allLabels),
		Spec: corev1.NodeSpec{Unschedulable: n.Spec.Unschedulable, Taints: n.Spec.Taints}}, nil
}

func trimStopDaemonSet(o any) (any, error) {
	ds, ok := o.(*appsv1.DaemonSet)
	if !ok {
		return o, nil
	}
	t := &ds.Spec.Template.Spec
	spec := corev1.PodSpec{NodeName: t.NodeName, NodeSelector: t.NodeSelector, Tolerations: t.Tolerations, HostNetwork: t.HostNetwork}
	if a := t.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution}}
	}
	return &appsv1.DaemonSet{ObjectMeta: trimMeta(&ds.ObjectMeta, noLabels),
		Spec: appsv1.DaemonSetSpec{Selector: ds.Spec.Selector, Template: corev1.PodTemplateSpec{Spec: spec}}}, nil
}

func trimStopRevision(o any) (any, error) {
	r, ok := o.(*appsv1.ControllerRevision)
	if !ok {
		return o, nil
	}
	return &appsv1.ControllerRevision{ObjectMeta: trimMeta(&r.ObjectMeta, onlyHashLabel), Revision: r.Revision}, nil
}
