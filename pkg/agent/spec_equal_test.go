package agent

import (
	"testing"

	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// A changed executable of a process probe is a changed probe: Apply restarts the prober with it.
func TestSpecEqualExecutable(t *testing.T) {
	a := probe.Spec{Name: "p", Kind: probe.KindProcess, Process: "haproxy"}
	b := a
	b.Executable = "/usr/sbin/haproxy"
	if specEqual(a, b) {
		t.Error("specs differing in Executable compare equal")
	}
	if !specEqual(b, b) {
		t.Error("a spec differs from itself")
	}
}
