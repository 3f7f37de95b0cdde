package envtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
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

// agentConfig is a rest config with the agent's ServiceAccount's rights (the generated role,
// installed by installRBAC), each request counted in requests if not nil.
func agentConfig(requests *atomic.Int64) *rest.Config {
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = rest.ImpersonationConfig{UserName: agentUser}
	if requests != nil {
		sa.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				requests.Add(1)
				return rt.RoundTrip(r)
			})
		}
	}
	return sa
}

// startStopWatch runs a StopWatch of pod on node with c's credentials until the test ends.
func startStopWatch(t *testing.T, c *rest.Config, pod, node string) *controllers.StopWatch {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	w := controllers.NewStopWatch(cs, agentNamespace, pod, node, nil)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the StopWatch did not stop within 10 s")
		}
	})
	return w
}

// decide waits (up to 10 s: the watches catch up) until w decides restart or final as wanted,
// with a reason that says which and contains want; each decision is made without waiting.
func decide(t *testing.T, w *controllers.StopWatch, wantRestart bool, want string) {
	t.Helper()
	prefix := "final: "
	if wantRestart {
		prefix = "restart: "
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		restart, reason := w.Decide(t.Context(), 0)
		if restart == wantRestart && strings.HasPrefix(reason, prefix) && strings.Contains(reason, want) {
			t.Logf("restart %v: %s", restart, reason)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart %v (%q), want %v with a reason saying %q", restart, reason, wantRestart, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartRollingUpdate: as the agent's ServiceAccount (the generated role), a pod whose
// revision is not the DaemonSet's newest and that is being deleted is being replaced by a
// rolling update (restart); the pod at the newest revision is not (final), also after a
// rollback renumbers an old revision as the newest. The watches follow each change.
func TestRestartRollingUpdate(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "restart-n1", "198.18.0.31", nil)
	ds := restartDaemonSet(t, admin, "restart-ru", nil, "6b8f7c9d5", "5d4c8f7b6")
	restartPod(t, admin, ds, "restart-ru-old", "restart-n1", "6b8f7c9d5")
	restartPod(t, admin, ds, "restart-ru-new", "restart-n1", "5d4c8f7b6")
	old := startStopWatch(t, agentConfig(nil), "restart-ru-old", "restart-n1")
	cur := startStopWatch(t, agentConfig(nil), "restart-ru-new", "restart-n1")

	decide(t, old, false, "is not being deleted")
	decide(t, cur, false, "newest revision 2")
	deleteHeld(t, admin, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "restart-ru-old"}})
	deleteHeld(t, admin, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "restart-ru-new"}})
	decide(t, old, true, "revision 2 (5d4c8f7b6)")
	decide(t, cur, false, "newest revision 2")

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
	decide(t, cur, true, "revision 3 (6b8f7c9d5)")
	decide(t, old, false, "newest revision 3")

	// Another DaemonSet's revisions with the same labels do not count.
	other := restartDaemonSet(t, admin, "restart-ru-other", nil)
	other.Spec.Template.Labels = ds.Spec.Template.Labels
	restartRevision(t, admin, other, "9f9f9f9f9", 7)
	time.Sleep(200 * time.Millisecond) // the revision's watch event
	decide(t, old, false, "newest revision 3")
}

