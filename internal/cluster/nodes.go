package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// PauseImage is the pod sandbox image of the lab's containerds, built here (BuildPauseImage)
// and imported into each: nothing is pulled.
const PauseImage = "kvlab.local/pause:1"

// The kernel settings the kubelet wants (pkg/kubelet/cm setupKernelTunables). They are not
// per network namespace: a kubelet would write them into the host's kernel. Each node's
// kubelet runs with protectKernelDefaults (it only checks them), and sees these values in
// files bind-mounted over /proc/sys in the node's private mount namespace.
var kubeletSysctls = [][2]string{
	{"vm/overcommit_memory", "1"},
	{"vm/panic_on_oom", "0"},
	{"kernel/panic", "10"},
	{"kernel/panic_on_oops", "1"},
	{"kernel/keys/root_maxkeys", "1000000"},
	{"kernel/keys/root_maxbytes", "25000000"},
}

// KubeletOptions configure StartNodes.
type KubeletOptions struct {
	// BinDir holds kubelet (default: the envtest assets' directory, bin/k8s/<version>, where
	// hack/k8s-binaries.sh puts it).
	BinDir string
	// PauseArchive is the pause image (BuildPauseImage); built in the first node's directory
	// when empty.
	PauseArchive string
	// Logf receives progress (default: the control plane's).
	Logf func(format string, args ...any)
}

// KubeNode is a lab node running containerd and a kubelet, in private mount and PID namespaces
// of its own, its pods in a cgroup of its own (see StartNodes).
type KubeNode struct {
	Node *lab.Node
	// Dir holds the node's /run, /var/lib and /var/log, configurations and logs.
	Dir string
	// Cgroup is the node's cgroup (the kubelet's cgroupRoot), a directory of that name at the
	// top of every cgroup hierarchy: its pods are in Cgroup/kubepods.
	Cgroup string

	holder, containerd, kubelet *daemon
	initPid                     int        // the init of the node's PID namespace
	mntNS                       string     // the node's mount namespace (mnt:[inode])
	mu                          sync.Mutex // holds off Close while a start step records what it started
	closed                      bool
	closeOnce                   sync.Once
	closeErr                    error
}

// daemon is a process the nodes start outside lab.Proc (which wraps `ip netns exec`).
type daemon struct {
	name, log string
	cmd       *exec.Cmd
	pid       int // the process signalled by stop: cmd's, or the one an nsenter forked
	done      chan struct{}
	err       error
}

