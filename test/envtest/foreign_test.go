package envtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// foreignSeenStep is how far a foreign router's lastSeen in a node's member may fall behind
// before the entry is written for it alone (controllers' foreignSeenStep).
const foreignSeenStep = time.Minute

// hear makes the instance name report state and the foreign routers fs, as the engine does
// when it hears adverts for its VRID with another address list, and signals the change.
func (f *fakeAgent) hear(name string, state vrrp.State, fs ...vrrp.Foreign) {
	f.mu.Lock()
	f.states[name] = agent.Status{Status: vrrp.Status{State: state, Reason: vrrp.ReasonStarted,
		Since: time.Unix(1_700_000_000, 0), Foreign: fs}}
	f.mu.Unlock()
	f.notify()
}

// foreignEventsOf returns the ForeignRouter Events about the VirtualIP name.
func foreignEventsOf(ctx context.Context, c client.Client, name string) ([]eventsv1.Event, error) {
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "VirtualIP" && e.Regarding.Name == name && e.Reason == controllers.ReasonForeignRouter {
			out = append(out, e)
		}
	}
	return out, nil
}

// occurrences counts the ForeignRouter Events about the VirtualIP name with note: a repeat is
// a new Event, or a series of the last one.
func occurrences(ctx context.Context, c client.Client, name, note string) (int, error) {
	evs, err := foreignEventsOf(ctx, c, name)
	var n int
	for _, e := range evs {
		switch {
		case e.Note != note:
		case e.Series != nil:
			n += int(e.Series.Count)
		default:
			n++
		}
	}
	return n, err
}

