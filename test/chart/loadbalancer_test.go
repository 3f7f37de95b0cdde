package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestLBControllerOffByDefault: without loadBalancer.enabled nothing of the Service controller
// is rendered.
func TestLBControllerOffByDefault(t *testing.T) {
	for _, o := range mustRender(t, defaults).objects {
		if strings.Contains(o.GetName(), "lb-controller") {
			t.Errorf("%s/%s rendered with loadBalancer.enabled false", o.GetKind(), o.GetName())
		}
	}
}

// TestLBController: the Service controller's Deployment (docs/design.md §7.12): its flags, one
// ServiceAccount of its own, no host namespace, non-root, nothing written, and a pod no selector
// of the agents' takes in.
func TestLBController(t *testing.T) {
	r := mustRender(t, nonDefault)
	d := typed[appsv1.Deployment](t, r.find(t, "Deployment", "edge-kube-vrrp-lb-controller"))
	if d.Namespace != "lb-system" || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("namespace %q, replicas %v", d.Namespace, d.Spec.Replicas)
	}
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("containers %d, init containers %d", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	if diff := cmp.Diff([]string{"controller", "--health-probe-bind-address=:9505", "--log-level=debug", "--log-format=text", "--serve-classless"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if c.Image != "registry.example.com/net/kube-vrrp:v9.9.9-rc.1" {
		t.Errorf("image %s: want the agent's", c.Image)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC || len(spec.Volumes) > 0 || len(c.VolumeMounts) > 0 {
		t.Errorf("hostNetwork %v, hostPID %v, hostIPC %v, volumes %v: the controller needs none", spec.HostNetwork, spec.HostPID, spec.HostIPC, spec.Volumes)
	}
	if spec.ServiceAccountName != "edge-kube-vrrp-lb-controller" {
		t.Errorf("serviceAccountName %q: want its own", spec.ServiceAccountName)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		(sc.Privileged != nil && *sc.Privileged) || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("securityContext %+v", sc)
	}
	// Only what the exec of the image's binary needs (its file capabilities), nothing else.
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("capabilities %+v", sc.Capabilities)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9505 {
		t.Errorf("probes %+v %+v, ports %+v", c.LivenessProbe, c.ReadinessProbe, c.Ports)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "POD_NAMESPACE" || c.Env[0].ValueFrom == nil {
		t.Errorf("env %+v: want POD_NAMESPACE (the Lease's namespace)", c.Env)
	}
	if spec.PriorityClassName != "system-cluster-critical" || spec.NodeSelector["node-role.kubernetes.io/control-plane"] != "" ||
		len(spec.Tolerations) != 1 || spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		t.Errorf("priorityClassName %q, nodeSelector %v, tolerations %v, affinity %v", spec.PriorityClassName, spec.NodeSelector, spec.Tolerations, spec.Affinity)
	}
	if got := c.Resources.Limits.Memory().String(); got != "96Mi" {
		t.Errorf("memory limit %s", got)
	}
	// No selector of the agents' takes in the controller's pod, and its own selects it.
	podLabels := labels.Set(d.Spec.Template.Labels)
	ds := r.daemonSet(t, "edge-kube-vrrp")
	if labels.SelectorFromSet(ds.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("the DaemonSet's selector %v takes in the controller's pod %v", ds.Spec.Selector.MatchLabels, podLabels)
	}
	svc := typed[corev1.Service](t, r.find(t, "Service", "edge-kube-vrrp-metrics"))
	if labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("the metrics Service's selector %v takes in the controller's pod", svc.Spec.Selector)
	}
	if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, podLabels)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v: want the new pod up before the old stops (it waits for the Lease)", d.Spec.Strategy)
	}
	typed[corev1.ServiceAccount](t, r.find(t, "ServiceAccount", "edge-kube-vrrp-lb-controller"))
}

