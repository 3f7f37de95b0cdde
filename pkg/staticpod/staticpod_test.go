package staticpod

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

const testImage = "ghcr.io/kube-vrrp/kube-vrrp:v0.1.0"

func baseOptions() Options {
	return Options{
		Node:     "cp1",
		Address:  netip.MustParsePrefix("198.18.0.100/24"),
		VRID:     51,
		Priority: 150,
		Image:    testImage,
	}
}

// hostNode is a node with eth0 in the VIP's subnet, as `kube-vrrp run` would see it.
func hostNode(name string, addr string) desired.Node {
	return desired.Node{Name: name, Interfaces: []desired.Interface{
		{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix(addr)}},
	}}
}

// load reads the generated files as `kube-vrrp run` and `validate` do.
func load(t *testing.T, f Files) *manifest.Set {
	t.Helper()
	data := bytes.Clone(f.VirtualIP)
	if f.Secret != nil {
		data = append(append(data, "---\n"...), f.Secret...)
	}
	set, err := manifest.Parse("generated", data)
	if err != nil {
		t.Fatalf("the generated files do not read back: %v\n%s", err, data)
	}
	if len(set.VirtualIPs) != 1 {
		t.Fatalf("%d VirtualIPs, want 1", len(set.VirtualIPs))
	}
	return set
}

func TestGenerateVirtualIP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mod      func(*Options)
		version  uint8
		interval time.Duration
		peers    []netip.Addr
	}{
		{"multicast v3", func(*Options) {}, 3, 100 * time.Millisecond, nil},
		{"unicast", func(o *Options) {
			o.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")}
		}, 3, 100 * time.Millisecond, []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")}},
		{"PASS", func(o *Options) { o.Password = "42" }, 2, time.Second, nil},
		{"interval", func(o *Options) { o.Interval = 50 * time.Millisecond }, 3, 50 * time.Millisecond, nil},
		{"IPv6", func(o *Options) {
			o.Address = netip.MustParsePrefix("2001:db8::100/64")
			o.APIServer = "[::1]:6443"
		}, 3, 100 * time.Millisecond, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOptions()
			tc.mod(&o)
			f, err := Generate(o)
			if err != nil {
				t.Fatal(err)
			}
			set := load(t, f)
			vip := &set.VirtualIPs[0]
			if errs := desired.Validate(vip); len(errs) > 0 {
				t.Fatalf("desired.Validate: %v", errs.ToAggregate())
			}
			if vip.Name != DefaultName {
				t.Errorf("name %q, want %q", vip.Name, DefaultName)
			}
			// run's membership: --node cp1 is the one member; another node name is not.
			if ok, err := desired.Selects(vip, "cp1", nil); !ok || err != nil {
				t.Errorf("Selects(cp1) = %v, %v; want true", ok, err)
			}
			if ok, _ := desired.Selects(vip, "cp2", nil); ok {
				t.Error("the VirtualIP selects cp2 as well: it must name only this node")
			}
			pw, err := set.Password(vip)
			if err != nil {
				t.Fatal(err)
			}
			if string(pw) != o.Password {
				t.Errorf("password from the Secret file %q, want %q", pw, o.Password)
			}
			addr := "198.18.0.11/24"
			if o.Address.Addr().Is6() {
				addr = "2001:db8::11/64"
			}
			node := hostNode("cp1", addr)
			if o.Address.Addr().Is6() {
				node.Interfaces[1].Prefixes = append(node.Interfaces[1].Prefixes, netip.MustParsePrefix("fe80::11/64"))
			}
			cfg, err := desired.For(vip, node, nil, pw)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if cfg.Interface != "eth0" || cfg.Priority != 150 || cfg.Version != tc.version || cfg.Interval != tc.interval {
				t.Errorf("config: interface %s priority %d version %d interval %s; want eth0 150 %d %s",
					cfg.Interface, cfg.Priority, cfg.Version, cfg.Interval, tc.version, tc.interval)
			}
			if !slices.Equal(cfg.Peers, tc.peers) {
				t.Errorf("peers %v, want %v", cfg.Peers, tc.peers)
			}
			specs, err := desired.Probes(vip)
			if err != nil {
				t.Fatal(err)
			}
			if len(specs) != 1 || specs[0].Name != ProbeName || specs[0].Kind != probe.KindHTTP ||
				specs[0].Weight != APIServerWeight || specs[0].Interval != ProbeInterval ||
				specs[0].Timeout != ProbeTimeout || specs[0].Fall != ProbeFall || specs[0].Rise != ProbeRise ||
				specs[0].HTTPS.CAFile != DefaultCAFile || specs[0].HTTPS.ServerName != DefaultServerName {
				t.Errorf("probes %+v", specs)
			}
			wantURL := "https://127.0.0.1:6443/readyz"
			if o.APIServer != "" {
				wantURL = "https://" + o.APIServer + "/readyz"
			}
			if specs[0].URL != wantURL {
				t.Errorf("probe url %q, want %q", specs[0].URL, wantURL)
			}
			if (f.Secret != nil) != (o.Password != "") {
				t.Errorf("Secret file %v with password %q", f.Secret != nil, o.Password)
			}
		})
	}
}

