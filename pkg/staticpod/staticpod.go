package staticpod

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// Defaults of Options and where the files go.
const (
	// DefaultName is the VirtualIP's name.
	DefaultName = "control-plane"
	// DefaultAPIServer is where the node's kube-apiserver listens (kubeadm's default port; it
	// binds every address unless --bind-address says otherwise).
	DefaultAPIServer = "127.0.0.1:6443"
	// DefaultCAFile is kubeadm's cluster CA, which signs the API server's certificate.
	DefaultCAFile = "/etc/kubernetes/pki/ca.crt"
	// DefaultServerName is a name kubeadm's API server certificate always holds.
	DefaultServerName = "kubernetes"
	// DefaultConfigDir is the host directory of the VirtualIP and Secret files.
	DefaultConfigDir = "/etc/kube-vrrp"
	// ImageRepository is the project's image; DefaultImage adds the version's tag.
	ImageRepository = "ghcr.io/kube-vrrp/kube-vrrp"

	// ManifestDir is the kubelet's static pod directory in a kubeadm cluster.
	ManifestDir = "/etc/kubernetes/manifests"
	// ManifestFile is the Pod manifest's name in ManifestDir.
	ManifestFile = "kube-vrrp.yaml"
	// VirtualIPFile and SecretFile are the names of the other files in ConfigDir.
	VirtualIPFile = "vip.yaml"
	SecretFile    = "secret.yaml"
	// KubeconfigFile is the usual name in ConfigDir of Options.Kubeconfig.
	KubeconfigFile = "kubeconfig"

	// PodName and PodNamespace name the static pod; the kubelet appends the node's name.
	PodName      = "kube-vrrp"
	PodNamespace = "kube-system"
	// StateDir is the agent's state directory on the host, the chart's stateDir: the host lock
	// keeps a DaemonSet agent of the chart and this pod from both running on one node.
	StateDir = "/run/kube-vrrp"
	// AgentUID is the image's non-root user, which must own the Secret file.
	AgentUID = 65532
	// VirtualIPHashAnnotation holds the SHA-256 of the VirtualIP file on the Pod, so that the
	// kubelet restarts the pod when the VirtualIP changes.
	VirtualIPHashAnnotation = "kubevrrp.io/virtualip-sha256"
)

// The priority arithmetic (see the package documentation).
const (
	// MinPriority and MaxPriority bound a node's priority so that APIServerWeight always
	// puts a node whose API server is down below every node whose API server is up.
	MinPriority = 101
	MaxPriority = 200
	// APIServerWeight is added to the priority while the API server probe fails.
	APIServerWeight = -100
)

// The API server probe.
const (
	ProbeName     = "apiserver"
	ProbeInterval = 200 * time.Millisecond
	ProbeTimeout  = 150 * time.Millisecond
	ProbeFall     = 2
	ProbeRise     = 2
	// DetectWithin bounds the time from an API server's death (or hang) to a failing probe:
	// the next check starts within an interval, fall-1 more follow, the last lasts at most the
	// timeout.
	DetectWithin = ProbeFall*ProbeInterval + ProbeTimeout
)

const (
	// terminationGracePeriod bounds the priority-0 handover at SIGTERM, which takes
	// milliseconds (every host operation is bounded by 2 s, docs/design.md §2.3).
	terminationGracePeriod = 10
	// nodeCriticalPriority is the priority of the class system-node-critical. The kubelet
	// wants both on a static pod: without the number it ignores the class.
	nodeCriticalPriority  = 2000001000
	nodeCriticalClassName = "system-node-critical"
	// containerStateDir is where the state directory is mounted, as in the chart.
	containerStateDir = "/var/run/kube-vrrp"
	// secretKey is the Secret's key of the password.
	secretKey = "password"
)

