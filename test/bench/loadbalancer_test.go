package bench_test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"gonum.org/v1/plot/vg"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

var (
	lbRuns = flag.Int("lb.runs", 10, "measurements of each implementation per event in BenchmarkLoadBalancer (implementations alternate)")
	// metallbDir holds what hack/metallb.sh builds: speaker, controller, crd/*.yaml, rbac/role.yaml.
	metallbDir = flag.String("lb.metallb", os.Getenv("KUBE_VRRP_METALLB"),
		"directory of MetalLB's speaker, controller, crd/ and rbac/ (hack/metallb.sh prints it; default $KUBE_VRRP_METALLB, else the newest bin/metallb/*)")
)

const (
	// lbRole labels the nodes both implementations announce from (the pool's template selects
	// them; MetalLB's L2Advertisement takes every node).
	lbRole = "node-role.kubernetes.io/lb"
	// metallbNS is MetalLB's namespace, as its manifests install it.
	metallbNS = "metallb-system"
	// metallbLabels select the speakers' pods, whose IPs memberlist joins (METALLB_ML_LABELS of
	// MetalLB's manifests).
	metallbLabels = "app=metallb,component=speaker"
	// metallbMetricsPort is the speaker's /metrics (its manifests' --port).
	metallbMetricsPort = 7472
	// lbTimeout bounds one measurement after the fault (memberlist's suspicion alone takes
	// seconds); lbSettle the return to one announcer after a restore.
	lbTimeout = 60 * time.Second
	lbSettle  = 2 * time.Minute
)

// The Services' addresses: kube-vrrp's pool and MetalLB's IPAddressPool, apart.
var (
	lbKubeVRRPRange = "198.18.0.100-198.18.0.109"
	lbMetalLBRange  = "198.18.0.120-198.18.0.129"
	lbStandIn       = []string{lbKubeVRRPRange, lbMetalLBRange}
)

// lbSystem is one implementation of Services of type LoadBalancer on layer 2.
type lbSystem struct {
	name string
	// service is its Service's name; class its spec.loadBalancerClass.
	service string
	class   *string
	// startSpeaker starts its per-node process on n (kube-vrrp agent, MetalLB speaker).
	startSpeaker func(e *lbBench, n *lab.Node) (*lab.Proc, error)
	// startController starts its controller (in the control plane's namespace).
	startController func(e *lbBench) (*lab.Proc, error)
	// announcers are the nodes that announce addr now, by their own account: kube-vrrp's hold
	// it on their lab link, MetalLB's speakers report it in metallb_speaker_announced.
	announcers func(e *lbBench, addr netip.Addr) []*lab.Node
	// clean waits until a restarted speaker on n has undone what its killed predecessor left
	// (nil: it leaves nothing in the kernel).
	clean func(e *lbBench, n *lab.Node, addr netip.Addr) error
}

var lbSystems = []*lbSystem{
	{
		name: "kube-vrrp", service: "web-kube-vrrp", class: ptr.To(v1alpha1.LoadBalancerClass),
		startSpeaker: func(e *lbBench, n *lab.Node) (*lab.Proc, error) {
			state, err := n.StateDir(0)
			if err != nil {
				return nil, err
			}
			p, err := n.Exec(context.Background(), "kube-vrrp-agent", lbNice(e.bin, "agent", "--state-dir", state,
				"--node-name", n.Name, "--namespace", cluster.Namespace, "--kubeconfig", e.agentKubeconfig,
				"--metrics-bind-address", "0", "--log-format", "json")...)
			if err != nil {
				return nil, err
			}
			return p, p.WaitLog("kube-vrrp agent running", 0, 30*time.Second)
		},
		startController: func(e *lbBench) (*lab.Proc, error) {
			p, err := e.cp.Host.Exec(context.Background(), "kube-vrrp-controller", lbNice(e.bin, "controller",
				"--kubeconfig", e.lbKubeconfig, "--namespace", cluster.Namespace,
				"--health-probe-bind-address", "127.0.0.1:9404", "--log-format", "json")...)
			if err != nil {
				return nil, err
			}
			return p, p.WaitLog("kube-vrrp controller running", 0, 30*time.Second)
		},
		announcers: func(e *lbBench, addr netip.Addr) []*lab.Node {
			return lab.Holders(e.l.Nodes(), netip.PrefixFrom(addr, 24))
		},
		clean: func(e *lbBench, n *lab.Node, addr netip.Addr) error {
			// The killed agent's address stays on the link until its successor's RemoveStale.
			return lab.WaitHolders([]*lab.Node{n}, netip.PrefixFrom(addr, 24), nil, 30*time.Second)
		},
	},
	{
		name: "MetalLB", service: "web-metallb", // no class: MetalLB's default (no --lb-class)
		startSpeaker: func(e *lbBench, n *lab.Node) (*lab.Proc, error) {
			// The environment of MetalLB's speaker DaemonSet (config/controllers/speaker.yaml):
			// hostNetwork, so the pod's IP is the node's; memberlist on, as its manifests run it.
			ip := n.IPv4.String()
			argv := append([]string{"env", "KUBECONFIG=" + e.speakerKubeconfig,
				"METALLB_NODE_NAME=" + n.Name, "METALLB_POD_NAME=speaker-" + n.Name, "METALLB_HOST=" + ip,
				"METALLB_ML_BIND_ADDR=" + ip, "METALLB_ML_LABELS=" + metallbLabels,
				"METALLB_ML_SECRET_KEY_PATH=" + e.mlSecretDir, "METALLB_NAMESPACE=" + metallbNS},
				lbNice(filepath.Join(e.metallb, "speaker"), "--port="+strconv.Itoa(metallbMetricsPort), "--log-level=info")...)
			p, err := n.Exec(context.Background(), "metallb-speaker", argv...)
			if err != nil {
				return nil, err
			}
			return p, p.WaitLog("MetalLB speaker starting", 0, 30*time.Second)
		},
		startController: func(e *lbBench) (*lab.Proc, error) {
			// Its webhooks off (they need a Service and certificates in the pod network; the
			// lab's objects are valid) and so its certificate rotation.
			argv := append([]string{"env", "KUBECONFIG=" + e.mlbControllerKubeconfig, "METALLB_NAMESPACE=" + metallbNS},
				lbNice(filepath.Join(e.metallb, "controller"), "--port=7473", "--log-level=info",
					"--webhook-mode=disabled", "--disable-cert-rotation=true")...)
			p, err := e.cp.Host.Exec(context.Background(), "metallb-controller", argv...)
			if err != nil {
				return nil, err
			}
			return p, p.WaitLog("MetalLB controller starting", 0, 30*time.Second)
		},
		announcers: func(e *lbBench, addr netip.Addr) []*lab.Node {
			var out []*lab.Node
			for _, n := range e.l.Nodes() {
				if metallbAnnounces(n, addr) {
					out = append(out, n)
				}
			}
			return out
		},
	},
}

