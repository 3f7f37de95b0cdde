package envtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/internal/chart"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The tests of the chart's status policy (templates/statuspolicy.yaml) run the agents with the
// credentials a DaemonSet pod has: a ServiceAccount token bound to a Pod scheduled on the
// node, which carries the node's name (authentication.kubernetes.io/node-name).

// installStatusPolicy creates the chart's ValidatingAdmissionPolicy and binding, rendered for
// the agent's ServiceAccount for a cluster of kubeVersion (chart.DefaultKubeVersion if empty), and
// removes them when the test ends (the policy applies to every test that writes status as the
// agent).
func installStatusPolicy(t *testing.T, admin client.Client, kubeVersion string) {
	t.Helper()
	ctx := t.Context()
	rel, err := chart.Render(ctx, filepath.Join(repoRoot, "charts", "kube-vrrp"), chart.Options{
		ReleaseName: "kube-vrrp", Namespace: agentNamespace, Values: "serviceAccount: {name: kube-vrrp-agent}", KubeVersion: kubeVersion})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, u := range rel.Objects {
		if u.GetAPIVersion() != "admissionregistration.k8s.io/v1" {
			continue
		}
		n++
		if err := admin.Create(ctx, u); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() {
			if err := admin.Delete(context.WithoutCancel(ctx), u); err != nil {
				t.Errorf("delete %s %s: %v", u.GetKind(), u.GetName(), err)
			}
		})
	}
	if n != 2 {
		t.Fatalf("the chart renders %d admission objects, want a policy and its binding", n)
	}
}

// podToken returns the agent's credentials as its pod on node has them: a Pod of the agent's
// ServiceAccount with spec.nodeName, and a token bound to it.
func podToken(t *testing.T, admin client.Client, node string) *rest.Config {
	t.Helper()
	ctx := t.Context()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "kube-vrrp-" + node},
		Spec: corev1.PodSpec{ServiceAccountName: "kube-vrrp-agent", NodeName: node,
			Containers: []corev1.Container{{Name: "agent", Image: "kube-vrrp"}}},
	}
	if err := admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.Delete(context.WithoutCancel(ctx), pod, client.GracePeriodSeconds(0))
	})
	return token(t, &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID})
}

// token returns a config that authenticates with a token of the agent's ServiceAccount, bound
// to bound if not nil.
func token(t *testing.T, bound *authenticationv1.BoundObjectReference) *rest.Config {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(agentNamespace).CreateToken(t.Context(), "kube-vrrp-agent",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600), BoundObjectRef: bound}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := rest.AnonymousClientConfig(cfg)
	c.BearerToken = tr.Status.Token
	return c
}

// applyEntries server-side applies status.nodes entries of vip as manager, as the
// StatusReconciler applies its node's entry; dryRun probes without writing.
func applyEntries(ctx context.Context, c client.Client, vip, manager string, dryRun bool, entries ...map[string]any) error {
	nodes := []any{}
	for _, e := range entries {
		nodes = append(nodes, e)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIP",
		"metadata": map[string]any{"name": vip},
		"status":   map[string]any{"nodes": nodes},
	}}
	opts := []client.SubResourceApplyOption{client.FieldOwner(manager), client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	return c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...)
}

