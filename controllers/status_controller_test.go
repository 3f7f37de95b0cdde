package controllers

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// decodeEntry turns an entry built for server-side apply into the API type, refusing any key
// the type does not have (a typo would be dropped or refused by the API server).
func decodeEntry(t *testing.T, e map[string]any) v1alpha1.NodeStatus {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ns v1alpha1.NodeStatus
	if err := dec.Decode(&ns); err != nil {
		t.Fatalf("entry %s does not decode as a NodeStatus: %v", b, err)
	}
	return ns
}

func TestStatusEntry(t *testing.T) {
	since := time.Date(2026, 3, 4, 5, 6, 7, 891e6, time.FixedZone("CET", 3600))
	probeSince := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	sinceUTC := metav1.NewTime(time.Date(2026, 3, 4, 4, 6, 7, 891e6, time.UTC)) // with its fraction
	probeUTC := metav1.NewTime(probeSince)

	tests := []struct {
		name string
		st   agent.Status
		want v1alpha1.NodeStatus
	}{
		{
			name: "master with probes",
			st: agent.Status{
				Status: vrrp.Status{Name: "haproxy", Interface: "eth0", VRID: 51, State: vrrp.Master, Priority: 90,
					Primary: netip.MustParseAddr("198.18.0.11"), Reason: vrrp.ReasonPreempting, Since: since},
				Probes: []agent.ProbeStatus{
					{Name: "haproxy", Known: true, Healthy: false, Reason: `no process named "haproxy"`, Since: probeSince},
					{Name: "api", Known: true, Healthy: true, Since: probeSince},
					{Name: "late"}, // not checked yet: name only
				},
				Adjustment: "probe haproxy failing (-20)",
			},
			want: v1alpha1.NodeStatus{Name: "lb1", State: "Master", Priority: 90, Interface: "eth0", Address: "198.18.0.11",
				LastTransitionTime: &sinceUTC, Reason: "Preempting: probe haproxy failing (-20)",
				Probes: []v1alpha1.ProbeStatus{
					{Name: "haproxy", Healthy: ptr.To(false), LastTransitionTime: &probeUTC, Message: `no process named "haproxy"`},
					{Name: "api", Healthy: ptr.To(true), LastTransitionTime: &probeUTC},
					{Name: "late"},
				}},
		},
		{
			name: "backup, no reason, no probes",
			st: agent.Status{Status: vrrp.Status{Name: "haproxy", Interface: "eth0", State: vrrp.Backup, Priority: 100,
				Primary: netip.MustParseAddr("198.18.0.12"), Since: since}},
			want: v1alpha1.NodeStatus{Name: "lb1", State: "Backup", Priority: 100, Interface: "eth0", Address: "198.18.0.12",
				LastTransitionTime: &sinceUTC},
		},
		{
			name: "adjustment only",
			st: agent.Status{Status: vrrp.Status{State: vrrp.Fault, Interface: "eth0", Priority: 100},
				Adjustment: "probe haproxy failing"},
			want: v1alpha1.NodeStatus{Name: "lb1", State: "Fault", Priority: 100, Interface: "eth0", Reason: "probe haproxy failing"},
		},
		{
			// The IPv6 source is link-local: the zone is the interface, which has its own field
			// (and "fe80::...%eth0.100" could exceed the field's bound).
			name: "IPv6 link-local source without zone",
			st: agent.Status{Status: vrrp.Status{State: vrrp.Initialize, Interface: "eth0.100",
				Primary: netip.MustParseAddr("fe80::1%eth0.100")}},
			want: v1alpha1.NodeStatus{Name: "lb1", State: "Initialize", Interface: "eth0.100", Address: "fe80::1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeEntry(t, statusEntry("lb1", tt.st, since))
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("entry (-want +got):\n%s", d)
			}
		})
	}
}

// Reasons and probe messages are cut at the CRD's bound without breaking a character.
func TestStatusEntryBounds(t *testing.T) {
	long := strings.Repeat("é", maxReason) // 2048 bytes, 1024 characters
	st := agent.Status{
		Status:     vrrp.Status{State: vrrp.Fault, Reason: "StartFailed: " + long},
		Adjustment: "probe x failing",
		Probes:     []agent.ProbeStatus{{Name: "x", Known: true, Reason: long + "€"}},
	}
	e := statusEntry("lb1", st, time.Now())
	got := decodeEntry(t, e)
	for what, s := range map[string]string{"reason": got.Reason, "probes[0].message": got.Probes[0].Message} {
		if len(s) > maxReason || !utf8.ValidString(s) || !strings.HasSuffix(s, "...") {
			t.Errorf("%s: %d bytes, valid UTF-8 %v, ends %q; want <= %d, valid, ending in ...",
				what, len(s), utf8.ValidString(s), s[max(0, len(s)-5):], maxReason)
		}
	}
	if !strings.HasPrefix(got.Reason, "StartFailed: ") {
		t.Errorf("reason %q lost its CamelCase word", got.Reason[:20])
	}
}

// An instance's status never carries the PASS password; nothing the agent reports can.
func TestStatusEntryHasNoPassword(t *testing.T) {
	st := agent.Status{Status: vrrp.Status{Name: "v2", State: vrrp.Backup, Interface: "eth0", Priority: 100,
		Primary: netip.MustParseAddr("198.18.0.11"), Reason: vrrp.ReasonStarted}}
	b, err := json.Marshal(statusEntry("lb1", st, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	// The fields are the API's, none of which holds configuration data.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k := range m {
		switch k {
		case "name", "state", "priority", "interface", "address", "reason", "lastTransitionTime", "probes":
		default:
			t.Errorf("unexpected field %q in %s", k, b)
		}
	}
}

// entry prefers the rejection (the node is in FAULT for this VirtualIP, whatever an older
// instance of it reports), then the agent's snapshot.
func TestStatusReconcilerEntry(t *testing.T) {
	fa := newFakeAgent()
	fa.statuses = []agent.Status{{Status: vrrp.Status{Name: "running", State: vrrp.Master, Interface: "eth0", Priority: 110,
		Primary: netip.MustParseAddr("198.18.0.11")}}, {Status: vrrp.Status{Name: "both", State: vrrp.Master}}}
	rej := NewRejections(nil)
	rej.Set("both", ReasonSecretMissing+": Secret kube-vrrp/vrrp not found")
	rej.Set("rejected", ReasonInvalidSpec+": spec.vrid: bad")
	r := &StatusReconciler{NodeName: "lb1", Agent: fa, Rejected: rej}

	if _, ok := r.entry("unknown"); ok {
		t.Error("entry of a VirtualIP this node neither runs nor rejects: ok")
	}
	e, ok := r.entry("running")
	if !ok || e["state"] != "Master" || e["priority"] != int64(110) || e["name"] != "lb1" {
		t.Errorf("entry(running) = %v, %v", e, ok)
	}
	for _, name := range []string{"both", "rejected"} {
		e, ok := r.entry(name)
		want := map[string]any{"name": "lb1", "state": "Fault", "reason": rej.mustGet(t, name)}
		if d := cmp.Diff(want, e); !ok || d != "" {
			t.Errorf("entry(%s) (-want +got):\n%s", name, d)
		}
		decodeEntry(t, e)
	}
	if got := r.FieldManager(); got != "kube-vrrp-agent/lb1" {
		t.Errorf("FieldManager() = %q", got)
	}
}

func (r *Rejections) mustGet(t *testing.T, name string) string {
	t.Helper()
	s, ok := r.Get(name)
	if !ok {
		t.Fatalf("no rejection of %s", name)
	}
	return s
}
