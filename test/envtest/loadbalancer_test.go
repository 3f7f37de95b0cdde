//go:build linux

package envtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers/loadbalancer"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// The Service controller (`kube-vrrp controller`, docs/design.md §7.12) against a real
// kube-apiserver of its own: dual-stack Service CIDRs (the package's shared one is IPv4 only,
// and a dual-stack Service needs both), run as its ServiceAccount bound to the generated
// config/rbac/lb_controller_role.yaml, leader-elected as the Deployment runs it.

const (
	lbNamespace = "kube-vrrp"
	lbAccount   = "kube-vrrp-lb-controller"
	lbUser      = "system:serviceaccount:" + lbNamespace + ":" + lbAccount
)

type lbEnv struct {
	admin client.Client
	// cfg is the administrator's configuration.
	cfg *rest.Config
	// sa is the controller's ServiceAccount's configuration (impersonated).
	sa   *rest.Config
	rec  *codeRecorder
	logs *logBuffer
}

// startLBEnv starts the API server, installs the CRDs and the controller's generated role, bound
// to its ServiceAccount.
func startLBEnv(t *testing.T) *lbEnv {
	t.Helper()
	requireAPIServer(t)
	env := &ctrlenvtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: envtestassets.Require(t),
	}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112")
	restCfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the API server: %v", err)
		}
	})
	admin, err := client.New(restCfg, client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := &lbEnv{admin: admin, cfg: restCfg, rec: &codeRecorder{}, logs: &logBuffer{}}
	e.sa = rest.CopyConfig(restCfg)
	e.sa.Impersonate = rest.ImpersonationConfig{UserName: lbUser}
	ctx := t.Context()
	ensureNamespace(t, admin, lbNamespace)
	objs := []client.Object{&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: lbNamespace, Name: lbAccount}}}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: lbNamespace, Name: lbAccount}}
	for _, doc := range documents(t, filepath.Join(repoRoot, "config", "rbac", "lb_controller_role.yaml")) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		switch tm.Kind {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict(doc, &cr); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, &cr, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: cr.Name}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}})
		case "Role":
			var r rbacv1.Role
			if err := yaml.UnmarshalStrict(doc, &r); err != nil {
				t.Fatal(err)
			}
			if r.Namespace != lbNamespace {
				t.Fatalf("the generated Role is in %q, want %q (the chart renders it into the release's namespace)", r.Namespace, lbNamespace)
			}
			objs = append(objs, &r, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: lbNamespace, Name: r.Name}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name}})
		default:
			t.Fatalf("lb_controller_role.yaml: unexpected %s", tm.Kind)
		}
	}
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	eventually(t, wait, "the role in effect", func() error {
		if ok, why := lbAllowed(t, admin, authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: lbNamespace}); !ok {
			return fmt.Errorf("leases: %s", why)
		}
		if ok, why := lbAllowed(t, admin, authorizationv1.ResourceAttributes{Verb: "create", Group: v1alpha1.GroupVersion.Group, Resource: "virtualips"}); !ok {
			return fmt.Errorf("virtualips: %s", why)
		}
		return nil
	})
	return e
}

func lbAllowed(t *testing.T, admin client.Client, ra authorizationv1.ResourceAttributes) (bool, string) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               lbUser,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + lbNamespace, "system:authenticated"},
		ResourceAttributes: &ra,
	}}
	if err := admin.Create(t.Context(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed, sar.Status.Reason + sar.Status.EvaluationError
}

// startController runs `kube-vrrp controller` (loadbalancer.NewManager, leader-elected) as its
// ServiceAccount; stop cancels it (it releases the Lease) and waits for it.
func (e *lbEnv) startController(t *testing.T, name string, serveClassless bool) (stop func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("controller", name)
	mgr, err := loadbalancer.NewManager(e.rec.wrap(e.sa), loadbalancer.Options{Namespace: lbNamespace, LeaderElection: true,
		ServeClassless: serveClassless, HealthProbeBindAddress: "0", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("controller %s: %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("controller %s did not stop", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func lbPool(name string, mut func(*v1alpha1.VirtualIPPool)) *v1alpha1.VirtualIPPool {
	p := &v1alpha1.VirtualIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.VirtualIPPoolSpec{
		Template: v1alpha1.VirtualIPTemplate{NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}}},
	}}
	mut(p)
	return p
}

func ipv4Pool(addrs string, first, last int32) func(*v1alpha1.VirtualIPPool) {
	return func(p *v1alpha1.VirtualIPPool) {
		p.Spec.IPv4 = &v1alpha1.IPv4Pool{Addresses: []string{addrs}, PrefixLength: ptr.To[int32](24), VRIDs: v1alpha1.VRIDRange{First: first, Last: last}}
	}
}

func (e *lbEnv) createPool(t *testing.T, p *v1alpha1.VirtualIPPool) {
	t.Helper()
	if err := e.admin.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.admin.Delete(context.Background(), p) })
}

