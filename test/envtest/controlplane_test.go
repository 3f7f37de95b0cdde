package envtest

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/internal/chart"
	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
)

// The control-plane static pods (kube-vrrp run --kubeconfig, docs/design.md §7.11) write their
// status with a client certificate of user kube-vrrp:node:<node> in group
// kube-vrrp:control-plane, issued here by the API server's own client CA: the chart's
// controlPlaneMirror role grants the group its rights, and the members' policy reads the node
// from the user name.

// controlPlaneGroup is the group of the control-plane nodes' certificates.
const controlPlaneGroup = "kube-vrrp:control-plane"

// certConfig returns a configuration that authenticates with a new client certificate of user
// in groups, signed by the API server's client CA.
func certConfig(t *testing.T, user string, groups ...string) *rest.Config {
	t.Helper()
	u, err := testEnv.AddUser(ctrlenvtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := u.Config()
	if len(c.CertData) == 0 || c.BearerToken != "" || c.Impersonate.UserName != "" {
		t.Fatalf("the configuration of %s is not a client certificate's", user)
	}
	return c
}

// installControlPlaneRole creates the chart's control-plane ClusterRole and binding
// (controlPlaneMirror.enabled) and removes them when the test ends.
func installControlPlaneRole(t *testing.T, admin client.Client) {
	t.Helper()
	ctx := t.Context()
	rel, err := chart.Render(ctx, filepath.Join(repoRoot, "charts", "kube-vrrp"), chart.Options{
		ReleaseName: "kube-vrrp", Namespace: agentNamespace, Values: "controlPlaneMirror: {enabled: true}"})
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, u := range rel.Objects {
		if u.GetName() == "kube-vrrp-control-plane" {
			objs = append(objs, u)
		}
	}
	if len(objs) != 2 {
		t.Fatalf("the chart renders %d objects named kube-vrrp-control-plane, want a ClusterRole and its binding", len(objs))
	}
	for _, u := range objs {
		if err := admin.Create(ctx, u); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), u) })
	}
}

// rulesOf returns what c may do in namespace, as "verb group/resource" (SelfSubjectRulesReview).
func rulesOf(t *testing.T, c *rest.Config, namespace string) map[string]bool {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(t.Context(), &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: namespace}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status.Incomplete {
		t.Fatalf("the rules review is incomplete: %s", r.Status.EvaluationError)
	}
	out := map[string]bool{}
	for _, rule := range r.Status.ResourceRules {
		if len(rule.ResourceNames) > 0 {
			t.Errorf("a rule narrowed to names %v: %+v", rule.ResourceNames, rule)
		}
		for _, v := range rule.Verbs {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					out[v+" "+g+"/"+res] = true
				}
			}
		}
	}
	return out
}

// TestControlPlaneRights: the control-plane role gives a node's certificate (kube-vrrp:node:<node>
// in group kube-vrrp:control-plane) exactly the status controllers' rights, the same in every
// namespace, and nothing of Secrets, pods or DaemonSets; a certificate outside the group gets
// none of them.
func TestControlPlaneRights(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	ensureNamespace(t, admin, agentNamespace)
	installControlPlaneRole(t, admin)
	cp1 := certConfig(t, "kube-vrrp:node:cpr-1", controlPlaneGroup)
	outsider := certConfig(t, "kube-vrrp:node:cpr-2")

	want := []string{
		"get /nodes", "list /nodes", "watch /nodes",
		"create events.k8s.io/events", "patch events.k8s.io/events",
		"create kubevrrp.io/virtualipmembers", "delete kubevrrp.io/virtualipmembers", "get kubevrrp.io/virtualipmembers",
		"list kubevrrp.io/virtualipmembers", "patch kubevrrp.io/virtualipmembers", "watch kubevrrp.io/virtualipmembers",
		"get kubevrrp.io/virtualips", "list kubevrrp.io/virtualips", "watch kubevrrp.io/virtualips",
		"get kubevrrp.io/virtualips/status", "patch kubevrrp.io/virtualips/status",
	}
	slices.Sort(want)
	for _, ns := range []string{agentNamespace, "kube-system", "default"} {
		var granted []string
		eventually(t, wait, "the role in effect in "+ns, func() error {
			base := rulesOf(t, outsider, ns)
			granted = granted[:0]
			for r := range rulesOf(t, cp1, ns) {
				if !base[r] {
					granted = append(granted, r)
				}
			}
			slices.Sort(granted)
			if !slices.Equal(granted, want) {
				return fmt.Errorf("the group is granted %q, want %q", granted, want)
			}
			return nil
		})
	}
	// What an agent has and a control-plane node does not need.
	cs, err := kubernetes.NewForConfig(cp1)
	if err != nil {
		t.Fatal(err)
	}
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: agentNamespace},
		{Verb: "list", Resource: "pods", Namespace: agentNamespace},
		{Verb: "watch", Group: "apps", Resource: "daemonsets", Namespace: agentNamespace},
		{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: agentNamespace},
		{Verb: "patch", Group: v1alpha1.GroupVersion.Group, Resource: "virtualips"},
		{Verb: "update", Group: v1alpha1.GroupVersion.Group, Resource: "virtualipmembers"},
		{Verb: "deletecollection", Group: v1alpha1.GroupVersion.Group, Resource: "virtualipmembers"},
		{Verb: "create", Resource: "events", Namespace: "default"},
	} {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed {
			t.Errorf("a control-plane node may %s %s/%s in %q", ra.Verb, ra.Group, ra.Resource, ra.Namespace)
		}
	}
}