func startDaemon(dir, name string, argv ...string) (*daemon, error) {
	log := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group (a terminal's Ctrl-C reaches only the test, which cleans up in order);
	// killed with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, log: log, cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	return d, nil
}

// startIn starts argv as a daemon in the node's namespaces (network, mount and PID). nsenter
// forks it (a PID namespace applies to children), and forwards no signal: the daemon's pid is
// the child's.
func (k *KubeNode) startIn(name string, argv ...string) (*daemon, error) {
	d, err := startDaemon(k.Dir, name, append([]string{"nsenter", "--target", strconv.Itoa(k.initPid), "--mount", "--net", "--pid", "--"}, argv...)...)
	if err != nil {
		return nil, err
	}
	pid, err := waitChildPid(d, func(comm string) bool { return comm != "nsenter" })
	if err != nil {
		d.stop(0)
		return nil, err
	}
	d.pid = pid
	return d, nil
}

// waitChildPid waits (up to 10 s) until d's process has a child whose comm satisfies ok.
func waitChildPid(d *daemon, ok func(comm string) bool) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, c := range lab.ChildPids(d.cmd.Process.Pid) {
			if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); err == nil && ok(strings.TrimSpace(string(comm))) {
				return c, nil
			}
		}
		if d.exited() || time.Now().After(deadline) {
			return 0, fmt.Errorf("%s started no process (exited %v); log %s:\n%s", d.name, d.exited(), d.log, d.tail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs the process and its process group.
func (d *daemon) stop(grace time.Duration) {
	if d == nil {
		return
	}
	if !d.exited() {
		_ = syscall.Kill(d.pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(grace):
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			_ = d.cmd.Process.Kill()
		}
	}
	<-d.done
}

func (d *daemon) tail(n int) string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// StartNodes runs containerd and a kubelet on each of nodes and returns when every kubelet has
// started (the Nodes' readiness is the caller's to wait for). Each node gets private mount and
// PID namespaces, entered with its network namespace (nsenter --net, then unshare; not
// `ip netns exec`, which remounts /sys and hides the cgroup hierarchies):
//   - /run, /var/lib and /var/log are bind mounts (mount -n: nothing in the host's utab) of
//     the node's directory: the kubelet writes /var/lib/kubelet and /var/log/containers
//     whatever its --root-dir, and containerd's shims use /run/containerd;
//   - the PID namespace is the node's process table (PIDNamespace runs programs in it, such as
//     HAProxy): a hostPID pod sees the node's processes, not the test machine's.
//
// The host's cgroup hierarchies are shared. The kubelet's cgroupRoot is a cgroup of the node's
// own (KubeNode.Cgroup, named after the test process's pid, at the top of every hierarchy), so
// the pods' cgroups are under it; Close removes it, and a later run removes those of a run
// that was killed.
//
// The nodes are stopped on Close, and with the lab (lab.OnClose, which also runs on
// SIGINT/SIGTERM): kubelet, then every process in the node's cgroup, containerd and anything
// left in the node's namespaces (the shims), then the node's cgroup.
func (c *ControlPlane) StartNodes(ctx context.Context, nodes []*lab.Node, o KubeletOptions) ([]*KubeNode, error) {
	if o.Logf == nil {
		o.Logf = c.opts.Logf
	}
	if o.BinDir == "" {
		o.BinDir = c.assets
	}
	for _, tool := range nodeTools {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s (Debian's containerd, runc, util-linux: make deps): %w", tool, err)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		return nil, fmt.Errorf("CNI plugins (Debian's containernetworking-plugins: make deps): %w", err)
	}
	if _, err := os.Stat(filepath.Join(o.BinDir, "kubelet")); err != nil {
		return nil, fmt.Errorf("kubelet (hack/k8s-binaries.sh): %w", err)
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	sweepCgroups()
	// The kubelets authorise every request by the API server (SubjectAccessReview): the API
	// server's own (kubectl logs, exec) as the kubelet API's admin.
	if err := c.bindKubeletAPIUser(ctx); err != nil {
		return nil, err
	}
	// The init of each node's PID namespace reaps what ends in it: the pause program.
	initBin := filepath.Join(nodes[0].Dir, "node-init")
	if err := buildPause(ctx, initBin); err != nil {
		return nil, err
	}
	if o.PauseArchive == "" {
		o.PauseArchive = filepath.Join(nodes[0].Dir, "pause-image.tar")
		t0 := time.Now()
		if err := BuildPauseImage(ctx, o.PauseArchive); err != nil {
			return nil, err
		}
		o.Logf("cluster: pause image built in %v", time.Since(t0).Round(time.Millisecond))
	}
	var (
		mu  sync.Mutex
		out = make([]*KubeNode, len(nodes))
		wg  sync.WaitGroup
		err error
	)
	for i, n := range nodes {
		k := &KubeNode{Node: n, Dir: filepath.Join(n.Dir, "kube"), Cgroup: dirPrefix() + n.NetNS}
		out[i] = k
		n.Lab().OnClose(func() { _ = k.Close() })
		wg.Go(func() {
			t0 := time.Now()
			e := c.startNode(ctx, k, o, initBin)
			mu.Lock()
			defer mu.Unlock()
			if e != nil {
				err = errors.Join(err, fmt.Errorf("node %s: %w", n.Name, e))
				return
			}
			o.Logf("cluster: node %s: containerd and kubelet started in %v", n.Name, time.Since(t0).Round(time.Millisecond))
		})
	}
	wg.Wait()
	if err != nil {
		for _, k := range out {
			err = errors.Join(err, k.Close())
		}
		return nil, err
	}
	return out, nil
}

func (c *ControlPlane) startNode(ctx context.Context, k *KubeNode, o KubeletOptions, initBin string) error {
	n := k.Node
	for _, d := range []string{"run", "var-lib", "var-log", "sysctl", "manifests", "var-lib/cni-conf"} {
		if err := os.MkdirAll(filepath.Join(k.Dir, d), 0o755); err != nil {
			return err
		}
	}
	// The holder makes the mount namespace and keeps it while the daemons enter it.
	script := []string{"set -e", `d=$1`}
	for _, m := range [][2]string{{"run", "/run"}, {"var-lib", "/var/lib"}, {"var-log", "/var/log"}} {
		script = append(script, fmt.Sprintf(`mount -n --bind "$d/%s" %s`, m[0], m[1]))
	}
	for _, s := range kubeletSysctls {
		f := filepath.Join(k.Dir, "sysctl", strings.ReplaceAll(s[0], "/", "."))
		if err := os.WriteFile(f, []byte(s[1]+"\n"), 0o444); err != nil {
			return err
		}
		script = append(script, fmt.Sprintf(`mount -n --bind -o ro %q /proc/sys/%s`, f, s[0]))
	}
	script = append(script, `touch /run/.kvlab-ready`, `exec "$2"`)
	// The node's own PID namespace (a real host's process table: a hostPID pod, such as the
	// agent's, sees the node's processes only), whose init is the pause program (it reaps the
	// orphans a real init would), with a /proc of its own (--mount-proc). --kill-child: the
	// namespace ends with unshare, which dies with the test process (startDaemon's
	// parent-death signal).
	err := k.step(func() (err error) {
		k.holder, err = startDaemon(k.Dir, "holder", "nsenter", "--net=/run/netns/"+n.NetNS, "--",
			"unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child", "--propagation", "private", "--",
			"sh", "-c", strings.Join(script, "\n"), "sh", k.Dir, initBin)
		return err
	})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 10*time.Second, k.holder, func() error {
		_, err := os.Stat(filepath.Join(k.Dir, "run", ".kvlab-ready"))
		return err
	}); err != nil {
		return fmt.Errorf("mount namespace: %w", err)
	}
	initPid, err := waitChildPid(k.holder, func(comm string) bool { return comm == "node-init" })
	if err != nil {
		return err
	}
	mntNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", initPid))
	if err != nil {
		return err
	}
	// The node's cgroup, the kubelet's cgroupRoot, must exist in every hierarchy.
	if err := k.step(func() error {
		k.initPid, k.mntNS = initPid, mntNS
		return makeCgroup(k.Cgroup)
	}); err != nil {
		return err
	}

	// containerd, its CRI as the kubelet needs it on this machine.
	host := n.IPv4.As4()
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "kvlab", "plugins": [{"type": "bridge", "bridge": "cni0",
  "isGateway": true, "ipMasq": false, "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.19.%d.0/24"}]]}}]}
