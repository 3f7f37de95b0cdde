package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	vrrpprobe "github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// BenchmarkStatusAPI measures what a failover costs the API server as the cluster grows: N agents
// and V VirtualIPs that each select all N nodes, against a real kube-apiserver and etcd
// (envtest's), for each size of -apiscale.sizes.
//
// Each agent is what `kube-vrrp agent` builds (cmd/kube-vrrp/agent.go): a controller-runtime
// manager with the real VirtualIPReconciler, StatusReconciler, EventReporter and Aggregator,
// its own connection to the API server, and the agent's identity: the admin certificate
// impersonating the agent's ServiceAccount (config/rbac) with the node-name claim of a
// pod-bound token, so that the member policy (config/policy) checks every write as in a
// cluster. Only the VRRP engine is scripted (apiScriptedAgent): it reports the states the
// benchmark sets, and the node's interfaces are given (no netlink).
//
// What the agents share (apiscale_shared_test.go): one Node informer, built as the agent's cache
// builds it, listed and watched once, to a view of which each agent's controllers add their
// handlers, and one REST mapper (the API discovery a manager reads at its start); and they
// start -apiscale.start-concurrency at a time. Each keeps its own connection and its own
// VirtualIP and VirtualIPMember informers, so every member and summary write goes to N agent
// watchers, as in a cluster. No Node changes during a failover, so a Node informer delivers
// nothing in the measured windows, shared or not: writes per failover, 409s and the
// status.master latency are those of N agents with their own watches; what sharing changes is
// the start (one Node list, not N: at N = 500 on two cores the agents did not sync within
// controller-runtime's 2-minute timeout) and the API server's idle Node watchers (1, not N).
// Their HTTP/2 health check waits -apiscale.http2-check, not the agent's 5 s (apiHTTP2Check).
// The table says all this too. Each node's VirtualIPMember of each VirtualIP and each
// VirtualIP's summary are in place before the agents start, as their applies leave them
// (prepopulate), so that the start writes nothing.
//
// After the status settles, it measures the background for -apiscale.quiet (the resync), then
// -apiscale.failovers failovers, one at a time: the MASTER of a VirtualIP goes to Fault and,
// -apiscale.gap later, the next node becomes MASTER. A failover's window runs from just before the
// first change until status.master names the new MASTER, the summary's writer has its answer
// and no agent has written for -apiscale.settle (an apply of another node's own member, its
// periodic resync, does not count for the quiet, and is reported apart). Over the windows it
// reads kube-apiserver's own /metrics (apiserver_request_total by verb, code, resource, DELETE
// included; process_cpu_seconds_total; the VirtualIPMember and VirtualIP watch events it sent,
// count and bytes; its time per member and per summary apply), and etcd's CPU. For each
// failover it takes the critical path apart: when the new MASTER's member was stored, when its
// watch event reached the summary writer's cache, when the summary naming the new MASTER was
// stored, and when this process's own watch saw it; and when the member reached every agent's
// cache. Every agent runs in this process, so each watch event is decoded N times on the cores
// that also run kube-apiserver and etcd, where a cluster decodes it once on each of N
// machines, and the latencies are upper bounds of a cluster's (BenchmarkStatusApplyCost
// measures the API server's part of a member apply alone). It prints a table, with the
// machine's load average; it asserts nothing about the figures.
func BenchmarkStatusAPI(b *testing.B) {
	dir := envtestassets.Require(b)
	sizes, err := apiParseSizes(*apiScaleSizes)
	if err != nil {
		b.Fatal(err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(apiScaleLogs.handler()))
	for _, k := range apiHTTP2Check {
		if _, ok := os.LookupEnv(k); !ok {
			b.Setenv(k, strconv.Itoa(int(max(apiScaleHTTP2.Seconds(), 1))))
		}
	}
	var results []apiScaleResult
	for range b.N {
		for _, sz := range sizes {
			b.Run(fmt.Sprintf("N=%d,V=%d", sz.nodes, sz.vips), func(b *testing.B) {
				r, err := runAPIScale(b, dir, sz)
				if err != nil {
					b.Errorf("N=%d V=%d: %v", sz.nodes, sz.vips, err)
				}
				if r.failovers > 0 || r.setup > 0 {
					results = append(results, r)
					b.ReportMetric(r.writesPerFailover(), "writes/failover")
					b.ReportMetric(ms(r.latency(0.5)), "master-p50-ms")
					b.ReportMetric(ms(r.latency(0.99)), "master-p99-ms")
					b.ReportMetric(0, "ns/op")
				}
				apiScaleLogs.report(b)
			})
		}
	}
	printAPIScaleTable(b, results)
}

var (
	apiScaleSizes = flag.String("apiscale.sizes", "10x1,10x100,10x1000,100x1,100x100,500x1",
		"BenchmarkStatusAPI: comma-separated NODESxVIRTUALIPS to run")
	apiScaleFailovers = flag.Int("apiscale.failovers", 40, "BenchmarkStatusAPI: failovers measured per size")
	apiScaleQuiet     = flag.Duration("apiscale.quiet", 65*time.Second, "BenchmarkStatusAPI: background window without failovers (at least the agents' resync period, 1m)")
	apiScaleGap       = flag.Duration("apiscale.gap", 60*time.Millisecond,
		"BenchmarkStatusAPI: from the MASTER's Fault to the next node's takeover (60 ms: the skew time of a backup at priority 100 hearing a priority-0 advert at 100 ms adverts, RFC 5798 §6.4.2)")
	apiScaleSettle = flag.Duration("apiscale.settle", time.Second, "BenchmarkStatusAPI: no agent write for this long ends a failover's window")
	apiScaleSetup  = flag.Duration("apiscale.setup-timeout", 30*time.Minute, "BenchmarkStatusAPI: bound of each size's setup (objects, agents, status settled)")
	apiScaleHTTP2  = flag.Duration("apiscale.http2-check", 30*time.Second,
		"BenchmarkStatusAPI: the agents' HTTP/2 read-idle and ping timeouts (the agent's are 5s; see apiHTTP2Check)")
	apiScaleProfile = flag.String("apiscale.cpuprofile", "",
		"BenchmarkStatusAPI: write a CPU profile of this process (the N agents) over each size's failovers to PREFIX-NxV.pprof")
)

// apiHTTP2Check is the environment of client-go's HTTP/2 health check, which
// cmd/kube-vrrp/agent.go sets to 5 s each: a connection idle that long is pinged, and closed
// if the answer takes as long. Here it is -apiscale.http2-check: with N agents in one process
// on two cores, a ping's answer waits behind N agents decoding their copies of each status
// write, and every connection closed for that is a relist of every VirtualIP by its agent (at
// N = 500 with 5 s that fed on itself: 824 lists in one failover's window). The check is there
// for an API server that goes away, which this one never does; no figure measured depends on it.
var apiHTTP2Check = []string{"HTTP2_READ_IDLE_TIMEOUT_SECONDS", "HTTP2_PING_TIMEOUT_SECONDS"}

type apiScaleSize struct{ nodes, vips int }

func apiParseSizes(s string) ([]apiScaleSize, error) {
	var out []apiScaleSize
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, v, ok := strings.Cut(f, "x")
		nn, err1 := strconv.Atoi(n)
		vv, err2 := strconv.Atoi(v)
		if !ok || err1 != nil || err2 != nil || nn < 2 || nn > apiMaxNodes || vv < 1 || vv > apiMaxVIPs {
			return nil, fmt.Errorf("-apiscale.sizes: %q: want NODESxVIRTUALIPS, 2..%d nodes, 1..%d VirtualIPs", f, apiMaxNodes, apiMaxVIPs)
		}
		out = append(out, apiScaleSize{nn, vv})
	}
	return out, nil
}

// The address plan of the simulated nodes: node i's InternalIP is 198.18.(i/250).(i%250+1) on
// eth0 (198.18.0.0/16); VirtualIP j runs on eth(1+j/250) with VRID j%250+1 and the address
// 198.19.(16k+15).(j%250+1)/20, k = j/250, where node i has 198.19.(16k+i/250).(i%250+1)/20:
// four interfaces give the 1000 VirtualIPs a slot (interface, VRID) each.
const (
	apiMaxNodes   = 1000
	apiMaxVIPs    = 1000
	apiVRIDsPerIf = 250
)

func apiSimNodeName(i int) string { return fmt.Sprintf("sim-%04d", i) }
func apiSimVIPName(j int) string  { return fmt.Sprintf("vip-%04d", j) }

func apiSimNodeIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(i%250 + 1)})
}

func apiSimInterfaces(i int) []desired.Interface {
	ifs := []desired.Interface{
		{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.PrefixFrom(apiSimNodeIP(i), 16)}},
	}
	for k := range apiMaxVIPs / apiVRIDsPerIf {
		ifs = append(ifs, desired.Interface{Name: fmt.Sprintf("eth%d", k+1), Index: k + 3, Up: true,
			Prefixes: []netip.Prefix{netip.PrefixFrom(apiSimIfAddr(i, k), 20)}})
	}
	return ifs
}

// apiSimIfAddr is node i's address on eth(k+1).
func apiSimIfAddr(i, k int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte(16*k + i/250), byte(i%250 + 1)})
}