// effective is the priority the engine advertises for a node of priority prio whose API server
// probe is healthy, failing, or not checked yet (health nil), and whether it is in Fault.
func effective(t *testing.T, prio int, health map[string]bool) (uint8, bool) {
	t.Helper()
	o := baseOptions()
	o.Priority = prio
	f, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	vip := &load(t, f).VirtualIPs[0]
	cfg, err := desired.For(vip, hostNode("cp1", "198.18.0.11/24"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := desired.Probes(vip)
	if err != nil {
		t.Fatal(err)
	}
	in, err := vrrp.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	in.Start(now)
	in.SetHealth(now, probe.Weigh(specs, health))
	st := in.Status()
	return st.Priority, st.State == vrrp.Fault
}

// The package documentation's promises, computed with the engine's own arithmetic for every
// allowed priority: a node whose API server is down advertises less than any node whose API
// server is up, and is never in Fault (some node holds the VIP when none is up).
func TestPriorityArithmetic(t *testing.T) {
	up := map[string]bool{ProbeName: true}
	down := map[string]bool{ProbeName: false}
	maxDown, minUp := uint8(0), uint8(255)
	for p := MinPriority; p <= MaxPriority; p++ {
		u, uf := effective(t, p, up)
		d, df := effective(t, p, down)
		n, nf := effective(t, p, nil)
		if uf || df || nf {
			t.Fatalf("priority %d: Fault with the API server up %v, down %v, not checked %v; want never", p, uf, df, nf)
		}
		if n != d {
			t.Errorf("priority %d: not checked yet advertises %d, down %d; want the same", p, n, d)
		}
		maxDown, minUp = max(maxDown, d), min(minUp, u)
	}
	if maxDown >= minUp {
		t.Errorf("a node whose API server is down can advertise %d, one whose API server is up as little as %d", maxDown, minUp)
	}
	for p, want := range map[int][2]uint8{150: {150, 50}, 140: {140, 40}, 130: {130, 30}} {
		u, _ := effective(t, p, up)
		d, _ := effective(t, p, down)
		if u != want[0] || d != want[1] {
			t.Errorf("priority %d: up %d, down %d; want %d, %d (the package documentation's example)", p, u, d, want[0], want[1])
		}
	}
}

func TestDetectWithin(t *testing.T) {
	if DetectWithin >= time.Second {
		t.Errorf("DetectWithin %s: a dead API server must move the VIP in well under a second", DetectWithin)
	}
	if DetectWithin != ProbeFall*ProbeInterval+ProbeTimeout {
		t.Errorf("DetectWithin %s is not fall × interval + timeout", DetectWithin)
	}
	if err := probe.CheckTimeout(ProbeTimeout, ProbeInterval); err != nil {
		t.Error(err)
	}
}

// decodePod reads the manifest as the kubelet does: one object, strict YAML.
func decodePod(t *testing.T, data []byte) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("manifest: %v\n%s", err, data)
	}
	return &pod
}

