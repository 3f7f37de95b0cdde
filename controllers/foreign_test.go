package controllers

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

var heardAt = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

// foreignEntry is a node's entry that hears the given foreign routers on eth0.
func foreignEntry(name, addr, state string, fs ...v1alpha1.ForeignRouterStatus) v1alpha1.NodeStatus {
	return v1alpha1.NodeStatus{Name: name, Address: addr, State: state, Interface: "eth0", ForeignRouters: fs}
}

func foreignRouter(addr string, prio int32, inElection bool, ago time.Duration, addrs ...string) v1alpha1.ForeignRouterStatus {
	return v1alpha1.ForeignRouterStatus{Address: addr, Priority: prio, Addresses: addrs, InElection: inElection, Count: 3,
		LastSeen: metav1.NewTime(heardAt.Add(-ago))}
}

func conditionIn(t *testing.T, s Summary, typ string) metav1.Condition {
	t.Helper()
	for _, c := range s.Conditions {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("no %s condition in %+v", typ, s.Conditions)
	return metav1.Condition{}
}

// The ForeignRouter condition names the node that hears a stranger, the sender, the VRID, the
// interface and the addresses, and says what to change; Ready keeps its meaning.
func TestSummarizeForeignRouter(t *testing.T) {
	stranger := foreignRouter("198.18.0.50", 254, false, 0, "198.18.0.200")
	tests := []struct {
		name   string
		nodes  []v1alpha1.NodeStatus
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		{
			name:   "nobody heard",
			nodes:  []v1alpha1.NodeStatus{foreignEntry("n1", "198.18.0.11", "Master"), foreignEntry("n2", "198.18.0.12", "Backup")},
			status: metav1.ConditionFalse, reason: ReasonNoForeign,
			msg: "no node hears another router advertise VRID 51 with other addresses",
		},
		{
			name: "one node hears a stranger",
			nodes: []v1alpha1.NodeStatus{
				foreignEntry("n1", "198.18.0.11", "Master", stranger), foreignEntry("n2", "198.18.0.12", "Backup"),
			},
			status: metav1.ConditionTrue, reason: ReasonVRIDInUse,
			msg: "node n1 hears 198.18.0.50 on eth0 advertising VRID 51 with 198.18.0.200 (priority 254), not this group's addresses: " +
				"another VRRP group uses VRID 51 on this link; give one of them another spec.vrid (or fix its addresses)",
		},
		{
			// Named once, with the nodes that hear it and what was heard last.
			name: "two nodes hear it",
			nodes: []v1alpha1.NodeStatus{
				foreignEntry("n2", "198.18.0.12", "Backup", foreignRouter("198.18.0.50", 200, false, time.Minute, "198.18.0.201")),
				foreignEntry("n1", "198.18.0.11", "Master", stranger),
			},
			status: metav1.ConditionTrue, reason: ReasonVRIDInUse,
			msg: "nodes n1, n2 hear 198.18.0.50 on eth0 advertising VRID 51 with 198.18.0.200 (priority 254), not this group's addresses: " +
				"another VRRP group uses VRID 51 on this link; give one of them another spec.vrid (or fix its addresses)",
		},
		{
			// An edit of spec.addresses reaches the nodes a moment apart: they hear each other
			// with another list, which is no stranger.
			name: "a node of the group with another list",
			nodes: []v1alpha1.NodeStatus{
				foreignEntry("n1", "198.18.0.11", "Master"),
				foreignEntry("n2", "198.18.0.12", "Backup", foreignRouter("198.18.0.11", 110, true, 0, "198.18.0.100", "198.18.0.101")),
			},
			status: metav1.ConditionFalse, reason: ReasonNoForeign,
		},
		{
			// A listed peer or a list sharing an address: its adverts are not dropped.
			name: "a stranger in the election",
			nodes: []v1alpha1.NodeStatus{
				foreignEntry("n1", "198.18.0.11", "Backup", foreignRouter("198.18.0.99", 150, true, 0, "198.18.0.100", "198.18.0.7")),
			},
			status: metav1.ConditionTrue, reason: ReasonVRIDInUse,
			msg: "node n1 hears 198.18.0.99 on eth0 advertising VRID 51 with 198.18.0.100, 198.18.0.7 (priority 150), not this group's addresses, " +
				"and its adverts take part in this group's election: another VRRP group uses VRID 51 on this link; give one of them another " +
				"spec.vrid (or fix its addresses); until then the router whose adverts take part can win the election and leave this group's addresses unheld",
		},
		{
			name: "many strangers, many addresses",
			nodes: []v1alpha1.NodeStatus{foreignEntry("n1", "198.18.0.11", "Master",
				foreignRouter("198.18.0.54", 1, false, 0, "198.18.1.4"),
				foreignRouter("198.18.0.53", 1, false, 0, "198.18.1.3"),
				foreignRouter("198.18.0.52", 1, false, 0, "198.18.1.2"),
				foreignRouter("198.18.0.51", 1, false, 0, "198.18.1.1"),
				foreignRouter("198.18.0.50", 0, false, 0, "198.18.1.10", "198.18.1.11", "198.18.1.12", "198.18.1.13", "198.18.1.14", "198.18.1.15"),
			)},
			status: metav1.ConditionTrue, reason: ReasonVRIDInUse,
			msg: "node n1 hears 198.18.0.50 on eth0 advertising VRID 51 with 198.18.1.10, 198.18.1.11, 198.18.1.12, 198.18.1.13 and 2 more (priority 0), not this group's addresses; " +
				"node n1 hears 198.18.0.51 on eth0 advertising VRID 51 with 198.18.1.1 (priority 1), not this group's addresses; " +
				"node n1 hears 198.18.0.52 on eth0 advertising VRID 51 with 198.18.1.2 (priority 1), not this group's addresses; " +
				"and 2 more (the members' status.foreignRouters): another VRRP group uses VRID 51 on this link; give one of them another spec.vrid (or fix its addresses)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.nodes, 4, 51)
			c := conditionIn(t, s, ConditionForeignRouter)
			if c.Status != tt.status || c.Reason != tt.reason || c.ObservedGeneration != 4 {
				t.Errorf("ForeignRouter = %s/%s gen %d, want %s/%s gen 4", c.Status, c.Reason, c.ObservedGeneration, tt.status, tt.reason)
			}
			if tt.msg != "" && c.Message != tt.msg {
				t.Errorf("message\n got %q\nwant %q", c.Message, tt.msg)
			}
			if !conditionReason.MatchString(c.Reason) {
				t.Errorf("reason %q does not match the CRD's pattern", c.Reason)
			}
			// Ready is what it would be without the foreign routers.
			plain := make([]v1alpha1.NodeStatus, len(tt.nodes))
			for i, n := range tt.nodes {
				n.ForeignRouters = nil
				plain[i] = n
			}
			want := Summarize(plain, 4, 51)
			if d := cmp.Diff(conditionIn(t, want, ConditionReady), conditionIn(t, s, ConditionReady)); d != "" || s.Master != want.Master {
				t.Errorf("Ready or master changed by a foreign router (-without +with):\n%s", d)
			}
		})
	}
}

