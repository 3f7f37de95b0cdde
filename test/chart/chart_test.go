package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// defaults is helm install kube-vrrp charts/kube-vrrp -n kube-vrrp, as docs/design.md §1.3 says.
var defaults = renderOptions{name: "kube-vrrp", namespace: "kube-vrrp"}

// nonDefault changes every value the chart has, in a namespace and under a release name
// that are not the chart's.
var nonDefault = renderOptions{name: "edge", namespace: "lb-system", values: `
image:
  repository: registry.example.com/net/kube-vrrp
  tag: v9.9.9-rc.1
  pullPolicy: Always
imagePullSecrets: [{name: regcred}]
serviceAccount:
  create: true
  name: vrrp-agent
  annotations: {example.com/owner: network-team}
nodeSelector:
  node-role.kubernetes.io/lb: ""
rbac:
  secretNames: [vrrp-auth, vrrp-auth-v6]
tolerations:
  - key: node-role.kubernetes.io/lb
    operator: Exists
    effect: NoSchedule
  - key: dedicated
    operator: Equal
    value: lb
    effect: NoExecute
    tolerationSeconds: 60
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/os, operator: In, values: [linux]}
resources:
  requests: {cpu: 50m, memory: 64Mi}
  limits: {cpu: "1", memory: 128Mi}
logLevel: debug
logFormat: text
probes:
  exec:
    enabled: true
metrics:
  port: 9500
  bindAddress: "::"
  certSecret: kube-vrrp-metrics-tls
  reader:
    subjects: [{kind: ServiceAccount, name: prometheus-k8s, namespace: monitoring}]
  service:
    enabled: true
    annotations: {prometheus.io/scrape: "true"}
  serviceMonitor:
    enabled: true
    labels: {release: prometheus}
    interval: 15s
    scrapeTimeout: 5s
    tlsConfig:
      ca: {secret: {name: kube-vrrp-metrics-ca, key: ca.crt}}
      serverName: kube-vrrp-metrics
    relabelings:
      - {sourceLabels: [__meta_kubernetes_pod_node_name], targetLabel: instance}
    metricRelabelings:
      - {sourceLabels: [__name__], regex: go_.*, action: drop}
health:
  port: 9501
loadBalancer:
  enabled: true
  serveClassless: true
  replicas: 2
  healthPort: 9505
  resources:
    requests: {cpu: 20m, memory: 40Mi}
    limits: {memory: 96Mi}
  priorityClassName: system-cluster-critical
  nodeSelector: {node-role.kubernetes.io/control-plane: ""}
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 1
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector: {matchLabels: {app.kubernetes.io/name: kube-vrrp-lb-controller}}
hostPID: false
statusPolicy:
  enabled: false
priorityClassName: ""
terminationGracePeriodSeconds: 60
handoff:
  timeout: 20s
updateStrategy:
  maxUnavailable: 10%
podAnnotations: {example.com/scrape: "yes"}
podLabels: {team: network}
extraVolumes:
  - name: haproxy-run
    hostPath: {path: /run/haproxy, type: DirectoryOrCreate}
extraVolumeMounts:
  - {name: haproxy-run, mountPath: /run/haproxy, readOnly: true}
extraArgs: ["--kubeconfig=/etc/kube-vrrp/kubeconfig"]
`}

func TestLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []renderOptions{defaults, nonDefault} {
		t.Run(o.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(o.values))
			if err != nil {
				t.Fatal(err)
			}
			l := lint.AllWithKubeVersionAndSchemaValidation(chartDir, vals, o.namespace, kv, false)
			for _, m := range l.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint: %v", m)
				} else {
					t.Logf("helm lint: %v", m)
				}
			}
		})
	}
}