// The Pod keeps the rules the kubelet applies to a static pod (pkg/kubelet/config: no reference
// to an API object, the pod validation that matters here, system-node-critical with its
// priority) and the chart's least privilege (docs/design.md §7.10).
func TestPodStaticRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"default", func(*Options) {}},
		{"PASS", func(o *Options) { o.Password = "s3cr3tpw" }},
		{"CA in the config dir", func(o *Options) { o.CAFile = "/etc/kube-vrrp/ca.crt" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOptions()
			tc.mod(&o)
			f, err := Generate(o)
			if err != nil {
				t.Fatal(err)
			}
			pod := decodePod(t, f.Manifest)
			checkStaticPod(t, pod)
			if o.Password != "" && (bytes.Contains(f.Manifest, []byte(o.Password)) || bytes.Contains(f.VirtualIP, []byte(o.Password))) {
				t.Error("the password is in the manifest or the VirtualIP; it belongs in the Secret file only")
			}

			c := pod.Spec.Containers[0]
			wantArgs := []string{"run", "-f", "/etc/kube-vrrp/vip.yaml"}
			if o.Password != "" {
				wantArgs = append(wantArgs, "-f", "/etc/kube-vrrp/secret.yaml")
			}
			wantArgs = append(wantArgs, "--node", "cp1", "--state-dir=/var/run/kube-vrrp")
			if !slices.Equal(c.Args, wantArgs) {
				t.Errorf("args %q, want %q", c.Args, wantArgs)
			}
			// Every file the agent reads is under a read-only mount at its host path.
			vip := &load(t, f).VirtualIPs[0]
			for _, file := range []string{"/etc/kube-vrrp/vip.yaml", vip.Spec.Probes[0].HTTP.TLS.CAFile} {
				m := mountOf(c, file)
				if m == nil || !m.ReadOnly {
					t.Errorf("%s: no read-only mount holds it (%+v)", file, c.VolumeMounts)
					continue
				}
				if hp := hostPathOf(pod, m.Name); hp != m.MountPath {
					t.Errorf("%s: mounted from the host's %s at %s; the paths must be the same", file, hp, m.MountPath)
				}
			}
			if m := mountOf(c, "/var/run/kube-vrrp/lock"); m == nil || m.ReadOnly || hostPathOf(pod, m.Name) != StateDir {
				t.Errorf("state directory: mount %+v, want %s writable", m, StateDir)
			}
		})
	}
}

func mountOf(c corev1.Container, file string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if strings.HasPrefix(file, m.MountPath+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = m
		}
	}
	return best
}