// The summary, and so the condition every agent writes, does not depend on the order of the
// entries or of their foreign routers.
func TestSummarizeForeignOrder(t *testing.T) {
	a := foreignRouter("198.18.0.50", 254, false, 0, "198.18.0.200")
	b := foreignRouter("198.18.0.60", 10, false, 0, "198.18.0.210")
	x := Summarize([]v1alpha1.NodeStatus{foreignEntry("n1", "198.18.0.11", "Master", a, b), foreignEntry("n2", "198.18.0.12", "Backup", b)}, 1, 7)
	y := Summarize([]v1alpha1.NodeStatus{foreignEntry("n2", "198.18.0.12", "Backup", b), foreignEntry("n1", "198.18.0.11", "Master", b, a)}, 1, 7)
	if d := cmp.Diff(x, y); d != "" {
		t.Errorf("summary depends on order (-x +y):\n%s", d)
	}
	// Two nodes report one router differently, heard last in the same second (lastSeen
	// has whole seconds): the first node by name tells.
	b2 := b
	b2.Priority, b2.Addresses = 11, []string{"198.18.0.211"}
	x = Summarize([]v1alpha1.NodeStatus{foreignEntry("n1", "198.18.0.11", "Master", a, b), foreignEntry("n2", "198.18.0.12", "Backup", b2)}, 1, 7)
	y = Summarize([]v1alpha1.NodeStatus{foreignEntry("n2", "198.18.0.12", "Backup", b2), foreignEntry("n1", "198.18.0.11", "Master", b, a)}, 1, 7)
	if d := cmp.Diff(x, y); d != "" {
		t.Errorf("summary depends on order (-x +y):\n%s", d)
	}
	if m := conditionIn(t, x, ConditionForeignRouter).Message; !strings.HasPrefix(m, "node n1 hears 198.18.0.50 ") ||
		!strings.Contains(m, "; nodes n1, n2 hear 198.18.0.60 on eth0 advertising VRID 7 ") {
		t.Errorf("message %q", m)
	}
}

