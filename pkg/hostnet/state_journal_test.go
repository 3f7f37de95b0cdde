//go:build linux

package hostnet

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// kill drops s as a killed agent would: the files stay as they are (no compaction), the lock
// is released.
func kill(t *testing.T, s *State) {
	t.Helper()
	s.mu.Lock()
	if s.journal != nil {
		_ = s.journal.Close()
		s.journal = nil
	}
	s.mu.Unlock()
	if err := s.lock.Close(); err != nil {
		t.Fatal(err)
	}
}

func openStateT(t *testing.T, dir string) *State {
	t.Helper()
	s, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stateDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeStateFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readStateFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// header is the journal header that follows dir's snapshot.
func header(t *testing.T, dir string) string {
	t.Helper()
	id, err := snapshotID(filepath.Join(dir, stateBoundFile))
	if err != nil || id == "" {
		t.Fatalf("snapshot id: %q, %v", id, err)
	}
	return journalHeader(id)
}

func boundSet(bs []BoundAddr) map[BoundAddr]bool {
	m := map[BoundAddr]bool{}
	for _, b := range bs {
		m[b] = true
	}
	return m
}

func testVIP(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)
}

// A change costs one line appended to the journal, whatever the size of the record: the
// snapshot is not rewritten for it. A killed agent's successor replays the journal onto the
// snapshot and finds exactly what was bound and not removed.
func TestStateJournalReplay(t *testing.T) {
	dir := stateDir(t)
	s := openStateT(t, dir)
	live := map[BoundAddr]bool{}
	for i := range 100 {
		p := testVIP(i)
		if err := s.record("d0", []netip.Prefix{p}, true); err != nil {
			t.Fatal(err)
		}
		live[BoundAddr{"d0", p}] = true
	}
	snap := readStateFile(t, dir, stateBoundFile)
	for i := range 50 {
		p := testVIP(2 * i)
		if err := s.record("d0", []netip.Prefix{p}, false); err != nil {
			t.Fatal(err)
		}
		delete(live, BoundAddr{"d0", p})
		if err := s.record("d1", []netip.Prefix{p}, true); err != nil {
			t.Fatal(err)
		}
		live[BoundAddr{"d1", p}] = true
	}
	if got := readStateFile(t, dir, stateBoundFile); got != snap {
		t.Errorf("the snapshot was rewritten for single changes:\n%q\nthen\n%q", snap, got)
	}
	j := readStateFile(t, dir, stateJournalFile)
	if n := strings.Count(j, "\n"); n != 200 {
		t.Errorf("journal has %d lines after 200 changes (the first one compacted), want its header and 199:\n%s", n, j)
	}
	kill(t, s)

	s = openStateT(t, dir)
	defer s.Close()
	if diff := cmp.Diff(live, boundSet(s.Stale()), netipOpt); diff != "" {
		t.Errorf("replayed record (-want +got):\n%s", diff)
	}
}

// A line cut short by a kill (or a full disk) is the journal's last and has no newline: it is
// ignored (a change not yet made, or a removal made already), and the next change is never
// appended to it.
func TestStateJournalTornLine(t *testing.T) {
	dir := stateDir(t)
	a, b, c, d := testVIP(1), testVIP(2), testVIP(3), testVIP(4)
	writeStateFile(t, dir, stateBoundFile, "d0 "+a.String()+"\n")
	writeStateFile(t, dir, stateJournalFile, header(t, dir)+"+ d0 "+b.String()+"\n- d0 "+a.String()+"\n+ d0 "+c.String()[:7])
	s := openStateT(t, dir)
	want := []BoundAddr{{"d0", b}}
	if diff := cmp.Diff(want, s.Stale(), netipOpt); diff != "" {
		t.Fatalf("stale with a torn last line (-want +got):\n%s", diff)
	}
	if err := s.record("d0", []netip.Prefix{d}, true); err != nil {
		t.Fatal(err)
	}
	kill(t, s)
	if j := readStateFile(t, dir, stateJournalFile); strings.Contains(j, c.String()[:7]) {
		t.Errorf("journal still holds the torn line after a change: %q", j)
	}
	s = openStateT(t, dir)
	defer s.Close()
	if diff := cmp.Diff(map[BoundAddr]bool{{"d0", b}: true, {"d0", d}: true}, boundSet(s.Stale()), netipOpt); diff != "" {
		t.Errorf("record after the next change (-want +got):\n%s", diff)
	}

	// A line that does not parse anywhere else was not written by this package.
	bad := stateDir(t)
	writeStateFile(t, bad, stateBoundFile, "")
	writeStateFile(t, bad, stateJournalFile, header(t, bad)+"+ d0 "+b.String()+"\nd0 "+c.String()+"\n+ d0 "+d.String()+"\n")
	if _, err := OpenState(bad); err == nil || !strings.Contains(err.Error(), ":3:") {
		t.Errorf("tampered journal: %v, want an error naming line 3", err)
	}
	writeStateFile(t, bad, stateJournalFile, "+ d0 "+b.String()+"\n")
	if _, err := OpenState(bad); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("journal without its header: %v, want an error naming line 1", err)
	}
}

