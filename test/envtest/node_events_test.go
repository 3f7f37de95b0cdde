package envtest

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
)

// TestNodeChangeReconciles (docs/design.md §7.2): against a real API server, a Node's change
// reconciles on this node only the VirtualIPs it concerns. An unrelated Node's new labels
// reconcile none; a member's new address, its VirtualIP; a Node leaving a selector, that
// VirtualIP; a Node taking a VirtualIP's address, that one (refused AddressInUse), and giving it
// back, that one again. Each reconcile that runs a VirtualIP applies it to the agent: the
// applies count them.
func TestNodeChangeReconciles(t *testing.T) {
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
	const p = "nodeev"
	self, member, selected, unrelated := p+"-n1", p+"-n2", p+"-n3", p+"-u"
	createNode(t, admin, self, "198.18.7.11", map[string]string{"role": p + "-lb"})
	createNode(t, admin, member, "198.18.7.12", nil)
	createNode(t, admin, selected, "198.18.7.13", map[string]string{"role": p + "-lb"})
	createNode(t, admin, unrelated, "198.18.7.50", map[string]string{"role": p + "-web"})
	n1 := startNode(t, cfg, log, self, "198.18.7.11")

	named, bySelector, solo := p+"-named", p+"-selected", p+"-solo"
	for _, v := range []*v1alpha1.VirtualIP{
		{ObjectMeta: metav1.ObjectMeta{Name: named}, Spec: v1alpha1.VirtualIPSpec{VRID: 61, Addresses: []string{"198.18.7.100/24"},
			Nodes: []v1alpha1.NodeOverride{{Name: self}, {Name: member}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: bySelector}, Spec: v1alpha1.VirtualIPSpec{VRID: 62, Addresses: []string{"198.18.7.101/24"},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": p + "-lb"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: solo}, Spec: v1alpha1.VirtualIPSpec{VRID: 63, Addresses: []string{"198.18.7.102/24"},
			Nodes: []v1alpha1.NodeOverride{{Name: self}}}},
	} {
		if err := admin.Create(ctx, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteVIP(ctx, admin, v) })
	}
	peers := func(name string) []netip.Addr {
		c, _ := n1.agent.config(name)
		var out []netip.Addr
		for _, m := range c.Members {
			out = append(out, m.Addr)
		}
		slices.SortFunc(out, netip.Addr.Compare)
		return out
	}
	addrs := func(ips ...string) []netip.Addr {
		var out []netip.Addr
		for _, ip := range ips {
			out = append(out, netip.MustParseAddr(ip))
		}
		return out
	}
	eventually(t, wait, "the three run with their members", func() error {
		if got := peers(named); !slices.Equal(got, addrs("198.18.7.12")) {
			return fmt.Errorf("%s: members %v", named, got)
		}
		if got := peers(bySelector); !slices.Equal(got, addrs("198.18.7.13")) {
			return fmt.Errorf("%s: members %v", bySelector, got)
		}
		if _, ok := n1.agent.config(solo); !ok {
			return fmt.Errorf("%s does not run", solo)
		}
		return nil
	})

	vips := []string{named, bySelector, solo}
	applies := func() map[string]int {
		out := map[string]int{}
		for _, v := range vips {
			out[v] = n1.agent.count("Apply", v)
		}
		return out
	}
	// step makes a change, waits for what it must do and for want to be reconciled (applied
	// again), and then checks that of the VirtualIPs only want were.
	step := func(what string, change func(), done func() error, want ...string) {
		t.Helper()
		time.Sleep(500 * time.Millisecond) // the last step's reconciles, if any were late
		before := applies()
		change()
		eventually(t, wait, what, func() error {
			now := applies()
			for _, v := range want {
				if now[v] == before[v] {
					return fmt.Errorf("%s not reconciled", v)
				}
			}
			return done()
		})
		time.Sleep(time.Second) // anything else queued by the change has run by now
		after := applies()
		var got []string
		for _, v := range vips {
			if after[v] != before[v] {
				got = append(got, v)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: reconciled %v (applies %v, then %v), want %v", what, got, before, after, want)
		}
	}
	relabel := func(node string, labels map[string]string) func() {
		return func() {
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
			if err != nil {
				t.Fatal(err)
			}
			if err := admin.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, client.RawPatch(types.MergePatchType, patch)); err != nil {
				t.Fatal(err)
			}
		}
	}
	readdress := func(node string, ips ...string) func() {
		return func() {
			var n corev1.Node
			if err := admin.Get(ctx, types.NamespacedName{Name: node}, &n); err != nil {
				t.Fatal(err)
			}
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: node}}
			for _, ip := range ips {
				n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
			}
			if err := admin.Status().Update(ctx, &n); err != nil {
				t.Fatal(err)
			}
		}
	}
	stored := func(node string, ok func(n *corev1.Node) bool) func() error {
		return func() error {
			var n corev1.Node
			if err := admin.Get(ctx, types.NamespacedName{Name: node}, &n); err != nil {
				return err
			}
			if !ok(&n) {
				return fmt.Errorf("node %s: labels %v, addresses %v", node, n.Labels, n.Status.Addresses)
			}
			return nil
		}
	}

	// An unrelated Node's labels: nothing; nothing to wait for but the API server.
	step("an unrelated Node's labels", relabel(unrelated, map[string]string{"zone": "a"}),
		stored(unrelated, func(n *corev1.Node) bool { return n.Labels["zone"] == "a" }))
	step("an unrelated Node's address", readdress(unrelated, "198.18.7.51"),
		stored(unrelated, func(n *corev1.Node) bool {
			return len(n.Status.Addresses) == 2 && n.Status.Addresses[1].Address == "198.18.7.51"
		}))
	step("a member's address", readdress(member, "198.18.7.22"), func() error {
		if got := peers(named); !slices.Equal(got, addrs("198.18.7.22")) {
			return fmt.Errorf("%s: members %v", named, got)
		}
		return nil
	}, named)
	step("a member's labels, a member still", relabel(selected, map[string]string{"zone": "b"}),
		stored(selected, func(n *corev1.Node) bool { return n.Labels["zone"] == "b" }))
	step("a Node leaving a selector", relabel(selected, map[string]string{"role": p + "-web"}), func() error {
		if got := peers(bySelector); len(got) != 0 {
			return fmt.Errorf("%s: members %v", bySelector, got)
		}
		return nil
	}, bySelector)
	step("a Node taking a virtual address", readdress(unrelated, "198.18.7.51", "198.18.7.102"), func() error {
		if why, ok := n1.rejected.Get(solo); !ok || why.Reason != controllers.ReasonAddressInUse {
			return fmt.Errorf("%s: refused %v %+v", solo, ok, why)
		}
		return nil
	}) // refused: not applied
	step("the address given back", readdress(unrelated, "198.18.7.51"), func() error {
		if _, ok := n1.rejected.Get(solo); ok {
			return fmt.Errorf("%s still refused", solo)
		}
		return nil
	}, solo)
	// This node's labels concern every VirtualIP it could run.
	step("this node's labels", relabel(self, map[string]string{"zone": "c"}), func() error { return nil }, vips...)
}