// TestRestartFinal: every stop that no successor follows, or that the agent cannot be sure of,
// is final, whatever the pod's revision; a change that makes it final reaches the watches.
func TestRestartFinal(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	const oldHash, newHash = "7c6b5d4f8", "8f4d5b6c7"
	// outdated makes an outdated pod being deleted on a new node, its stop a restart until
	// the test changes something.
	outdated := func(t *testing.T, name, ip string, nodeLabels, nodeSelector map[string]string) (*appsv1.DaemonSet, *controllers.StopWatch) {
		t.Helper()
		createNode(t, admin, name+"-n1", ip, nodeLabels)
		ds := restartDaemonSet(t, admin, name, nodeSelector, oldHash, newHash)
		restartPod(t, admin, ds, name+"-old", name+"-n1", oldHash)
		deleteHeld(t, admin, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name + "-old"}})
		t.Cleanup(func() {
			removeAndDelete(t, admin, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name + "-old"}})
		})
		return ds, startStopWatch(t, agentConfig(nil), name+"-old", name+"-n1")
	}

	t.Run("pod not being deleted", func(t *testing.T) {
		createNode(t, admin, "restart-live-n1", "198.18.0.40", nil)
		ds := restartDaemonSet(t, admin, "restart-live", nil, oldHash, newHash)
		restartPod(t, admin, ds, "restart-live-old", "restart-live-n1", oldHash)
		w := startStopWatch(t, agentConfig(nil), "restart-live-old", "restart-live-n1")
		decide(t, w, false, "pod kube-vrrp/restart-live-old (revision "+oldHash+", DaemonSet restart-live's newest is 2 ("+newHash+")) is not being deleted")
	})
	t.Run("DaemonSet being deleted", func(t *testing.T) {
		ds, w := outdated(t, "restart-del", "198.18.0.32", nil, nil)
		decide(t, w, true, "restart-del-n1") // until it is deleted
		deleteHeld(t, admin, ds)
		decide(t, w, false, "DaemonSet kube-vrrp/restart-del is being deleted")
	})
	t.Run("DaemonSet gone", func(t *testing.T) {
		ds, w := outdated(t, "restart-dsgone", "198.18.0.42", nil, nil)
		decide(t, w, true, "restart-dsgone-n1")
		if err := admin.Delete(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
		decide(t, w, false, "DaemonSet kube-vrrp/restart-dsgone not found")
	})
	t.Run("node cordoned", func(t *testing.T) {
		_, w := outdated(t, "restart-cordon", "198.18.0.33", nil, nil)
		decide(t, w, true, "restart-cordon-n1")
		var n corev1.Node
		if err := admin.Get(t.Context(), client.ObjectKey{Name: "restart-cordon-n1"}, &n); err != nil {
			t.Fatal(err)
		}
		n.Spec.Unschedulable = true
		if err := admin.Update(t.Context(), &n); err != nil {
			t.Fatal(err)
		}
		decide(t, w, false, "node restart-cordon-n1 is cordoned")
	})
	t.Run("node being deleted", func(t *testing.T) {
		_, w := outdated(t, "restart-gone", "198.18.0.34", nil, nil)
		decide(t, w, true, "restart-gone-n1")
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "restart-gone-n1"}}
		t.Cleanup(func() { removeAndDelete(t, admin, n) })
		deleteHeld(t, admin, n)
		decide(t, w, false, "node restart-gone-n1 is being deleted")
	})
	t.Run("new template leaves the node", func(t *testing.T) {
		_, w := outdated(t, "restart-sel", "198.18.0.35", map[string]string{"role": "web"}, map[string]string{"role": "lb"})
		decide(t, w, false, "does not run on node restart-sel-n1: nodeSelector role=lb")
	})
	t.Run("new revision", func(t *testing.T) {
		ds, w := outdated(t, "restart-rev", "198.18.0.43", nil, nil)
		decide(t, w, true, "revision 2 ("+newHash+")")
		// A rollback to the pod's revision.
		restartRevision(t, admin, ds, "0a0a0a0a0", 3)
		decide(t, w, true, "revision 3 (0a0a0a0a0)")
		var cr appsv1.ControllerRevision
		if err := admin.Get(t.Context(), client.ObjectKey{Namespace: agentNamespace, Name: "restart-rev-" + oldHash}, &cr); err != nil {
			t.Fatal(err)
		}
		cr.Revision = 4
		if err := admin.Update(t.Context(), &cr); err != nil {
			t.Fatal(err)
		}
		decide(t, w, false, "newest revision 4 ("+oldHash+")")
	})
	t.Run("no DaemonSet", func(t *testing.T) {
		createNode(t, admin, "restart-bare-n1", "198.18.0.36", nil)
		restartPod(t, admin, nil, "restart-bare", "restart-bare-n1", "")
		decide(t, startStopWatch(t, agentConfig(nil), "restart-bare", "restart-bare-n1"), false, "not controlled by a DaemonSet")
	})
	t.Run("DaemonSet created again", func(t *testing.T) {
		createNode(t, admin, "restart-again-n1", "198.18.0.37", nil)
		ds := restartDaemonSet(t, admin, "restart-again", nil, oldHash, newHash)
		stale := ds.DeepCopy()
		stale.UID = "0b3c9a5e-4d1f-4f6a-9c2e-000000000001"
		restartPod(t, admin, stale, "restart-again-old", "restart-again-n1", oldHash)
		decide(t, startStopWatch(t, agentConfig(nil), "restart-again-old", "restart-again-n1"), false, "not the one that made pod")
	})
	t.Run("no pod", func(t *testing.T) {
		decide(t, startStopWatch(t, agentConfig(nil), "restart-no-such-pod", "restart-n1"), false, "pod kube-vrrp/restart-no-such-pod not found")
	})
	t.Run("pod on another node", func(t *testing.T) {
		_, _ = outdated(t, "restart-other", "198.18.0.44", nil, nil)
		decide(t, startStopWatch(t, agentConfig(nil), "restart-other-old", "restart-other-n2"), false, "is not on node restart-other-n2")
	})
	t.Run("no revision", func(t *testing.T) {
		createNode(t, admin, "restart-norev-n1", "198.18.0.38", nil)
		ds := restartDaemonSet(t, admin, "restart-norev", nil)
		restartPod(t, admin, ds, "restart-norev-old", "restart-norev-n1", oldHash)
		decide(t, startStopWatch(t, agentConfig(nil), "restart-norev-old", "restart-norev-n1"), false, "has no ControllerRevision")
	})
	t.Run("no rights", func(t *testing.T) {
		_, _ = outdated(t, "restart-rbac", "198.18.0.39", nil, nil)
		nobody := rest.CopyConfig(cfg)
		nobody.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + agentNamespace + ":nobody"}
		decide(t, startStopWatch(t, nobody, "restart-rbac-old", "restart-rbac-n1"), false, "forbidden")
	})
}