// lbNice prefixes argv with the bench's niceness, the same for both implementations.
func lbNice(argv ...string) []string {
	if *nice == 0 {
		return argv
	}
	return append([]string{"nice", "-n", strconv.Itoa(*nice)}, argv...)
}

// lbEvent is a fault on the announcing node and its undoing.
type lbEvent struct {
	name    string
	fault   func(e *lbBench, n *lab.Node) error
	restore func(e *lbBench, n *lab.Node, addr netip.Addr) error
}

var lbEvents = []lbEvent{
	{name: "link cut", fault: func(e *lbBench, n *lab.Node) error {
		return n.CutLink()
	}, restore: func(e *lbBench, n *lab.Node, _ netip.Addr) error {
		if err := n.RestoreLink(); err != nil {
			return err
		}
		return e.rejoin(n)
	}},
	{name: "SIGTERM", fault: func(e *lbBench, n *lab.Node) error {
		return e.speakers[n.Name].Signal(syscall.SIGTERM)
	}, restore: func(e *lbBench, n *lab.Node, _ netip.Addr) error {
		if err := e.speakers[n.Name].Wait(15 * time.Second); errors.Is(err, lab.ErrRunning) {
			return fmt.Errorf("%s's %s still runs 15 s after SIGTERM", n, e.sys.name)
		}
		return e.restartSpeaker(n)
	}},
	// A powered-off node: its link loses carrier and its processes are gone at once (no
	// goodbye: SIGKILL), as a power cut or a kernel panic leaves them.
	{name: "power-off", fault: func(e *lbBench, n *lab.Node) error {
		if err := n.LinkDown(); err != nil {
			return err
		}
		e.speakers[n.Name].Kill()
		return nil
	}, restore: func(e *lbBench, n *lab.Node, addr netip.Addr) error {
		// Booted again: the speaker starts before the link is up, and a kube-vrrp agent
		// removes the address its killed predecessor left before the node is back on the LAN.
		if e.sys.clean == nil {
			if err := n.RestoreLink(); err != nil {
				return err
			}
			if err := e.restartSpeaker(n); err != nil {
				return err
			}
			return e.rejoin(n)
		}
		if err := e.restartSpeaker(n); err != nil {
			return err
		}
		if err := e.sys.clean(e, n, addr); err != nil {
			return err
		}
		return n.RestoreLink()
	}},
}

// lbBench is the lab of BenchmarkLoadBalancer: three nodes, the control plane in the client's
// namespace, both implementations installed, one of them running.
type lbBench struct {
	b       *testing.B
	l       *lab.Lab
	cp      *cluster.ControlPlane
	k8s     client.Client
	bin     string
	metallb string

	agentKubeconfig, lbKubeconfig              string
	speakerKubeconfig, mlbControllerKubeconfig string
	mlSecretDir                                string

	// The running implementation: its speakers by node and its controller.
	sys        *lbSystem
	speakers   map[string]*lab.Proc
	controller *lab.Proc
}

// lbSample is one measurement.
type lbSample struct {
	// arpMoved is the time from the fault until the client's neighbour entry for the address
	// named another node's MAC (polled every 10 ms).
	arpMoved time.Duration
	// outage is the longest time between answered probes (every 10 ms) from the fault on.
	outage time.Duration
	// lost counts the probes sent after the fault that were not answered within
	// lbReplyLimit, late those of them answered later.
	lost, late int
	sendGap    time.Duration
	from       string
	to         string
	// trail is what the client saw after the fault, for the samples file: when each node
	// first answered, and each change of its ARP entry.
	trail string
}

