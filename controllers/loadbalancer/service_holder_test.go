package loadbalancer

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// The holder Events of an address on a hand-made clock: none for a VirtualIP first seen, one
// at once for a change after a quiet spell, changes within heldInterval told once at its end
// as they are then, the reason of an address nobody holds, and nothing kept of a VirtualIP
// gone.
func TestTellHolders(t *testing.T) {
	rec := events.NewFakeRecorder(100)
	r := &ServiceReconciler{Recorder: rec}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "front"}}
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "lb-198-18-0-100", UID: "u1"},
		Spec: v1alpha1.VirtualIPSpec{Addresses: []string{"198.18.0.100/24"}}}
	t0 := time.Unix(1_800_000_000, 0)
	step := func(at time.Duration, master string, nodes []string, wantWait time.Duration, want ...string) {
		t.Helper()
		vip.Status.Master = master
		wait := r.tellHolders(svc, []*v1alpha1.VirtualIP{vip}, map[int][]string{4: nodes}, t0.Add(at))
		var got []string
		for len(rec.Events) > 0 {
			got = append(got, <-rec.Events)
		}
		if !slices.Equal(got, want) || wait != wantWait {
			t.Errorf("at %s, master %q: events %q, wait %s; want %q, %s", at, master, got, wait, want, wantWait)
		}
	}
	step(0, "lb1", []string{"lb1"}, 0)                                                    // first seen: the baseline
	step(time.Second, "lb1", []string{"lb1"}, 0)                                          // no change
	step(2*time.Second, "lb2", nil, 0, "Normal VIPHeld 198.18.0.100 is held by node lb2") // a quiet spell: at once
	step(3*time.Second, "lb3", nil, 9*time.Second)                                        // within the interval: later
	step(5*time.Second, "lb1", nil, 7*time.Second)
	step(12*time.Second, "lb1", nil, 0, "Normal VIPHeld 198.18.0.100 is held by node lb1") // the interval's end: as it is then
	step(30*time.Second, "", []string{"lb2"}, 0, "Warning VIPNotHeld 198.18.0.100 is held by no node: the nodes that run VirtualIP lb-198-18-0-100 have no MASTER")
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	step(50*time.Second, "lb2", []string{"lb2"}, 0, "Normal VIPHeld 198.18.0.100 is held by node lb2")
	step(70*time.Second, "", nil, 0, "Warning VIPNotHeld 198.18.0.100 is held by no node: no node has a ready endpoint of the Service (externalTrafficPolicy: Local)")
	step(90*time.Second, `lb1" evil`, nil, 0, `Normal VIPHeld 198.18.0.100 is held by node "lb1\" evil"`)

	// Another VirtualIP of that name (released, allocated again): a new baseline.
	vip.UID = "u2"
	step(100*time.Second, "lb3", nil, 0)
	// Gone from the Service, or the Service released: forgotten.
	r.tellHolders(svc, nil, nil, t0.Add(101*time.Second))
	if len(r.holders) != 0 {
		t.Errorf("holders %v after the VirtualIP left", r.holders)
	}
	step(102*time.Second, "lb3", nil, 0)
	r.forgetHolders(types.NamespacedName{Namespace: "web", Name: "front"})
	if len(r.holders) != 0 {
		t.Errorf("holders %v after forgetHolders", r.holders)
	}
}
