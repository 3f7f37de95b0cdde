package vrrp_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// An event written as JSON (kube-vrrp run --events) reads back as the same event, with kinds
// and states by name; an unknown kind or state is an error, not a zero value.
func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	in := []vrrp.Event{
		{Kind: vrrp.EventTransition, Seq: 7, At: at, Instance: "haproxy", From: vrrp.Backup, State: vrrp.Master,
			Priority: 110, Master: netip.MustParseAddr("198.18.0.11"), Reason: vrrp.ReasonMasterDown},
		{Kind: vrrp.EventForeign, Seq: 8, At: at, Instance: "haproxy", State: vrrp.Master, From: vrrp.Master, Priority: 110,
			Foreign: []vrrp.Foreign{{Src: netip.MustParseAddr("198.18.0.99"), Priority: 254,
				Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.200")}, Count: 3, LastSeen: at}}},
		{Kind: vrrp.EventPacketDrop, Seq: 9, At: at, Instance: "v6", State: vrrp.Backup, From: vrrp.Backup, Priority: 100,
			Drop: vrrp.DropTTL, Src: netip.MustParseAddr("fe80::1"), Count: 12},
		{Kind: vrrp.EventProbe, Seq: 10, At: at, Instance: "haproxy", State: vrrp.Fault, From: vrrp.Fault, Priority: 110,
			Probe: "haproxy", Healthy: false, Message: `no process named "haproxy"`},
		{Kind: vrrp.EventDropped, At: at, Count: 889},
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, e := range in {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(b.String(), `"kind":"Transition"`) || !strings.Contains(b.String(), `"state":"Master"`) {
		t.Errorf("kinds and states are not written by name:\n%s", b.String())
	}
	dec := json.NewDecoder(strings.NewReader(b.String()))
	var out []vrrp.Event
	for dec.More() {
		var e vrrp.Event
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if diff := cmp.Diff(in, out, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"kind":"Nope"}`, `{"kind":"Transition","state":"Sleeping"}`} {
		var e vrrp.Event
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("%s decoded without error: %+v", bad, e)
		}
	}
}
