package controllers

import (
	"fmt"
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
				msg: []string{"FAULT", "reason and message", "kubectl get vipm --field-selector spec.virtualIP="}},
		},
		{
			name:  "no nodes",
			nodes: nil,
			want: want{ready: cond{"False", ReasonNoNodes}, dualMaster: cond{"False", ReasonNoNodes}, noMaster: cond{"True", ReasonNoNodes},
				// Members are spec.nodes or spec.nodeSelector (desired.Selects): the message
				// names both, and says that without a selector spec.nodes alone decides.
				msg: []string{"spec.nodeSelector", "spec.nodes", "without spec.nodeSelector"}},
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

// One node writes a summary, the same whichever node decides it, from the live entries alone:
// the MASTER the summary names (the newest of several), else the first by name; the stand-by
// is the first other node by name; with no live entry, every agent writes.
func TestWriters(t *testing.T) {
	at := func(s int64) *metav1.Time { return &metav1.Time{Time: time.Unix(1_800_000_000+s, 0)} }
	master := func(name string, since *metav1.Time) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{Name: name, State: "Master", LastTransitionTime: since}
	}
	for _, tt := range []struct {
		name            string
		live            []v1alpha1.NodeStatus
		writer, standby string
	}{
		{"none: every agent", nil, "", ""},
		{"one master", append(nodes("lb1", "Backup", "lb3", "Backup"), master("lb2", at(0))), "lb2", "lb1"},
		{"the master is first by name", append(nodes("lb3", "Backup", "lb2", "Fault"), master("lb1", at(0))), "lb1", "lb2"},
		{"no master", nodes("lb3", "Backup", "lb2", "Fault", "lb1", "Initialize"), "lb1", "lb2"},
		{"alone", nodes("lb2", "Backup"), "lb2", ""},
		{"alone, master", []v1alpha1.NodeStatus{master("lb2", at(0))}, "lb2", ""},
		// The newest claim is the summary's master, whatever the order or the names.
		{"dual master", append(nodes("lb1", "Backup"), master("lb3", at(10)), master("lb2", at(20))), "lb2", "lb1"},
		{"dual master, older second", append(nodes("lb1", "Backup"), master("lb2", at(20)), master("lb3", at(10))), "lb2", "lb1"},
		{"dual master, same time", []v1alpha1.NodeStatus{master("lb3", at(5)), master("lb2", at(5))}, "lb2", "lb3"},
		{"dual master, one without time", []v1alpha1.NodeStatus{master("lb1", nil), master("lb2", at(5))}, "lb2", "lb1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, s := writers(tt.live)
			if w != tt.writer || s != tt.standby {
				t.Errorf("writers = %q, %q; want %q, %q", w, s, tt.writer, tt.standby)
			}
			if sum := Summarize(tt.live, 1, 51); sum.Master != "" && sum.Master != w {
				t.Errorf("the summary names %s MASTER, the writer is %s", sum.Master, w)
			}
		})
	}
}

// The wait before a summary that no member writes is in [0, everySpread), the same for one
// node every time, and not the same for every node.
func TestSpread(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := range 20 {
		node := fmt.Sprintf("node-%d", i)
		d := spread(node, "web")
		if d < 0 || d >= everySpread || spread(node, "web") != d {
			t.Errorf("spread(%s) = %v, %v", node, d, spread(node, "web"))
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 nodes wait %d different times", len(seen))
	}
}
