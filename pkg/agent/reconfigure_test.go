package agent

import (
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// An edit that raises a backup's priority and adds a probe whose weight takes it back below
// the master is applied as one step (docs/design.md §3.4, §3.5): the backup never outbids the
// master with the new priority and the old probes' word, so it does not preempt only to hand
// the VIP back.
func TestEditOfPriorityAndProbesIsOneStep(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	synctest.Test(t, func(t *testing.T) {
		p := startPair(t, 120, 100)
		defer p.stop()
		a1, a2 := p.a1, p.a2
		time.Sleep(time.Second)
		synctest.Wait()
		if s1, s2 := state(t, a1, "web"), state(t, a2, "web"); s1 != vrrp.Master || s2 != vrrp.Backup {
			t.Fatalf("states %v %v, want Master Backup", s1, s2)
		}

		// 150 - 60 = 90 while the probe fails, as it does: below the master's 120.
		check := probe.Spec{Name: "flag", Kind: probe.KindFile, Path: missing, Interval: 100 * time.Millisecond, Weight: -60}
		if err := a2.Apply("web", config("198.18.0.12", 150), check); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := a2.TransitionCounts()[TransitionKey{"web", vrrp.Master, vrrp.ReasonPreempting}]; n != 0 {
			t.Errorf("the backup preempted %d times during the edit", n)
		}
		if st := a2.Snapshot()[0]; st.State != vrrp.Backup || st.Priority != 90 {
			t.Errorf("after the edit: %v at %d, want Backup at 90", st.State, st.Priority)
		}
	})
}
