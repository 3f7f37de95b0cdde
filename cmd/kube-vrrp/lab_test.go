//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// testMainEnv makes the test binary act as kube-vrrp, so that the lab test runs the real
// command without building it.
const testMainEnv = "KUBE_VRRP_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(testMainEnv) == "1" {
		os.Exit(cli(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestRunLab runs `kube-vrrp run` on two nodes of a namespace lab: the higher priority node
// becomes MASTER, a second agent on a node refuses to start, SIGTERM hands the VIP over and
// exits 0, and an agent restarted after SIGKILL removes the address its predecessor left.
func TestRunLab(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2, ResponderPort: -1})
	n1, n2 := l.Node(1), l.Node(2)
	nodes := l.Nodes()
	vip := netip.MustParsePrefix("198.18.0.200/24")
	manifest := n1.MustWriteFile("vip.yaml", fmt.Appendf(nil, `apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: lab}
spec:
  vrid: 51
  addresses: [%q]
  nodes: [{name: %s, priority: 110}, {name: %s}]
`, vip, n1.Name, n2.Name))

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(testMainEnv, "1")
	start := func(n *lab.Node, name string) *lab.Proc {
		t.Helper()
		state, err := n.StateDir(0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := n.Exec(t.Context(), name, exe, "run", "-f", manifest, "--node", n.Name, "--log-format", "json", "--state-dir", state)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	p1 := start(n1, "agent")
	p2 := start(n2, "agent")
	// n1 (priority 110, preempting) ends up the sole holder; on a loaded machine n2 may start
	// first and hold the address until n1 preempts it.
	if err := lab.WaitSoleHolder(nodes, vip, n1, 300*time.Millisecond, 10*time.Second); err != nil {
		t.Fatalf("want %s (priority 110) the sole MASTER: %v", n1.Name, err)
	}
	if err := p1.WaitLog(`"msg":"transition","vip":"lab","state":"Master"`, 0, 2*time.Second); err != nil {
		t.Error(err)
	}

	second := start(n1, "second")
	if err := second.Wait(5 * time.Second); err == nil || !strings.Contains(second.Log(), "another kube-vrrp agent holds the host lock") {
		t.Errorf("second agent on %s: exit %v, log:\n%s", n1.Name, err, second.Log())
	}

	// Graceful handover: priority 0, unbind, exit 0.
	if err := p1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitHolders(nodes, vip, []*lab.Node{n2}, time.Second); err != nil {
		t.Errorf("after SIGTERM on %s: %v", n1.Name, err)
	}
	if err := p1.Wait(5 * time.Second); err != nil {
		t.Errorf("%s exited with %v after SIGTERM, want 0; log:\n%s", n1.Name, err, p1.Tail(20))
	}
	if !strings.Contains(p1.Log(), `"msg":"kube-vrrp stopped"`) {
		t.Errorf("%s log has no clean stop:\n%s", n1.Name, p1.Tail(20))
	}

	// SIGKILL leaves the VIP behind; the next agent removes it before it joins.
	p2.Kill()
	if !n2.HasAddress(vip) {
		t.Fatalf("%s lost %s when killed; the stale-address case is not exercised", n2.Name, vip)
	}
	p2 = start(n2, "agent-again")
	if kernelAtLeast(6, 1) { // older kernels drop the address mark RemoveStale looks for
		if err := p2.WaitLog(`"msg":"removed stale virtual address","address":"198.18.0.200/24"`, 0, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	if m, err := lab.WaitMaster(nodes, vip, 5*time.Second); err != nil || m != n2 {
		t.Errorf("master after restart = %v, %v; want %s", m, err, n2.Name)
	}
	if err := p2.Stop(); err != nil {
		t.Errorf("stopping %s: %v", n2.Name, err)
	}
	if err := lab.WaitHolders(nodes, vip, nil, time.Second); err != nil {
		t.Errorf("after the last agent stopped: %v", err)
	}
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(strings.TrimLeftFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return ma > major || ma == major && mi >= minor
}