// apiSimEntry is the status of the member node i's agent applies for VirtualIP j when it
// starts running it (StatusReconciler's, from the scripted agent's first snapshot).
func apiSimEntry(i, j int, master bool) map[string]any {
	k := j / apiVRIDsPerIf
	e := map[string]any{"state": vrrp.Backup.String(), "priority": int64(desired.DefaultPriority),
		"interface": fmt.Sprintf("eth%d", k+1), "address": apiSimIfAddr(i, k).String(),
		"lastTransitionTime": apiScriptedSince.UTC().Format(time.RFC3339Nano), "reason": vrrp.ReasonStarted}
	if master {
		e["state"], e["reason"] = vrrp.Master.String(), vrrp.ReasonMasterDown
	}
	return e
}

// apiSimMember is node's VirtualIPMember of VirtualIP j (whose UID is uid) with status, as
// its agent applies it (controllers' newMemberApply): owned by the VirtualIP.
func apiSimMember(node string, j int, uid types.UID, status map[string]any) *unstructured.Unstructured {
	vip := apiSimVIPName(j)
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIPMember",
		"metadata": map[string]any{"name": v1alpha1.MemberName(vip, node), "ownerReferences": []any{map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIP", "name": vip, "uid": string(uid)}}},
		"spec":   map[string]any{"virtualIP": vip, "node": node},
		"status": status,
	}}
}

// apiMemberOf returns the VirtualIP and node of a simulated member's name: "<vip>.<node>"
// (v1alpha1.MemberName; neither name has a dot, and they are short).
func apiMemberOf(name string) (vip, node string) {
	vip, node, _ = strings.Cut(name, ".")
	return vip, node
}

func apiSimVIP(j int) *v1alpha1.VirtualIP {
	k := j / apiVRIDsPerIf
	a := netip.AddrFrom4([4]byte{198, 19, byte(16*k + 15), byte(j%apiVRIDsPerIf + 1)})
	return &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: apiSimVIPName(j)},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:         int32(j%apiVRIDsPerIf + 1),
			Addresses:    []string{netip.PrefixFrom(a, 20).String()},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{apiScaleLabel: "true"}},
		},
	}
}

const apiScaleLabel = "kubevrrp.test/scale"

// apiScriptedAgent implements controllers.Agent and controllers.Stream: it runs nothing, and
// reports each instance it was given in the state the benchmark set (at first MASTER on the
// VirtualIP's initial master, BACKUP elsewhere), publishing each later transition as the
// engine does. The change signal is the agent's (agent.Agent.Changes, poked into the status
// writer).
type apiScriptedAgent struct {
	node    string
	master  func(vip string) bool // the initial MASTER of vip is this node
	changes chan<- struct{}
	ready   chan struct{}
	// restarts counts the node manager's stops (each followed by a new one).
	restarts atomic.Int64

	mu      sync.Mutex
	configs map[string]vrrp.Config
	states  map[string]vrrp.Status
	events  []vrrp.Event
}

var apiScriptedSince = time.Unix(1_700_000_000, 0)

func (a *apiScriptedAgent) notify() {
	select {
	case a.changes <- struct{}{}:
	default:
	}
}

func (a *apiScriptedAgent) publishLocked(e vrrp.Event) {
	e.At = time.Now()
	a.events = append(a.events, e)
	select {
	case a.ready <- struct{}{}:
	default:
	}
}

func (a *apiScriptedAgent) Apply(name string, cfg vrrp.Config, _ ...vrrpprobe.Spec) error {
	a.mu.Lock()
	_, running := a.configs[name]
	a.configs[name] = cfg
	if !running {
		st := vrrp.Status{State: vrrp.Backup, Reason: vrrp.ReasonStarted, Since: apiScriptedSince}
		if a.master(name) {
			st = vrrp.Status{State: vrrp.Master, Reason: vrrp.ReasonMasterDown, Since: apiScriptedSince}
		}
		// Not published: the first transitions of every instance would be N×V Events at
		// the start, which is not what is measured.
		a.states[name] = st
	}
	a.mu.Unlock()
	if !running {
		a.notify()
	}
	return nil
}

func (a *apiScriptedAgent) Remove(name string) {
	a.mu.Lock()
	_, had := a.configs[name]
	delete(a.configs, name)
	delete(a.states, name)
	a.mu.Unlock()
	if had {
		a.notify()
	}
}

func (a *apiScriptedAgent) Names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(maps.Keys(a.configs))
}

func (a *apiScriptedAgent) StatusOf(name string) (agent.Status, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg, ok := a.configs[name]
	if !ok {
		return agent.Status{}, false
	}
	st := a.states[name]
	st.Name, st.Interface, st.VRID, st.Priority, st.Primary = name, cfg.Interface, cfg.VRID, cfg.Priority, cfg.Primary
	return agent.Status{Status: st}, true
}

func (a *apiScriptedAgent) Snapshot() []agent.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]agent.Status, 0, len(a.configs))
	for _, name := range slices.Sorted(maps.Keys(a.configs)) {
		cfg := a.configs[name]
		st := a.states[name]
		st.Name, st.Interface, st.VRID, st.Priority, st.Primary = name, cfg.Interface, cfg.VRID, cfg.Priority, cfg.Primary
		out = append(out, agent.Status{Status: st})
	}
	return out
}

func (a *apiScriptedAgent) Ready() <-chan struct{} { return a.ready }

func (a *apiScriptedAgent) Take() []vrrp.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	evs := a.events
	a.events = nil
	return evs
}

// set puts the instance of name in state, as a transition of the engine would.
// stateOf is the state the agent reports for name.
func (a *apiScriptedAgent) stateOf(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.configs[name]; !ok {
		return "(not run)"
	}
	return a.states[name].State.String()
}

func (a *apiScriptedAgent) set(name string, state vrrp.State, reason string) {
	a.mu.Lock()
	prev := a.states[name]
	a.states[name] = vrrp.Status{State: state, Reason: reason, Since: time.Now()}
	if prev.State != state {
		a.publishLocked(vrrp.Event{Kind: vrrp.EventTransition, Instance: name, From: prev.State, State: state, Reason: reason})
	}
	a.mu.Unlock()
	a.notify()
}

// apiTraffic records the agents' writes to the API server, as their transports see them: for
// the quiet that ends a window, and to tell a failover's writes from the other nodes' resync.
type apiTraffic struct {
	mu sync.Mutex
	// involved are the agents whose writes the current phase waits for (nil: every agent);
	// another agent's apply of its own member is its resync.
	involved     map[int]bool
	lastRelevant time.Time
	recording    bool
	recs         []apiWrite
	total        map[string]int // every write, by resource and code
}

type apiWrite struct {
	agent    int
	method   string
	resource string // "virtualipmembers", "virtualips/status", "events", ...
	object   string
	// vip is the VirtualIP the write concerns (a member's or a summary's), node a member's node.
	vip, node string
	manager   string // fieldManager of an apply
	patch     string // the patch type of a PATCH
	code      int
	at        time.Time // when the response came
	// master is the status.master a summary write (the aggregator's) sets, if any.
	master string
	state  string // the state of the member an agent applies
}

// memberApply: an apply of a VirtualIPMember.
func (w apiWrite) memberApply() bool {
	return w.resource == "virtualipmembers" && w.method == http.MethodPatch && w.patch == "apply"
}

// memberDelete: a DELETE of a VirtualIPMember: a withdrawal by its own node, else a prune.
func (w apiWrite) memberDelete() bool {
	return w.resource == "virtualipmembers" && w.method == http.MethodDelete
}

// own: the member written is the writer's own node's.
func (w apiWrite) own() bool { return w.node != "" && w.node == apiSimNodeName(w.agent) }

// summary: the aggregator's apply of a VirtualIP's status.
func (w apiWrite) summary() bool {
	return w.resource == "virtualips/status" && w.manager == controllers.AggregatorFieldManager
}

// kind says what w is, for the totals and the failovers' writes.
func (w apiWrite) kind() string {
	switch {
	case w.memberApply() && w.own():
		return "member applies"
	case w.memberApply():
		return "applies of another node's member"
	case w.memberDelete() && w.own():
		return "member withdrawals (DELETE)"
	case w.memberDelete():
		return "prunes (DELETE of another node's member)"
	case w.summary():
		return "summary applies"
	}
	if w.patch != "" {
		return w.resource + " " + w.patch
	}
	return w.resource + " " + w.method
}

// resync reports whether r is an agent applying its own member while it is not involved.
func (t *apiTraffic) resyncLocked(r apiWrite) bool {
	return t.involved != nil && !t.involved[r.agent] && r.memberApply() && r.own()
}

func (t *apiTraffic) add(r apiWrite) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.total == nil {
		t.total = map[string]int{}
	}
	t.total[fmt.Sprintf("%s %d", r.kind(), r.code)]++
	if !t.resyncLocked(r) {
		t.lastRelevant = time.Now()
	}
	if t.recording {
		t.recs = append(t.recs, r)
	}
}

// phase starts a phase that waits for the writes of involved (none: every agent's).
func (t *apiTraffic) phase(record bool, involved ...int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.involved = nil
	if len(involved) > 0 {
		t.involved = map[int]bool{}
		for _, i := range involved {
			t.involved[i] = true
		}
	}
	t.recording = record
	t.recs = nil
}

// stop ends recording and returns the writes recorded, each with whether it was a resync.
func (t *apiTraffic) stop() (recs []apiWrite, resync []bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	recs = t.recs
	for _, r := range recs {
		resync = append(resync, t.resyncLocked(r))
	}
	t.recording, t.recs = false, nil
	return recs, resync
}

