package main

import (
	"testing"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// A node's line says its state, then the reason word, then the message in words.
func TestNodeLine(t *testing.T) {
	for _, tt := range []struct {
		n    v1alpha1.NodeStatus
		want string
	}{
		{v1alpha1.NodeStatus{Name: "n1", State: "Fault", Reason: "ProbeFailed", Message: "probe haproxy failing"},
			"n1 Fault: ProbeFailed (probe haproxy failing)"},
		{v1alpha1.NodeStatus{Name: "n2", State: "Master", Reason: "MasterDownTimer"}, "n2 Master: MasterDownTimer"},
		{v1alpha1.NodeStatus{Name: "n3", State: "Backup", Message: "removing [198.18.0.100/24] failed, retrying: busy"},
			"n3 Backup (removing [198.18.0.100/24] failed, retrying: busy)"},
		{v1alpha1.NodeStatus{Name: "n4", State: "Initialize"}, "n4 Initialize"},
	} {
		if got := nodeLine(tt.n); got != tt.want {
			t.Errorf("nodeLine(%+v) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
