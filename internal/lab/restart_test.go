package lab_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

func TestHolderRecord(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ch := func(ms int, h ...string) lab.HolderChange { return lab.HolderChange{At: at(ms), Holders: h} }
	for _, c := range []struct {
		name         string
		rec          lab.HolderRecord
		moves        int
		split        time.Duration
		splits       int
		first2, gone time.Time // FirstHeld("n2"), LastHeld("n1")
		held2        time.Duration
		timeline     string
	}{
		{name: "nothing moves", rec: lab.HolderRecord{Changes: []lab.HolderChange{ch(0, "n1")}, End: at(1000)},
			timeline: "n1 +0s"},
		{name: "handoff window ends", rec: lab.HolderRecord{Changes: []lab.HolderChange{ch(0, "n1"), ch(7200, "n1", "n2"), ch(8100, "n2")}, End: at(9000)},
			moves: 1, split: 900 * time.Millisecond, splits: 1, first2: at(7200), gone: at(8100), held2: 1800 * time.Millisecond,
			timeline: "n1 +0s; n1,n2 +7.2s; n2 +8.1s"},
		{name: "restart that moves twice", rec: lab.HolderRecord{Changes: []lab.HolderChange{ch(0, "n1"), ch(10), ch(70, "n2"), ch(1400, "n1")}, End: at(2000)},
			moves: 2, first2: at(70), held2: 1330 * time.Millisecond, timeline: "n1 +0s; none +10ms; n2 +70ms; n1 +1.4s"},
		{name: "split still going", rec: lab.HolderRecord{Changes: []lab.HolderChange{ch(0, "n1"), ch(500, "n1", "n2")}, End: at(800)},
			split: 300 * time.Millisecond, splits: 1, first2: at(500), held2: 300 * time.Millisecond, timeline: "n1 +0s; n1,n2 +500ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.rec
			if got := r.Moves(); got != c.moves {
				t.Errorf("Moves = %d, want %d", got, c.moves)
			}
			if split, n := r.Split(); split != c.split || n != c.splits {
				t.Errorf("Split = %v, %d, want %v, %d", split, n, c.split, c.splits)
			}
			if got := r.FirstHeld("n2"); !got.Equal(c.first2) {
				t.Errorf("FirstHeld(n2) = %v, want %v", got, c.first2)
			}
			if got := r.LastHeld("n1"); !got.Equal(c.gone) {
				t.Errorf("LastHeld(n1) = %v, want %v", got, c.gone)
			}
			if got := r.Held("n2"); got != c.held2 {
				t.Errorf("Held(n2) = %v, want %v", got, c.held2)
			}
			if got := r.Timeline(t0); got != c.timeline {
				t.Errorf("Timeline = %q, want %q", got, c.timeline)
			}
		})
	}
}

// TestWatchHoldersAndLifetime moves an address between two nodes by hand, one copy with a
// lifetime: the watch records the changes, and AddressLifetime reads the lifetime the kernel
// counts down.
func TestWatchHoldersAndLifetime(t *testing.T) {
	privtest.Require(t)
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)
	vip := netip.MustParsePrefix("198.18.0.201/24")
	ip := func(n *lab.Node, args ...string) {
		t.Helper()
		if out, err := n.Run(append([]string{"ip", "address"}, args...)...); err != nil {
			t.Fatalf("%s: ip address %v: %v\n%s", n.Name, args, err, out)
		}
	}
	ip(n1, "add", vip.String(), "dev", lab.Interface)
	w := lab.WatchHolders(l.Nodes(), vip, 10*time.Millisecond)
	step := func() { time.Sleep(100 * time.Millisecond) }
	step()
	if left, forever, err := n1.AddressLifetime(vip); err != nil || !forever {
		t.Errorf("%s: AddressLifetime = %v, %v, %v, want forever", n1.Name, left, forever, err)
	}
	ip(n1, "change", vip.String(), "dev", lab.Interface, "valid_lft", "30", "preferred_lft", "30")
	if left, forever, err := n1.AddressLifetime(vip); err != nil || forever || left < 28*time.Second || left > 30*time.Second {
		t.Errorf("%s: AddressLifetime = %v, %v, %v, want 28-30 s", n1.Name, left, forever, err)
	}
	if _, _, err := n2.AddressLifetime(vip); !errors.Is(err, lab.ErrNoAddress) {
		t.Errorf("%s: AddressLifetime of an address it does not have: %v, want ErrNoAddress", n2.Name, err)
	}
	ip(n2, "add", vip.String(), "dev", lab.Interface)
	step()
	ip(n1, "del", vip.String(), "dev", lab.Interface)
	step()
	r := w.Stop()
	var sets [][]string
	for _, c := range r.Changes {
		sets = append(sets, c.Holders)
	}
	if want := [][]string{{"n1"}, {"n1", "n2"}, {"n2"}}; !slices.EqualFunc(sets, want, slices.Equal) {
		t.Fatalf("holder sets %v, want %v (%s)", sets, want, r.Timeline(r.Changes[0].At))
	}
	if r.Moves() != 1 || r.Checks < 20 {
		t.Errorf("%d moves in %d checks, want 1 in at least 20 (%s)", r.Moves(), r.Checks, r.Timeline(r.Changes[0].At))
	}
	if split, n := r.Split(); n != 1 || split < 50*time.Millisecond {
		t.Errorf("split %v (%d times), want about 100 ms once", split, n)
	}
}