// The journal is compacted into the snapshot once it grows past twice the live set, so it stays
// in proportion to what is bound, and a record read at any point is the live set.
func TestStateJournalCompaction(t *testing.T) {
	dir := stateDir(t)
	s := openStateT(t, dir)
	defer s.Close()
	live := map[BoundAddr]bool{}
	check := func(step string) {
		t.Helper()
		j := readStateFile(t, dir, stateJournalFile)
		if n := strings.Count(j, "\n"); n > 2*len(live)+journalSlack {
			t.Fatalf("%s: journal of %d lines for %d live addresses", step, n, len(live))
		}
		rec, err := readRecord(dir)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if diff := cmp.Diff(live, boundSet(rec), netipOpt); diff != "" {
			t.Fatalf("%s: record (-want +got):\n%s", step, diff)
		}
	}
	for i := range 1000 {
		if err := s.record("d0", []netip.Prefix{testVIP(i)}, true); err != nil {
			t.Fatal(err)
		}
		live[BoundAddr{"d0", testVIP(i)}] = true
	}
	check("after 1000 binds")
	compacted := 0
	for i := range 1000 {
		before := readStateFile(t, dir, stateBoundFile)
		if err := s.record("d0", []netip.Prefix{testVIP(i)}, false); err != nil {
			t.Fatal(err)
		}
		delete(live, BoundAddr{"d0", testVIP(i)})
		if readStateFile(t, dir, stateBoundFile) != before {
			compacted++
		}
		if i%50 == 0 {
			check(fmt.Sprintf("after %d unbinds", i+1))
		}
	}
	check("after every unbind")
	// Geometric: each compaction halves the live set at least, so there are few.
	if compacted == 0 || compacted > 12 {
		t.Errorf("%d compactions while 1000 addresses were removed one by one, want a few", compacted)
	}
}