// TestRestartFromMemory: once the watches are current, the decision makes no request to the
// API server and takes well under a millisecond, restart or final.
func TestRestartFromMemory(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "restart-mem-n1", "198.18.0.45", nil)
	ds := restartDaemonSet(t, admin, "restart-mem", nil, "1a1a1a1a1", "2b2b2b2b2")
	restartPod(t, admin, ds, "restart-mem-old", "restart-mem-n1", "1a1a1a1a1")
	restartPod(t, admin, ds, "restart-mem-new", "restart-mem-n1", "2b2b2b2b2")
	deleteHeld(t, admin, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "restart-mem-old"}})
	for _, tc := range []struct {
		pod     string
		restart bool
		want    string
	}{
		{"restart-mem-old", true, "revision 2 (2b2b2b2b2)"},
		{"restart-mem-new", false, "newest revision 2"},
	} {
		var requests atomic.Int64
		w := startStopWatch(t, agentConfig(&requests), tc.pod, "restart-mem-n1")
		decide(t, w, tc.restart, tc.want)
		before := requests.Load()
		start := time.Now()
		restart, reason := w.Decide(t.Context(), controllers.StopDecisionWait)
		took := time.Since(start)
		made := requests.Load() - before
		t.Logf("%s: restart %v in %s, %d requests: %s", tc.pod, restart, took, made, reason)
		if restart != tc.restart || made != 0 {
			t.Errorf("%s: restart %v with %d requests, want %v with none", tc.pod, restart, made, tc.restart)
		}
		if took > 10*time.Millisecond {
			t.Errorf("%s: decided in %s, want it from memory (well under 10 ms)", tc.pod, took)
		}
	}
}

