//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// TestRunMirror: `kube-vrrp run --kubeconfig` with a control-plane node's client certificate
// (docs/design.md §7.11), in a lab node, against a real kube-apiserver with the control-plane
// role and the members' policy:
//   - with the API server unreachable from the start (a kubeconfig naming an address nobody
//     holds), VRRP runs as ever: MASTER, the VIP bound, while the mirror fails and is started
//     again;
//   - with it reachable, the node's member and the summary of the VirtualIP of the same name in
//     the cluster are written, and the transitions are the same as without the API server;
//   - stopping the API server then changes no VRRP state, and SIGTERM still hands over and
//     exits 0.
func TestRunMirror(t *testing.T) {
	privtest.Require(t)
	envtestassets.Require(t)
	l := lab.New(t, lab.Options{Nodes: 1, ResponderPort: -1})
	n1 := l.Node(1)
	cp := cluster.New(t, l, cluster.Options{})
	ctx := t.Context()
	if err := cp.Install(ctx, cluster.InstallOptions{WarmUp: []string{}}); err != nil {
		t.Fatal(err)
	}
	if err := cp.RegisterNodes(ctx, l.Nodes(), nil); err != nil {
		t.Fatal(err)
	}
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.ApplyFiles(ctx, filepath.Join(root, "config", "rbac", "control_plane_role.yaml"),
		filepath.Join(root, "config", "policy", "member_policy.yaml")); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParsePrefix("198.18.0.200/24")
	vipYAML := fmt.Appendf(nil, `apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: cp}
spec:
  vrid: 51
  addresses: [%q]
  nodes: [{name: %s, priority: 150}]
`, vip, n1.Name)
	manifest := n1.MustWriteFile("vip.yaml", vipYAML)
	if _, err := cp.Apply(ctx, vipYAML); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := cp.WriteClientKubeconfig(kubeconfig, "kube-vrrp:node:"+n1.Name, "kube-vrrp:control-plane"); err != nil {
		t.Fatal(err)
	}
	// The same credentials for an API server at an address of the LAN that nobody holds:
	// connections hang until the kernel gives up on ARP.
	unreachable := filepath.Join(dir, "unreachable.kubeconfig")
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range kc.Clusters {
		c.Server = "https://198.18.0.240:6443"
	}
	if err := clientcmd.WriteToFile(*kc, unreachable); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(unreachable, 0o600); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(testMainEnv, "1")
	start := func(name, kubeconfig string) *lab.Proc {
		t.Helper()
		state, err := n1.StateDir(0)
		if err != nil {
			t.Fatal(err)
		}
		events, err := n1.EventsFile(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := n1.Exec(ctx, name, exe, "run", "-f", manifest, "--node", n1.Name, "--log-format", "json",
			"--state-dir", state, "--events", events, "--kubeconfig", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		p.EventsPath = events
		return p
	}
	transitions := func(p *lab.Proc) []string {
		var out []string
		for _, tr := range lab.KubeVRRPTransitions(p) {
			out = append(out, tr.From+">"+tr.State+" "+tr.Reason)
		}
		return out
	}
	stop := func(p *lab.Proc) {
		t.Helper()
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(5 * time.Second); err != nil {
			t.Fatalf("%s exited with %v after SIGTERM, want 0; log:\n%s", p.Name, err, p.Tail(20))
		}
		if err := lab.WaitHolders(l.Nodes(), vip, nil, time.Second); err != nil {
			t.Errorf("after %s stopped: %v", p.Name, err)
		}
	}

	// The API server unreachable from the start: VRRP as without it.
	t0 := time.Now()
	p := start("unreachable", unreachable)
	if err := lab.WaitKubeVRRPState(p, "cp", "Master", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !n1.HasAddress(vip) {
		t.Fatalf("MASTER without %s bound", vip)
	}
	t.Logf("MASTER with the API server unreachable after %v", time.Since(t0).Round(time.Millisecond))
	if err := p.WaitLog(`"msg":"restarting status mirror"`, 0, 20*time.Second); err != nil {
		t.Errorf("the mirror never failed against an unreachable API server: %v", err)
	}
	alone := transitions(p)
	stop(p)

	// Reachable: the member and the summary.
	p = start("mirror", kubeconfig)
	if err := lab.WaitKubeVRRPState(p, "cp", "Master", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c := cp.Client()
	member := v1alpha1.MemberName("cp", n1.Name)
	eventually(t, 20*time.Second, "the member and the summary in the cluster", func() error {
		var m v1alpha1.VirtualIPMember
		if err := c.Get(ctx, client.ObjectKey{Name: member}, &m); err != nil {
			return err
		}
		if m.Spec.Node != n1.Name || m.Status.State != "Master" || m.Status.Priority != 150 {
			return fmt.Errorf("member %s: spec %+v, status %+v", member, m.Spec, m.Status)
		}
		var v v1alpha1.VirtualIP
		if err := c.Get(ctx, client.ObjectKey{Name: "cp"}, &v); err != nil {
			return err
		}
		if v.Status.Master != n1.Name || !apimeta.IsStatusConditionTrue(v.Status.Conditions, "Ready") {
			return fmt.Errorf("summary: master %q, conditions %+v", v.Status.Master, v.Status.Conditions)
		}
		return nil
	})
	if got := transitions(p); !slices.Equal(got, alone) {
		t.Errorf("transitions with the API server %q, without %q", got, alone)
	}
	if strings.Contains(p.Log(), "restarting status mirror") {
		t.Errorf("the mirror failed with the API server up:\n%s", p.Tail(20))
	}

	// The API server stops: nothing of VRRP changes.
	stopped := time.Now()
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := wait(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server stopped %v ago", time.Since(stopped).Round(time.Millisecond))
	if got := transitions(p); !slices.Equal(got, alone) {
		t.Errorf("transitions after the API server stopped %q, want still %q", got, alone)
	}
	if p.Exited() || !n1.HasAddress(vip) {
		t.Errorf("after the API server stopped: exited %v, %s bound %v", p.Exited(), vip, n1.HasAddress(vip))
	}
	stop(p)
}

// wait sleeps for d unless ctx is done first.
func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// eventually retries check every 100 ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
