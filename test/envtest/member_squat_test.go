package envtest

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// TestMemberSquat: the agent of node rv, whose name is a dot-suffix of node b.rv's, tries to
// take b.rv's member names, to add members of its own and members owned by nothing. The CRD
// and the admission policy refuse what they can check; for the hashed names (which CEL cannot
// compute) the agents' own check does: b.rv deletes an object under its member's name that is
// not its member and writes its own, and the summary's writer deletes a second member of rv.
func TestMemberSquat(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "rv", "198.18.0.31", nil)
	createNode(t, admin, "b.rv", "198.18.0.32", nil)
	att, err := client.New(podToken(t, admin, "rv"), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	installMemberPolicy(t, admin)
	owned := func(vip *v1alpha1.VirtualIP, name, node string) *v1alpha1.VirtualIPMember {
		return &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "VirtualIP", Name: vip.Name, UID: vip.UID}}},
			Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: vip.Name, Node: node}, Status: v1alpha1.NodeStatus{State: "Master"}}
	}

	// "rvip" + "." + "b.rv" was also "rvip.b" + "." + "rv": a VirtualIP name with a dot takes
	// the hashed form, and the CRD holds the short form to its spec.
	if a, b := v1alpha1.MemberName("rvip", "b.rv"), v1alpha1.MemberName("rvip.b", "rv"); a == b {
		t.Fatalf("MemberName(rvip, b.rv) = MemberName(rvip.b, rv) = %s", a)
	}
	dotted := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "rvip.b"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 83, Addresses: []string{"198.18.0.133/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "rv"}}}}
	if err := admin.Create(ctx, dotted); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, dotted) })
	if err := att.Create(ctx, owned(dotted, "rvip.b.rv", "rv")); err == nil {
		t.Errorf("rv created rvip.b.rv (the name of b.rv's member of rvip) for rvip.b: admitted")
	} else if !apierrors.IsInvalid(err) {
		t.Errorf("rv creating rvip.b.rv: %v, want the CRD's name rule (Invalid)", err)
	}

	// Owned by nothing, or with metadata of its own: refused by the policy.
	orphan := owned(dotted, v1alpha1.MemberName(dotted.Name, "rv"), "rv")
	orphan.OwnerReferences = nil
	if err := att.Create(ctx, orphan); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "owner reference") {
		t.Errorf("rv creating a member owned by nothing: %v, want Forbidden naming the owner reference", err)
	}
	labelled := owned(dotted, v1alpha1.MemberName(dotted.Name, "rv"), "rv")
	labelled.Annotations = map[string]string{"big": strings.Repeat("x", 1000)}
	if err := att.Create(ctx, labelled); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "annotations") {
		t.Errorf("rv creating an annotated member: %v, want Forbidden naming annotations", err)
	}

	// A long VirtualIP name: every member name is hashed, which neither the CRD nor the policy
	// can check. rv takes b.rv's name, and adds a second member of its own.
	long := strings.Repeat("v", 63) + "." + strings.Repeat("w", 63) + "." + strings.Repeat("x", 63) + "." + strings.Repeat("y", 59)
	lv := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: long}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 84, Addresses: []string{"198.18.0.134/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "rv"}, {Name: "b.rv"}}}}
	if err := admin.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, lv) })
	victim := v1alpha1.MemberName(long, "b.rv")
	if err := att.Create(ctx, owned(lv, victim, "rv")); err != nil {
		t.Fatalf("rv creating %s with spec.node rv (expected admitted: CEL cannot check a hash): %v", victim, err)
	}
	own := v1alpha1.MemberName(long, "rv")
	dup := own[:len(own)-16] + "0123456789abcdef"
	if err := att.Create(ctx, owned(lv, dup, "rv")); err != nil {
		t.Fatalf("rv creating a second member %s: %v", dup, err)
	}

	// b.rv's agent, alone (it is the summary's writer: the only member that is not misnamed).
	startNode(t, cfg, slog.New(slog.DiscardHandler), "b.rv", "198.18.0.32")
	waitStatus(t, admin, long, "b.rv's own member under its name, rv's squats gone", func(v *vipStatus) error {
		var m v1alpha1.VirtualIPMember
		if err := admin.Get(ctx, types.NamespacedName{Name: victim}, &m); err != nil {
			return err
		}
		if m.Spec.Node != "b.rv" {
			return fmt.Errorf("%s is still rv's (spec.node %s)", victim, m.Spec.Node)
		}
		if err := admin.Get(ctx, types.NamespacedName{Name: dup}, &m); !apierrors.IsNotFound(err) {
			return fmt.Errorf("rv's second member %s: %v, want deleted", dup, err)
		}
		if v.Status.Master != "b.rv" && v.Status.Master != "" {
			return fmt.Errorf("status.master %q", v.Status.Master)
		}
		if strings.Contains(fmt.Sprint(v.Status.Conditions), "rv, rv") {
			return fmt.Errorf("the summary counts rv twice: %v", v.Status.Conditions)
		}
		return nil
	})
}
