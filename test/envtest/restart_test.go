package envtest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/controllers"
)

// The DaemonSet controller does not run here: these tests make the ControllerRevisions and
// pods as it would (k8s.io/kubernetes pkg/controller/daemon): a revision is named
// <daemonset>-<hash>, labelled with the template's labels and controller-revision-hash=<hash>,
// controlled by the DaemonSet, numbered one above the highest before it; a pod carries the
// template's labels and the hash of the revision it was made from.

const restartFinalizer = "kubevrrp.test/hold"

// restartDaemonSet creates a DaemonSet named name in the agent's namespace whose template has
// nodeSelector, and ControllerRevisions for hashes, numbered 1, 2, ... in that order.
func restartDaemonSet(t *testing.T, admin client.Client, name string, nodeSelector map[string]string, hashes ...string) *appsv1.DaemonSet {
	t.Helper()
	ctx := t.Context()
	labels := map[string]string{"app.kubernetes.io/name": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{NodeSelector: nodeSelector, HostNetwork: true,
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers:  []corev1.Container{{Name: "agent", Image: "kube-vrrp"}}},
			},
		},
	}
	if err := admin.Create(ctx, ds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAndDelete(t, admin, ds) })
	for i, h := range hashes {
		restartRevision(t, admin, ds, h, int64(i+1))
	}
	return ds
}

// restartRevision creates the ControllerRevision of ds for hash, numbered revision.
func restartRevision(t *testing.T, admin client.Client, ds *appsv1.DaemonSet, hash string, revision int64) {
	t.Helper()
	labels := map[string]string{appsv1.ControllerRevisionHashLabelKey: hash}
	for k, v := range ds.Spec.Template.Labels {
		labels[k] = v
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Name: ds.Name + "-" + hash, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))}},
		Data:     runtime.RawExtension{Raw: []byte(`{"spec":{"template":{"$patch":"replace"}}}`)},
		Revision: revision,
	}
	if err := admin.Create(t.Context(), cr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(t.Context()), cr) })
}

// restartPod creates a pod of ds (nil: a pod of no controller) on node, made from the revision
// with hash.
func restartPod(t *testing.T, admin client.Client, ds *appsv1.DaemonSet, name, node, hash string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "agent", Image: "kube-vrrp"}}},
	}
	if ds != nil {
		pod.Labels = map[string]string{appsv1.ControllerRevisionHashLabelKey: hash}
		for k, v := range ds.Spec.Template.Labels {
			pod.Labels[k] = v
		}
		pod.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))}
	}
	if err := admin.Create(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(t.Context()), pod, client.GracePeriodSeconds(0)) })
}

// removeAndDelete deletes obj, first removing the test's finalizer if it holds one.
func removeAndDelete(t *testing.T, admin client.Client, obj client.Object) {
	ctx := context.WithoutCancel(t.Context())
	if err := admin.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return
	}
	if len(obj.GetFinalizers()) > 0 {
		obj.SetFinalizers(nil)
		if err := admin.Update(ctx, obj); err != nil {
			t.Errorf("remove the finalizer of %s: %v", obj.GetName(), err)
		}
	}
	_ = admin.Delete(ctx, obj)
}

// deleteHeld deletes obj while a finalizer holds it: it stays, with a deletionTimestamp.
func deleteHeld(t *testing.T, admin client.Client, obj client.Object) {
	t.Helper()
	ctx := t.Context()
	if err := admin.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	obj.SetFinalizers(append(obj.GetFinalizers(), restartFinalizer))
	if err := admin.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil || obj.GetDeletionTimestamp() == nil {
		t.Fatalf("%s: want it held with a deletionTimestamp: %v", obj.GetName(), err)
	}
}

