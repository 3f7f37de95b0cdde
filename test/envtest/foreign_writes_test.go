package envtest

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// TestForeignRouterWrites (docs/design.md §4.6): a node that keeps hearing a foreign router,
// an advert a second with its count and lastSeen moving each time, writes its member
// when the router appears and then about once a minute of lastSeen, not once per advert.
// Three minutes of adverts (their lastSeen a second apart, sent faster than that) are counted
// against the real API server.
func TestForeignRouterWrites(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
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
		prefix  = "fwrites"
		seconds = 180 // of adverts, one a second
	)
	writes := &statusWrites{}
	restCfg := writes.wrap(cfg)
	node := prefix + "-n1"
	createNode(t, admin, node, "198.18.5.11", map[string]string{groupLabel: prefix})
	n1 := startNode(t, restCfg, log, node, "198.18.5.11")

	name := prefix + "-web"
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 52, Addresses: []string{"198.18.5.100/24"}, Priority: ptr.To[int32](100),
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: prefix}},
	}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	n1.agent.set(name, vrrp.Master, vrrp.ReasonMasterDown)
	waitStatus(t, admin, name, "n1 MASTER", func(v *vipStatus) error {
		return wantConditions(v, node, controllers.ConditionReady, controllers.ReasonOneMaster)
	})
	writes.settle(time.Second, 10*time.Second)
	writes.take()

	start := time.Now().Truncate(time.Second)
	stranger := vrrp.Foreign{Src: netip.MustParseAddr("198.18.5.50"), Priority: 254,
		Addresses: []netip.Addr{netip.MustParseAddr("198.18.5.200")}}
	for i := range seconds {
		stranger.Count, stranger.LastSeen = uint64(i+1), start.Add(time.Duration(i)*time.Second)
		n1.agent.hear(name, vrrp.Master, stranger)
		time.Sleep(30 * time.Millisecond)
	}
	last := stranger.LastSeen
	v := waitStatus(t, admin, name, "the stranger listed, its lastSeen within a minute of the last advert", func(v *vipStatus) error {
		e, _ := entryOf(v, node)
		if len(e.ForeignRouters) != 1 {
			return fmt.Errorf("foreignRouters %+v", e.ForeignRouters)
		}
		if f := e.ForeignRouters[0]; last.Sub(f.LastSeen.Time) >= time.Minute || f.Count < seconds-60 {
			return fmt.Errorf("the stranger last seen %s, count %d; last advert %s, count %d", f.LastSeen, f.Count, last, seconds)
		}
		if c, _ := conditionOf(v, controllers.ConditionForeignRouter); c.Status != metav1.ConditionTrue {
			return fmt.Errorf("ForeignRouter %+v", c)
		}
		return nil
	})
	writes.settle(time.Second, 10*time.Second)
	var entry, summary, other []statusWrite
	for _, w := range writes.take() {
		switch {
		case w.vip != name:
			other = append(other, w)
		case w.node == node && w.manager == "kube-vrrp-agent/"+node:
			entry = append(entry, w)
		case w.node == "":
			summary = append(summary, w)
		default:
			other = append(other, w)
		}
	}
	e, _ := entryOf(v, node)
	t.Logf("%d adverts over %d s of lastSeen: %d writes of the node's member, %d of the summary, %d of others; stored %+v",
		seconds, seconds, len(entry), len(summary), len(other), e.ForeignRouters)
	// The router appears, then its lastSeen moves on a minute at a time: at most one write per
	// minute of adverts, and one more.
	if max := seconds/60 + 1; len(entry) > max {
		t.Errorf("%d writes of the node's member for %d s of adverts from one foreign router, want at most %d: %v ...",
			len(entry), seconds, max, entry[:5])
	}
	// The summary names the router, not its count: ForeignRouter turns True once.
	if len(summary) > 1 {
		t.Errorf("%d writes of the summary, want at most one: %v", len(summary), summary)
	}
}