// peekTotals is totals without resetting them.
func (t *apiTraffic) peekTotals() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.totalsLocked()
}

// totals returns the count of every write since the last call, by method, resource and code.
func (t *apiTraffic) totals() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() { t.total = nil }()
	return t.totalsLocked()
}

func (t *apiTraffic) totalsLocked() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(t.total)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, t.total[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// waitQuiet waits until a relevant write came after after (if not zero) and none for quiet,
// for up to limit.
func (t *apiTraffic) waitQuiet(after time.Time, quiet, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		t.mu.Lock()
		last := t.lastRelevant
		t.mu.Unlock()
		if (after.IsZero() || last.After(after)) && time.Since(last) >= quiet {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wrap returns agent i's transport wrapper, recording its writes.
func (t *apiTraffic) wrap(i int) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return apiRoundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet || req.Method == http.MethodHead {
				return rt.RoundTrip(req)
			}
			manager := req.URL.Query().Get("fieldManager")
			var body apiWriteBody
			if manager == controllers.AggregatorFieldManager || strings.HasPrefix(manager, "kube-vrrp-agent/") {
				body = apiReadWriteBody(req)
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				return resp, err
			}
			r := apiWrite{agent: i, method: req.Method, code: resp.StatusCode, manager: manager, at: time.Now(),
				master: body.Status.Master, state: body.Status.State}
			r.resource, r.object = apiResourceOf(req.URL.Path)
			switch r.resource {
			case "virtualipmembers":
				r.vip, r.node = apiMemberOf(r.object)
			case "virtualips", "virtualips/status":
				r.vip = r.object
			}
			if req.Method == http.MethodPatch {
				r.patch = apiPatchKind(req.Header.Get("Content-Type"))
			}
			t.add(r)
			return resp, err
		})
	}
}

// apiWriteBody is what the benchmark reads of an apply's body: the summary's status.master, or
// the state of the member an agent applies.
type apiWriteBody struct {
	Status struct {
		Master string `json:"master"`
		State  string `json:"state"`
	} `json:"status"`
}

// apiReadWriteBody reads an apply's body (a copy: GetBody).
func apiReadWriteBody(req *http.Request) (v apiWriteBody) {
	if req.GetBody == nil {
		return v
	}
	body, err := req.GetBody()
	if err != nil {
		return v
	}
	defer body.Close()
	_ = json.NewDecoder(io.LimitReader(body, 4<<20)).Decode(&v)
	return v
}

type apiRoundTripper func(*http.Request) (*http.Response, error)

func (f apiRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// apiResourceOf returns the resource (with its subresource) and object name of an API path.
func apiResourceOf(path string) (resource, name string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// /api/v1/... or /apis/group/version/...
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return path, ""
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		return "", ""
	case 1:
		return parts[0], ""
	case 2:
		return parts[0], parts[1]
	default:
		return parts[0] + "/" + parts[2], parts[1]
	}
}

func apiPatchKind(contentType string) string {
	switch {
	case strings.HasPrefix(contentType, "application/apply-patch"):
		return "apply"
	case strings.HasPrefix(contentType, "application/json-patch"):
		return "json"
	case strings.HasPrefix(contentType, "application/merge-patch"):
		return "merge"
	case strings.HasPrefix(contentType, "application/strategic-merge-patch"):
		return "strategic"
	}
	return contentType
}

// apiScaleLogs keeps the warnings and errors of every agent: counted, the last few shown.
var apiScaleLogs = &apiLogKeeper{}

type apiLogKeeper struct {
	mu    sync.Mutex
	count map[string]int
	last  []string
}

func (k *apiLogKeeper) handler() slog.Handler {
	return slog.NewTextHandler(k, &slog.HandlerOptions{Level: slog.LevelWarn})
}

func (k *apiLogKeeper) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.count == nil {
		k.count = map[string]int{}
	}
	line := strings.TrimSpace(string(p))
	msg := line
	if _, after, ok := strings.Cut(line, "msg="); ok {
		msg = after
		if i := strings.Index(msg, " "); i > 0 && !strings.HasPrefix(msg, `"`) {
			msg = msg[:i]
		} else if strings.HasPrefix(msg, `"`) {
			if j := strings.Index(msg[1:], `"`); j >= 0 {
				msg = msg[:j+2]
			}
		}
	}
	k.count[msg]++
	if len(k.last) >= 5 {
		k.last = k.last[1:]
	}
	k.last = append(k.last, apiTruncate(line, 400))
	return len(p), nil
}

func apiTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// report logs what was kept since the last report, and forgets it.
func (k *apiLogKeeper) report(b *testing.B) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, m := range slices.Sorted(maps.Keys(k.count)) {
		b.Logf("agents logged %d× (warn/error): %s", k.count[m], m)
	}
	for _, l := range k.last {
		b.Logf("  last: %s", l)
	}
	k.count, k.last = nil, nil
}

// apiScaleEnv is one size's cluster: the API server, the admin's clients, the agents.
type apiScaleEnv struct {
	size       apiScaleSize
	cfg        *rest.Config
	admin      client.WithWatch
	hc         *http.Client // the admin's, for /metrics
	etcd       *url.URL
	apiTraffic *apiTraffic
	agents     []*apiScriptedAgent
	masters    []int           // the current MASTER of each VirtualIP
	nodes      *apiSharedNodes // the agents' Node informer
	mapper     meta.RESTMapper // the agents' REST mapper (API discovery)
	gate       *apiStartGate   // the agents' node managers syncing at once
	// deliveries: when each agent's member informer delivered a failover's new MASTER member.
	deliveries    apiDeliveries
	explained     atomic.Int64 // failovers whose extra writes were told (explainWrites)
	explainedSlow atomic.Int64 // failovers whose late summary was told (explainWrites)
	// watchRestarts counts the failover watches the API server ended before the change.
	watchRestarts atomic.Int64
}

func apiScaleScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, v1alpha1.AddToScheme(s)
}

// The agent's identity, as config/rbac names it (the member policy matches this user).
const (
	apiScaleNamespace = "kube-vrrp"
	apiScaleAgentUser = "system:serviceaccount:kube-vrrp:kube-vrrp"
	apiNodeNameExtra  = "authentication.kubernetes.io/node-name"
)

// decodeTime reads an object's JSON from the API server at path (under the API group's
// version) and times decoding it into a new into() as the agents' clients decode a watch
// event's object (the least of 20 tries), and says its size.
func (e *apiScaleEnv) decodeTime(ctx context.Context, sch *runtime.Scheme, path string, into func() runtime.Object) (time.Duration, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimSuffix(e.cfg.Host, "/")+"/apis/"+v1alpha1.GroupVersion.String()+"/"+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %s", path, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, 0, err
	}
	dec := serializer.NewCodecFactory(sch).UniversalDeserializer()
	best := time.Duration(-1)
	for range 20 {
		t := time.Now()
		if _, _, err := dec.Decode(raw, nil, into()); err != nil {
			return 0, 0, fmt.Errorf("decoding %s: %w", path, err)
		}
		if d := time.Since(t); best < 0 || d < best {
			best = d
		}
	}
	return best, len(raw), nil
}

