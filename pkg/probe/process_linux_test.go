package probe

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killBound is what the tests accept between a SIGKILL and the unhealthy result; the interval
// is an hour, so anything below it proves the exit was seen as an event. Typical figures are
// 1-5 ms (one or fall /proc scans); the bound leaves room for a loaded 2-core machine.
const killBound = time.Second

// SIGKILL of the only matching process makes the probe unhealthy at once, whatever fall is;
// the dead process is a zombie (not reaped) when the result arrives.
func TestProcessKillIsAnEvent(t *testing.T) {
	for _, fall := range []int{1, 3} {
		t.Run("fall "+string(rune('0'+fall)), func(t *testing.T) {
			var lat []time.Duration
			for range 5 {
				name := uniqueName()
				cmd := startBinary(t, namedBinary(t, name))
				r, err := New([]Spec{{Name: "p", Kind: KindProcess, Process: name, Interval: time.Hour, Fall: fall}}, Options{}, testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				startRunner(t, r)
				if res := recv(t, r, 5*time.Second); !res.Healthy {
					t.Fatalf("first result %+v, want healthy", res)
				}
				// Let the watcher goroutine block in the poller, as it would in production.
				time.Sleep(20 * time.Millisecond)
				killed := time.Now()
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				res := recv(t, r, 5*time.Second)
				got := time.Since(killed)
				if res.Healthy || !strings.Contains(res.Reason, "no process named") {
					t.Fatalf("result %+v, want unhealthy: no process", res)
				}
				if got > killBound {
					t.Errorf("unhealthy %v after SIGKILL, want within %v", got, killBound)
				}
				if s := procState(cmd.Process.Pid); s != 'Z' {
					t.Errorf("killed process in state %q, want a zombie (Z) that the probe counts as dead", s)
				}
				lat = append(lat, got)
			}
			slices.Sort(lat)
			t.Logf("SIGKILL -> unhealthy result, 5 runs, fall %d: min %v, median %v, max %v", fall, lat[0], lat[2], lat[4])
		})
	}
}

// Like pgrep -x, any process of the name keeps the probe healthy: the exit of one of two
// changes nothing, the exit of the second is seen at once.
func TestProcessTwoInstances(t *testing.T) {
	name := uniqueName()
	bin := namedBinary(t, name)
	a, b := startBinary(t, bin), startBinary(t, bin)
	r, err := New([]Spec{{Name: "p", Kind: KindProcess, Process: name, Interval: time.Hour, Fall: 2}}, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	if res := recv(t, r, 5*time.Second); !res.Healthy || !strings.HasPrefix(res.Reason, "2 process(es)") {
		t.Fatalf("first result %+v, want healthy with 2 processes", res)
	}
	a.Process.Signal(syscall.SIGKILL)
	noResult(t, r, 300*time.Millisecond)
	if h := r.Health(); !h["p"] {
		t.Fatalf("Health() = %v after one of two exited, want healthy", h)
	}
	killed := time.Now()
	b.Process.Signal(syscall.SIGKILL)
	if res := recv(t, r, 5*time.Second); res.Healthy {
		t.Fatalf("result %+v, want unhealthy", res)
	}
	if d := time.Since(killed); d > killBound {
		t.Errorf("unhealthy %v after the second SIGKILL, want within %v", d, killBound)
	}
}

// The scan of every interval finds processes that start later, and watches them.
func TestProcessRescanFindsNewProcess(t *testing.T) {
	name := uniqueName()
	bin := namedBinary(t, name)
	r, err := New([]Spec{{Name: "p", Kind: KindProcess, Process: name, Interval: 100 * time.Millisecond, Rise: 2}}, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	if res := recv(t, r, 5*time.Second); res.Healthy || res.Reason != `no process named "`+name+`"` {
		t.Fatalf("first result %+v, want unhealthy: no process", res)
	}
	cmd := startBinary(t, bin)
	if res := recv(t, r, 5*time.Second); !res.Healthy {
		t.Fatalf("result %+v, want healthy once the process runs", res)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if res := recv(t, r, 5*time.Second); res.Healthy {
		t.Fatalf("result %+v, want unhealthy", res)
	}
}

// A zombie (exited, not reaped) is dead for a scan too, as for pgrep's users.
func TestProcessZombieIsDead(t *testing.T) {
	name := uniqueName()
	cmd := startBinary(t, namedBinary(t, name))
	c := newProcessChecker(name, "", testLogger(t))
	t.Cleanup(c.close)
	if ok, reason := c.check(t.Context()); !ok {
		t.Fatalf("check() = false, %q with the process running", reason)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	waitState(t, cmd.Process.Pid, "Z")
	if ok, reason := c.check(t.Context()); ok {
		t.Fatalf("check() = true, %q with the process a zombie", reason)
	}
}

// The kernel keeps 15 bytes of a program's name; the probe matches what it keeps, as pgrep -x.
func TestProcessNameTruncated(t *testing.T) {
	long := uniqueName() + "-with-a-long-name"
	startBinary(t, namedBinary(t, long))
	c := newProcessChecker(long[:MaxProcessName], "", testLogger(t))
	t.Cleanup(c.close)
	if ok, reason := c.check(t.Context()); !ok {
		t.Fatalf("check(%q) = false, %q; want the process started as %q", long[:MaxProcessName], reason, long)
	}
}

// Without pidfd_open the probe still works, by the scan of every interval.
func TestProcessPollingFallback(t *testing.T) {
	name := uniqueName()
	cmd := startBinary(t, namedBinary(t, name))
	c := newProcessChecker(name, "", testLogger(t))
	c.noPidfd = true
	spec := Spec{Name: "p", Kind: KindProcess, Process: name, Interval: 100 * time.Millisecond}
	r := newRunner([]*probe{{spec: spec, check: c}}, testLogger(t))
	startRunner(t, r)
	if res := recv(t, r, 5*time.Second); !res.Healthy {
		t.Fatalf("first result %+v, want healthy", res)
	}
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	if res := recv(t, r, 5*time.Second); res.Healthy {
		t.Fatalf("result %+v, want unhealthy", res)
	}
	t.Logf("polling: unhealthy %v after SIGKILL (interval 100ms)", time.Since(killed))
	if len(c.exit) != 0 || len(c.watched) != 0 {
		t.Errorf("polling mode watched %d pids, sent %d events; want none", len(c.watched), len(c.exit))
	}
}

// When Run returns, the pidfds are closed and their goroutines gone.
func TestProcessRunReleasesPidfds(t *testing.T) {
	name := uniqueName()
	bin := namedBinary(t, name)
	startBinary(t, bin)
	startBinary(t, bin)
	before := countPidfds(t)
	c := newProcessChecker(name, "", testLogger(t))
	spec := Spec{Name: "p", Kind: KindProcess, Process: name, Interval: time.Hour}
	r := newRunner([]*probe{{spec: spec, check: c}}, testLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	recv(t, r, 5*time.Second)
	if n := countPidfds(t) - before; n != 2 {
		t.Errorf("%d pidfds open while running, want 2", n)
	}
	cancel()
	<-done
	if n := countPidfds(t) - before; n != 0 {
		t.Errorf("%d pidfds left open after Run returned", n)
	}
	if len(c.watched) != 0 {
		t.Errorf("%d pids still watched", len(c.watched))
	}
}

func countPidfds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}
