package controllers

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

type recordedEvent struct{ Type, Reason, Note string }

type fakeRecorder struct{ events []recordedEvent }

func (f *fakeRecorder) Eventf(_ runtime.Object, _ runtime.Object, typ, reason, _, note string, args ...any) {
	f.events = append(f.events, recordedEvent{typ, reason, fmt.Sprintf(note, args...)})
}

// Probe health changes become Events: a failure (Warning) and a recovery (Normal), once each;
// the first healthy report is not news and an unchanged one is not repeated.
func TestProbeEvents(t *testing.T) {
	rec := &fakeRecorder{}
	r := &StatusReconciler{NodeName: "lb1", Recorder: rec, lastProbe: map[string]bool{}}
	vip := &v1alpha1.VirtualIP{}
	vip.Name = "web"
	entry := func(healthy bool) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{Probes: []v1alpha1.ProbeStatus{
			{Name: "haproxy", Healthy: &healthy, Message: `no process named "haproxy"`},
			{Name: "pending"}, // not checked yet: no health, no event
		}}
	}
	for _, h := range []bool{true, true, false, false, true} {
		r.probeEvents(vip, entry(h))
	}
	want := []recordedEvent{
		{"Warning", "ProbeFailed", `node lb1: probe haproxy failing: no process named "haproxy"`},
		{"Normal", "ProbeRecovered", `node lb1: probe haproxy healthy: no process named "haproxy"`},
	}
	if diff := cmp.Diff(want, rec.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
