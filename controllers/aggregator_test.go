package controllers

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// conditionReason is the pattern the CRD (metav1.Condition) puts on conditions[].reason.
var conditionReason = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

func nodes(states ...string) []v1alpha1.NodeStatus {
	var out []v1alpha1.NodeStatus
	for i := 0; i < len(states); i += 2 {
		out = append(out, v1alpha1.NodeStatus{Name: states[i], State: states[i+1]})
	}
	return out
}

func TestSummarize(t *testing.T) {
	type cond struct{ Status, Reason string }
	type want struct {
		master                      string
		ready, dualMaster, noMaster cond
		// message words the user needs
		msg []string
	}
	tests := []struct {
		name  string
		nodes []v1alpha1.NodeStatus
		want  want
	}{
		{
			name:  "one master",
			nodes: nodes("lb1", "Master", "lb2", "Backup", "lb3", "Fault"),
			want: want{master: "lb1",
				ready: cond{"True", ReasonOneMaster}, dualMaster: cond{"False", ReasonSingleMaster}, noMaster: cond{"False", ReasonMasterElected},
				msg: []string{"lb1"}},
		},
		{
			name:  "one master, alone",
			nodes: nodes("lb2", "Master"),
			want: want{master: "lb2",
				ready: cond{"True", ReasonOneMaster}, dualMaster: cond{"False", ReasonSingleMaster}, noMaster: cond{"False", ReasonMasterElected},
				msg: []string{"lb2"}},
		},
		{
			name:  "no master: backups",
			nodes: nodes("lb1", "Backup", "lb2", "Backup"),
			want: want{ready: cond{"False", ReasonNoMaster}, dualMaster: cond{"False", ReasonNoMaster}, noMaster: cond{"True", ReasonNoMaster},
				msg: []string{"no node is MASTER"}},
		},
		{
			name:  "no master: initializing and one fault",
			nodes: nodes("lb1", "Initialize", "lb2", "Fault"),
			want: want{ready: cond{"False", ReasonNoMaster}, dualMaster: cond{"False", ReasonNoMaster}, noMaster: cond{"True", ReasonNoMaster},
				msg: []string{"no node is MASTER"}},
		},
		{
			name:  "no state reported yet",
			nodes: nodes("lb1", ""),
			want: want{ready: cond{"False", ReasonNoMaster}, dualMaster: cond{"False", ReasonNoMaster}, noMaster: cond{"True", ReasonNoMaster},
				msg: []string{"no node is MASTER"}},
		},
		{
			// The first master by name is reported, whatever the order of the entries.
			name:  "dual master",
			nodes: nodes("lb3", "Master", "lb1", "Backup", "lb2", "Master"),
			want: want{master: "lb2",
				ready: cond{"False", ReasonDualMaster}, dualMaster: cond{"True", ReasonDualMaster}, noMaster: cond{"False", ReasonMastersPresent},
				msg: []string{"lb2, lb3", "VRID", "authentication", "firewall"}},
		},
		{
			name:  "all fault",
			nodes: nodes("lb1", "Fault", "lb2", "Fault"),
			want: want{ready: cond{"False", ReasonAllFault}, dualMaster: cond{"False", ReasonAllFault}, noMaster: cond{"True", ReasonAllFault},
				msg: []string{"FAULT", "status.nodes[].reason"}},
		},
		{
			name:  "no nodes",
			nodes: nil,
			want: want{ready: cond{"False", ReasonNoNodes}, dualMaster: cond{"False", ReasonNoNodes}, noMaster: cond{"True", ReasonNoNodes},
				msg: []string{"spec.nodeSelector"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const gen = 7
			s := Summarize(tt.nodes, gen, 51)
			if s.Master != tt.want.master {
				t.Errorf("master = %q, want %q", s.Master, tt.want.master)
			}
			got := map[string]cond{}
			for _, c := range s.Conditions {
				if _, dup := got[c.Type]; dup {
					t.Errorf("condition %s twice", c.Type)
				}
				got[c.Type] = cond{string(c.Status), c.Reason}
				if !conditionReason.MatchString(c.Reason) {
					t.Errorf("condition %s: reason %q does not match the CRD's pattern", c.Type, c.Reason)
				}
				if c.Message == "" {
					t.Errorf("condition %s: empty message", c.Type)
				}
				if c.ObservedGeneration != gen {
					t.Errorf("condition %s: observedGeneration %d, want %d", c.Type, c.ObservedGeneration, gen)
				}
				for _, w := range tt.want.msg {
					if c.Type != ConditionReady {
						continue
					}
					if !strings.Contains(c.Message, w) {
						t.Errorf("condition %s: message %q does not say %q", c.Type, c.Message, w)
					}
				}
			}
			want := map[string]cond{ConditionReady: tt.want.ready, ConditionDualMaster: tt.want.dualMaster, ConditionNoMaster: tt.want.noMaster,
				ConditionForeignRouter: {"False", ReasonNoForeign}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("conditions (-want +got):\n%s", d)
			}
			// A group is ready, split or headless: exactly one of the three is True.
			var trues int
			for _, c := range s.Conditions {
				if c.Type != ConditionForeignRouter && c.Status == metav1.ConditionTrue {
					trues++
				}
			}
			if trues != 1 {
				t.Errorf("%d conditions are True, want exactly 1: %+v", trues, s.Conditions)
			}
		})
	}
}

// Summarize does not depend on the order of the entries or modify them.
func TestSummarizeOrder(t *testing.T) {
	a := nodes("lb1", "Master", "lb2", "Backup", "lb3", "Master")
	b := nodes("lb3", "Master", "lb2", "Backup", "lb1", "Master")
	keep := append([]v1alpha1.NodeStatus(nil), b...)
	sa, sb := Summarize(a, 1, 51), Summarize(b, 1, 51)
	if d := cmp.Diff(sa, sb); d != "" {
		t.Errorf("summary depends on entry order (-a +b):\n%s", d)
	}
	if d := cmp.Diff(keep, b); d != "" {
		t.Errorf("Summarize modified its input (-before +after):\n%s", d)
	}
}

// A condition keeps its lastTransitionTime while its status stays, whatever its reason and
// message do; it takes now when the status changes or the condition is new.
func TestWithTransitionTimes(t *testing.T) {
	then, now := metav1.NewTime(time.Unix(1_800_000_000, 0)), metav1.NewTime(time.Unix(1_800_000_100, 0))
	old := []metav1.Condition{
		{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonNoMaster, LastTransitionTime: then},
		{Type: ConditionDualMaster, Status: metav1.ConditionFalse, Reason: ReasonNoMaster, LastTransitionTime: then},
	}
	sum := Summarize(nodes("lb1", "Master"), 2, 51)
	got := map[string]metav1.Time{}
	for _, c := range withTransitionTimes(sum.Conditions, old, now) {
		got[c.Type] = c.LastTransitionTime
	}
	want := map[string]metav1.Time{
		ConditionReady:         now,  // False -> True
		ConditionDualMaster:    then, // False, reason NoMaster -> SingleMaster
		ConditionNoMaster:      now,  // new
		ConditionForeignRouter: now,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("lastTransitionTime (-want +got):\n%s", d)
	}
	if sum.Conditions[0].LastTransitionTime != (metav1.Time{}) {
		t.Error("withTransitionTimes modified its input")
	}
}