// Options describe one control-plane node's kube-vrrp.
type Options struct {
	// Name of the VirtualIP; default DefaultName.
	Name string
	// Node is this node's name (the kubelet's), as spec.nodes names it; required.
	Node string
	// Address is the VIP with the prefix length of its subnet (198.18.0.100/24); required.
	Address netip.Prefix
	// Interface carries adverts and the VIP; empty means the interface holding a node address
	// in Address's subnet.
	Interface string
	// VRID is the virtual router id, 1..255, the same on every node; required.
	VRID int
	// Priority is this node's, MinPriority..MaxPriority; give each node its own.
	Priority int
	// Peers are the other control-plane nodes' addresses: unicast adverts to them. Empty means
	// multicast.
	Peers []netip.Addr
	// Password, if set, is a PASS password (1..8 bytes): VRRPv2 with 1 s adverts, as
	// keepalived's auth_type PASS. It goes into Files.Secret only.
	Password string
	// APIServer is host:port of this node's kube-apiserver; default DefaultAPIServer.
	APIServer string
	// CAFile is the CA bundle the API server's certificate is verified against; default
	// DefaultCAFile.
	CAFile string
	// ServerName is the name verified in the API server's certificate; default
	// DefaultServerName.
	ServerName string
	// Image is the kube-vrrp image; required (DefaultImage gives the project's).
	Image string
	// ConfigDir is the host directory of the VirtualIP and Secret files; default
	// DefaultConfigDir.
	ConfigDir string
	// Interval is the advertisement interval; default 100ms (VRRPv3), 1s with Password.
	Interval time.Duration
	// Kubeconfig, if set, is the absolute path of a kubeconfig in ConfigDir (which the pod
	// mounts read-only) with which `kube-vrrp run` mirrors the VIP's status to the cluster
	// (docs/design.md §7.11): a client certificate of user kube-vrrp:node:<Node> in group
	// kube-vrrp:control-plane, owner AgentUID, mode 0600. It need not exist yet when the pod
	// starts; VRRP never waits for it.
	Kubeconfig string
}

// Files is what Generate makes.
type Files struct {
	// Manifest is the static Pod, for ManifestDir/ManifestFile.
	Manifest []byte
	// VirtualIP is for ConfigDir/VirtualIPFile.
	VirtualIP []byte
	// Secret holds the password, for ConfigDir/SecretFile (owner AgentUID, mode 0600); nil
	// without a password.
	Secret []byte
}

// DefaultImage is the project's image of a version, as `make image` names it.
func DefaultImage(version string) string {
	return ImageRepository + ":" + version
}

// APIServerProbe is the probe of a kube-apiserver's /readyz at apiServer (host:port), verified
// against caFile under serverName, with the timing and weight of the package documentation.
// The keepalived converter maps the kubeadm guide's check_apiserver script to it.
func APIServerProbe(apiServer, caFile, serverName string) v1alpha1.ProbeSpec {
	host, port, err := net.SplitHostPort(apiServer)
	hostport := apiServer
	if err == nil {
		hostport = net.JoinHostPort(host, port)
	}
	return v1alpha1.ProbeSpec{
		Name: ProbeName,
		HTTP: &v1alpha1.HTTPProbe{
			URL: "https://" + hostport + "/readyz",
			TLS: &v1alpha1.HTTPProbeTLS{CAFile: caFile, ServerName: serverName},
		},
		Interval: &v1alpha1.Duration{Duration: ProbeInterval},
		Timeout:  &v1alpha1.Duration{Duration: ProbeTimeout},
		Fall:     ptr(int32(ProbeFall)),
		Rise:     ptr(int32(ProbeRise)),
		Weight:   APIServerWeight,
	}
}