// The entry lists the foreign routers heard in the last five minutes, the most recent within
// the CRD's bounds, sorted by address: the engine's order, most recent first, changes at every
// advert when two routers are heard in turn.
func TestStatusEntryForeign(t *testing.T) {
	now := heardAt
	addrs := func(n int) []netip.Addr {
		var out []netip.Addr
		for i := range n {
			out = append(out, netip.MustParseAddr(fmt.Sprintf("198.18.1.%d", i+1)))
		}
		return out
	}
	st := agent.Status{Status: vrrp.Status{Name: "web", State: vrrp.Master, Interface: "eth0", Priority: 100,
		Primary: netip.MustParseAddr("198.18.0.11"), Foreign: []vrrp.Foreign{
			{Src: netip.MustParseAddr("198.18.0.50"), Priority: 254, Addresses: addrs(1), Count: 12, LastSeen: now.Add(-time.Second)},
			{Src: netip.MustParseAddr("198.18.0.12"), Priority: 90, Addresses: addrs(20), InElection: true, Count: 1, LastSeen: now.Add(-foreignReportFor)},
			// Silent for longer than five minutes: the engine forgets it only at the next
			// foreign advert; the entry leaves it out now.
			{Src: netip.MustParseAddr("198.18.0.51"), Priority: 1, Addresses: addrs(1), Count: 1, LastSeen: now.Add(-foreignReportFor - time.Second)},
		}}}
	got := appliedEntry(t, statusEntry("n1", st, now))
	want := []v1alpha1.ForeignRouterStatus{
		{Address: "198.18.0.12", Priority: 90, InElection: true, Count: 1, LastSeen: metav1.NewTime(now.Add(-foreignReportFor)),
			Addresses: []string{"198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4", "198.18.1.5", "198.18.1.6", "198.18.1.7", "198.18.1.8",
				"198.18.1.9", "198.18.1.10", "198.18.1.11", "198.18.1.12", "198.18.1.13", "198.18.1.14", "198.18.1.15", "198.18.1.16"}},
		{Address: "198.18.0.50", Priority: 254, Addresses: []string{"198.18.1.1"}, Count: 12, LastSeen: metav1.NewTime(now.Add(-time.Second))},
	}
	if d := cmp.Diff(want, got.ForeignRouters); d != "" {
		t.Errorf("foreignRouters (-want +got):\n%s", d)
	}
	// Heard in turn: the engine's order changes, the entry does not.
	st.Foreign[0], st.Foreign[1] = st.Foreign[1], st.Foreign[0]
	if d := cmp.Diff(want, appliedEntry(t, statusEntry("n1", st, now)).ForeignRouters); d != "" {
		t.Errorf("foreignRouters in the other order (-want +got):\n%s", d)
	}

	// At most 8 routers, the most recent; an IPv6 link-local sender without its zone (the
	// interface says it).
	st.Foreign = nil
	for i := range 10 {
		st.Foreign = append(st.Foreign, vrrp.Foreign{Src: netip.MustParseAddr(fmt.Sprintf("fe80::%x%%eth0", i+1)),
			Addresses: []netip.Addr{netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("2001:db8::1")}, LastSeen: now})
	}
	got = appliedEntry(t, statusEntry("n1", st, now))
	if len(got.ForeignRouters) != maxForeignRouters || got.ForeignRouters[0].Address != "fe80::1" ||
		got.ForeignRouters[maxForeignRouters-1].Address != "fe80::8" ||
		!cmp.Equal(got.ForeignRouters[0].Addresses, []string{"fe80::1", "2001:db8::1"}) {
		t.Errorf("foreignRouters %+v, want the first 8, without zones", got.ForeignRouters)
	}

	// None heard: no field.
	st.Foreign = nil
	if e := statusEntry("n1", st, now); e.ForeignRouters != nil {
		t.Errorf("foreignRouters %v without foreign router", e.ForeignRouters)
	}
}

