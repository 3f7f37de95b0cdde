package cluster_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// requireAssets skips the test when kube-apiserver or etcd is missing, except under CI.
func requireAssets(t *testing.T) {
	t.Helper()
	envtestassets.Require(t)
	if testing.Short() {
		t.Skip("starts kube-apiserver; skipped in -short mode")
	}
}

// TestControlPlane starts etcd and kube-apiserver in a lab, installs kube-vrrp's CRD and
// RBAC, registers the nodes, and checks: a node namespace reaches the API server over the
// bridge with the agent's kubeconfig; the agent identity gets exactly what the generated
// role grants; the API server stops and comes back with etcd's data.
func TestControlPlane(t *testing.T) {
	privtest.Require(t)
	requireAssets(t)
	ctx := t.Context()
	l := lab.New(t, lab.Options{Nodes: 2})
	cp := cluster.New(t, l, cluster.Options{})
	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cp.RegisterNodes(ctx, l.Nodes(), map[string]string{"lab": "yes"}); err != nil {
		t.Fatal(err)
	}
	admin := cp.Client()
	var n1 corev1.Node
	if err := admin.Get(ctx, types.NamespacedName{Name: "n1"}, &n1); err != nil {
		t.Fatal(err)
	}
	if got := n1.Status.Addresses[0]; got.Type != corev1.NodeInternalIP || got.Address != "198.18.0.11" {
		t.Errorf("n1 first address = %v, want InternalIP 198.18.0.11", got)
	}
	if len(n1.Status.Conditions) != 1 || n1.Status.Conditions[0].Status != corev1.ConditionTrue || n1.Labels["lab"] != "yes" {
		t.Errorf("n1 = labels %v, conditions %v; want lab=yes and Ready", n1.Labels, n1.Status.Conditions)
	}

	// The agent's kubeconfig, used from node n2's namespace: the path an agent takes.
	path, err := cp.AgentKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Impersonate.UserName != cluster.AgentUser {
		t.Fatalf("agent kubeconfig impersonates %q, want %q", cfg.Impersonate.UserName, cluster.AgentUser)
	}
	n2 := l.Node(2)
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := n2.InNetns(func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	scheme, err := cluster.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	agent, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Granted: read VirtualIPs and Nodes, and get Secrets in its namespace by name (never list
	// or watch them: it reads only those VirtualIPs reference).
	if err := agent.List(ctx, &v1alpha1.VirtualIPList{}); err != nil {
		t.Errorf("agent lists VirtualIPs: %v", err)
	}
	if err := agent.List(ctx, &corev1.NodeList{}); err != nil {
		t.Errorf("agent lists Nodes: %v", err)
	}
	if err := agent.List(ctx, &corev1.SecretList{}, client.InNamespace(cluster.Namespace)); !apierrors.IsForbidden(err) {
		t.Errorf("agent lists Secrets of %s: %v, want forbidden", cluster.Namespace, err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: cluster.Namespace}, StringData: map[string]string{"password": "probe"}}
	if err := admin.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := agent.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); err != nil {
		t.Errorf("agent reads a Secret of %s: %v", cluster.Namespace, err)
	}
	// Not granted: writing VirtualIPs, Secrets elsewhere, changing Nodes, Leases and core Events
	// (nothing is leader-elected).
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v1alpha1.VirtualIPSpec{VRID: 1, Addresses: []string{"198.18.0.100/24"}}}
	for what, err := range map[string]error{
		"create a VirtualIP":              agent.Create(ctx, vip),
		"list Secrets of default":         agent.List(ctx, &corev1.SecretList{}, client.InNamespace("default")),
		"update a Node":                   agent.Update(ctx, &n1),
		"create a Lease in default":       agent.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}}),
		"create a Lease in its namespace": agent.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: cluster.Namespace}}),
		"create a core Event":             agent.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: cluster.Namespace}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n1"}}),
		"delete a Secret":                 agent.Delete(ctx, secret.DeepCopy()),
		"list Secrets cluster-wide":       agent.List(ctx, &corev1.SecretList{}),
		"create a Namespace":              agent.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nope"}}),
		"read the ServiceAccount key":     agent.Get(ctx, types.NamespacedName{Namespace: "kube-system", Name: "x"}, &corev1.Secret{}),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("agent may %s: got %v, want forbidden", what, err)
		}
	}

	// Down and back: requests fail while it is down, the data survives in etcd.
	if err := cp.StopAPIServer(); err != nil {
		t.Fatalf("stop kube-apiserver: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = admin.Get(short, types.NamespacedName{Name: "n1"}, &corev1.Node{})
	cancel()
	if err == nil {
		t.Fatal("the API server answers after StopAPIServer")
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Logf("while down: %v", err)
	}
	if err := cp.StartAPIServer(ctx); err != nil {
		t.Fatalf("start kube-apiserver again: %v", err)
	}
	if err := admin.Get(ctx, types.NamespacedName{Name: "n2"}, &corev1.Node{}); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	if err := agent.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); err != nil {
		t.Errorf("the Secret, read by the agent, after the restart: %v", err)
	}
}