// apiLoadAvg is the machine's load average (1, 5, 15 min), as /proc/loadavg has it.
func apiLoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func runAPIScale(b *testing.B, assets string, sz apiScaleSize) (res apiScaleResult, err error) {
	res = apiScaleResult{size: sz}
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		return res, err
	}
	start := time.Now()
	env := &ctrlenvtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return res, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	// Registered first: runs after the agents stopped.
	b.Cleanup(func() {
		if err := env.Stop(); err != nil {
			b.Errorf("stop kube-apiserver and etcd: %v", err)
		}
	})
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // the admin's setup writes are not what is measured
	sch, err := apiScaleScheme()
	if err != nil {
		return res, err
	}
	e := &apiScaleEnv{size: sz, cfg: cfg, apiTraffic: &apiTraffic{}, etcd: env.ControlPlane.Etcd.URL}
	if e.admin, err = client.NewWithWatch(cfg, client.Options{Scheme: sch}); err != nil {
		return res, err
	}
	if e.hc, err = rest.HTTPClientFor(cfg); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(b.Context(), *apiScaleSetup)
	defer cancel()
	if err := e.install(ctx, root); err != nil {
		return res, err
	}
	if err := e.createObjects(ctx); err != nil {
		return res, err
	}
	apiLogf(b, "N=%d V=%d: API server, policy, objects and their status in %v", sz.nodes, sz.vips, time.Since(start).Round(time.Second))

	agentsCtx, stopAgents := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() {
		stopAgents()
		wg.Wait()
	})
	t0 := time.Now()
	shared := e.agentConfig(0)
	shared.WrapTransport = nil // reads only
	if e.nodes, err = newAPISharedNodes(agentsCtx, shared); err != nil {
		return res, err
	}
	if e.mapper, err = newAPISharedMapper(shared); err != nil {
		return res, err
	}
	e.gate = newAPIStartGate(*apiStartConcurrency)
	for i := range sz.nodes {
		a, err := e.startAgent(agentsCtx, &wg, sch, i)
		if err != nil {
			return res, fmt.Errorf("agent %d: %w", i, err)
		}
		e.agents = append(e.agents, a)
	}
	apiLogf(b, "N=%d V=%d: %d agents started in %v", sz.nodes, sz.vips, sz.nodes, time.Since(t0).Round(time.Millisecond))
	if err := e.waitSettled(ctx, b); err != nil {
		return res, err
	}
	res.setup = time.Since(start)
	apiLogf(b, "N=%d V=%d: settled %v after the start (agents %v); the agents' writes until then: %s", sz.nodes, sz.vips,
		res.setup.Round(time.Second), time.Since(t0).Round(time.Second), e.apiTraffic.totals())

	// Background: no failover, every agent's resync.
	e.apiTraffic.phase(false)
	before, err := e.snapshot(ctx)
	if err != nil {
		return res, err
	}
	time.Sleep(*apiScaleQuiet)
	after, err := e.snapshot(ctx)
	if err != nil {
		return res, err
	}
	res.quiet = after.sub(before)
	if res.decode, res.objectBytes, err = e.decodeTime(ctx, sch, "virtualips/"+apiSimVIPName(0),
		func() runtime.Object { return &v1alpha1.VirtualIP{} }); err != nil {
		return res, err
	}
	if res.memberDecode, res.memberBytes, err = e.decodeTime(ctx, sch, "virtualipmembers/"+v1alpha1.MemberName(apiSimVIPName(0), apiSimNodeName(0)),
		func() runtime.Object { return &v1alpha1.VirtualIPMember{} }); err != nil {
		return res, err
	}
	apiLogf(b, "N=%d V=%d: %v without failovers: %.0f writes to VirtualIPs and their members", sz.nodes, sz.vips,
		res.quiet.dur.Round(time.Second), res.quiet.writes(""))

	t0 = time.Now()
	res.load[0] = apiLoadAvg()
	defer func() { res.load[1] = apiLoadAvg() }()
	if *apiScaleProfile != "" {
		stop, err := apiStartProfile(fmt.Sprintf("%s-%dx%d.pprof", *apiScaleProfile, sz.nodes, sz.vips))
		if err != nil {
			return res, err
		}
		defer stop()
	}
	for k := range *apiScaleFailovers {
		if err := e.failover(b.Context(), k, &res); err != nil {
			return res, fmt.Errorf("failover %d: %w", k+1, err)
		}
		if (k+1)%10 == 0 || k+1 == *apiScaleFailovers {
			apiLogf(b, "N=%d V=%d: %d failovers in %v; %.1f writes per failover, status.master right in %v at p50 (watches ended by the API server and started again: %d)",
				sz.nodes, sz.vips, k+1, time.Since(t0).Round(time.Second), res.writesPerFailover(), res.latency(0.5).Round(time.Millisecond), e.watchRestarts.Load())
		}
	}
	return res, nil
}

// install creates the agent's namespace, ServiceAccount, roles and bindings (config/rbac) and
// the member policy (config/policy), and waits until the API server enforces the roles
// (createObjects waits for the policy).
func (e *apiScaleEnv) install(ctx context.Context, root string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: apiScaleNamespace}}
	if err := e.admin.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	var objs []*unstructured.Unstructured
	for _, f := range []string{"rbac/service_account.yaml", "rbac/role.yaml", "rbac/role_binding.yaml", "policy/member_policy.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, "config", f))
		if err != nil {
			return err
		}
		docs, err := cluster.Decode(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		objs = append(objs, docs...)
	}
	for _, o := range objs {
		if err := e.admin.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return apiPoll(ctx, time.Minute, func() error {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   apiScaleAgentUser,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + apiScaleNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "patch", Group: v1alpha1.GroupVersion.Group,
				Resource: "virtualipmembers"},
		}}
		if err := e.admin.Create(ctx, sar); err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("the agent's role is not in effect: %s", sar.Status.Reason)
		}
		return nil
	})
}

// createObjects creates the N Nodes (labels, InternalIP, Ready), the V VirtualIPs and their
// members and summaries (prepopulate), then waits until the member policy refuses an agent's
// write of another node's member.
func (e *apiScaleEnv) createObjects(ctx context.Context) error {
	err := apiParallel(ctx, e.size.nodes, 16, func(i int) error {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: apiSimNodeName(i), Labels: map[string]string{
			apiScaleLabel: "true", corev1.LabelHostname: apiSimNodeName(i), corev1.LabelOSStable: "linux"}}}
		if err := e.admin.Create(ctx, n); err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: apiSimNodeIP(i).String()},
			{Type: corev1.NodeHostName, Address: apiSimNodeName(i)}}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}
		return e.admin.Status().Update(ctx, n)
	})
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	e.masters = make([]int, e.size.vips)
	for j := range e.size.vips {
		e.masters[j] = j % e.size.nodes
	}
	if err := apiParallel(ctx, e.size.vips, 16, func(j int) error { return e.admin.Create(ctx, apiSimVIP(j)) }); err != nil {
		return fmt.Errorf("VirtualIPs: %w", err)
	}
	for j := range e.size.vips {
		if err := e.prepopulate(ctx, j); err != nil {
			return err
		}
	}
	// The policy in effect: node 0 may not write node 1's member (dry run).
	probe := e.agentConfig(0)
	probe.WrapTransport = nil // not one of the agents' writes
	c, err := client.New(probe, client.Options{Scheme: e.admin.Scheme()})
	if err != nil {
		return err
	}
	var v v1alpha1.VirtualIP
	if err := e.admin.Get(ctx, client.ObjectKey{Name: apiSimVIPName(0)}, &v); err != nil {
		return err
	}
	return apiPoll(ctx, time.Minute, func() error {
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(apiSimMember(apiSimNodeName(1), 0, v.UID, apiSimEntry(1, 0, true))),
			client.FieldOwner("kube-vrrp-agent/"+apiSimNodeName(0)), client.ForceOwnership, client.DryRunAll)
		if apierrors.IsForbidden(err) {
			return nil
		}
		return fmt.Errorf("node 0 writing node 1's member (dry run): %v, want Forbidden: the member policy is not in effect", err)
	})
}

// prepopulate writes what the agents will write of VirtualIP j when they start: each node's
// member, applied under its node's field manager (by the admin: the policy is not what the
// setup measures), then the summary of those members, applied under the aggregator's. The
// agents then find them in place (at worst, a member that differs is written again): their
// start costs the setup N×V writes, each sent to N watchers, and their summaries' races,
// which are not what is measured.
func (e *apiScaleEnv) prepopulate(ctx context.Context, j int) error {
	name := apiSimVIPName(j)
	var v v1alpha1.VirtualIP
	if err := e.admin.Get(ctx, client.ObjectKey{Name: name}, &v); err != nil {
		return err
	}
	entries := make([]v1alpha1.NodeStatus, e.size.nodes)
	err := apiParallel(ctx, e.size.nodes, 16, func(i int) error {
		st := apiSimEntry(i, j, e.masters[j] == i)
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &entries[i]); err != nil {
			return err
		}
		entries[i].Name = apiSimNodeName(i)
		return e.admin.Apply(ctx, client.ApplyConfigurationFromUnstructured(apiSimMember(apiSimNodeName(i), j, v.UID, st)),
			client.FieldOwner("kube-vrrp-agent/"+apiSimNodeName(i)), client.ForceOwnership)
	})
	if err != nil {
		return fmt.Errorf("%s: members: %w", name, err)
	}
	return apiApplySummary(ctx, e.admin, &v, entries)
}

// apiApplySummary applies, through c, the summary of v's members' entries under the
// aggregator's field manager, as their writer would.
func apiApplySummary(ctx context.Context, c client.Client, v *v1alpha1.VirtualIP, entries []v1alpha1.NodeStatus) error {
	now := metav1.Now()
	sum := controllers.Summarize(entries, v.Generation, v.Spec.VRID)
	for i := range sum.Conditions {
		sum.Conditions[i].LastTransitionTime = now
	}
	data, err := json.Marshal(map[string]any{"observedGeneration": v.Generation, "master": sum.Master, "conditions": sum.Conditions})
	if err != nil {
		return err
	}
	var status map[string]any
	if err := json.Unmarshal(data, &status); err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIP",
		"metadata": map[string]any{"name": v.Name}, "status": status}}
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(controllers.AggregatorFieldManager),
		client.ForceOwnership); err != nil {
		return fmt.Errorf("%s: summary: %w", v.Name, err)
	}
	return nil
}

// agentConfig is agent i's: the admin certificate impersonating the agent's ServiceAccount
// with the node-name claim of its pod's token, its own connection (a dialer of its own), no
// client-side rate limit (as ctrl.GetConfig gives the agent in a pod), its writes recorded.
func (e *apiScaleEnv) agentConfig(i int) *rest.Config {
	c := rest.CopyConfig(e.cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: apiScaleAgentUser,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + apiScaleNamespace, "system:authenticated"},
		Extra:    map[string][]string{apiNodeNameExtra: {apiSimNodeName(i)}},
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	c.Dial = d.DialContext
	c.QPS, c.Burst = -1, 0
	c.WrapTransport = e.apiTraffic.wrap(i)
	return c
}

