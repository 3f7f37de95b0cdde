//go:build linux

package envtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers/loadbalancer"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// TestLoadBalancerLocal: the Service-facing side of `kube-vrrp controller` beyond allocation
// (docs/design.md §7.12), against a real API server, as its ServiceAccount: the members of a
// Service with externalTrafficPolicy Local follow its EndpointSlices in place, bursts
// coalesced; the Service is told which node holds its address; kubectl get vip shows the
// Service. The EndpointSlices are the test's (envtest runs no kube-controller-manager), and so
// is the VirtualIP's status.master, written as an agent writes it.
func TestLoadBalancerLocal(t *testing.T) {
	start := time.Now()
	e := startLBEnv(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller logs:\n%s", e.logs.String())
		}
		if f := e.rec.failures(); len(f) > 0 {
			t.Errorf("requests the API server refused the controller: %v", f)
		}
	})
	e.startController(t, "a", false)
	ensureNamespace(t, e.admin, "lb-local")
	e.createPool(t, lbPool("local", func(p *v1alpha1.VirtualIPPool) {
		ipv4Pool("198.18.20.100-198.18.20.109", 20, 29)(p)
		p.Spec.Template.Nodes = []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[v1alpha1.Priority](200)}}
	}))
	// The holder's Events wait out their rate limit (10 s): alongside the rest.
	t.Run("group", func(t *testing.T) {
		t.Run("externalTrafficPolicy Local", func(t *testing.T) { t.Parallel(); lbLocal(t, e) })
		t.Run("holder Events", func(t *testing.T) { t.Parallel(); lbHolder(t, e) })
	})
	t.Logf("TestLoadBalancerLocal took %s", time.Since(start).Round(time.Millisecond))
}

// lbNodes are the nodes of a cluster the test imagines: lb1..lb3 labelled for the pool's
// template, web1 not; kubelet labels each with kubernetes.io/hostname, its name.
var lbNodes = []struct {
	name   string
	labels map[string]string
}{
	{"lb1", map[string]string{"node-role.kubernetes.io/lb": "", corev1.LabelHostname: "lb1"}},
	{"lb2", map[string]string{"node-role.kubernetes.io/lb": "", corev1.LabelHostname: "lb2"}},
	{"lb3", map[string]string{"node-role.kubernetes.io/lb": "", corev1.LabelHostname: "lb3"}},
	{"web1", map[string]string{corev1.LabelHostname: "web1"}},
}

// runsOn are the nodes of lbNodes that would run v, as the agents decide (desired.Selects).
func runsOn(t *testing.T, v *v1alpha1.VirtualIP) string {
	t.Helper()
	var out []string
	for _, n := range lbNodes {
		ok, err := desired.Selects(v, n.name, n.labels)
		if err != nil {
			t.Fatalf("VirtualIP %s: %v", v.Name, err)
		}
		if ok {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, " ")
}

// endpointSlice is an IPv4 EndpointSlice of Service ns/svc with one endpoint per node, ready or
// not (not ready: terminating and not serving).
func endpointSlice(ns, svc string, ready map[string]bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	names := make([]string, 0, len(ready))
	for n := range ready {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.10", i)},
			NodeName:   ptr.To(n),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready[n]), Serving: ptr.To(ready[n]), Terminating: ptr.To(!ready[n])},
		})
	}
	return s
}

// setEndpoints writes the Service's one EndpointSlice (creating it the first time).
func (e *lbEnv) setEndpoints(t *testing.T, ns, svc string, ready map[string]bool) {
	t.Helper()
	want := endpointSlice(ns, svc, ready)
	var cur discoveryv1.EndpointSlice
	err := e.admin.Get(t.Context(), client.ObjectKeyFromObject(want), &cur)
	if err != nil {
		if err := e.admin.Create(t.Context(), want); err != nil {
			t.Fatal(err)
		}
		return
	}
	cur.Endpoints = want.Endpoints
	if err := e.admin.Update(t.Context(), &cur); err != nil {
		t.Fatal(err)
	}
}