// TestStatusPolicy: with the chart's policy, as rendered for Kubernetes 1.33 or later and for
// 1.31 and 1.32, the agent on n1 (its pod-bound token) writes its own entry and the summary and
// removes a stale entry, but may not add or change the entry of another node; credentials
// without a node name may not write status at all.
func TestStatusPolicy(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "vap-n1", "198.18.0.21", nil)
	createNode(t, admin, "vap-n2", "198.18.0.22", nil)
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "vap"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 80, Addresses: []string{"198.18.0.130/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "vap-n1"}, {Name: "vap-n2"}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), vip) })

	n1, err := client.New(podToken(t, admin, "vap-n1"), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := client.New(token(t, nil), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(node, state string) map[string]any {
		return map[string]any{"name": node, "state": state, "priority": int64(100), "interface": "eth0"}
	}
	// The chart renders the policy for the cluster's version: linear in the entries from
	// Kubernetes 1.33, the quadratic form before; both say the same.
	for _, kv := range []struct{ name, version string }{{"linear", ""}, {"kubernetes 1.32", "v1.32.0"}} {
		t.Run(kv.name, func(t *testing.T) {
			// n2's entry, as n2's agent wrote it.
			if err := applyEntries(ctx, admin, vip.Name, "kube-vrrp-agent/vap-n2", false, entry("vap-n2", "Backup")); err != nil {
				t.Fatal(err)
			}

			installStatusPolicy(t, admin, kv.version)
			// The policy takes effect once the API server has loaded it: probe with a dry run.
			eventually(t, wait, "the policy in effect", func() error {
				err := applyEntries(ctx, n1, vip.Name, "kube-vrrp-agent/vap-n1", true, entry("vap-n2", "Master"))
				if !apierrors.IsForbidden(err) {
					return fmt.Errorf("n1 writing n2's entry (dry run): %v", err)
				}
				return nil
			})

			t.Run("own entry", func(t *testing.T) {
				if err := applyEntries(ctx, n1, vip.Name, "kube-vrrp-agent/vap-n1", false, entry("vap-n1", "Backup")); err != nil {
					t.Fatalf("n1 applying its own entry: %v", err)
				}
				if err := applyEntries(ctx, n1, vip.Name, "kube-vrrp-agent/vap-n1", false, entry("vap-n1", "Master")); err != nil {
					t.Fatalf("n1 changing its own entry: %v", err)
				}
				v, err := getVIP(ctx, admin, vip.Name)
				if err != nil {
					t.Fatal(err)
				}
				if e, _ := entryOf(v, "vap-n1"); e.State != "Master" {
					t.Errorf("n1's entry %+v", e)
				}
			})

			t.Run("summary", func(t *testing.T) {
				patch := []byte(`{"status":{"master":"vap-n1","observedGeneration":1}}`)
				if err := n1.Status().Patch(ctx, vip.DeepCopy(), client.RawPatch(types.MergePatchType, patch),
					client.FieldOwner(controllers.AggregatorFieldManager)); err != nil {
					t.Fatalf("n1 writing the summary: %v", err)
				}
			})

			denied := func(t *testing.T, what string, err error, names ...string) {
				t.Helper()
				if !apierrors.IsForbidden(err) {
					t.Fatalf("%s: %v, want Forbidden", what, err)
				}
				for _, want := range append([]string{"the agent on node vap-n1 may write only its own entry of status.nodes, not the entry of"}, names...) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: %q does not say %q", what, err, want)
					}
				}
			}
			t.Run("another node's entry", func(t *testing.T) {
				before, err := getVIP(ctx, admin, vip.Name)
				if err != nil {
					t.Fatal(err)
				}
				err = applyEntries(ctx, n1, vip.Name, "kube-vrrp-agent/vap-n1", false, entry("vap-n1", "Master"), entry("vap-n2", "Fault"))
				denied(t, "n1 applying n2's entry", err, "vap-n2")

				// The same with a patch on the whole list, and a JSON patch of one field.
				merge, _ := json.Marshal(map[string]any{"status": map[string]any{"nodes": []any{entry("vap-n1", "Master"), entry("vap-n2", "Fault")}}})
				err = n1.Status().Patch(ctx, before.DeepCopy(), client.RawPatch(types.MergePatchType, merge))
				denied(t, "n1 merge-patching n2's entry", err, "vap-n2")
				i := slices.IndexFunc(before.Status.Nodes, func(n v1alpha1.NodeStatus) bool { return n.Name == "vap-n2" })
				jp := fmt.Sprintf(`[{"op":"replace","path":"/status/nodes/%d/state","value":"Master"}]`, i)
				err = n1.Status().Patch(ctx, before.DeepCopy(), client.RawPatch(types.JSONPatchType, []byte(jp)))
				denied(t, "n1 JSON-patching n2's state", err, "vap-n2")

				// Nor invent a node.
				err = applyEntries(ctx, n1, vip.Name, "kube-vrrp-agent/vap-n1", false, entry("vap-n1", "Master"), entry("vap-n9", "Backup"))
				denied(t, "n1 adding an entry for vap-n9", err, "vap-n9")

				after, err := getVIP(ctx, admin, vip.Name)
				if err != nil {
					t.Fatal(err)
				}
				if e, _ := entryOf(after, "vap-n2"); e.State != "Backup" || len(after.Status.Nodes) != 2 {
					t.Errorf("after the denied writes: %s", describe(after))
				}
			})

			t.Run("no node name", func(t *testing.T) {
				err := applyEntries(ctx, unbound, vip.Name, "kube-vrrp-agent/vap-n1", false, entry("vap-n1", "Backup"))
				if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "carry no node name") {
					t.Fatalf("a token not bound to a pod on a node: %v, want Forbidden saying it carries no node name", err)
				}
			})

			t.Run("prune", func(t *testing.T) {
				// The aggregator removes the entry of a node that is gone, by a JSON patch that tests
				// the entry's name first.
				v, err := getVIP(ctx, admin, vip.Name)
				if err != nil {
					t.Fatal(err)
				}
				i := slices.IndexFunc(v.Status.Nodes, func(n v1alpha1.NodeStatus) bool { return n.Name == "vap-n2" })
				jp := fmt.Sprintf(`[{"op":"test","path":"/status/nodes/%d/name","value":"vap-n2"},{"op":"remove","path":"/status/nodes/%d"}]`, i, i)
				if err := n1.Status().Patch(ctx, v.DeepCopy(), client.RawPatch(types.JSONPatchType, []byte(jp))); err != nil {
					t.Fatalf("n1 pruning n2's entry: %v", err)
				}
				v, err = getVIP(ctx, admin, vip.Name)
				if err != nil {
					t.Fatal(err)
				}
				if got := entryNames(v); !slices.Equal(got, []string{"vap-n1"}) {
					t.Errorf("entries after the prune: %v", got)
				}
			})
		})
		// Its policy is deleted as the subtest ends: wait until the API server no longer applies it.
		eventually(t, wait, "the policy gone", func() error {
			if err := applyEntries(ctx, n1, vip.Name, "kube-vrrp-agent/vap-n1", true, entry("vap-n2", "Master")); err != nil {
				return fmt.Errorf("n1 writing n2's entry (dry run): %v", err)
			}
			return nil
		})
	}
}

