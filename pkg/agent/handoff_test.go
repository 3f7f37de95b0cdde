package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// adoptHost is a fakeHost whose bound addresses survive its agent, as the kernel keeps them,
// and that adopts those still bound (hostnet.Host.Adopt).
type adoptHost struct{ *fakeHost }

func (h adoptHost) Adopt(_ string, ps []netip.Prefix) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range ps {
		if h.has(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// runAgent runs a until the returned stop is called; stop waits for Run to return.
func runAgent(t *testing.T, a *Agent) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func transitions(a *Agent) uint64 { return a.Snapshot()[0].Stats.Transitions }

// A MASTER's agent restarted with a handoff: the successor resumes as MASTER with the address
// still bound, although its weight-0 probe has not been checked when it starts, and the backup
// never takes over; HandedOff says what was handed over.
func TestRestartResumesMaster(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "healthy")
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		lan := &hub{}
		h1 := adoptHost{&fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}}
		h2 := &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}
		check := probe.Spec{Name: "haproxy", Kind: probe.KindFile, Path: flag, Interval: time.Second, Rise: 3}
		a1, a2 := New(h1, nil, Options{}), New(h2, nil, Options{})
		if err := a1.Apply("web", config("198.18.0.11", 110), check); err != nil {
			t.Fatal(err)
		}
		if err := a2.Apply("web", config("198.18.0.12", 100)); err != nil {
			t.Fatal(err)
		}
		stop1 := runAgent(t, a1)
		runAgent(t, a2)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if s1, s2 := state(t, a1, "web"), state(t, a2, "web"); s1 != vrrp.Master || s2 != vrrp.Backup {
			t.Fatalf("before the restart: %v %v, want Master Backup", s1, s2)
		}
		backupTransitions := transitions(a2)

		a1.HandoffOnStop(8 * time.Second)
		stopped := time.Now()
		stop1()
		entries := a1.HandedOff()
		if len(entries) != 1 || entries[0].Interface != "eth0" || entries[0].VRID != 51 || entries[0].IPv6 ||
			!samePrefixes(entries[0].Addresses, []netip.Prefix{vip}) {
			t.Fatalf("HandedOff = %+v, want the one instance", entries)
		}
		if d := entries[0].Deadline.Sub(stopped); d < 6*time.Second || d > 8*time.Second {
			t.Errorf("deadline %s after the stop, want 3/4 of the bound to the bound", d)
		}
		if !h1.has(vip) {
			t.Fatal("the handoff removed the address")
		}

		// The successor, a second later.
		time.Sleep(time.Second)
		a3 := New(h1, nil, Options{})
		var settled atomic.Int32
		a3.Resume(entries, func() { settled.Add(1) })
		if err := a3.Apply("web", config("198.18.0.11", 110), check); err != nil {
			t.Fatal(err)
		}
		// Until the instance has resumed, the record stays for a next start.
		if settled.Load() != 0 {
			t.Fatal("the handoff settled before the instance started")
		}
		runAgent(t, a3)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		st, _ := a3.StatusOf("web")
		if st.State != vrrp.Master || st.Reason != vrrp.ReasonResumed {
			t.Fatalf("successor %v (%s, %s), want Master Resumed", st.State, st.Reason, st.Adjustment)
		}
		if n := settled.Load(); n != 1 {
			t.Errorf("the handoff settled %d times once the instance resumed, want 1", n)
		}
		// Past the probe's rise and the backup's longest wait: nothing moved.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if s3, s2 := state(t, a3, "web"), state(t, a2, "web"); s3 != vrrp.Master || s2 != vrrp.Backup {
			t.Fatalf("after the resume: %v %v, want Master Backup", s3, s2)
		}
		if n := transitions(a2); n != backupTransitions {
			t.Errorf("the backup changed state %d times during the restart, want 0", n-backupTransitions)
		}
		if !h1.has(vip) || h2.has(vip) {
			t.Errorf("VIP on h1=%v h2=%v, want only h1", h1.has(vip), h2.has(vip))
		}
	})
}

