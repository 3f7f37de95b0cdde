package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
)

// staticPodVIP is the control-plane VIP of TestStaticPod, on the lab LAN (198.18.0.0/24).
var staticPodVIP = netip.MustParsePrefix("198.18.0.110/24")

// staticPodStop bounds the time from the manifest's removal to the VIP's release: the kubelet
// sees the removal at once (it watches its staticPodPath), kills the pod with SIGTERM, and
// kube-vrrp hands over with priority 0 and removes the address within milliseconds. It is
// below the pod's grace period (10 s): an agent that ignored SIGTERM would keep the address
// until the kubelet SIGKILLs it, and a SIGKILLed agent leaves it bound.
const staticPodStop = 8 * time.Second

// TestStaticPod runs `kube-vrrp static-pod`'s manifest (pkg/staticpod.Generate) as a kubeadm
// control-plane node would: written into a real kubelet's staticPodPath, with the release
// image in the node's containerd and the config and CA directories as hostPath volumes on the
// host's filesystem. The kubelet starts the pod (and its mirror Pod), the agent runs as uid
// 65532 with NET_ADMIN and NET_RAW only, and binds the VIP on the node, the MASTER alone.
// Removing the manifest stops the pod with SIGTERM, and the agent releases the VIP.
func TestStaticPod(t *testing.T) {
	if testing.Short() {
		t.Skip("a real cluster: skipped in -short mode")
	}
	privtest.Require(t)
	cluster.RequireNodeTools(t)
	ctx := t.Context()
	ctrllog.SetLogger(logr.Discard())
	dir := t.TempDir()

	t0 := time.Now()
	const image = imageRepo + ":static"
	archive, err := cluster.BuildAgentImage(ctx, filepath.Join(dir, "image"), image, "e2e-static")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: image built (make image) in %v", time.Since(t0).Round(time.Millisecond))
	if err := lab.Renice(e2eNice); err != nil {
		t.Fatal(err)
	}

	t0 = time.Now()
	l := lab.New(t, lab.Options{Nodes: 1})
	cp := cluster.New(t, l, cluster.Options{})
	nodes, err := cp.StartNodes(ctx, l.Nodes(), cluster.KubeletOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k := nodes[0]
	if err := e2eWeighNode(k); err != nil {
		t.Logf("%v: the agent runs at the default weight, and may stall on a loaded machine", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, log := range []string{k.KubeletLog(), k.ContainerdLog()} {
				b, _ := os.ReadFile(log)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("--- %s:\n%s", log, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	if err := k.ImportImage(ctx, archive); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: control plane and node %s started, image imported in %v", k.Node.Name, time.Since(t0).Round(time.Millisecond))

	// The node's files, as an administrator installs them: the config directory and the CA's
	// (the kubelet's hostPath volumes resolve on the host's filesystem, which the node's mount
	// namespace shares outside /run, /var/lib and /var/log), readable by the agent's uid.
	configDir := filepath.Join(dir, "etc", "kube-vrrp")
	caFile := filepath.Join(dir, "pki", "ca.crt")
	for _, d := range []string{configDir, filepath.Dir(caFile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// t.TempDir's directories are 0700: the pod sees only the mounted directories, but keep
	// the tree readable as /etc would be.
	for d := configDir; d != filepath.Dir(dir); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(caFile, cp.CACert(), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := staticpod.Generate(staticpod.Options{
		Node:      k.Node.Name,
		Address:   staticPodVIP,
		VRID:      61,
		Priority:  150,
		APIServer: cp.Endpoint.String(),
		CAFile:    caFile,
		Image:     image,
		ConfigDir: configDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configDir, staticpod.VirtualIPFile), files.VirtualIP, 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(k.StaticPodPath(), staticpod.ManifestFile)
	t.Cleanup(func() { _ = os.Remove(manifest) })

	// Written elsewhere and renamed into place, as an installer should: the kubelet must never
	// read half a manifest.
	t0 = time.Now()
	tmp := filepath.Join(k.StaticPodPath(), "."+staticpod.ManifestFile+".tmp")
	if err := os.WriteFile(tmp, files.Manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, manifest); err != nil {
		t.Fatal(err)
	}
	holders := []*lab.Node{k.Node}
	if err := lab.WaitSoleHolder(holders, staticPodVIP, k.Node, 300*time.Millisecond, 60*time.Second); err != nil {
		t.Fatalf("%v\nmirror pod: %s", err, staticPodMirror(t, cp, k.Node.Name))
	}
	t.Logf("figure: %s holds the VIP %v after the manifest was written", k.Node.Name, time.Since(t0).Round(time.Millisecond))

	pid := staticPodAgentPid(t, k, configDir)
	st := secProcStatus(t, pid)
	t.Logf("agent pid %d: CapEff %s CapPrm %s CapBnd %s CapAmb %s NoNewPrivs %s Seccomp %s Uid %q Gid %q",
		pid, st["CapEff"], st["CapPrm"], st["CapBnd"], st["CapAmb"], st["NoNewPrivs"], st["Seccomp"], st["Uid"], st["Gid"])
	for _, c := range []struct {
		key  string
		want uint64
	}{{"CapEff", secWantCaps}, {"CapPrm", secWantCaps}, {"CapBnd", secWantCaps}, {"CapAmb", 0}} {
		if got := secCapSet(t, st, c.key); got != c.want {
			t.Errorf("%s = %#x (%s), want %#x (%s)", c.key, got, secCapNames(got), c.want, secCapNames(c.want))
		}
	}
	want := strings.Repeat(strconv.Itoa(staticpod.AgentUID)+" ", 4)
	for _, key := range []string{"Uid", "Gid"} {
		if got := strings.Join(strings.Fields(st[key]), " ") + " "; got != want {
			t.Errorf("%s = %q, want %d four times", key, st[key], staticpod.AgentUID)
		}
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs = %q, want 1 (allowPrivilegeEscalation: false)", st["NoNewPrivs"])
	}

	// The kubelet reports the static pod to the API server as its mirror Pod, where
	// `kubectl get pods -n kube-system` shows it on a kubeadm control plane.
	mirrorName := staticpod.PodName + "-" + k.Node.Name
	deadline := time.Now().Add(30 * time.Second)
	for {
		var p corev1.Pod
		err := cp.Client().Get(ctx, client.ObjectKey{Namespace: staticpod.PodNamespace, Name: mirrorName}, &p)
		if err == nil && p.Status.Phase == corev1.PodRunning && podReady(p) {
			if _, ok := p.Annotations[corev1.MirrorPodAnnotationKey]; !ok {
				t.Errorf("pod %s/%s has no %s annotation: not the static pod's mirror", p.Namespace, p.Name, corev1.MirrorPodAnnotationKey)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror pod %s/%s not Running and Ready within 30s: %v\n%s", staticpod.PodNamespace, mirrorName, err, staticPodMirror(t, cp, k.Node.Name))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The manifest removed: the kubelet stops the pod (SIGTERM), the agent releases the VIP.
	t0 = time.Now()
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	for k.Node.HasAddress(staticPodVIP) {
		if time.Since(t0) > staticPodStop {
			t.Fatalf("%s still holds the VIP %v after the manifest was removed (agent pid %d alive: %v)",
				k.Node.Name, staticPodStop, pid, staticPodAlive(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("figure: VIP released %v after the manifest was removed", time.Since(t0).Round(time.Millisecond))
	for staticPodAlive(pid) {
		if time.Since(t0) > staticPodStop {
			t.Fatalf("agent pid %d still runs %v after the manifest was removed", pid, staticPodStop)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// staticPodAgentPid returns the host pid of the agent the static pod runs: the process in the
// node's pods' cgroups whose command line is `kube-vrrp run -f <configDir>/vip.yaml ...`.
func staticPodAgentPid(t *testing.T, k *cluster.KubeNode, configDir string) int {
	t.Helper()
	want := []byte("\x00run\x00-f\x00" + filepath.Join(configDir, staticpod.VirtualIPFile) + "\x00")
	var found []int
	err := filepath.WalkDir(filepath.Join(k.CgroupDir(), "kubepods"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmd, want) {
				found = append(found, pid)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("processes running kube-vrrp run -f %s in node %s's pods: %v, want one", filepath.Join(configDir, staticpod.VirtualIPFile), k.Node.Name, found)
	}
	return found[0]
}

// staticPodAlive reports whether pid still runs (a zombie does not).
func staticPodAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || !bytes.HasPrefix(b[i+1:], []byte(" Z"))
}

// staticPodMirror describes the static pod's mirror Pod, for a failure's message.
func staticPodMirror(t *testing.T, cp *cluster.ControlPlane, node string) string {
	out, err := cp.Kubectl(t.Context(), "", "describe", "pod", "--namespace", staticpod.PodNamespace, staticpod.PodName+"-"+node)
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return out
}