// lbService is a Service of type LoadBalancer of class kubevrrp.io/vrrp.
func lbService(ns, name string, mut ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{
		Type:              corev1.ServiceTypeLoadBalancer,
		LoadBalancerClass: ptr.To(v1alpha1.LoadBalancerClass),
		Selector:          map[string]string{"app": name},
		Ports:             []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
	}}
	for _, m := range mut {
		m(s)
	}
	return s
}

func (e *lbEnv) createService(t *testing.T, s *corev1.Service) *corev1.Service {
	t.Helper()
	if err := e.admin.Create(t.Context(), s); err != nil {
		t.Fatalf("create Service %s/%s: %v", s.Namespace, s.Name, err)
	}
	return s
}

// allocated waits until the Service's condition is True with n ingress addresses in ipMode VIP,
// and returns them.
func (e *lbEnv) allocated(t *testing.T, ns, name string, n int) []string {
	t.Helper()
	var ips []string
	eventually(t, wait, fmt.Sprintf("Service %s/%s allocated", ns, name), func() error {
		var s corev1.Service
		if err := e.admin.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			return err
		}
		c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ServiceConditionAllocated)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("condition %+v", c)
		}
		ips = nil
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
				return fmt.Errorf("ingress %+v: want ipMode VIP", in)
			}
			ips = append(ips, in.IP)
		}
		if len(ips) != n {
			return fmt.Errorf("ingress %v, want %d addresses", ips, n)
		}
		return nil
	})
	return ips
}