// TestControlPlanePolicy: with the chart's member policy, a control-plane node's certificate
// (kube-vrrp:node:cpp-1) creates and changes its own member and writes the summary, but may
// neither create nor change another node's member, nor one of its own with labels; it prunes
// another node's member. A certificate of the group that names no node (another user name, or
// kube-vrrp:node: alone) writes no member at all.
func TestControlPlanePolicy(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	installControlPlaneRole(t, admin)
	createNode(t, admin, "cpp-1", "198.18.0.31", nil)
	createNode(t, admin, "cpp-2", "198.18.0.32", nil)
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "cpp"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 81, Addresses: []string{"198.18.0.131/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "cpp-1"}, {Name: "cpp-2"}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	newClient := func(c *rest.Config) client.Client {
		cl, err := client.New(c, client.Options{Scheme: fullScheme(t)})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	cp1 := newClient(certConfig(t, "kube-vrrp:node:cpp-1", controlPlaneGroup))
	entry := func(state string) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{State: state, Priority: 150, Interface: "eth0"}
	}
	if err := applyMember(ctx, admin, vip, "cpp-2", "kube-vrrp-agent/cpp-2", false, entry("Backup")); err != nil {
		t.Fatal(err)
	}
	installMemberPolicy(t, admin)

	t.Run("own member", func(t *testing.T) {
		// The role in effect may take a moment after its creation.
		eventually(t, wait, "cpp-1 creating its own member", func() error {
			return applyMember(ctx, cp1, vip, "cpp-1", "kube-vrrp-agent/cpp-1", false, entry("Backup"))
		})
		if err := applyMember(ctx, cp1, vip, "cpp-1", "kube-vrrp-agent/cpp-1", false, entry("Master")); err != nil {
			t.Fatalf("cpp-1 changing its own member: %v", err)
		}
		own := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vip.Name, "cpp-1")}}
		if err := cp1.Patch(ctx, own, client.RawPatch(types.MergePatchType, []byte(`{"status":{"reason":"MasterDownTimer"}}`))); err != nil {
			t.Fatalf("cpp-1 patching its own member: %v", err)
		}
		patch := []byte(`{"status":{"master":"cpp-1","observedGeneration":1}}`)
		if err := cp1.Status().Patch(ctx, vip.DeepCopy(), client.RawPatch(types.MergePatchType, patch),
			client.FieldOwner(controllers.AggregatorFieldManager)); err != nil {
			t.Fatalf("cpp-1 writing the summary: %v", err)
		}
		v, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := entryOf(v, "cpp-1"); e.State != "Master" || e.Reason != "MasterDownTimer" || v.Status.Master != "cpp-1" {
			t.Errorf("after cpp-1's writes: %s", describe(v))
		}
	})

	t.Run("another node's member", func(t *testing.T) {
		before, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		denied := func(what string, err error, node string) {
			t.Helper()
			want := "the agent on node cpp-1 may write only its own VirtualIPMembers (spec.node cpp-1), not one of node " + node
			if !apierrors.IsForbidden(err) || !strings.HasSuffix(err.Error(), ": "+want) {
				t.Errorf("%s: %v\nwant Forbidden: ...: %s", what, err, want)
			}
		}
		denied("applying cpp-2's member", applyMember(ctx, cp1, vip, "cpp-2", "kube-vrrp-agent/cpp-1", false, entry("Fault")), "cpp-2")
		m2 := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vip.Name, "cpp-2")}}
		denied("merge-patching cpp-2's member", cp1.Patch(ctx, m2, client.RawPatch(types.MergePatchType, []byte(`{"status":{"state":"Master"}}`))), "cpp-2")
		m9 := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vip.Name, "cpp-9")},
			Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: vip.Name, Node: "cpp-9"}, Status: entry("Master")}
		denied("creating cpp-9's member", cp1.Create(ctx, m9), "cpp-9")
		after, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := memberOf(before, "cpp-2")
		if a, ok := memberOf(after, "cpp-2"); !ok || a.ResourceVersion != b.ResourceVersion || len(after.members) != 2 {
			t.Errorf("after the denied writes: %s", describe(after))
		}
	})

	t.Run("labels", func(t *testing.T) {
		u, err := memberObject(vip, "cpp-1", entry("Master"))
		if err != nil {
			t.Fatal(err)
		}
		u.SetLabels(map[string]string{"grow": "every-cache"})
		err = cp1.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("kube-vrrp-agent/cpp-1"), client.ForceOwnership)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no labels, annotations or finalizers") {
			t.Errorf("cpp-1 labelling its own member: %v, want Forbidden", err)
		}
	})

	t.Run("no node", func(t *testing.T) {
		for _, user := range []string{"kube-vrrp:node:", "kube-vrrp:cpp-1", "cpp-1"} {
			c := newClient(certConfig(t, user, controlPlaneGroup))
			want := "the user " + user + " names no node"
			eventually(t, wait, user+" refused by the policy", func() error {
				err := applyMember(ctx, c, vip, "cpp-1", "kube-vrrp-agent/cpp-1", false, entry("Backup"))
				if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
					return fmt.Errorf("%s writing cpp-1's member: %v, want Forbidden: %s", user, err, want)
				}
				return nil
			})
		}
	})

	t.Run("prune", func(t *testing.T) {
		v, err := getVIP(ctx, admin, vip.Name)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := memberOf(v, "cpp-2")
		if err := cp1.Delete(ctx, m.DeepCopy(), client.Preconditions{UID: &m.UID, ResourceVersion: &m.ResourceVersion}); err != nil {
			t.Fatalf("cpp-1 pruning cpp-2's member: %v", err)
		}
	})
}