// leastPrivilege is the agent container's securityContext (docs/design.md §7.10), whatever the
// values.
func checkLeastPrivilege(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("the agent container has no securityContext")
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("runAsNonRoot is not true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("runAsUser = %v, want a non-root uid (the image's 65532)", sc.RunAsUser)
	} else if *sc.RunAsUser != 65532 {
		t.Errorf("runAsUser = %d, want the image's 65532", *sc.RunAsUser)
	}
	if sc.RunAsGroup == nil || *sc.RunAsGroup == 0 {
		t.Errorf("runAsGroup = %v, want a non-root gid", sc.RunAsGroup)
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("privileged is not false")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil {
		t.Fatal("no capabilities")
	}
	if diff := cmp.Diff([]corev1.Capability{"ALL"}, sc.Capabilities.Drop); diff != "" {
		t.Errorf("capabilities.drop (-want +got):\n%s", diff)
	}
	add := slices.Clone(sc.Capabilities.Add)
	slices.Sort(add)
	if diff := cmp.Diff([]corev1.Capability{"NET_ADMIN", "NET_RAW"}, add); diff != "" {
		t.Errorf("capabilities.add (-want +got):\n%s", diff)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	}
	if sc.SELinuxOptions != nil || sc.WindowsOptions != nil || sc.ProcMount != nil || sc.AppArmorProfile != nil {
		t.Errorf("unexpected securityContext settings: %+v", sc)
	}
}

// checkPodBasics checks what every agent pod needs, whatever the values: metricsPort and
// healthPort are the two ports the agent serves.
// checkStateDir checks the agent's state directory: a hostPath on the node's /run, mounted in
// the agent and in the init container that gives it to the agent's user, which runs as root
// with CAP_CHOWN and nothing else it could use (NET_ADMIN and NET_RAW sit in its bounding set
// only so that the kernel runs the binary, whose file capabilities they are), read-only root,
// no privilege escalation, and does exactly that one thing.
func checkStateDir(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "state" })
	if i < 0 || spec.Volumes[i].HostPath == nil || spec.Volumes[i].HostPath.Path != "/run/kube-vrrp" ||
		spec.Volumes[i].HostPath.Type == nil || *spec.Volumes[i].HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Fatalf("volumes %+v: want state, a hostPath /run/kube-vrrp (DirectoryOrCreate)", spec.Volumes)
	}
	mount := corev1.VolumeMount{Name: "state", MountPath: "/var/run/kube-vrrp"}
	c := spec.Containers[0]
	isMount := func(m corev1.VolumeMount) bool { return cmp.Equal(m, mount) }
	if !slices.ContainsFunc(c.VolumeMounts, isMount) || !slices.Contains(c.Args, "--state-dir=/var/run/kube-vrrp") {
		t.Errorf("agent mounts %+v, args %s: want the state volume at /var/run/kube-vrrp and --state-dir there", c.VolumeMounts, quote(c.Args))
	}
	ic := spec.InitContainers[0]
	if diff := cmp.Diff([]string{"state-dir", "--owner=65532:65532", "/var/run/kube-vrrp"}, ic.Args); diff != "" {
		t.Errorf("init container args (-want +got):\n%s", diff)
	}
	if ic.Image != c.Image || len(ic.VolumeMounts) != 1 || !isMount(ic.VolumeMounts[0]) {
		t.Errorf("init container image %s mounts %+v: want the agent's image and the state volume only", ic.Image, ic.VolumeMounts)
	}
	sc := ic.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.Privileged == nil || *sc.Privileged ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"CHOWN", "NET_ADMIN", "NET_RAW"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("init container securityContext %+v", sc)
	}
}

