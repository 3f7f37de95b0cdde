package probes_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// TestExecProbeRefused: a VirtualIP with an exec probe (weight 0) on two nodes. n1 (priority
// 110) runs kube-vrrp without --enable-exec-probes: its probe is refused, so n1 stays in Fault,
// never takes the address, and its log says why in plain words. n2 (100) enables exec probes:
// the same command succeeds there and n2 serves the address, though its priority is lower.
func TestExecProbeRefused(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	n1, n2 := l.Node(1), l.Node(2)
	nodes := l.Nodes()
	spec := lab.VirtualIP{
		VRID: 51, Version: 3, AdvertInt: 100 * time.Millisecond, Addresses: []netip.Prefix{vip},
		NodePriorities: map[string]int{"n1": 110, "n2": 100},
		Extra:          probes(probeSpec{name: "check", check: "exec: {command: [/bin/true]}", interval: 500 * time.Millisecond, weight: 0}),
	}
	p1 := n1.StartKubeVRRP(t, spec.String())
	p2 := n2.StartKubeVRRP(t, spec.String(), "--enable-exec-probes")

	rec, err := waitProbe(p1, "check", false, time.Time{}, settle)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Reason != probe.ExecDisabledReason {
		t.Errorf("n1's exec probe failed with %q, want the refusal %q", rec.Reason, probe.ExecDisabledReason)
	}
	if !strings.Contains(rec.Reason, "--enable-exec-probes") {
		t.Errorf("the refusal %q does not say how to enable exec probes", rec.Reason)
	}
	if err := lab.WaitKubeVRRPState(p1, vipName, "Fault", settle); err != nil {
		t.Fatal(err)
	}
	if _, err := waitProbe(p2, "check", true, time.Time{}, settle); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitKubeVRRPState(p2, vipName, "Master", settle); err != nil {
		t.Fatal(err)
	}
	if err := waitSole(nodes, n2, 300*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	// n1 outranks n2 but stays in Fault: it never takes the address.
	stays(t, nodes, n2, 2*time.Second)
	if st := lab.KubeVRRPState(p1, vipName); st != "Fault" {
		t.Errorf("n1 is %s, want Fault", st)
	}
	for _, tr := range lab.KubeVRRPTransitions(p1) {
		if tr.State == "Master" {
			t.Errorf("n1 became Master with its exec probe refused: %+v", tr)
		}
	}
	if who, err := l.WhoAnswers(vip.Addr(), settle); err != nil || who != n2.Name {
		t.Errorf("the client reaches %s at %q (%v), want n2", vip.Addr(), who, err)
	}
	t.Logf("n1 without --enable-exec-probes: Fault, probe %q: %s", rec.Probe, rec.Reason)
}
