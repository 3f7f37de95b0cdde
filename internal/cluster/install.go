package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// The agent's identity in the lab cluster.
const (
	// Namespace is the agent's namespace (the Secrets of VRRPv2 authentication).
	Namespace = "kube-vrrp"
	// ServiceAccount is the agent's ServiceAccount in Namespace.
	ServiceAccount = "kube-vrrp-agent"
	// AgentUser is the user name the API server gives ServiceAccount; agents impersonate it.
	AgentUser = "system:serviceaccount:" + Namespace + ":" + ServiceAccount
	// FieldOwner is the server-side-apply manager of what this package applies.
	FieldOwner = "kube-vrrp-lab"
)

// InstallOptions say what Install applies; empty fields take this module's generated files.
type InstallOptions struct {
	// CRDs are manifest files of CustomResourceDefinitions (default config/crd/bases/*.yaml).
	CRDs []string
	// RBAC are manifest files of the agent's ClusterRoles and Roles (default
	// config/rbac/role.yaml). Each is bound to the agent's ServiceAccount.
	RBAC []string
	// WarmUp are manifest files whose custom resources are created with a server-side dry
	// run once the CRDs serve (default config/samples/*.yaml). kube-apiserver makes the first
	// write to a new custom resource wait ~2 s (dry run or not; later ones take
	// milliseconds), which a timed first apply would otherwise measure; in a cluster the CRD
	// has long been installed.
	WarmUp []string
}

// Install applies the CRDs and waits until they serve, then the agent's namespace and
// ServiceAccount, its ClusterRoles and Roles, and a ClusterRoleBinding or RoleBinding of the
// same name binding each to the ServiceAccount. It is idempotent (server-side apply).
func (c *ControlPlane) Install(ctx context.Context, o InstallOptions) error {
	root, err := envtestassets.ModuleRoot()
	if err != nil && (len(o.CRDs) == 0 || len(o.RBAC) == 0) {
		return err
	}
	if len(o.CRDs) == 0 {
		if o.CRDs, err = filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml")); err != nil {
			return err
		}
		if len(o.CRDs) == 0 {
			return errors.New("no CRD under config/crd/bases")
		}
	}
	if len(o.RBAC) == 0 {
		o.RBAC = []string{filepath.Join(root, "config", "rbac", "role.yaml")}
	}
	if o.WarmUp == nil {
		if o.WarmUp, err = filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml")); err != nil {
			return err
		}
	}

	crds, err := c.ApplyFiles(ctx, o.CRDs...)
	if err != nil {
		return err
	}
	for _, crd := range crds {
		if err := c.waitEstablished(ctx, crd.GetName()); err != nil {
			return err
		}
	}
	// The client's REST mapper learns the new kinds lazily; list each kind applied (only
	// VirtualIPs, say, for an upgrade that has not applied the VirtualIPMember CRD yet) until
	// it has.
	if err := poll(ctx, 30*time.Second, func() error {
		for _, crd := range crds {
			if err := c.cl.List(ctx, servedList(crd)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("custom resources not served after their CRDs are established: %w", err)
	}

	if err := c.warmUp(ctx, crds, o.WarmUp); err != nil {
		return err
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if err := c.cl.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", Namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: ServiceAccount, Namespace: Namespace}}
	if err := c.cl.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service account %s/%s: %w", Namespace, ServiceAccount, err)
	}

	roles, err := c.ApplyFiles(ctx, o.RBAC...)
	if err != nil {
		return err
	}
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: ServiceAccount, Namespace: Namespace}
	bound := 0
	for _, r := range roles {
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: r.GetKind(), Name: r.GetName()}
		var b client.Object
		switch r.GetKind() {
		case "ClusterRole":
			b = &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: r.GetName()}, RoleRef: ref, Subjects: []rbacv1.Subject{subject}}
		case "Role":
			b = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: r.GetName(), Namespace: r.GetNamespace()}, RoleRef: ref, Subjects: []rbacv1.Subject{subject}}
		default:
			continue
		}
		if err := c.cl.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("binding %s %s: %w", r.GetKind(), r.GetName(), err)
		}
		bound++
	}
	if bound == 0 {
		return fmt.Errorf("no ClusterRole or Role in %v", o.RBAC)
	}
	return nil
}

