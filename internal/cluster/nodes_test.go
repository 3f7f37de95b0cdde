package cluster_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// hostState is what the nodes must leave as they found it: the host's mounts, and the
// cgroups at the top of each hierarchy.
func hostState(t *testing.T) string {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && !strings.HasPrefix(f[4], "/run/netns/") {
			// The lab's network namespaces are bind mounts under /run/netns (ip netns); the lab
			// test checks those. Everything else must be unchanged.
			fmt.Fprintln(&b, strings.Join(f[2:], " "))
		}
	}
	// Other labs may run beside this test: only this process's nodes' cgroups count, and what
	// a runtime would make at the top without a cgroup root.
	own := fmt.Sprintf("/sys/fs/cgroup/*/kvlcp%d-*", os.Getpid())
	for _, pattern := range []string{"/sys/fs/cgroup/*/k8s.io", own, "/sys/fs/cgroup/*/kubepods*"} {
		hs, _ := filepath.Glob(pattern)
		fmt.Fprintln(&b, "cgroups:", hs)
	}
	return b.String()
}

// TestKubeNodes runs a real cluster in a lab: the control plane with kube-controller-manager
// and kube-scheduler, and containerd with a kubelet on two node namespaces. Both Nodes become
// Ready, a DaemonSet of the pause image (hostNetwork, hostPID) runs a pod on each, in the
// node's cgroup and PID namespace, and everything stops leaving nothing behind: no process,
// mount, cgroup or network namespace.
func TestKubeNodes(t *testing.T) {
	privtest.Require(t)
	requireAssets(t)
	cluster.RequireNodeTools(t)
	ctx := t.Context()
	before := hostState(t)

	var l *lab.Lab
	var nodes []*cluster.KubeNode
	var holders []int
	var teardown time.Time
	t.Run("cluster", func(t *testing.T) {
		t0 := time.Now()
		l = lab.New(t, lab.Options{Nodes: 2})
		cp := cluster.New(t, l, cluster.Options{})
		if err := cp.StartControllers(ctx, ""); err != nil {
			t.Fatal(err)
		}
		var err error
		nodes, err = cp.StartNodes(ctx, l.Nodes(), cluster.KubeletOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				for _, k := range nodes {
					for _, log := range []string{k.KubeletLog(), k.ContainerdLog()} {
						b, _ := os.ReadFile(log)
						lines := strings.Split(strings.TrimSpace(string(b)), "\n")
						t.Logf("--- %s:\n%s", log, strings.Join(lines[max(0, len(lines)-40):], "\n"))
					}
				}
			}
		})
		for _, k := range nodes {
			holders = append(holders, k.HolderPid())
		}
		admin := cp.Client()
		waitUntil(t, 2*time.Minute, "both Nodes Ready", func() error {
			var list corev1.NodeList
			if err := admin.List(ctx, &list); err != nil {
				return err
			}
			ready := 0
			for _, n := range list.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready != 2 {
				return fmt.Errorf("%d of %d Nodes Ready", ready, len(list.Items))
			}
			return nil
		})
		t.Logf("timing: cluster up (control plane, controllers, 2 nodes Ready) in %v", time.Since(t0).Round(time.Millisecond))

		// The kubelets registered with their own credentials: the Node authorizer lets n1's
		// identity read its own Node and refuses it n2's.
		asN1, err := cp.ClientAs("system:node:n1", "system:nodes")
		if err != nil {
			t.Fatal(err)
		}
		var node corev1.Node
		if err := asN1.Get(ctx, client.ObjectKey{Name: "n1"}, &node); err != nil {
			t.Errorf("n1's kubelet identity cannot get its own Node: %v", err)
		}
		if err := asN1.Get(ctx, client.ObjectKey{Name: "n2"}, &node); err == nil {
			t.Error("n1's kubelet identity can get Node n2; the Node authorizer should refuse it")
		}
		// The kubelets authorise by RBAC (webhook), not AlwaysAllow: n1's node certificate may
		// not read n2's kubelet API.
		kc, err := clientcmd.LoadFromFile(nodes[0].KubeletKubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		var auth *clientcmdapi.AuthInfo
		for _, a := range kc.AuthInfos {
			auth = a
		}
		cert, err := tls.X509KeyPair(auth.ClientCertificateData, auth.ClientKeyData)
		if err != nil {
			t.Fatal(err)
		}
		asNode := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}, // the kubelet's serving certificate is self-signed
			DialContext:     nodes[0].Node.DialContext,
		}}
		resp, err := asNode.Get("https://" + nodes[1].Node.IPv4.String() + ":10250/pods")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("n1's node certificate at n2's kubelet /pods: %s, want 403 Forbidden", resp.Status)
		}
		// From each node, the API server answers at its Service address (ServiceIP:443), as
		// in-cluster clients dial it.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cp.CACert())
		for _, k := range nodes {
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: k.Node.DialContext}}
			resp, err := hc.Get("https://" + cp.ServiceIP().String() + ":443/readyz")
			if err != nil {
				t.Errorf("node %s: GET https://%s/readyz: %v", k.Node.Name, cp.ServiceIP(), err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Errorf("node %s: GET https://%s/readyz: %s %q", k.Node.Name, cp.ServiceIP(), resp.Status, body)
			}
		}

		t1 := time.Now()
		labels := map[string]string{"app": "pause"}
		never := false
		ds := &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "pause", Namespace: "default"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						HostNetwork:                  true,
						HostPID:                      true,
						AutomountServiceAccountToken: &never,
						Containers: []corev1.Container{{
							Name: "pause", Image: cluster.PauseImage, ImagePullPolicy: corev1.PullNever,
						}},
					},
				},
			},
		}
		if err := admin.Create(ctx, ds); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 2*time.Minute, "a Running pause pod on each node", func() error {
			var pods corev1.PodList
			if err := admin.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(labels)); err != nil {
				return err
			}
			running := map[string]bool{}
			var states []string
			for _, p := range pods.Items {
				states = append(states, fmt.Sprintf("%s on %q: %s", p.Name, p.Spec.NodeName, p.Status.Phase))
				if p.Status.Phase == corev1.PodRunning && p.Status.PodIP == l.NodeByName(p.Spec.NodeName).IPv4.String() {
					running[p.Spec.NodeName] = true
				}
			}
			if !running["n1"] || !running["n2"] {
				return fmt.Errorf("pods: %v", states)
			}
			return nil
		})
		t.Logf("timing: DaemonSet pods Running on both nodes in %v", time.Since(t1).Round(time.Millisecond))
		// The node's init reaps orphans, as a host's does: a daemon's child left behind by its
		// parent ends as no zombie.
		orphan, err := nodes[0].PIDNamespace().Exec(ctx, "orphan", "sh", "-c", "sleep 0.2 & exit 0")
		if err != nil {
			t.Fatal(err)
		}
		<-orphan.Done()
		time.Sleep(500 * time.Millisecond)
		for _, c := range lab.ChildPids(nodes[0].HolderPid()) {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c)); err == nil && strings.Contains(string(b), ") Z") {
				t.Errorf("a zombie under the node's init: %s", b)
			}
		}
		// Each node runs the pod's sandbox and container, each in a cgroup of its own under the
		// node's, and (hostPID) in the node's PID namespace.
		for _, k := range nodes {
			ids := k.ContainerIDs()
			nodePidNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", k.HolderPid()))
			if err != nil {
				t.Fatal(err)
			}
			hostPidNS, _ := os.Readlink("/proc/self/ns/pid")
			if nodePidNS == hostPidNS {
				t.Errorf("node %s: the node's PID namespace is the test machine's", k.Node.Name)
			}
			for _, id := range ids {
				dirs, _ := filepath.Glob(filepath.Join(k.CgroupDir(), "kubepods", "*", id))
				more, _ := filepath.Glob(filepath.Join(k.CgroupDir(), "kubepods", "*", "*", id))
				dirs = append(dirs, more...)
				if len(dirs) != 1 {
					t.Errorf("node %s: container %s: cgroups %v, want one under %s/kubepods", k.Node.Name, id, dirs, k.Cgroup)
					continue
				}
				b, err := os.ReadFile(filepath.Join(dirs[0], "cgroup.procs"))
				pids := strings.Fields(string(b))
				if err != nil || len(pids) == 0 {
					t.Errorf("node %s: container %s: no process in its cgroup (%v)", k.Node.Name, id, err)
					continue
				}
				if ns, _ := os.Readlink("/proc/" + pids[0] + "/ns/pid"); ns != nodePidNS {
					t.Errorf("node %s: container %s: process %s in PID namespace %s, want the node's %s", k.Node.Name, id, pids[0], ns, nodePidNS)
				}
			}
			if len(ids) != 2 {
				t.Errorf("node %s: %d containers, want 2 (the sandbox and pause): %v", k.Node.Name, len(ids), ids)
			}
		}
		teardown = time.Now() // the subtest's cleanups follow
	})

	// The subtest's cleanups closed the nodes, the control plane and the lab.
	if !teardown.IsZero() {
		t.Logf("timing: teardown (nodes, control plane, lab) in %v", time.Since(teardown).Round(time.Millisecond))
	}
	if after := hostState(t); after != before {
		t.Errorf("the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, pid := range holders {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z") {
			t.Errorf("the mount namespace holder %d still runs", pid)
		}
	}
	if l != nil {
		if out, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(out, []byte(l.Prefix)) {
			t.Errorf("network namespaces of %s left: %s", l.Prefix, out)
		}
	}
	for _, k := range nodes {
		if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(b, []byte(k.Dir)) {
			t.Errorf("a mount under %s on the host", k.Dir)
		}
		if out, _ := exec.Command("pgrep", "-f", k.Dir).Output(); len(out) > 0 {
			t.Errorf("processes naming %s still run: %s", k.Dir, out)
		}
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