func hostPathOf(pod *corev1.Pod, volume string) string {
	for _, v := range pod.Spec.Volumes {
		if v.Name == volume && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return ""
}

func checkStaticPod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if pod.APIVersion != "v1" || pod.Kind != "Pod" || pod.Name != PodName || pod.Namespace != PodNamespace {
		t.Errorf("object %s/%s %s/%s", pod.APIVersion, pod.Kind, pod.Namespace, pod.Name)
	}
	s := &pod.Spec
	// The kubelet refuses a static pod that references API objects.
	if s.ServiceAccountName != "" || s.DeprecatedServiceAccount != "" || len(s.ImagePullSecrets) > 0 || len(s.ResourceClaims) > 0 {
		t.Error("the pod references a ServiceAccount, pull Secrets or ResourceClaims")
	}
	names := map[string]bool{}
	for _, v := range s.Volumes {
		if v.HostPath == nil || v.VolumeSource != (corev1.VolumeSource{HostPath: v.HostPath}) {
			t.Errorf("volume %s is not a hostPath alone", v.Name)
			continue
		}
		if p := v.HostPath.Path; !strings.HasPrefix(p, "/") || path.Clean(p) != p || v.HostPath.Type == nil {
			t.Errorf("volume %s: hostPath %q type %v", v.Name, p, v.HostPath.Type)
		}
		if names[v.Name] || len(validation.IsDNS1123Label(v.Name)) > 0 {
			t.Errorf("volume name %q repeated or not a DNS label", v.Name)
		}
		names[v.Name] = true
	}
	all := append(slices.Clone(s.InitContainers), s.Containers...)
	cnames := map[string]bool{}
	for _, c := range all {
		if cnames[c.Name] || len(validation.IsDNS1123Label(c.Name)) > 0 {
			t.Errorf("container name %q repeated or not a DNS label", c.Name)
		}
		cnames[c.Name] = true
		if len(c.EnvFrom) > 0 || slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.ValueFrom != nil }) {
			t.Errorf("container %s takes environment from API objects", c.Name)
		}
		if len(c.Ports) > 0 || len(c.Command) > 0 || c.Image != testImage || c.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("container %s: ports %v command %v image %q pull %q", c.Name, c.Ports, c.Command, c.Image, c.ImagePullPolicy)
		}
		paths := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if !names[m.Name] {
				t.Errorf("container %s mounts %s, which is no volume", c.Name, m.Name)
			}
			if paths[m.MountPath] {
				t.Errorf("container %s mounts two volumes at %s", c.Name, m.MountPath)
			}
			paths[m.MountPath] = true
		}
		sc := c.SecurityContext
		if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.SeccompProfile == nil ||
			sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || sc.Capabilities == nil ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container %s: securityContext %+v", c.Name, sc)
		}
		if c.Resources.Limits.Cpu().Sign() != 0 || c.Resources.Requests.Memory().Sign() == 0 {
			t.Errorf("container %s: resources %+v (no CPU limit: throttling delays adverts)", c.Name, c.Resources)
		}
	}
	if len(s.InitContainers) != 1 || len(s.Containers) != 1 {
		t.Fatalf("%d init containers, %d containers; want 1 and 1", len(s.InitContainers), len(s.Containers))
	}
	agent := s.Containers[0].SecurityContext
	if *agent.RunAsUser != AgentUID || *agent.RunAsGroup != AgentUID || agent.RunAsNonRoot == nil || !*agent.RunAsNonRoot ||
		!slices.Equal(agent.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("agent: securityContext %+v", agent)
	}
	init := s.InitContainers[0]
	if *init.SecurityContext.RunAsUser != 0 ||
		!slices.Equal(init.SecurityContext.Capabilities.Add, []corev1.Capability{"CHOWN", "NET_ADMIN", "NET_RAW"}) ||
		!slices.Equal(init.Args, []string{"state-dir", "--owner=65532:65532", "/var/run/kube-vrrp"}) {
		t.Errorf("init container: %+v", init)
	}
	if !s.HostNetwork || s.HostPID || s.HostIPC {
		t.Errorf("hostNetwork %v hostPID %v hostIPC %v; want the network only", s.HostNetwork, s.HostPID, s.HostIPC)
	}
	// The kubelet ignores a class without its number, and warns about any other pair.
	if s.PriorityClassName != "system-node-critical" || s.Priority == nil || *s.Priority != 2000001000 {
		t.Errorf("priority %v class %q, want 2000001000 system-node-critical", s.Priority, s.PriorityClassName)
	}
	if g := s.TerminationGracePeriodSeconds; g == nil || *g < 5 {
		t.Errorf("terminationGracePeriodSeconds %v: the handover needs a few seconds at most, give at least 5", g)
	}
	if s.AutomountServiceAccountToken != nil {
		t.Error("automountServiceAccountToken is set; a static pod has no ServiceAccount")
	}
}

func TestCADirMountedOnce(t *testing.T) {
	o := baseOptions()
	o.CAFile = "/etc/kube-vrrp/ca.crt"
	f, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	pod := decodePod(t, f.Manifest)
	if len(pod.Spec.Volumes) != 2 {
		t.Errorf("volumes %v: the CA's directory is the config dir, which is mounted already", pod.Spec.Volumes)
	}
}

func TestGenerateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want []string
	}{
		{"no node", func(o *Options) { o.Node = "" }, []string{"node: required"}},
		{"bad node", func(o *Options) { o.Node = "CP_1" }, []string{`node "CP_1"`, "kubectl get nodes"}},
		{"bad name", func(o *Options) { o.Name = "Control Plane" }, []string{`name "Control Plane"`}},
		{"no address", func(o *Options) { o.Address = netip.Prefix{} }, []string{"address: required", "198.18.0.100/24"}},
		{"host prefix without interface", func(o *Options) { o.Address = netip.MustParsePrefix("198.18.0.100/32") },
			[]string{"address 198.18.0.100/32", "prefix length of the nodes' subnet", "or the interface"}},
		{"loopback", func(o *Options) { o.Address = netip.MustParsePrefix("127.0.0.5/8") }, []string{"unicast address"}},
		{"vrid", func(o *Options) { o.VRID = 0 }, []string{"vrid 0", "1..255"}},
		{"priority high", func(o *Options) { o.Priority = 254 }, []string{"priority 254", "101..200", "by 100"}},
		{"priority low", func(o *Options) { o.Priority = 100 }, []string{"priority 100", "101..200"}},
		{"long password", func(o *Options) { o.Password = "123456789" }, []string{"password: 9 bytes", "1..8"}},
		{"password with IPv6", func(o *Options) {
			o.Password = "42"
			o.Address = netip.MustParsePrefix("2001:db8::100/64")
		}, []string{"password:", "IPv6", "drop the password"}},
		{"password with a v3 interval", func(o *Options) {
			o.Password = "42"
			o.Interval = 100 * time.Millisecond
		}, []string{"interval:", "whole seconds"}},
		{"interval step", func(o *Options) { o.Interval = 105 * time.Millisecond }, []string{"interval:", "steps of 10ms"}},
		{"peer family", func(o *Options) { o.Peers = []netip.Addr{netip.MustParseAddr("2001:db8::12")} }, []string{"peers:", "must be IPv4"}},
		{"peer is the VIP", func(o *Options) { o.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.100")} }, []string{"peer 198.18.0.100 is the VIP", "own addresses"}},
		{"apiserver", func(o *Options) { o.APIServer = "127.0.0.1" }, []string{`apiserver "127.0.0.1"`}},
		{"relative CA", func(o *Options) { o.CAFile = "pki/ca.crt" }, []string{`ca file "pki/ca.crt"`, "absolute"}},
		{"CA at the root", func(o *Options) { o.CAFile = "/ca.crt" }, []string{`ca file "/ca.crt"`, "directory of its own"}},
		{"CA under /run", func(o *Options) { o.CAFile = "/run/pki/ca.crt" }, []string{`ca file "/run/pki/ca.crt"`, "under /run"}},
		{"server name", func(o *Options) { o.ServerName = "not a name" }, []string{`server name "not a name"`}},
		{"no image", func(o *Options) { o.Image = "" }, []string{`image "": required`}},
		{"image with space", func(o *Options) { o.Image = "a b" }, []string{`image "a b"`}},
		{"config dir in the manifests", func(o *Options) { o.ConfigDir = "/etc/kubernetes/manifests/kube-vrrp" },
			[]string{"config dir", "under /etc/kubernetes/manifests"}},
		{"config dir relative", func(o *Options) { o.ConfigDir = "kube-vrrp" }, []string{`config dir "kube-vrrp"`, "absolute"}},
		{"interface", func(o *Options) { o.Interface = "eth0/1" }, []string{`interface "eth0/1"`}},
		{"several", func(o *Options) { o.VRID, o.Priority = 300, 1 }, []string{"vrid 300", "priority 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOptions()
			tc.mod(&o)
			f, err := Generate(o)
			if err == nil {
				t.Fatalf("no error; manifest:\n%s", f.Manifest)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "spec.") {
				t.Errorf("error names a VirtualIP field instead of an input:\n%v", err)
			}
			if o.Password != "" && strings.Contains(err.Error(), o.Password) {
				t.Errorf("error shows the password:\n%v", err)
			}
		})
	}
}

// The same options give the same bytes (a kubelet restarts a static pod whose file changes).
func TestGenerateDeterministic(t *testing.T) {
	o := baseOptions()
	o.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.12")}
	a, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(o)
	if !bytes.Equal(a.Manifest, b.Manifest) || !bytes.Equal(a.VirtualIP, b.VirtualIP) {
		t.Error("two runs differ")
	}
	if bytes.Contains(a.Manifest, []byte("creationTimestamp")) || bytes.Contains(a.Manifest, []byte("status:")) {
		t.Errorf("manifest has status or creationTimestamp:\n%s", a.Manifest)
	}
}

// `kube-vrrp run` reads its files only at start, so the Pod carries the VirtualIP's hash: a
// changed VirtualIP is a changed Pod, which the kubelet restarts. The password is not hashed.
func TestManifestFollowsVirtualIP(t *testing.T) {
	gen := func(mod func(*Options)) Files {
		o := baseOptions()
		mod(&o)
		f, err := Generate(o)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	annotation := func(f Files) string {
		pod := decodePod(t, f.Manifest)
		if msgs := validation.IsQualifiedName(VirtualIPHashAnnotation); len(msgs) > 0 {
			t.Fatalf("annotation key: %v", msgs)
		}
		return pod.Annotations[VirtualIPHashAnnotation]
	}
	base := gen(func(*Options) {})
	sum := sha256.Sum256(base.VirtualIP)
	if got := annotation(base); got != hex.EncodeToString(sum[:]) {
		t.Errorf("annotation %q is not the VirtualIP file's SHA-256", got)
	}
	if annotation(gen(func(o *Options) { o.Priority = 140 })) == annotation(base) {
		t.Error("a new priority does not change the Pod: the kubelet would keep the old agent running")
	}
	a := gen(func(o *Options) { o.Password = "aaaa" })
	b := gen(func(o *Options) { o.Password = "bbbb" })
	if !bytes.Equal(a.Manifest, b.Manifest) || !bytes.Equal(a.VirtualIP, b.VirtualIP) {
		t.Error("the password changes the manifest or the VirtualIP")
	}
}

// TestKubeconfig: Options.Kubeconfig adds --kubeconfig to run's command line, read from the
// config dir the pod mounts read-only already (no volume of its own, so that a file installed
// after the pod started is seen); a path outside it, relative, or that of the VirtualIP or
// Secret file, is refused.
func TestKubeconfig(t *testing.T) {
	o := baseOptions()
	o.Kubeconfig = "/etc/kube-vrrp/kubeconfig"
	f, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	pod := decodePod(t, f.Manifest)
	checkStaticPod(t, pod)
	c := pod.Spec.Containers[0]
	want := []string{"run", "-f", "/etc/kube-vrrp/vip.yaml", "--node", "cp1", "--state-dir=/var/run/kube-vrrp", "--kubeconfig", "/etc/kube-vrrp/kubeconfig"}
	if !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if m := mountOf(c, o.Kubeconfig); m == nil || !m.ReadOnly || hostPathOf(pod, m.Name) != m.MountPath || m.MountPath != DefaultConfigDir {
		t.Errorf("the kubeconfig's mount %+v, want the config dir's, read-only", m)
	}
	if len(pod.Spec.Volumes) != 3 {
		t.Errorf("volumes %v: the kubeconfig is in the config dir, mounted already", pod.Spec.Volumes)
	}
	// The VirtualIP does not change with it: the pod is not restarted for a kubeconfig.
	plain, err := Generate(baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.VirtualIP, f.VirtualIP) {
		t.Error("the VirtualIP changes with the kubeconfig")
	}

	for _, tc := range []struct {
		path, want string
	}{
		{"/etc/kubernetes/kube-vrrp.conf", "put it in the config dir /etc/kube-vrrp"},
		{"/etc/kube-vrrp", "put it in the config dir"},
		{"kubeconfig", "absolute"},
		{"/etc/kube-vrrp/../kubernetes/admin.conf", "absolute"},
		{"/etc/kube-vrrp/vip.yaml", "the VirtualIP or the Secret file goes there"},
		{"/etc/kube-vrrp/secret.yaml", "the VirtualIP or the Secret file goes there"},
	} {
		o := baseOptions()
		o.Kubeconfig = tc.path
		if _, err := Generate(o); err == nil || !strings.Contains(err.Error(), `kubeconfig "`+tc.path+`"`) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("kubeconfig %q: %v, want %q", tc.path, err, tc.want)
		}
	}
}
