package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// helperArg makes the test binary a command the runner runs (see helper): the commands run with
// an empty environment, so the test binary is told by its first argument.
const helperArg = "notify-test-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		os.Exit(helper(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}

// record is one run of the recorder: its arguments after the mode and the file, its
// environment and working directory, its pid and process group.
type record struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	Pid  int      `json:"pid"`
}

// helper is the test binary as a command:
//
//	record FILE ARGS...       appends a record of this run to FILE
//	gate FILE GATE ARGS...    records, then waits (up to a minute) until the file GATE exists
//	hang PIDFILE ARGS...      starts a child that sleeps, writes "PID CHILDPID" to PIDFILE, sleeps
//	sleep                     sleeps for a minute
func helper(mode string, args []string) int {
	rec := func(file string, rest []string) int {
		dir, _ := os.Getwd()
		b, _ := json.Marshal(record{Args: rest, Env: os.Environ(), Dir: dir, Pid: os.Getpid()})
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return 3
		}
		defer f.Close()
		if _, err := f.Write(append(b, '\n')); err != nil {
			return 3
		}
		return 0
	}
	switch mode {
	case "record":
		return rec(args[0], args[1:])
	case "gate":
		if rc := rec(args[0], args[2:]); rc != 0 {
			return rc
		}
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(args[1]); err == nil {
				return 0
			}
		}
		return 4
	case "hang":
		child := exec.Command(os.Args[0], helperArg, "sleep")
		if err := child.Start(); err != nil {
			return 5
		}
		if err := os.WriteFile(args[0], fmt.Appendf(nil, "%d %d", os.Getpid(), child.Process.Pid), 0o644); err != nil {
			return 5
		}
		time.Sleep(time.Minute)
		return 0
	case "sleep":
		time.Sleep(time.Minute)
		return 0
	}
	return 2
}

// self is the test binary's absolute path.
func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// recorder returns the argv of a command that records its runs in out, tagged with tag.
func recorder(t *testing.T, out, tag string) []string {
	return []string{self(t), helperArg, "record", out, tag}
}

func readRecords(t *testing.T, path string) []record {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}

// argsOf returns the arguments of each record.
func argsOf(rs []record) [][]string {
	out := make([][]string, len(rs))
	for i, r := range rs {
		out[i] = r.Args
	}
	return out
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func closeWithin(t *testing.T, r *Runner, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r.Close(ctx)
}

func transition(name string, from, to vrrp.State, prio uint8, reason string) vrrp.Event {
	return vrrp.Event{Kind: vrrp.EventTransition, Instance: name, From: from, State: to, Priority: prio, Reason: reason, At: time.Now()}
}

func needUnix(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the commands of these tests are the test binary on a Unix system")
	}
}

