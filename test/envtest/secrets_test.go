package envtest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/internal/chart"
)

// TestSecretsByNameOnly: the agent's generated Role lets it get a Secret of its namespace by
// name, and neither list nor watch them: a compromised agent cannot enumerate the namespace's
// Secrets or follow every change, only fetch the ones it can name (those VirtualIPs
// reference). The authorizer says so (SubjectAccessReview), and so do calls with the agent's
// credentials.
func TestSecretsByNameOnly(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	for _, tc := range []struct {
		verb, ns string
		want     bool
	}{
		{"get", agentNamespace, true},
		{"list", agentNamespace, false},
		{"watch", agentNamespace, false},
		{"list", "", false},
		{"watch", "", false},
		{"get", "default", false},
	} {
		ra := authorizationv1.ResourceAttributes{Verb: tc.verb, Resource: "secrets", Namespace: tc.ns}
		if got, why := allowed(t, admin, ra); got != tc.want {
			t.Errorf("%s secrets in %q: allowed %v, want %v (%s)", tc.verb, tc.ns, got, tc.want, why)
		}
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "by-name-only"},
		StringData: map[string]string{"password": "Pw8!xq#z"}}
	if err := admin.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), secret) })
	saCfg := rest.CopyConfig(cfg)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: agentUser}
	sa, err := client.New(saCfg, client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Secret
	if err := sa.Get(ctx, client.ObjectKeyFromObject(secret), &got); err != nil || string(got.Data["password"]) != "Pw8!xq#z" {
		t.Errorf("get the Secret by name as the agent: %v", err)
	}
	if err := sa.List(ctx, &corev1.SecretList{}, client.InNamespace(agentNamespace)); !apierrors.IsForbidden(err) {
		t.Errorf("list Secrets in %s as the agent: %v, want Forbidden", agentNamespace, err)
	}
	cs, err := kubernetes.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := cs.CoreV1().Secrets(agentNamespace).Watch(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		if w != nil {
			w.Stop()
		}
		t.Errorf("watch Secrets in %s as the agent: %v, want Forbidden", agentNamespace, err)
	}
	// Not even one Secret through a name field selector, which list and watch would need.
	if err := sa.List(ctx, &corev1.SecretList{}, client.InNamespace(agentNamespace),
		client.MatchingFields{"metadata.name": secret.Name}); !apierrors.IsForbidden(err) {
		t.Errorf("list one Secret by name as the agent: %v, want Forbidden", err)
	}
}

// TestSecretNamesRole: the chart's Role with rbac.secretNames lets the agent get exactly the
// Secrets named there, by name, and no other.
func TestSecretNamesRole(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	ensureNamespace(t, admin, agentNamespace)
	rel, err := chart.Render(ctx, filepath.Join(repoRoot, "charts", "kube-vrrp"), chart.Options{
		ReleaseName: "kube-vrrp", Namespace: agentNamespace, Values: "rbac: {secretNames: [vrrp-auth]}"})
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	for _, u := range rel.Objects {
		if u.GetKind() == "Role" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &role, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(role.Rules) == 0 {
		t.Fatal("the chart renders no Role")
	}
	const sa = "secret-names-agent"
	user := "system:serviceaccount:" + agentNamespace + ":" + sa
	role.ObjectMeta = metav1.ObjectMeta{Namespace: agentNamespace, Name: "secret-names"}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "secret-names"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: agentNamespace, Name: sa}}}
	for _, o := range []client.Object{&role, binding} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), o) })
	}
	can := func(verb, name string) (bool, string) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:serviceaccounts", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "secrets", Namespace: agentNamespace, Name: name},
		}}
		if err := admin.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed, sar.Status.Reason
	}
	eventually(t, wait, "the Role in effect", func() error {
		if ok, why := can("get", "vrrp-auth"); !ok {
			return fmt.Errorf("get vrrp-auth denied: %s", why)
		}
		return nil
	})
	for _, tc := range []struct {
		verb, name string
		want       bool
	}{
		{"get", "other", false},
		{"get", "", false},
		{"list", "", false},
		{"list", "vrrp-auth", false},
		{"watch", "vrrp-auth", false},
	} {
		if got, why := can(tc.verb, tc.name); got != tc.want {
			t.Errorf("%s secret %q: allowed %v, want %v (%s)", tc.verb, tc.name, got, tc.want, why)
		}
	}
}
