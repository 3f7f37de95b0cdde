package envtest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	vrrpprobe "github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The harness runs the reconcilers of `kube-vrrp agent` (cmd/kube-vrrp/agent.go) for simulated
// nodes against the package's API server: per node a manager with the VirtualIPReconciler and
// the StatusReconciler driving a fake agent, and the Aggregator (no leader election: each node
// writes the summaries whose writer it is).

// agentNamespace is the agent's namespace: its Secrets.
const agentNamespace = "kube-vrrp"

func fullScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// adminClient is a client of the API server's admin with every type the tests use.
func adminClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ensureNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(t.Context(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// fakeAgent implements controllers.Agent. It records Apply and Remove; Snapshot reports each
// configured instance from its config, in the state the test set (Backup by default).
type fakeAgent struct {
	changes chan<- struct{}
	ready   chan struct{}

	mu      sync.Mutex
	configs map[string]vrrp.Config
	calls   []call
	states  map[string]agent.Status // set by the test: State, Reason
	// events are the transitions it published, as the agent's stream does (controllers.Stream).
	events []vrrp.Event
}

type call struct {
	op   string // Apply or Remove
	name string
	cfg  vrrp.Config
}

func newFakeAgent(changes chan<- struct{}) *fakeAgent {
	return &fakeAgent{changes: changes, ready: make(chan struct{}, 1), configs: map[string]vrrp.Config{}, states: map[string]agent.Status{}}
}

// publish queues e for Take; the lock is held.
func (f *fakeAgent) publish(e vrrp.Event) {
	e.At = time.Now()
	f.events = append(f.events, e)
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

func (f *fakeAgent) Ready() <-chan struct{} { return f.ready }

func (f *fakeAgent) Take() []vrrp.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	evs := f.events
	f.events = nil
	return evs
}

func (f *fakeAgent) notify() {
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

func (f *fakeAgent) Apply(name string, cfg vrrp.Config, _ ...vrrpprobe.Spec) error {
	f.mu.Lock()
	_, running := f.configs[name]
	f.configs[name] = cfg
	f.calls = append(f.calls, call{op: "Apply", name: name, cfg: cfg})
	if !running {
		// A new instance starts as Backup, as the engine's does.
		f.publish(vrrp.Event{Kind: vrrp.EventTransition, Instance: name, From: vrrp.Initialize, State: vrrp.Backup, Reason: vrrp.ReasonStarted})
	}
	f.mu.Unlock()
	f.notify()
	return nil
}

func (f *fakeAgent) Remove(name string) {
	f.mu.Lock()
	_, had := f.configs[name]
	delete(f.configs, name)
	delete(f.states, name) // a new instance starts afresh
	f.calls = append(f.calls, call{op: "Remove", name: name})
	f.mu.Unlock()
	if had {
		f.notify()
	}
}

func (f *fakeAgent) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.configs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (f *fakeAgent) StatusOf(name string) (agent.Status, bool) {
	for _, st := range f.Snapshot() {
		if st.Name == name {
			return st, true
		}
	}
	return agent.Status{}, false
}

func (f *fakeAgent) Snapshot() []agent.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []agent.Status
	for _, name := range slices.Sorted(maps.Keys(f.configs)) {
		cfg := f.configs[name]
		st, ok := f.states[name]
		if !ok {
			st.State, st.Reason, st.Since = vrrp.Backup, vrrp.ReasonStarted, time.Unix(1_700_000_000, 0)
		}
		st.Name, st.Interface, st.VRID, st.Priority, st.Primary = name, cfg.Interface, cfg.VRID, cfg.Priority, cfg.Primary
		out = append(out, st)
	}
	return out
}

// set puts instance name in state, as a transition of the engine would, and publishes it.
func (f *fakeAgent) set(name string, state vrrp.State, reason string) {
	f.mu.Lock()
	from := vrrp.Backup
	if st, ok := f.states[name]; ok {
		from = st.State
	}
	f.states[name] = agent.Status{Status: vrrp.Status{State: state, Reason: reason, Since: time.Now()}}
	if from != state {
		f.publish(vrrp.Event{Kind: vrrp.EventTransition, Instance: name, From: from, State: state, Reason: reason})
	}
	f.mu.Unlock()
	f.notify()
}

// setStatus puts instance name in st's state, with its reason and words (Message, Adjustment,
// HostError).
func (f *fakeAgent) setStatus(name string, st agent.Status) {
	f.mu.Lock()
	from := vrrp.Backup
	if prev, ok := f.states[name]; ok {
		from = prev.State
	}
	f.states[name] = st
	if from != st.State {
		f.publish(vrrp.Event{Kind: vrrp.EventTransition, Instance: name, From: from, State: st.State, Reason: st.Reason})
	}
	f.mu.Unlock()
	f.notify()
}

func (f *fakeAgent) config(name string) (vrrp.Config, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.configs[name]
	return c, ok
}

// count returns how many times op was called for name.
func (f *fakeAgent) count(op, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int
	for _, c := range f.calls {
		if c.op == op && c.name == name {
			n++
		}
	}
	return n
}

// codeRecorder records the status code of every response of the clients it wraps.
type codeRecorder struct {
	mu    sync.Mutex
	codes []response
}

type response struct {
	method, path string
	code         int
}

func (r *codeRecorder) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	prev := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil {
				r.mu.Lock()
				r.codes = append(r.codes, response{req.Method, req.URL.Path, resp.StatusCode})
				r.mu.Unlock()
			}
			return resp, err
		})
	}
	return cfg
}