// startAgent runs node i's side of `kube-vrrp agent`, wired as cmd/kube-vrrp/agent.go's node
// manager wires it, around a scripted agent.
func (e *apiScaleEnv) startAgent(ctx context.Context, wg *sync.WaitGroup, sch *runtime.Scheme, i int) (*apiScriptedAgent, error) {
	name := apiSimNodeName(i)
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	a := &apiScriptedAgent{node: name, changes: kick, ready: make(chan struct{}, 1),
		configs: map[string]vrrp.Config{}, states: map[string]vrrp.Status{},
		master: func(vip string) bool {
			j, err := strconv.Atoi(strings.TrimPrefix(vip, "vip-"))
			return err == nil && j < len(e.masters) && j%e.size.nodes == i
		}}
	log := slog.New(apiScaleLogs.handler()).With("node", name)
	rejected := controllers.NewRejections(func(string) { poke() })
	reporter := &controllers.EventReporter{Stream: a, NodeName: name, Log: log}
	ifs := apiSimInterfaces(i)
	// One node manager, wired as the agent's; like the agent (keepRunning), a manager that
	// stops is built again and started after a back-off, and the stop is shown at once.
	// Its cache is the agent's (controllers.CacheOptionsFor) with the Node informer shared by
	// every simulated agent (apiSharedNodes), and its REST mapper is theirs; it starts when the
	// start gate lets it, and gives its slot back once its VirtualIP and VirtualIPMember
	// informers have synced (or it stopped).
	run := func() error {
		leave, err := e.gate.enter(ctx)
		if err != nil {
			return err
		}
		defer leave()
		cfg := e.agentConfig(i)
		var (
			mu   sync.Mutex
			infs []toolscache.SharedIndexInformer // the cache's VirtualIP and VirtualIPMember informers
		)
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme:                 sch,
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			Cache: apiAgentCacheOptions(cfg, e.nodes, func(obj runtime.Object, inf toolscache.SharedIndexInformer) {
				switch obj.(type) {
				case *v1alpha1.VirtualIP:
				case *v1alpha1.VirtualIPMember:
					// The benchmark's own handler: when this agent's cache has a failover's change.
					_, _ = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
						AddFunc:    func(o any) { e.deliveries.observe(i, o) },
						UpdateFunc: func(_, o any) { e.deliveries.observe(i, o) },
					})
				default:
					return
				}
				mu.Lock()
				infs = append(infs, inf)
				mu.Unlock()
			}),
			Client: controllers.ClientOptions(),
			MapperProvider: func(*rest.Config, *http.Client) (meta.RESTMapper, error) {
				return e.mapper, nil
			},
		})
		if err != nil {
			return err
		}
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		synced := func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, inf := range infs {
				if !inf.HasSynced() {
					return false
				}
			}
			return len(infs) == 2
		}
		go func() {
			defer leave()
			for runCtx.Err() == nil {
				if synced() {
					return
				}
				select {
				case <-runCtx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		vr := &controllers.VirtualIPReconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), NodeName: name,
			Namespace: apiScaleNamespace, Agent: a, Interfaces: func() ([]desired.Interface, error) { return ifs, nil },
			Rejected: rejected, Log: log}
		if err := vr.SetupWithManager(mgr); err != nil {
			return err
		}
		sr := &controllers.StatusReconciler{Client: mgr.GetClient(), Reader: mgr.GetClient(), NodeName: name,
			Agent: a, Rejected: rejected, Recorder: mgr.GetEventRecorder("kube-vrrp-agent"), Log: log, Changes: kick}
		if err := sr.SetupWithManager(mgr); err != nil {
			return err
		}
		if err := mgr.Add(reporter.For(mgr.GetClient(), mgr.GetEventRecorder("kube-vrrp-agent"))); err != nil {
			return err
		}
		if err := (&controllers.Aggregator{Client: mgr.GetClient(), NodeName: name, Log: log}).SetupWithManager(mgr); err != nil {
			return err
		}
		return mgr.Start(runCtx)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		backoff := time.Second
		for ctx.Err() == nil {
			err := run()
			if ctx.Err() != nil {
				return
			}
			a.restarts.Add(1)
			fmt.Fprintf(os.Stderr, "%s agent %s: node manager stopped (%v); starting it again in %v\n",
				time.Now().Format("15:04:05"), name, err, backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
	return a, nil
}

// waitSettled waits until every agent runs every VirtualIP, every VirtualIP has all N members
// and status.master names its MASTER, and then no agent has written for 3 s.
func (e *apiScaleEnv) waitSettled(ctx context.Context, b *testing.B) error {
	e.apiTraffic.phase(false)
	lastLog := time.Now()
	err := apiPoll(ctx, *apiScaleSetup, func() error {
		first, behind, restarts := -1, 0, int64(0)
		for i, a := range e.agents {
			restarts += a.restarts.Load()
			if n := len(a.Names()); n != e.size.vips {
				behind++
				if first < 0 {
					first = i
				}
			}
		}
		if behind > 0 {
			if time.Since(lastLog) > time.Minute {
				a := e.agents[first]
				apiLogf(b, "waiting for %d of %d agents to run every VirtualIP, e.g. agent %d: it runs %d of %d (node managers stopped %d times in all; written so far: %s)",
					behind, len(e.agents), first, len(a.Names()), e.size.vips, restarts, e.apiTraffic.peekTotals())
				lastLog = time.Now()
			}
			return fmt.Errorf("%d agents do not run every VirtualIP, e.g. agent %d", behind, first)
		}
		var list v1alpha1.VirtualIPList
		if err := e.admin.List(ctx, &list); err != nil {
			return err
		}
		var bad []string
		for _, v := range list.Items {
			j, _ := strconv.Atoi(strings.TrimPrefix(v.Name, "vip-"))
			if want := apiSimNodeName(e.masters[j]); v.Status.Master != want {
				bad = append(bad, fmt.Sprintf("%s: master %q, want %s", v.Name, v.Status.Master, want))
			}
		}
		if len(bad) == 0 {
			// Every member in place: N per VirtualIP, by metadata alone (N×V of them).
			var members metav1.PartialObjectMetadataList
			members.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("VirtualIPMemberList"))
			if err := e.admin.List(ctx, &members); err != nil {
				return err
			}
			count := map[string]int{}
			for _, m := range members.Items {
				vip, _ := apiMemberOf(m.Name)
				count[vip]++
			}
			for _, v := range list.Items {
				if count[v.Name] != e.size.nodes {
					bad = append(bad, fmt.Sprintf("%s: %d members, want %d", v.Name, count[v.Name], e.size.nodes))
				}
			}
		}
		if len(bad) > 0 {
			if time.Since(lastLog) > time.Minute {
				apiLogf(b, "waiting for %s", strings.Join(bad[:min(len(bad), 3)], "; "))
				lastLog = time.Now()
			}
			return fmt.Errorf("%d VirtualIPs not settled, e.g. %s", len(bad), bad[0])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !e.apiTraffic.waitQuiet(time.Time{}, 3*time.Second, 5*time.Minute) {
		apiLogf(b, "the agents still write 5 minutes after the status settled")
	}
	return nil
}

// failover k: the MASTER of one VirtualIP goes to Fault, the next node takes over.
func (e *apiScaleEnv) failover(ctx context.Context, k int, res *apiScaleResult) error {
	j := (k * 7919) % e.size.vips
	name := apiSimVIPName(j)
	old, next := e.masters[j], (e.masters[j]+1)%e.size.nodes
	var v v1alpha1.VirtualIP
	if err := e.admin.Get(ctx, client.ObjectKey{Name: name}, &v); err != nil {
		return err
	}
	if v.Status.Master != apiSimNodeName(old) {
		return fmt.Errorf("%s: status.master %q before the failover, want %s", name, v.Status.Master, apiSimNodeName(old))
	}
	want := apiSimNodeName(next)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	seen := make(chan time.Time, 1)
	watching := make(chan error, 1)
	go func() {
		// A watch the API server ends (an Error event such as a resource version its watch
		// cache has not reached yet, under load) is started again from the last version seen;
		// the object is read in between, in case the change passed meanwhile (then the time
		// seen is late, an upper bound).
		rv := v.ResourceVersion
		first := true
		for wctx.Err() == nil {
			w, err := e.admin.Watch(wctx, &v1alpha1.VirtualIPList{}, client.MatchingFields{"metadata.name": name},
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
			if first {
				watching <- err
				first = false
				if err != nil {
					return
				}
			}
			if err == nil {
				for ev := range w.ResultChan() {
					if ev.Type == watch.Error {
						break
					}
					o, ok := ev.Object.(*v1alpha1.VirtualIP)
					if !ok {
						continue
					}
					rv = o.ResourceVersion
					if o.Status.Master == want {
						w.Stop()
						seen <- time.Now()
						return
					}
				}
				w.Stop()
			}
			e.watchRestarts.Add(1)
			var cur v1alpha1.VirtualIP
			if err := e.admin.Get(wctx, client.ObjectKey{Name: name}, &cur); err == nil {
				if cur.Status.Master == want {
					seen <- time.Now()
					return
				}
				rv = cur.ResourceVersion
			}
			select {
			case <-wctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	if err := <-watching; err != nil {
		return err
	}

	before, err := e.snapshot(ctx)
	if err != nil {
		return err
	}
	e.apiTraffic.phase(true, old, next)
	e.deliveries.arm(name, want)
	e.agents[old].set(name, vrrp.Fault, vrrp.ReasonProbeFailed)
	time.Sleep(*apiScaleGap)
	t1 := time.Now()
	e.agents[next].set(name, vrrp.Master, vrrp.ReasonMasterDown)
	const limit = time.Minute
	select {
	case at := <-seen:
		res.latencies = append(res.latencies, at.Sub(t1))
	case <-time.After(limit):
		res.missed++
		res.latencies = append(res.latencies, limit)
		// Say what the object holds, and what the agents run, so a miss can be explained.
		var now v1alpha1.VirtualIP
		if err := e.admin.Get(ctx, client.ObjectKey{Name: name}, &now); err != nil {
			fmt.Fprintf(os.Stderr, "%s failover of %s: status.master not %s after %v; reading it: %v\n",
				time.Now().Format("15:04:05"), name, apiSimNodeName(next), limit, err)
		} else {
			var entries []string
			var members v1alpha1.VirtualIPMemberList
			if err := e.admin.List(ctx, &members, client.MatchingFields{"spec.virtualIP": name}); err != nil {
				entries = append(entries, "(members not read: "+err.Error()+")")
			}
			for _, m := range members.Items {
				if m.Status.State != vrrp.Backup.String() {
					entries = append(entries, m.Spec.Node+"="+m.Status.State)
				}
			}
			reason := ""
			if len(now.Status.Conditions) > 0 {
				reason = now.Status.Conditions[0].Reason
			}
			fmt.Fprintf(os.Stderr, "%s failover of %s: status.master %q, not %s after %v (resourceVersion %s, %s; members not BACKUP: %s; the old MASTER's agent reports %s, the new one's %s)\n",
				time.Now().Format("15:04:05"), name, now.Status.Master, apiSimNodeName(next), limit, now.ResourceVersion, reason,
				strings.Join(entries, " "), e.agents[old].stateOf(name), e.agents[next].stateOf(name))
		}
	}
	// The window ends once the summary's writer has its answer too (under load it can come
	// after a watch saw the change) and no agent has written for a while.
	isSummary := func(w apiWrite) bool {
		return w.summary() && w.vip == name && w.master == want && w.code < 300
	}
	e.apiTraffic.waitFor(isSummary, limit)
	quiet := e.apiTraffic.waitQuiet(time.Time{}, *apiScaleSettle, limit)
	recs, resync := e.apiTraffic.stop()
	delivered := e.deliveries.disarm()
	res.addCriticalPath(recs, delivered, t1, name, want, isSummary)
	after, err := e.snapshot(ctx)
	if err != nil {
		return err
	}
	if !quiet {
		res.unsettled++
	}
	res.failovers++
	res.windows = res.windows.add(after.sub(before))
	res.addWrites(recs, resync, name)
	e.explainWrites(recs, delivered, t1, name, old, next, isSummary)
	e.masters[j] = next

	// The old MASTER recovers as a BACKUP, outside the window.
	e.apiTraffic.phase(false, old)
	t := time.Now()
	e.agents[old].set(name, vrrp.Backup, vrrp.ReasonHigherPriority)
	e.apiTraffic.waitQuiet(t, *apiScaleSettle, limit)
	return nil
}

// explainWrites says, for the first few failovers where the old or the new MASTER applied its
// member more than once, or another node wrote its own, and for the first few whose summary
// (isSummary) was stored more than a second after the takeover (t1) or not at all, what each
// write of the VirtualIP and its members was, and when, and when the summary's writer had the
// new MASTER's member in its cache (delivered).
func (e *apiScaleEnv) explainWrites(recs []apiWrite, delivered map[int]time.Time, t1 time.Time, name string, old, next int,
	isSummary func(apiWrite) bool) {
	applies := map[int]int{}
	others := false
	for _, w := range recs {
		if w.memberApply() && w.own() && w.vip == name {
			applies[w.agent]++
			others = others || (w.agent != old && w.agent != next)
		}
	}
	i := slices.IndexFunc(recs, isSummary)
	slow := i < 0 || recs[i].at.Sub(t1) > time.Second
	extra := applies[old] > 1 || applies[next] > 1 || others
	if !(extra && e.explained.Add(1) <= 5) && !(slow && e.explainedSlow.Add(1) <= 10) {
		return
	}
	var parts []string
	for _, w := range recs {
		if w.vip != name {
			continue
		}
		who := apiSimNodeName(w.agent)
		switch w.agent {
		case old:
			who += " (old MASTER)"
		case next:
			who += " (new MASTER)"
		}
		what := w.kind()
		switch {
		case w.memberApply():
			what = "member " + w.state
		case w.memberDelete():
			what = "DELETE member of " + w.node
		case w.summary():
			what = "summary, master " + w.master
		}
		parts = append(parts, fmt.Sprintf("%+dms %s %s %d", w.at.Sub(t1).Milliseconds(), who, what, w.code))
	}
	if i >= 0 {
		if at, ok := delivered[recs[i].agent]; ok {
			parts = append(parts, fmt.Sprintf("(the summary's writer had the new MASTER's member in its cache at %+dms)", at.Sub(t1).Milliseconds()))
		}
	}
	fmt.Fprintf(os.Stderr, "%s failover of %s (load %s), writes from the takeover: %s\n", time.Now().Format("15:04:05"), name, apiLoadAvg(),
		strings.Join(parts, "; "))
}

// apiScaleSnap is what the API server, etcd and this process had used at one moment.
type apiScaleSnap struct {
	at       time.Time
	requests map[apiRequestKey]float64
	// vipWatch and memberWatch: the VirtualIP and VirtualIPMember watch events the API server
	// sent, to every watcher (apiserver_watch_events_total, apiserver_watch_events_sizes_sum).
	vipWatch, memberWatch apiWatchCount
	// summaryApplies and memberApplies: the status applies of VirtualIPs and the applies of
	// members the API server answered, and the time it took (apiserver_request_duration_seconds).
	summaryApplies, memberApplies apiApplyTime
	apiCPU                        float64
	etcdCPU                       float64
	selfCPU                       time.Duration
	// reconciles: by controller, the reconciles of every agent in this process and the time
	// they took (controller-runtime's controller_runtime_reconcile_time_seconds).
	reconciles map[string]apiApplyTime
}

type apiWatchCount struct{ events, bytes float64 }

func (c apiWatchCount) sub(o apiWatchCount) apiWatchCount {
	return apiWatchCount{c.events - o.events, c.bytes - o.bytes}
}
func (c apiWatchCount) add(o apiWatchCount) apiWatchCount {
	return apiWatchCount{c.events + o.events, c.bytes + o.bytes}
}

type apiApplyTime struct{ n, seconds float64 }

func (c apiApplyTime) sub(o apiApplyTime) apiApplyTime {
	return apiApplyTime{c.n - o.n, c.seconds - o.seconds}
}
func (c apiApplyTime) add(o apiApplyTime) apiApplyTime {
	return apiApplyTime{c.n + o.n, c.seconds + o.seconds}
}

// mean is the mean time per apply.
func (c apiApplyTime) mean() time.Duration {
	if c.n <= 0 {
		return 0
	}
	return time.Duration(c.seconds / c.n * float64(time.Second))
}

type apiRequestKey struct{ verb, code, resource string }

func (e *apiScaleEnv) snapshot(ctx context.Context) (apiScaleSnap, error) {
	s := apiScaleSnap{at: time.Now(), requests: map[apiRequestKey]float64{}}
	api, err := apiScrape(ctx, e.hc, strings.TrimSuffix(e.cfg.Host, "/")+"/metrics")
	if err != nil {
		return s, fmt.Errorf("kube-apiserver /metrics: %w", err)
	}
	for _, m := range api {
		var watch *apiWatchCount
		switch m.labels["resource"] {
		case "virtualips":
			watch = &s.vipWatch
		case "virtualipmembers":
			watch = &s.memberWatch
		}
		switch m.name {
		case "apiserver_request_total":
			res := m.labels["resource"]
			if sub := m.labels["subresource"]; sub != "" {
				res += "/" + sub
			}
			s.requests[apiRequestKey{m.labels["verb"], m.labels["code"], res}] += m.value
		case "process_cpu_seconds_total":
			s.apiCPU = m.value
		case "apiserver_watch_events_total":
			if watch != nil {
				watch.events += m.value
			}
		case "apiserver_watch_events_sizes_sum":
			if watch != nil {
				watch.bytes += m.value
			}
		case "apiserver_request_duration_seconds_sum", "apiserver_request_duration_seconds_count":
			var c *apiApplyTime
			switch {
			case m.labels["verb"] != "APPLY":
			case m.labels["resource"] == "virtualips" && m.labels["subresource"] == "status":
				c = &s.summaryApplies
			case m.labels["resource"] == "virtualipmembers" && m.labels["subresource"] == "":
				c = &s.memberApplies
			}
			switch {
			case c == nil:
			case strings.HasSuffix(m.name, "_sum"):
				c.seconds += m.value
			default:
				c.n += m.value
			}
		}
	}
	etcd, err := apiScrape(ctx, http.DefaultClient, e.etcd.String()+"/metrics")
	if err != nil {
		return s, fmt.Errorf("etcd /metrics: %w", err)
	}
	for _, m := range etcd {
		if m.name == "process_cpu_seconds_total" {
			s.etcdCPU = m.value
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.selfCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.reconciles = map[string]apiApplyTime{}
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return s, fmt.Errorf("controller-runtime metrics: %w", err)
	}
	for _, f := range fams {
		if f.GetName() != "controller_runtime_reconcile_time_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" {
					s.reconciles[l.GetValue()] = s.reconciles[l.GetValue()].add(
						apiApplyTime{float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()})
				}
			}
		}
	}
	return s, nil
}

// apiScaleDelta is what happened between two snapshots (or the sum of several such windows).
type apiScaleDelta struct {
	dur                           time.Duration
	requests                      map[apiRequestKey]float64
	vipWatch, memberWatch         apiWatchCount
	summaryApplies, memberApplies apiApplyTime
	apiCPU                        float64
	etcdCPU                       float64
	selfCPU                       time.Duration
	reconciles                    map[string]apiApplyTime
}

func (s apiScaleSnap) sub(o apiScaleSnap) apiScaleDelta {
	d := apiScaleDelta{dur: s.at.Sub(o.at), requests: map[apiRequestKey]float64{}, apiCPU: s.apiCPU - o.apiCPU,
		vipWatch: s.vipWatch.sub(o.vipWatch), memberWatch: s.memberWatch.sub(o.memberWatch),
		summaryApplies: s.summaryApplies.sub(o.summaryApplies), memberApplies: s.memberApplies.sub(o.memberApplies),
		etcdCPU: s.etcdCPU - o.etcdCPU, selfCPU: s.selfCPU - o.selfCPU, reconciles: map[string]apiApplyTime{}}
	for k, v := range s.requests {
		if n := v - o.requests[k]; n > 0 {
			d.requests[k] = n
		}
	}
	for k, v := range s.reconciles {
		if r := v.sub(o.reconciles[k]); r.n > 0 {
			d.reconciles[k] = r
		}
	}
	return d
}

func (d apiScaleDelta) add(o apiScaleDelta) apiScaleDelta {
	out := apiScaleDelta{dur: d.dur + o.dur, requests: map[apiRequestKey]float64{}, apiCPU: d.apiCPU + o.apiCPU,
		vipWatch: d.vipWatch.add(o.vipWatch), memberWatch: d.memberWatch.add(o.memberWatch),
		summaryApplies: d.summaryApplies.add(o.summaryApplies), memberApplies: d.memberApplies.add(o.memberApplies),
		etcdCPU: d.etcdCPU + o.etcdCPU, selfCPU: d.selfCPU + o.selfCPU, reconciles: map[string]apiApplyTime{}}
	for k, v := range d.requests {
		out.requests[k] += v
	}
	for k, v := range o.requests {
		out.requests[k] += v
	}
	for _, m := range []map[string]apiApplyTime{d.reconciles, o.reconciles} {
		for k, v := range m {
			out.reconciles[k] = out.reconciles[k].add(v)
		}
	}
	return out
}

// watch is the VirtualIP and VirtualIPMember watch events together.
func (d apiScaleDelta) watch() apiWatchCount { return d.vipWatch.add(d.memberWatch) }

// apiReadVerbs are the verbs of apiserver_request_total that write nothing; every other one
// (APPLY, PATCH, PUT, POST, DELETE, DELETECOLLECTION) is a write.
var apiReadVerbs = []string{"GET", "LIST", "WATCH", "CONNECT", "HEAD", "OPTIONS"}

// apiVIPResources are the resources of a VirtualIP's status: the objects, their status (the
// summary) and the members.
var apiVIPResources = []string{"virtualips", "virtualips/status", "virtualipmembers"}

// writes counts the write requests to apiVIPResources, with code if not empty.
func (d apiScaleDelta) writes(code string) float64 {
	var n float64
	for k, v := range d.requests {
		if !slices.Contains(apiReadVerbs, k.verb) && slices.Contains(apiVIPResources, k.resource) && (code == "" || k.code == code) {
			n += v
		}
	}
	return n
}

// eventWrites counts the write requests to Events.
func (d apiScaleDelta) eventWrites() float64 {
	var n float64
	for k, v := range d.requests {
		if !slices.Contains(apiReadVerbs, k.verb) && k.resource == "events" {
			n += v
		}
	}
	return n
}

// byVerb lists the requests (but watches) to resources by resource, verb and code, per per.
func (d apiScaleDelta) byVerb(resources []string, per float64) string {
	sum := map[apiRequestKey]float64{}
	for k, v := range d.requests {
		if slices.Contains(resources, k.resource) && k.verb != "WATCH" {
			sum[k] += v
		}
	}
	keys := slices.SortedFunc(maps.Keys(sum), func(a, b apiRequestKey) int {
		return strings.Compare(a.resource+" "+a.verb+" "+a.code, b.resource+" "+b.verb+" "+b.code)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s %s: %.1f", k.resource, k.verb, k.code, sum[k]/per))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// apiScaleResult is one size's figures.
type apiScaleResult struct {
	size      apiScaleSize
	setup     time.Duration
	quiet     apiScaleDelta
	windows   apiScaleDelta
	failovers int
	missed    int // status.master not right within a minute
	unsettled int // agents still writing a minute after
	latencies []time.Duration
	// stored: from the takeover until the response of the summary write that set
	// status.master to the new MASTER (the API server had stored it), as its writer saw it.
	stored    []time.Duration
	notStored int       // failovers with no such write in the window
	load      [2]string // the machine's load average when the failovers began and ended
	// The critical path of each failover (apiCriticalPath), and the delivery of the new
	// MASTER's member to every agent: from its storage until each agent's cache had it.
	paths    []apiCriticalPath
	delivery []time.Duration
	// decode is what decoding one copy of a VirtualIP (objectBytes of JSON) costs this
	// process, as an agent's client decodes each watch event's object (the least of 20);
	// memberDecode and memberBytes, of one VirtualIPMember.
	decode, memberDecode     time.Duration
	objectBytes, memberBytes int
	// Client side, over the windows: the agents' writes by kind.
	client map[string]int
}

// apiResyncKind is the kind of write of an agent applying its own member while it takes no
// part in the failover: its periodic resync.
const apiResyncKind = "other nodes' own members (resync)"

// addWrites classifies the writes an agent sent in a failover's window.
func (r *apiScaleResult) addWrites(recs []apiWrite, resync []bool, vip string) {
	if r.client == nil {
		r.client = map[string]int{}
	}
	for i, w := range recs {
		kind := w.kind()
		switch {
		case resync[i]:
			kind = apiResyncKind
		case w.vip != "" && w.vip != vip:
			kind += " (other VirtualIPs)"
		}
		if w.code >= 300 {
			kind += fmt.Sprintf(" [%d]", w.code)
		}
		r.client[kind]++
	}
}

// writesPerFailover: the API server's writes to VirtualIPs and their members per failover,
// without the other nodes' resync that fell into the windows.
func (r apiScaleResult) writesPerFailover() float64 {
	if r.failovers == 0 {
		return 0
	}
	return (r.windows.writes("") - float64(r.client[apiResyncKind])) / float64(r.failovers)
}

func (r apiScaleResult) latency(q float64) time.Duration { return apiQuantile(r.latencies, q) }

func apiQuantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	d := slices.Sorted(slices.Values(ds))
	i := int(q*float64(len(d))+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func printAPIScaleTable(b *testing.B, results []apiScaleResult) {
	if len(results) == 0 {
		return
	}
	var sb strings.Builder
	w := newTable(&sb)
	fmt.Fprintf(w, "N\tV\tsetup\tfailovers\twrites/fo\t409/fo\tresync in windows/fo\tevents/fo\tmaster p50\tmaster p99\tstored p50\tstored p99\tw/o delivery p50\tw/o delivery p99\twatch events/fo\twatch kB/fo\tapiserver CPU/fo\tetcd CPU/fo\tagents CPU/fo\tbackground writes/min\tapiserver CPU/min\tload (1 min)\t<=4 writes\tp99<=1s@500\n")
	for _, r := range results {
		fo := float64(max(r.failovers, 1))
		perMin := float64(time.Minute) / float64(max(r.quiet.dur, 1))
		target := "-"
		if r.failovers > 0 {
			target = "yes"
			if r.writesPerFailover() > 4 {
				target = "NO"
			}
		}
		lat := "-"
		if r.size.nodes == 500 && r.failovers > 0 {
			lat = "yes"
			if r.latency(0.99) > time.Second {
				lat = "NO"
			}
		}
		load, _, _ := strings.Cut(r.load[1], " ")
		fmt.Fprintf(w, "%d\t%d\t%v\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%v\t%v\t%v\t%v\t%v\t%v\t%.0f\t%.0f\t%.3fs\t%.3fs\t%.3fs\t%.0f\t%.2fs\t%s\t%s\t%s\n",
			r.size.nodes, r.size.vips, r.setup.Round(time.Second), r.failovers,
			r.writesPerFailover(), r.windows.writes("409")/fo,
			float64(r.client[apiResyncKind])/fo, r.windows.eventWrites()/fo,
			r.latency(0.5).Round(time.Millisecond), r.latency(0.99).Round(time.Millisecond),
			apiQuantile(r.stored, 0.5).Round(time.Millisecond), apiQuantile(r.stored, 0.99).Round(time.Millisecond),
			r.pathQuantile(0.5, apiWithoutDelivery).Round(time.Millisecond), r.pathQuantile(0.99, apiWithoutDelivery).Round(time.Millisecond),
			r.windows.watch().events/fo, r.windows.watch().bytes/fo/1e3,
			r.windows.apiCPU/fo, r.windows.etcdCPU/fo, r.windows.selfCPU.Seconds()/fo,
			r.quiet.writes("")*perMin, r.quiet.apiCPU*perMin, load, target, lat)
	}
	w.Flush()
	var out strings.Builder
	fmt.Fprintf(&out, "\nscale: a failover (MASTER -> Fault, the next node MASTER %v later) against a real kube-apiserver, N agents\n"+
		"(the real controllers; the VRRP engine scripted) and V VirtualIPs selecting all N nodes; each node's report on a\n"+
		"VirtualIP is a VirtualIPMember, the VirtualIP's status the summary.\n"+
		"writes/fo: kube-apiserver's write requests (apiserver_request_total, any code: member APPLY and DELETE, summary\n"+
		"APPLY) to VirtualIPs, their status and their members per failover, without the other nodes' periodic resync of\n"+
		"their own members that fell in the windows (counted by the agents' transports, shown apart); 409/fo: of those,\n"+
		"refused as stale; master p50/p99: from the takeover until a watch (this process's) sees status.master name the new\n"+
		"MASTER; stored p50/p99: until the response to the summary write that set it (the API server had stored it; the\n"+
		"writer's side); w/o delivery: stored, less the time the new MASTER's member took from its storage to the summary\n"+
		"writer's cache (see the critical path below); watch events, kB/fo: the VirtualIPMember and VirtualIP watch events\n"+
		"the API server sent to all watchers (the N agents and the benchmark's) per failover window; CPU/fo: seconds per\n"+
		"failover window (agents: this process, all N agents); background: %v without failovers; load: the machine's load\n"+
		"average after the last failover. Targets: <= 4 writes per failover for every N; status.master right <= 1 s p99 at\n"+
		"N = 500. All N agents run in this process, on the cores that also run kube-apiserver and etcd: every watch event is\n"+
		"decoded N times here where a cluster decodes it once on each of N machines, so the latencies are upper bounds, the\n"+
		"more so as N and the machine's load grow. The requests by resource, verb and code below include reads but watches:\n"+
		"a GET of a VirtualIP there is the benchmark's own, reading the object when the API server ended its watch.\n"+
		apiSharedSummary+"%s",
		*apiScaleGap, *apiScaleQuiet, *apiStartConcurrency, *apiScaleHTTP2, sb.String())
	for _, r := range results {
		fo := float64(max(r.failovers, 1))
		fmt.Fprintf(&out, "\nN=%d V=%d, per failover (%d; status.master late %d, no stored summary naming the new MASTER in the window %d, agents still writing after a minute %d):\n", r.size.nodes, r.size.vips,
			r.failovers, r.missed, r.notStored, r.unsettled)
		fmt.Fprintf(&out, "  kube-apiserver, VirtualIPs and members: %s\n", r.windows.byVerb(apiVIPResources, fo))
		fmt.Fprintf(&out, "  kube-apiserver, events:                 %s\n", r.windows.byVerb([]string{"events"}, fo))
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.client)) {
			kinds = append(kinds, fmt.Sprintf("%s: %.1f", k, float64(r.client[k])/fo))
		}
		fmt.Fprintf(&out, "  agents' writes:                         %s\n", strings.Join(kinds, ", "))
		fmt.Fprintf(&out, "  watch events sent: members %.0f (%.1f kB), VirtualIPs %.0f (%.1f kB)\n",
			r.windows.memberWatch.events/fo, r.windows.memberWatch.bytes/fo/1e3, r.windows.vipWatch.events/fo, r.windows.vipWatch.bytes/fo/1e3)
		whole := 0
		for _, p := range r.paths {
			if p.ok {
				whole++
			}
		}
		q := func(step func(apiCriticalPath) time.Duration) string {
			return fmt.Sprintf("%v / %v", r.pathQuantile(0.5, step).Round(time.Millisecond), r.pathQuantile(0.99, step).Round(time.Millisecond))
		}
		fmt.Fprintf(&out, "  critical path, p50 / p99 (%d failovers seen whole): the new MASTER's member stored %s after the takeover; its\n"+
			"    watch event in the summary writer's cache %s later; the summary stored %s after that (the aggregator's 250 ms\n"+
			"    batch included); without that delivery %s\n", whole, q(func(p apiCriticalPath) time.Duration { return p.entry }),
			q(func(p apiCriticalPath) time.Duration { return p.toWriter }), q(func(p apiCriticalPath) time.Duration { return p.react }),
			q(apiWithoutDelivery))
		fmt.Fprintf(&out, "  the new MASTER's member in the %d agents' caches, after it was stored: p50 %v, p99 %v, max %v (every copy decoded\n"+
			"    here; one member, %.1f kB of JSON, takes %v to decode, the event's framing aside: %v for all %d; one VirtualIP, %.1f kB, %v)\n",
			r.size.nodes, apiQuantile(r.delivery, 0.5).Round(time.Millisecond), apiQuantile(r.delivery, 0.99).Round(time.Millisecond),
			apiQuantile(r.delivery, 1).Round(time.Millisecond), float64(r.memberBytes)/1000, r.memberDecode.Round(time.Microsecond),
			(r.memberDecode * time.Duration(r.size.nodes)).Round(10*time.Microsecond), r.size.nodes,
			float64(r.objectBytes)/1000, r.decode.Round(time.Microsecond))
		fmt.Fprintf(&out, "  the API server's mean time per apply (apiserver_request_duration_seconds) over the windows: member %v (%.1f/fo), summary %v (%.1f/fo)\n",
			r.windows.memberApplies.mean().Round(100*time.Microsecond), r.windows.memberApplies.n/fo,
			r.windows.summaryApplies.mean().Round(100*time.Microsecond), r.windows.summaryApplies.n/fo)
		var recs []string
		for _, k := range slices.Sorted(maps.Keys(r.windows.reconciles)) {
			c := r.windows.reconciles[k]
			recs = append(recs, fmt.Sprintf("%s %.0f (mean %v)", k, c.n/fo, c.mean().Round(100*time.Microsecond)))
		}
		fmt.Fprintf(&out, "  reconciles of all %d agents per failover (controller_runtime_reconcile_time_seconds, wall time in this process, on\n"+
			"    the agents' %.2f s of CPU per failover): %s\n", r.size.nodes, r.windows.selfCPU.Seconds()/fo, strings.Join(recs, ", "))
		fmt.Fprintf(&out, "  machine's load average (1, 5, 15 min): %s at the first failover, %s after the last\n", r.load[0], r.load[1])
		perMin := float64(time.Minute) / float64(max(r.quiet.dur, 1))
		fmt.Fprintf(&out, "  background per minute:      %s; apiserver CPU %.2fs, etcd %.2fs, agents %.2fs\n",
			r.quiet.byVerb(apiVIPResources, 1/perMin), r.quiet.apiCPU*perMin, r.quiet.etcdCPU*perMin, r.quiet.selfCPU.Seconds()*perMin)
	}
	fmt.Print(out.String())
	if _, err := writeOut("status-api.txt", []byte(out.String())); err != nil {
		b.Error(err)
	}
}

// apiPromSample is one line of a Prometheus text exposition.
type apiPromSample struct {
	name   string
	labels map[string]string
	value  float64
}

// apiScrape reads url's Prometheus text metrics (only the families the benchmarks read).
func apiScrape(ctx context.Context, hc *http.Client, url string) ([]apiPromSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var buf strings.Builder
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		return nil, err
	}
	var out []apiPromSample
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") && !strings.HasPrefix(line, "process_cpu_seconds_total") &&
			!strings.HasPrefix(line, "apiserver_watch_events_total{") && !strings.HasPrefix(line, "apiserver_watch_events_sizes_sum{") &&
			!strings.HasPrefix(line, "apiserver_request_duration_seconds_sum{") && !strings.HasPrefix(line, "apiserver_request_duration_seconds_count{") {
			continue
		}
		s, err := apiParsePromLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", url, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// apiParsePromLine parses `name{a="x",b="y"} value [timestamp]` or `name value`.
func apiParsePromLine(line string) (apiPromSample, error) {
	s := apiPromSample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(rest, "{ "); i < 0 {
		return s, errors.New("no value")
	} else {
		s.name, rest = rest[:i], rest[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, errors.New("bad label")
			}
			key := strings.TrimPrefix(rest[:eq], ",")
			rest = rest[eq+2:]
			var val strings.Builder
			for {
				if rest == "" {
					return s, errors.New("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '\\' && rest != "" {
					val.WriteByte(rest[0])
					rest = rest[1:]
					continue
				}
				if c == '"' {
					break
				}
				val.WriteByte(c)
			}
			s.labels[key] = val.String()
			rest = strings.TrimPrefix(rest, ",")
		}
		rest = rest[1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, errors.New("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	s.value = v
	return s, err
}

// apiParallel runs f(0..n-1) on workers goroutines and returns the first error.
func apiParallel(ctx context.Context, n, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
loop:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

// apiLogf logs to the benchmark and, at once, to standard error: a size can run for many
// minutes, and the benchmark's own log is printed only when it ends.
func apiLogf(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Logf(format, args...)
	fmt.Fprintf(os.Stderr, "%s %s: %s\n", time.Now().Format("15:04:05"), b.Name(), fmt.Sprintf(format, args...))
}

// apiPoll calls f every 500 ms until it succeeds or timeout passes, and returns its last error.
func apiPoll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
