package chart

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizeBuild is kubectl kustomize DIR.
func kustomizeBuild(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		// Through JSON: numbers as the API machinery has them (int64, float64), not int.
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	return objs
}

// TestKustomize: config/default builds; it holds the generated CRD and RBAC, binds them to the
// agent's ServiceAccount, labels its namespace for privileged pods, and its DaemonSet runs the
// same pod as the chart's defaults.
func TestKustomize(t *testing.T) {
	objs := kustomizeBuild(t, filepath.Join(repoRoot, "config", "default"))
	strictTyped(t, objs)
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if o.GetNamespace() != "" {
				t.Errorf("%s/%s is cluster-scoped but has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
			}
			continue
		}
		if o.GetNamespace() != "kube-vrrp" {
			t.Errorf("%s/%s in namespace %q, want kube-vrrp", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}

	ns := typed[corev1.Namespace](t, findObject(t, objs, "Namespace", "kube-vrrp"))
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace labels %v: host network, host PID and NET_ADMIN need the privileged Pod Security level", ns.Labels)
	}

	// Every generated CRD, as generated, and no other.
	bases, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crds []string
	for _, path := range bases {
		gen := typed[apiextensionsv1.CustomResourceDefinition](t, readObjects(t, path)[0])
		crds = append(crds, gen.Name)
		got := typed[apiextensionsv1.CustomResourceDefinition](t, findObject(t, objs, "CustomResourceDefinition", gen.Name))
		if diff := cmp.Diff(gen.Spec, got.Spec); diff != "" {
			t.Errorf("CRD %s (-generated +kustomize):\n%s", gen.Name, diff)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && !slices.Contains(crds, o.GetName()) {
			t.Errorf("config/default has CRD %s, which config/crd/bases has not", o.GetName())
		}
	}
	for _, want := range []string{"virtualips.kubevrrp.io", "virtualipmembers.kubevrrp.io", "virtualippools.kubevrrp.io"} {
		if !slices.Contains(crds, want) {
			t.Errorf("config/crd/bases has no CRD %s: CRDs %v", want, crds)
		}
	}

	genCR, genRole := generatedRBAC(t)
	cr := typed[rbacv1.ClusterRole](t, findObject(t, objs, "ClusterRole", genCR.Name))
	if diff := cmp.Diff(genCR.Rules, cr.Rules); diff != "" {
		t.Errorf("ClusterRole rules (-generated +kustomize):\n%s", diff)
	}
	role := typed[rbacv1.Role](t, findObject(t, objs, "Role", genRole.Name))
	if diff := cmp.Diff(genRole.Rules, role.Rules); diff != "" {
		t.Errorf("Role rules (-generated +kustomize):\n%s", diff)
	}

	ds := typed[appsv1.DaemonSet](t, findObject(t, objs, "DaemonSet", "kube-vrrp"))
	checkPodBasics(t, ds, 9402, 9403)
	sa := ds.Spec.Template.Spec.ServiceAccountName
	findObject(t, objs, "ServiceAccount", sa)
	subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: "kube-vrrp"}}
	crb := typed[rbacv1.ClusterRoleBinding](t, findKind(t, objs, "ClusterRoleBinding"))
	rb := typed[rbacv1.RoleBinding](t, findKind(t, objs, "RoleBinding"))
	if diff := cmp.Diff(subjects, crb.Subjects); diff != "" {
		t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(subjects, rb.Subjects); diff != "" {
		t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
	}
	if crb.RoleRef.Name != cr.Name || rb.RoleRef.Name != role.Name {
		t.Errorf("bindings refer to %q and %q, want %q and %q", crb.RoleRef.Name, rb.RoleRef.Name, cr.Name, role.Name)
	}

	// The same pod, update strategy and selector as helm install kube-vrrp -n kube-vrrp.
	chartDS := mustRender(t, defaults).daemonSet(t, "kube-vrrp")
	if diff := cmp.Diff(chartDS.Spec.Template.Spec, ds.Spec.Template.Spec); diff != "" {
		t.Errorf("config/agent/daemonset.yaml's pod differs from the chart's (-chart +kustomize):\n%s", diff)
	}
	if diff := cmp.Diff(chartDS.Spec.UpdateStrategy, ds.Spec.UpdateStrategy); diff != "" {
		t.Errorf("updateStrategy (-chart +kustomize):\n%s", diff)
	}
	if diff := cmp.Diff(chartDS.Spec.Selector, ds.Spec.Selector); diff != "" {
		t.Errorf("selector (-chart +kustomize):\n%s", diff)
	}
}
