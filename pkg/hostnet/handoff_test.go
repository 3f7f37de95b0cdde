//go:build linux

package hostnet

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func openTestState(t *testing.T) *State {
	t.Helper()
	st, err := OpenState(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// The handoff record is written whole (mode 0600) and read back until the successor has
// settled it (ForgetHandoff); TakeHandoff drops the entries past their deadline.
func TestHandoffRecord(t *testing.T) {
	st := openTestState(t)
	pfx := netip.MustParsePrefix
	now := time.Now()
	live := []HandoffEntry{
		{Interface: "eth0", VRID: 7, Addresses: []netip.Prefix{pfx("198.18.0.10/32"), pfx("198.18.0.11/24")}, Deadline: now.Add(time.Minute)},
		{Interface: "eth0", VRID: 7, IPv6: true, Addresses: []netip.Prefix{pfx("2001:db8::10/128")}, Deadline: now.Add(time.Minute)},
	}
	expired := HandoffEntry{Interface: "eth1", VRID: 9, Addresses: []netip.Prefix{pfx("198.18.1.10/32")}, Deadline: now.Add(-time.Second)}
	if err := st.WriteHandoff(append(live, expired)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(st.Dir(), stateHandoffFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record: %v, %v; want mode 0600", fi, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	got, err := st.TakeHandoff()
	if err != nil {
		t.Fatal(err)
	}
	timeOpt := cmpopts.EquateApproxTime(time.Millisecond)
	if diff := cmp.Diff(live, got, netipOpt, timeOpt); diff != "" {
		t.Errorf("TakeHandoff (-want +got):\n%s", diff)
	}
	// Read again until ForgetHandoff: a successor that stops before settling the entries
	// leaves them to the next.
	if got, err := st.TakeHandoff(); err != nil || len(got) != len(live) {
		t.Errorf("second TakeHandoff: %v, %v; want the live entries again", got, err)
	}
	if err := st.ForgetHandoff(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("record still there after ForgetHandoff: %v", err)
	}
	if got, err := st.TakeHandoff(); err != nil || len(got) != 0 {
		t.Errorf("TakeHandoff after ForgetHandoff: %v, %v; want nothing", got, err)
	}
	// A record of expired entries alone is removed when read.
	if err := st.WriteHandoff([]HandoffEntry{expired}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.TakeHandoff(); err != nil || len(got) != 0 {
		t.Errorf("TakeHandoff of expired entries: %v, %v; want nothing", got, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("record of expired entries still there after TakeHandoff: %v", err)
	}
	// ForgetHandoff leaves a record the State wrote (its own handoff at its stop).
	if err := st.WriteHandoff(live); err != nil {
		t.Fatal(err)
	}
	if err := st.ForgetHandoff(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("ForgetHandoff removed the State's own record: %v", err)
	}
	// Writing nothing removes a record.
	if err := st.WriteHandoff(live); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteHandoff(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("record still there after WriteHandoff(nil): %v", err)
	}
	// Invalid entries are refused at write.
	if err := st.WriteHandoff([]HandoffEntry{{Interface: "eth0/x", VRID: 1, Addresses: live[0].Addresses, Deadline: now}}); err == nil {
		t.Error("WriteHandoff of an invalid interface name succeeded")
	}
}

// A record from another boot, or malformed, is never trusted: no entries, and a malformed one
// is removed and reported.
func TestHandoffRecordUntrusted(t *testing.T) {
	st := openTestState(t)
	path := filepath.Join(st.Dir(), stateHandoffFile)
	future := time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	boot, err := bootID()
	if err != nil {
		t.Fatal(err)
	}
	entry := func(ifname, addr string, v6 bool) string {
		b, _ := json.Marshal(map[string]any{"Interface": ifname, "VRID": 7, "IPv6": v6, "Addresses": []string{addr}, "Deadline": future})
		return string(b)
	}
	for _, c := range []struct {
		name, content string
		wantErr       string
	}{
		{"another boot", `{"bootID":"00000000-0000-0000-0000-000000000000","entries":[` + entry("eth0", "198.18.0.10/32", false) + `]}`, ""},
		{"not json", "eth0 198.18.0.10/32\n", "not a handoff record"},
		{"bad interface", `{"bootID":"` + boot + `","entries":[` + entry("../x", "198.18.0.10/32", false) + `]}`, "invalid interface name"},
		{"wrong family", `{"bootID":"` + boot + `","entries":[` + entry("eth0", "2001:db8::1/128", false) + `]}`, "invalid address"},
		{"unknown field", `{"bootID":"` + boot + `","entries":[],"x":1}`, "not a handoff record"},
		{"trailing", `{"bootID":"` + boot + `","entries":[]} {}`, "data after it"},
		{"too many", `{"bootID":"` + boot + `","entries":[` + strings.Repeat(entry("eth0", "198.18.0.10/32", false)+",", maxHandoffEntries) +
			entry("eth0", "198.18.0.10/32", false) + `]}`, "entries, more than"},
	} {
		if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := st.TakeHandoff()
		if len(got) != 0 {
			t.Errorf("%s: entries %v, want none", c.name, got)
		}
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want no error", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.wantErr)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s: record not removed: %v", c.name, err)
		}
	}
	// The same entry under this boot is trusted.
	if err := os.WriteFile(path, []byte(`{"bootID":"`+boot+`","entries":[`+entry("eth0", "198.18.0.10/32", false)+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := st.TakeHandoff(); err != nil || len(got) != 1 {
		t.Errorf("valid record: %v, %v; want its entry", got, err)
	}
}

// RemoveStale leaves alone the addresses an unexpired handoff entry lists on their interface,
// whether the record was taken already or not, keeps them in the record of bound addresses,
// and removes the rest: the same address on another interface, and those of an expired entry.
func TestRemoveStaleKeepsHandedOver(t *testing.T) {
	for _, taken := range []bool{false, true} {
		t.Run(map[bool]string{false: "record not taken", true: "record taken"}[taken], func(t *testing.T) {
			n := newTestNS(t)
			n.addLink(t, "d0")
			n.addLink(t, "d1")
			pfx := netip.MustParsePrefix
			dir := filepath.Join(t.TempDir(), "state")
			st, err := OpenState(dir)
			if err != nil {
				t.Fatal(err)
			}
			var old *Host
			n.run(t, func() { old = NewHost(nil, WithState(st)) })
			handed := []netip.Prefix{pfx("198.18.2.100/32"), pfx("2001:db8:2::100/128")}
			elsewhere := pfx("198.18.2.101/32")
			bind := func(ifname string, ps ...netip.Prefix) {
				l, err := old.Link(ifname)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Bind(t.Context(), ps); err != nil {
					t.Fatal(err)
				}
			}
			bind("d0", handed...)
			bind("d1", elsewhere)
			expiredAddr := pfx("198.18.2.102/32")
			bind("d0", expiredAddr)
			now := time.Now()
			if err := st.WriteHandoff([]HandoffEntry{
				{Interface: "d0", VRID: 1, Addresses: handed[:1], Deadline: now.Add(time.Minute)},
				{Interface: "d0", VRID: 1, IPv6: true, Addresses: handed[1:], Deadline: now.Add(time.Minute)},
				// listed on d0, bound on d1: not handed over there
				{Interface: "d0", VRID: 2, Addresses: []netip.Prefix{elsewhere}, Deadline: now.Add(time.Minute)},
				{Interface: "d0", VRID: 3, Addresses: []netip.Prefix{expiredAddr}, Deadline: now.Add(-time.Second)},
			}); err != nil {
				t.Fatal(err)
			}
			_ = old.Close()
			_ = st.Close()

			st2, err := OpenState(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st2.Close()
			if taken {
				if _, err := st2.TakeHandoff(); err != nil {
					t.Fatal(err)
				}
			}
			var removed []netip.Prefix
			n.run(t, func() { removed, err = RemoveStale(t.Context(), st2, true) })
			if err != nil {
				t.Fatal(err)
			}
			sortPrefixes(removed)
			if diff := cmp.Diff([]netip.Prefix{elsewhere, expiredAddr}, removed, netipOpt); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			want := map[netip.Prefix]addrState{handed[0]: {Marked: true}, handed[1]: {Marked: true}}
			if diff := cmp.Diff(want, testAddrs(t, n, "d0"), netipOpt); diff != "" {
				t.Errorf("d0 after RemoveStale (-want +got):\n%s", diff)
			}
			rec, err := readRecord(dir)
			if diff := cmp.Diff([]BoundAddr{{"d0", handed[0]}, {"d0", handed[1]}}, sortBound(rec), netipOpt); err != nil || diff != "" {
				t.Errorf("record after RemoveStale (-want +got):\n%s%v", diff, err)
			}
		})
	}
}
