package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// Each new reason this node refuses a VirtualIP for is a Warning Event with the refusal's own
// reason and its message, once; one that goes and comes back is reported again.
func TestRefusalEvents(t *testing.T) {
	rec := &fakeRecorder{}
	r := &StatusReconciler{NodeName: "lb1", Recorder: rec}
	vip := &v1alpha1.VirtualIP{}
	vip.Name = "web"
	conflict := Rejection{Reason: ReasonVRIDConflict, Message: `VRID 51 on eth0 (IPv4) is taken by VirtualIP "a"`}
	other := Rejection{Reason: ReasonVRIDConflict, Message: `VRID 51 on eth0 (IPv4) is taken by VirtualIP "b"`}
	addr := Rejection{Reason: ReasonAddressConflict, Message: other.Message}
	for _, step := range []struct {
		refusal Rejection
		refused bool
	}{
		{conflict, true}, {conflict, true}, {other, true}, {Rejection{}, false}, {Rejection{}, false}, {other, true}, {addr, true},
	} {
		r.refusalEvent(vip, step.refusal, step.refused)
	}
	want := []recordedEvent{
		{"Warning", ReasonVRIDConflict, "node lb1: " + conflict.Message},
		{"Warning", ReasonVRIDConflict, "node lb1: " + other.Message},
		{"Warning", ReasonVRIDConflict, "node lb1: " + other.Message},
		{"Warning", ReasonAddressConflict, "node lb1: " + other.Message}, // the same words, another reason
	}
	if diff := cmp.Diff(want, rec.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