// TestControlPlaneFilesMerge: each control-plane node's generated VirtualIP file, applied
// server-side under a field manager of its own (as the README says), makes one VirtualIP in
// the cluster that names every node with its priority: spec.nodes is a map keyed by name, and
// every other field is the same in each file (the unicast peers, a set, are their union).
func TestControlPlaneFilesMerge(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	nodes := []struct {
		name     string
		addr     string
		priority int
	}{{"cpm-1", "198.18.0.41", 150}, {"cpm-2", "198.18.0.42", 140}, {"cpm-3", "198.18.0.43", 130}}
	name := "cpm-vip"
	t.Cleanup(func() {
		deleteVIP(ctx, admin, &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	for _, n := range nodes {
		var peers []netip.Addr
		for _, o := range nodes {
			if o.name != n.name {
				peers = append(peers, netip.MustParseAddr(o.addr))
			}
		}
		f, err := staticpod.Generate(staticpod.Options{Name: name, Node: n.name, Address: netip.MustParsePrefix("198.18.0.140/24"),
			VRID: 82, Priority: n.priority, Peers: peers, Image: staticpod.DefaultImage("test")})
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(f.VirtualIP, &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := admin.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("kube-vrrp-static-pod/"+n.name)); err != nil {
			t.Fatalf("applying %s's file: %v", n.name, err)
		}
	}
	var vip v1alpha1.VirtualIP
	if err := admin.Get(ctx, client.ObjectKey{Name: name}, &vip); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range vip.Spec.Nodes {
		got = append(got, fmt.Sprintf("%s:%d", o.Name, *o.Priority))
	}
	slices.Sort(got)
	if want := []string{"cpm-1:150", "cpm-2:140", "cpm-3:130"}; !slices.Equal(got, want) {
		t.Errorf("spec.nodes %v, want %v", got, want)
	}
	if vip.Spec.Unicast == nil || len(vip.Spec.Unicast.Peers) != 3 || vip.Spec.VRID != 82 || len(vip.Spec.Probes) != 1 {
		t.Errorf("spec %+v", vip.Spec)
	}
}