// Generate validates o and returns the node's files. Every error says which input to change.
func Generate(o Options) (Files, error) {
	o.defaults()
	if err := o.check(); err != nil {
		return Files{}, err
	}
	vip := o.virtualIP()
	if errs := desired.Validate(&vip); len(errs) > 0 {
		return Files{}, translate(errs)
	}
	var f Files
	var err error
	if f.VirtualIP, err = render(o.vipHeader(), &vip); err != nil {
		return Files{}, err
	}
	if o.Password != "" {
		if fe := desired.ValidatePassword(&vip, []byte(o.Password)); fe != nil {
			return Files{}, fmt.Errorf("password: %s", fe.Detail)
		}
		if f.Secret, err = render(o.secretHeader(), o.secret()); err != nil {
			return Files{}, err
		}
	}
	sum := sha256.Sum256(f.VirtualIP)
	if f.Manifest, err = render(o.podHeader(), o.pod(hex.EncodeToString(sum[:]))); err != nil {
		return Files{}, err
	}
	return f, nil
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.APIServer == "" {
		o.APIServer = DefaultAPIServer
	}
	if o.CAFile == "" {
		o.CAFile = DefaultCAFile
	}
	if o.ServerName == "" {
		o.ServerName = DefaultServerName
	}
	if o.ConfigDir == "" {
		o.ConfigDir = DefaultConfigDir
	}
	if o.Interval == 0 {
		o.Interval = desired.DefaultIntervalV3
		if o.Password != "" {
			o.Interval = desired.DefaultIntervalV2
		}
	}
}

// check refuses what the VirtualIP's rules would refuse in words about Options, and what only
// the Pod cares about.
func (o *Options) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if msgs := validation.IsDNS1123Subdomain(o.Name); len(msgs) > 0 || len(o.Name) > validation.DNS1123SubdomainMaxLength-len(secretSuffix) {
		bad("name %q: give a DNS name of lowercase letters, digits, '-' and '.', at most %d characters", o.Name,
			validation.DNS1123SubdomainMaxLength-len(secretSuffix))
	}
	switch {
	case o.Node == "":
		bad("node: required: give this node's name as the kubelet registers it (kubectl get nodes)")
	case len(validation.IsDNS1123Subdomain(o.Node)) > 0:
		bad("node %q: a node name is a DNS name of lowercase letters, digits, '-' and '.' (kubectl get nodes)", o.Node)
	}

	switch a := o.Address.Addr(); {
	case !o.Address.IsValid():
		bad("address: required: give the VIP with its subnet's prefix length, e.g. 198.18.0.100/24")
	case a.Is4In6():
		bad("address %s: write an IPv4 address as such, not IPv4-mapped IPv6", o.Address)
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		bad("address %s: a VIP is a unicast address, not unspecified, loopback, multicast or broadcast", o.Address)
	case o.Address.Bits() == 0:
		bad("address %s: a /0 prefix claims every address: give the subnet's prefix length, e.g. /24", o.Address)
	case o.Address.IsSingleIP() && o.Interface == "":
		bad("address %s: a /%d has no subnet to find the interface by: give the prefix length of the nodes' subnet (e.g. /24) or the interface", o.Address, o.Address.Bits())
	case o.Password != "" && a.Is6():
		bad("password: PASS exists only in VRRPv2, which carries only IPv4; %s is IPv6: drop the password", o.Address)
	}
	if o.VRID < vrrp.MinVRID || o.VRID > vrrp.MaxVRID {
		bad("vrid %d: give %d..%d, the same on every control-plane node and unique on the LAN", o.VRID, vrrp.MinVRID, vrrp.MaxVRID)
	}
	if o.Priority < MinPriority || o.Priority > MaxPriority {
		bad("priority %d: give %d..%d (e.g. 150, 140, 130 on three nodes): the API server probe lowers a node's priority by %d, "+
			"which puts a node whose API server is down below every node whose API server is up only within that range",
			o.Priority, MinPriority, MaxPriority, -APIServerWeight)
	}
	if o.Interface != "" {
		if err := probe.CheckInterfaceName(o.Interface); err != nil {
			bad("interface %q: %v", o.Interface, err)
		}
	}
	if n := len(o.Password); o.Password != "" && n > packet.PassLen {
		bad("password: %d bytes, PASS takes 1..%d (keepalived uses only the first %d of a longer auth_pass: give those)", n, packet.PassLen, packet.PassLen)
	}
	if err := probe.CheckAddress(o.APIServer); err != nil {
		bad("apiserver %q: %v", o.APIServer, err)
	}
	if err := probe.CheckCredentialFile(o.CAFile); err != nil {
		bad("ca file %q: %v", o.CAFile, err)
	} else if err := checkHostDir(path.Dir(o.CAFile)); err != nil {
		bad("ca file %q: its directory is mounted into the pod, and %v: put the CA bundle in a directory of its own, e.g. %s", o.CAFile, err, path.Dir(DefaultCAFile))
	}
	if err := probe.CheckServerName(o.ServerName); err != nil {
		bad("server name %q: %v", o.ServerName, err)
	}
	if err := checkImage(o.Image); err != nil {
		bad("image %q: %v", o.Image, err)
	}
	if err := probe.CheckCredentialFile(o.ConfigDir); err != nil {
		bad("config dir %q: give an absolute directory path (no //, . or .. parts, no trailing /), e.g. %s", o.ConfigDir, DefaultConfigDir)
	} else if err := checkHostDir(o.ConfigDir); err != nil {
		bad("config dir %q: %v: use a directory of its own, e.g. %s", o.ConfigDir, err, DefaultConfigDir)
	}
	if o.Kubeconfig != "" {
		switch err := probe.CheckCredentialFile(o.Kubeconfig); {
		case err != nil:
			bad("kubeconfig %q: give an absolute file path (no //, . or .. parts), e.g. %s", o.Kubeconfig, o.configPath(KubeconfigFile))
		case !strings.HasPrefix(o.Kubeconfig, o.ConfigDir+"/"):
			bad("kubeconfig %q: put it in the config dir %s, which the pod mounts, e.g. %s", o.Kubeconfig, o.ConfigDir, o.configPath(KubeconfigFile))
		case o.Kubeconfig == o.configPath(VirtualIPFile) || o.Kubeconfig == o.configPath(SecretFile):
			bad("kubeconfig %q: the VirtualIP or the Secret file goes there: use another name, e.g. %s", o.Kubeconfig, o.configPath(KubeconfigFile))
		}
	}
	for _, p := range o.Peers {
		switch {
		case !p.IsValid():
			bad("peer: an empty address: give each other control-plane node's address")
		case p == o.Address.Addr():
			bad("peer %s is the VIP: list the other control-plane nodes' own addresses", p)
		}
	}
	if o.Interval < 0 {
		bad("interval %s: give a positive advertisement interval, or none for the default", o.Interval)
	}
	return errors.Join(errs...)
}

