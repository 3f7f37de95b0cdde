package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// appliedEntry is entry as the API server receives it from this node: the JSON of the apply
// configuration of its member of VirtualIP web, decoded strictly (a key the API type does not
// have would be dropped or refused by the API server), with the node's name from spec.node.
func appliedEntry(t *testing.T, entry v1alpha1.NodeStatus) v1alpha1.NodeStatus {
	t.Helper()
	var m v1alpha1.VirtualIPMember
	strictDecode(t, newMemberApply(testVIP("web", nil), entry), &m)
	if m.Name != v1alpha1.MemberName("web", entry.Name) || m.Kind != "VirtualIPMember" || m.APIVersion != v1alpha1.GroupVersion.String() ||
		m.Spec.VirtualIP != "web" || m.Spec.Node != entry.Name {
		t.Fatalf("apply configuration of %s %s/%s, spec %+v: want the member of %s in VirtualIP web", m.APIVersion, m.Kind, m.Name, m.Spec, entry.Name)
	}
	return m.Entry()
}

func strictDecode(t *testing.T, in any, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s does not decode as %T: %v", b, out, err)
	}
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
				LastTransitionTime: &sinceUTC, Reason: "Preempting", Message: "probe haproxy failing (-20)",
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
			want: v1alpha1.NodeStatus{Name: "lb1", State: "Fault", Priority: 100, Interface: "eth0", Message: "probe haproxy failing"},
		},
		{
			name: "start failed",
			st: agent.Status{Status: vrrp.Status{State: vrrp.Fault, Interface: "eth0", Reason: agent.ReasonStartFailed},
				Message: "opening the VRRP socket on eth0: operation not permitted"},
			want: v1alpha1.NodeStatus{Name: "lb1", State: "Fault", Interface: "eth0", Reason: "StartFailed",
				Message: "opening the VRRP socket on eth0: operation not permitted"},
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
			got := statusEntry("lb1", tt.st, since)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("entry (-want +got):\n%s", d)
			}
			// As sent: the same, lastTransitionTime with its fraction of a second.
			if d := cmp.Diff(tt.want, appliedEntry(t, got)); d != "" {
				t.Errorf("applied entry (-want +got):\n%s", d)
			}
		})
	}
}

// Messages are cut at the CRD's bound without breaking a character; the reason stays whole.
func TestStatusEntryBounds(t *testing.T) {
	long := strings.Repeat("é", maxMessage) // 2048 bytes, 1024 characters
	st := agent.Status{
		Status:     vrrp.Status{State: vrrp.Fault, Reason: agent.ReasonStartFailed},
		Message:    long,
		Adjustment: "probe x failing",
		Probes:     []agent.ProbeStatus{{Name: "x", Known: true, Reason: long + "€"}},
	}
	got := appliedEntry(t, statusEntry("lb1", st, time.Now()))
	for what, s := range map[string]string{"message": got.Message, "probes[0].message": got.Probes[0].Message} {
		if len(s) > maxMessage || !utf8.ValidString(s) || !strings.HasSuffix(s, "...") {
			t.Errorf("%s: %d bytes, valid UTF-8 %v, ends %q; want <= %d, valid, ending in ...",
				what, len(s), utf8.ValidString(s), s[max(0, len(s)-5):], maxMessage)
		}
	}
	if got.Reason != "StartFailed" || !strings.HasPrefix(got.Message, "éé") {
		t.Errorf("reason %q, message starting %q: want StartFailed and the agent's message first", got.Reason, got.Message[:8])
	}
}