// A node records a Warning Event the first time it hears a stranger, per VirtualIP and sender:
// not again while it keeps hearing it, again when it comes back after it was gone. A node of
// the group with another list (an edit rolling out) is not worth one.
func TestForeignEvents(t *testing.T) {
	rec := &fakeRecorder{}
	vip := &v1alpha1.VirtualIP{}
	vip.Name, vip.Spec.VRID = "web", 51
	other := vip.DeepCopy()
	other.Name = "dns"
	members := []v1alpha1.NodeStatus{{Name: "n1", Address: "198.18.0.11"}, {Name: "n2", Address: "198.18.0.12"}}
	cl := fakeClient(t).WithObjects(append(testMembers(vip, members...), testMembers(other, members...)...)...).Build()
	r := &StatusReconciler{NodeName: "n1", Recorder: rec, Reader: cl}

	a := vrrp.Foreign{Src: netip.MustParseAddr("198.18.0.50"), Priority: 254, Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}, LastSeen: heardAt}
	b := vrrp.Foreign{Src: netip.MustParseAddr("198.18.0.60"), Priority: 10, Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.210")}, LastSeen: heardAt}
	member := vrrp.Foreign{Src: netip.MustParseAddr("198.18.0.12"), Priority: 100, InElection: true,
		Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.100"), netip.MustParseAddr("198.18.0.101")}, LastSeen: heardAt}
	entry := func(fs ...vrrp.Foreign) v1alpha1.NodeStatus {
		return statusEntry("n1", agent.Status{Status: vrrp.Status{Name: "web", State: vrrp.Master, Interface: "eth0",
			Primary: netip.MustParseAddr("198.18.0.11"), Foreign: fs}}, heardAt)
	}
	for _, step := range []struct {
		vip   *v1alpha1.VirtualIP
		entry v1alpha1.NodeStatus
		ok    bool
	}{
		{vip, entry(), true},
		{vip, entry(member), true},          // no stranger
		{vip, entry(a, member), true},       // a: Event
		{vip, entry(a), true},               // still heard
		{other, entry(a), true},             // another VirtualIP hears it too: Event
		{vip, entry(b, a), true},            // b: Event
		{vip, entry(b), true},               // a gone
		{vip, entry(a, b), true},            // a back: Event
		{vip, v1alpha1.NodeStatus{}, false}, // the instance stopped
		{vip, entry(a, b), true},            // both again: Events
	} {
		r.foreignEvents(t.Context(), step.vip, step.entry, step.ok)
	}
	msg := func(f vrrp.Foreign) string {
		return fmt.Sprintf("node n1 hears %s on eth0 advertising VRID 51 with %s (priority %d), not this group's addresses: "+
			"another VRRP group uses VRID 51 on this link; give one of them another spec.vrid (or fix its addresses)", f.Src, f.Addresses[0], f.Priority)
	}
	want := []recordedEvent{
		{"Warning", ReasonForeignRouter, msg(a)},
		{"Warning", ReasonForeignRouter, msg(a)},
		{"Warning", ReasonForeignRouter, msg(b)},
		{"Warning", ReasonForeignRouter, msg(a)},
		{"Warning", ReasonForeignRouter, msg(a)},
		{"Warning", ReasonForeignRouter, msg(b)},
	}
	if d := cmp.Diff(want, rec.events); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}

	// The Event says what the condition says, for this node and sender.
	sum := Summarize([]v1alpha1.NodeStatus{appliedEntry(t, entry(a))}, 1, 51)
	if c := conditionIn(t, sum, ConditionForeignRouter); c.Message != msg(a) {
		t.Errorf("condition %q, Event %q", c.Message, msg(a))
	}
}