// checkHostDir says why dir cannot be a hostPath mounted at the same path in the pod.
func checkHostDir(dir string) error {
	if strings.Count(dir, "/") < 2 {
		return fmt.Errorf("%s would mount too much of the host", dir)
	}
	for _, p := range []string{"/proc", "/sys", "/dev", "/run", "/var/run", ManifestDir} {
		if dir == p || strings.HasPrefix(dir, p+"/") {
			return fmt.Errorf("%s is under %s", dir, p)
		}
	}
	return nil
}

// checkImage accepts an image reference as the kubelet takes it: no spaces or control
// characters, not an option.
func checkImage(s string) error {
	switch {
	case s == "":
		return errors.New("required: give the kube-vrrp image, e.g. " + DefaultImage("v0.1.0"))
	case len(s) > 512:
		return errors.New("longer than 512 bytes")
	case strings.HasPrefix(s, "-"):
		return errors.New("an image reference does not start with '-'")
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII }) >= 0:
		return errors.New("an image reference has no spaces, control or non-ASCII characters")
	}
	return nil
}

// translate names the inputs behind errors of the generated VirtualIP.
func translate(errs field.ErrorList) error {
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		out = append(out, fmt.Errorf("%s: %s", optionOf(e.Field), e.ErrorBody()))
	}
	return errors.Join(out...)
}