// failures returns the responses with a status that means the request or its credentials are
// wrong: 400, 401, 403, 422 (404 and 409 are part of normal operation: a write that lost a race
// to another, retried).
func (r *codeRecorder) failures() []response {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []response
	for _, c := range r.codes {
		switch c.code {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity:
			out = append(out, c)
		}
	}
	return out
}

// count returns how many responses had status code.
func (r *codeRecorder) count(code int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int
	for _, c := range r.codes {
		if c.code == code {
			n++
		}
	}
	return n
}

func (r *codeRecorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.codes)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// logBuffer collects the logs of the managers and reconcilers, to show on failure and to check
// that no secret is ever logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// simNode is one simulated node: its Node object, its fake agent and its manager.
type simNode struct {
	name     string
	ip       string
	agent    *fakeAgent
	rejected *controllers.Rejections
	// dumps counts the reads of the node's interfaces (netlink dumps on a real node).
	dumps atomic.Int64
}

// interfaces is the node's host: a loopback and eth0 with its InternalIP in 198.18.0.0/24.
func (n *simNode) interfaces() ([]desired.Interface, error) {
	n.dumps.Add(1)
	return []desired.Interface{
		{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix(n.ip + "/24")}},
	}, nil
}

// createNode creates the Node object with its labels and InternalIP (the status is what the
// kubelet would report), and deletes it when the test ends.
func createNode(t *testing.T, c client.Client, name, ip string, labels map[string]string) {
	t.Helper()
	ctx := t.Context()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.WithoutCancel(ctx), n) })
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}
	if err := c.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
}

// startManager starts mgr and stops it (and waits for it) when the test ends, before the
// objects it watches are deleted.
func startManager(t *testing.T, what string, mgr ctrl.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop", what)
		}
	})
}

// startNode runs the node side of the agent for name, as cmd/kube-vrrp/agent.go wires it:
// its cache (controllers.CacheOptions: trimmed Nodes), Secrets got by name, never cached (no
// list or watch), no leader election, the VirtualIPReconciler, the StatusReconciler and the
// Aggregator in one manager.
func startNode(t *testing.T, restCfg *rest.Config, log *slog.Logger, name, ip string) *simNode {
	t.Helper()
	return startNodeWith(t, restCfg, log, name, ip, nodeOptions{})
}

// nodeOptions change what startNodeWith wires.
type nodeOptions struct {
	// resync is the StatusReconciler's Resync; 0 is its default (a minute).
	resync time.Duration
	// hostPoll is the VirtualIPReconciler's HostPoll; 0 is its default (2 s).
	hostPoll time.Duration
}

// startNodeWith is startNode with options.
func startNodeWith(t *testing.T, restCfg *rest.Config, log *slog.Logger, name, ip string, o nodeOptions) *simNode {
	t.Helper()
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	n := &simNode{name: name, ip: ip, agent: newFakeAgent(kick), rejected: controllers.NewRejections(func(string) { poke() })}
	log = log.With("node", name)
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 fullScheme(t),
		Logger:                 logr.FromSlogHandler(log.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(),
		Client:                 controllers.ClientOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	vr := &controllers.VirtualIPReconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), NodeName: name,
		Namespace: agentNamespace, Agent: n.agent, Interfaces: n.interfaces, Rejected: n.rejected, Log: log,
		HostPoll: o.hostPoll}
	if err := vr.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	sr := &controllers.StatusReconciler{Client: mgr.GetClient(), Reader: mgr.GetClient(), NodeName: name,
		Agent: n.agent, Rejected: n.rejected, Recorder: mgr.GetEventRecorder("kube-vrrp-agent"), Log: log, Changes: kick,
		Resync: o.resync}
	if err := sr.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	agg := &controllers.Aggregator{Client: mgr.GetClient(), NodeName: name, Log: log.With("component", "aggregator")}
	if err := agg.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(&controllers.EventReporter{Stream: n.agent, Reader: mgr.GetClient(), NodeName: name,
		Recorder: mgr.GetEventRecorder("kube-vrrp-agent"), Log: log}); err != nil {
		t.Fatal(err)
	}
	startManager(t, "node "+name, mgr)
	return n
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vipStatus is a VirtualIP as the API server has it, with its VirtualIPMembers: the summary
// in its status, each node's report in a member of its own (read in a second request: the two
// agree once the agents have settled, which the tests wait for).
type vipStatus struct {
	*v1alpha1.VirtualIP
	// members are the VirtualIP's members, by node.
	members []v1alpha1.VirtualIPMember
}