// An advert for the group's VRID with another address list, dropped by the engine, is counted
// in kube_vrrp_packets_dropped_total{reason="address_mismatch"}: the engine's count reaches
// the metric through the snapshot.
func TestCollectorAddressMismatch(t *testing.T) {
	cfg := vrrp.Config{Name: "web", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: 100,
		Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.100/24")}, Primary: netip.MustParseAddr("198.18.0.11"), Preempt: true}
	in, err := vrrp.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	in.Start(heardAt)
	src := netip.MustParseAddr("198.18.0.50")
	adv := packet.Advertisement{Version: 3, VRID: 51, Priority: 254, Interval: 100 * time.Millisecond,
		Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}}
	b, err := adv.Marshal(src, packet.MulticastIPv4, packet.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		in.Receive(heardAt.Add(time.Duration(i)*time.Millisecond), vrrp.Packet{Src: src, Dst: packet.MulticastIPv4, TTL: 255, Data: b})
	}
	fa := newFakeAgent()
	fa.statuses = []agent.Status{{Status: in.Status()}}
	got := scrape(t, &Collector{Agent: fa, Node: "n1"})
	if v, ok := got["kube_vrrp_packets_dropped_total"].series[`node="n1",reason="address_mismatch",vip="web"`]; !ok || v != 3 {
		t.Errorf("address_mismatch drops: %v (present %v), want 3; series %v", v, ok, got["kube_vrrp_packets_dropped_total"].series)
	}
}

// An attacker rotating its source address is one new foreign router at every advert: the Events
// stop at foreignEventBurst per VirtualIP and minute, while the condition keeps naming them.
func TestForeignEventsBounded(t *testing.T) {
	rec := &fakeRecorder{}
	r := &StatusReconciler{NodeName: "n1", Recorder: rec, Reader: fakeClient(t).Build()}
	vip := &v1alpha1.VirtualIP{}
	vip.Name, vip.Spec.VRID = "web", 51
	for i := range 40 {
		f := vrrp.Foreign{Src: netip.AddrFrom4([4]byte{198, 18, 0, byte(150 + i)}), Priority: 254,
			Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}, LastSeen: heardAt}
		e := statusEntry("n1", agent.Status{Status: vrrp.Status{Name: "web", State: vrrp.Master, Interface: "eth0",
			Primary: netip.MustParseAddr("198.18.0.11"), Foreign: []vrrp.Foreign{f}}}, heardAt)
		r.foreignEvents(t.Context(), vip, e, true)
	}
	if n := len(rec.events); n != foreignEventBurst {
		t.Errorf("%d Events for 40 rotating senders, want %d", n, foreignEventBurst)
	}
}

