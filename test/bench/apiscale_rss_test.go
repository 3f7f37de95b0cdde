package bench_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

var (
	apiRSSNodes   = flag.Int("apiscale.rss-nodes", 5000, "BenchmarkAgentMemory: Nodes in the cluster (each the size a kubelet makes it)")
	apiRSSVIPs    = flag.Int("apiscale.rss-vips", 1000, "BenchmarkAgentMemory: VirtualIPs, each selecting every Node")
	apiRSSLimit   = flag.Duration("apiscale.rss-timeout", 20*time.Minute, "BenchmarkAgentMemory: bound of the wait for every VirtualIP's summary")
	apiRSSEnv     = flag.String("apiscale.rss-env", "", "BenchmarkAgentMemory: extra environment of the agent, as NAME=VALUE,... (e.g. GOMEMLIMIT=200MiB)")
	apiRSSSettle  = flag.Duration("apiscale.rss-settle", 2*time.Minute, "BenchmarkAgentMemory: bound of the wait for the agent's CPU use to drop, after the summaries")
	apiRSSWindow  = flag.Duration("apiscale.rss-window", 10*time.Second, "BenchmarkAgentMemory: how long VmRSS and the agent's CPU use are read, once it is calm")
	apiRSSMembers = flag.Int("apiscale.rss-members", 0,
		"BenchmarkAgentMemory: VirtualIPMembers per VirtualIP (of the first Nodes, and the summary of them) in the cluster before the agent starts, all in its cache")
)

// apiRSSTarget is the agent's memory budget with 5000 Nodes and 1000 VirtualIPs.
const apiRSSTarget = 64 << 20

// BenchmarkAgentMemory measures one agent's memory in a large cluster: the real `kube-vrrp
// agent` binary in a lab node's network namespace, against the lab's kube-apiserver
// (internal/cluster) holding -apiscale.rss-nodes Nodes the size a kubelet makes them (50
// images, conditions, capacity, node info: ~10 kB each) and -apiscale.rss-vips VirtualIPs that
// select every Node. Their addresses are in 198.19.0.0/16, on no interface of the node, so the
// agent refuses each one (CannotResolve) and binds nothing: what is measured is its caches and
// its controllers, not VRRP instances. The agent reads its kubeconfig from $KUBECONFIG (as from
// in-cluster configuration, without client-side rate limit; --kubeconfig would limit it to 5
// requests per second) and runs with its default metrics and health servers.
//
// Once every VirtualIP has a summary (status.conditions) and the agent's CPU use has dropped
// (under 2% of a core over 5 s, twice; at most -apiscale.rss-settle), it reads VmRSS and VmHWM
// (/proc/PID/status) every second for 10 s (-apiscale.rss-window: longer to take in the agent's
// periodic work, e.g. its one-minute status resync) and prints them beside the target (64
// MiB), with the share of a core the agent used meanwhile and the two parts of the largest
// VmRSS: RssAnon (the Go heap, stacks and the runtime's own memory) and RssFile (the binary's
// pages). With -apiscale.rss-members K, each VirtualIP has K members before the agent starts
// (of the first K Nodes, as their agents would apply them) and the summary of them: the
// agent caches every member of every VirtualIP (docs/design.md §7.5), V×K of them, though it
// has none of its own. It asserts nothing.
func BenchmarkAgentMemory(b *testing.B) {
	privtest.Require(b)
	envtestassets.Require(b)
	bin := lab.KubeVRRPBinary(b)
	for range b.N {
		r, err := apiRSSMeasure(b, bin)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(apiMiB(uint64(r.rss)), "VmRSS-MiB")
		b.ReportMetric(apiMiB(uint64(r.hwm)), "VmHWM-MiB")
		b.ReportMetric(apiMiB(uint64(r.anon)), "RssAnon-MiB")
		b.ReportMetric(apiMiB(uint64(r.file)), "RssFile-MiB")
		b.ReportMetric(100*r.idleCPU, "idle-cpu-%")
		b.ReportMetric(0, "ns/op")
		verdict := "yes"
		if r.rss > apiRSSTarget {
			verdict = "NO"
		}
		text := fmt.Sprintf("\nagent memory: the real kube-vrrp agent (refusing every VirtualIP: CannotResolve), %d Nodes of %.1f kB (JSON), %d VirtualIPs\n"+
			"and %d VirtualIPMembers of other nodes (%d per VirtualIP) in the cluster; every VirtualIP had a summary %v after its start (%.1f s of its CPU until then); measured %v after its start,\n"+
			"using %.1f%% of a core then. VmRSS %.1f MiB (max over %v: RssAnon %.1f MiB, RssFile %.1f MiB), VmHWM %.1f MiB (peak since start);\n"+
			"target VmRSS <= %d MiB: %s\n",
			r.nodes, float64(r.nodeBytes)/1000, r.vips, r.vips*r.members, r.members, r.summarised.Round(time.Second), r.cpu.Seconds(), r.settled.Round(time.Second),
			100*r.idleCPU, apiMiB(uint64(r.rss)), *apiRSSWindow, apiMiB(uint64(r.anon)), apiMiB(uint64(r.file)), apiMiB(uint64(r.hwm)), apiRSSTarget>>20, verdict)
		fmt.Print(text)
		if _, err := writeOut("agent-memory.txt", []byte(text)); err != nil {
			b.Error(err)
		}
	}
}