`, host[3])
	if err := os.WriteFile(filepath.Join(k.Dir, "var-lib", "cni-conf", "10-kvlab.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	// restrict_oom_score_adj: runc cannot lower a container's oom_score_adj below containerd's
	// where CAP_SYS_RESOURCE is missing (as in this VM), and the sandbox fails with
	// "can't get final child's PID from pipe: EOF".
	config := fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  # Where AppArmor is on, the CRI would load its default profile into the host's kernel and
  # never remove it.
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/var/lib/cni-conf"
`, PauseImage)
	cfgPath := filepath.Join(k.Dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	if err := k.step(func() (err error) {
		k.containerd, err = k.startIn("containerd", "containerd", "--config", cfgPath)
		return err
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, k.containerd, func() error { return k.Ctr(ctx, "version") }); err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	if err := k.ImportImage(ctx, o.PauseArchive); err != nil {
		return err
	}

	// In-cluster clients (hostNetwork pods such as the agent) dial the API server's Service.
	if err := c.routeServiceIP(n); err != nil {
		return err
	}

	// The kubelet, with a node's credentials: the Node authorizer lets it read and write only
	// what its node and pods need (its pods' ServiceAccount tokens among them).
	kubeconfig := k.KubeletKubeconfig()
	if err := c.WriteClientKubeconfig(kubeconfig, "system:node:"+n.Name, "system:nodes"); err != nil {
		return err
	}
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
staticPodPath: %q
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /%s
enforceNodeAllocatable: []
protectKernelDefaults: true
failSwapOn: false
makeIPTablesUtilChains: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "0%%", nodefs.available: "0%%", imagefs.available: "0%%"}
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
registerNode: true
resolvConf: ""
`, n.IPv4, c.files["ca.crt"], k.StaticPodPath(), k.Cgroup)
	kcfgPath := filepath.Join(k.Dir, "kubelet.yaml")
	if err := os.WriteFile(kcfgPath, []byte(kcfg), 0o644); err != nil {
		return err
	}
	if err := k.step(func() (err error) {
		k.kubelet, err = k.startIn("kubelet",
			filepath.Join(o.BinDir, "kubelet"),
			"--config", kcfgPath,
			"--kubeconfig", kubeconfig,
			"--hostname-override", n.Name,
			"--node-ip", n.IPv4.String(),
			"--cert-dir", "/var/lib/kubelet/pki",
			"--v", "1",
		)
		return err
	}); err != nil {
		return err
	}
	// Started: its healthz answers (inside the node's namespace).
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: n.DialContext}}
	return waitFor(ctx, 60*time.Second, k.kubelet, func() error {
		return getOK(ctx, hc, "http://127.0.0.1:10248/healthz")
	})
}

// bindKubeletAPIUser binds KubeletAPIUser to the built-in ClusterRole system:kubelet-api-admin
// (once per control plane).
func (c *ControlPlane) bindKubeletAPIUser(ctx context.Context) error {
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kvlab:kubelet-api-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: KubeletAPIUser}},
	}
	if err := c.cl.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s to system:kubelet-api-admin: %w", KubeletAPIUser, err)
	}
	return nil
}

// routeServiceIP makes the API server's Service address (ServiceIP:443) reach it from node n,
// as kube-proxy would: a route for the service CIDR towards the control plane's host, and an
// nftables DNAT rule (table ip kvlab_svc, gone with the namespace) for locally generated
// connections.
func (c *ControlPlane) routeServiceIP(n *lab.Node) error {
	if out, err := n.Run("ip", "route", "replace", c.opts.ServiceCIDR.Masked().String(), "via", c.Host.IPv4.String()); err != nil {
		return fmt.Errorf("route to the service CIDR: %v: %s", err, out)
	}
	svc, host := c.ServiceIP().As4(), c.Host.IPv4.As4()
	return n.InNetns(func() error {
		conn, err := nftables.New()
		if err != nil {
			return err
		}
		t := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "kvlab_svc"})
		ch := conn.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
		conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			// ip daddr ServiceIP tcp dport 443 dnat to Host:Port
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: svc[:]},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syscall.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(443)},
			&expr.Immediate{Register: 1, Data: host[:]},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(uint16(c.opts.Port))},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: syscall.AF_INET, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}})
		if err := conn.Flush(); err != nil {
			return fmt.Errorf("DNAT of %s:443 to %s:%d: %w", c.ServiceIP(), c.Host.IPv4, c.opts.Port, err)
		}
		return nil
	})
}

// waitFor polls ok every 100 ms until it succeeds, d exits, timeout passes or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, d *daemon, ok func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := ok()
		if err == nil {
			return nil
		}
		if d.exited() {
			return fmt.Errorf("%s exited (%v); log %s:\n%s", d.name, d.err, d.log, d.tail(30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v; log %s:\n%s", d.name, timeout, err, d.log, d.tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// KubeletKubeconfig is the kubelet's kubeconfig: the node's client certificate.
func (k *KubeNode) KubeletKubeconfig() string { return filepath.Join(k.Dir, "kubelet.kubeconfig") }

// StaticPodPath is the kubelet's staticPodPath, a directory on the host's filesystem (the node's
// mount namespace shares it): a Pod manifest written there is run by the kubelet (it watches the
// directory, and rereads it every fileCheckFrequency, 5 s), and stopped once removed.
func (k *KubeNode) StaticPodPath() string { return filepath.Join(k.Dir, "manifests") }

// KubeletLog returns the kubelet's log path, ContainerdLog containerd's.
func (k *KubeNode) KubeletLog() string    { return filepath.Join(k.Dir, "kubelet.log") }
func (k *KubeNode) ContainerdLog() string { return filepath.Join(k.Dir, "containerd.log") }

// Close stops the kubelet, the pods (every process in the node's cgroup), containerd and what
// is left in the node's namespaces (the shims), and removes the node's cgroup. The mounts go
// with the namespace's last process. It is idempotent.
func (k *KubeNode) Close() error {
	k.closeOnce.Do(func() {
		// No start step runs from here on (step), and those done are all recorded.
		k.mu.Lock()
		k.closed = true
		k.mu.Unlock()
		var errs []error
		k.kubelet.stop(10 * time.Second)
		if err := killCgroup(k.Cgroup); err != nil {
			errs = append(errs, err)
		}
		k.containerd.stop(10 * time.Second)
		if k.mntNS != "" {
			if err := killMountNS(k.mntNS); err != nil {
				errs = append(errs, err)
			}
		}
		k.holder.stop(time.Second)
		if k.initPid != 0 {
			if err := waitGone(k.initPid); err != nil {
				errs = append(errs, err)
			}
		}
		if err := removeCgroup(k.Cgroup); err != nil {
			errs = append(errs, err)
		}
		k.closeErr = errors.Join(errs...)
	})
	return k.closeErr
}

// errNodeClosed is a start step's error once the node is closing (a signal closed the lab).
var errNodeClosed = errors.New("node closed while starting")

// step runs one start step that starts something Close must stop (and records it in k), unless
// Close has begun: then nothing is started.
func (k *KubeNode) step(f func() error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return errNodeClosed
	}
	return f()
}

// waitGone waits (up to 5 s) until the process pid, not a child of ours, has exited: it has no
// /proc entry, or is a zombie (whose namespaces are released) waiting for its new parent.
func waitGone(pid int) error {
	for range 500 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && bytes.HasPrefix(b[i+1:], []byte(" Z")) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("process %d still runs", pid)
}

// PIDNamespace is the node's process table: Exec there runs a program as the node's host
// would (HAProxy, for instance, which a hostPID pod's process probe then sees).
func (k *KubeNode) PIDNamespace() *lab.PIDNamespace { return k.Node.JoinPIDNamespace(k.initPid) }

// Ctr runs `ctr` in the node's namespaces against its containerd, in containerd's k8s.io
// namespace (the CRI's).
func (k *KubeNode) Ctr(ctx context.Context, args ...string) error {
	argv := append([]string{"--target", strconv.Itoa(k.initPid), "--mount", "--net", "--pid", "--",
		"ctr", "--address", "/run/containerd/containerd.sock", "--namespace", "k8s.io"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("node %s: ctr %s: %v: %s", k.Node.Name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ImportImage imports an image archive (docker save or OCI layout, as `make image` writes)
// into the node's containerd, where pods with imagePullPolicy Never or IfNotPresent find it.
// The archive's path must be visible in the node's mount namespace (anywhere but /run,
// /var/lib and /var/log).
func (k *KubeNode) ImportImage(ctx context.Context, archive string) error {
	return k.Ctr(ctx, "images", "import", "--no-unpack", archive)
}

// ContainerIDs returns the ids of the containers (and sandboxes) the node's containerd has
// started and not deleted: the task directories of its runc shims.
func (k *KubeNode) ContainerIDs() []string {
	seen := map[string]bool{}
	var ids []string
	for _, d := range []string{"run/containerd", "var-lib/containerd"} {
		entries, _ := os.ReadDir(filepath.Join(k.Dir, d, "io.containerd.runtime.v2.task", "k8s.io"))
		for _, e := range entries {
			if id := e.Name(); containerID.MatchString(id) && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

var containerID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// cgroupHierarchies returns the mounted cgroup v1 hierarchies (and the v2 one), the
// directories under which a node's cgroup may appear.
func cgroupHierarchies() []string {
	// A unified (cgroup v2 only) machine, as a fresh Debian 12 is: one hierarchy, whose
	// subdirectories are the host's own cgroups (system.slice, ...), not hierarchies.
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
		return []string{"/sys/fs/cgroup"}
	}
	// cgroup v1, or hybrid (v1 controllers and a v2 hierarchy at /sys/fs/cgroup/unified): a
	// directory per mounted hierarchy.
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// CgroupDir is the node's cgroup directory in the hierarchy that holds every process (pids'
// on cgroup v1, the unified one on v2), where the pods' cgroups and cgroup.procs files are.
func (k *KubeNode) CgroupDir() string {
	hs := cgroupHierarchies()
	for _, h := range hs {
		if filepath.Base(h) == "pids" {
			return filepath.Join(h, k.Cgroup)
		}
	}
	if len(hs) == 1 {
		return filepath.Join(hs[0], k.Cgroup)
	}
	return filepath.Join("/sys/fs/cgroup/pids", k.Cgroup)
}

// makeCgroup creates the cgroup name (one level, at the top) in every hierarchy, cpuset's with
// the root's CPUs and memory nodes (a new cpuset cgroup has none, and takes no process).
func makeCgroup(name string) error {
	for _, h := range cgroupHierarchies() {
		p := filepath.Join(h, name)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroup %s: %w", p, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(p, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %s: %w", p, f, err)
				}
			}
		}
	}
	return nil
}

// sweepCgroups removes the nodes' cgroups of runs whose process is gone (SIGKILLed: Close never
// ran), after killing what is left in them.
func sweepCgroups() {
	seen := map[string]bool{}
	for _, h := range cgroupHierarchies() {
		entries, _ := os.ReadDir(h)
		for _, e := range entries {
			m := dirName.FindStringSubmatch(e.Name())
			if m == nil || !e.IsDir() || seen[e.Name()] {
				continue
			}
			if !owned(m[1], filepath.Join(h, e.Name())) {
				seen[e.Name()] = true
				_ = killCgroup(e.Name())
				_ = removeCgroup(e.Name())
			}
		}
	}
}

// cgroupPids returns every process in the cgroup subtree name in any hierarchy.
func cgroupPids(name string) []int {
	var pids []int
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, name), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// killCgroup SIGKILLs every process in the cgroup subtree name until none is left.
func killCgroup(name string) error {
	for range 100 {
		pids := cgroupPids(name)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("processes still in cgroup %s: %v", name, cgroupPids(name))
}

// removeCgroup removes the cgroup subtree name (empty by now) from every hierarchy, deepest first.
func removeCgroup(name string) error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, name)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// killMountNS SIGKILLs every process whose mount namespace is ns (mnt:[inode]).
func killMountNS(ns string) error {
	for range 100 {
		var pids []int
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			if link, err := os.Readlink("/proc/" + p.Name() + "/ns/mnt"); err == nil && link == ns {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("processes still in mount namespace %s", ns)
}

// buildPause builds the pause program (internal/cluster/pause) into out.
func buildPause(ctx context.Context, out string) error {
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./internal/cluster/pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	killGroupOnCancel(cmd)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build pause: %v: %s", err, b)
	}
	return nil
}

// killGroupOnCancel makes the end of cmd's context kill its whole process group (a build's
// compilers too, which would otherwise hold its output open until they finish) and the
// process die with ours.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
}

// BuildPauseImage writes a Docker image archive (what `ctr images import` reads) of
// PauseImage: the static pause program (internal/cluster/pause), built here with the Go
// toolchain, as /pause.
func BuildPauseImage(ctx context.Context, archive string) error {
	bin := archive + ".pause"
	defer os.Remove(bin)
	if err := buildPause(ctx, bin); err != nil {
		return err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.ParseReference(PauseImage)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(archive, ref, img)
}

// StartControllers starts kube-controller-manager and kube-scheduler beside kube-apiserver (in
// the control plane's namespace, with the admin's kubeconfig, no leader election) and
// returns when both answer their health checks. They are stopped by Close, before
// kube-apiserver. binDir holds them (default: the envtest assets' directory).
func (c *ControlPlane) StartControllers(ctx context.Context, binDir string) error {
	if binDir == "" {
		binDir = c.assets
	}
	kubeconfig, err := c.AdminKubeconfig()
	if err != nil {
		return err
	}
	f := c.files
	type comp struct {
		name string
		port int
		args []string
	}
	for _, p := range []comp{
		{"kube-controller-manager", 10257, []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--service-account-private-key-file=" + f["sa.key"],
			"--root-ca-file=" + f["ca.crt"],
			"--use-service-account-credentials=false",
			"--controllers=*,-nodeipam",
			"--cert-dir=" + filepath.Join(c.dir, "kcm"),
		}},
		{"kube-scheduler", 10259, []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--cert-dir=" + filepath.Join(c.dir, "scheduler"),
		}},
	} {
		t0 := time.Now()
		proc, err := c.Host.Exec(context.Background(), p.name, c.argv(append([]string{filepath.Join(binDir, p.name)}, p.args...)...)...)
		if err != nil {
			return fmt.Errorf("start %s: %w", p.name, err)
		}
		c.mu.Lock()
		c.controllers = append(c.controllers, proc)
		c.mu.Unlock()
		// /healthz is open to anyone (always-allow-paths); the serving certificate is
		// self-signed.
		hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			DialContext: c.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		if err := c.waitReady(ctx, proc, p.name, func() error {
			return getOK(ctx, hc, fmt.Sprintf("https://127.0.0.1:%d/healthz", p.port))
		}); err != nil {
			return err
		}
		c.opts.Logf("cluster: %s ready in %v", p.name, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// HolderPid is the (host) process id of the init of the node's PID namespace, which holds the
// node's mount namespace.
func (k *KubeNode) HolderPid() int { return k.initPid }