// getVIP reads a VirtualIP and its members from the API server (not a cache).
func getVIP(ctx context.Context, c client.Client, name string) (*vipStatus, error) {
	v := &vipStatus{VirtualIP: &v1alpha1.VirtualIP{}}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, v.VirtualIP); err != nil {
		return v, err
	}
	var err error
	v.members, err = membersOf(ctx, c, name)
	return v, err
}

// membersOf lists the members of the VirtualIP name from the API server, by node: those whose
// spec.virtualIP is name (a selectable field of the CRD, so the API server selects them).
func membersOf(ctx context.Context, c client.Reader, name string) ([]v1alpha1.VirtualIPMember, error) {
	var list v1alpha1.VirtualIPMemberList
	if err := c.List(ctx, &list, client.MatchingFields{"spec.virtualIP": name}); err != nil {
		return nil, err
	}
	for _, m := range list.Items {
		if m.Spec.VirtualIP != name {
			return nil, fmt.Errorf("the field selector spec.virtualIP=%s listed %s, a member of %s", name, m.Name, m.Spec.VirtualIP)
		}
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.VirtualIPMember) int { return strings.Compare(a.Spec.Node, b.Spec.Node) })
	return list.Items, nil
}

// memberOf returns the member of node in v.
func memberOf(v *vipStatus, node string) (*v1alpha1.VirtualIPMember, bool) {
	for i := range v.members {
		if m := &v.members[i]; m.Spec.Node == node {
			return m, true
		}
	}
	return nil, false
}

// entryOf returns the report of node on v: its member's status, with its name.
func entryOf(v *vipStatus, node string) (v1alpha1.NodeStatus, bool) {
	if m, ok := memberOf(v, node); ok {
		return m.Entry(), true
	}
	return v1alpha1.NodeStatus{}, false
}

// entryNames returns the nodes with a member of v, sorted.
func entryNames(v *vipStatus) []string {
	var out []string
	for _, m := range v.members {
		out = append(out, m.Spec.Node)
	}
	return out
}

// version changes whenever the VirtualIP or one of its members is written, created or
// deleted: their resourceVersions.
func (v *vipStatus) version() string {
	var b strings.Builder
	b.WriteString(v.ResourceVersion)
	for _, m := range v.members {
		fmt.Fprintf(&b, " %s@%s", m.Name, m.ResourceVersion)
	}
	return b.String()
}

// deleteVIP deletes vip and then its members, as the garbage collector would: they are owned
// by it, but envtest runs no kube-controller-manager. For the cleanup of a test.
func deleteVIP(ctx context.Context, c client.Client, vip *v1alpha1.VirtualIP) {
	ctx = context.WithoutCancel(ctx)
	_ = c.Delete(ctx, &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: vip.Name}})
	_ = c.DeleteAllOf(ctx, &v1alpha1.VirtualIPMember{}, client.MatchingFields{"spec.virtualIP": vip.Name})
}

func conditionOf(v *vipStatus, typ string) (metav1.Condition, bool) {
	for _, c := range v.Status.Conditions {
		if c.Type == typ {
			return c, true
		}
	}
	return metav1.Condition{}, false
}

// describe prints the status of v and its members for failure messages.
func describe(v *vipStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d observed %d master %q;", v.Generation, v.Status.ObservedGeneration, v.Status.Master)
	for _, m := range v.members {
		n := m.Status
		fmt.Fprintf(&b, " %s=%s(%s %q)", m.Spec.Node, n.State, n.Reason, n.Message)
	}
	for _, c := range v.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s/%s", c.Type, c.Status, c.Reason)
	}
	return b.String()
}
