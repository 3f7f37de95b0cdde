package envtest

import (
	"context"
	"crypto/sha256"
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

// The tests of the chart's member policy (templates/statuspolicy.yaml, policy kube-vrrp-members)
// run the agents with the credentials a DaemonSet pod has: a ServiceAccount token bound to a Pod
// scheduled on the node, which carries the node's name (authentication.kubernetes.io/node-name).

// installMemberPolicy creates the chart's ValidatingAdmissionPolicy and binding, rendered for
// the agent's ServiceAccount, waits until the API server applies them, and removes them when
// the test ends, again waiting until the API server no longer applies them (the policy would
// refuse every member write of the agent's identity without a node name, as the tests that
// impersonate it write). installRBAC must have run: the probe is a write of the agent's.
func installMemberPolicy(t *testing.T, admin client.Client) {
	t.Helper()
	ctx := t.Context()
	rel, err := chart.Render(ctx, filepath.Join(repoRoot, "charts", "kube-vrrp"), chart.Options{
		ReleaseName: "kube-vrrp", Namespace: agentNamespace, Values: "serviceAccount: {name: kube-vrrp-agent}"})
	if err != nil {
		t.Fatal(err)
	}
	// The agent's identity without a node name (impersonated): refused while the policy is in
	// effect, and only then.
	agent, err := client.New(agentConfig(nil), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	probe := func() error {
		return applyMember(context.WithoutCancel(ctx), agent, &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "vap-probe"}},
			"vap-probe", "kube-vrrp-agent/vap-probe", true, v1alpha1.NodeStatus{State: "Backup"})
	}
	var objs []*unstructured.Unstructured
	for _, u := range rel.Objects {
		if u.GetAPIVersion() == "admissionregistration.k8s.io/v1" {
			objs = append(objs, u)
		}
	}
	if len(objs) != 2 || objs[0].GetName() != "kube-vrrp-members" {
		t.Fatalf("the chart renders %d admission objects, want the policy kube-vrrp-members and its binding", len(objs))
	}
	t.Cleanup(func() {
		for _, u := range objs {
			if err := admin.Delete(context.WithoutCancel(ctx), u); err != nil {
				t.Errorf("delete %s %s: %v", u.GetKind(), u.GetName(), err)
			}
		}
		eventually(t, wait, "the policy gone", func() error {
			if err := probe(); err != nil {
				return fmt.Errorf("a member written as the agent without a node name (dry run): %v", err)
			}
			return nil
		})
	})
	for _, u := range objs {
		if err := admin.Create(ctx, u); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	eventually(t, wait, "the policy in effect", func() error {
		if err := probe(); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "carry no node name") {
			return fmt.Errorf("a member written as the agent without a node name (dry run): %v", err)
		}
		return nil
	})
}