// TestRestartDeletionRace: the API server marks the pod deleted before the kubelet sends
// SIGTERM, but the watch event may come after the signal: a decision that would be a restart
// but for the deletion waits for it (StopDecisionWait), and ends as soon as it arrives. The
// figure logged is when the watch saw the deletion, against the DELETE's answer.
func TestRestartDeletionRace(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "restart-race-n1", "198.18.0.46", nil)
	ds := restartDaemonSet(t, admin, "restart-race", nil, "3c3c3c3c3", "4d4d4d4d4")
	var lags []time.Duration
	for i := range 5 {
		name := fmt.Sprintf("restart-race-%d", i)
		restartPod(t, admin, ds, name, "restart-race-n1", "3c3c3c3c3")
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name}}
		if err := admin.Get(t.Context(), client.ObjectKeyFromObject(pod), pod); err != nil {
			t.Fatal(err)
		}
		pod.Finalizers = []string{restartFinalizer}
		if err := admin.Update(t.Context(), pod); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeAndDelete(t, admin, pod) })
		w := startStopWatch(t, agentConfig(nil), name, "restart-race-n1")
		decide(t, w, false, "is not being deleted")

		// Not deleted within the wait: final, after the whole wait.
		start := time.Now()
		restart, reason := w.Decide(t.Context(), 50*time.Millisecond)
		if took := time.Since(start); restart || took < 50*time.Millisecond || took > time.Second {
			t.Errorf("%s not deleted: restart %v after %s (%s), want final after the 50ms wait", name, restart, took, reason)
		}

		// Deleted as the decision starts: it waits for the event, and no longer.
		got := make(chan bool, 1)
		go func() {
			restart, _ := w.Decide(t.Context(), 5*time.Second)
			got <- restart
		}()
		time.Sleep(10 * time.Millisecond)
		if err := admin.Delete(t.Context(), pod); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		select {
		case restart := <-got:
			if !restart {
				t.Errorf("%s deleted during the decision: final, want restart", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the decision did not end within 10 s", name)
		}
		seen := w.DeletionSeen()
		if seen.IsZero() || seen.Before(start) || seen.After(time.Now()) {
			t.Errorf("%s: DeletionSeen %v, want around the DELETE (answered at %v)", name, seen, deleted)
		}
		lags = append(lags, seen.Sub(deleted))
	}
	t.Logf("figure: the watch saw the deletion %v after the DELETE was answered (negative: before; StopDecisionWait %v)", lags, controllers.StopDecisionWait)
}

// TestRestartUnreachable: an API server that refuses the connection, or accepts it and never
// answers, leaves the watches without a list: the decision is final, after at most the wait.
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
	held := make(chan net.Conn, 64)
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
		{"connection refused", closedAddr, "the watch of pod kube-vrrp/restart-unreachable has not listed yet"},
		{"no answer", silent.Addr().String(), "the watch of pod kube-vrrp/restart-unreachable has not listed yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &rest.Config{Host: "https://" + tc.addr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, BearerToken: "not-a-token"}
			w := startStopWatch(t, c, "restart-unreachable", "restart-n1")
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			restart, reason := w.Decide(t.Context(), controllers.StopDecisionWait)
			took := time.Since(start)
			t.Logf("restart %v in %s: %s", restart, took.Round(time.Millisecond), reason)
			if restart || !strings.Contains(reason, tc.want) {
				t.Errorf("restart %v (%q), want final saying %q", restart, reason, tc.want)
			}
			if took > controllers.StopDecisionWait+200*time.Millisecond {
				t.Errorf("decided in %s, want within %s", took, controllers.StopDecisionWait)
			}
		})
	}
}

// TestRestartStale: watches that were current and lost the API server (here a TCP proxy in
// front of it, cut) cannot be trusted: the decision becomes final, and turns back into a
// restart once the watches are connected again.
func TestRestartStale(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	createNode(t, admin, "restart-stale-n1", "198.18.0.47", nil)
	ds := restartDaemonSet(t, admin, "restart-stale", nil, "5e5e5e5e5", "6f6f6f6f6")
	restartPod(t, admin, ds, "restart-stale-old", "restart-stale-n1", "5e5e5e5e5")
	deleteHeld(t, admin, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "restart-stale-old"}})

	upstream, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := startTCPProxy(t, upstream.Host)
	c := agentConfig(nil)
	c.Host = "https://" + p.addr()
	w := startStopWatch(t, c, "restart-stale-old", "restart-stale-n1")
	decide(t, w, true, "revision 2 (6f6f6f6f6)")

	p.cut()
	decide(t, w, false, "is not connected")
	p.resume()
	decide(t, w, true, "revision 2 (6f6f6f6f6)")
}

// tcpProxy forwards connections to an address; cut closes them all and refuses new ones
// until resume.
type tcpProxy struct {
	t        *testing.T
	upstream string
	ln       net.Listener

	mu     sync.Mutex
	closed bool
	conns  []net.Conn
}

func startTCPProxy(t *testing.T, upstream string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, upstream: upstream, ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = false
}
