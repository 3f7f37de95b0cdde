package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// failoverBound is the client-observed HTTP outage the demo's failover may cost: generous (the
// figure is tens of milliseconds; keepalived's classic setup costs ~3.6 s), so that a machine
// busy with the rest of make test does not fail it.
const failoverBound = 2 * time.Second

// lockedBuffer is the demo's output, kept for the test to read while t.Output shows it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemo runs make demo end to end on the real cluster (the image built by make image, the
// chart installed by helm, the DaemonSet's pods run by the kubelets, HAProxy killed on the
// MASTER and started again, helm uninstall) and checks what it must show: one MASTER after the
// start, the failover to n2 within failoverBound of HTTP outage and that outage printed, the
// address back on n1 once HAProxy is back, agents running as uid 65532 with only NET_ADMIN and
// NET_RAW that were never refused by the API server or the kernel, every phase timed, the
// address released by helm uninstall, and nothing left behind.
func TestDemo(t *testing.T) {
	privtest.Require(t)
	if testing.Short() {
		t.Skip("builds the image and starts a cluster of three kubelets; skipped in -short mode")
	}
	cluster.RequireNodeTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	var out lockedBuffer
	started := time.Now()
	res, err := Run(ctx, Options{Out: io.MultiWriter(t.Output(), &out), Nice: -10})
	t.Logf("demo took %v", time.Since(started).Round(time.Millisecond))
	printed := out.String()

	// Whatever happened: nothing may be left behind.
	t.Run("NothingLeftBehind", func(t *testing.T) {
		if res.Prefix == "" {
			t.Fatal("the demo built no lab")
		}
		if len(res.Leftovers) > 0 {
			t.Errorf("the demo reported leftovers: %v", res.Leftovers)
		}
		if again := Leftovers(res); len(again) > 0 {
			t.Errorf("left behind: %v", again)
		}
		if len(res.NetnsInodes) != 5 || len(res.Cgroups) != 3 || len(res.NodeNamespaces) != 6 || len(res.Dirs) != 2 {
			t.Errorf("the demo recorded %d network namespaces, cgroups %v, node namespaces %v and directories %v; want 5 (switch, n1..n3, client), 3, 6 (mount and PID of n1..n3) and 2 (lab, control plane)",
				len(res.NetnsInodes), res.Cgroups, res.NodeNamespaces, res.Dirs)
		}
		for _, pat := range []string{
			filepath.Join(os.TempDir(), res.Prefix+"*"),
			filepath.Join(os.TempDir(), fmt.Sprintf("kvlcp%d-*", os.Getpid())),
			filepath.Join("/dev/shm", fmt.Sprintf("kvlcp%d-*", os.Getpid())),
			fmt.Sprintf("/sys/fs/cgroup/*/kvlcp%d-*", os.Getpid()),
			fmt.Sprintf("/sys/fs/cgroup/kvlcp%d-*", os.Getpid()),
		} {
			if m, _ := filepath.Glob(pat); len(m) > 0 {
				t.Errorf("left behind: %v", m)
			}
		}
		if !strings.Contains(printed, "nothing left behind") {
			t.Error("the demo did not print that nothing was left behind")
		}
	})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}

	t.Run("Timings", func(t *testing.T) {
		var phases []string
		for _, tm := range res.Timings {
			phases = append(phases, tm.Phase)
		}
		for _, p := range []string{"cluster up", "image build", "helm install", "pods ready", "helm uninstall", "total"} {
			if !slices.Contains(phases, p) {
				t.Errorf("no timing of %q among %v", p, phases)
			}
			if !regexp.MustCompile(`\[` + p + `: [0-9][0-9.hmµs]*\]`).MatchString(printed) {
				t.Errorf("the demo did not print how long %q took", p)
			}
		}
		t.Logf("timings: %v", res.Timings)
	})

	t.Run("RealClients", func(t *testing.T) {
		// What the real kubectl and helm print: the pods' table with the node column, helm's
		// release status, kubectl get vip's printer columns.
		for _, re := range []string{
			`\$ helm install kube-vrrp charts/kube-vrrp -n kube-vrrp --set image.tag=demo --set image.pullPolicy=Never\nNAME: kube-vrrp\n`,
			`\$ kubectl get pods -n kube-vrrp -o wide\nNAME +READY +STATUS +RESTARTS +AGE +IP +NODE`,
			`\$ kubectl get vip\nNAME +VRID +ADDRESSES +MASTER +READY +SERVICE +AGE\nhaproxy +51 `,
			// The agents' logs come through the API server and the kubelets.
			`\$ kubectl logs -n kube-vrrp kube-vrrp-[a-z0-9]+ -c agent +\(n1: [1-9][0-9]* lines\)\n`,
		} {
			if !regexp.MustCompile(re).MatchString(printed) {
				t.Errorf("the demo's output has no match for %q", re)
			}
		}
		if len(res.Pods) != 3 {
			t.Errorf("agent pods by node: %v, want one on each of n1, n2, n3", res.Pods)
		}
	})

	t.Run("OneMasterAfterStart", func(t *testing.T) {
		s := res.Start
		if len(s.Masters) != 1 || s.Masters[0] != "n1" || s.Master != "n1" || s.Ready != "True" {
			t.Errorf("after the start: %s, want exactly one node in state Master, n1, status.master n1, Ready True", s)
		}
		if !slices.Equal(s.Holders, []string{"n1"}) {
			t.Errorf("after the start the address is held by %v, want n1 only", s.Holders)
		}
	})

	t.Run("FailoverToN2", func(t *testing.T) {
		f := res.Failover
		t.Logf("SIGKILL of HAProxy on %s: %s (bound %v)", res.KilledOn, f, failoverBound)
		if res.KilledOn != "n1" || f.Before != "n1" || f.After != "n2" {
			t.Errorf("HAProxy killed on %s, served by %s before and %s after, want n1, n1, n2 (%s)", res.KilledOn, f.Before, f.After, f.Result.Runs())
		}
		if f.Duration > failoverBound {
			t.Errorf("client-observed HTTP outage %v, want under %v (%s)", f.Duration, failoverBound, f.Result)
		}
		s := res.AfterKill
		if s.Master != "n2" || s.States["n2"] != "Master" || s.States["n1"] != "Fault" || len(s.Masters) != 1 || !slices.Equal(s.Holders, []string{"n2"}) {
			t.Errorf("after the kill: %s, want n2 the only Master and holder, n1 Fault", s)
		}
		// The measured outage is printed, as the client saw it.
		if want := "client: " + outageText(f); !strings.Contains(printed, want) {
			t.Errorf("the demo did not print the failover's measurement %q", want)
		}
	})

	t.Run("BackToN1", func(t *testing.T) {
		h := res.Handback
		t.Logf("HAProxy back on n1: %s", h)
		s := res.AfterRestart
		if h.After != "n1" || s.Master != "n1" || len(s.Masters) != 1 || !slices.Equal(s.Holders, []string{"n1"}) {
			t.Errorf("after HAProxy came back on n1: %s, served by %s; want n1 the only Master and holder", s, h.Result.Runs())
		}
	})

	t.Run("AgentsAsThePod", func(t *testing.T) {
		for _, n := range []string{"n1", "n2", "n3"} {
			c, ok := res.AgentCreds[n]
			want := fmt.Sprint(filecaps.AgentID)
			if !ok || c.UID != strings.Repeat(want+"/", 3)+want || c.CapEff != agentCaps || c.CapPrm != agentCaps || c.CapBnd != agentCaps || !c.NoNewPrivs {
				t.Errorf("%s's agent: %+v, want uid %s, effective, permitted and bounding sets NET_ADMIN and NET_RAW (%#x), no_new_privs", n, c, want, agentCaps)
			}
		}
	})

	t.Run("NoForbiddenOrEPERM", func(t *testing.T) {
		for _, n := range []string{"n1", "n2", "n3"} {
			if log := res.AgentLogs[n]; !strings.Contains(log, "kube-vrrp agent running") {
				t.Errorf("%s's agent log does not show it running:\n%s", n, log)
			}
		}
		lines, refused := Refusals(res.AgentLogs)
		for _, r := range refused {
			t.Errorf("refused: %.500s", r)
		}
		t.Logf("the agents' logs: %d lines, %d refusals", lines, len(refused))
	})

	t.Run("Uninstalled", func(t *testing.T) {
		if !res.Uninstalled {
			t.Error("helm uninstall did not remove the agents' pods and release the address")
		}
	})
}
