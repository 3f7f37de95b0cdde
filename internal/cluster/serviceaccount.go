package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
)

// The Service controller's identity in the lab cluster (kube-vrrp controller, §7.12).
const (
	// LBControllerServiceAccount is kube-vrrp controller's ServiceAccount in Namespace, bound
	// by InstallLBController to the roles of config/rbac/lb_controller_role.yaml (the chart's
	// names differ; the rules are the same).
	LBControllerServiceAccount = "kube-vrrp-lb-controller"
	// LBControllerUser is the user name the API server gives LBControllerServiceAccount.
	LBControllerUser = "system:serviceaccount:" + Namespace + ":" + LBControllerServiceAccount
)

// ServiceAccountUser is the user name the API server gives the ServiceAccount name of
// namespace.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// InstallServiceAccount creates namespace and the ServiceAccount name in it (both may exist),
// server-side-applies the ClusterRoles and Roles of the rbac manifest files and binds each,
// by a ClusterRoleBinding or RoleBinding named after the ServiceAccount's namespace, its name
// and the role's, to the ServiceAccount. Other kinds in the files are applied and not bound.
// It is what Install does for the agent, for any other program the lab runs under the RBAC
// it ships with (kube-vrrp controller, another project's components).
func (c *ControlPlane) InstallServiceAccount(ctx context.Context, namespace, name string, rbac ...string) error {
	if len(rbac) == 0 {
		return errors.New("InstallServiceAccount: no RBAC manifest")
	}
	var all []byte
	for _, f := range rbac {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		all = append(append(all, "\n---\n"...), b...)
	}
	if err := c.InstallServiceAccountRoles(ctx, namespace, name, all); err != nil {
		return fmt.Errorf("%v: %w", rbac, err)
	}
	return nil
}

// InstallServiceAccountRoles is InstallServiceAccount with the roles given as a YAML (or JSON)
// stream, e.g. another project's manifests with their own bindings taken out.
func (c *ControlPlane) InstallServiceAccountRoles(ctx context.Context, namespace, name string, roles []byte) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.cl.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if err := c.cl.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service account %s/%s: %w", namespace, name, err)
	}
	objs, err := c.Apply(ctx, roles)
	if err != nil {
		return err
	}
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}
	bound := 0
	for _, r := range objs {
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: r.GetKind(), Name: r.GetName()}
		// The binding's name holds the subject's: two ServiceAccounts bound to roles of the
		// same name (or one to a role named like another's) do not share a binding.
		bname := namespace + ":" + name + ":" + r.GetName()
		var b client.Object
		switch r.GetKind() {
		case "ClusterRole":
			b = &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: bname}, RoleRef: ref, Subjects: []rbacv1.Subject{subject}}
		case "Role":
			b = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: bname, Namespace: r.GetNamespace()}, RoleRef: ref, Subjects: []rbacv1.Subject{subject}}
		default:
			continue
		}
		if err := c.cl.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("binding %s %s: %w", r.GetKind(), r.GetName(), err)
		}
		bound++
	}
	if bound == 0 {
		return errors.New("no ClusterRole or Role")
	}
	return nil
}

// InstallLBController binds kube-vrrp controller's generated roles
// (config/rbac/lb_controller_role.yaml: a ClusterRole, and a Role for its Lease in Namespace)
// to LBControllerServiceAccount. Install must have applied the CRDs (the VirtualIPPool's
// among them) first.
func (c *ControlPlane) InstallLBController(ctx context.Context) error {
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		return err
	}
	return c.InstallServiceAccount(ctx, Namespace, LBControllerServiceAccount,
		filepath.Join(root, "config", "rbac", "lb_controller_role.yaml"))
}

// ServiceAccountKubeconfig writes (once) and returns a kubeconfig that acts as the
// ServiceAccount name of namespace: the admin certificate impersonating it, as
// AgentKubeconfig does for the agent, so the program using it has exactly the rights bound
// to the ServiceAccount.
func (c *ControlPlane) ServiceAccountKubeconfig(namespace, name string) (string, error) {
	path := filepath.Join(c.dir, "sa-"+namespace+"-"+name+".kubeconfig")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, c.WriteKubeconfig(path, ServiceAccountUser(namespace, name))
}
