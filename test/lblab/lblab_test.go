package lblab_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

const (
	// nice is the niceness of the agents, the controller, the control plane and the test: on
	// a busy machine a speaker stalled beyond Master_Down_Interval loses its role, which is
	// not what this test is about.
	nice = -10
	// settle bounds "happens at all" waits: far above any VRRP timer or reconcile.
	settle = 15 * time.Second
	// maxOutage bounds the client's outage after the MASTER's link is cut: the pool's
	// VirtualIPs take the default advert interval (VRRPv3, 100 ms), whose Master_Down_Interval
	// is about 0.36 s; the bound is generous for a loaded machine (the figure is logged).
	maxOutage = 3 * time.Second
	// lbRole is the label of the nodes the pool's template selects.
	lbRole = "node-role.kubernetes.io/lb"
)

// The pool's IPv4 addresses and VRIDs: the n-th address has the n-th VRID.
var (
	poolFirst = netip.MustParseAddr("198.18.0.100")
	poolRange = "198.18.0.100-198.18.0.109"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "lblab tests:", err)
		}
	}
	os.Exit(m.Run())
}

type env struct {
	l          *lab.Lab
	cp         *cluster.ControlPlane
	k8s        client.Client
	nodes      []*lab.Node
	agents     map[string]*lab.Proc
	controller *lab.Proc
}

