//go:build linux

package hostnet

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// The host lock is an flock in a directory private to the agent's user: a second agent is
// refused while the first holds it, and gets it once the first has gone.
func TestStateLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if _, err := OpenState(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenState: %v, want ErrLocked", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := OpenState(dir)
	if err != nil {
		t.Fatalf("OpenState after Close: %v", err)
	}
	_ = b.Close()
}

// A directory other users can write to, or that is not the agent's, would let them take or
// squat the lock, or forge the record: refused, with what to change.
func TestStateDirRefused(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenState(open); err == nil || !strings.Contains(err.Error(), "0700") {
		t.Errorf("world-writable directory: %v, want a refusal saying 0700", err)
	}
	if _, err := OpenState("relative/dir"); err == nil {
		t.Error("relative directory accepted")
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(t.TempDir(), "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65532, 65532); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenState(other); err == nil || !strings.Contains(err.Error(), "uid 65532") {
			t.Errorf("directory of another user: %v, want a refusal naming its owner", err)
		}
	}
	// A record that was tampered with is an error, not a silent partial read.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.Mkdir(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, stateBoundFile), []byte("eth0 198.18.0.1/24\neth0/x 198.18.0.2/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenState(bad); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("tampered record: %v, want an error naming line 2", err)
	}
}

// The fallback for kernels without IFA_PROTO (before 6.1: RHEL 9, Ubuntu 22.04). An agent bound
// VIPs without the mark and was killed; the restarted agent finds them through the record in
// its state directory and removes them, and only them. Without the record (the mark alone,
// today's only path) they would stay on the link, duplicated on the LAN.
func TestRemoveStaleFromRecord(t *testing.T) {
	privtest.Require(t)
	n := newTestNS(t)
	n.addLink(t, "d0")
	n.addLink(t, "d1")
	pfx := netip.MustParsePrefix
	node := pfx("198.18.2.1/24")
	n.addAddr(t, "d0", node, true)
	n.addAddr(t, "d1", pfx("198.18.2.100/24"), true) // same address, another link, not ours
	vips := []netip.Prefix{pfx("198.18.2.100/24"), pfx("2001:db8:2::100/64")}
	dir := filepath.Join(t.TempDir(), "state")

	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dead *Host
	n.run(t, func() { dead = NewHost(nil, WithState(st), WithoutAddressMark()) })
	t.Cleanup(func() { _ = dead.Close() })
	l, err := dead.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	// The node's own address is on the link already: bound "as found", never recorded.
	if err := l.Bind(t.Context(), append(slices.Clone(vips), node)); err != nil {
		t.Fatal(err)
	}
	for p, s := range testAddrs(t, n, "d0") {
		if s.Marked {
			t.Fatalf("%s carries the mark although the switch is off", p)
		}
	}
	_ = st.Close() // killed: no Unbind

	// The mark alone finds nothing: the gap on old kernels.
	var got []netip.Prefix
	n.run(t, func() { got, err = RemoveStale(t.Context(), nil, true) })
	if err != nil || len(got) != 0 {
		t.Fatalf("RemoveStale by mark: %v, %v; want nothing found", got, err)
	}

	st2, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	wantStale := []BoundAddr{{"d0", vips[0]}, {"d0", vips[1]}}
	if diff := cmp.Diff(wantStale, sortBound(st2.Stale()), netipOpt); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	n.run(t, func() { got, err = RemoveStale(t.Context(), st2, false) })
	if err != nil {
		t.Fatal(err)
	}
	sortPrefixes(got)
	if diff := cmp.Diff(vips, got, netipOpt); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[netip.Prefix]addrState{node: {}}, testAddrs(t, n, "d0"), netipOpt); diff != "" {
		t.Errorf("d0 after RemoveStale (-want +got):\n%s", diff)
	}
	if _, ok := testAddrs(t, n, "d1")[pfx("198.18.2.100/24")]; !ok {
		t.Error("the same address on another link, never recorded there, was removed")
	}
	if rec, err := readRecord(dir); err != nil || len(rec) != 0 {
		t.Errorf("record after the clean-up: %v, %v; want empty", rec, err)
	}

	// A clean Unbind takes the address out of the record as well.
	var live *Host
	n.run(t, func() { live = NewHost(nil, WithState(st2), WithoutAddressMark()) })
	t.Cleanup(func() { _ = live.Close() })
	l, err = live.Link("d0")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(t.Context(), vips); err != nil {
		t.Fatal(err)
	}
	if err := l.Unbind(t.Context(), vips[:1]); err != nil {
		t.Fatal(err)
	}
	rec, err := readRecord(dir)
	if diff := cmp.Diff([]BoundAddr{{"d0", vips[1]}}, rec, netipOpt); err != nil || diff != "" {
		t.Errorf("record (-want +got):\n%s%v", diff, err)
	}
}

func sortBound(b []BoundAddr) []BoundAddr {
	slices.SortFunc(b, func(x, y BoundAddr) int {
		if c := strings.Compare(x.Interface, y.Interface); c != 0 {
			return c
		}
		return x.Prefix.Addr().Compare(y.Prefix.Addr())
	})
	return b
}

// The chart's init container makes the hostPath directory the agent's, whatever state it is in:
// missing, root's with mode 0755 (the kubelet's DirectoryOrCreate), or the agent's already.
// OpenState, run as the agent's user, then accepts it.
func TestPrepareStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		privtest.Require(t)
	}
	base := t.TempDir()
	dir := filepath.Join(base, "run", "kube-vrrp")
	for i, setup := range []func(){
		func() {},
		func() { _ = os.Chmod(dir, 0o755); _ = os.Chown(dir, 0, 0) },
		func() {},
	} {
		setup()
		if err := PrepareStateDir(dir, 65532, 65532); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 65532 || st.Gid != 65532 || fi.Mode().Perm() != 0o700 {
			t.Errorf("#%d: owner %d:%d mode %v, want 65532:65532 0700", i, st.Uid, st.Gid, fi.Mode().Perm())
		}
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := PrepareStateDir(link, 65532, 65532); err == nil {
		t.Error("a symbolic link was accepted")
	}
	if err := PrepareStateDir("run/kube-vrrp", 65532, 65532); err == nil {
		t.Error("a relative path was accepted")
	}
}

// A record may list an address that was never added (a kill between the record and the add),
// which may be someone else's. On a kernel that keeps marks, with marks on, only the mark counts;
// and an address another program marked as its own is never removed for the record's sake.
func TestRemoveStaleRecordNeverTakesOthers(t *testing.T) {
	privtest.Require(t)
	n := newTestNS(t)
	n.addLink(t, "d0")
	pfx := netip.MustParsePrefix
	node, vip := pfx("198.18.4.1/24"), pfx("198.18.4.100/24")
	n.addAddr(t, "d0", node, true) // the node's own, unmarked
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// As if killed between recording both and adding the VIP only.
	if err := os.WriteFile(filepath.Join(dir, stateBoundFile), []byte("d0 "+node.String()+"\nd0 "+vip.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.run(t, func() {
		rt, err := newRTNL()
		if err != nil {
			t.Fatal(err)
		}
		defer rt.close()
		idx, err := linkIndex("d0")
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.add(idx, vip, true, 0); err != nil {
			t.Fatal(err)
		}
	})
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []netip.Prefix
	n.run(t, func() { got, err = RemoveStale(t.Context(), st, true) })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Prefix{vip}, got, netipOpt); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if _, ok := testAddrs(t, n, "d0")[node]; !ok {
		t.Error("the node's own address, listed in the record, was removed")
	}
}