// Each change runs the state's own command, then all, one change after the other in order,
// with keepalived's arguments and the reason appended, in an empty environment, in /.
func TestRunnerOrderAndArguments(t *testing.T) {
	needUnix(t)
	out := filepath.Join(t.TempDir(), "runs")
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{
		Master: recorder(t, out, "master"), Backup: recorder(t, out, "backup"), Fault: recorder(t, out, "fault"),
		Stop: recorder(t, out, "stop"), All: recorder(t, out, "all"),
	})
	// Only all: every change runs it alone.
	r.Set("db", &v1alpha1.NotifySpec{All: recorder(t, out+".db", "all")})
	for _, e := range []vrrp.Event{
		{Kind: vrrp.EventApplied, Instance: "web", Reason: agent.AppliedNew, Priority: 110},
		transition("web", vrrp.Initialize, vrrp.Backup, 110, vrrp.ReasonStarted),
		{Kind: vrrp.EventPriority, Instance: "web", State: vrrp.Backup, Priority: 90}, // no change of state: nothing runs
		transition("web", vrrp.Backup, vrrp.Master, 110, vrrp.ReasonMasterDown),
		transition("db", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted),
		transition("web", vrrp.Master, vrrp.Fault, 110, vrrp.ReasonProbeFailed),
		transition("web", vrrp.Fault, vrrp.Backup, 110, vrrp.ReasonProbeRecovered),
		transition("web", vrrp.Backup, vrrp.Initialize, 110, vrrp.ReasonShutdown),
		{Kind: vrrp.EventRemoved, Instance: "web"}, // its stop was reported: nothing more
		// An instance of no VirtualIP Set runs nothing.
		transition("other", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted),
	} {
		r.Handle(e)
	}
	closeWithin(t, r, time.Minute)

	want := [][]string{
		{"backup", "INSTANCE", "web", "BACKUP", "110", "Started"},
		{"all", "INSTANCE", "web", "BACKUP", "110", "Started"},
		{"master", "INSTANCE", "web", "MASTER", "110", "MasterDownTimer"},
		{"all", "INSTANCE", "web", "MASTER", "110", "MasterDownTimer"},
		{"fault", "INSTANCE", "web", "FAULT", "110", "ProbeFailed"},
		{"all", "INSTANCE", "web", "FAULT", "110", "ProbeFailed"},
		{"backup", "INSTANCE", "web", "BACKUP", "110", "ProbeRecovered"},
		{"all", "INSTANCE", "web", "BACKUP", "110", "ProbeRecovered"},
		{"stop", "INSTANCE", "web", "STOP", "110", "Shutdown"},
		{"all", "INSTANCE", "web", "STOP", "110", "Shutdown"},
	}
	runs := readRecords(t, out)
	if diff := cmp.Diff(want, argsOf(runs)); diff != "" {
		t.Errorf("the runs of web's commands (-want +got):\n%s", diff)
	}
	for _, rec := range runs {
		if len(rec.Env) != 0 {
			t.Errorf("a command ran with the environment %q, want none", rec.Env)
		}
		if rec.Dir != "/" {
			t.Errorf("a command ran in %q, want /", rec.Dir)
		}
	}
	if diff := cmp.Diff([][]string{{"all", "INSTANCE", "db", "BACKUP", "100", "Started"}}, argsOf(readRecords(t, out+".db"))); diff != "" {
		t.Errorf("the runs of db's all (-want +got):\n%s", diff)
	}
}

// An instance that could not start is in FAULT (StartFailed), once for a streak of failed
// starts (the reconciler removes it and retries, every few seconds while it fails); its
// removal runs no STOP, since it never ran. Once it starts, its changes run as usual.
func TestRunnerStartFailedAndRemoved(t *testing.T) {
	needUnix(t)
	out := filepath.Join(t.TempDir(), "runs")
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{Fault: recorder(t, out, "fault"), Stop: recorder(t, out, "stop"), Backup: recorder(t, out, "backup")})
	for range 3 { // three failed starts, each removed by the reconciler's refusal
		r.Handle(vrrp.Event{Kind: vrrp.EventApplied, Instance: "web", Reason: agent.ReasonStartFailed, State: vrrp.Fault, Priority: 100,
			Message: "no such interface"})
		r.Handle(vrrp.Event{Kind: vrrp.EventRemoved, Instance: "web"})
	}
	r.Handle(vrrp.Event{Kind: vrrp.EventTransition, Instance: "web", State: vrrp.Backup, Priority: 100, Reason: vrrp.ReasonStarted})
	r.Handle(vrrp.Event{Kind: vrrp.EventApplied, Instance: "web", Reason: agent.ReasonStartFailed, State: vrrp.Fault, Priority: 100})
	r.Forget("web") // the VirtualIP is deleted: the runner forgets it
	r.Handle(vrrp.Event{Kind: vrrp.EventRemoved, Instance: "web"})
	r.Handle(vrrp.Event{Kind: vrrp.EventRemoved, Instance: "web"}) // nothing more
	closeWithin(t, r, time.Minute)
	want := [][]string{
		{"fault", "INSTANCE", "web", "FAULT", "100", "StartFailed"},
		{"backup", "INSTANCE", "web", "BACKUP", "100", "Started"},
		{"fault", "INSTANCE", "web", "FAULT", "100", "StartFailed"},
	}
	if diff := cmp.Diff(want, argsOf(readRecords(t, out))); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cmds) != 0 {
		t.Errorf("the runner still holds %d command sets of a forgotten VirtualIP", len(r.cmds))
	}
}

