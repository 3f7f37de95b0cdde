package agentlab_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// TestHandoffRollingUpdate is the restart lab in Kubernetes mode, against a real API server:
// the agents run as pods of a DaemonSet would (POD_NAME, POD_NAMESPACE; the pod, DaemonSet
// and ControllerRevisions are objects without a kubelet). n1's pod is of an outdated revision,
// so its SIGTERM is a rolling update: it hands off, the new agent resumes, nothing moves (the
// backup never holds the VIP, no long-lived connection breaks, no new request fails). Then the
// pod is at the newest revision and SIGTERM is final: the backup takes over.
func TestHandoffRollingUpdate(t *testing.T) {
	envtestassets.Require(t)
	ctx := t.Context()
	bin := lab.KubeVRRPBinary(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	cp := cluster.New(t, l, cluster.Options{Nice: nice})
	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cp.RegisterNodes(ctx, l.Nodes(), nil); err != nil {
		t.Fatal(err)
	}
	k8s := cp.Client()
	n1, n2 := l.Node(1), l.Node(2)
	for _, n := range l.Nodes() {
		n.StartPIDNamespace(t).StartHAProxy(t, handoffVIP.Addr())
	}

	// The DaemonSet with revisions 1 (hash "old") and 2 (hash "new"), and a pod per node.
	labels := map[string]string{"app.kubernetes.io/name": "kube-vrrp"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-vrrp", Namespace: cluster.Namespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "kube-vrrp:lab"}},
					HostNetwork: true, ServiceAccountName: cluster.ServiceAccount,
					// The lab's nodes have no kubelet, so they are not ready (tainted); the
					// chart's agent tolerates every taint as well.
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
			},
		},
	}
	if err := k8s.Create(ctx, ds); err != nil {
		t.Fatal(err)
	}
	owner := metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
	for rev, hash := range map[int64]string{1: "old", 2: "new"} {
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-vrrp-" + hash, Namespace: cluster.Namespace,
				Labels:          map[string]string{"app.kubernetes.io/name": "kube-vrrp", appsv1.ControllerRevisionHashLabelKey: hash},
				OwnerReferences: []metav1.OwnerReference{*owner}},
			Data:     runtime.RawExtension{Raw: []byte(`{}`)},
			Revision: rev,
		}
		if err := k8s.Create(ctx, cr); err != nil {
			t.Fatal(err)
		}
	}
	pods := map[string]*corev1.Pod{}
	for _, n := range l.Nodes() {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-vrrp-" + n.Name, Namespace: cluster.Namespace,
				Labels:          map[string]string{"app.kubernetes.io/name": "kube-vrrp", appsv1.ControllerRevisionHashLabelKey: "old"},
				OwnerReferences: []metav1.OwnerReference{*owner}},
			Spec: *ds.Spec.Template.Spec.DeepCopy(),
		}
		p.Spec.NodeName = n.Name
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		pods[n.Name] = p
	}

	kubeconfig, err := cp.AgentKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	start := func(n *lab.Node) *lab.Proc {
		t.Helper()
		state, err := n.StateDir(0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := n.Exec(context.Background(), "kube-vrrp-agent",
			"env", "POD_NAME=kube-vrrp-"+n.Name, "POD_NAMESPACE="+cluster.Namespace,
			"nice", "-n", "-10", bin, "agent", "--state-dir", state, "--node-name", n.Name,
			"--namespace", cluster.Namespace, "--kubeconfig", kubeconfig, "--metrics-bind-address", "0",
			"--health-probe-bind-address", "0", "--log-format", "json", "--handoff-timeout", handoffBound.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop() })
		return p
	}
	agents := map[string]*lab.Proc{n1.Name: start(n1), n2.Name: start(n2)}
	v := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:                  61,
			Addresses:             []string{handoffVIP.String()},
			AdvertisementInterval: &v1alpha1.Duration{Duration: 100 * time.Millisecond},
			Nodes:                 []v1alpha1.NodeOverride{{Name: n1.Name, Priority: ptr[int32](110)}, {Name: n2.Name, Priority: ptr[int32](100)}},
		},
	}
	if err := k8s.Create(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitSoleHolder(l.Nodes(), handoffVIP, n1, 500*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}

	// A rolling update: SIGTERM to an outdated pod's agent, then its replacement.
	watch := watchHolder(n2)
	conns := startConnLoad(t, l.Client(), handoffConns)
	load := l.StartHTTPLoad(handoffWeb, lab.HTTPLoadOptions{Interval: 10 * time.Millisecond, Timeout: time.Second})
	if _, err := load.WaitServed(n1.Name, settle); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	signalled := time.Now()
	if err := agents[n1.Name].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := agents[n1.Name].Wait(5 * time.Second); err != nil {
		t.Fatalf("n1 agent after SIGTERM: %v\n%s", err, agents[n1.Name].Tail(20))
	}
	exited := time.Now()
	if log := agents[n1.Name].Log(); !strings.Contains(log, `"msg":"stopping for a restart: handing the VIPs to the new agent"`) ||
		!strings.Contains(log, `"msg":"handed over to the successor"`) {
		t.Fatalf("n1's agent did not hand off at SIGTERM:\n%s", agents[n1.Name].Tail(20))
	}
	agents[n1.Name] = start(n1)
	if err := agents[n1.Name].WaitLog(`"reason":"Resumed"`, 0, handoffBound); err != nil {
		t.Fatalf("the new agent did not resume: %v\n%s", err, agents[n1.Name].Tail(20))
	}
	resumed := time.Now()
	t.Logf("SIGTERM to exit %s (the revision check included), exit to the new agent's Resumed %s",
		exited.Sub(signalled).Round(time.Millisecond), resumed.Sub(exited).Round(time.Millisecond))
	time.Sleep(handoffBound + time.Second)
	res := load.Stop()
	requests, errs, served := conns.stop()
	_, first := watch.stop()
	t.Logf("new connections: %s; long-lived: %d requests, served by %v", res, requests, served)
	if !first.IsZero() {
		t.Errorf("n2 held %s %s after SIGTERM: the VIP moved", handoffVIP.Addr(), first.Sub(signalled).Round(time.Millisecond))
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d long-lived connections broke: %s", len(errs), handoffConns, strings.Join(errs, "; "))
	}
	if n := res.Failed(); n > 0 {
		t.Errorf("%d new requests failed: %v", n, res.Errors())
	}

	// The replacement's pod is at the newest revision: its SIGTERM is final.
	p := pods[n1.Name]
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Labels[appsv1.ControllerRevisionHashLabelKey] = "new"
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	final := time.Now()
	if err := agents[n1.Name].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitHolders(l.Nodes(), handoffVIP, []*lab.Node{n2}, 2*time.Second); err != nil {
		t.Errorf("after a final SIGTERM: %v", err)
	}
	t.Logf("final SIGTERM: n2 sole holder after %s", time.Since(final).Round(time.Millisecond))
	if err := agents[n1.Name].Wait(5 * time.Second); err != nil {
		t.Errorf("n1 agent after the final SIGTERM: %v", err)
	}
	if log := agents[n1.Name].Log(); !strings.Contains(log, `"msg":"stopping: handing the VIPs over to the backups"`) ||
		strings.Contains(log, `"msg":"handed over to the successor"`) {
		t.Errorf("n1's agent handed off at a final SIGTERM:\n%s", agents[n1.Name].Tail(20))
	}
}