func optionOf(f string) string {
	for _, m := range []struct{ field, option string }{
		{"metadata.name", "name"},
		{"spec.vrid", "vrid"},
		{"spec.version", "address"},
		{"spec.addresses", "address"},
		{"spec.advertisementInterval", "interval"},
		{"spec.interface", "interface"},
		{"spec.nodes", "node"},
		{"spec.unicast.peers", "peers"},
		{"spec.probes[0].http.tls.caFile", "ca file"},
		{"spec.probes[0].http.tls.serverName", "server name"},
		{"spec.probes[0].http.url", "apiserver"},
	} {
		if f == m.field || strings.HasPrefix(f, m.field+".") || strings.HasPrefix(f, m.field+"[") {
			return m.option
		}
	}
	return f
}

const secretSuffix = "-vrrp-auth"

func (o *Options) virtualIP() v1alpha1.VirtualIP {
	version := int32(3)
	if o.Password != "" {
		version = 2
	}
	spec := v1alpha1.VirtualIPSpec{
		VRID:                  int32(o.VRID),
		Version:               version,
		Interface:             o.Interface,
		Addresses:             []string{o.Address.String()},
		AdvertisementInterval: &v1alpha1.Duration{Duration: o.Interval},
		Nodes:                 []v1alpha1.NodeOverride{{Name: o.Node, Priority: ptr(int32(o.Priority))}},
		Probes:                []v1alpha1.ProbeSpec{APIServerProbe(o.APIServer, o.CAFile, o.ServerName)},
	}
	if len(o.Peers) > 0 {
		// Only the listed peers: run knows no other nodes, and fromNodes would add none.
		spec.Unicast = &v1alpha1.UnicastSpec{Peers: make([]string, len(o.Peers))}
		for i, p := range o.Peers {
			spec.Unicast.Peers[i] = p.String()
		}
	}
	if o.Password != "" {
		spec.Authentication = &v1alpha1.AuthenticationSpec{
			Type:      desired.AuthPass,
			SecretRef: v1alpha1.SecretKeyRef{Name: o.Name + secretSuffix, Key: secretKey},
		}
	}
	return v1alpha1.VirtualIP{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VirtualIP"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name},
		Spec:       spec,
	}
}

// secret is read by `kube-vrrp run -f`, never applied to a cluster: a static pod cannot
// reference a Secret. data, not stringData, so that any byte of the password survives.
func (o *Options) secret() *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name + secretSuffix},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{secretKey: []byte(o.Password)},
	}
}

func (o *Options) configPath(name string) string { return path.Join(o.ConfigDir, name) }