// TestLoadBalancer: a Service of type LoadBalancer of class kubevrrp.io/vrrp on three real
// agents and the real controller, each under its generated RBAC.
func TestLoadBalancer(t *testing.T) {
	privtest.Require(t)
	if testing.Short() {
		t.Skip("starts kube-apiserver, three agents and the controller; skipped in -short mode")
	}
	envtestassets.Require(t)
	ctx := t.Context()
	e := newEnv(t)

	pool := &v1alpha1.VirtualIPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.VirtualIPPoolSpec{
		IPv4: &v1alpha1.IPv4Pool{Addresses: []string{poolRange}, PrefixLength: ptr.To[int32](24),
			VRIDs: v1alpha1.VRIDRange{First: 100, Last: 109}},
		Template: v1alpha1.VirtualIPTemplate{NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{lbRole: ""}}},
	}}
	if err := e.k8s.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.ServiceSpec{
		Type:              corev1.ServiceTypeLoadBalancer,
		LoadBalancerClass: ptr.To(v1alpha1.LoadBalancerClass),
		Selector:          map[string]string{"app": "web"},
		Ports:             []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
	}}
	created := time.Now()
	if err := e.k8s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}

	// The address in status.loadBalancer.ingress, the first of the pool.
	addr, err := e.waitIngress(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Service created -> ingress %s: %v", addr, time.Since(created).Round(time.Millisecond))
	if addr != poolFirst {
		t.Errorf("ingress %s, want the pool's first address %s", addr, poolFirst)
	}
	vip := netip.PrefixFrom(addr, 24)
	vipName := lbpool.Name(addr)

	// The VirtualIP's MASTER holds it, no other node does, and the client reaches that node.
	master, err := e.waitMaster(ctx, vipName, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	m := e.l.NodeByName(master)
	if err := lab.WaitSoleHolder(e.nodes, vip, m, 200*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	t.Logf("Service created -> %s bound on the MASTER %s (netlink): %v", vip, master, time.Since(created).Round(time.Millisecond))
	if who, err := e.l.WhoAnswers(addr, settle); err != nil || who != master {
		t.Fatalf("the client reaches %s at %q (%v), want the MASTER %s", addr, who, err, master)
	}
	if err := e.l.Client().Ping(addr, 3); err != nil {
		t.Fatalf("client ping %s: %v", addr, err)
	}

	// A link cut of the MASTER: another node takes the address over, the client follows.
	others := slices.DeleteFunc(slices.Clone(e.nodes), func(n *lab.Node) bool { return n == m })
	out, err := e.l.MeasureOutage(ctx, addr, m.CutLink, lab.OutageOptions{Timeout: settle})
	t.Cleanup(func() { _ = m.RestoreLink() })
	if err != nil {
		t.Fatalf("link cut of the MASTER %s: %v (%s)", master, err, out.Result)
	}
	t.Logf("link cut of the MASTER %s: client outage %v (%d probes of 10 ms lost), %s -> %s",
		master, out.Duration.Round(time.Millisecond), out.Lost, out.Before, out.After)
	if out.Before != master || out.After == master || out.After == "" {
		t.Errorf("the client was served by %s before the cut and by %q after, want %s then another node", out.Before, out.After, master)
	}
	if out.Duration > maxOutage {
		t.Errorf("client outage %v after the link cut, want at most %v", out.Duration, maxOutage)
	}
	next, err := lab.WaitMaster(others, vip, settle)
	if err != nil {
		t.Fatal(err)
	}
	if next.Name != out.After {
		t.Errorf("%s holds %s, but %s answered the client", next, addr, out.After)
	}
	// The nodes still on the LAN report the new MASTER (the API server is on the LAN too).
	if _, err := e.waitMaster(ctx, vipName, func(s string) error {
		if s != next.Name {
			return fmt.Errorf("status.master %q, want %s", s, next.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The link back: the isolated node, MASTER on its side all along, meets the other MASTER
	// and one of them yields.
	if err := m.RestoreLink(); err != nil {
		t.Fatal(err)
	}
	after, err := lab.WaitMaster(e.nodes, vip, settle)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitSoleHolder(e.nodes, vip, after, 500*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	if who, err := e.l.WhoAnswers(addr, settle); err != nil || who != after.Name {
		t.Fatalf("after the link came back the client reaches %s at %q (%v), want %s, which holds it", addr, who, err, after)
	}
	t.Logf("link restored: %s holds %s", after, addr)

	// Deleting the Service releases the address: VirtualIP gone, unbound on every node, the
	// pool's count back to zero.
	deleted := time.Now()
	if err := e.k8s.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, settle, func() error {
		v := &v1alpha1.VirtualIP{}
		err := e.k8s.Get(ctx, types.NamespacedName{Name: vipName}, v)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("VirtualIP %s still exists (deletion %v)", vipName, v.DeletionTimestamp)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Service deleted -> VirtualIP %s gone: %v", vipName, time.Since(deleted).Round(time.Millisecond))
	if err := lab.WaitHolders(e.nodes, vip, nil, settle); err != nil {
		t.Fatal(err)
	}
	t.Logf("Service deleted -> %s unbound everywhere: %v", addr, time.Since(deleted).Round(time.Millisecond))
	if err := poll(ctx, settle, func() error {
		p := &v1alpha1.VirtualIPPool{}
		if err := e.k8s.Get(ctx, types.NamespacedName{Name: pool.Name}, p); err != nil {
			return err
		}
		if p.Status.IPv4 == nil || p.Status.IPv4.Allocated != 0 || p.Status.IPv4.Available != 10 {
			return fmt.Errorf("pool status %+v, want 0 allocated and 10 available", p.Status.IPv4)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Nothing was refused by the API server: each program's role is enough.
	for name, p := range e.procs() {
		if strings.Contains(strings.ToLower(p.Log()), "forbidden") {
			t.Errorf("%s was refused by the API server:\n%s", name, p.Tail(20))
		}
	}
}

// newEnv starts the lab, the control plane, an agent on each of three nodes and the
// controller in the control plane's namespace.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	bin := lab.KubeVRRPBinary(t)
	l := lab.New(t, lab.Options{Nodes: 3, Nice: nice})
	cp := cluster.New(t, l, cluster.Options{Nice: nice})
	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cp.InstallLBController(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cp.RegisterNodes(ctx, l.Nodes(), map[string]string{lbRole: ""}); err != nil {
		t.Fatal(err)
	}
	agentKubeconfig, err := cp.AgentKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{l: l, cp: cp, k8s: cp.Client(), nodes: l.Nodes(), agents: map[string]*lab.Proc{}}
	for _, n := range e.nodes {
		state, err := n.StateDir(0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := n.Exec(context.Background(), "kube-vrrp-agent",
			"nice", "-n", strconv.Itoa(nice), bin, "agent", "--state-dir", state,
			"--node-name", n.Name, "--namespace", cluster.Namespace, "--kubeconfig", agentKubeconfig,
			"--metrics-bind-address", "0", "--log-format", "json", "--log-level", "debug")
		if err != nil {
			t.Fatal(err)
		}
		e.agents[n.Name] = p
		// Before the control plane's cleanup: the agents stop while the API server answers.
		t.Cleanup(func() { _ = p.Stop() })
	}
	ctrlKubeconfig, err := cp.ServiceAccountKubeconfig(cluster.Namespace, cluster.LBControllerServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	// The controller runs where the API server does, off the nodes whose links the test cuts,
	// as a Deployment's pod would run on some other node.
	e.controller, err = cp.Host.Exec(context.Background(), "kube-vrrp-controller",
		"nice", "-n", strconv.Itoa(nice), bin, "controller", "--kubeconfig", ctrlKubeconfig,
		"--namespace", cluster.Namespace, "--health-probe-bind-address", "127.0.0.1:9404",
		"--log-format", "json", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.controller.Stop() })
	for name, p := range e.procs() {
		want := "kube-vrrp agent running"
		if p == e.controller {
			want = "kube-vrrp controller running"
		}
		if err := p.WaitLog(want, 0, settle); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, p.Tail(20))
		}
	}
	return e
}

func (e *env) procs() map[string]*lab.Proc {
	m := map[string]*lab.Proc{"controller": e.controller}
	for n, p := range e.agents {
		m["agent on "+n] = p
	}
	return m
}

// waitIngress waits until svc's status has one ingress address, with ipMode VIP and the
// condition kubevrrp.io/Allocated True, and returns the address.
func (e *env) waitIngress(ctx context.Context, svc *corev1.Service) (netip.Addr, error) {
	var addr netip.Addr
	err := poll(ctx, settle, func() error {
		s := &corev1.Service{}
		if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(svc), s); err != nil {
			return err
		}
		in := s.Status.LoadBalancer.Ingress
		if len(in) != 1 {
			return fmt.Errorf("ingress %+v, want one address", in)
		}
		a, err := netip.ParseAddr(in[0].IP)
		if err != nil {
			return fmt.Errorf("ingress %+v: %w", in[0], err)
		}
		if in[0].IPMode == nil || *in[0].IPMode != corev1.LoadBalancerIPModeVIP {
			return fmt.Errorf("ingress %+v: ipMode is not VIP", in[0])
		}
		if !meta.IsStatusConditionTrue(s.Status.Conditions, "kubevrrp.io/Allocated") {
			return fmt.Errorf("condition kubevrrp.io/Allocated not True: %+v", s.Status.Conditions)
		}
		addr = a
		return nil
	})
	if err != nil {
		return addr, fmt.Errorf("Service %s/%s: %w\ncontroller:\n%s", svc.Namespace, svc.Name, err, e.controller.Tail(20))
	}
	return addr, nil
}

// waitMaster waits until the VirtualIP name reports a MASTER that ok accepts and returns it.
func (e *env) waitMaster(ctx context.Context, name string, ok func(string) error) (string, error) {
	var master string
	err := poll(ctx, settle, func() error {
		v := &v1alpha1.VirtualIP{}
		if err := e.k8s.Get(ctx, types.NamespacedName{Name: name}, v); err != nil {
			return err
		}
		if v.Status.Master == "" {
			return errors.New("no status.master")
		}
		master = v.Status.Master
		return ok(master)
	})
	if err != nil {
		return "", fmt.Errorf("VirtualIP %s: %w", name, err)
	}
	return master, nil
}

// poll calls f every 20 ms until it succeeds, ctx ends or timeout passes, and returns its
// last error.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