// TestLBControllerRBAC: the chart grants the controller exactly its generated rules
// (config/rbac/lb_controller_role.yaml, from the markers of controllers/loadbalancer), the
// Role in the release's namespace, bound to its ServiceAccount alone.
func TestLBControllerRBAC(t *testing.T) {
	objs := readObjects(t, filepath.Join(repoRoot, "config", "rbac", "lb_controller_role.yaml"))
	genCR := typed[rbacv1.ClusterRole](t, findKind(t, objs, "ClusterRole"))
	genRole := typed[rbacv1.Role](t, findKind(t, objs, "Role"))
	r := mustRender(t, nonDefault)
	cr := typed[rbacv1.ClusterRole](t, r.find(t, "ClusterRole", "lb-system-edge-kube-vrrp-lb-controller"))
	role := typed[rbacv1.Role](t, r.find(t, "Role", "edge-kube-vrrp-lb-controller"))
	if diff := cmp.Diff(genCR.Rules, cr.Rules); diff != "" {
		t.Errorf("ClusterRole rules (-generated +chart):\n%s", diff)
	}
	if diff := cmp.Diff(genRole.Rules, role.Rules); diff != "" {
		t.Errorf("Role rules (-generated +chart):\n%s", diff)
	}
	if role.Namespace != "lb-system" {
		t.Errorf("Role in %q, want the release's namespace", role.Namespace)
	}
	subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "edge-kube-vrrp-lb-controller", Namespace: "lb-system"}}
	crb := typed[rbacv1.ClusterRoleBinding](t, r.find(t, "ClusterRoleBinding", cr.Name))
	rb := typed[rbacv1.RoleBinding](t, r.find(t, "RoleBinding", role.Name))
	if diff := cmp.Diff(subjects, crb.Subjects); diff != "" {
		t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(subjects, rb.Subjects); diff != "" {
		t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
	}
	if crb.RoleRef.Name != cr.Name || rb.RoleRef.Name != role.Name {
		t.Errorf("roleRefs %s, %s", crb.RoleRef.Name, rb.RoleRef.Name)
	}
	// The controller writes Services' status only, and the agents no Service at all.
	for _, rule := range cr.Rules {
		if slices.Contains(rule.Resources, "services") && slices.ContainsFunc(rule.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) {
			t.Errorf("the controller may %v services", rule.Verbs)
		}
	}
	for _, o := range r.objects {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" || strings.HasSuffix(o.GetName(), "-lb-controller") {
			continue
		}
		var rules []rbacv1.PolicyRule
		if o.GetKind() == "ClusterRole" {
			rules = typed[rbacv1.ClusterRole](t, o).Rules
		} else {
			rules = typed[rbacv1.Role](t, o).Rules
		}
		for _, rule := range rules {
			for _, res := range rule.Resources {
				if strings.HasPrefix(res, "services") || res == "virtualippools" || res == "*" {
					t.Errorf("%s %s grants %v on %s", o.GetKind(), o.GetName(), rule.Verbs, res)
				}
			}
		}
	}
	gen, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "lb_controller_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(filepath.Join(chartDir, "files", "rbac", "lb_controller_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gen, cp) {
		t.Error("charts/kube-vrrp/files/rbac/lb_controller_role.yaml differs from config/rbac/lb_controller_role.yaml: run make chart")
	}
}

// TestLBControllerSchema: the controller's values are checked too.
func TestLBControllerSchema(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"typo", "loadBalancer: {enable: true}", "enable"},
		{"replicas 0", "loadBalancer: {enabled: true, replicas: 0}", "replicas"},
		{"classless as string", `loadBalancer: {serveClassless: "yes"}`, "serveClassless"},
		{"resources typo", "loadBalancer: {resources: {limit: {memory: 1Gi}}}", "limit"},
		{"health port", "loadBalancer: {healthPort: 0}", "healthPort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", values: tc.values})
			if err == nil {
				t.Fatalf("values %q rendered; want a schema error", tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q: %v", tc.want, err)
			}
		})
	}
}