// pod is the static Pod. vipHash is the SHA-256 of the VirtualIP file, as an annotation: the
// kubelet restarts a static pod when its object changes, and `kube-vrrp run` reads its files
// only at start, so a changed VirtualIP must change the Pod. The Secret is not hashed: a hash
// of a password of at most 8 bytes is no secret.
func (o *Options) pod(vipHash string) *corev1.Pod {
	args := []string{"run", "-f", o.configPath(VirtualIPFile)}
	if o.Password != "" {
		args = append(args, "-f", o.configPath(SecretFile))
	}
	args = append(args, "--node", o.Node, "--state-dir="+containerStateDir)
	if o.Kubeconfig != "" {
		// In ConfigDir, mounted read-only; a file installed after the pod started is read
		// then (run looks for it again).
		args = append(args, "--kubeconfig", o.Kubeconfig)
	}

	hostPath := func(name, p string, t corev1.HostPathType) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p, Type: &t}}}
	}
	volumes := []corev1.Volume{
		hostPath("state", StateDir, corev1.HostPathDirectoryOrCreate),
		hostPath("config", o.ConfigDir, corev1.HostPathDirectory),
	}
	mounts := []corev1.VolumeMount{
		{Name: "state", MountPath: containerStateDir},
		{Name: "config", MountPath: o.ConfigDir, ReadOnly: true},
	}
	if caDir := path.Dir(o.CAFile); caDir != o.ConfigDir {
		volumes = append(volumes, hostPath("ca", caDir, corev1.HostPathDirectory))
		mounts = append(mounts, corev1.VolumeMount{Name: "ca", MountPath: caDir, ReadOnly: true})
	}
	resources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("48Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	seccomp := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        PodName,
			Namespace:   PodNamespace,
			Labels:      map[string]string{"component": PodName, "tier": "control-plane"},
			Annotations: map[string]string{VirtualIPHashAnnotation: vipHash},
		},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			EnableServiceLinks:            ptr(false),
			PriorityClassName:             nodeCriticalClassName,
			Priority:                      ptr(int32(nodeCriticalPriority)),
			TerminationGracePeriodSeconds: ptr(int64(terminationGracePeriod)),
			InitContainers: []corev1.Container{{
				Name:            "state-dir",
				Image:           o.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            []string{"state-dir", fmt.Sprintf("--owner=%d:%d", AgentUID, AgentUID), containerStateDir},
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             ptr(false),
					RunAsUser:                ptr(int64(0)),
					RunAsGroup:               ptr(int64(0)),
					Privileged:               ptr(false),
					AllowPrivilegeEscalation: ptr(false),
					ReadOnlyRootFilesystem:   ptr(true),
					// CHOWN for the directory; the two others only because the kernel refuses to
					// exec a binary whose file capabilities the bounding set lacks.
					Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"CHOWN", "NET_ADMIN", "NET_RAW"}},
					SeccompProfile: seccomp,
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "state", MountPath: containerStateDir}},
				Resources:    resources,
			}},
			Containers: []corev1.Container{{
				Name:            PodName,
				Image:           o.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            args,
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             ptr(true),
					RunAsUser:                ptr(int64(AgentUID)),
					RunAsGroup:               ptr(int64(AgentUID)),
					Privileged:               ptr(false),
					AllowPrivilegeEscalation: ptr(false),
					ReadOnlyRootFilesystem:   ptr(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}},
					SeccompProfile:           seccomp,
				},
				VolumeMounts: mounts,
				Resources:    resources,
			}},
			Volumes: volumes,
		},
	}
}

func (o *Options) podHeader() string {
	return fmt.Sprintf(`# kube-vrrp static pod: the control-plane VIP %s (VRID %d) on node %s, priority %d.
# Install as %s (mode 0600) on %s; it reads %s.
# Generated by kube-vrrp static-pod.
`, o.Address, o.VRID, o.Node, o.Priority, path.Join(ManifestDir, ManifestFile), o.Node, o.configPath(VirtualIPFile))
}

func (o *Options) vipHeader() string {
	return fmt.Sprintf(`# Install as %s on %s (readable by uid %d): the VirtualIP the kube-vrrp static pod runs.
# The apiserver probe lowers the priority by %d while %s/readyz is not ready.
`, o.configPath(VirtualIPFile), o.Node, AgentUID, -APIServerWeight, o.APIServer)
}

func (o *Options) secretHeader() string {
	return fmt.Sprintf(`# Install as %s on %s, owner uid %d, mode 0600:
#   install -o %d -g %d -m 0600 %s %s
# Read by kube-vrrp run; never apply it to the cluster.
`, o.configPath(SecretFile), o.Node, AgentUID, AgentUID, AgentUID, SecretFile, o.configPath(SecretFile))
}

// render writes header and obj as YAML with sorted keys, without status and an empty
// creationTimestamp, as a hand-written manifest.
func render(header string, obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("staticpod: encode: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("staticpod: encode: %w", err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
		delete(md, "creationTimestamp")
	}
	y, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("staticpod: encode YAML: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(header)
	b.Write(y)
	return b.Bytes(), nil
}

func ptr[T any](v T) *T { return &v }