// A VirtualIP forgotten while its start fails leaves nothing behind.
func TestRunnerForgetStartFailed(t *testing.T) {
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{Fault: []string{"/nonexistent/fault"}})
	r.Forget("web")
	r.Handle(vrrp.Event{Kind: vrrp.EventApplied, Instance: "web", Reason: agent.ReasonStartFailed, State: vrrp.Fault})
	r.Handle(vrrp.Event{Kind: vrrp.EventRemoved, Instance: "web"})
	r.Forget("web")
	r.mu.Lock()
	n := len(r.insts)
	r.mu.Unlock()
	if n != 0 {
		t.Errorf("the runner still holds %d instances of a forgotten VirtualIP", n)
	}
	closeWithin(t, r, time.Minute)
}

// A VirtualIP whose notify was removed runs nothing from its next change on.
func TestRunnerSetNone(t *testing.T) {
	needUnix(t)
	out := filepath.Join(t.TempDir(), "runs")
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{All: recorder(t, out, "all")})
	r.Handle(transition("web", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted))
	r.Set("web", nil)
	r.Handle(transition("web", vrrp.Backup, vrrp.Master, 100, vrrp.ReasonMasterDown))
	r.Handle(transition("web", vrrp.Master, vrrp.Initialize, 100, vrrp.ReasonShutdown))
	closeWithin(t, r, time.Minute)
	if diff := cmp.Diff([][]string{{"all", "INSTANCE", "web", "BACKUP", "100", "Started"}}, argsOf(readRecords(t, out))); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

// There is no shell and no PATH lookup: shell syntax in an argument is passed on literally,
// and a program given by name alone is not run.
func TestRunnerNoShellNoPath(t *testing.T) {
	needUnix(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "runs")
	pwned := filepath.Join(dir, "pwned")
	literal := []string{"$(touch " + pwned + "); echo", "`touch " + pwned + "`", "; touch " + pwned, "*"}
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{
		Master: append(recorder(t, out, "master"), literal...),
		// touch is in PATH: given by name it must not run.
		Backup: []string{"touch", pwned},
	})
	r.Handle(transition("web", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted))
	r.Handle(transition("web", vrrp.Backup, vrrp.Master, 100, vrrp.ReasonMasterDown))
	closeWithin(t, r, time.Minute)
	want := [][]string{append(append([]string{"master"}, literal...), "INSTANCE", "web", "MASTER", "100", "MasterDownTimer")}
	if diff := cmp.Diff(want, argsOf(readRecords(t, out))); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("%s was created: an argument went through a shell, or a bare name through PATH", pwned)
	}
}

// A command line written whole as the first element (as keepalived's notify_* are written:
// the CRD only asks that it start with '/') never shows its arguments: not in the log of its
// run, which fails (no such program), nor in Programs, which run's refusal prints.
func TestRunnerShowsNoArguments(t *testing.T) {
	needUnix(t)
	var buf syncBuffer
	r := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	spec := &v1alpha1.NotifySpec{Master: []string{"/nonexistent/alert --token T0kenS3cret", "--password", "Arg5ecret"}}
	r.Set("web", spec)
	r.Handle(transition("web", vrrp.Initialize, vrrp.Master, 255, vrrp.ReasonOwner))
	closeWithin(t, r, time.Minute)
	progs := strings.Join(CommandsOf(spec).Programs(), " ")
	for what, text := range map[string]string{"the log": buf.String(), "Programs()": progs} {
		for _, s := range []string{"T0kenS3cret", "--token", "Arg5ecret"} {
			if strings.Contains(text, s) {
				t.Errorf("%s shows an argument of the command (%q):\n%s", what, s, text)
			}
		}
		if !strings.Contains(text, "/nonexistent/alert") {
			t.Errorf("%s does not name the program:\n%s", what, text)
		}
	}
	if !strings.Contains(buf.String(), "notify: command failed") {
		t.Errorf("the failed run is not logged:\n%s", buf.String())
	}
}