func checkPodBasics(t *testing.T, ds *appsv1.DaemonSet, metricsPort, healthPort int32) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("hostNetwork is not true")
	}
	if spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy = %q, want ClusterFirstWithHostNet", spec.DNSPolicy)
	}
	if got := ds.Spec.UpdateStrategy; got.Type != appsv1.RollingUpdateDaemonSetStrategyType ||
		got.RollingUpdate == nil || got.RollingUpdate.MaxSurge == nil || got.RollingUpdate.MaxSurge.IntValue() != 0 {
		t.Errorf("updateStrategy = %+v, want RollingUpdate with maxSurge 0", got)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 1 {
		t.Fatalf("want one container and the state-dir init container, got %d (+%d init)", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	checkLeastPrivilege(t, c)
	checkStateDir(t, ds)
	if spec.SecurityContext != nil && (spec.SecurityContext.RunAsUser != nil && *spec.SecurityContext.RunAsUser == 0) {
		t.Error("the pod's securityContext runs as root")
	}
	wantEnv := []corev1.EnvVar{
		{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		// The agent's own pod, which it reads at SIGTERM (a rolling update or a final stop?).
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.Contains(a, "$(HOST_IP)") }) {
		wantEnv = append(wantEnv, corev1.EnvVar{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}})
	}
	if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	wantPorts := []corev1.ContainerPort{
		{Name: "metrics", ContainerPort: metricsPort, Protocol: corev1.ProtocolTCP},
		{Name: "health", ContainerPort: healthPort, Protocol: corev1.ProtocolTCP},
	}
	if diff := cmp.Diff(wantPorts, c.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	// The kubelet probes the plain health endpoint on the loopback (host network: the pod's
	// loopback is the node's), never the authenticated /metrics port.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET of %s", p.name, p.path)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Port != intstr.FromString("health") || g.Host != "127.0.0.1" || (g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP) {
			t.Errorf("%s probe: GET %s://%s:%s%s, want http://127.0.0.1:health%s", p.name, g.Scheme, g.Host, g.Port.String(), g.Path, p.path)
		}
	}
	if !slices.Contains(c.Args, "--health-probe-bind-address=127.0.0.1:"+itoa(healthPort)) {
		t.Errorf("args %s: the agent does not serve the probes on 127.0.0.1:%d", quote(c.Args), healthPort)
	}
	if !slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasPrefix(a, "--metrics-bind-address=") && strings.HasSuffix(a, "]:"+itoa(metricsPort))
	}) {
		t.Errorf("args %s: the agent does not serve /metrics on port %d", quote(c.Args), metricsPort)
	}
	// /metrics is always authenticated and authorized: no value turns it off.
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--metrics-secure") || strings.HasPrefix(a, "--listen") {
			t.Errorf("args %s: %s", quote(c.Args), a)
		}
	}
	if len(c.Args) == 0 || c.Args[0] != "agent" {
		t.Errorf("args %s: want the agent command first", quote(c.Args))
	}
	if len(c.Command) != 0 {
		t.Errorf("command %s: the image's entrypoint runs kube-vrrp", quote(c.Command))
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("resources.requests = %v: want cpu and memory", c.Resources.Requests)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 10 {
		t.Errorf("terminationGracePeriodSeconds = %v: want time to hand over", spec.TerminationGracePeriodSeconds)
	}
	// The design needs no surge (a handoff, docs/design.md §4.9.1) and allows none (the host
	// lock): one agent at a time is replaced, never more than maxUnavailable.
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil {
		t.Errorf("updateStrategy %+v: want a maxUnavailable", ds.Spec.UpdateStrategy)
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func TestDefaults(t *testing.T) {
	r := mustRender(t, defaults)
	strictTyped(t, r.objects)
	want := []string{
		"CustomResourceDefinition/virtualips.kubevrrp.io",
		"CustomResourceDefinition/virtualipmembers.kubevrrp.io",
		"CustomResourceDefinition/virtualippools.kubevrrp.io",
		"ServiceAccount/kube-vrrp",
		"ValidatingAdmissionPolicy/kube-vrrp-members",
		"ValidatingAdmissionPolicyBinding/kube-vrrp-members",
		"ClusterRole/kube-vrrp",
		"ClusterRole/kube-vrrp-metrics-reader",
		"ClusterRoleBinding/kube-vrrp",
		"Role/kube-vrrp",
		"RoleBinding/kube-vrrp",
		"DaemonSet/kube-vrrp",
	}
	var got []string
	for _, o := range r.objects {
		got = append(got, o.GetKind()+"/"+o.GetName())
		if ns := o.GetNamespace(); ns != "" && ns != "kube-vrrp" {
			t.Errorf("%s/%s in namespace %q, want the release's", o.GetKind(), o.GetName(), ns)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rendered objects (-want +got):\n%s", diff)
	}

	ds := r.daemonSet(t, "kube-vrrp")
	checkPodBasics(t, ds, 9402, 9403)
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	if !spec.HostPID {
		t.Error("hostPID is false by default; process probes need it")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName = %q", spec.PriorityClassName)
	}
	if diff := cmp.Diff([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, spec.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	if spec.NodeSelector != nil || spec.Affinity != nil {
		t.Errorf("nodeSelector %v, affinity %v: want none by default", spec.NodeSelector, spec.Affinity)
	}
	if got := ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable; got == nil || *got != intstr.FromInt32(1) {
		t.Errorf("maxUnavailable = %v, want 1", got)
	}
	if got := *spec.TerminationGracePeriodSeconds; got != 30 {
		t.Errorf("terminationGracePeriodSeconds = %d, want 30", got)
	}
	if diff := cmp.Diff([]string{"agent", "--metrics-bind-address=[$(HOST_IP)]:9402", "--health-probe-bind-address=127.0.0.1:9403",
		"--state-dir=/var/run/kube-vrrp", "--handoff-timeout=10s", "--log-level=info", "--log-format=json"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if c.Image != "ghcr.io/kube-vrrp/kube-vrrp:0.1.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s), want the chart's appVersion", c.Image, c.ImagePullPolicy)
	}
	if spec.ServiceAccountName != "kube-vrrp" {
		t.Errorf("serviceAccountName = %q", spec.ServiceAccountName)
	}
	if len(spec.Volumes) != 1 || len(c.VolumeMounts) != 1 {
		t.Errorf("volumes %v, mounts %v: want only the state directory by default", spec.Volumes, c.VolumeMounts)
	}

	for _, s := range []string{"kubectl get vip", "kubectl -n kube-vrrp get ds kube-vrrp"} {
		if !strings.Contains(r.notes, s) {
			t.Errorf("NOTES.txt does not say %q:\n%s", s, r.notes)
		}
	}
	if strings.Contains(r.notes, "ENABLED") {
		t.Errorf("NOTES.txt warns of exec probes, which are off:\n%s", r.notes)
	}
}

func TestNonDefault(t *testing.T) {
	r := mustRender(t, nonDefault)
	strictTyped(t, r.objects)
	for _, o := range r.objects {
		if ns := o.GetNamespace(); ns != "" && ns != "lb-system" {
			t.Errorf("%s/%s in namespace %q, want the release's", o.GetKind(), o.GetName(), ns)
		}
	}
	ds := r.daemonSet(t, "edge-kube-vrrp")
	checkPodBasics(t, ds, 9500, 9501)
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	if diff := cmp.Diff([]string{"agent", "--metrics-bind-address=[::]:9500", "--metrics-cert-dir=/etc/kube-vrrp/metrics-tls",
		"--health-probe-bind-address=127.0.0.1:9501", "--state-dir=/var/run/kube-vrrp", "--handoff-timeout=20s", "--log-level=debug", "--log-format=text",
		"--enable-exec-probes", "--kubeconfig=/etc/kube-vrrp/kubeconfig"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if c.Image != "registry.example.com/net/kube-vrrp:v9.9.9-rc.1" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %s (%s)", c.Image, c.ImagePullPolicy)
	}
	if spec.HostPID {
		t.Error("hostPID: false is not honoured")
	}
	if spec.PriorityClassName != "" {
		t.Errorf("priorityClassName = %q, want none", spec.PriorityClassName)
	}
	if spec.ServiceAccountName != "vrrp-agent" {
		t.Errorf("serviceAccountName = %q", spec.ServiceAccountName)
	}
	if got := *spec.TerminationGracePeriodSeconds; got != 60 {
		t.Errorf("terminationGracePeriodSeconds = %d", got)
	}
	if got := ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable; got == nil || *got != intstr.FromString("10%") {
		t.Errorf("maxUnavailable = %v, want 10%%", got)
	}
	if diff := cmp.Diff(map[string]string{"node-role.kubernetes.io/lb": ""}, spec.NodeSelector); diff != "" {
		t.Errorf("nodeSelector (-want +got):\n%s", diff)
	}
	if len(spec.Tolerations) != 2 || spec.Tolerations[1].TolerationSeconds == nil || *spec.Tolerations[1].TolerationSeconds != 60 {
		t.Errorf("tolerations = %+v", spec.Tolerations)
	}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil {
		t.Error("affinity is not rendered")
	}
	if got := c.Resources.Limits.Cpu().String(); got != "1" {
		t.Errorf("cpu limit = %s", got)
	}
	if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "regcred"}}, spec.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}
	if ds.Spec.Template.Annotations["example.com/scrape"] != "yes" || ds.Spec.Template.Labels["team"] != "network" {
		t.Errorf("pod annotations %v, labels %v", ds.Spec.Template.Annotations, ds.Spec.Template.Labels)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not a pod label", k, v)
		}
	}
	// The state directory, the metrics certificate's Secret, then the extra volume.
	if len(spec.Volumes) != 3 || spec.Volumes[1].Secret == nil || spec.Volumes[1].Secret.SecretName != "kube-vrrp-metrics-tls" ||
		spec.Volumes[2].HostPath == nil {
		t.Errorf("volumes %+v", spec.Volumes)
	}
	if len(c.VolumeMounts) != 3 || c.VolumeMounts[1].MountPath != "/etc/kube-vrrp/metrics-tls" || !c.VolumeMounts[1].ReadOnly ||
		c.VolumeMounts[1].Name != spec.Volumes[1].Name || !c.VolumeMounts[2].ReadOnly {
		t.Errorf("mounts %+v", c.VolumeMounts)
	}
	sa := typed[corev1.ServiceAccount](t, r.find(t, "ServiceAccount", "vrrp-agent"))
	if sa.Annotations["example.com/owner"] != "network-team" {
		t.Errorf("ServiceAccount annotations = %v", sa.Annotations)
	}

	// The metrics Service selects the agents and names the port the ServiceMonitor scrapes.
	svc := typed[corev1.Service](t, r.find(t, "Service", "edge-kube-vrrp-metrics"))
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("clusterIP = %q, want a headless Service", svc.Spec.ClusterIP)
	}
	for k, v := range svc.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the agent pods lack", k, v)
		}
	}
	if diff := cmp.Diff([]corev1.ServicePort{{Name: "metrics", Port: 9500, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}}, svc.Spec.Ports); diff != "" {
		t.Errorf("Service ports (-want +got):\n%s", diff)
	}
	if svc.Annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("Service annotations = %v", svc.Annotations)
	}
	sm := r.find(t, "ServiceMonitor", "edge-kube-vrrp")
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor %s, labels %v", sm.GetAPIVersion(), sm.GetLabels())
	}
	smSelector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range smSelector {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects Services with %s=%s, which the metrics Service lacks", k, v)
		}
	}
	if ns, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames"); !slices.Equal(ns, []string{"lb-system"}) {
		t.Errorf("ServiceMonitor namespaceSelector = %v", ns)
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints = %v", endpoints)
	}
	ep := endpoints[0].(map[string]any)
	if ep["port"] != "metrics" || ep["path"] != "/metrics" || ep["interval"] != "15s" || ep["scrapeTimeout"] != "5s" {
		t.Errorf("ServiceMonitor endpoint = %v", ep)
	}
	// HTTPS with Prometheus's token: the agent authenticates and authorizes every scrape.
	if ep["scheme"] != "https" || ep["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("ServiceMonitor endpoint scheme %v, bearerTokenFile %v: want https with the ServiceAccount token", ep["scheme"], ep["bearerTokenFile"])
	}
	if tls, _ := ep["tlsConfig"].(map[string]any); tls["serverName"] != "kube-vrrp-metrics" || tls["insecureSkipVerify"] != nil {
		t.Errorf("ServiceMonitor tlsConfig = %v, want the values' (CA and server name)", ep["tlsConfig"])
	}
	reader := typed[rbacv1.ClusterRoleBinding](t, r.find(t, "ClusterRoleBinding", "lb-system-edge-kube-vrrp-metrics-reader"))
	if diff := cmp.Diff([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus-k8s", Namespace: "monitoring"}}, reader.Subjects); diff != "" {
		t.Errorf("metrics reader subjects (-want +got):\n%s", diff)
	}
	if reader.RoleRef.Name != "lb-system-edge-kube-vrrp-metrics-reader" {
		t.Errorf("metrics reader binding refers to %q", reader.RoleRef.Name)
	}
	if rl, ok := ep["relabelings"].([]any); !ok || len(rl) != 1 {
		t.Errorf("relabelings = %v", ep["relabelings"])
	}
	if rl, ok := ep["metricRelabelings"].([]any); !ok || len(rl) != 1 {
		t.Errorf("metricRelabelings = %v", ep["metricRelabelings"])
	}

	for _, s := range []string{"kubectl get vip", "kubectl -n lb-system get ds edge-kube-vrrp", "ENABLED", "hostPID is false"} {
		if !strings.Contains(r.notes, s) {
			t.Errorf("NOTES.txt does not say %q:\n%s", s, r.notes)
		}
	}
}