func lbLocal(t *testing.T, e *lbEnv) {
	ctx := t.Context()
	svc := e.createService(t, lbService("lb-local", "web", func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Annotations = map[string]string{v1alpha1.AnnotationPool: "local"}
	}))
	ips := e.allocated(t, "lb-local", "web", 1)
	vips := e.vipsOf(t, "lb-local", "web")
	if len(vips) != 1 {
		t.Fatalf("VirtualIPs %d, want 1", len(vips))
	}
	first := vips[0]
	template := v1alpha1.VirtualIPSpec{NodeSelector: lbPool("x", func(*v1alpha1.VirtualIPPool) {}).Spec.Template.NodeSelector,
		Nodes: []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[v1alpha1.Priority](200)}}}
	t.Logf("allocated %v: VirtualIP %s, VRID %d", ips, first.Name, first.Spec.VRID)
	// kubectl get vip shows the Service.
	if got := tableCell(t, e.cfg, first.Name, "Service"); got != "lb-local/web" {
		t.Errorf("kubectl get vip %s: Service %q, want lb-local/web", first.Name, got)
	}

	// members waits until the Service's VirtualIP would run on exactly want, and checks that it
	// is the same object, address and VRID throughout; it returns how long it took.
	members := func(step, want string) (*v1alpha1.VirtualIP, time.Duration) {
		t.Helper()
		t0 := time.Now()
		var v v1alpha1.VirtualIP
		eventually(t, wait, step+": the VirtualIP runs on "+want, func() error {
			if err := e.admin.Get(ctx, client.ObjectKeyFromObject(&first), &v); err != nil {
				return err
			}
			if got := runsOn(t, &v); got != want {
				return fmt.Errorf("runs on %q (nodeSelector %s, nodes %d)", got, metav1.FormatLabelSelector(v.Spec.NodeSelector), len(v.Spec.Nodes))
			}
			return nil
		})
		took := time.Since(t0)
		if v.UID != first.UID || v.Spec.VRID != first.Spec.VRID || !slices.Equal(v.Spec.Addresses, first.Spec.Addresses) {
			t.Errorf("%s: VirtualIP %s uid %s vrid %d %v, want the one allocated (uid %s vrid %d %v)", step, v.Name, v.UID, v.Spec.VRID, v.Spec.Addresses,
				first.UID, first.Spec.VRID, first.Spec.Addresses)
		}
		if n := len(e.vipsOf(t, "lb-local", "web")); n != 1 {
			t.Errorf("%s: %d VirtualIPs, want 1", step, n)
		}
		if !equalDeep(v.Spec.Nodes, template.Nodes) {
			t.Errorf("%s: nodes %+v, want the template's overrides", step, v.Spec.Nodes)
		}
		return &v, took
	}

	// No endpoint yet: created narrowed to no node, with the template's members kept.
	v, _ := members("no endpoint", "")
	if v.Annotations[v1alpha1.AnnotationTemplateMembers] == "" {
		t.Errorf("annotations %v: want %s", v.Annotations, v1alpha1.AnnotationTemplateMembers)
	}
	e.setEndpoints(t, "lb-local", "web", map[string]bool{"lb1": true})
	_, took := members("ready on lb1", "lb1")
	t.Logf("an endpoint ready on lb1: the VirtualIP follows in %s", took.Round(time.Millisecond))
	// A node the template does not select gains nothing from an endpoint.
	e.setEndpoints(t, "lb-local", "web", map[string]bool{"lb1": false, "lb2": true, "web1": true})
	_, took = members("ready on lb2 (and web1), lb1 terminating", "lb2")
	t.Logf("the endpoint moved to lb2: the VirtualIP follows in %s", took.Round(time.Millisecond))
	e.setEndpoints(t, "lb-local", "web", map[string]bool{})
	members("no endpoint left", "")

	// A burst of changes (a rollout, a flapping readiness probe): a few writes, and the last
	// state wins.
	v, _ = members("before the burst", "")
	gen := v.Generation
	pattern := []map[string]bool{{"lb1": true}, {"lb2": true}, {"lb1": true, "lb2": true}, {"lb3": true}}
	t0 := time.Now()
	for i := range 40 {
		e.setEndpoints(t, "lb-local", "web", pattern[i%len(pattern)])
		time.Sleep(25 * time.Millisecond)
	}
	e.setEndpoints(t, "lb-local", "web", map[string]bool{"lb2": true, "lb3": true})
	burst := time.Since(t0)
	v, took = members("after the burst", "lb2 lb3")
	writes := v.Generation - gen
	t.Logf("a burst of 41 endpoint changes in %s: %d writes of the VirtualIP; the last state %s after the burst", burst.Round(time.Millisecond), writes, took.Round(time.Millisecond))
	if limit := int64(burst/time.Second) + 3; writes > limit {
		t.Errorf("%d writes of the VirtualIP for a burst of %s, want at most %d (one a second)", writes, burst.Round(time.Millisecond), limit)
	}

	// Back to Cluster: the template's members, and the annotation gone.
	var cur corev1.Service
	if err := e.admin.Get(ctx, client.ObjectKeyFromObject(svc), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	cur.Spec.HealthCheckNodePort = 0
	if err := e.admin.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	v, _ = members("Cluster", "lb1 lb2 lb3")
	if !equalDeep(v.Spec.NodeSelector, template.NodeSelector) || v.Annotations[v1alpha1.AnnotationTemplateMembers] != "" {
		t.Errorf("Cluster: nodeSelector %+v, annotations %v; want the template's, without %s", v.Spec.NodeSelector, v.Annotations, v1alpha1.AnnotationTemplateMembers)
	}
	// And Local again, with the endpoints it has.
	if err := e.admin.Get(ctx, client.ObjectKeyFromObject(svc), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if err := e.admin.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	members("Local again", "lb2 lb3")

}

func equalDeep(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// tableCell reads VirtualIP name as kubectl get prints it (the API server's Table) and returns
// the cell of the column named col.
func tableCell(t *testing.T, cfg *rest.Config, name, col string) string {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/apis/kubevrrp.io/v1alpha1/virtualips/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as a Table: %s: %s", name, resp.Status, body)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for i, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
		if c.Name == col && len(table.Rows) == 1 && i < len(table.Rows[0].Cells) {
			s, _ := table.Rows[0].Cells[i].(string)
			return s
		}
	}
	t.Errorf("kubectl get vip: columns %v, rows %d: no %s", cols, len(table.Rows), col)
	return ""
}

// lbHolder: the Service is told which node holds its address when the VirtualIP's MASTER
// changes, at most once per 10 s, the last holder winning.
func lbHolder(t *testing.T, e *lbEnv) {
	ctx := t.Context()
	e.createService(t, lbService("lb-local", "api", func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationPool: "local"}
	}))
	ip := e.allocated(t, "lb-local", "api", 1)[0]
	vips := e.vipsOf(t, "lb-local", "api")
	if len(vips) != 1 {
		t.Fatalf("VirtualIPs %d, want 1", len(vips))
	}
	name := vips[0].Name
	setMaster := func(node string) {
		t.Helper()
		var v v1alpha1.VirtualIP
		if err := e.admin.Get(ctx, client.ObjectKey{Name: name}, &v); err != nil {
			t.Fatal(err)
		}
		v.Status.Master = node
		if err := e.admin.Status().Update(ctx, &v); err != nil {
			t.Fatal(err)
		}
	}
	// The controller has seen the VirtualIP (it created it): its first MASTER is news.
	setMaster("lb1")
	e.event(t, "lb-local", "api", corev1.EventTypeNormal, loadbalancer.ReasonVIPHeld, ip+" is held by node lb1")
	t0 := time.Now()
	setMaster("lb2")
	setMaster("lb3")
	e.event(t, "lb-local", "api", corev1.EventTypeNormal, loadbalancer.ReasonVIPHeld, ip+" is held by node lb3")
	t.Logf("the holder changed twice within the rate limit: told once, after %s", time.Since(t0).Round(time.Millisecond))
	var list eventsv1.EventList
	if err := e.admin.List(ctx, &list, client.InNamespace("lb-local")); err != nil {
		t.Fatal(err)
	}
	for _, ev := range list.Items {
		if ev.Regarding.Name == "api" && ev.Reason == loadbalancer.ReasonVIPHeld {
			if strings.Contains(ev.Note, "lb2") {
				t.Errorf("Event %q: lb2 held the address only between two Events", ev.Note)
			}
			if ev.Related == nil || ev.Related.Kind != "VirtualIP" || ev.Related.Name != name {
				t.Errorf("Event %q: related %+v, want VirtualIP %s", ev.Note, ev.Related, name)
			}
		}
	}
	if time.Since(t0) < 5*time.Second {
		t.Errorf("the second holder Event came %s after the first, want the rate limit's 10 s", time.Since(t0))
	}
	// Nobody: a Warning.
	setMaster("")
	e.event(t, "lb-local", "api", corev1.EventTypeWarning, loadbalancer.ReasonVIPNotHeld, ip+" is held by no node")
}