func apiMiB(v uint64) float64 { return float64(v) / (1 << 20) }

type apiRSSResult struct {
	nodes, vips int
	members     int // per VirtualIP
	nodeBytes   int
	// summarised: from the agent's start until every VirtualIP had a summary, and the CPU it
	// used until then; settled: until its CPU use dropped (or -apiscale.rss-settle passed).
	summarised, settled time.Duration
	cpu                 time.Duration
	rss, hwm            int64
	// anon and file: RssAnon (the heap, stacks, the runtime's own) and RssFile (the binary's
	// pages) of the sample of the largest VmRSS.
	anon, file int64
	idleCPU    float64 // share of a core while RSS was read
}

func apiRSSMeasure(b *testing.B, bin string) (apiRSSResult, error) {
	r := apiRSSResult{nodes: *apiRSSNodes, vips: *apiRSSVIPs, members: *apiRSSMembers}
	if r.nodes < 1 || r.nodes > 20000 || r.vips < 1 || r.vips > 5000 || r.members < 0 || r.members > r.nodes-1 {
		return r, fmt.Errorf("-apiscale.rss-nodes 1..20000, -apiscale.rss-vips 1..5000 and -apiscale.rss-members 0..nodes-1")
	}
	ctx := b.Context()
	l := lab.New(b, lab.Options{Nodes: 1, ResponderPort: -1})
	cp := cluster.New(b, l, cluster.Options{})
	apiLogf(b, "control plane up")
	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil {
		return r, err
	}
	apiLogf(b, "CRDs and RBAC installed")
	n1 := l.Node(1)
	labels := map[string]string{apiScaleLabel: "true"}
	if err := cp.RegisterNodes(ctx, []*lab.Node{n1}, labels); err != nil {
		return r, err
	}
	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = -1, 0
	admin, err := client.New(cfg, client.Options{Scheme: cp.Client().Scheme()})
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	err = apiParallel(ctx, r.nodes-1, 16, func(i int) error {
		n, st := apiRSSNode(i)
		if err := admin.Create(ctx, n); err != nil {
			return err
		}
		n.Status = st
		return admin.Status().Update(ctx, n)
	})
	if err != nil {
		return r, fmt.Errorf("nodes: %w", err)
	}
	n, st := apiRSSNode(0)
	n.Status = st
	if data, err := json.Marshal(n); err == nil {
		r.nodeBytes = len(data)
	}
	err = apiParallel(ctx, r.vips, 16, func(j int) error {
		v := apiSimVIP(j)
		v.Spec.Addresses = []string{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(j / 250), byte(j%250 + 1)}), 20).String()}
		return admin.Create(ctx, v)
	})
	if err != nil {
		return r, fmt.Errorf("VirtualIPs: %w", err)
	}
	apiLogf(b, "%d Nodes (%d bytes each as JSON) and %d VirtualIPs created in %v", r.nodes, r.nodeBytes, r.vips, time.Since(t0).Round(time.Second))
	if r.members > 0 {
		t0 = time.Now()
		if err := apiRSSMembersOf(ctx, admin, r.vips, r.members); err != nil {
			return r, err
		}
		apiLogf(b, "%d members per VirtualIP and their summaries in %v", r.members, time.Since(t0).Round(time.Second))
	}

	kubeconfig, err := cp.AgentKubeconfig()
	if err != nil {
		return r, err
	}
	state, err := n1.StateDir(0)
	if err != nil {
		return r, err
	}
	start := time.Now()
	argv := []string{"env", "KUBECONFIG=" + kubeconfig}
	for _, kv := range strings.Split(*apiRSSEnv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			argv = append(argv, kv)
		}
	}
	argv = append(argv, bin, "agent",
		"--node-name", n1.Name, "--namespace", cluster.Namespace, "--state-dir", state, "--log-level", "warn")
	p, err := n1.Exec(context.Background(), "kube-vrrp-agent", argv...)
	if err != nil {
		return r, err
	}
	b.Cleanup(func() { _ = p.Stop() })
	pid := p.Pid()

	// Every VirtualIP has a summary of its generation (whether the node writes a member for a
	// VirtualIP it cannot take part in is not for this benchmark to say).
	err = apiPoll(ctx, *apiRSSLimit, func() error {
		if p.Exited() {
			return fmt.Errorf("the agent exited:\n%s", p.Tail(20))
		}
		var list v1alpha1.VirtualIPList
		if err := admin.List(ctx, &list); err != nil {
			return err
		}
		var missing int
		for _, v := range list.Items {
			if len(v.Status.Conditions) == 0 || v.Status.ObservedGeneration != v.Generation {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d VirtualIPs without a summary", missing, len(list.Items))
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, p.Tail(10))
	}
	apiLogf(b, "every VirtualIP has a summary %v after the agent's start", time.Since(start).Round(time.Second))
	r.summarised = time.Since(start)
	if r.cpu, err = apiRSSCPU(pid); err != nil {
		return r, err
	}
	// Its CPU use drops: the reconciles that followed the start are done. An agent that keeps
	// working (its retries of the refused VirtualIPs) is measured after -apiscale.rss-settle.
	prev, since := r.cpu, time.Now()
	for calm := 0; calm < 2 && time.Since(since) < *apiRSSSettle; {
		time.Sleep(5 * time.Second)
		cur, err := apiRSSCPU(pid)
		if err != nil {
			return r, err
		}
		if cur-prev < 100*time.Millisecond {
			calm++
		} else {
			calm = 0
		}
		prev = cur
	}
	r.settled = time.Since(start)
	cpu0, t0 := prev, time.Now()
	if *apiRSSWindow < time.Second || *apiRSSWindow > time.Hour {
		return r, fmt.Errorf("-apiscale.rss-window 1s..1h")
	}
	for range int(*apiRSSWindow / time.Second) {
		m, err := apiRSSMemory(pid)
		if err != nil {
			return r, err
		}
		if m.rss > r.rss {
			r.rss, r.anon, r.file = m.rss, m.anon, m.file
		}
		r.hwm = m.hwm
		time.Sleep(time.Second)
	}
	cpu1, err := apiRSSCPU(pid)
	if err != nil {
		return r, err
	}
	r.idleCPU = float64(cpu1-cpu0) / float64(time.Since(t0))
	if p.Exited() {
		return r, fmt.Errorf("the agent exited:\n%s", p.Tail(20))
	}
	return r, nil
}

// apiRSSMembersOf applies, for each of vips VirtualIPs, the members of the first k Nodes (the
// first MASTER, the others BACKUP), as their agents would, then the summary of them.
func apiRSSMembersOf(ctx context.Context, c client.Client, vips, k int) error {
	uids := make([]types.UID, vips)
	for j := range vips {
		var v v1alpha1.VirtualIP
		if err := c.Get(ctx, client.ObjectKey{Name: apiSimVIPName(j)}, &v); err != nil {
			return err
		}
		uids[j] = v.UID
	}
	err := apiParallel(ctx, vips*k, 16, func(n int) error {
		j, i := n/k, n%k
		return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(apiSimMember(apiRSSNodeName(i), j, uids[j], apiSimEntry(i, j, i == 0))),
			client.FieldOwner("kube-vrrp-agent/"+apiRSSNodeName(i)), client.ForceOwnership)
	})
	if err != nil {
		return fmt.Errorf("members: %w", err)
	}
	return apiParallel(ctx, vips, 16, func(j int) error {
		var v v1alpha1.VirtualIP
		if err := c.Get(ctx, client.ObjectKey{Name: apiSimVIPName(j)}, &v); err != nil {
			return err
		}
		entries := make([]v1alpha1.NodeStatus, k)
		for i := range k {
			data, err := json.Marshal(apiSimEntry(i, j, i == 0))
			if err != nil {
				return err
			}
			if err := json.Unmarshal(data, &entries[i]); err != nil {
				return err
			}
			entries[i].Name = apiRSSNodeName(i)
		}
		return apiApplySummary(ctx, c, &v, entries)
	})
}

