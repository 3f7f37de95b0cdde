package chart

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestRestartRBAC: with the chart's RBAC installed on a real API server, the agent's
// ServiceAccount may watch what it needs to tell, at SIGTERM, a rolling update from a final
// stop (docs/design.md §4.9.1): list and watch the pods, DaemonSets and ControllerRevisions of
// the release namespace (the agent narrows each watch to its own pod, its DaemonSet and that
// DaemonSet's revisions) and Nodes; and nothing more of these: no get (the watches read them),
// no write, nothing in another namespace, no pod list across the cluster. rbac.secretNames
// narrows the Secrets and only them: the agent still watches its pod.
func TestRestartRBAC(t *testing.T) {
	requireAPIServer(t)
	for _, o := range []renderOptions{defaults, nonDefault} {
		t.Run(o.name, func(t *testing.T) {
			ctx := t.Context()
			r := mustRender(t, o)
			ensureNamespace(t, k8s, o.namespace)
			for _, u := range r.objects {
				switch u.GetKind() {
				case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
				default:
					continue
				}
				u := u.DeepCopy()
				if err := k8s.Create(ctx, u); err != nil {
					t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
				}
				t.Cleanup(func() {
					if err := k8s.Delete(context.WithoutCancel(ctx), u); err != nil {
						t.Errorf("delete %s %s: %v", u.GetKind(), u.GetName(), err)
					}
				})
			}
			sa := r.daemonSet(t, findKind(t, r.objects, "DaemonSet").GetName()).Spec.Template.Spec.ServiceAccountName
			user := "system:serviceaccount:" + o.namespace + ":" + sa
			ns := o.namespace
			pod := func(verb, ns string) authorizationv1.ResourceAttributes {
				return authorizationv1.ResourceAttributes{Verb: verb, Resource: "pods", Namespace: ns, Name: sa + "-x7k2p"}
			}
			apps := func(verb, resource, ns string) authorizationv1.ResourceAttributes {
				return authorizationv1.ResourceAttributes{Verb: verb, Group: "apps", Resource: resource, Namespace: ns}
			}
			need := []authorizationv1.ResourceAttributes{
				{Verb: "list", Resource: "pods", Namespace: ns},
				{Verb: "watch", Resource: "pods", Namespace: ns},
				apps("list", "daemonsets", ns),
				apps("watch", "daemonsets", ns),
				apps("list", "controllerrevisions", ns),
				apps("watch", "controllerrevisions", ns),
				{Verb: "list", Resource: "nodes"},
				{Verb: "watch", Resource: "nodes"},
			}
			// The RBAC authorizer sees new roles a moment after they are created.
			err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
				for _, ra := range need {
					if ok, _ := accessAllowed(t, user, ns, ra); !ok {
						return false, nil
					}
				}
				return true, nil
			})
			if err != nil {
				for _, ra := range need {
					if ok, why := accessAllowed(t, user, ns, ra); !ok {
						t.Errorf("%s may not %s: %s", user, describeAccess(ra), why)
					}
				}
				t.FailNow()
			}
			for _, ra := range []authorizationv1.ResourceAttributes{
				pod("get", ns),
				{Verb: "list", Resource: "pods"},
				{Verb: "watch", Resource: "pods"},
				{Verb: "list", Resource: "pods", Namespace: "kube-system"},
				{Verb: "watch", Resource: "pods", Namespace: "default"},
				pod("get", "default"),
				pod("delete", ns),
				pod("patch", ns),
				pod("update", ns),
				{Verb: "create", Resource: "pods", Namespace: ns},
				{Verb: "create", Resource: "pods", Subresource: "eviction", Namespace: ns, Name: sa + "-x7k2p"},
				{Verb: "get", Resource: "pods", Subresource: "log", Namespace: ns, Name: sa + "-x7k2p"},
				apps("get", "daemonsets", ns),
				apps("update", "daemonsets", ns),
				apps("patch", "daemonsets", ns),
				apps("delete", "daemonsets", ns),
				apps("get", "daemonsets", "kube-system"),
				apps("list", "daemonsets", "kube-system"),
				apps("list", "daemonsets", ""),
				apps("watch", "daemonsets", ""),
				apps("get", "controllerrevisions", ns),
				apps("create", "controllerrevisions", ns),
				apps("delete", "controllerrevisions", ns),
				apps("list", "controllerrevisions", ""),
				apps("list", "controllerrevisions", "kube-system"),
				apps("watch", "controllerrevisions", "kube-system"),
				apps("get", "deployments", ns),
				apps("list", "replicasets", ns),
				{Verb: "patch", Resource: "nodes", Name: "n1"},
			} {
				if ok, _ := accessAllowed(t, user, ns, ra); ok {
					t.Errorf("%s may %s", user, describeAccess(ra))
				}
			}
			if o.name == nonDefault.name {
				secret := func(name string) authorizationv1.ResourceAttributes {
					return authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: name}
				}
				if ok, why := accessAllowed(t, user, ns, secret("vrrp-auth")); !ok {
					t.Errorf("%s may not get the Secret rbac.secretNames names: %s", user, why)
				}
				if ok, _ := accessAllowed(t, user, ns, secret("other")); ok {
					t.Errorf("%s may get a Secret rbac.secretNames does not name", user)
				}
			}
		})
	}
}

// accessAllowed asks the authorizer whether user, a ServiceAccount of namespace ns, may do ra.
func accessAllowed(t *testing.T, user, ns string, ra authorizationv1.ResourceAttributes) (bool, string) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &ra,
	}}
	if err := k8s.Create(t.Context(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed, sar.Status.Reason + sar.Status.EvaluationError
}

func describeAccess(ra authorizationv1.ResourceAttributes) string {
	what := ra.Resource
	if ra.Group != "" {
		what = ra.Group + "/" + what
	}
	if ra.Subresource != "" {
		what += "/" + ra.Subresource
	}
	where := "cluster-wide"
	if ra.Namespace != "" {
		where = "in " + ra.Namespace
	}
	if ra.Name != "" {
		what += " " + ra.Name
	}
	return fmt.Sprintf("%s %s %s", ra.Verb, what, where)
}

// TestHandoffTimeout: handoff.timeout reaches the agent as --handoff-timeout, from 1s to 160s
// (TestSchemaRejects: anything else is refused).
func TestHandoffTimeout(t *testing.T) {
	for _, d := range []string{"1s", "8s", "59s", "160s"} {
		r := mustRender(t, renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", values: "handoff: {timeout: " + d + "}"})
		args := r.daemonSet(t, "kube-vrrp").Spec.Template.Spec.Containers[0].Args
		if !slices.Contains(args, "--handoff-timeout="+d) {
			t.Errorf("handoff.timeout %s: args %s", d, quote(args))
		}
	}
}