// What the agent says beside the reason, in words: why the instance could not start, what the
// probes do to the priority, what the host failed to do and retries.
func TestStatusEntryMessage(t *testing.T) {
	bind := "binding the addresses failed: netlink: permission denied"
	for _, tt := range []struct {
		name         string
		st           agent.Status
		reason, want string
	}{
		{"reason, adjustment and host error", agent.Status{Status: vrrp.Status{State: vrrp.Fault, Reason: vrrp.ReasonBindFailed, HostError: bind},
			Adjustment: "probe x failing (-20)"}, "AddressBindFailed", "probe x failing (-20); " + bind},
		{"host error", agent.Status{Status: vrrp.Status{State: vrrp.Fault, Reason: vrrp.ReasonBindFailed, HostError: bind}},
			"AddressBindFailed", bind},
		{"host error alone", agent.Status{Status: vrrp.Status{State: vrrp.Backup, HostError: "removing [198.18.0.100/24] failed, retrying: busy"}},
			"", "removing [198.18.0.100/24] failed, retrying: busy"},
		{"all three", agent.Status{Status: vrrp.Status{State: vrrp.Fault, Reason: agent.ReasonStartFailed, HostError: bind},
			Message: "no interface eth9", Adjustment: "probe x failing (-20)"}, "StartFailed", "no interface eth9; probe x failing (-20); " + bind},
		{"none", agent.Status{Status: vrrp.Status{State: vrrp.Backup, Reason: vrrp.ReasonStarted}}, "Started", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := appliedEntry(t, statusEntry("n1", tt.st, heardAt))
			if got.Reason != tt.reason || got.Message != tt.want {
				t.Errorf("reason %q message %q, want %q %q", got.Reason, got.Message, tt.reason, tt.want)
			}
		})
	}
	long := agent.Status{Status: vrrp.Status{State: vrrp.Fault, Reason: vrrp.ReasonBindFailed, HostError: strings.Repeat("x", 2*maxMessage)}}
	if got := statusEntry("n1", long, heardAt); got.Reason != "AddressBindFailed" || len(got.Message) > maxMessage || !strings.HasPrefix(got.Message, "xxx") {
		t.Errorf("long host error: reason %q, message of %d bytes", got.Reason, len(got.Message))
	}
}