// apiRSSCPU returns the user and system CPU time of pid (/proc/PID/stat).
func apiRSSCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// Fields 14 and 15 (utime, stime) counting from 1 with pid and comm: 11 and 12 here.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	const hz = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / hz, nil
}

// apiRSSMemoryStatus is what /proc/PID/status says of a process's memory, in bytes.
type apiRSSMemoryStatus struct{ rss, hwm, anon, file int64 }

// apiRSSMemory returns VmRSS, VmHWM, RssAnon and RssFile of pid.
func apiRSSMemory(pid int) (apiRSSMemoryStatus, error) {
	var m apiRSSMemoryStatus
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"VmRSS": &m.rss, "VmHWM": &m.hwm, "RssAnon": &m.anon, "RssFile": &m.file}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f, want := fields[k]
		if !ok || !want {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status: %q", pid, line)
		}
		*f = kb << 10
	}
	return m, nil
}

// apiRSSNode returns Node i (apart from the lab's) and its status, of the size and shape a
// kubelet reports: labels of a cloud node, the kubelet's annotations, capacity, five
// conditions, node info and the 50 largest images (--node-status-max-images).
func apiRSSNode(i int) (*corev1.Node, corev1.NodeStatus) {
	name := apiRSSNodeName(i)
	zone := fmt.Sprintf("zone-%c", 'a'+i%3)
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{
				apiScaleLabel:                   "true",
				corev1.LabelHostname:            name,
				corev1.LabelOSStable:            "linux",
				corev1.LabelArchStable:          "amd64",
				"beta.kubernetes.io/os":         "linux",
				"beta.kubernetes.io/arch":       "amd64",
				corev1.LabelInstanceTypeStable:  "m5.2xlarge",
				corev1.LabelTopologyRegion:      "region-1",
				corev1.LabelTopologyZone:        zone,
				"node-role.kubernetes.io/lb":    "",
				"node.kubernetes.io/pool":       "pool-" + strconv.Itoa(i%10),
				"kubernetes.io/nodegroup-class": "general",
			},
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl":                           "0",
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
				"csi.volume.kubernetes.io/nodeid":                        fmt.Sprintf(`{"ebs.csi.aws.com":"i-%017x"}`, i),
				"kubeadm.alpha.kubernetes.io/cri-socket":                 "unix:///run/containerd/containerd.sock",
				"projectcalico.org/IPv4Address":                          apiRSSNodeIP(i).String() + "/16",
				"projectcalico.org/IPv4VXLANTunnelAddr":                  fmt.Sprintf("10.%d.%d.0", 64+i/256, i%256),
			},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:    fmt.Sprintf("10.%d.%d.0/24", i/256, i%256),
			PodCIDRs:   []string{fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)},
			ProviderID: fmt.Sprintf("aws:///%s/i-%017x", zone, i),
		},
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32475836Ki"),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("104845292Ki"),
		"hugepages-1Gi": resource.MustParse("0"), "hugepages-2Mi": resource.MustParse("0"),
		"attachable-volumes-aws-ebs": resource.MustParse("25"),
	}
	st := corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "CalicoIsUp", "Calico is running on this node"),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: apiRSSNodeIP(i).String()},
			{Type: corev1.NodeHostName, Address: name},
			{Type: corev1.NodeInternalDNS, Address: name + ".region-1.compute.internal"},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID: apiRSSHex(name, "machine")[:32], SystemUUID: apiRSSHex(name, "uuid")[:32], BootID: apiRSSHex(name, "boot")[:32],
			KernelVersion: "6.1.0-28-cloud-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)",
			ContainerRuntimeVersion: "containerd://1.7.24", KubeletVersion: "v1.37.1", KubeProxyVersion: "v1.37.1",
			OperatingSystem: "linux", Architecture: "amd64",
		},
	}
	for k := range 50 {
		repo := fmt.Sprintf("registry.example.com/team-%d/service-%d", k%7, k)
		st.Images = append(st.Images, corev1.ContainerImage{
			Names:     []string{repo + "@sha256:" + apiRSSHex(repo, strconv.Itoa(i%4)), repo + ":v1." + strconv.Itoa(k)},
			SizeBytes: int64(20_000_000 + 7_919_113*k),
		})
	}
	return n, st
}

func apiRSSNodeName(i int) string { return fmt.Sprintf("worker-%05d", i) }

func apiRSSNodeIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(16 + i/250), byte(i%250 + 1)})
}

func apiRSSHex(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(h[:])
}