// lbOutage and lbARP give summarize one of a sample's two figures.
type lbOutage lbSample
type lbARP lbSample

func (s lbOutage) times() (time.Duration, time.Duration) { return s.outage, s.sendGap }
func (s lbARP) times() (time.Duration, time.Duration)    { return s.arpMoved, s.sendGap }

// BenchmarkLoadBalancer measures what a client of a Service of type LoadBalancer sees when the
// node that announces its address fails, for kube-vrrp (agent per node, `kube-vrrp controller`,
// a VirtualIPPool, the VirtualIP's default VRRPv3 100 ms adverts) and MetalLB's layer 2 mode
// (hack/metallb.sh's v0.15.2: a speaker per node with memberlist as its manifests run it, its
// controller, an IPAddressPool and an L2Advertisement), in the same lab and run, one at a time
// in alternating order, -lb.runs times each. Events on the announcing node: its link cut (it
// keeps carrier), SIGTERM of its speaker or agent, power-off (carrier lost, the process
// SIGKILLed). Two figures each: when the client's ARP entry for the address names the new
// node (polled every 10 ms), and the client's outage (a UDP probe every 10 ms). A Service's
// traffic on the nodes is kube-proxy's (iptables mode): a stand-in DNATs the Services'
// addresses on every node to the node's own, where the lab's responder answers, so every
// node forwards what reaches it, as kube-proxy does whether the node announces or not. Both
// Services have an EndpointSlice with a ready endpoint on every node (MetalLB announces only
// Services with one; nothing here runs kube-controller-manager). It prints the median, min
// and max per event and implementation and asserts nothing about them.
func BenchmarkLoadBalancer(b *testing.B) {
	privtest.Require(b)
	envtestassets.Require(b)
	dir, err := findMetalLB()
	if err != nil {
		b.Skip(err)
	}
	e := &lbBench{b: b, bin: lab.KubeVRRPBinary(b), metallb: dir}
	l, closeLab, err := lab.Open(lab.Options{Nodes: 3, Nice: *nice, Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := closeLab(); err != nil {
			b.Errorf("closing lab: %v", err)
		}
	}()
	e.l = l
	cp, err := cluster.Start(b.Context(), l, cluster.Options{Nice: *nice, Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Close()
	e.cp, e.k8s = cp, cp.Client()
	if err := e.setup(); err != nil {
		b.Fatal(err)
	}
	results := map[string]map[string][]lbSample{}
	for _, s := range lbSystems {
		results[s.name] = map[string][]lbSample{}
	}
	for range b.N {
		for i := range *lbRuns {
			order := slices.Clone(lbSystems)
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				if err := e.run(s, i+1, results[s.name]); err != nil {
					b.Errorf("%s run %d: %v", s.name, i+1, err)
				}
			}
		}
	}
	lbReport(b, dir, results)
}

// findMetalLB returns the directory of MetalLB's binaries, CRDs and RBAC.
func findMetalLB() (string, error) {
	dir := *metallbDir
	if dir == "" {
		root, err := envtestassets.ModuleRoot()
		if err != nil {
			return "", err
		}
		ds, _ := filepath.Glob(filepath.Join(root, "bin", "metallb", "*", "speaker"))
		if len(ds) == 0 {
			return "", errors.New("MetalLB not built: run hack/metallb.sh (make bench does), or give -lb.metallb")
		}
		dir = filepath.Dir(ds[len(ds)-1])
	}
	for _, f := range []string{"speaker", "controller", "rbac/role.yaml", "crd/metallb.io_ipaddresspools.yaml", "crd/metallb.io_l2advertisements.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("MetalLB in %s: %w (hack/metallb.sh builds it)", dir, err)
		}
	}
	return dir, nil
}

// setup installs both implementations' CRDs and RBAC, registers the nodes, writes the pools
// and the kube-proxy stand-in. Nothing runs yet.
func (e *lbBench) setup() error {
	ctx := e.b.Context()
	cp := e.cp
	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil {
		return err
	}
	if err := cp.InstallLBController(ctx); err != nil {
		return err
	}
	if err := cp.RegisterNodes(ctx, e.l.Nodes(), map[string]string{lbRole: ""}); err != nil {
		return err
	}
	var err error
	if e.agentKubeconfig, err = cp.AgentKubeconfig(); err != nil {
		return err
	}
	if e.lbKubeconfig, err = cp.ServiceAccountKubeconfig(cluster.Namespace, cluster.LBControllerServiceAccount); err != nil {
		return err
	}
	if err := e.k8s.Create(ctx, &v1alpha1.VirtualIPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.VirtualIPPoolSpec{
		IPv4: &v1alpha1.IPv4Pool{Addresses: []string{lbKubeVRRPRange}, PrefixLength: ptr.To[int32](24),
			VRIDs: v1alpha1.VRIDRange{First: 100, Last: 109}},
		Template: v1alpha1.VirtualIPTemplate{NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{lbRole: ""}}},
	}}); err != nil {
		return err
	}
	if err := e.setupMetalLB(); err != nil {
		return fmt.Errorf("MetalLB: %w", err)
	}
	for _, n := range e.l.Nodes() {
		if err := kubeProxyStandIn(n); err != nil {
			return err
		}
	}
	return nil
}