// servedList is an empty list of the custom resources of crd, in its first served version.
func servedList(crd *unstructured.Unstructured) *unstructured.UnstructuredList {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	version := ""
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, x := range versions {
		if m, _ := x.(map[string]any); m["served"] == true {
			version, _ = m["name"].(string)
			break
		}
	}
	l := &unstructured.UnstructuredList{}
	l.SetAPIVersion(schema.GroupVersion{Group: group, Version: version}.String())
	l.SetKind(kind + "List")
	return l
}

// warmUp creates, with a server-side dry run, every object of files whose kind is one of crds.
func (c *ControlPlane) warmUp(ctx context.Context, crds []*unstructured.Unstructured, files []string) error {
	served := map[string]bool{} // group/kind
	for _, crd := range crds {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		served[group+"/"+kind] = true
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		objs, err := Decode(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, u := range objs {
			gvk := u.GroupVersionKind()
			if !served[gvk.Group+"/"+gvk.Kind] {
				continue
			}
			if err := c.cl.Create(ctx, u, client.DryRunAll); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("warm-up: dry-run create of %s %s from %s: %w", gvk.Kind, u.GetName(), f, err)
			}
		}
	}
	return nil
}

func (c *ControlPlane) waitEstablished(ctx context.Context, name string) error {
	return poll(ctx, 30*time.Second, func() error {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apiextensions.k8s.io/v1")
		u.SetKind("CustomResourceDefinition")
		if err := c.cl.Get(ctx, types.NamespacedName{Name: name}, u); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, x := range conds {
			m, _ := x.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("CRD %s not established", name)
	})
}

// ApplyFiles server-side-applies every object of the YAML files and returns them.
func (c *ControlPlane) ApplyFiles(ctx context.Context, paths ...string) ([]*unstructured.Unstructured, error) {
	var all []*unstructured.Unstructured
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		objs, err := c.Apply(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, objs...)
	}
	return all, nil
}

// Apply server-side-applies every object of a YAML (or JSON) stream, as the admin with field
// manager FieldOwner, and returns them as applied.
func (c *ControlPlane) Apply(ctx context.Context, manifests []byte) ([]*unstructured.Unstructured, error) {
	objs, err := Decode(manifests)
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		if err := c.cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return objs, nil
}

// Decode splits a YAML (or JSON) stream into objects, skipping empty documents.
func Decode(manifests []byte) ([]*unstructured.Unstructured, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		err := d.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// RegisterNodes creates (or updates) a Node for each lab node, named like it, as a kubelet
// would: labels kubernetes.io/hostname, kubernetes.io/os and kubernetes.io/arch plus labels;
// status.addresses the node's lab IPv4 and IPv6 as InternalIP and its name as Hostname; a
// Ready condition. Nothing heartbeats it afterwards; no controller here would notice.
func (c *ControlPlane) RegisterNodes(ctx context.Context, nodes []*lab.Node, labels map[string]string) error {
	for _, n := range nodes {
		if err := c.registerNode(ctx, n, labels); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

func (c *ControlPlane) registerNode(ctx context.Context, n *lab.Node, labels map[string]string) error {
	want := map[string]string{
		corev1.LabelHostname:   n.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: runtime.GOARCH,
	}
	for k, v := range labels {
		want[k] = v
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: want}}
	if err := c.cl.Create(ctx, node); apierrors.IsAlreadyExists(err) {
		if err := c.cl.Get(ctx, types.NamespacedName{Name: n.Name}, node); err != nil {
			return err
		}
		node.Labels = want
		if err := c.cl.Update(ctx, node); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	now := metav1.Now()
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: n.IPv4.String()},
		{Type: corev1.NodeInternalIP, Address: n.IPv6.String()},
		{Type: corev1.NodeHostName, Address: n.Name},
	}
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "lab node " + n.NetNS, LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	return c.cl.Status().Update(ctx, node)
}

// poll calls f every 100 ms until it succeeds or timeout passes, and returns its last error.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