// A node's entry is rewritten for a foreign router only when a reader learns something from it:
// the router appears or goes, its priority, addresses or inElection change, or its lastSeen
// moves on by a minute (count with it). What moves with every advert alone costs no write.
func TestEntryCurrentForeign(t *testing.T) {
	router := func(addr string, prio int32, count int64, seen time.Duration, addrs ...string) v1alpha1.ForeignRouterStatus {
		return v1alpha1.ForeignRouterStatus{Address: addr, Priority: prio, Addresses: addrs, Count: count,
			LastSeen: metav1.NewTime(heardAt.Add(seen))}
	}
	entry := func(state string, fs ...v1alpha1.ForeignRouterStatus) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{Name: "n1", State: state, Address: "198.18.0.11", Interface: "eth0", ForeignRouters: fs}
	}
	a := router("198.18.0.50", 254, 3, 0, "198.18.0.200")
	b := router("198.18.0.60", 10, 1, 0, "198.18.0.210")
	stored := entry("Backup", a, b)
	tests := []struct {
		name    string
		fresh   v1alpha1.NodeStatus
		current bool
	}{
		{"the same", entry("Backup", a, b), true},
		{"heard again, a second later", entry("Backup", router("198.18.0.50", 254, 4, time.Second, "198.18.0.200"), b), true},
		{"heard for 59 s more", entry("Backup", router("198.18.0.50", 254, 62, 59*time.Second, "198.18.0.200"),
			router("198.18.0.60", 10, 60, 59*time.Second, "198.18.0.210")), true},
		{"lastSeen a minute on", entry("Backup", router("198.18.0.50", 254, 63, time.Minute, "198.18.0.200"), b), false},
		{"lastSeen before the stored one", entry("Backup", router("198.18.0.50", 254, 1, -time.Second, "198.18.0.200"), b), false},
		{"priority", entry("Backup", router("198.18.0.50", 0, 4, time.Second, "198.18.0.200"), b), false},
		{"addresses", entry("Backup", router("198.18.0.50", 254, 4, time.Second, "198.18.0.200", "198.18.0.201"), b), false},
		{"in the election", entry("Backup", func() v1alpha1.ForeignRouterStatus {
			f := a
			f.InElection = true
			return f
		}(), b), false},
		{"a router more", entry("Backup", a, b, router("198.18.0.70", 1, 1, 0, "198.18.0.220")), false},
		{"a router gone", entry("Backup", a), false},
		{"another router in its place", entry("Backup", a, router("198.18.0.61", 10, 1, 0, "198.18.0.210")), false},
		{"none", entry("Backup"), false},
		// Anything else is compared as before, to the letter.
		{"the state, a second later", entry("Master", router("198.18.0.50", 254, 4, time.Second, "198.18.0.200"), b), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As the API server returns it.
			have := appliedEntry(t, stored)
			if got := entryCurrent(tt.fresh, true, have, true); got != tt.current {
				t.Errorf("entryCurrent = %v, want %v", got, tt.current)
			}
			// The feed wakes the reconciler for any change a reader needs; for lastSeen alone,
			// when it moves into another minute (below), or at the resync.
			if !tt.current && !strings.HasPrefix(tt.name, "lastSeen") && feedKey(tt.fresh, true) == feedKey(stored, true) {
				t.Errorf("not current, but the feed's key is the same")
			}
		})
	}
	if entryCurrent(stored, true, v1alpha1.NodeStatus{}, false) || entryCurrent(v1alpha1.NodeStatus{}, false, stored, true) {
		t.Error("an entry and none are current")
	}
	if !entryCurrent(v1alpha1.NodeStatus{}, false, v1alpha1.NodeStatus{}, false) {
		t.Error("no entry and none are not current")
	}

	// A router heard every second for ten minutes: the reconciler writes when it appears, and
	// then once for each minute its lastSeen moves on, not once per advert; the feed wakes it
	// about as often.
	var writes, feeds int
	have, had := v1alpha1.NodeStatus{}, false
	fed := ""
	for s := range 600 {
		f := router("198.18.0.50", 254, int64(s+1), time.Duration(s)*time.Second, "198.18.0.200")
		fresh := appliedEntry(t, entry("Backup", f))
		if k := feedKey(fresh, true); k != fed {
			fed = k
			feeds++
		}
		if !entryCurrent(fresh, true, have, had) {
			writes++
			have, had = fresh, true
		}
	}
	t.Logf("a router heard every second for 10 minutes: %d writes, %d feeds", writes, feeds)
	if writes > 11 || feeds > 11 {
		t.Errorf("%d writes and %d feeds for a router heard every second for 10 minutes, want at most 11 each", writes, feeds)
	}
}