// podToken returns the agent's credentials as its pod on node has them: a Pod of the agent's
// ServiceAccount with spec.nodeName, and a token bound to it.
func podToken(t *testing.T, admin client.Client, node string) *rest.Config {
	t.Helper()
	ctx := t.Context()
	name := "kube-vrrp-" + node
	if len(name) > v1alpha1.MaxNameLength {
		name = fmt.Sprintf("kube-vrrp-%x", sha256.Sum256([]byte(node)))
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name},
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

// TestStatusPolicy: with the chart's policy, the agent on n1 (its pod-bound token) creates and
// changes its own member and writes the summary, but may neither create nor change a member of
// another node (Forbidden, naming both nodes); it deletes another node's member (the prune).
// Credentials without a node name may not write a member at all. No one changes a member's
// spec (the CRD's rule, before the policy).
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
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })

	n1, err := client.New(podToken(t, admin, "vap-n1"), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := client.New(token(t, nil), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(state string) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{State: state, Priority: 100, Interface: "eth0"}
	}
	// n2's member, as n2's agent wrote it.
	if err := applyMember(ctx, admin, vip, "vap-n2", "kube-vrrp-agent/vap-n2", false, entry("Backup")); err != nil {
		t.Fatal(err)
	}
	installMemberPolicy(t, admin)

	t.Run("own member", func(t *testing.T) {
		// Created by apply (the API server's CREATE), then changed by apply and by a merge patch
		// (UPDATE).
		if err := applyMember(ctx, n1, vip, "vap-n1", "kube-vrrp-agent/vap-n1", false, entry("Backup")); err != nil {
			t.Fatalf("n1 creating its own member: %v", err)
		}
		if err := applyMember(ctx, n1, vip, "vap-n1", "kube-vrrp-agent/vap-n1", false, entry("Master")); err != nil {
			t.Fatalf("n1 changing its own member: %v", err)
		}
		own := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vip.Name, "vap-n1")}}
		if err := n1.Patch(ctx, own, client.RawPatch(types.MergePatchType, []byte(`{"status":{"reason":"MasterDownTimer"}}`))); err != nil {
			t.Fatalf("n1 patching its own member: %v", err)
		}
		v, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := entryOf(v, "vap-n1"); e.State != "Master" || e.Reason != "MasterDownTimer" {
			t.Errorf("n1's member %+v", e)
		}
	})

	t.Run("summary", func(t *testing.T) {
		patch := []byte(`{"status":{"master":"vap-n1","observedGeneration":1}}`)
		if err := n1.Status().Patch(ctx, vip.DeepCopy(), client.RawPatch(types.MergePatchType, patch),
			client.FieldOwner(controllers.AggregatorFieldManager)); err != nil {
			t.Fatalf("n1 writing the summary: %v", err)
		}
	})

	// denied checks that err is the policy's refusal of n1 writing a member of node.
	denied := func(t *testing.T, what string, err error, node string) {
		t.Helper()
		want := "the agent on node vap-n1 may write only its own VirtualIPMembers (spec.node vap-n1), not one of node " + node
		if !apierrors.IsForbidden(err) || !strings.HasSuffix(err.Error(), ": "+want) {
			t.Errorf("%s: %v\nwant Forbidden: ...: %s", what, err, want)
		}
	}
	t.Run("another node's member", func(t *testing.T) {
		before, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		// Changed by apply, by a merge patch, by a JSON patch of one field (an update is no
		// verb of the agent's role).
		err = applyMember(ctx, n1, vip, "vap-n2", "kube-vrrp-agent/vap-n1", false, entry("Fault"))
		denied(t, "n1 applying n2's member", err, "vap-n2")
		m2 := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vip.Name, "vap-n2")}}
		err = n1.Patch(ctx, m2.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"state":"Master"}}`)))
		denied(t, "n1 merge-patching n2's member", err, "vap-n2")
		err = n1.Patch(ctx, m2.DeepCopy(), client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/status/priority","value":254}]`)))
		denied(t, "n1 JSON-patching n2's priority", err, "vap-n2")

		// Nor create one of another node, whether it exists or not. (Under another name than
		// MemberName of its spec the CRD refuses it first: TestMemberSquat.)
		for _, m := range []*v1alpha1.VirtualIPMember{
			{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vip.Name, "vap-n9")}, Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: vip.Name, Node: "vap-n9"}},
		} {
			m.Status = entry("Master")
			denied(t, "n1 creating "+m.Name+" of "+m.Spec.Node, n1.Create(ctx, m), m.Spec.Node)
		}

		after, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := memberOf(before, "vap-n2")
		a, ok := memberOf(after, "vap-n2")
		if !ok || a.ResourceVersion != b.ResourceVersion || !slices.Equal(entryNames(after), []string{"vap-n1", "vap-n2"}) {
			t.Errorf("after the denied writes: %s", describe(after))
		}
	})

	t.Run("spec", func(t *testing.T) {
		// A member's spec never changes, whoever asks (the CRD's validation, before any
		// policy): neither n1 moving its own member to another node or VirtualIP, nor the admin.
		const want = "spec names the VirtualIP and node a member reports on and cannot change: delete the member instead"
		own := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vip.Name, "vap-n1")}}
		for _, tc := range []struct {
			what  string
			c     client.Client
			patch string
		}{
			{"n1 moving its member to n2", n1, `{"spec":{"node":"vap-n2"}}`},
			{"n1 moving its member to another VirtualIP", n1, `{"spec":{"virtualIP":"vap-other"}}`},
			{"the admin moving n1's member to n2", admin, `{"spec":{"node":"vap-n2"}}`},
		} {
			err := tc.c.Patch(ctx, own.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(tc.patch)))
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want Invalid: %s", tc.what, err, want)
			}
		}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(own), own); err != nil || own.Spec.Node != "vap-n1" || own.Spec.VirtualIP != vip.Name {
			t.Errorf("n1's member %+v: %v", own.Spec, err)
		}
	})

	t.Run("no node name", func(t *testing.T) {
		for _, node := range []string{"vap-n1", "vap-n2"} {
			err := applyMember(ctx, unbound, vip, node, "kube-vrrp-agent/"+node, false, entry("Backup"))
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "carry no node name") {
				t.Errorf("a token not bound to a pod on a node writing %s's member: %v, want Forbidden saying it carries no node name", node, err)
			}
		}
	})

	t.Run("prune", func(t *testing.T) {
		// The summary's writer deletes the member of a node that is gone, with its UID and
		// resourceVersion as preconditions.
		v, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := memberOf(v, "vap-n2")
		if err := n1.Delete(ctx, m.DeepCopy(), client.Preconditions{UID: &m.UID, ResourceVersion: &m.ResourceVersion}); err != nil {
			t.Fatalf("n1 pruning n2's member: %v", err)
		}
		v, err = getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := entryNames(v); !slices.Equal(got, []string{"vap-n1"}) {
			t.Errorf("members after the prune: %v", got)
		}
	})
}

