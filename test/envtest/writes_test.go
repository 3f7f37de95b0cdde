package envtest

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// statusWrites counts the requests that write status: a VirtualIP's summary (apply, patch,
// update of its status) and the nodes' reports (apply, patch, update, create or delete of a
// VirtualIPMember), whatever their answer: a no-op apply costs the API server as much as any.
type statusWrites struct {
	mu     sync.Mutex
	writes []statusWrite
	last   time.Time
}

// statusWrite is one write: of vip's summary (node empty), or of the member of node in vip.
type statusWrite struct {
	vip, node, method, manager string
	code                       int
}

func (w statusWrite) String() string {
	what := w.vip
	if w.node != "" {
		what += "'s member of " + w.node
	}
	return fmt.Sprintf("%s %s by %s: %d", w.method, what, strings.TrimPrefix(w.manager, "kube-vrrp-"), w.code)
}

var (
	statusPath = regexp.MustCompile(`^/apis/` + regexp.QuoteMeta(v1alpha1.GroupVersion.String()) + `/virtualips/([^/]+)/status$`)
	// A member's name is "<vip>.<node>" (v1alpha1.MemberName): the tests that count writes
	// name their VirtualIPs and nodes without dots, and short enough not to be hashed. A
	// create (POST) has the name in its body, not its path: the agents create by apply, and a
	// POST counts as a write of no VirtualIP of the test's ("?").
	memberPath  = regexp.MustCompile(`^/apis/` + regexp.QuoteMeta(v1alpha1.GroupVersion.String()) + `/virtualipmembers/([^/.]+)\.([^/.]+)$`)
	membersPath = "/apis/" + v1alpha1.GroupVersion.String() + "/virtualipmembers"
)

func (s *statusWrites) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if req.Method == http.MethodGet {
				return resp, err
			}
			w := statusWrite{method: req.Method, manager: req.URL.Query().Get("fieldManager")}
			if m := statusPath.FindStringSubmatch(req.URL.Path); m != nil {
				w.vip = m[1]
			} else if m := memberPath.FindStringSubmatch(req.URL.Path); m != nil {
				w.vip, w.node = m[1], m[2]
			} else if strings.HasPrefix(req.URL.Path, membersPath) {
				w.vip, w.node = "?", "?"
			} else {
				return resp, err
			}
			if err == nil {
				w.code = resp.StatusCode
			}
			s.mu.Lock()
			s.writes = append(s.writes, w)
			s.last = time.Now()
			s.mu.Unlock()
			return resp, err
		})
	}
	return cfg
}

// take returns the writes since the last take, and forgets them.
func (s *statusWrites) take() []statusWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.writes
	s.writes = nil
	return out
}

// settle waits until no status has been written for d, at most for max.
func (s *statusWrites) settle(d, max time.Duration) {
	for deadline := time.Now().Add(max); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		since := time.Since(s.last)
		s.mu.Unlock()
		if since >= d {
			return
		}
	}
}