// refused waits until the Service's condition is False with reason and a message containing
// words, with no ingress unless it keeps an address, and a Warning Event of that reason.
func (e *lbEnv) refused(t *testing.T, ns, name, reason, words string) {
	t.Helper()
	eventually(t, wait, fmt.Sprintf("Service %s/%s refused with %s", ns, name, reason), func() error {
		var s corev1.Service
		if err := e.admin.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			return err
		}
		c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ServiceConditionAllocated)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || !strings.Contains(c.Message, words) {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
	e.event(t, ns, name, corev1.EventTypeWarning, reason, words)
}

// event waits for an events.k8s.io Event on the Service.
func (e *lbEnv) event(t *testing.T, ns, name, typ, reason, words string) {
	t.Helper()
	eventually(t, wait, fmt.Sprintf("%s Event %s on %s/%s", typ, reason, ns, name), func() error {
		var list eventsv1.EventList
		if err := e.admin.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var got []string
		for _, ev := range list.Items {
			if ev.Regarding.Kind != "Service" || ev.Regarding.Name != name {
				continue
			}
			got = append(got, ev.Type+" "+ev.Reason+": "+ev.Note)
			if ev.Type == typ && ev.Reason == reason && strings.Contains(ev.Note, words) && ev.ReportingController == loadbalancer.EventsReporter {
				return nil
			}
		}
		return fmt.Errorf("events %q", got)
	})
}

// vipsOf lists the VirtualIPs labelled with the Service.
func (e *lbEnv) vipsOf(t *testing.T, ns, name string) []v1alpha1.VirtualIP {
	t.Helper()
	var list v1alpha1.VirtualIPList
	if err := e.admin.List(t.Context(), &list, client.MatchingLabels{v1alpha1.LabelServiceNamespace: ns, v1alpha1.LabelServiceName: name}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func (e *lbEnv) gone(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, wait, fmt.Sprintf("the VirtualIPs of %s/%s deleted", ns, name), func() error {
		var list v1alpha1.VirtualIPList
		if err := e.admin.List(t.Context(), &list, client.MatchingLabels{v1alpha1.LabelServiceNamespace: ns, v1alpha1.LabelServiceName: name}); err != nil {
			return err
		}
		if len(list.Items) > 0 {
			return fmt.Errorf("%d left", len(list.Items))
		}
		return nil
	})
}

func (e *lbEnv) poolStatus(t *testing.T, name string, allocated, available int32) {
	t.Helper()
	eventually(t, wait, "the status of pool "+name, func() error {
		var p v1alpha1.VirtualIPPool
		if err := e.admin.Get(t.Context(), client.ObjectKey{Name: name}, &p); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready %+v", c)
		}
		if s := p.Status.IPv4; s == nil || s.Allocated != allocated || s.Available != available {
			return fmt.Errorf("ipv4 %+v, want allocated %d, available %d", s, allocated, available)
		}
		return nil
	})
}

// TestLoadBalancer: Services of type LoadBalancer on VirtualIPs, end to end against the API
// server: allocation and release, exhaustion, requested addresses, class filtering, dual-stack,
// a crash between two steps, and 100 Services at once with the controller replaced midway.
func TestLoadBalancer(t *testing.T) {
	start := time.Now()
	e := startLBEnv(t)
	t.Logf("API server up in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller logs:\n%s", e.logs.String())
		}
		// Least privilege: the generated role was all it needed.
		if f := e.rec.failures(); len(f) > 0 {
			t.Errorf("requests the API server refused the controller: %v", f)
		}
	})
	stop := e.startController(t, "a", false)
	t.Run("allocate and release", func(t *testing.T) { lbAllocateRelease(t, e) })
	t.Run("exhaustion", func(t *testing.T) { lbExhaustion(t, e) })
	t.Run("requested address", func(t *testing.T) { lbRequested(t, e) })
	t.Run("dual-stack", func(t *testing.T) { lbDualStack(t, e) })
	stop()
	// Each of the following starts and stops controllers of its own.
	t.Run("class", func(t *testing.T) { lbClass(t, e) })
	t.Run("crash between steps", func(t *testing.T) { lbCrash(t, e) })
	t.Run("100 at once, replaced midway", func(t *testing.T) { lbConcurrent(t, e) })
	t.Run("tight", func(t *testing.T) { lbTight(t, e) })
	t.Logf("TestLoadBalancer took %s", time.Since(start).Round(time.Millisecond))
}