// A sender on the link rotating its source address (the engine remembers 8) changes the
// foreign routers at every advert: at most one write per foreignWriteEvery for that, the last
// change written when the hold runs out, and a change of the node's own state at once.
func TestForeignHoldRotatingRouters(t *testing.T) {
	var engine []vrrp.Foreign // most recent first, at most 8, as the engine keeps them
	state := "Backup"
	entry := func(now time.Time) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{Name: "n1", State: state, Priority: 100, Address: "198.18.0.11", Interface: "eth0",
			ForeignRouters: foreignEntries(engine, now)}
	}
	// The reconciler, as Reconcile decides: write, or look again when the hold runs out.
	var (
		have   v1alpha1.NodeStatus
		had    bool
		last   time.Time
		due    time.Time // the requeue
		writes []time.Duration
		t0     = heardAt
	)
	reconcileAt := func(now time.Time) {
		want := entry(now)
		if entryCurrent(want, true, have, had) {
			return
		}
		if hold := foreignHold(want, true, have, had, last, now); hold > 0 {
			if due.IsZero() || now.Add(hold).Before(due) {
				due = now.Add(hold)
			}
			return
		}
		if foreignOnly(want, true, have, had) {
			last = now
		}
		have, had = appliedEntry(t, want), true
		writes = append(writes, now.Sub(t0))
	}
	pending := func(now time.Time) {
		if !due.IsZero() && !due.After(now) {
			at := due
			due = time.Time{}
			reconcileAt(at)
		}
	}
	reconcileAt(t0.Add(-time.Minute)) // the entry, written before the attack

	// 100 source addresses over 30 s, each with another priority.
	writes = nil
	var now time.Time
	for i := range 100 {
		now = t0.Add(time.Duration(i) * 300 * time.Millisecond)
		pending(now)
		f := vrrp.Foreign{Src: netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}), Priority: uint8(1 + i%250),
			Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}, Count: 1, LastSeen: now}
		engine = append([]vrrp.Foreign{f}, engine[:min(len(engine), 7)]...)
		reconcileAt(now)
	}
	pending(now.Add(foreignWriteEvery)) // no more adverts: the hold runs out
	t.Logf("100 rotating routers over 30 s: %d writes, at %v", len(writes), writes)
	if len(writes) > 4 {
		t.Errorf("%d writes for 100 rotating routers over 30 s, want at most 4", len(writes))
	}
	if !due.IsZero() {
		t.Errorf("a write still held at %s", due.Sub(t0))
	}
	// Nothing lost: the stored entry lists the last 8 routers heard.
	if diff := cmp.Diff(appliedEntry(t, entry(now)), have); diff != "" {
		t.Errorf("the last change, once the hold ran out (-want +stored):\n%s", diff)
	}

	// Right after a write, a change of the node's own state is written at once; then a
	// change of the foreign routers alone is still held.
	engine = engine[:7]
	at := now.Add(foreignWriteEvery + time.Second)
	reconcileAt(at) // a router less: written, the hold has run out
	n := len(writes)
	state = "Master"
	reconcileAt(at.Add(time.Second))
	if len(writes) != n+1 || have.State != "Master" {
		t.Errorf("a state change a second after a write: %d writes, stored state %s; want it written at once", len(writes)-n, have.State)
	}
	engine = engine[:6]
	reconcileAt(at.Add(2 * time.Second))
	if len(writes) != n+1 || due.IsZero() {
		t.Errorf("a router less 2 s after the last one: %d writes, held %v; want it held", len(writes)-n-1, !due.IsZero())
	}
}

func TestForeignHold(t *testing.T) {
	now := heardAt
	a := foreignEntry("n1", "198.18.0.11", "Backup", foreignRouter("198.18.0.50", 254, false, 0, "198.18.0.200"))
	b := foreignEntry("n1", "198.18.0.11", "Backup", foreignRouter("198.18.0.60", 254, false, 0, "198.18.0.200"))
	master := foreignEntry("n1", "198.18.0.11", "Master", foreignRouter("198.18.0.60", 254, false, 0, "198.18.0.200"))
	for _, tc := range []struct {
		what    string
		want    v1alpha1.NodeStatus
		ok, had bool
		last    time.Time
		hold    time.Duration
	}{
		{"foreign routers only, the last such write 3 s ago", b, true, true, now.Add(-3 * time.Second), 7 * time.Second},
		{"foreign routers only, the last such write 10 s ago", b, true, true, now.Add(-10 * time.Second), 0},
		{"foreign routers only, never written since the start", b, true, true, time.Time{}, 0},
		{"foreign routers only, written in the future (clock set back)", b, true, true, now.Add(time.Hour), foreignWriteEvery},
		{"the state too", master, true, true, now.Add(-time.Second), 0},
		{"no entry stored", b, true, false, now.Add(-time.Second), 0},
		{"the entry withdrawn", v1alpha1.NodeStatus{}, false, true, now.Add(-time.Second), 0},
	} {
		if got := foreignHold(tc.want, tc.ok, appliedEntry(t, a), tc.had, tc.last, now); got != tc.hold {
			t.Errorf("%s: hold %s, want %s", tc.what, got, tc.hold)
		}
	}
}
