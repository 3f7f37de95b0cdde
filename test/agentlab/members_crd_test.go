package agentlab_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// membersCRDMissing is the start of the error an agent logs when the API server does not
// serve VirtualIPMembers.
const membersCRDMissing = "the VirtualIPMember CRD is not installed"

// TestMembersCRDLate is a release upgraded with `helm upgrade`, which never upgrades crds/,
// before the VirtualIPMember CRD was applied: the agent starts where the API server serves
// VirtualIPs only. Its VirtualIP still runs (n1 MASTER, the VIP bound in n1's namespace) and
// it logs an error saying the CRD is missing. Once the CRD is applied its status controllers
// start (the agent polls every 10 s, then its node manager restarts): n1's member appears and
// the VirtualIP's summary names n1 master within 30 s, while the instance keeps running (no
// transition, the VIP never left n1) (docs/design.md §7.5).
func TestMembersCRDLate(t *testing.T) {
	privtest.Require(t)
	if testing.Short() {
		t.Skip("starts kube-apiserver and an agent; skipped in -short mode")
	}
	envtestassets.Require(t)
	ctx := t.Context()
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := lab.KubeVRRPBinary(t)
	l := lab.New(t, lab.Options{Nodes: 1, Nice: nice})
	cp := cluster.New(t, l, cluster.Options{Nice: nice})
	crds := filepath.Join(root, "config", "crd", "bases")
	if err := cp.Install(ctx, cluster.InstallOptions{
		CRDs: []string{filepath.Join(crds, "kubevrrp.io_virtualips.yaml")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := cp.Client().List(ctx, &v1alpha1.VirtualIPMemberList{}); !meta.IsNoMatchError(err) {
		t.Fatalf("listing VirtualIPMembers before their CRD is applied: %v, want no match for the kind", err)
	}
	if err := cp.RegisterNodes(ctx, l.Nodes(), nil); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := cp.AgentKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	n1 := l.Node(1)
	e := &env{l: l, cp: cp, k8s: cp.Client(), nodes: l.Nodes(), agents: map[string]*lab.Proc{}}
	state, err := n1.StateDir(0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := n1.Exec(context.Background(), "kube-vrrp-agent",
		"nice", "-n", strconv.Itoa(nice), bin, "agent", "--state-dir", state,
		"--node-name", n1.Name, "--namespace", cluster.Namespace, "--kubeconfig", kubeconfig,
		"--metrics-bind-address", listen, "--metrics-secure=false", "--log-format", "json", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	e.agents[n1.Name] = p
	t.Cleanup(func() { _ = p.Stop() })
	defer func() {
		if t.Failed() {
			t.Logf("n1's agent log (%s), last lines:\n%s", p.LogPath, p.Tail(40))
		}
	}()
	if err := p.WaitLog("kube-vrrp agent running", 0, settle); err != nil {
		t.Fatal(err)
	}

	v := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: vipName},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:                  51,
			Addresses:             []string{vip.String()},
			AdvertisementInterval: &v1alpha1.Duration{Duration: 100 * time.Millisecond},
			Nodes:                 []v1alpha1.NodeOverride{{Name: "n1", Priority: ptr(priorities["n1"])}},
		},
	}
	created := time.Now()
	if err := e.k8s.Create(ctx, v); err != nil {
		t.Fatal(err)
	}
	// The old agent never got this far: its node manager failed on the missing kind before
	// the VirtualIP reconciler ran, and started again, failing the same way.
	if err := lab.WaitHolders(e.nodes, vip, e.nodes[:1], settle); err != nil {
		t.Fatalf("without the VirtualIPMember CRD: %v", err)
	}
	t.Logf("without the VirtualIPMember CRD: VIP bound on n1 %v after the Create", time.Since(created).Round(time.Millisecond))
	if err := p.WaitLog(membersCRDMissing, 0, settle); err != nil {
		t.Fatal(err)
	}
	if line := logLine(p.Log(), membersCRDMissing); !strings.Contains(line, `"level":"ERROR"`) {
		t.Errorf("the missing CRD is not logged as an error: %s", line)
	}
	m0 := e.scrape(t, n1)
	if s := m0.value("kube_vrrp_state", `state="Master"`); s != 1 {
		t.Errorf("n1 kube_vrrp_state{state=Master} = %v, want 1", s)
	}
	if got, err := e.get(ctx); err != nil {
		t.Fatal(err)
	} else if got.Status.Master != "" {
		t.Errorf("status.master %q without the VirtualIPMember CRD: no status controller should run", got.Status.Master)
	}

	// The VIP must stay on n1 while the node manager restarts with the status controllers.
	lost := make(chan time.Time, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		for watchCtx.Err() == nil {
			if !n1.HasAddress(vip) {
				lost <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	mark(t, "apply the VirtualIPMember CRD")
	if err := cp.Install(ctx, cluster.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	served := time.Now()
	got, err := e.waitStatus(ctx, 30*time.Second, func(v *observed) error {
		if n := entry(v, "n1"); n == nil || n.State != "Master" {
			return fmt.Errorf("n1's member is %+v, want Master", n)
		}
		if v.Status.Master != "n1" {
			return fmt.Errorf("master %q, want n1", v.Status.Master)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the VirtualIPMember CRD was applied: %v", err)
	}
	t.Logf("VirtualIPMember CRD served -> n1's member Master and status.master = n1: %v; %s",
		time.Since(served).Round(time.Millisecond), summary(got))
	stopWatch()
	select {
	case at := <-lost:
		t.Errorf("n1 lost %s %v after the CRD was served: the instance did not keep running", vip.Addr(), at.Sub(served).Round(time.Millisecond))
	default:
	}
	m1 := e.scrape(t, n1)
	if t0, t1 := m0.value("kube_vrrp_transitions_total"), m1.value("kube_vrrp_transitions_total"); t0 != t1 {
		t.Errorf("n1's transitions %v -> %v while the status controllers started: the instance restarted", t0, t1)
	}
	if !strings.Contains(p.Log(), "the VirtualIPMember CRD is installed now") {
		t.Errorf("n1's agent did not log that it restarts its node manager with the status controllers")
	}
	if n := strings.Count(p.Log(), "kube-vrrp agent running"); n != 1 || p.Exited() {
		t.Errorf("the agent process restarted (%d starts, exited %v)", n, p.Exited())
	}
	t.Run("NoForbiddenOrEPERM", func(t *testing.T) { testNoForbidden(t, e) })
}

// logLine returns the first line of log containing substr, "" if none does.
func logLine(log, substr string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, substr) {
			return strings.TrimSuffix(line, "\n")
		}
	}
	return ""
}