// TestStatusPolicyAgents: the agents' own reconcilers and aggregators, each node's with its pod's
// token, work under the policy without a single refused request: members, summary, and the
// prune of a node that is gone.
func TestStatusPolicyAgents(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	installMemberPolicy(t, admin)
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
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })

	// vap-a2's agent runs for this subtest only: its manager stops when it ends.
	t.Run("two agents", func(t *testing.T) {
		n2 := startNode(t, n2cfg, log, "vap-a2", "198.18.0.32")
		waitStatus(t, admin, vip.Name, "both members and the summary", func(v *vipStatus) error {
			if got := entryNames(v); !slices.Equal(got, []string{"vap-a1", "vap-a2"}) {
				return fmt.Errorf("members %v", got)
			}
			return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster)
		})
		n2.agent.set(vip.Name, vrrp.Master, vrrp.ReasonMasterDown)
		waitStatus(t, admin, vip.Name, "vap-a2 Master", func(v *vipStatus) error {
			return wantConditions(v, "vap-a2", controllers.ConditionReady, controllers.ReasonOneMaster)
		})
	})
	// vap-a2's agent is gone; so is its Node: vap-a1's aggregator prunes its member.
	if err := admin.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "vap-a2"}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, admin, vip.Name, "vap-a2's member pruned", func(v *vipStatus) error {
		if got := entryNames(v); !slices.Equal(got, []string{"vap-a1"}) {
			return fmt.Errorf("members %v", got)
		}
		return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster)
	})
	time.Sleep(200 * time.Millisecond) // let a write racing the last check land in the recorder
}

