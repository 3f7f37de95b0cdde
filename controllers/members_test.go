package controllers

import (
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// behind spares a write while the cache has not caught up with this node's last one (the watch
// event that brings it compares again): a member applied and not in the cache yet, or in an
// older version; a member deleted and still in the cache. A member deleted since by someone
// else (the member watch saw it go) is written again, and so is one the cache has not shown
// cacheLag after the write: a watch that lost the events (and relisted) sends no event of a
// member it never had, and a resync must repair it.
func TestStatusBehind(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	entry := v1alpha1.NodeStatus{Name: "lb1", State: "Master", Priority: 110}
	other := v1alpha1.NodeStatus{Name: "lb1", State: "Backup", Priority: 100}
	cached := func(rv string) *v1alpha1.VirtualIPMember {
		m := testMember(testVIP("web", nil), entry)
		m.ResourceVersion = rv
		return m
	}
	for _, tt := range []struct {
		name   string
		w      written
		cached *v1alpha1.VirtualIPMember // nil: none
		gone   string                    // the resourceVersion the member watch saw it deleted with
		want   entryWant
		behind bool
	}{
		{name: "applied, not in the cache yet", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			want: entryWant{entry, true}, behind: true},
		{name: "applied, an older version in the cache", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			cached: cached("90"), want: entryWant{entry, true}, behind: true},
		{name: "applied, then deleted by another", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			gone: "150", want: entryWant{entry, true}},
		{name: "applied after an older deletion", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			gone: "90", want: entryWant{entry, true}, behind: true},
		{name: "applied, something else wanted now", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			want: entryWant{other, true}},
		{name: "deleted, still in the cache", w: written{ok: false, resourceVersion: "100", at: now},
			cached: cached("100"), want: entryWant{ok: false}, behind: true},
		{name: "deleted, then created again by another", w: written{ok: false, resourceVersion: "100", at: now},
			cached: cached("120"), want: entryWant{ok: false}},
		{name: "applied, a resourceVersion that does not compare", w: written{entry: entry, ok: true, resourceVersion: "100", at: now},
			cached: cached("x"), want: entryWant{entry, true}},

		// The cache never showed the write: written again.
		{name: "applied, not in the cache cacheLag later", w: written{entry: entry, ok: true, resourceVersion: "100", at: now.Add(-cacheLag)},
			want: entryWant{entry, true}},
		{name: "applied, an older version in the cache cacheLag later", w: written{entry: entry, ok: true, resourceVersion: "100", at: now.Add(-cacheLag)},
			cached: cached("90"), want: entryWant{entry, true}},
		{name: "deleted, still in the cache cacheLag later", w: written{ok: false, resourceVersion: "100", at: now.Add(-cacheLag)},
			cached: cached("100"), want: entryWant{ok: false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &StatusReconciler{NodeName: "lb1", written: map[string]written{"web": tt.w}}
			if tt.gone != "" {
				r.gone = map[string]string{"web": tt.gone}
			}
			member, had := &v1alpha1.VirtualIPMember{}, tt.cached != nil
			if had {
				member = tt.cached
			}
			if got := r.behind(member, had, "web", tt.want.entry, tt.want.ok, now); got != tt.behind {
				t.Errorf("behind = %v, want %v", got, tt.behind)
			}
		})
	}
}

// entryWant is an entry this node wants (ok false: none).
type entryWant struct {
	entry v1alpha1.NodeStatus
	ok    bool
}
