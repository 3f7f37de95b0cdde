package chart

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

// controlPlaneRules are the rights of the control-plane static pods' group (docs/design.md
// §7.11), exactly: those of the status controllers, and nothing of Secrets, pods, DaemonSets,
// Leases or reviews.
var controlPlaneRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	{APIGroups: []string{"kubevrrp.io"}, Resources: []string{"virtualipmembers"}, Verbs: []string{"create", "delete", "get", "list", "patch", "watch"}},
	{APIGroups: []string{"kubevrrp.io"}, Resources: []string{"virtualips"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"kubevrrp.io"}, Resources: []string{"virtualips/status"}, Verbs: []string{"get", "patch"}},
}

// TestControlPlaneMirrorRBAC: controlPlaneMirror.enabled renders a ClusterRole of exactly
// controlPlaneRules bound to the group kube-vrrp:control-plane, the same as
// config/rbac/control_plane_role.yaml, which config/default leaves out; off by default.
func TestControlPlaneMirrorRBAC(t *testing.T) {
	for _, o := range mustRender(t, defaults).objects {
		if strings.HasSuffix(o.GetName(), "-control-plane") {
			t.Errorf("%s %s rendered by default", o.GetKind(), o.GetName())
		}
	}
	config := readObjects(t, filepath.Join(repoRoot, "config", "rbac", "control_plane_role.yaml"))
	for _, tc := range []struct {
		name      string
		opts      renderOptions
		wantName  string
		fromFiles bool
	}{
		{"chart", renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", values: "controlPlaneMirror: {enabled: true}"}, "kube-vrrp-control-plane", false},
		{"chart elsewhere", renderOptions{name: "edge", namespace: "lb-system", values: "controlPlaneMirror: {enabled: true}"}, "lb-system-edge-kube-vrrp-control-plane", false},
		{"config", renderOptions{}, "kube-vrrp-control-plane", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := config
			if !tc.fromFiles {
				objs = mustRender(t, tc.opts).objects
			}
			role := typed[rbacv1.ClusterRole](t, findObject(t, objs, "ClusterRole", tc.wantName))
			rules := slices.Clone(role.Rules)
			slices.SortFunc(rules, func(a, b rbacv1.PolicyRule) int {
				return strings.Compare(strings.Join(a.APIGroups, ",")+"/"+strings.Join(a.Resources, ","),
					strings.Join(b.APIGroups, ",")+"/"+strings.Join(b.Resources, ","))
			})
			for i := range rules {
				slices.Sort(rules[i].Verbs)
			}
			if diff := cmp.Diff(controlPlaneRules, rules); diff != "" {
				t.Errorf("ClusterRole %s rules (-want +got):\n%s", role.Name, diff)
			}
			b := typed[rbacv1.ClusterRoleBinding](t, findObject(t, objs, "ClusterRoleBinding", tc.wantName))
			wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tc.wantName}
			wantSubjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "kube-vrrp:control-plane"}}
			if b.RoleRef != wantRef || !cmp.Equal(b.Subjects, wantSubjects) {
				t.Errorf("binding %s: roleRef %+v, subjects %+v; want %+v to %+v", b.Name, b.RoleRef, b.Subjects, wantRef, wantSubjects)
			}
		})
	}
	for _, o := range kustomizeBuild(t, filepath.Join(repoRoot, "config", "default")) {
		if o.GetName() == "kube-vrrp-control-plane" {
			t.Errorf("config/default has %s %s: the control-plane role is optional", o.GetKind(), o.GetName())
		}
	}
}