// syncBuffer is a bytes.Buffer for a logger that workers write to.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// alive reports whether pid is a process that has not exited (a zombie has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// killAlive kills what a failed test left running.
func killAlive(pids ...int) {
	for _, p := range pids {
		if alive(p) {
			if proc, err := os.FindProcess(p); err == nil {
				_ = proc.Kill()
			}
		}
	}
}

func readPids(t *testing.T, path string) (leader, child int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("%s: %q", path, b)
	}
	leader, _ = strconv.Atoi(f[0])
	child, _ = strconv.Atoi(f[1])
	return leader, child
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear within %s", path, d)
}

// A command still running at its timeout is killed with its process group: the processes it
// started die with it, and the next change runs.
func TestRunnerTimeoutKillsGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	out := filepath.Join(dir, "runs")
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{
		Backup:  []string{self(t), helperArg, "hang", pids},
		Master:  recorder(t, out, "master"),
		Timeout: &v1alpha1.Duration{Duration: 300 * time.Millisecond},
	})
	start := time.Now()
	r.Handle(transition("web", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted))
	r.Handle(transition("web", vrrp.Backup, vrrp.Master, 100, vrrp.ReasonMasterDown))
	waitFile(t, pids, 10*time.Second)
	leader, child := readPids(t, pids)
	t.Cleanup(func() { killAlive(leader, child) })
	// The next change runs once the hung one is killed.
	for end := time.Now().Add(10 * time.Second); len(readRecords(t, out)) == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if len(readRecords(t, out)) != 1 {
		t.Fatalf("the change after the hung command did not run")
	}
	took := time.Since(start)
	closeWithin(t, r, time.Minute)
	// The leader is reaped by the runner; the child, reparented, may stay a zombie.
	for end := time.Now().Add(5 * time.Second); (alive(leader) || alive(child)) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(leader) {
		t.Errorf("the hung command (pid %d) outlived its timeout", leader)
	}
	if alive(child) {
		t.Errorf("the process the hung command started (pid %d) outlived its timeout: its group was not killed", child)
	}
	if took > 5*time.Second {
		t.Errorf("the change after the hung command ran %s after it, want about its 300ms timeout", took)
	}
	t.Logf("timeout 300ms: next change ran after %s", took)
}

// Close waits for the changes queued, up to its context; then it kills what runs and drops
// what waits, and nothing runs after it.
func TestRunnerCloseKills(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	out := filepath.Join(dir, "runs")
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{
		Backup: []string{self(t), helperArg, "hang", pids},
		Master: recorder(t, out, "master"),
	}) // the default timeout, 10s
	r.Handle(transition("web", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted))
	r.Handle(transition("web", vrrp.Backup, vrrp.Master, 100, vrrp.ReasonMasterDown))
	waitFile(t, pids, 10*time.Second)
	leader, child := readPids(t, pids)
	t.Cleanup(func() { killAlive(leader, child) })
	start := time.Now()
	closeWithin(t, r, 200*time.Millisecond)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %s, want about its 200ms", took)
	}
	r.Handle(transition("web", vrrp.Master, vrrp.Initialize, 100, vrrp.ReasonShutdown)) // after Close: ignored
	time.Sleep(100 * time.Millisecond)
	for end := time.Now().Add(5 * time.Second); (alive(leader) || alive(child)) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(leader) || alive(child) {
		t.Errorf("the running command (%d, child %d) outlived Close", leader, child)
	}
	if runs := readRecords(t, out); len(runs) != 0 {
		t.Errorf("changes queued behind the killed command ran after Close: %v", argsOf(runs))
	}
}