// TestStatusPolicyAgents: the agents' own reconcilers and aggregators, each node's with its pod's
// token, work under the policy without a single refused request: entries, summary, withdrawal,
// and the prune of a node that is gone.
func TestStatusPolicyAgents(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	installStatusPolicy(t, admin, "")
	ensureNamespace(t, admin, agentNamespace)
	labels := map[string]string{groupLabel: "vap"}
	createNode(t, admin, "vap-a1", "198.18.0.31", labels)
	createNode(t, admin, "vap-a2", "198.18.0.32", labels)

	rec := &codeRecorder{}
	checkResponses(t, rec, agentUser)
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	startNode(t, rec.wrap(podToken(t, admin, "vap-a1")), log, "vap-a1", "198.18.0.31")
	n2cfg := rec.wrap(podToken(t, admin, "vap-a2"))

	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "vap-agents"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 81, Addresses: []string{"198.18.0.131/24"},
		NodeSelector: &metav1.LabelSelector{MatchLabels: labels}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), vip) })

	// vap-a2's agent runs for this subtest only: its manager stops when it ends.
	t.Run("two agents", func(t *testing.T) {
		n2 := startNode(t, n2cfg, log, "vap-a2", "198.18.0.32")
		waitStatus(t, admin, vip.Name, "both entries and the summary", func(v *v1alpha1.VirtualIP) error {
			if got := entryNames(v); !slices.Equal(got, []string{"vap-a1", "vap-a2"}) {
				return fmt.Errorf("entries %v", got)
			}
			return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster)
		})
		n2.agent.set(vip.Name, vrrp.Master, vrrp.ReasonMasterDown)
		waitStatus(t, admin, vip.Name, "vap-a2 Master", func(v *v1alpha1.VirtualIP) error {
			return wantConditions(v, "vap-a2", controllers.ConditionReady, controllers.ReasonOneMaster)
		})
	})
	// vap-a2's agent is gone; so is its Node: vap-a1's aggregator prunes the entry.
	if err := admin.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "vap-a2"}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, admin, vip.Name, "vap-a2's entry pruned", func(v *v1alpha1.VirtualIP) error {
		if got := entryNames(v); !slices.Equal(got, []string{"vap-a1"}) {
			return fmt.Errorf("entries %v", got)
		}
		return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster)
	})
	time.Sleep(200 * time.Millisecond) // let a write racing the last check land in the recorder
}