// setupMetalLB applies MetalLB's CRDs, its ServiceAccounts bound to the roles of its
// config/rbac/role.yaml, a Pod object per speaker (memberlist finds its peers by listing them;
// nothing runs them, the speakers are processes in the nodes), the memberlist key, an
// IPAddressPool and an L2Advertisement.
func (e *lbBench) setupMetalLB() error {
	ctx := e.b.Context()
	crds, err := filepath.Glob(filepath.Join(e.metallb, "crd", "*.yaml"))
	if err != nil {
		return err
	}
	applied, err := e.cp.ApplyFiles(ctx, crds...)
	if err != nil {
		return err
	}
	if err := lbPoll(ctx, 30*time.Second, func() error {
		for _, crd := range applied {
			group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
			versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
			v, _ := versions[len(versions)-1].(map[string]any)
			ul := &unstructured.UnstructuredList{}
			ul.SetAPIVersion(group + "/" + fmt.Sprint(v["name"]))
			ul.SetKind(kind + "List")
			if err := e.k8s.List(ctx, ul); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("CRDs not served: %w", err)
	}

	// Its roles, without its bindings (whose subjects lack the namespace kustomize adds): the
	// speaker gets metallb-system:speaker and pod-lister, the controller
	// metallb-system:controller and controller, as its manifests bind them.
	raw, err := os.ReadFile(filepath.Join(e.metallb, "rbac", "role.yaml"))
	if err != nil {
		return err
	}
	objs, err := cluster.Decode(raw)
	if err != nil {
		return err
	}
	roles := map[string][]byte{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Role":
			o.SetNamespace(metallbNS)
		case "ClusterRole":
		default:
			continue
		}
		j, err := json.Marshal(o.Object)
		if err != nil {
			return err
		}
		roles[o.GetName()] = j
	}
	for sa, names := range map[string][]string{"speaker": {"metallb-system:speaker", "pod-lister"}, "controller": {"metallb-system:controller", "controller"}} {
		var stream []byte
		for _, name := range names {
			if roles[name] == nil {
				return fmt.Errorf("no role %s in %s", name, filepath.Join(e.metallb, "rbac", "role.yaml"))
			}
			stream = append(append(stream, roles[name]...), '\n')
		}
		if err := e.cp.InstallServiceAccountRoles(ctx, metallbNS, sa, stream); err != nil {
			return fmt.Errorf("ServiceAccount %s: %w", sa, err)
		}
	}
	if e.speakerKubeconfig, err = e.cp.ServiceAccountKubeconfig(metallbNS, "speaker"); err != nil {
		return err
	}
	if e.mlbControllerKubeconfig, err = e.cp.ServiceAccountKubeconfig(metallbNS, "controller"); err != nil {
		return err
	}

	for _, n := range e.l.Nodes() {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "speaker-" + n.Name, Namespace: metallbNS,
				Labels: map[string]string{"app": "metallb", "component": "speaker"}},
			Spec: corev1.PodSpec{NodeName: n.Name, HostNetwork: true, ServiceAccountName: "speaker",
				AutomountServiceAccountToken: ptr.To(false),
				Containers:                   []corev1.Container{{Name: "speaker", Image: "quay.io/metallb/speaker:" + filepath.Base(e.metallb)}}},
		}
		if err := e.k8s.Create(ctx, pod); err != nil {
			return err
		}
		ip := n.IPv4.String()
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: ip, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if err := e.k8s.Status().Update(ctx, pod); err != nil {
			return err
		}
	}
	// The memberlist key, the Secret "memberlist" its manifests mount, as a file of the lab.
	key := make([]byte, 128)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	e.mlSecretDir = filepath.Join(e.l.Dir(), "metallb-memberlist")
	if err := os.MkdirAll(e.mlSecretDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.mlSecretDir, "secretkey"), key, 0o600); err != nil {
		return err
	}

	_, err = e.cp.Apply(ctx, []byte(fmt.Sprintf(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: %[1]s}
spec:
  addresses: [%[2]q]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: %[1]s}
spec:
  ipAddressPools: [lan]
`, metallbNS, lbMetalLBRange)))
	return err
}

// kubeProxyStandIn DNATs the Services' addresses arriving at n to n's own address, where the
// lab's responder answers: what kube-proxy's rules (iptables mode) do with a LoadBalancer
// address on every node, announcing or not. Nothing answers ARP for them but the
// implementation under test.
func kubeProxyStandIn(n *lab.Node) error {
	rules := fmt.Sprintf(`table ip kube-proxy-standin {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr { %s } dnat to %s
	}
}
`, strings.Join(lbStandIn, ", "), n.IPv4)
	path, err := n.WriteFile("kube-proxy-standin.nft", []byte(rules))
	if err != nil {
		return err
	}
	if out, err := n.Run("nft", "-f", path); err != nil {
		return fmt.Errorf("%s: kube-proxy stand-in: %w: %s", n, err, out)
	}
	return nil
}

// run starts sys on every node, creates its Service and EndpointSlice, measures each event on
// the announcing node once, then deletes them and stops sys.
func (e *lbBench) run(sys *lbSystem, run int, results map[string][]lbSample) (err error) {
	ctx := e.b.Context()
	e.sys, e.speakers = sys, map[string]*lab.Proc{}
	defer func() { err = errors.Join(err, e.stop()) }()
	for _, n := range e.l.Nodes() {
		p, err := sys.startSpeaker(e, n)
		e.speakers[n.Name] = p
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	if e.controller, err = sys.startController(e); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	svc, eps := e.service(sys)
	created := time.Now()
	if err := e.k8s.Create(ctx, svc); err != nil {
		return err
	}
	if err := e.k8s.Create(ctx, eps); err != nil {
		return err
	}
	addr, err := e.waitIngress(svc)
	if err != nil {
		return err
	}
	owner, err := e.baseline(addr)
	if err != nil {
		return err
	}
	e.b.Logf("%-9s run %d: Service created -> %s announced by %s and answered there: %v", sys.name, run, addr, owner,
		time.Since(created).Round(time.Millisecond))
	for i, ev := range lbEvents {
		if i > 0 {
			if owner, err = e.baseline(addr); err != nil {
				return fmt.Errorf("before %s: %w", ev.name, err)
			}
		}
		s, err := e.measure(addr, owner, func() error { return ev.fault(e, owner) })
		if err != nil {
			return fmt.Errorf("%s of %s: %w", ev.name, owner, err)
		}
		e.b.Logf("%-9s run %d %-9s: ARP moved %v, outage %v (%d probes lost, %d of them answered late), %s -> %s, prober max send gap %v", sys.name, run, ev.name,
			s.arpMoved.Round(time.Millisecond), s.outage.Round(time.Millisecond), s.lost, s.late, s.from, s.to, s.sendGap.Round(time.Millisecond))
		results[ev.name] = append(results[ev.name], s)
		if err := ev.restore(e, owner, addr); err != nil {
			return fmt.Errorf("restore after %s: %w", ev.name, err)
		}
	}
	if _, err := e.baseline(addr); err != nil {
		return fmt.Errorf("after the last event: %w", err)
	}
	if err := e.k8s.Delete(ctx, svc); err != nil {
		return err
	}
	if err := e.k8s.Delete(ctx, eps); err != nil {
		return err
	}
	return lbPoll(ctx, 30*time.Second, func() error {
		if a := sys.announcers(e, addr); len(a) > 0 {
			return fmt.Errorf("%s still announced by %v after the Service's deletion", addr, a)
		}
		return nil
	})
}

// service returns sys's Service and an EndpointSlice with a ready endpoint on every node.
func (e *lbBench) service(sys *lbSystem) (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: sys.service}, Spec: corev1.ServiceSpec{
		Type:              corev1.ServiceTypeLoadBalancer,
		LoadBalancerClass: sys.class,
		Selector:          map[string]string{"app": sys.service},
		Ports:             []corev1.ServicePort{{Name: "probe", Port: int32(e.l.ResponderPort()), Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt(e.l.ResponderPort())}},
	}}
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: sys.service + "-lab", Labels: map[string]string{
			discoveryv1.LabelServiceName: sys.service, discoveryv1.LabelManagedBy: "bench.kubevrrp.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("probe"), Port: ptr.To(int32(e.l.ResponderPort())), Protocol: ptr.To(corev1.ProtocolUDP)}},
	}
	for _, n := range e.l.Nodes() {
		eps.Endpoints = append(eps.Endpoints, discoveryv1.Endpoint{Addresses: []string{n.IPv4.String()}, NodeName: ptr.To(n.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
	}
	return svc, eps
}

// waitIngress waits for the Service's address in status.loadBalancer.ingress.
func (e *lbBench) waitIngress(svc *corev1.Service) (netip.Addr, error) {
	var addr netip.Addr
	err := lbPoll(e.b.Context(), 60*time.Second, func() error {
		s := &corev1.Service{}
		if err := e.k8s.Get(e.b.Context(), client.ObjectKeyFromObject(svc), s); err != nil {
			return err
		}
		if len(s.Status.LoadBalancer.Ingress) != 1 {
			return fmt.Errorf("Service %s: ingress %+v, want one address", svc.Name, s.Status.LoadBalancer.Ingress)
		}
		a, err := netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
		addr = a
		return err
	})
	if err != nil {
		return addr, fmt.Errorf("%w\ncontroller:\n%s", err, e.controller.Tail(10))
	}
	return addr, nil
}

// baseline waits until one node announces addr, the client reaches it there and its ARP
// entry names that node, all for a second, and returns the node.
func (e *lbBench) baseline(addr netip.Addr) (*lab.Node, error) {
	var owner *lab.Node
	var since time.Time
	err := lbPoll(e.b.Context(), lbSettle, func() error {
		a := e.sys.announcers(e, addr)
		if len(a) != 1 {
			since = time.Time{}
			return fmt.Errorf("%s announced by %v, want one node", addr, a)
		}
		who, err := e.l.WhoAnswers(addr, 2*time.Second)
		if err != nil || who != a[0].Name {
			since = time.Time{}
			return fmt.Errorf("%s announced by %s, answered by %q (%v)", addr, a[0], who, err)
		}
		mac, err := e.l.Client().Neighbor(addr)
		if err != nil || mac.String() != a[0].MAC.String() {
			since = time.Time{}
			return fmt.Errorf("%s announced by %s (%s), the client's ARP entry says %v (%v)", addr, a[0], a[0].MAC, mac, err)
		}
		if owner != a[0] || since.IsZero() {
			owner, since = a[0], time.Now()
		}
		if time.Since(since) < time.Second {
			return errors.New("not yet stable for 1 s")
		}
		return nil
	})
	return owner, err
}

// measure probes addr from the client every 10 ms and polls the client's ARP entry for it,
// injects fault once the owner answers steadily, and waits until another node answers, the
// ARP entry names it and a second passed without a loss.
func (e *lbBench) measure(addr netip.Addr, owner *lab.Node, fault func() error) (lbSample, error) {
	ctx := e.b.Context()
	p, err := e.l.StartProbe(addr, lab.ProbeOptions{})
	if err != nil {
		return lbSample{}, err
	}
	defer p.Stop()
	arp, err := watchARP(e.l.Client(), addr)
	if err != nil {
		return lbSample{}, err
	}
	defer arp.stop()

	const warmup, settle = 300 * time.Millisecond, time.Second
	if err := lbPoll(ctx, 10*time.Second, func() error {
		r := p.Result()
		if r.Sent == 0 || r.End.Sub(r.Start) < warmup || !lbCleanSince(r, r.End.Add(-warmup)) || r.Last() != owner.Name {
			return fmt.Errorf("no steady answer from %s before the fault: %s", owner, r)
		}
		return nil
	}); err != nil {
		return lbSample{}, err
	}
	// At a random phase of kube-vrrp's 100 ms adverts and memberlist's 1 s probes, as a real
	// fault lands.
	time.Sleep(mrand.N(time.Second))
	faultAt := time.Now()
	if err := fault(); err != nil {
		return lbSample{}, fmt.Errorf("fault: %w", err)
	}
	var to string
	err = lbPoll(ctx, lbTimeout, func() error {
		r := p.Result()
		to = ""
		for _, rep := range r.Replies {
			if rep.Sent.After(faultAt) && rep.Node != owner.Name {
				to = rep.Node
			}
		}
		if to == "" {
			return fmt.Errorf("no other node answered since the fault: %s", r)
		}
		if mac := arp.last(); mac != e.l.NodeByName(to).MAC.String() {
			return fmt.Errorf("%s answered, but the client's ARP entry says %s", to, mac)
		}
		if r.End.Sub(faultAt) < settle || !lbCleanSince(r, r.End.Add(-settle)) {
			return fmt.Errorf("not answered steadily for %v: %s", settle, r)
		}
		return nil
	})
	r := p.Stop()
	arp.stop()
	if err != nil {
		return lbSample{}, err
	}
	s := lbSample{sendGap: r.MaxSendGap(), from: owner.Name, to: to}
	s.outage, s.lost, s.late = promptOutage(r, faultAt)
	moved, ok := arp.movedAfter(faultAt, owner.MAC.String())
	if !ok {
		return s, errors.New("the client's ARP entry never left the failed node's MAC")
	}
	s.arpMoved = moved.Sub(faultAt)
	s.trail = lbTrail(e.l, r, arp, faultAt)
	return s, nil
}

// lbTrail lists, in ms after the fault, the first answer of each node and each change of the
// client's ARP entry (by node name, "none" for no usable entry).
func lbTrail(l *lab.Lab, r lab.ProbeResult, arp *arpWatch, faultAt time.Time) string {
	var parts []string
	seen := map[string]bool{}
	for _, rep := range r.Replies {
		if rep.Sent.After(faultAt) && !seen[rep.Node] {
			seen[rep.Node] = true
			late := ""
			if d := rep.Received.Sub(rep.Sent); d > lbReplyLimit {
				late = fmt.Sprintf(" (reply %.0f ms late)", ms(d))
			}
			parts = append(parts, fmt.Sprintf("%.0f answered by %s%s", ms(rep.Sent.Sub(faultAt)), rep.Node, late))
		}
	}
	arp.mu.Lock()
	for _, c := range arp.changes {
		if c.at.After(faultAt) {
			who := c.state
			if c.mac != "" {
				who = c.mac
				if mac, err := net.ParseMAC(c.mac); err == nil {
					if n := l.NodeByMAC(mac); n != nil {
						who = n.Name
					}
				}
				who += " " + c.state
			}
			parts = append(parts, fmt.Sprintf("%.0f ARP %s", ms(c.at.Sub(faultAt)), who))
		}
	}
	arp.mu.Unlock()
	slices.SortStableFunc(parts, func(a, b string) int {
		fa, _ := strconv.ParseFloat(strings.Fields(a)[0], 64)
		fb, _ := strconv.ParseFloat(strings.Fields(b)[0], 64)
		return cmp.Compare(fa, fb)
	})
	return strings.Join(parts, ", ")
}

// lbReplyLimit is how late a probe's reply may come and still count: a client's kernel queues
// what it sends while it resolves the address (an INCOMPLETE neighbour entry, up to about 3 s)
// and sends it all once the new node answers, so probes sent in a MetalLB failover were
// answered a second and more after they were sent (the lab's prober counts them answered).
const lbReplyLimit = 100 * time.Millisecond

// promptOutage returns the longest time between two probes answered within lbReplyLimit with a
// probe lost in between that ends after t (one Interval if none was lost), the probes sent after t that were not, and how
// many of those were answered later.
func promptOutage(r lab.ProbeResult, t time.Time) (outage time.Duration, lost, late int) {
	outage = r.Interval
	prevSeq, prevAt := -1, r.Start
	for _, rep := range r.Replies {
		if rep.Received.Sub(rep.Sent) > lbReplyLimit {
			if rep.Sent.After(t) {
				late++
			}
			continue
		}
		if n := rep.Seq - prevSeq - 1; n > 0 && rep.Sent.After(t) {
			outage = max(outage, rep.Sent.Sub(prevAt))
			lost += n
		}
		prevSeq, prevAt = rep.Seq, rep.Sent
	}
	return outage, lost, late
}

// lbCleanSince reports whether every probe sent at or after t was answered.
func lbCleanSince(r lab.ProbeResult, t time.Time) bool {
	for _, g := range r.Gaps() {
		if g.To.After(t) || g.Open {
			return false
		}
	}
	return true
}

// arpWatch polls a node's neighbour entry for an address every 10 ms, over a netlink socket
// of its own in the node's namespace, and records each change of the MAC it names and its
// state.
type arpWatch struct {
	stopOnce sync.Once
	stopc    chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	changes []arpChange
}

type arpChange struct {
	at time.Time
	// mac is the MAC the entry names while usable ("" for none: no entry, or one being
	// resolved or failed); state its NUD state.
	mac   string
	state string
}

func watchARP(n *lab.Node, addr netip.Addr) (*arpWatch, error) {
	var h *netlink.Handle
	if err := n.InNetns(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	}); err != nil {
		return nil, err
	}
	link, err := h.LinkByName(n.Interface)
	if err != nil {
		h.Close()
		return nil, err
	}
	w := &arpWatch{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer h.Close()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			// A dump interrupted by a change of the table still holds every entry, perhaps
			// one of them older: good enough for a poll every 10 ms.
			ns, err := h.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
			if err == nil || errors.Is(err, netlink.ErrDumpInterrupted) {
				c := arpChange{state: "none"}
				for _, e := range ns {
					if e.IP.Equal(addr.AsSlice()) {
						c.state = neighState(e.State)
						if len(e.HardwareAddr) > 0 && e.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
							c.mac = e.HardwareAddr.String()
						}
					}
				}
				w.mu.Lock()
				if k := len(w.changes); k == 0 || w.changes[k-1].mac != c.mac || w.changes[k-1].state != c.state {
					c.at = time.Now()
					w.changes = append(w.changes, c)
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return w, nil
}

// neighState names a NUD state as ip-neigh(8) does.
func neighState(s int) string {
	for _, x := range []struct {
		bit  int
		name string
	}{{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
		{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"}} {
		if s&x.bit != 0 {
			return x.name
		}
	}
	return "NONE"
}

func (w *arpWatch) stop() {
	w.stopOnce.Do(func() { close(w.stopc) })
	<-w.done
}

// last is the MAC the entry names now.
func (w *arpWatch) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.changes) == 0 {
		return ""
	}
	return w.changes[len(w.changes)-1].mac
}

// movedAfter returns when, after t, the entry first named a MAC other than old (and not none).
func (w *arpWatch) movedAfter(t time.Time, old string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.changes {
		if c.at.After(t) && c.mac != "" && c.mac != old {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// restartSpeaker starts sys's speaker on n again.
func (e *lbBench) restartSpeaker(n *lab.Node) error {
	p, err := e.sys.startSpeaker(e, n)
	e.speakers[n.Name] = p
	return err
}

// rejoin makes a MetalLB speaker that was cut off join memberlist again now: a change of its
// Node does (the speaker's SetNode), where it would otherwise wait for its next join, up to a
// minute. kube-vrrp needs nothing: its nodes hear each other's adverts.
func (e *lbBench) rejoin(n *lab.Node) error {
	if e.sys.clean != nil {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"bench.kubevrrp.io/rejoin":%q}}}`, time.Now().Format(time.RFC3339Nano))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name}}
	return e.k8s.Patch(e.b.Context(), node, client.RawPatch(types.MergePatchType, []byte(patch)))
}