// When a command hangs and changes pile up, the oldest waiting are dropped and counted: the
// queue keeps the newest; another VirtualIP's commands are not held up meanwhile.
func TestRunnerQueueOverflow(t *testing.T) {
	needUnix(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "runs")
	gate := filepath.Join(dir, "gate")
	r := New(testLogger(t))
	r.queueLen = 4
	r.Set("web", &v1alpha1.NotifySpec{All: []string{self(t), helperArg, "gate", out, gate}, Timeout: &v1alpha1.Duration{Duration: time.Minute}})
	r.Set("db", &v1alpha1.NotifySpec{All: recorder(t, out+".db", "all")})

	states := []vrrp.State{vrrp.Backup, vrrp.Master}
	prev := vrrp.Initialize
	next := func(i int) vrrp.Event {
		s := states[i%2]
		e := transition("web", prev, s, uint8(100+i), vrrp.ReasonMasterDown)
		prev = s
		return e
	}
	r.Handle(next(0))
	// The first change's command runs (and waits at the gate) before the others come.
	for end := time.Now().Add(10 * time.Second); len(readRecords(t, out)) == 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	const changes = 11
	for i := 1; i < changes; i++ {
		r.Handle(next(i))
	}
	// Another VirtualIP runs while web's command hangs.
	r.Handle(transition("db", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted))
	for end := time.Now().Add(10 * time.Second); len(readRecords(t, out+".db")) == 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if len(readRecords(t, out+".db")) != 1 {
		t.Error("db's command did not run while web's hung")
	}
	if got, want := r.Dropped(), uint64(changes-1-4); got != want {
		t.Errorf("Dropped = %d, want %d (%d changes behind a hung one, a queue of 4)", got, want, changes-1)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	closeWithin(t, r, time.Minute)
	var prios []string
	for _, rec := range readRecords(t, out) {
		prios = append(prios, rec.Args[3])
	}
	// The first, which was running, and the newest four.
	if diff := cmp.Diff([]string{"100", "107", "108", "109", "110"}, prios); diff != "" {
		t.Errorf("the changes that ran, by priority (-want +got):\n%s", diff)
	}
}

// The stream's lost events are logged, and Start's stop hands over what the stream still
// holds before it waits.
func TestRunnerStart(t *testing.T) {
	needUnix(t)
	out := filepath.Join(t.TempDir(), "runs")
	r := New(testLogger(t))
	r.Set("web", &v1alpha1.NotifySpec{Stop: recorder(t, out, "stop")})
	s := &chanStream{ready: make(chan struct{}, 1)}
	stop := r.Start(s)
	s.put(transition("web", vrrp.Initialize, vrrp.Backup, 100, vrrp.ReasonStarted), true)
	for end := time.Now().Add(10 * time.Second); len(s.ready) > 0 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	// Published as the agent stops, while nobody reads: taken by stop.
	s.put(vrrp.Event{Kind: vrrp.EventDropped, Count: 3}, false)
	s.put(transition("web", vrrp.Backup, vrrp.Initialize, 100, vrrp.ReasonShutdown), false)
	stop(time.Minute)
	if diff := cmp.Diff([][]string{{"stop", "INSTANCE", "web", "STOP", "100", "Shutdown"}}, argsOf(readRecords(t, out))); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

// chanStream is a Stream of the events put in it.
type chanStream struct {
	ready chan struct{}
	mu    sync.Mutex
	evs   []vrrp.Event
}

// put adds e and signals it (signal false: as an event published while nobody reads).
func (s *chanStream) put(e vrrp.Event, signal bool) {
	s.mu.Lock()
	s.evs = append(s.evs, e)
	s.mu.Unlock()
	if signal {
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

func (s *chanStream) Ready() <-chan struct{} { return s.ready }

func (s *chanStream) Take() []vrrp.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.evs
	s.evs = nil
	return evs
}

func TestCommandsOf(t *testing.T) {
	if CommandsOf(nil) != nil {
		t.Error("CommandsOf(nil) is not nil")
	}
	c := CommandsOf(&v1alpha1.NotifySpec{Master: []string{"/bin/m", "secret"}, All: []string{"/bin/a"}, Stop: []string{"/bin/m"}})
	if c.Timeout != v1alpha1.DefaultNotifyTimeout {
		t.Errorf("timeout %s, want the default %s", c.Timeout, v1alpha1.DefaultNotifyTimeout)
	}
	if diff := cmp.Diff([]string{"/bin/m", "/bin/a"}, c.Programs()); diff != "" {
		t.Errorf("Programs (-want +got):\n%s", diff)
	}
}