// TestStatusPolicyScale: the policy's CEL is linear in the entries of status.nodes, so that at
// the CRD's limit (maxItems 1024) every write of an agent is decided by the policy itself and
// none by the API server's cost limit (an evaluation error, which refuses the write with the
// CEL's complaint instead of the policy's message): the agent's own entry is admitted, a change
// to another node's entry is refused naming it, and a prune of hundreds of entries, as the
// summary's writer sends it (docs/design.md §7.7), is admitted.
func TestStatusPolicyScale(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	const node, manager = "vap-scale", "kube-vrrp-agent/vap-scale"
	createNode(t, admin, node, "198.18.0.41", nil)
	agent, err := client.New(podToken(t, admin, node), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := client.New(token(t, nil), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	installStatusPolicy(t, admin, "")
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "vap-scale"},
		Spec: v1alpha1.VirtualIPSpec{VRID: 90, Addresses: []string{"198.18.0.140/24"}, Nodes: []v1alpha1.NodeOverride{{Name: node}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), vip) })

	// As many entries as the CRD allows, 1023 others and the agent's last, each with what an
	// agent writes (a message, a probe), so that comparing two entries costs what it does in a
	// cluster. (Each write of 1024 entries takes the API server a second or more.)
	const maxEntries = 1024 // status.nodes maxItems
	name := func(i int) string { return fmt.Sprintf("node-%04d.lb.example.com", i) }
	entry := func(node, state string) map[string]any {
		return map[string]any{"name": node, "state": state, "priority": int64(100), "interface": "eth0",
			"address": "198.18.0.1", "reason": "Started", "lastTransitionTime": "2026-01-02T03:04:05Z",
			"message": "the instance started as BACKUP and waits for the master's adverts",
			"probes":  []any{map[string]any{"name": "haproxy", "healthy": true, "message": "200 OK from http://127.0.0.1:8404/healthz"}}}
	}
	var entries []map[string]any
	for i := range maxEntries - 1 {
		entries = append(entries, entry(name(i), "Backup"))
	}
	entries = append(entries, entry(node, "Backup"))
	if err := applyEntries(ctx, admin, vip.Name, "kube-vrrp-agent/others", false, entries...); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the policy in effect", func() error {
		err := applyEntries(ctx, unbound, vip.Name, manager, true, entry(node, "Backup"))
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("writing without a node name (dry run): %v", err)
		}
		return nil
	})
	// refused checks that err is the policy's refusal naming exactly the entries written, in the
	// order of status.nodes, the first ten of them and how many more.
	refused := func(t *testing.T, what string, err error, names []string) {
		t.Helper()
		want := "the agent on node " + node + " may write only its own entry of status.nodes, not the entry of "
		if len(names) > 10 {
			want += strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
		} else {
			want += strings.Join(names, ", ")
		}
		if !apierrors.IsForbidden(err) || !strings.HasSuffix(err.Error(), ": "+want) {
			t.Errorf("%s: %v\nwant Forbidden: ...: %s", what, err, want)
		}
	}
	index := func(t *testing.T, v *v1alpha1.VirtualIP, node string) int {
		t.Helper()
		i := slices.IndexFunc(v.Status.Nodes, func(n v1alpha1.NodeStatus) bool { return n.Name == node })
		if i < 0 {
			t.Fatalf("no entry of %s: %s", node, describe(v))
		}
		return i
	}

	t.Run("own entry", func(t *testing.T) {
		if err := applyEntries(ctx, agent, vip.Name, manager, false, entry(node, "Master")); err != nil {
			t.Fatalf("the agent changing its own entry among %d: %v", maxEntries, err)
		}
		v, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := entryOf(v, node); len(v.Status.Nodes) != maxEntries || e.State != "Master" {
			t.Fatalf("%d entries, the agent's %+v", len(v.Status.Nodes), e)
		}
	})

	t.Run("another node's entry", func(t *testing.T) {
		v, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		// One field of one entry, by a JSON patch.
		i := index(t, v, name(500))
		jp := fmt.Sprintf(`[{"op":"test","path":"/status/nodes/%d/name","value":%q},{"op":"replace","path":"/status/nodes/%d/state","value":"Master"}]`, i, name(500), i)
		err = agent.Status().Patch(ctx, v.DeepCopy(), client.RawPatch(types.JSONPatchType, []byte(jp)))
		refused(t, "the agent changing "+name(500)+"'s state", err, []string{name(500)})
		// Every entry, by a merge patch of the whole list: the message names ten.
		var nodes []any
		var changed []string
		for _, n := range v.Status.Nodes {
			state := "Fault"
			if n.Name == node {
				state = n.State
			} else {
				changed = append(changed, n.Name)
			}
			nodes = append(nodes, entry(n.Name, state))
		}
		merge, _ := json.Marshal(map[string]any{"status": map[string]any{"nodes": nodes}})
		err = agent.Status().Patch(ctx, v.DeepCopy(), client.RawPatch(types.MergePatchType, merge))
		refused(t, "the agent changing every other entry", err, changed)

		after, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := entryOf(after, name(500)); e.State != "Backup" || len(after.Status.Nodes) != maxEntries {
			t.Errorf("after the refused writes: %d entries, %s's %+v", len(after.Status.Nodes), name(500), e)
		}
	})

	t.Run("prune", func(t *testing.T) {
		// Two entries in three are of nodes that are gone: the summary's writer removes them in
		// one JSON patch that tests each entry's name first, from the last (controllers/aggregator.go).
		v, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		type op struct {
			Op    string `json:"op"`
			Path  string `json:"path"`
			Value any    `json:"value,omitempty"`
		}
		var ops []op
		var kept []string
		for i := len(v.Status.Nodes) - 1; i >= 0; i-- {
			n := v.Status.Nodes[i].Name
			if n == node || i%3 == 0 {
				kept = append(kept, n)
				continue
			}
			path := fmt.Sprintf("/status/nodes/%d", i)
			ops = append(ops, op{Op: "test", Path: path + "/name", Value: n}, op{Op: "remove", Path: path})
		}
		slices.Reverse(kept)
		jp, _ := json.Marshal(ops)
		if err := agent.Status().Patch(ctx, v.DeepCopy(), client.RawPatch(types.JSONPatchType, jp)); err != nil {
			t.Fatalf("the agent pruning %d of %d entries: %v", len(ops)/2, len(v.Status.Nodes), err)
		}
		v, err = getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := entryNames(v); !slices.Equal(got, kept) {
			t.Errorf("after the prune: %d entries, want %d", len(got), len(kept))
		}

		// A prune does not hide a change: removing one entry and changing another is refused,
		// naming the changed one only; so is adding an entry.
		i, j := index(t, v, name(3)), index(t, v, name(6))
		jp = fmt.Appendf(nil, `[{"op":"replace","path":"/status/nodes/%d/priority","value":200},{"op":"remove","path":"/status/nodes/%d"}]`, j, i)
		err = agent.Status().Patch(ctx, v.DeepCopy(), client.RawPatch(types.JSONPatchType, jp))
		refused(t, "the agent removing "+name(3)+" and changing "+name(6), err, []string{name(6)})
		err = applyEntries(ctx, agent, vip.Name, manager, false, entry(node, "Master"), entry("node-new.lb.example.com", "Backup"))
		refused(t, "the agent adding an entry", err, []string{"node-new.lb.example.com"})
	})
}