// TestStatusPolicyBounds: the policy reads one member and the request's credentials, never a
// list, so what it costs does not grow with the members of a VirtualIP or the nodes of the
// cluster (the old policy over status.nodes had to be kept linear and was tested with its
// 1024 entries). What is left to bound is one member: at the CRD's limits, the longest node
// names (253 bytes, so that the member's name is hashed) and the largest report (a message,
// 16 probes and 8 foreign routers of 16 addresses, each text at its longest), every write is
// decided by the policy itself, not by the API server's cost limit (an evaluation error, which
// would refuse the write with the CEL's complaint instead of the policy's message, a prune
// too): the agent's own member is admitted, another node's refused naming both nodes, and its
// delete (the prune) admitted.
func TestStatusPolicyBounds(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	// Node names of 253 bytes, four DNS labels each.
	long := func(last string) string {
		l := strings.Repeat("x", 63)
		return "vap-bounds" + l[10:] + "." + l + "." + l + "." + strings.Repeat("y", 61-len(last)) + last
	}
	node, other := long("a"), long("b")
	if len(node) != v1alpha1.MaxNameLength || len(other) != v1alpha1.MaxNameLength {
		t.Fatalf("node names of %d and %d bytes", len(node), len(other))
	}
	createNode(t, admin, node, "198.18.0.41", nil)
	createNode(t, admin, other, "198.18.0.42", nil)
	agent, err := client.New(podToken(t, admin, node), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "vap-bounds"},
		Spec: v1alpha1.VirtualIPSpec{VRID: 90, Addresses: []string{"198.18.0.140/24"}, Nodes: []v1alpha1.NodeOverride{{Name: node}, {Name: other}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	if n := v1alpha1.MemberName(vip.Name, node); len(n) > v1alpha1.MaxNameLength || n == v1alpha1.MemberName(vip.Name, other) {
		t.Fatalf("member names %q and %q", n, v1alpha1.MemberName(vip.Name, other))
	}

	// The largest report an agent writes, every text at the CRD's bound.
	text := func(n int) string { return strings.Repeat("m", n) }
	at := metav1.NewTime(time.Unix(1_800_000_000, 0))
	report := v1alpha1.NodeStatus{State: "Master", Priority: 255, Interface: text(15), Address: "2001:db8:ffff:ffff:ffff:ffff:255.255.255.255",
		LastTransitionTime: &at, Reason: "MasterDownTimer", Message: text(v1alpha1.MaxMessageLength)}
	for i := range v1alpha1.MaxProbes {
		report.Probes = append(report.Probes, v1alpha1.ProbeStatus{Name: fmt.Sprintf("%s%02d", text(v1alpha1.MaxProbeName-2), i),
			Healthy: ptr.To(true), LastTransitionTime: &at, Message: text(v1alpha1.MaxMessageLength)})
	}
	for i := range v1alpha1.MaxForeignRouters {
		f := v1alpha1.ForeignRouterStatus{Address: fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:ffff:%04x", i), Priority: 254,
			Count: 1 << 40, LastSeen: at}
		for j := range v1alpha1.MaxForeignAddresses {
			f.Addresses = append(f.Addresses, fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:255.255.%d.%d", i, j))
		}
		report.ForeignRouters = append(report.ForeignRouters, f)
	}
	// The other node's member, as its agent wrote it. (The policy does not look at field
	// managers, which the API server bounds to 128 bytes: these are short.)
	const manager = "kube-vrrp-agent/bounds"
	if err := applyMember(ctx, admin, vip, other, manager+"-other", false, report); err != nil {
		t.Fatalf("the admin writing the largest member: %v", err)
	}
	installMemberPolicy(t, admin)

	if err := applyMember(ctx, agent, vip, node, manager, false, report); err != nil {
		t.Fatalf("the agent writing its own largest member: %v", err)
	}
	err = applyMember(ctx, agent, vip, other, manager, false, report)
	if want := "the agent on node " + node + " may write only its own VirtualIPMembers (spec.node " + node + "), not one of node " + other; !apierrors.IsForbidden(err) || !strings.HasSuffix(err.Error(), ": "+want) {
		t.Errorf("the agent writing another node's largest member: %v\nwant Forbidden: ...: %s", err, want)
	}
	v, err := getVIP(ctx, admin, vip.Name)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := memberOf(v, other)
	if err := agent.Delete(ctx, m.DeepCopy(), client.Preconditions{UID: &m.UID, ResourceVersion: &m.ResourceVersion}); err != nil {
		t.Errorf("the agent pruning another node's largest member: %v", err)
	}
	if v, err = getVIP(ctx, admin, vip.Name); err != nil {
		t.Fatal(err)
	}
	e, _ := entryOf(v, node)
	if got := entryNames(v); !slices.Equal(got, []string{node}) || len(e.Probes) != v1alpha1.MaxProbes || len(e.ForeignRouters) != v1alpha1.MaxForeignRouters {
		t.Errorf("members after the writes: %s", describe(v))
	}
}