// stop stops the running implementation's controller and speakers (SIGTERM).
func (e *lbBench) stop() error {
	var errs []error
	if e.controller != nil {
		_ = e.controller.Stop() // exit statuses after SIGTERM say nothing here
	}
	for _, p := range e.speakers {
		if p != nil {
			_ = p.Stop()
		}
	}
	e.controller, e.speakers = nil, nil
	ctx := context.Background()
	for _, s := range lbSystems {
		for _, o := range []client.Object{
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: s.service}},
			&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: s.service + "-lab"}},
		} {
			if err := e.k8s.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	for _, n := range e.l.Nodes() {
		if err := n.RestoreLink(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// metallbAnnounces reports whether n's speaker says it announces addr: its gauge
// metallb_speaker_announced with that ip (deleted when it stops announcing).
func metallbAnnounces(n *lab.Node, addr netip.Addr) bool {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + net.JoinHostPort(n.IPv4.String(), strconv.Itoa(metallbMetricsPort)) + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	want := `ip="` + addr.String() + `"`
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "metallb_speaker_announced{") && strings.Contains(line, want) && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// lbPoll calls f every 20 ms until it succeeds, ctx ends or timeout passes; its last error.
func lbPoll(ctx context.Context, timeout time.Duration, f func() error) error {
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

// lbReport prints the table, reports the medians as metrics and, with -out, writes the table
// and samples to loadbalancer.txt and their distributions to loadbalancer.png.
func lbReport(b *testing.B, metallb string, results map[string]map[string][]lbSample) {
	var sb strings.Builder
	w := newTable(&sb)
	fmt.Fprintf(w, "event\tkube-vrrp ARP moved ms\tMetalLB ARP moved ms\tkube-vrrp outage ms\tMetalLB outage ms\truns\tprober\n")
	var panels []panel
	samples := "\nsamples (ms, in the order measured)\n"
	trails := "\nafter each fault (ms): each node's first answer, each change of the client's ARP entry\n"
	for _, ev := range lbEvents {
		kv, ml := results["kube-vrrp"][ev.name], results["MetalLB"][ev.name]
		kvA, kvO := conv2ARP(kv), conv2Outage(kv)
		mlA, mlO := conv2ARP(ml), conv2Outage(ml)
		gap := max(summarize(kvO).sendGap, summarize(mlO).sendGap)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", ev.name, cell(summarize(kvA)), cell(summarize(mlA)),
			cell(summarize(kvO)), cell(summarize(mlO)), len(kv), len(ml), stallCell(gap, stallLimit))
		pa := panel{title: ev.name + ": ARP moved"}
		po := panel{title: ev.name + ": outage"}
		for i, name := range []string{"MetalLB", "kube-vrrp"} {
			var a, o []float64
			for _, s := range results[name][ev.name] {
				a, o = append(a, ms(s.arpMoved)), append(o, ms(s.outage))
			}
			metric := strings.ReplaceAll(ev.name, " ", "-")
			if len(a) > 0 {
				b.ReportMetric(ms(summarize(conv2ARP(results[name][ev.name])).median), name+"-"+metric+"-arp-ms")
				b.ReportMetric(ms(summarize(conv2Outage(results[name][ev.name])).median), name+"-"+metric+"-outage-ms")
			}
			pa.series = append(pa.series, series{label: name, ms: a, color: i})
			po.series = append(po.series, series{label: name, ms: o, color: i})
			samples += fmt.Sprintf("%s\t%s\tARP moved: %s\n%s\t%s\toutage: %s\n", ev.name, name, msList(a), ev.name, name, msList(o))
			for i, s := range results[name][ev.name] {
				trails += fmt.Sprintf("%s\t%s\t%d\t%s -> %s: %s\n", ev.name, name, i+1, s.from, s.to, s.trail)
			}
		}
		panels = append(panels, pa, po)
	}
	w.Flush()
	b.ReportMetric(0, "ns/op") // the lab's time, not a figure of interest
	text := fmt.Sprintf("\nService of type LoadBalancer, the announcing node fails: median (min-max) ms over the runs\n"+
		"three nodes; kube-vrrp: agents and kube-vrrp controller, a VirtualIPPool, VRRPv3 at its default 100 ms;\n"+
		"MetalLB %s layer 2: speakers with memberlist (as its manifests), its controller, IPAddressPool + L2Advertisement;\n"+
		"ARP moved: fault -> the client's ARP entry names the new node (polled every 10 ms);\n"+
		"outage: the longest time between probes answered within %v (UDP every 10 ms; 10 means none lost; the client's\n"+
		"kernel queues probes while it resolves the address and sends them once answered: later replies count as lost);\n"+
		"kube-proxy's stand-in (DNAT on every node) keeps a node that stops announcing but runs forwarding, so\n"+
		"SIGTERM loses nothing; power-off: carrier lost and the speaker/agent SIGKILLed; link cut and power-off at a\n"+
		"random phase of kube-vrrp's adverts and memberlist's probes; speakers, controllers at nice %d\n%s",
		filepath.Base(metallb), lbReplyLimit, *nice, sb.String())
	fmt.Print(text)
	for _, err := range []error{
		written(writeOut("loadbalancer.txt", []byte(text+samples+trails))),
		written(writePanels("loadbalancer.png", panels, 2, 5*vg.Inch, 3.5*vg.Inch)),
	} {
		if err != nil {
			b.Error(err)
		}
	}
}

func conv2ARP(ss []lbSample) []lbARP {
	out := make([]lbARP, len(ss))
	for i, s := range ss {
		out[i] = lbARP(s)
	}
	return out
}

func conv2Outage(ss []lbSample) []lbOutage {
	out := make([]lbOutage, len(ss))
	for i, s := range ss {
		out[i] = lbOutage(s)
	}
	return out
}