func lbAllocateRelease(t *testing.T, e *lbEnv) {
	ctx := t.Context()
	ensureNamespace(t, e.admin, "lb-a")
	e.createPool(t, lbPool("lan-a", ipv4Pool("198.18.10.100-198.18.10.109", 10, 19)))
	e.poolStatus(t, "lan-a", 0, 10)

	svc := e.createService(t, lbService("lb-a", "web"))
	ips := e.allocated(t, "lb-a", "web", 1)
	if ips[0] != "198.18.10.100" {
		t.Errorf("ingress %v, want the pool's first address", ips)
	}
	vips := e.vipsOf(t, "lb-a", "web")
	if len(vips) != 1 {
		t.Fatalf("VirtualIPs %v, want one", vips)
	}
	v := vips[0]
	if v.Name != "lb-198-18-10-100" || v.Spec.VRID != 10 || !slices.Equal(v.Spec.Addresses, []string{"198.18.10.100/24"}) ||
		v.Labels[v1alpha1.LabelServiceUID] != string(svc.UID) || v.Labels[v1alpha1.LabelPool] != "lan-a" ||
		v.Spec.NodeSelector == nil || v.Spec.NodeSelector.MatchLabels["node-role.kubernetes.io/lb"] != "" {
		t.Errorf("VirtualIP %s: vrid %d, addresses %v, labels %v, nodeSelector %v", v.Name, v.Spec.VRID, v.Spec.Addresses, v.Labels, v.Spec.NodeSelector)
	}
	e.event(t, "lb-a", "web", corev1.EventTypeNormal, loadbalancer.ReasonAllocated, "allocated 198.18.10.100 (VRID 10) from pool lan-a")
	e.poolStatus(t, "lan-a", 1, 9)

	// A type change releases it: no VirtualIP, no ingress, no condition.
	var cur corev1.Service
	if err := e.admin.Get(ctx, client.ObjectKeyFromObject(svc), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Type = corev1.ServiceTypeClusterIP
	cur.Spec.LoadBalancerClass = nil
	for i := range cur.Spec.Ports {
		cur.Spec.Ports[i].NodePort = 0
	}
	if err := e.admin.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	e.gone(t, "lb-a", "web")
	eventually(t, wait, "the status cleared", func() error {
		if err := e.admin.Get(ctx, client.ObjectKeyFromObject(svc), &cur); err != nil {
			return err
		}
		if len(cur.Status.LoadBalancer.Ingress) > 0 || meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ServiceConditionAllocated) != nil {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
	e.event(t, "lb-a", "web", corev1.EventTypeNormal, loadbalancer.ReasonReleased, "released 198.18.10.100 (VRID 10")
	e.poolStatus(t, "lan-a", 0, 10)

	// A delete releases it; the address is free again.
	api := e.createService(t, lbService("lb-a", "api"))
	if ips := e.allocated(t, "lb-a", "api", 1); ips[0] != "198.18.10.100" {
		t.Errorf("api got %v, want the released 198.18.10.100", ips)
	}
	if err := e.admin.Delete(ctx, api); err != nil {
		t.Fatal(err)
	}
	e.gone(t, "lb-a", "api")
	e.poolStatus(t, "lan-a", 0, 10)
}

func lbExhaustion(t *testing.T, e *lbEnv) {
	ctx := t.Context()
	ensureNamespace(t, e.admin, "lb-b")
	e.createPool(t, lbPool("small", ipv4Pool("198.18.11.100-198.18.11.101", 30, 39)))
	first := e.createService(t, lbService("lb-b", "one"))
	e.createService(t, lbService("lb-b", "two"))
	e.allocated(t, "lb-b", "one", 1)
	e.allocated(t, "lb-b", "two", 1)
	e.createService(t, lbService("lb-b", "three"))
	e.refused(t, "lb-b", "three", loadbalancer.ReasonPoolExhausted, "no IPv4 address is left in pool small")
	if vips := e.vipsOf(t, "lb-b", "three"); len(vips) > 0 {
		t.Errorf("an exhausted pool allocated %v", vips)
	}
	e.poolStatus(t, "small", 2, 0)

	// The address one releases goes to three.
	ips := e.allocated(t, "lb-b", "one", 1)
	if err := e.admin.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	got := e.allocated(t, "lb-b", "three", 1)
	t.Logf("three got %s %s after one was deleted", got[0], time.Since(at).Round(time.Millisecond))
	if got[0] != ips[0] {
		t.Errorf("three got %v, want %v, which one released", got, ips)
	}
}

func lbRequested(t *testing.T, e *lbEnv) {
	ctx := t.Context()
	ensureNamespace(t, e.admin, "lb-c")
	e.createPool(t, lbPool("req", ipv4Pool("198.18.12.100-198.18.12.109", 40, 49)))
	request := func(ip string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: ip} }
	}
	e.createService(t, lbService("lb-c", "asks", request("198.18.12.105")))
	if ips := e.allocated(t, "lb-c", "asks", 1); ips[0] != "198.18.12.105" {
		t.Errorf("got %v, want 198.18.12.105", ips)
	}
	if v := e.vipsOf(t, "lb-c", "asks"); len(v) != 1 || v[0].Spec.VRID != 45 {
		t.Errorf("VirtualIPs %v: want one with VRID 45 (the pool's 6th address has its 6th VRID)", v)
	}
	e.createService(t, lbService("lb-c", "outside", request("198.18.99.1")))
	e.refused(t, "lb-c", "outside", loadbalancer.ReasonAddressNotInPool, "198.18.99.1 cannot be given: no pool that admits this Service has it")
	e.createService(t, lbService("lb-c", "taken", request("198.18.12.105")))
	e.refused(t, "lb-c", "taken", loadbalancer.ReasonAddressInUse, "198.18.12.105 is taken: VirtualIP lb-198-18-12-105 has it")
	e.createService(t, lbService("lb-c", "legacy", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.12.107" }))
	if ips := e.allocated(t, "lb-c", "legacy", 1); ips[0] != "198.18.12.107" {
		t.Errorf("spec.loadBalancerIP: got %v, want 198.18.12.107", ips)
	}
	e.createService(t, lbService("lb-c", "bad", request("198.18.12.300")))
	e.refused(t, "lb-c", "bad", loadbalancer.ReasonInvalidRequest, `"198.18.12.300" is not an IP address`)

	// A hand-written VirtualIP's VRID is taken: the address it goes with is refused, and skipped.
	hand := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "hand-written"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 48, Addresses: []string{"198.18.98.1/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "n1"}}}}
	if err := e.admin.Create(ctx, hand); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.admin.Delete(context.Background(), hand) })
	e.createService(t, lbService("lb-c", "vrid", request("198.18.12.108")))
	e.refused(t, "lb-c", "vrid", loadbalancer.ReasonAddressInUse, "198.18.12.108 goes with VRID 48 in pool req, and VirtualIP hand-written has that VRID")
	var auto []string
	for i := range 6 {
		name := fmt.Sprintf("auto-%d", i)
		e.createService(t, lbService("lb-c", name))
		auto = append(auto, e.allocated(t, "lb-c", name, 1)[0])
	}
	if want := []string{"198.18.12.100", "198.18.12.101", "198.18.12.102", "198.18.12.103", "198.18.12.104", "198.18.12.106"}; !slices.Equal(auto, want) {
		t.Errorf("the automatic addresses %v, want %v (not 105 or 107, taken, nor 108, whose VRID is)", auto, want)
	}
	e.createService(t, lbService("lb-c", "auto-6"))
	if ips := e.allocated(t, "lb-c", "auto-6", 1); ips[0] != "198.18.12.109" {
		t.Errorf("auto-6 got %v, want 198.18.12.109, past 108", ips)
	}

	// A request changed to a free address moves the Service there, and frees the old one.
	var s corev1.Service
	if err := e.admin.Get(ctx, types.NamespacedName{Namespace: "lb-c", Name: "asks"}, &s); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "lb-c", Name: "auto-6"}}); err != nil {
		t.Fatal(err)
	}
	e.gone(t, "lb-c", "auto-6")
	s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "198.18.12.109"
	if err := e.admin.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "asks moved to 198.18.12.109", func() error {
		v := e.vipsOf(t, "lb-c", "asks")
		if len(v) != 1 || v[0].Name != "lb-198-18-12-109" {
			return fmt.Errorf("VirtualIPs %d", len(v))
		}
		return nil
	})
	if ips := e.allocated(t, "lb-c", "asks", 1); ips[0] != "198.18.12.109" {
		t.Errorf("got %v", ips)
	}
	// taken was waiting for 105: it has it now.
	if ips := e.allocated(t, "lb-c", "taken", 1); ips[0] != "198.18.12.105" {
		t.Errorf("taken got %v, want 198.18.12.105 once asks left it", ips)
	}
}