// A compaction renames the new snapshot into place and then empties the journal: killed in
// between, the old journal is replayed onto the new snapshot, which gives the same record.
func TestStateJournalKillDuringCompaction(t *testing.T) {
	dir := stateDir(t)
	s := openStateT(t, dir)
	live := map[BoundAddr]bool{}
	for i := range 40 {
		if err := s.record("d0", []netip.Prefix{testVIP(i)}, true); err != nil {
			t.Fatal(err)
		}
		live[BoundAddr{"d0", testVIP(i)}] = true
	}
	var old string
	for i := 0; ; i++ {
		j := readStateFile(t, dir, stateJournalFile)
		if err := s.record("d0", []netip.Prefix{testVIP(i)}, false); err != nil {
			t.Fatal(err)
		}
		delete(live, BoundAddr{"d0", testVIP(i)})
		if strings.Count(readStateFile(t, dir, stateJournalFile), "\n") < strings.Count(j, "\n") {
			old = j // the journal this change compacted
			break
		}
		if i == 39 {
			t.Fatal("no compaction while the live set shrank from 40 to 0")
		}
	}
	kill(t, s)
	writeStateFile(t, dir, stateJournalFile, old) // as if killed before the journal was emptied
	s = openStateT(t, dir)
	defer s.Close()
	if diff := cmp.Diff(live, boundSet(s.Stale()), netipOpt); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

// A record written by a previous version (the snapshot alone) is read as it was; and a State
// closed cleanly leaves its snapshot whole, which is all that version reads.
func TestStateOldFormat(t *testing.T) {
	dir := stateDir(t)
	a, b := netip.MustParsePrefix("198.18.5.1/24"), netip.MustParsePrefix("2001:db8:5::1/64")
	writeStateFile(t, dir, stateBoundFile, "eth0 "+a.String()+"\nbond0.100 "+b.String()+"\n")
	s := openStateT(t, dir)
	want := []BoundAddr{{"eth0", a}, {"bond0.100", b}}
	if diff := cmp.Diff(want, s.Stale(), netipOpt); diff != "" {
		t.Fatalf("previous version's record (-want +got):\n%s", diff)
	}
	for i := range 10 {
		if err := s.record("eth0", []netip.Prefix{testVIP(i)}, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.record("eth0", []netip.Prefix{a}, false); err != nil {
		t.Fatal(err)
	}
	live := maps.Clone(s.bound)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := readBound(filepath.Join(dir, stateBoundFile))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(live, boundSet(snap), netipOpt); diff != "" {
		t.Errorf("snapshot after Close (-want +got):\n%s", diff)
	}
	if j := readStateFile(t, dir, stateJournalFile); j != header(t, dir) {
		t.Errorf("journal after Close: %q, want its header alone", j)
	}
	lines := strings.Split(strings.TrimSpace(readStateFile(t, dir, stateBoundFile)), "\n")
	if !slices.IsSorted(lines) || bytes.Contains([]byte(readStateFile(t, dir, stateBoundFile)), []byte("+")) {
		t.Errorf("snapshot not in the previous version's format: %q", lines)
	}
}

// A journal names its snapshot by device, inode and the time the snapshot was written: one
// left by compactions cut short may name a snapshot whose inode a later one got back, and is
// not replayed onto it. A journal of an earlier version, which names device and inode alone,
// is replayed when they match, as that version did.
func TestStateJournalReusedInode(t *testing.T) {
	a, b := netip.MustParsePrefix("198.18.6.1/32"), netip.MustParsePrefix("198.18.6.2/32")
	for _, tc := range []struct {
		name   string
		header func(id string) string
		want   map[BoundAddr]bool
	}{
		{"inode reused", func(id string) string { return journalHeader(legacyFileID(id) + ":1") },
			map[BoundAddr]bool{{"d0", a}: true}},
		{"earlier version's journal", func(id string) string { return journalHeader(legacyFileID(id)) },
			map[BoundAddr]bool{{"d0", a}: true, {"d0", b}: true}},
		{"this snapshot's journal", journalHeader,
			map[BoundAddr]bool{{"d0", a}: true, {"d0", b}: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := stateDir(t)
			s := openStateT(t, dir)
			if err := s.record("d0", []netip.Prefix{a}, true); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			id, err := snapshotID(filepath.Join(dir, stateBoundFile))
			if err != nil || strings.Count(id, ":") != 2 {
				t.Fatalf("snapshot id %q, %v: want DEVICE:INODE:MTIME", id, err)
			}
			writeStateFile(t, dir, stateJournalFile, tc.header(id)+"+ d0 "+b.String()+"\n")
			s = openStateT(t, dir)
			defer s.Close()
			if diff := cmp.Diff(tc.want, boundSet(s.Stale()), netipOpt); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

// Two snapshots written within one tick of the file system's clock get different ids even if
// the second gets the first one's inode back.
func TestStateSnapshotStamp(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]bool{}
	for i := range 20 {
		id, err := writeNew(filepath.Join(dir, "snap"), []byte(fmt.Sprintf("d0 %s\n", testVIP(i))))
		if err != nil {
			t.Fatal(err)
		}
		stamp := id[strings.LastIndexByte(id, ':')+1:]
		if seen[stamp] {
			t.Fatalf("snapshot %d: stamp %s seen before (ids %v)", i, stamp, seen)
		}
		seen[stamp] = true
	}
}