// agentClientset is a typed client with the agent's ServiceAccount's rights (the generated
// role, installed by installRBAC).
func agentClientset(t *testing.T) kubernetes.Interface {
	t.Helper()
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = rest.ImpersonationConfig{UserName: agentUser}
	cs, err := kubernetes.NewForConfig(sa)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// decide runs StopIsRestart for pod and checks its answer: restart or final, a reason that
// says which and contains want, within RestartCheckTimeout.
func decide(t *testing.T, cs kubernetes.Interface, pod string, wantRestart bool, want string) {
	t.Helper()
	start := time.Now()
	restart, reason := controllers.StopIsRestart(t.Context(), cs, agentNamespace, pod)
	took := time.Since(start)
	t.Logf("%s: restart %v in %s: %s", pod, restart, took.Round(time.Millisecond), reason)
	prefix := "final: "
	if wantRestart {
		prefix = "restart: "
	}
	if restart != wantRestart || !strings.HasPrefix(reason, prefix) || !strings.Contains(reason, want) {
		t.Errorf("%s: restart %v (%q), want %v with a reason saying %q", pod, restart, reason, wantRestart, want)
	}
	if took > controllers.RestartCheckTimeout+500*time.Millisecond {
		t.Errorf("%s: decided in %s, want within %s", pod, took, controllers.RestartCheckTimeout)
	}
}

// TestRestartRollingUpdate: as the agent's ServiceAccount (the generated role), a pod whose
// revision is not the DaemonSet's newest is being replaced by a rolling update (restart); the
// pod at the newest revision is not (final), also after a rollback renumbers an old revision
// as the newest.
func TestRestartRollingUpdate(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	cs := agentClientset(t)
	createNode(t, admin, "restart-n1", "198.18.0.31", nil)
	ds := restartDaemonSet(t, admin, "restart-ru", nil, "6b8f7c9d5", "5d4c8f7b6")
	restartPod(t, admin, ds, "restart-ru-old", "restart-n1", "6b8f7c9d5")
	restartPod(t, admin, ds, "restart-ru-new", "restart-n1", "5d4c8f7b6")

	decide(t, cs, "restart-ru-old", true, "revision 2 (5d4c8f7b6)")
	decide(t, cs, "restart-ru-new", false, "newest revision 2")

	// A rollback to the first template: the DaemonSet controller gives its revision the next
	// number, and the pods made from the second are the outdated ones.
	var cr appsv1.ControllerRevision
	if err := admin.Get(t.Context(), client.ObjectKey{Namespace: agentNamespace, Name: "restart-ru-6b8f7c9d5"}, &cr); err != nil {
		t.Fatal(err)
	}
	cr.Revision = 3
	if err := admin.Update(t.Context(), &cr); err != nil {
		t.Fatal(err)
	}
	decide(t, cs, "restart-ru-new", true, "revision 3 (6b8f7c9d5)")
	decide(t, cs, "restart-ru-old", false, "newest revision 3")

	// Another DaemonSet's revisions with the same labels do not count.
	other := restartDaemonSet(t, admin, "restart-ru-other", nil)
	other.Spec.Template.Labels = ds.Spec.Template.Labels
	restartRevision(t, admin, other, "9f9f9f9f9", 7)
	decide(t, cs, "restart-ru-old", false, "newest revision 3")
}

// TestRestartFinal: every stop that no successor follows, or that the agent cannot be sure of,
// is final, whatever the pod's revision.
func TestRestartFinal(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	cs := agentClientset(t)
	const oldHash, newHash = "7c6b5d4f8", "8f4d5b6c7"

	t.Run("DaemonSet being deleted", func(t *testing.T) {
		createNode(t, admin, "restart-del-n1", "198.18.0.32", nil)
		ds := restartDaemonSet(t, admin, "restart-del", nil, oldHash, newHash)
		restartPod(t, admin, ds, "restart-del-old", "restart-del-n1", oldHash)
		decide(t, cs, "restart-del-old", true, "restart-del-n1") // until it is deleted
		deleteHeld(t, admin, ds)
		decide(t, cs, "restart-del-old", false, "DaemonSet kube-vrrp/restart-del is being deleted")
	})
	t.Run("node cordoned", func(t *testing.T) {
		createNode(t, admin, "restart-cordon-n1", "198.18.0.33", nil)
		ds := restartDaemonSet(t, admin, "restart-cordon", nil, oldHash, newHash)
		restartPod(t, admin, ds, "restart-cordon-old", "restart-cordon-n1", oldHash)
		decide(t, cs, "restart-cordon-old", true, "restart-cordon-n1")
		var n corev1.Node
		if err := admin.Get(t.Context(), client.ObjectKey{Name: "restart-cordon-n1"}, &n); err != nil {
			t.Fatal(err)
		}
		n.Spec.Unschedulable = true
		if err := admin.Update(t.Context(), &n); err != nil {
			t.Fatal(err)
		}
		decide(t, cs, "restart-cordon-old", false, "node restart-cordon-n1 is cordoned")
	})
	t.Run("node being deleted", func(t *testing.T) {
		createNode(t, admin, "restart-gone-n1", "198.18.0.34", nil)
		ds := restartDaemonSet(t, admin, "restart-gone", nil, oldHash, newHash)
		restartPod(t, admin, ds, "restart-gone-old", "restart-gone-n1", oldHash)
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "restart-gone-n1"}}
		t.Cleanup(func() { removeAndDelete(t, admin, n) })
		deleteHeld(t, admin, n)
		decide(t, cs, "restart-gone-old", false, "node restart-gone-n1 is being deleted")
	})
	t.Run("new template leaves the node", func(t *testing.T) {
		createNode(t, admin, "restart-sel-n1", "198.18.0.35", map[string]string{"role": "web"})
		ds := restartDaemonSet(t, admin, "restart-sel", map[string]string{"role": "lb"}, oldHash, newHash)
		restartPod(t, admin, ds, "restart-sel-old", "restart-sel-n1", oldHash)
		decide(t, cs, "restart-sel-old", false, "does not run on node restart-sel-n1: nodeSelector role=lb")
	})
	t.Run("no DaemonSet", func(t *testing.T) {
		createNode(t, admin, "restart-bare-n1", "198.18.0.36", nil)
		restartPod(t, admin, nil, "restart-bare", "restart-bare-n1", "")
		decide(t, cs, "restart-bare", false, "not controlled by a DaemonSet")
	})
	t.Run("DaemonSet created again", func(t *testing.T) {
		createNode(t, admin, "restart-again-n1", "198.18.0.37", nil)
		ds := restartDaemonSet(t, admin, "restart-again", nil, oldHash, newHash)
		stale := ds.DeepCopy()
		stale.UID = "0b3c9a5e-4d1f-4f6a-9c2e-000000000001"
		restartPod(t, admin, stale, "restart-again-old", "restart-again-n1", oldHash)
		decide(t, cs, "restart-again-old", false, "not the one that made pod")
	})
	t.Run("no pod", func(t *testing.T) {
		decide(t, cs, "restart-no-such-pod", false, "not found")
	})
	t.Run("no revision", func(t *testing.T) {
		createNode(t, admin, "restart-norev-n1", "198.18.0.38", nil)
		ds := restartDaemonSet(t, admin, "restart-norev", nil)
		restartPod(t, admin, ds, "restart-norev-old", "restart-norev-n1", oldHash)
		decide(t, cs, "restart-norev-old", false, "has no ControllerRevision")
	})
	t.Run("no rights", func(t *testing.T) {
		createNode(t, admin, "restart-rbac-n1", "198.18.0.39", nil)
		ds := restartDaemonSet(t, admin, "restart-rbac", nil, oldHash, newHash)
		restartPod(t, admin, ds, "restart-rbac-old", "restart-rbac-n1", oldHash)
		nobody := rest.CopyConfig(cfg)
		nobody.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + agentNamespace + ":nobody"}
		ncs, err := kubernetes.NewForConfig(nobody)
		if err != nil {
			t.Fatal(err)
		}
		decide(t, ncs, "restart-rbac-old", false, "forbidden")
	})
}

// TestRestartUnreachable: an API server that refuses the connection, or accepts it and never
// answers, means a final stop within RestartCheckTimeout.
func TestRestartUnreachable(t *testing.T) {
	requireAPIServer(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held <- c // never read or written: the TLS handshake never ends
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})

	for _, tc := range []struct{ name, addr, want string }{
		{"connection refused", closedAddr, "connection refused"},
		{"no answer", silent.Addr().String(), "get pod kube-vrrp/restart-unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &rest.Config{Host: "https://" + tc.addr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, BearerToken: "not-a-token"}
			cs, err := kubernetes.NewForConfig(c)
			if err != nil {
				t.Fatal(err)
			}
			decide(t, cs, "restart-unreachable", false, tc.want)
		})
	}
}