func lbDualStack(t *testing.T, e *lbEnv) {
	ensureNamespace(t, e.admin, "lb-d")
	e.createPool(t, lbPool("dual", func(p *v1alpha1.VirtualIPPool) {
		ipv4Pool("198.18.13.100-198.18.13.109", 60, 69)(p)
		p.Spec.IPv6 = &v1alpha1.IPv6Pool{Addresses: []string{"2001:db8:13::100-2001:db8:13::109"}, PrefixLength: ptr.To[int32](64),
			VRIDs: v1alpha1.VRIDRange{First: 60, Last: 69}}
		p.Spec.Template.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"198.18.13.11", "2001:db8:13::11"}}
	}))
	dual := func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	}
	e.createService(t, lbService("lb-d", "both", dual))
	ips := e.allocated(t, "lb-d", "both", 2)
	if !slices.Equal(ips, []string{"2001:db8:13::100", "198.18.13.100"}) {
		t.Errorf("ingress %v, want the pool's first IPv6 and IPv4 addresses, in the Service's family order", ips)
	}
	vips := e.vipsOf(t, "lb-d", "both")
	if len(vips) != 2 {
		t.Fatalf("VirtualIPs %d, want one per family", len(vips))
	}
	for _, v := range vips {
		a, _ := lbpool.AddressOf(&v)
		peer := "198.18.13.11"
		if a.Is6() {
			peer = "2001:db8:13::11"
		}
		// The same VRID in both families: IPv4 and IPv6 groups are apart in VRRP.
		if v.Spec.VRID != 60 || v.Spec.Unicast == nil || !slices.Equal(v.Spec.Unicast.Peers, []string{peer}) {
			t.Errorf("%s: vrid %d, unicast %+v", v.Name, v.Spec.VRID, v.Spec.Unicast)
		}
	}
	e.createService(t, lbService("lb-d", "asks", dual, func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "198.18.13.103, 2001:db8:13::105"}
	}))
	if ips := e.allocated(t, "lb-d", "asks", 2); !slices.Equal(ips, []string{"2001:db8:13::105", "198.18.13.103"}) {
		t.Errorf("ingress %v", ips)
	}
	e.createService(t, lbService("lb-d", "v6only", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "198.18.13.104"}
	}))
	e.refused(t, "lb-d", "v6only", loadbalancer.ReasonInvalidRequest, "an IPv4 address, but the Service's ipFamilies have no IPv4")
}

