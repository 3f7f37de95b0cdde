package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// A MASTER whose link is cut keeps its MASTER entry (it cannot reach the API server to
// correct it) while a backup takes over; status.master names the node that took over last,
// and DualMaster still says that two nodes claim the addresses.
func TestSummarizeNewestMaster(t *testing.T) {
	at := func(s int64) *metav1.Time {
		tm := metav1.NewTime(time.Unix(1_800_000_000+s, 0))
		return &tm
	}
	entry := func(name, state string, since *metav1.Time) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{Name: name, State: state, LastTransitionTime: since}
	}
	tests := []struct {
		name  string
		nodes []v1alpha1.NodeStatus
		want  string
	}{
		{"the takeover after the old claim", []v1alpha1.NodeStatus{
			entry("lb1", "Master", at(0)), entry("lb2", "Master", at(5)), entry("lb3", "Backup", at(9)),
		}, "lb2"},
		{"whatever the order of the entries", []v1alpha1.NodeStatus{
			entry("lb3", "Backup", at(9)), entry("lb2", "Master", at(5)), entry("lb1", "Master", at(0)),
		}, "lb2"},
		{"within the same second", []v1alpha1.NodeStatus{
			entry("lb1", "Master", at(5)), entry("lb2", "Master", func() *metav1.Time { tm := metav1.NewTime(at(5).Add(300 * time.Millisecond)); return &tm }()),
		}, "lb2"},
		{"the same instant: the first by name", []v1alpha1.NodeStatus{
			entry("lb2", "Master", at(5)), entry("lb1", "Master", at(5)),
		}, "lb1"},
		{"a known time before an unknown one", []v1alpha1.NodeStatus{
			entry("lb1", "Master", nil), entry("lb2", "Master", at(0)),
		}, "lb2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.nodes, 1, 51)
			if s.Master != tt.want {
				t.Errorf("master = %q, want %q", s.Master, tt.want)
			}
			for _, c := range s.Conditions {
				if c.Type == ConditionDualMaster && c.Status != metav1.ConditionTrue {
					t.Errorf("DualMaster = %s, want True", c.Status)
				}
			}
		})
	}
}
