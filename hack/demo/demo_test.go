package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// failoverBound is the client-observed HTTP outage the demo's failover may cost: generous (the
// figure is tens of milliseconds; keepalived's classic setup costs ~3.6 s), so that a machine
// busy with the rest of make test does not fail it.
const failoverBound = 2 * time.Second

// TestDemo runs make demo's flow (the chart applied to a real API server, an agent per node
// as the chart's pod runs it, HAProxy killed on the MASTER and started again) and checks what
// it must show: one MASTER after the start, the failover to n2 within failoverBound of HTTP
// outage, the address back on n1 once HAProxy is back, agents running as uid 65532 with only
// NET_ADMIN and NET_RAW that were never refused by the API server (forbidden, 403) or the
// kernel (EPERM, permission denied), and nothing left behind.
func TestDemo(t *testing.T) {
	privtest.Require(t)
	if testing.Short() {
		t.Skip("starts kube-apiserver, HAProxy and three agents; skipped in -short mode")
	}
	envtestassets.Require(t)
	bin := lab.KubeVRRPBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	started := time.Now()
	res, err := Run(ctx, Options{Bin: bin, Out: t.Output(), Nice: -10})
	t.Logf("demo took %v", time.Since(started).Round(time.Millisecond))

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
		if len(res.NetnsInodes) != 5 || len(res.Dirs) != 2 {
			t.Errorf("the demo recorded %d network namespaces and directories %v, want 5 (switch, n1..n3, client) and 2 (control plane, agent)", len(res.NetnsInodes), res.Dirs)
		}
		// The lab's own directory and the control plane's etcd data (on /dev/shm) are named
		// after the lab's prefix and this process.
		for _, pat := range []string{
			filepath.Join(os.TempDir(), res.Prefix+"*"),
			filepath.Join(os.TempDir(), fmt.Sprintf("kvlcp%d-*", os.Getpid())),
			filepath.Join("/dev/shm", fmt.Sprintf("kvlcp%d-*", os.Getpid())),
			filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-*", agentDirPrefix, os.Getpid())),
		} {
			if m, _ := filepath.Glob(pat); len(m) > 0 {
				t.Errorf("left behind: %v", m)
			}
		}
	})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}

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
			log := res.AgentLogs[n]
			if !strings.Contains(log, "kube-vrrp agent running") || !strings.Contains(log, "kube-vrrp agent stopped") {
				t.Errorf("%s's agent log does not show it running and stopping:\n%s", n, log)
			}
		}
		lines, refused := Refusals(res.AgentLogs)
		for _, r := range refused {
			t.Errorf("refused: %.500s", r)
		}
		t.Logf("the agents' logs: %d lines, %d refusals", lines, len(refused))
	})
}