func lbClass(t *testing.T, e *lbEnv) {
	ensureNamespace(t, e.admin, "lb-e")
	e.createPool(t, lbPool("cls", ipv4Pool("198.18.14.100-198.18.14.109", 70, 79)))
	e.createService(t, lbService("lb-e", "other", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/other") }))
	e.createService(t, lbService("lb-e", "none", func(s *corev1.Service) { s.Spec.LoadBalancerClass = nil }))
	stop := e.startController(t, "b", false)
	e.createService(t, lbService("lb-e", "ours"))
	e.allocated(t, "lb-e", "ours", 1)
	untouched := func(name string) {
		t.Helper()
		var s corev1.Service
		if err := e.admin.Get(t.Context(), types.NamespacedName{Namespace: "lb-e", Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		if len(s.Status.LoadBalancer.Ingress) > 0 || len(s.Status.Conditions) > 0 || len(e.vipsOf(t, "lb-e", name)) > 0 {
			t.Errorf("%s: status %+v: the controller served a Service not of its class", name, s.Status)
		}
	}
	untouched("other")
	untouched("none")
	stop()
	// With --serve-classless it serves the Services of no class too.
	stop = e.startController(t, "c", true)
	e.allocated(t, "lb-e", "none", 1)
	e.allocated(t, "lb-e", "ours", 1)
	untouched("other")
	stop()
}

// lbCrash: a VirtualIP created for a Service whose status was never written (a controller that
// crashed between the two steps) is taken up, not allocated twice; one whose Service is gone
// is deleted.
func lbCrash(t *testing.T, e *lbEnv) {
	ctx := t.Context()
	ensureNamespace(t, e.admin, "lb-f")
	pool := lbPool("crash", ipv4Pool("198.18.15.100-198.18.15.109", 80, 89))
	e.createPool(t, pool)
	// No controller runs: make the half states by hand, then start one.
	svc := e.createService(t, lbService("lb-f", "half"))
	f, _ := lbpool.FamilyOf(pool, 4)
	a, vrid := f.At(3)
	half := lbpool.VirtualIP(pool, f, a, vrid, lbpool.Owner{Namespace: "lb-f", Name: "half", UID: string(svc.UID)})
	orphan := lbpool.VirtualIP(pool, f, netip.MustParseAddr("198.18.15.101"), 81, lbpool.Owner{Namespace: "lb-f", Name: "gone", UID: "6c1f7a47-0000-4000-8000-000000000000"})
	for _, v := range []*v1alpha1.VirtualIP{half, orphan} {
		if err := e.admin.Create(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	defer e.startController(t, "f", false)()
	if ips := e.allocated(t, "lb-f", "half", 1); ips[0] != a.String() {
		t.Errorf("half: ingress %v, want %s, the VirtualIP it had", ips, a)
	}
	if v := e.vipsOf(t, "lb-f", "half"); len(v) != 1 {
		t.Errorf("half has %d VirtualIPs, want the one it had", len(v))
	}
	e.gone(t, "lb-f", "gone")
}

// lbConcurrent: 100 Services created at once while no controller runs; one starts, another
// waits for the Lease, the first stops midway (in the middle of a reconcile or not), the second
// finishes. Every Service has its own address and VRID, every VirtualIP a live Service, nothing
// is left over.
func lbConcurrent(t *testing.T, e *lbEnv) {
	ctx := t.Context()
	const n = 100
	ensureNamespace(t, e.admin, "lb-g")
	e.createPool(t, lbPool("many", ipv4Pool("198.18.16.0/25", 100, 227)))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 10 {
		wg.Go(func() {
			for i := range work {
				if err := e.admin.Create(ctx, lbService("lb-g", fmt.Sprintf("svc-%03d", i))); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	start, before := time.Now(), e.rec.total()
	stopFirst := e.startController(t, "d", false)
	e.startController(t, "e", false)
	eventually(t, wait, "a third allocated", func() error {
		var list v1alpha1.VirtualIPList
		if err := e.admin.List(ctx, &list, client.MatchingLabels{v1alpha1.LabelPool: "many"}); err != nil {
			return err
		}
		if len(list.Items) < n/3 {
			return fmt.Errorf("%d", len(list.Items))
		}
		return nil
	})
	stopFirst()
	t.Logf("controller d stopped after %s", time.Since(start).Round(time.Millisecond))

	var services corev1.ServiceList
	eventually(t, 45*time.Second, "every Service allocated", func() error {
		if err := e.admin.List(ctx, &services, client.InNamespace("lb-g")); err != nil {
			return err
		}
		waiting := 0
		for _, s := range services.Items {
			c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ServiceConditionAllocated)
			if c == nil || c.Status != metav1.ConditionTrue || len(s.Status.LoadBalancer.Ingress) != 1 {
				waiting++
			}
		}
		if waiting > 0 {
			return fmt.Errorf("%d of %d waiting", waiting, len(services.Items))
		}
		return nil
	})
	t.Logf("%d Services allocated in %s, across a change of leader; the controllers' requests: %s", n, time.Since(start).Round(time.Millisecond),
		e.rec.summary(before))

	var vips v1alpha1.VirtualIPList
	if err := e.admin.List(ctx, &vips, client.MatchingLabels{v1alpha1.LabelPool: "many"}); err != nil {
		t.Fatal(err)
	}
	byUID := map[string]corev1.Service{}
	addrs := map[string]string{}
	for _, s := range services.Items {
		byUID[string(s.UID)] = s
		ip := s.Status.LoadBalancer.Ingress[0].IP
		if prev, dup := addrs[ip]; dup {
			t.Errorf("%s and %s both have %s", prev, s.Name, ip)
		}
		addrs[ip] = s.Name
	}
	if len(vips.Items) != n {
		t.Errorf("%d VirtualIPs for %d Services: something leaked or is missing", len(vips.Items), n)
	}
	vrids := map[int32]string{}
	for _, v := range vips.Items {
		s, ok := byUID[v.Labels[v1alpha1.LabelServiceUID]]
		if !ok {
			t.Errorf("VirtualIP %s belongs to no Service", v.Name)
			continue
		}
		if prev, dup := vrids[v.Spec.VRID]; dup {
			t.Errorf("VRID %d is %s's and %s's", v.Spec.VRID, prev, v.Name)
		}
		vrids[v.Spec.VRID] = v.Name
		a, _ := lbpool.AddressOf(&v)
		if s.Status.LoadBalancer.Ingress[0].IP != a.String() || v.Labels[v1alpha1.LabelServiceName] != s.Name {
			t.Errorf("VirtualIP %s (%s) is labelled %s, whose ingress is %s", v.Name, a, s.Name, s.Status.LoadBalancer.Ingress[0].IP)
		}
	}
	e.poolStatus(t, "many", n, 128-n)

	// Deleting them all releases everything.
	if err := e.admin.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace("lb-g")); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	eventually(t, wait, "every VirtualIP released", func() error {
		if err := e.admin.List(ctx, &vips, client.MatchingLabels{v1alpha1.LabelPool: "many"}); err != nil {
			return err
		}
		if len(vips.Items) > 0 {
			return fmt.Errorf("%d left", len(vips.Items))
		}
		return nil
	})
	e.poolStatus(t, "many", 0, 128)
}

// lbTight: the controller's role grants what docs/design.md §7.12 lists and nothing else, and
// the agent's role (config/rbac/role.yaml) grants no write of a Service.
func lbTight(t *testing.T, e *lbEnv) {
	group := v1alpha1.GroupVersion.Group
	for _, c := range []struct {
		ra   authorizationv1.ResourceAttributes
		want bool
	}{
		{authorizationv1.ResourceAttributes{Verb: "watch", Resource: "services"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Resource: "services", Subresource: "status", Namespace: "web"}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: group, Resource: "virtualips"}, true},
		{authorizationv1.ResourceAttributes{Verb: "delete", Group: group, Resource: "virtualips"}, true},
		// The members of a Service's VirtualIPs follow its endpoints (externalTrafficPolicy
		// Local), in place.
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: group, Resource: "virtualips"}, true},
		{authorizationv1.ResourceAttributes{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: group, Resource: "virtualippools", Subresource: "status"}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "web"}, true},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: lbNamespace}, true},

		{authorizationv1.ResourceAttributes{Verb: "update", Resource: "services", Namespace: "web"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Resource: "services", Namespace: "web"}, false},
		{authorizationv1.ResourceAttributes{Verb: "delete", Resource: "services", Namespace: "web"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: group, Resource: "virtualips"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: "web"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: "web"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "endpoints", Namespace: "web"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: group, Resource: "virtualips", Subresource: "status"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: group, Resource: "virtualippools"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: group, Resource: "virtualippools"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: group, Resource: "virtualipmembers"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: lbNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "nodes"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods", Namespace: lbNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "events", Namespace: "web"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"}, false},
	} {
		if got, why := lbAllowed(t, e.admin, c.ra); got != c.want {
			t.Errorf("%+v: allowed %v, want %v (%s)", c.ra, got, c.want, why)
		}
	}
	for _, doc := range documents(t, filepath.Join(repoRoot, "config", "rbac", "role.yaml")) {
		var role struct {
			Kind  string              `json:"kind"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal(doc, &role); err != nil {
			t.Fatal(err)
		}
		for _, r := range role.Rules {
			for _, res := range r.Resources {
				if strings.HasPrefix(res, "services") || res == "virtualippools" || (res == "virtualips" && slices.Contains(r.Verbs, "create")) {
					t.Errorf("the agent's %s grants %v on %s: the agent writes no Service, pool or VirtualIP", role.Kind, r.Verbs, res)
				}
			}
		}
	}
}

// summary counts the recorded requests from the from-th on, by method, resource and status code.
func (r *codeRecorder) summary(from int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := map[string]int{}
	for _, c := range r.codes[from:] {
		parts := strings.Split(strings.Trim(c.path, "/"), "/")
		res := ""
		for i, p := range parts {
			if p == "services" || p == "virtualips" || p == "virtualippools" || p == "events" || p == "leases" {
				res = p
				if i+2 < len(parts) {
					res += "/" + parts[i+2]
				}
			}
		}
		counts[fmt.Sprintf("%s %s %d", c.method, res, c.code)]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d; ", k, counts[k])
	}
	return b.String()
}