// TestServiceAccountExisting: with serviceAccount.create false the chart binds the named
// ServiceAccount, and refuses to render without a name.
func TestServiceAccountExisting(t *testing.T) {
	r := mustRender(t, renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", values: "serviceAccount: {create: false, name: byo}"})
	for _, o := range r.objects {
		if o.GetKind() == "ServiceAccount" {
			t.Errorf("ServiceAccount %s rendered with create: false", o.GetName())
		}
	}
	if got := r.daemonSet(t, "kube-vrrp").Spec.Template.Spec.ServiceAccountName; got != "byo" {
		t.Errorf("serviceAccountName = %q", got)
	}
	crb := typed[rbacv1.ClusterRoleBinding](t, r.find(t, "ClusterRoleBinding", "kube-vrrp"))
	if diff := cmp.Diff([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "byo", Namespace: "kube-vrrp"}}, crb.Subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
	if _, err := render(t, renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", values: "serviceAccount: {create: false}"}); err == nil || !strings.Contains(err.Error(), "serviceAccount.name") {
		t.Errorf("create: false without a name: err = %v, want one naming serviceAccount.name", err)
	}
}

// generatedRBAC reads config/rbac/role.yaml, made by make generate from the controllers'
// +kubebuilder:rbac markers.
func generatedRBAC(t *testing.T) (*rbacv1.ClusterRole, *rbacv1.Role) {
	t.Helper()
	objs := readObjects(t, filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	return typed[rbacv1.ClusterRole](t, findKind(t, objs, "ClusterRole")), typed[rbacv1.Role](t, findKind(t, objs, "Role"))
}

// TestRBACMatchesGenerated: the chart grants exactly the generated rules, the Role in the
// release's namespace, bound to the DaemonSet's ServiceAccount.
func TestRBACMatchesGenerated(t *testing.T) {
	genCR, genRole := generatedRBAC(t)
	if len(genCR.Rules) == 0 || len(genRole.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	for _, o := range []renderOptions{defaults, nonDefault} {
		t.Run(o.name, func(t *testing.T) {
			r := mustRender(t, o)
			var cr *rbacv1.ClusterRole
			var role *rbacv1.Role
			var crb *rbacv1.ClusterRoleBinding
			var rb *rbacv1.RoleBinding
			for _, u := range r.objects {
				if strings.HasSuffix(u.GetName(), "-metrics-reader") {
					continue // the scrapers' role (TestMetricsReader)
				}
				if strings.HasSuffix(u.GetName(), "-lb-controller") {
					continue // the Service controller's (TestLBControllerRBAC)
				}
				switch u.GetKind() {
				case "ClusterRole":
					cr = typed[rbacv1.ClusterRole](t, u)
				case "Role":
					role = typed[rbacv1.Role](t, u)
				case "ClusterRoleBinding":
					crb = typed[rbacv1.ClusterRoleBinding](t, u)
				case "RoleBinding":
					rb = typed[rbacv1.RoleBinding](t, u)
				}
			}
			if cr == nil || role == nil || crb == nil || rb == nil {
				t.Fatalf("want a ClusterRole, a Role and their bindings; got %s", r.summary())
			}
			if diff := cmp.Diff(genCR.Rules, cr.Rules); diff != "" {
				t.Errorf("ClusterRole rules differ from config/rbac/role.yaml (-generated +chart):\n%s", diff)
			}
			wantRole := genRole.DeepCopy().Rules
			if o.name == nonDefault.name {
				// rbac.secretNames narrows the Secrets to those names, and nothing else: a
				// generated rule that also grants other resources (get pods, merged with get
				// secrets by controller-gen) is split, the Secrets in a rule of their own.
				var split []rbacv1.PolicyRule
				for _, r := range wantRole {
					if !slices.Contains(r.Resources, "secrets") {
						split = append(split, r)
						continue
					}
					if others := slices.DeleteFunc(slices.Clone(r.Resources), func(s string) bool { return s == "secrets" }); len(others) > 0 {
						o := r
						o.Resources = others
						split = append(split, o)
					}
					r.Resources = []string{"secrets"}
					r.ResourceNames = []string{"vrrp-auth", "vrrp-auth-v6"}
					split = append(split, r)
				}
				wantRole = split
			}
			if diff := cmp.Diff(wantRole, role.Rules); diff != "" {
				t.Errorf("Role rules differ from config/rbac/role.yaml (-generated +chart):\n%s", diff)
			}
			if role.Namespace != o.namespace {
				t.Errorf("Role in namespace %q, want the release's %q", role.Namespace, o.namespace)
			}
			sa := r.daemonSet(t, findKind(t, r.objects, "DaemonSet").GetName()).Spec.Template.Spec.ServiceAccountName
			subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: o.namespace}}
			if diff := cmp.Diff(subjects, crb.Subjects); diff != "" {
				t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(subjects, rb.Subjects); diff != "" {
				t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name}, crb.RoleRef); diff != "" {
				t.Errorf("ClusterRoleBinding roleRef (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}, rb.RoleRef); diff != "" {
				t.Errorf("RoleBinding roleRef (-want +got):\n%s", diff)
			}
			if rb.Namespace != o.namespace {
				t.Errorf("RoleBinding in namespace %q", rb.Namespace)
			}
		})
	}
	// Two releases in two namespaces must not share cluster-scoped names.
	clusterNames := func(ns string) []string {
		var names []string
		for _, o := range mustRender(t, renderOptions{name: "kube-vrrp", namespace: ns}).objects {
			if o.GetNamespace() == "" && o.GetKind() != "CustomResourceDefinition" {
				names = append(names, o.GetKind()+"/"+o.GetName())
			}
		}
		return names
	}
	for _, n := range clusterNames("a") {
		if slices.Contains(clusterNames("b"), n) {
			t.Errorf("releases kube-vrrp in namespaces a and b both render %s", n)
		}
	}

	// make chart copies the file the template reads; make verify compares them too.
	gen, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(filepath.Join(chartDir, "files", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gen, cp) {
		t.Error("charts/kube-vrrp/files/rbac/role.yaml differs from config/rbac/role.yaml: run make chart")
	}
}

// TestCRDMatchesGenerated: charts/kube-vrrp/crds holds exactly the generated CRDs, byte for
// byte, and helm template --include-crds renders them.
func TestCRDMatchesGenerated(t *testing.T) {
	list := func(dir string) []string {
		m, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range m {
			names = append(names, filepath.Base(p))
		}
		return names
	}
	gen := filepath.Join(repoRoot, "config", "crd", "bases")
	chartCRDs := filepath.Join(chartDir, "crds")
	if diff := cmp.Diff(list(gen), list(chartCRDs)); diff != "" {
		t.Fatalf("CRD files (-config/crd/bases +charts/kube-vrrp/crds), run make chart:\n%s", diff)
	}
	r := mustRender(t, defaults)
	for _, name := range list(gen) {
		a, err := os.ReadFile(filepath.Join(gen, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(chartCRDs, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/kube-vrrp/crds/%s differs from config/crd/bases/%s: run make chart", name, name)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(a, &crd); err != nil {
			t.Fatal(err)
		}
		rendered := typed[apiextensionsv1.CustomResourceDefinition](t, r.find(t, "CustomResourceDefinition", crd.Name))
		if diff := cmp.Diff(crd.Spec, rendered.Spec); diff != "" {
			t.Errorf("rendered CRD %s (-generated +rendered):\n%s", crd.Name, diff)
		}
	}
}

// TestSchemaRejects: values.schema.json turns a misspelt key or a bad value into an error
// instead of a silently ignored setting.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"unknown key", "logLevle: debug", "logLevle"},
		{"unknown nested key", "probes: {exec: {enable: true}}", "enable"},
		{"log level", "logLevel: verbose", "logLevel"},
		{"log format", "logFormat: xml", "logFormat"},
		{"port zero", "metrics: {port: 0}", "port"},
		{"port as string", `metrics: {port: "9402"}`, "port"},
		{"exec as string", `probes: {exec: {enabled: "yes"}}`, "enabled"},
		{"pull policy", "image: {pullPolicy: Sometimes}", "pullPolicy"},
		{"toleration operator", "tolerations: [{operator: exists}]", "operator"},
		{"maxUnavailable zero", "updateStrategy: {maxUnavailable: 0}", "maxUnavailable"},
		{"extra arg not a string", "extraArgs: [1]", "extraArgs"},
		{"hostPID as string", `hostPID: "true"`, "hostPID"},
		{"interval", "metrics: {serviceMonitor: {interval: 30 seconds}}", "interval"},
		{"resources typo", "resources: {request: {cpu: 1}}", "request"},
		{"metrics bind address with a port", "metrics: {bindAddress: \"10.0.0.1:9402\"}", "bindAddress"},
		{"metrics bind address a name", "metrics: {bindAddress: node1}", "bindAddress"},
		{"metrics reader subject without a kind", "metrics: {reader: {subjects: [{name: prometheus}]}}", "kind"},
		{"health port", "health: {port: 70000}", "port"},
		{"secret name not a name", "rbac: {secretNames: [Vrrp_Auth]}", "secretNames"},
		{"secret names not a list", "rbac: {secretNames: vrrp-auth}", "secretNames"},
		{"health port is the metrics port", "health: {port: 9402}", "metrics.port and health.port are both 9402"},
		{"handoff timeout without a unit", "handoff: {timeout: 8}", "timeout"},
		{"handoff timeout zero", "handoff: {timeout: 0s}", "timeout"},
		{"handoff timeout too long", "handoff: {timeout: 161s}", "timeout"},
		{"handoff timeout in minutes", "handoff: {timeout: 1m}", "timeout"},
		{"handoff timeout empty", "handoff: {timeout: \"\"}", "timeout"},
		{"handoff without timeout", "handoff: {timeout: null}", "timeout"},
		{"handoff typo", "handoff: {timout: 8s}", "timout"},
		{"grace period too short to ask the API server", "terminationGracePeriodSeconds: 2", "terminationGracePeriodSeconds"},
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

// TestKubeVersion: the CRD's CEL IP and CIDR functions need Kubernetes 1.31 or later.
func TestKubeVersion(t *testing.T) {
	if _, err := render(t, renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", kubeVersion: "v1.30.9"}); err == nil {
		t.Error("rendered for Kubernetes 1.30")
	}
	mustRender(t, renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", kubeVersion: "v1.31.0"})
}

// TestMetricsReader: the chart's role for scrapers grants get on /metrics and nothing else, and
// is bound only to the subjects the values name.
func TestMetricsReader(t *testing.T) {
	r := mustRender(t, defaults)
	cr := typed[rbacv1.ClusterRole](t, r.find(t, "ClusterRole", "kube-vrrp-metrics-reader"))
	want := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	if diff := cmp.Diff(want, cr.Rules); diff != "" {
		t.Errorf("metrics reader rules (-want +got):\n%s", diff)
	}
	for _, o := range r.objects {
		if o.GetKind() == "ClusterRoleBinding" && o.GetName() != "kube-vrrp" {
			t.Errorf("%s rendered without metrics.reader.subjects", o.GetName())
		}
	}
	// config/ ships the same role for kubectl apply -k.
	objs := kustomizeBuild(t, filepath.Join(repoRoot, "config", "default"))
	kcr := typed[rbacv1.ClusterRole](t, findObject(t, objs, "ClusterRole", "kube-vrrp-metrics-reader"))
	if diff := cmp.Diff(want, kcr.Rules); diff != "" {
		t.Errorf("config/rbac metrics reader rules (-want +got):\n%s", diff)
	}
}

// TestMetricsAuthRBAC: the agent may ask the API server about a scraper's token and rights
// (TokenReview, SubjectAccessReview), which /metrics needs, and only create them.
func TestMetricsAuthRBAC(t *testing.T) {
	cr, _ := generatedRBAC(t)
	for _, want := range []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	} {
		if !slices.ContainsFunc(cr.Rules, func(r rbacv1.PolicyRule) bool { return cmp.Equal(r, want) }) {
			t.Errorf("the agent's ClusterRole lacks %+v", want)
		}
	}
}

// TestMemberRBAC: the agent reads and writes VirtualIPMembers (its own by server-side apply,
// others' deleted by the summary's writer: get, list, watch, create, patch, delete) and gets and
// patches VirtualIP status (the summary), and nothing more of either: no update (every write is
// a patch or an apply) and no deletecollection.
func TestMemberRBAC(t *testing.T) {
	cr, _ := generatedRBAC(t)
	for resource, want := range map[string][]string{
		"virtualipmembers":  {"create", "delete", "get", "list", "patch", "watch"},
		"virtualips":        {"get", "list", "watch"},
		"virtualips/status": {"get", "patch"},
	} {
		var verbs []string
		for _, r := range cr.Rules {
			if slices.Contains(r.APIGroups, "kubevrrp.io") && (slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) {
				verbs = append(verbs, r.Verbs...)
			}
		}
		slices.Sort(verbs)
		if diff := cmp.Diff(want, verbs); diff != "" {
			t.Errorf("the agent's ClusterRole on kubevrrp.io %s (-want +got):\n%s", resource, diff)
		}
	}
}

// TestServiceMonitorDefaults: by default the ServiceMonitor scrapes over HTTPS with the
// ServiceAccount token and skips verifying the agent's self-signed certificate.
func TestServiceMonitorDefaults(t *testing.T) {
	r := mustRender(t, renderOptions{name: "kube-vrrp", namespace: "kube-vrrp", values: "metrics: {serviceMonitor: {enabled: true}}"})
	sm := r.find(t, "ServiceMonitor", "kube-vrrp")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("endpoints = %v", endpoints)
	}
	ep := endpoints[0].(map[string]any)
	want := map[string]any{
		"port": "metrics", "path": "/metrics", "scheme": "https", "interval": "30s", "scrapeTimeout": "10s",
		"bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
		"tlsConfig":       map[string]any{"insecureSkipVerify": true},
	}
	if diff := cmp.Diff(want, ep); diff != "" {
		t.Errorf("endpoint (-want +got):\n%s", diff)
	}
}

// TestRoleSecretsGetOnly: whatever the values, the agent gets Secrets by name and never lists or
// watches them; with rbac.secretNames, only those names.
func TestRoleSecretsGetOnly(t *testing.T) {
	for _, o := range []renderOptions{defaults, nonDefault} {
		t.Run(o.name, func(t *testing.T) {
			r := mustRender(t, o)
			role := typed[rbacv1.Role](t, r.find(t, "Role", r.daemonSet(t, findKind(t, r.objects, "DaemonSet").GetName()).Name))
			var secrets []rbacv1.PolicyRule
			for _, r := range role.Rules {
				if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") {
					secrets = append(secrets, r)
				}
			}
			if len(secrets) != 1 || !slices.Equal(secrets[0].Verbs, []string{"get"}) {
				t.Fatalf("Secrets rules %+v, want one granting get only", secrets)
			}
			if o.name == nonDefault.name && !slices.Equal(secrets[0].ResourceNames, []string{"vrrp-auth", "vrrp-auth-v6"}) {
				t.Errorf("resourceNames %v, want rbac.secretNames", secrets[0].ResourceNames)
			}
			if o.name == defaults.name && len(secrets[0].ResourceNames) != 0 {
				t.Errorf("resourceNames %v by default", secrets[0].ResourceNames)
			}
		})
	}
}

// TestMemberPolicyChart: the admission policy applies to the agent's ServiceAccount (the
// release's, whatever its name) and the control-plane nodes' users (kube-vrrp:node:<node>, group
// kube-vrrp:control-plane) only, to creates and updates of virtualipmembers (not deletes: the
// summary's writer prunes other nodes' members), denies, and requires of the member written
// that its spec.node be the node named by the token's node-name claim; its binding names it.
// With statusPolicy.enabled false neither is rendered. config/policy holds the same policy.
func TestMemberPolicyChart(t *testing.T) {
	r := mustRender(t, renderOptions{name: "edge", namespace: "lb-system", values: "serviceAccount: {name: vrrp-agent}"})
	vap := typed[admissionregistrationv1.ValidatingAdmissionPolicy](t, r.find(t, "ValidatingAdmissionPolicy", "lb-system-edge-kube-vrrp-members"))
	if len(vap.Spec.MatchConditions) != 1 || vap.Spec.MatchConditions[0].Expression != `request.userInfo.username == "system:serviceaccount:lb-system:vrrp-agent"`+
		` || request.userInfo.username.startsWith('kube-vrrp:node:') || has(request.userInfo.groups) && 'kube-vrrp:control-plane' in request.userInfo.groups` {
		t.Errorf("matchConditions %+v: want the agent's ServiceAccount and the control-plane nodes' users only", vap.Spec.MatchConditions)
	}
	if vap.Spec.FailurePolicy == nil || *vap.Spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy %v, want Fail", vap.Spec.FailurePolicy)
	}
	rules := vap.Spec.MatchConstraints.ResourceRules
	if len(rules) != 1 || !slices.Equal(rules[0].Resources, []string{"virtualipmembers"}) || !slices.Equal(rules[0].APIGroups, []string{"kubevrrp.io"}) ||
		!slices.Equal(rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}) {
		t.Errorf("resourceRules %+v: want CREATE and UPDATE of kubevrrp.io virtualipmembers", rules)
	}
	// The node: the claim of the pod-bound token, only one.
	if len(vap.Spec.Variables) != 1 || vap.Spec.Variables[0].Name != "node" ||
		!strings.Contains(vap.Spec.Variables[0].Expression, `request.userInfo.extra['authentication.kubernetes.io/node-name'][0]`) ||
		!strings.Contains(vap.Spec.Variables[0].Expression, `size(request.userInfo.extra['authentication.kubernetes.io/node-name']) == 1`) {
		t.Errorf("variables %+v: want node, the token's one node-name claim", vap.Spec.Variables)
	}
	var exprs []string
	for _, v := range vap.Spec.Validations {
		exprs = append(exprs, v.Expression)
		if v.Reason == nil || *v.Reason != "Forbidden" {
			t.Errorf("validation %q: reason %v, want Forbidden", v.Expression, v.Reason)
		}
	}
	if len(exprs) != 4 || exprs[0] != "variables.node != ''" || exprs[1] != "object.spec.node == variables.node" ||
		!strings.Contains(exprs[2], "object.metadata.ownerReferences[0].name == object.spec.virtualIP") ||
		!strings.Contains(exprs[2], "size(object.metadata.ownerReferences) == 1") ||
		!strings.Contains(exprs[3], "object.metadata.annotations") || !strings.Contains(exprs[3], "object.metadata.finalizers") {
		t.Errorf("validations %q: want a node claim, the member's spec.node that node, one owner (the VirtualIP it names) and no other metadata", exprs)
	}
	b := typed[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, r.find(t, "ValidatingAdmissionPolicyBinding", vap.Name))
	if b.Spec.PolicyName != vap.Name || !slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
		t.Errorf("binding %+v", b.Spec)
	}
	for _, o := range mustRender(t, nonDefault).objects {
		if o.GetAPIVersion() == "admissionregistration.k8s.io/v1" {
			t.Errorf("%s %s rendered with statusPolicy.enabled false", o.GetKind(), o.GetName())
		}
	}
	// config/ ships the same policy for the same ServiceAccount as helm install kube-vrrp -n
	// kube-vrrp, and nothing else of admissionregistration.
	objs := kustomizeBuild(t, filepath.Join(repoRoot, "config", "default"))
	d := mustRender(t, defaults)
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		want, _, _ := unstructured.NestedMap(d.find(t, kind, "kube-vrrp-members").Object, "spec")
		got, _, _ := unstructured.NestedMap(findObject(t, objs, kind, "kube-vrrp-members").Object, "spec")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("config/policy %s differs from the chart's (-chart +config):\n%s", kind, diff)
		}
	}
	for _, o := range objs {
		if o.GetAPIVersion() == "admissionregistration.k8s.io/v1" && o.GetName() != "kube-vrrp-members" {
			t.Errorf("config/default has %s %s, which the chart does not render", o.GetKind(), o.GetName())
		}
	}
}