// A successor whose probe does not decide does not keep the VIP past the handoff's deadline:
// the probe counts as healthy only until then. Real time: the check hangs on an HTTP server.
func TestResumedProbesBoundedByDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	h1 := adoptHost{&fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{vip: true}}}
	hang := probe.Spec{Name: "slow", Kind: probe.KindHTTP, URL: srv.URL, Interval: time.Minute}
	a := New(h1, nil, Options{})
	deadline := time.Now().Add(1500 * time.Millisecond)
	a.Resume([]HandoffEntry{{Interface: "eth0", VRID: 51, Addresses: []netip.Prefix{vip}, Deadline: deadline}}, nil)
	if err := a.Apply("web", config("198.18.0.11", 110), hang); err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	time.Sleep(500 * time.Millisecond)
	if st, _ := a.StatusOf("web"); st.State != vrrp.Master || st.Reason != vrrp.ReasonResumed {
		t.Fatalf("before the deadline: %v (%s, %s), want Master Resumed", st.State, st.Reason, st.Adjustment)
	}
	for time.Now().Before(deadline.Add(time.Second)) {
		if st, _ := a.StatusOf("web"); st.State == vrrp.Fault {
			if time.Now().Before(deadline) {
				t.Fatalf("Fault %s before the deadline", time.Until(deadline))
			}
			if h1.has(vip) {
				t.Error("in Fault with the address still bound")
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, _ := a.StatusOf("web")
	t.Fatalf("a second after the deadline: %v (%s), want Fault (probe not checked yet)", st.State, st.Adjustment)
}

// Entries no instance resumes lose their addresses once the instances are started: one whose
// addresses changed, one past its deadline, and one for no instance at all. The instance of
// the changed one starts as usual.
func TestUnmatchedHandoffRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pfx := netip.MustParsePrefix
		old, gone, other := pfx("198.18.0.99/24"), pfx("198.18.0.98/24"), pfx("198.18.0.97/24")
		h := adoptHost{&fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{old: true, gone: true, other: true}}}
		a := New(h, nil, Options{})
		now := time.Now()
		var settled atomic.Int32
		a.Resume([]HandoffEntry{
			{Interface: "eth0", VRID: 51, Addresses: []netip.Prefix{old}, Deadline: now.Add(5 * time.Second)},
			{Interface: "eth0", VRID: 52, Addresses: []netip.Prefix{gone}, Deadline: now.Add(-time.Second)},
			{Interface: "eth1", VRID: 53, Addresses: []netip.Prefix{other}, Deadline: now.Add(5 * time.Second)},
		}, func() { settled.Add(1) })
		if err := a.Apply("web", config("198.18.0.11", 110)); err != nil {
			t.Fatal(err)
		}
		late := config("198.18.0.11", 110)
		late.VRID, late.Addresses = 52, []netip.Prefix{pfx("198.18.0.120/24")}
		if err := a.Apply("late", late); err != nil {
			t.Fatal(err)
		}
		runAgent(t, a)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		for _, p := range []netip.Prefix{old, gone, other} {
			if h.has(p) {
				t.Errorf("%s still bound", p)
			}
		}
		if st, _ := a.StatusOf("web"); st.State != vrrp.Backup {
			t.Errorf("web: %v (%s), want Backup: not resumed", st.State, st.Reason)
		}
		if n := settled.Load(); n != 1 {
			t.Errorf("the handoff settled %d times once every entry was removed, want 1", n)
		}
	})
}

// Resume with nothing handed over settles at once (a record of expired entries goes).
func TestResumeNothingSettles(t *testing.T) {
	a := New(adoptHost{&fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{}}}, nil, Options{})
	var settled atomic.Int32
	a.Resume(nil, func() { settled.Add(1) })
	if n := settled.Load(); n != 1 {
		t.Errorf("settled %d times, want 1", n)
	}
}

// A successor restarted in turn before every entry it was handed has settled (Kubernetes: one
// VirtualIP resumed, another not read yet) hands on the unsettled entries with their own
// deadlines beside its own handoff: its record replaces its predecessor's, and the next start
// would otherwise remove their addresses as a killed agent's before the backups take over.
func TestRestartHandsOnUnsettledEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pfx := netip.MustParsePrefix
		vip2, vip3 := pfx("198.18.0.102/24"), pfx("198.18.0.103/24")
		h := adoptHost{&fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{vip: true, vip2: true, vip3: true}}}
		a := New(h, nil, Options{})
		now := time.Now()
		waiting := HandoffEntry{Interface: "eth0", VRID: 52, Addresses: []netip.Prefix{vip2}, Deadline: now.Add(8 * time.Second)}
		expired := HandoffEntry{Interface: "eth0", VRID: 53, Addresses: []netip.Prefix{vip3}, Deadline: now.Add(50 * time.Millisecond)}
		a.Resume([]HandoffEntry{
			{Interface: "eth0", VRID: 51, Addresses: []netip.Prefix{vip}, Deadline: now.Add(8 * time.Second)},
			waiting, expired,
		}, nil)
		stop := runAgent(t, a) // no instance yet: they come as the VirtualIPs are read
		synctest.Wait()
		if err := a.Apply("web", config("198.18.0.11", 110)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if st, _ := a.StatusOf("web"); st.State != vrrp.Master || st.Reason != vrrp.ReasonResumed {
			t.Fatalf("web %v (%s), want Master Resumed", st.State, st.Reason)
		}
		a.HandoffOnStop(8 * time.Second)
		stop()
		got := map[uint8]HandoffEntry{}
		for _, e := range a.HandedOff() {
			got[e.VRID] = e
		}
		if _, ok := got[51]; !ok || len(got) != 2 {
			t.Fatalf("HandedOff = %+v, want VRID 51 (its own) and 52 (not settled)", a.HandedOff())
		}
		if e := got[52]; e.Interface != waiting.Interface || !e.Deadline.Equal(waiting.Deadline) || !samePrefixes(e.Addresses, waiting.Addresses) {
			t.Errorf("entry 52 = %+v, want %+v as it was handed over", e, waiting)
		}
		if !h.has(vip2) {
			t.Error("the unsettled entry's address was removed")
		}
	})
}