// TestStatusWritesScale (docs/design.md §7.5-§7.7) counts what status costs the API server with
// ten nodes running five VirtualIPs: a steady state writes nothing, also across resyncs; one
// failover of one VirtualIP writes the old and the new MASTER's members and the summary (three
// requests, one more if a summary loses a race, whatever the number of nodes), and nothing of
// another node or VirtualIP; a node with no interface in a VirtualIP's subnet has no member
// unless spec.nodes names it.
func TestStatusWritesScale(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	ensureNamespace(t, admin, agentNamespace)
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			out := logs.String()
			if len(out) > 20000 {
				out = "...\n" + out[len(out)-20000:]
			}
			t.Logf("logs:\n%s", out)
		}
	})
	const (
		group  = "scale"
		nNodes = 10
		nVIPs  = 5
		resync = time.Second
		// failovers is how many takeovers are counted, one after the other.
		failovers = 10
	)
	writes := &statusWrites{}
	restCfg := writes.wrap(cfg)
	labels := map[string]string{groupLabel: group}

	var nodes []*simNode
	for i := range nNodes {
		name, ip := fmt.Sprintf("scale-n%02d", i), fmt.Sprintf("198.18.0.%d", 40+i)
		createNode(t, admin, name, ip, labels)
		nodes = append(nodes, startNodeWith(t, restCfg, log, name, ip, nodeOptions{resync: resync, hostPoll: time.Hour}))
	}
	// Two nodes on another network: no interface in the VirtualIPs' subnet. The first VirtualIP
	// names scale-named in spec.nodes.
	for i, name := range []string{"scale-off", "scale-named"} {
		ip := fmt.Sprintf("198.19.7.%d", 40+i)
		createNode(t, admin, name, ip, labels)
		startNodeWith(t, restCfg, log, name, ip, nodeOptions{resync: resync, hostPoll: time.Hour})
	}

	// Reads of the members' interfaces (the off-link nodes retry theirs, docs/design.md §7.3).
	dumps := func() (n int64) {
		for _, sn := range nodes {
			n += sn.dumps.Load()
		}
		return n
	}

	var vips []string
	for i := range nVIPs {
		name := fmt.Sprintf("scale-vip%d", i)
		v := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.VirtualIPSpec{
			VRID: int32(90 + i), Addresses: []string{fmt.Sprintf("198.18.0.%d/24", 140+i)}, Priority: ptr.To[int32](100),
			NodeSelector: &metav1.LabelSelector{MatchLabels: labels},
		}}
		if i == 0 {
			v.Spec.Nodes = []v1alpha1.NodeOverride{{Name: "scale-named"}}
		}
		if err := admin.Create(ctx, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteVIP(ctx, admin, v) })
		vips = append(vips, name)
	}
	var members []string
	for _, n := range nodes {
		members = append(members, n.name)
	}
	// Node i is the MASTER of VirtualIP i.
	for i, name := range vips {
		nodes[i].agent.set(name, vrrp.Master, vrrp.ReasonMasterDown)
	}
	for i, name := range vips {
		want := members
		if i == 0 {
			want = append(slices.Clone(members), "scale-named")
		}
		waitStatus(t, admin, name, fmt.Sprintf("members of %v, %s MASTER", want, nodes[i].name), func(v *vipStatus) error {
			for _, n := range want {
				if _, ok := entryOf(v, n); !ok {
					return fmt.Errorf("no member of %s", n)
				}
			}
			return wantConditions(v, nodes[i].name, controllers.ConditionReady, controllers.ReasonOneMaster)
		})
	}
	writes.settle(time.Second, 5*time.Second)
	writes.take()

	t.Run("steady", func(t *testing.T) {
		// Two resyncs of every node: each compares its members with the cache, none writes.
		time.Sleep(2*resync + resync/2)
		if got := writes.take(); len(got) > 0 {
			t.Errorf("%d status writes in a steady state over two resyncs, want none: %v", len(got), got)
		}
	})

	t.Run("failover", func(t *testing.T) {
		// Back and forth between the first two nodes, as a preemption goes: the new MASTER takes
		// over, the old one hears it and steps down.
		vip := vips[0]
		var conflicts int
		for round := range failovers {
			from, to := nodes[round%2], nodes[(round+1)%2]
			writes.take()
			before := dumps()
			to.agent.set(vip, vrrp.Master, vrrp.ReasonPreempting)
			from.agent.set(vip, vrrp.Backup, vrrp.ReasonHigherPriority)
			waitStatus(t, admin, vip, to.name+" MASTER", func(v *vipStatus) error {
				if e, _ := entryOf(v, from.name); e.State != vrrp.Backup.String() {
					return fmt.Errorf("member of %s: %s", from.name, e.State)
				}
				return wantConditions(v, to.name, controllers.ConditionReady, controllers.ReasonOneMaster)
			})
			writes.settle(time.Second, 5*time.Second)
			got := writes.take()
			// applied reports whether w is node's apply of its own member of vip.
			applied := func(w statusWrite, node string) bool {
				return w.vip == vip && w.node == node && w.manager == "kube-vrrp-agent/"+node && w.method == http.MethodPatch
			}
			var oldMember, newMember, summary, stray, others, refused []statusWrite
			for _, w := range got {
				switch {
				case w.code < 200 || w.code > 299:
					refused = append(refused, w)
				case w.vip != vip:
					others = append(others, w)
				case w.node == "":
					summary = append(summary, w)
				case applied(w, from.name):
					oldMember = append(oldMember, w)
				case applied(w, to.name):
					newMember = append(newMember, w)
				default:
					stray = append(stray, w)
				}
			}
			t.Logf("failover %d, %s to %s: %d status writes: %v", round, from.name, to.name, len(got), got)
			// The old MASTER's member (Backup), the new MASTER's (Master) and the summary: three
			// writes whatever the number of nodes, none of another node or VirtualIP. A refused
			// write (a summary that lost a race, written again) costs the API server as much
			// as any: one more at most.
			if len(oldMember) != 1 || len(newMember) != 1 || len(summary) != 1 || len(stray)+len(others) > 0 || len(refused) > 1 {
				t.Errorf("failover %d cost %d writes of the old MASTER's member, %d of the new one's, %d of the summary (want 1 each), "+
					"%d of other members of its VirtualIP, %d of other VirtualIPs (want 0) and %d refused (want at most 1): %v",
					round, len(oldMember), len(newMember), len(summary), len(stray), len(others), len(refused), got)
			}
			conflicts += len(refused)
			// Status is no spec: no VirtualIPReconciler reads the host again (the nodes poll their
			// interfaces only hourly here, so every read would be a reconcile's).
			if n := dumps() - before; n > 0 {
				t.Errorf("failover %d: the nodes read their interfaces %d times", round, n)
			}
		}
		// One writer at a time: a conflict needs the two members of a takeover to land a
		// summaryBatch apart, around the writer's own write; seen only on a loaded machine.
		if conflicts > 1 {
			t.Errorf("%d writes refused in %d failovers, want at most one", conflicts, failovers)
		}
	})

	t.Run("off-link", func(t *testing.T) {
		for _, name := range vips {
			v, err := getVIP(ctx, admin, name)
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := entryOf(v, "scale-off"); ok {
				t.Errorf("%s: member of scale-off, which has no interface in the subnet: %+v", name, e)
			}
			e, ok := entryOf(v, "scale-named")
			switch {
			case name == vips[0] && (!ok || e.State != vrrp.Fault.String() || e.Reason != controllers.ReasonCannotResolve ||
				!strings.Contains(e.Message, "no interface has an address in the subnet")):
				t.Errorf("%s names scale-named in spec.nodes: its member says %+v (present %v), want Fault, CannotResolve and why", name, e, ok)
			case name != vips[0] && ok:
				t.Errorf("%s: member of scale-named, which it does not name: %+v", name, e)
			}
		}
	})
}