// An instance's status never carries the PASS password; nothing the agent reports can.
func TestStatusEntryHasNoPassword(t *testing.T) {
	st := agent.Status{Status: vrrp.Status{Name: "v2", State: vrrp.Backup, Interface: "eth0", Priority: 100,
		Primary: netip.MustParseAddr("198.18.0.11"), Reason: vrrp.ReasonStarted, Since: time.Now()}}
	b, err := json.Marshal(newMemberApply(testVIP("v2", v2Pass), statusEntry("lb1", st, time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	// The fields are the API's, none of which holds configuration data.
	var m struct {
		Spec   map[string]json.RawMessage
		Status map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &m); err != nil || len(m.Status) == 0 {
		t.Fatalf("%s: %v", b, err)
	}
	for k := range m.Spec {
		if k != "virtualIP" && k != "node" {
			t.Errorf("unexpected field spec.%s in %s", k, b)
		}
	}
	for k := range m.Status {
		switch k {
		case "state", "priority", "interface", "address", "reason", "message", "lastTransitionTime", "probes":
		default:
			t.Errorf("unexpected field status.%s in %s", k, b)
		}
	}
}

// The member is sent with lastTransitionTime to the nanosecond (metav1.Time would cut it to the
// second), its spec naming the VirtualIP and the node, and the VirtualIP as its owner (it goes
// when the VirtualIP does). A withdrawal is a delete (TestMemberWrites).
func TestEntryApplyJSON(t *testing.T) {
	since := time.Date(2026, 3, 4, 5, 6, 7, 891_000_123, time.FixedZone("CET", 3600))
	e := statusEntry("lb1", agent.Status{Status: vrrp.Status{State: vrrp.Master, Since: since}}, since)
	vip := testVIP("web", nil)
	vip.UID = "0b6c3f9e-2a8d-4f4e-9d1a-5c2b7e8f9a01"
	b, err := json.Marshal(newMemberApply(vip, e))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"VirtualIPMember","apiVersion":"kubevrrp.io/v1alpha1","metadata":{"name":"web.lb1",` +
		`"ownerReferences":[{"apiVersion":"kubevrrp.io/v1alpha1","kind":"VirtualIP","name":"web","uid":"0b6c3f9e-2a8d-4f4e-9d1a-5c2b7e8f9a01"}]},` +
		`"spec":{"virtualIP":"web","node":"lb1"},` +
		`"status":{"state":"Master","lastTransitionTime":"2026-03-04T04:06:07.891000123Z"}}`
	if string(b) != want {
		t.Errorf("apply configuration\n%s\nwant\n%s", b, want)
	}
	var back v1alpha1.VirtualIPMember
	strictDecode(t, newMemberApply(vip, e), &back)
	if lt := back.Status.LastTransitionTime; lt == nil || !lt.Equal(&metav1.Time{Time: since}) {
		t.Errorf("lastTransitionTime read back as %v, want %v", lt, since)
	}
}

// entry prefers the rejection (the node is in FAULT for this VirtualIP, whatever an older
// instance of it reports), then the agent's snapshot.
func TestStatusReconcilerEntry(t *testing.T) {
	fa := newFakeAgent()
	fa.statuses = []agent.Status{{Status: vrrp.Status{Name: "running", State: vrrp.Master, Interface: "eth0", Priority: 110,
		Primary: netip.MustParseAddr("198.18.0.11"), Reason: vrrp.ReasonMasterDown}}, {Status: vrrp.Status{Name: "both", State: vrrp.Master}}}
	rej := NewRejections(nil)
	rej.Set("both", Rejection{Reason: ReasonSecretMissing, Message: "Secret kube-vrrp/vrrp not found"})
	rej.Set("rejected", Rejection{Reason: ReasonInvalidSpec, Message: "spec.vrid: bad"})
	r := &StatusReconciler{NodeName: "lb1", Agent: fa, Rejected: rej}

	if _, ok := r.entry("unknown"); ok {
		t.Error("entry of a VirtualIP this node neither runs nor rejects: ok")
	}
	want := v1alpha1.NodeStatus{Name: "lb1", State: "Master", Priority: 110, Interface: "eth0", Address: "198.18.0.11", Reason: "MasterDownTimer"}
	if e, ok := r.entry("running"); !ok || !cmp.Equal(e, want) {
		t.Errorf("entry(running) = %+v, %v; want %+v", e, ok, want)
	}
	for name, want := range map[string]v1alpha1.NodeStatus{
		"both":     {Name: "lb1", State: "Fault", Reason: "SecretMissing", Message: "Secret kube-vrrp/vrrp not found"},
		"rejected": {Name: "lb1", State: "Fault", Reason: "InvalidSpec", Message: "spec.vrid: bad"},
	} {
		e, ok := r.entry(name)
		if d := cmp.Diff(want, e); !ok || d != "" {
			t.Errorf("entry(%s) (-want +got):\n%s", name, d)
		}
		appliedEntry(t, e)
	}
	if got := r.FieldManager(); got != "kube-vrrp-agent/lb1" {
		t.Errorf("FieldManager() = %q", got)
	}
}

// An entry read back from the API server compares equal to the entry applied, so that one in
// place costs no write: the transition time to the nanosecond in any zone, whole seconds for
// the rest, empty lists as none. Any other difference is a change.
func TestEntryKey(t *testing.T) {
	since := time.Date(2026, 3, 4, 5, 6, 7, 891_000_123, time.FixedZone("CET", 3600))
	st := agent.Status{Status: vrrp.Status{Name: "web", State: vrrp.Master, Interface: "eth0", Priority: 110,
		Primary: netip.MustParseAddr("198.18.0.11"), Reason: vrrp.ReasonMasterDown, Since: since,
		Foreign: []vrrp.Foreign{{Src: netip.MustParseAddr("198.18.0.99"), Priority: 100, Count: 3, LastSeen: heardAt,
			Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}}}},
		Probes: []agent.ProbeStatus{{Name: "api", Known: true, Healthy: true, Since: since}, {Name: "late"}}}
	e := statusEntry("lb1", st, heardAt)
	if len(e.ForeignRouters) != 1 || len(e.Probes) != 2 {
		t.Fatalf("entry %+v: want a foreign router and two probes", e)
	}
	stored := appliedEntry(t, e)
	stored.LastTransitionTime = &metav1.Time{Time: stored.LastTransitionTime.In(time.Local)} // as decoded
	if entryKey(e, true) != entryKey(stored, true) {
		t.Errorf("entry read back differs:\n%s\n%s", entryKey(e, true), entryKey(stored, true))
	}
	empty := v1alpha1.NodeStatus{Name: "lb1", State: "Backup"}
	withEmpty := empty
	withEmpty.Probes, withEmpty.ForeignRouters = []v1alpha1.ProbeStatus{}, []v1alpha1.ForeignRouterStatus{}
	if entryKey(empty, true) != entryKey(withEmpty, true) {
		t.Errorf("empty lists differ from none")
	}
	if entryKey(empty, false) != "" || entryKey(empty, true) == "" {
		t.Errorf("no entry %q, an entry %q", entryKey(empty, false), entryKey(empty, true))
	}
	later := e
	later.LastTransitionTime = &metav1.Time{Time: since.Add(time.Millisecond)}
	count := e
	count.ForeignRouters = slices.Clone(e.ForeignRouters)
	count.ForeignRouters[0].Count++
	for what, o := range map[string]v1alpha1.NodeStatus{"a transition a millisecond later": later, "a foreign advert more": count} {
		if entryKey(e, true) == entryKey(o, true) {
			t.Errorf("%s: same key", what)
		}
	}
}

// A node with no interface in the VirtualIP's subnet has no entry, unless spec.nodes names it;
// any other refusal has one.
func TestStatusReconcilerOffLink(t *testing.T) {
	r := &StatusReconciler{NodeName: "lb1"}
	off := Rejection{Reason: ReasonCannotResolve, Message: `VirtualIP "web" on node "lb1": ` + noInterfaceInSubnet + "198.18.0.100/24", OffLink: true}
	named := &v1alpha1.VirtualIP{Spec: v1alpha1.VirtualIPSpec{Nodes: []v1alpha1.NodeOverride{{Name: "lb2"}, {Name: "lb1"}}}}
	other := &v1alpha1.VirtualIP{Spec: v1alpha1.VirtualIPSpec{Nodes: []v1alpha1.NodeOverride{{Name: "lb2"}}}}
	if !r.offLink(other, off) || !r.offLink(&v1alpha1.VirtualIP{}, off) {
		t.Error("off the link and not named: has an entry")
	}
	if r.offLink(named, off) {
		t.Error("off the link and named in spec.nodes: no entry")
	}
	if r.offLink(other, Rejection{Reason: ReasonCannotResolve, Message: "interface \"eth1\" (spec.interface) does not exist"}) {
		t.Error("another CannotResolve: no entry")
	}
}

// feed wakes the reconciler for the VirtualIPs whose entry changed since it last did, and for
// one it stopped running, once; a resync wakes it for all of them.
func TestStatusFeed(t *testing.T) {
	fa := newFakeAgent()
	fa.configs = map[string]vrrp.Config{"a": {}, "b": {}, "c": {}}
	fa.statuses = []agent.Status{
		{Status: vrrp.Status{Name: "a", State: vrrp.Backup}},
		{Status: vrrp.Status{Name: "b", State: vrrp.Backup}},
		{Status: vrrp.Status{Name: "c", State: vrrp.Master}},
	}
	rej := NewRejections(nil)
	changes := make(chan struct{})
	r := &StatusReconciler{NodeName: "lb1", Agent: fa, Rejected: rej, Changes: changes, Resync: time.Hour}
	out := make(chan event.TypedGenericEvent[*v1alpha1.VirtualIP])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.feed(ctx, out)
	// fed returns the names fed until nothing comes for a while.
	fed := func() []string {
		var names []string
		for {
			select {
			case e := <-out:
				names = append(names, e.Object.Name)
			case <-time.After(100 * time.Millisecond):
				slices.Sort(names)
				return names
			}
		}
	}
	step := func(what string, change func(), want ...string) {
		t.Helper()
		change()
		changes <- struct{}{}
		if got := fed(); !slices.Equal(got, want) {
			t.Errorf("%s: fed %v, want %v", what, got, want)
		}
	}
	if got := fed(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("at start: fed %v, want all", got)
	}
	step("nothing changed", func() {})
	step("a became MASTER", func() {
		fa.mu.Lock()
		fa.statuses[0].State = vrrp.Master
		fa.mu.Unlock()
	}, "a")
	step("b refused", func() { rej.Set("b", Rejection{Reason: ReasonSecretMissing, Message: "no Secret"}) }, "b")
	step("c stopped", func() {
		fa.mu.Lock()
		delete(fa.configs, "c")
		fa.statuses = fa.statuses[:2]
		fa.mu.Unlock()
	}, "c")
	step("nothing changed again", func() {})
}
