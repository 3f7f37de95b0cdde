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
// the agent's ServiceAccount, and removes them when the test ends (the policy applies to every
// test that writes status as the agent).
func installStatusPolicy(t *testing.T, admin client.Client) {
	t.Helper()
	ctx := t.Context()
	rel, err := chart.Render(ctx, filepath.Join(repoRoot, "charts", "kube-vrrp"), chart.Options{
		ReleaseName: "kube-vrrp", Namespace: agentNamespace, Values: "serviceAccount: {name: kube-vrrp-agent}"})
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

// TestStatusPolicy: with the chart's policy, the agent on n1 (its pod-bound token) writes its
// own entry and the summary and removes a stale entry, but may not add or change the entry of
// another node; credentials without a node name may not write status at all.
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
	// n2's entry, as n2's agent wrote it.
	if err := applyEntries(ctx, admin, vip.Name, "kube-vrrp-agent/vap-n2", false, entry("vap-n2", "Backup")); err != nil {
		t.Fatal(err)
	}

	installStatusPolicy(t, admin)
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
}

// TestStatusPolicyAgents: the agents' own reconcilers and aggregators, each node's with its pod's
// token, work under the policy without a single refused request: entries, summary, withdrawal,
// and the prune of a node that is gone.
func TestStatusPolicyAgents(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	installStatusPolicy(t, admin)
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

// TestStatusPolicyScale: the policy's CEL stays within the API server's cost limit for a
// VirtualIP with as many entries as the CRD allows when an agent writes its own entry (a check
// linear in the entries), and with a few hundred when one prunes another node's entry (a
// quadratic check; about 400 entries fit).
func TestStatusPolicyScale(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "vap-scale", "198.18.0.41", nil)
	agent, err := client.New(podToken(t, admin, "vap-scale"), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := client.New(token(t, nil), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	installStatusPolicy(t, admin)
	for _, tc := range []struct {
		entries int
		prune   bool
	}{{1023, false}, {256, true}} {
		vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("vap-scale-%d", tc.entries)},
			Spec: v1alpha1.VirtualIPSpec{VRID: 90, Addresses: []string{"198.18.0.140/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "vap-scale"}}}}
		if err := admin.Create(ctx, vip); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), vip) })
		var others []map[string]any
		for i := range tc.entries {
			others = append(others, map[string]any{"name": fmt.Sprintf("node-%04d.lb.example.com", i), "state": "Backup",
				"priority": int64(100), "interface": "eth0", "address": "198.18.0.1", "reason": "Started"})
		}
		if err := applyEntries(ctx, admin, vip.Name, "kube-vrrp-agent/others", false, others...); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, "the policy in effect", func() error {
			err := applyEntries(ctx, unbound, vip.Name, "kube-vrrp-agent/vap-scale", true, map[string]any{"name": "vap-scale"})
			if !apierrors.IsForbidden(err) {
				return fmt.Errorf("writing without a node name (dry run): %v", err)
			}
			return nil
		})
		if err := applyEntries(ctx, agent, vip.Name, "kube-vrrp-agent/vap-scale", false,
			map[string]any{"name": "vap-scale", "state": "Backup", "priority": int64(100)}); err != nil {
			t.Errorf("%d entries: the agent's own entry: %v", tc.entries, err)
		}
		if tc.prune {
			jp := `[{"op":"test","path":"/status/nodes/0/name","value":"node-0000.lb.example.com"},{"op":"remove","path":"/status/nodes/0"}]`
			if err := agent.Status().Patch(ctx, vip.DeepCopy(), client.RawPatch(types.JSONPatchType, []byte(jp))); err != nil {
				t.Errorf("%d entries: pruning another node's entry: %v", tc.entries, err)
			}
		}
	}
}