// TestForeignRouter: a node's agent hears another router advertise the VirtualIP's VRID with
// other addresses. Against a real API server, the node lists it in its member, the
// aggregator raises ForeignRouter (VRIDInUse) naming the node, sender, VRID, interface and
// addresses, and the node records one Warning Event with the same message: not again while the
// router keeps being heard, again once it has gone and come back. Ready keeps its meaning.
// The largest member the agent writes (8 routers of 16 addresses) fits the CRD's bounds.
func TestForeignRouter(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	rec := &codeRecorder{}
	checkResponses(t, rec, "admin") // a member beyond the CRD's bounds would be a 422
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

	const prefix = "foreign"
	n1name, n2name := prefix+"-n1", prefix+"-n2"
	createNode(t, admin, n1name, "198.18.0.31", map[string]string{groupLabel: prefix})
	createNode(t, admin, n2name, "198.18.0.32", map[string]string{groupLabel: prefix})
	restCfg := rec.wrap(cfg)
	n1 := startNode(t, restCfg, log, n1name, "198.18.0.31")
	n2 := startNode(t, restCfg, log, n2name, "198.18.0.32")

	name := prefix + "-web"
	vip := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualIPSpec{
			VRID: 51, Addresses: []string{"198.18.0.130/24"}, Priority: ptr.To[int32](100),
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: prefix}},
		},
	}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	eventually(t, wait, "both nodes run it", func() error {
		if _, ok := n1.agent.config(name); !ok {
			return fmt.Errorf("n1 does not")
		}
		if _, ok := n2.agent.config(name); !ok {
			return fmt.Errorf("n2 does not")
		}
		return nil
	})
	// Both members first: their addresses tell the group's nodes from strangers.
	waitStatus(t, admin, name, "both members and NoForeignRouter", func(v *vipStatus) error {
		for _, n := range []string{n1name, n2name} {
			if e, ok := entryOf(v, n); !ok || e.Address == "" {
				return fmt.Errorf("no member with an address of %s", n)
			}
		}
		c, ok := conditionOf(v, controllers.ConditionForeignRouter)
		if !ok || c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonNoForeign {
			return fmt.Errorf("ForeignRouter %+v", c)
		}
		return nil
	})

	// n2 is MASTER; n1 hears a stranger, and n2 with another list (an edit rolling out).
	n2.agent.hear(name, vrrp.Master)
	stranger := vrrp.Foreign{Src: netip.MustParseAddr("198.18.0.50"), Priority: 254,
		Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}, Count: 1, LastSeen: time.Now()}
	member := vrrp.Foreign{Src: netip.MustParseAddr("198.18.0.32"), Priority: 100, InElection: true,
		Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.130"), netip.MustParseAddr("198.18.0.131")}, Count: 1, LastSeen: time.Now()}
	n1.agent.hear(name, vrrp.Backup, stranger, member)

	msg := "node " + n1name + " hears 198.18.0.50 on eth0 advertising VRID 51 with 198.18.0.200 (priority 254), not this group's addresses: " +
		"another VRRP group uses VRID 51 on this link; give one of them another spec.vrid (or fix its addresses)"
	// Both nodes' members arrive in writes of their own: wait for n2's MASTER too.
	v := waitStatus(t, admin, name, "ForeignRouter True and n2 MASTER", func(v *vipStatus) error {
		if e, ok := entryOf(v, n2name); !ok || e.State != vrrp.Master.String() {
			return fmt.Errorf("n2's member %+v", e)
		}
		c, ok := conditionOf(v, controllers.ConditionForeignRouter)
		if !ok || c.Status != metav1.ConditionTrue || c.Reason != controllers.ReasonVRIDInUse || c.ObservedGeneration != v.Generation {
			return fmt.Errorf("ForeignRouter %+v", c)
		}
		// A foreign router does not make the group not Ready by itself. The summary beside n2's
		// new member may still be the one of the members before it, until an agent summarises
		// again: wait for the summary of these members.
		if err := wantConditions(v, n2name, controllers.ConditionReady, controllers.ReasonOneMaster); err != nil {
			return fmt.Errorf("Ready with a foreign router heard: %w [%s]", err, describe(v))
		}
		if c.Message != msg {
			return fmt.Errorf("message %q, want %q", c.Message, msg)
		}
		return nil
	})
	e, _ := entryOf(v, n1name)
	if len(e.ForeignRouters) != 2 {
		t.Fatalf("n1's foreignRouters %+v, want n2 and the stranger", e.ForeignRouters)
	}
	// By address.
	if f := e.ForeignRouters[1]; f.Address != "198.18.0.50" || f.Priority != 254 || f.InElection || f.Count != 1 ||
		!slices.Equal(f.Addresses, []string{"198.18.0.200"}) || f.LastSeen.IsZero() {
		t.Errorf("the stranger's entry %+v", f)
	}
	if f := e.ForeignRouters[0]; f.Address != "198.18.0.32" || !f.InElection || !slices.Equal(f.Addresses, []string{"198.18.0.130", "198.18.0.131"}) {
		t.Errorf("n2's entry %+v", f)
	}

	// One Warning Event, with the condition's message.
	var first eventsv1.Event
	eventually(t, wait, "the ForeignRouter Event", func() error {
		evs, err := foreignEventsOf(ctx, admin, name)
		if err != nil {
			return err
		}
		if len(evs) != 1 {
			return fmt.Errorf("%d ForeignRouter Events", len(evs))
		}
		first = evs[0]
		return nil
	})
	if first.Type != "Warning" || first.Note != msg || first.Action != "Detect" || first.ReportingController != "kube-vrrp-agent" ||
		first.Regarding.APIVersion != v1alpha1.GroupVersion.String() {
		t.Errorf("Event %s %s %q action %q by %q about %s", first.Type, first.Reason, first.Note, first.Action,
			first.ReportingController, first.Regarding.APIVersion)
	}

	// Heard again and again: no new Event (nor a series of the first). Within the minute the
	// member stays as it is (count and lastSeen alone are not worth a write, docs/design.md
	// §4.6); a minute on, it follows.
	firstSeen := stranger.LastSeen
	for i := 2; i <= 4; i++ {
		stranger.Count, stranger.LastSeen = uint64(i), time.Now()
		n1.agent.hear(name, vrrp.Backup, stranger, member)
	}
	time.Sleep(time.Second) // Events are sent asynchronously, and any write would have been
	if n, err := occurrences(ctx, admin, name, msg); err != nil || n != 1 {
		t.Errorf("%d ForeignRouter Events while the same router is heard, want the first only (%v)", n, err)
	}
	if v, err := getVIP(ctx, admin, name); err != nil {
		t.Fatal(err)
	} else if e, _ := entryOf(v, n1name); len(e.ForeignRouters) != 2 || e.ForeignRouters[1].Count != 1 {
		t.Errorf("n1's foreignRouters %+v: rewritten within the minute for count and lastSeen alone", e.ForeignRouters)
	}
	stranger.Count, stranger.LastSeen = 5, firstSeen.Add(foreignSeenStep+time.Second)
	n1.agent.hear(name, vrrp.Backup, stranger, member)
	waitStatus(t, admin, name, "count 5, a minute on", func(v *vipStatus) error {
		if e, _ := entryOf(v, n1name); len(e.ForeignRouters) != 2 || e.ForeignRouters[1].Count != 5 {
			return fmt.Errorf("n1's foreignRouters %+v", e.ForeignRouters)
		}
		return nil
	})

	// Gone: the condition clears and the member drops it.
	n1.agent.hear(name, vrrp.Backup)
	waitStatus(t, admin, name, "ForeignRouter False again", func(v *vipStatus) error {
		c, _ := conditionOf(v, controllers.ConditionForeignRouter)
		if c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonNoForeign {
			return fmt.Errorf("ForeignRouter %+v", c)
		}
		if e, _ := entryOf(v, n1name); len(e.ForeignRouters) != 0 {
			return fmt.Errorf("n1's foreignRouters %+v", e.ForeignRouters)
		}
		return nil
	})
	// Back: recorded again.
	stranger.LastSeen = time.Now()
	n1.agent.hear(name, vrrp.Backup, stranger)
	eventually(t, wait, "the Event again", func() error {
		if n, err := occurrences(ctx, admin, name, msg); err != nil || n != 2 {
			return fmt.Errorf("%d occurrences, want 2 (%v)", n, err)
		}
		return nil
	})

	// The most the agent reports: 10 routers heard, 20 addresses each, of the longest text;
	// the member keeps 8 of 16 and the API server takes it (checkResponses fails on a 422).
	var many []vrrp.Foreign
	for i := range 10 {
		f := vrrp.Foreign{Src: netip.MustParseAddr(fmt.Sprintf("198.18.1.%d", 10+i)), Priority: 200, Count: 1, LastSeen: time.Now()}
		for j := range 20 {
			f.Addresses = append(f.Addresses, netip.MustParseAddr(fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:ffff:ff%02x", j)))
		}
		many = append(many, f)
	}
	n1.agent.hear(name, vrrp.Backup, many...)
	waitStatus(t, admin, name, "8 routers of 16 addresses", func(v *vipStatus) error {
		e, _ := entryOf(v, n1name)
		if len(e.ForeignRouters) != 8 || len(e.ForeignRouters[0].Addresses) != 16 || e.ForeignRouters[0].Address != "198.18.1.10" {
			return fmt.Errorf("n1's foreignRouters: %d", len(e.ForeignRouters))
		}
		c, _ := conditionOf(v, controllers.ConditionForeignRouter)
		if c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "; and 5 more (") ||
			!strings.Contains(c.Message, "ffff:ff03 and 12 more (priority 200)") {
			return fmt.Errorf("ForeignRouter %+v", c)
		}
		return nil
	})
}
