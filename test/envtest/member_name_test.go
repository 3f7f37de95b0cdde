package envtest

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// TestMemberNameSquat: the agent on n1 may not take the name of n2's member (a member of its
// own node under the name of another's): the CRD holds a member's name to its spec, so n2
// can still write its own.
func TestMemberNameSquat(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "squat-n1", "198.18.0.21", nil)
	createNode(t, admin, "squat-n2", "198.18.0.22", nil)
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "squat"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 80, Addresses: []string{"198.18.0.130/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "squat-n1"}, {Name: "squat-n2"}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	n1, err := client.New(podToken(t, admin, "squat-n1"), client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	installMemberPolicy(t, admin)
	m := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName("squat", "squat-n2")},
		Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: "squat", Node: "squat-n1"}, Status: v1alpha1.NodeStatus{State: "Master"}}
	if err := n1.Create(ctx, m); err == nil {
		t.Errorf("n1 created %s with spec.node squat-n1: admitted", m.Name)
	}
	if err := applyMember(ctx, admin, vip, "squat-n2", "kube-vrrp-agent/squat-n2", false, v1alpha1.NodeStatus{State: "Backup"}); err != nil {
		t.Errorf("n2's apply of its own member afterwards: %v", err)
	}
	// Beyond 253 characters the name is the beginning of <virtualIP>.<node> and a hash: one
	// of another beginning is refused, MemberName's admitted.
	long := strings.Repeat("n", 200) + ".squat-n1"
	bad := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: "other." + strings.Repeat("0", 16)},
		Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: "squat" + strings.Repeat("q", 60), Node: long}}
	if err := admin.Create(ctx, bad); err == nil {
		t.Errorf("created %s for %s.%s: admitted", bad.Name, bad.Spec.VirtualIP, bad.Spec.Node)
		_ = admin.Delete(ctx, bad)
	}
	good := bad.DeepCopy()
	good.Name = v1alpha1.MemberName(good.Spec.VirtualIP, good.Spec.Node)
	if err := admin.Create(ctx, good); err != nil {
		t.Errorf("creating %s (MemberName): %v", good.Name, err)
	} else {
		_ = admin.Delete(ctx, good)
	}
}

// TestLongNodeName: an agent on a node whose name is a valid 253-byte DNS subdomain reports
// its member: its field manager is not "kube-vrrp-agent/"+node, which the API server refuses
// (over 128 bytes, 422), but its beginning and a hash.
func TestLongNodeName(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	l := strings.Repeat("x", 63)
	node := "longnode" + l[8:] + "." + l + "." + l + "." + strings.Repeat("y", 61)
	if len(node) != 253 {
		t.Fatal(len(node))
	}
	createNode(t, admin, node, "198.18.9.11", nil)
	rec := &codeRecorder{}
	checkResponses(t, rec, "admin")
	startNode(t, rec.wrap(cfg), slog.New(slog.DiscardHandler), node, "198.18.9.11")
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "longnode"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 99, Addresses: []string{"198.18.9.100/24"}, Nodes: []v1alpha1.NodeOverride{{Name: node}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	waitStatus(t, admin, vip.Name, "the node's member", func(v *vipStatus) error {
		if _, ok := entryOf(v, node); !ok {
			return fmt.Errorf("no member")
		}
		return nil
	})
}
