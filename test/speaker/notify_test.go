package speaker_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// recorderSource is the command spec.notify runs in TestNotify: it appends its arguments after
// the file and its environment, as one JSON object, to the file named by its first argument.
const recorderSource = `package main

import (
	"encoding/json"
	"os"
)

func main() {
	b, err := json.Marshal(map[string][]string{"args": os.Args[2:], "env": os.Environ()})
	if err != nil {
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.Exit(3)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		os.Exit(4)
	}
	if err := f.Close(); err != nil {
		os.Exit(5)
	}
}
`

// buildRecorder builds recorderSource and returns the binary's path.
func buildRecorder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(recorderSource), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "notify-recorder")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the recorder: %v\n%s", err, out)
	}
	return bin
}

// notifyRun is one run of the recorder.
type notifyRun struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

func readNotifyRuns(t *testing.T, path string) []notifyRun {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []notifyRun
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r notifyRun
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}

// notifyState is the state a notify command is told of a transition into state (as the lab
// reads kube-vrrp's events): Initialize is entered only by a stop.
var notifyState = map[string]string{"Master": "MASTER", "Backup": "BACKUP", "Fault": "FAULT", "Initialize": "STOP"}

// TestNotify runs keepalived's notify_* as spec.notify in `kube-vrrp run` on two nodes: with
// exec disabled run refuses to start; with it, each node's commands run once per transition,
// the state's own then all, in the order of the transitions its events report, with
// INSTANCE, the name, the state, the priority and the reason appended and no environment,
// through election, a probe failure and recovery (FAULT, preemption), failover and stop.
func TestNotify(t *testing.T) {
	privtest.Require(t)
	rec := buildRecorder(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	n1, n2 := l.Node(1), l.Node(2)
	nodes := []*lab.Node{n1, n2}
	vip := vip4
	ready := map[string]string{}
	runs := map[string]string{}
	manifest := map[string]string{}
	for _, n := range nodes {
		ready[n.Name] = n.MustWriteFile("ready", nil)
		runs[n.Name] = filepath.Join(n.Dir, "notify.runs")
		cmd := func(tag string) string {
			return fmt.Sprintf("[%q, %q, %s, %q]", rec, runs[n.Name], tag, "--token=s3cr3t")
		}
		spec := lab.VirtualIP{
			VRID: 61, Version: 3, AdvertInt: interval, Addresses: []netip.Prefix{vip},
			NodePriorities: map[string]int{n1.Name: 110, n2.Name: 100},
			Extra: []string{
				"notify:",
				"  master: " + cmd("master"),
				"  backup: " + cmd("backup"),
				"  fault: " + cmd("fault"),
				"  stop: " + cmd("stop"),
				"  all: " + cmd("all"),
				"  timeout: 5s",
				"probes:",
				fmt.Sprintf("- {name: ready, file: {path: %q}, interval: 50ms, weight: 0}", ready[n.Name]),
			},
		}
		manifest[n.Name] = spec.String()
	}
	name := lab.VirtualIP{}.VIPName()

	// Exec disabled: refused at start, before anything runs.
	p := n1.StartKubeVRRP(t, manifest[n1.Name])
	if err := p.Wait(settle); err == nil {
		t.Fatalf("kube-vrrp run started a VirtualIP with spec.notify without --enable-exec-probes:\n%s", p.Tail(20))
	}
	if log := p.Log(); !strings.Contains(log, "add --enable-exec-probes") || !strings.Contains(log, "or remove spec.notify") ||
		strings.Contains(log, "s3cr3t") {
		t.Errorf("the refusal does not say what to change, or prints an argument:\n%s", p.Tail(20))
	}
	if n1.HasAddress(vip) || len(readNotifyRuns(t, runs[n1.Name])) != 0 {
		t.Fatal("the refused run bound the VIP or ran a command")
	}

	procs := map[string]*lab.Proc{}
	start := func(n *lab.Node) {
		t.Helper()
		procs[n.Name] = n.StartKubeVRRP(t, manifest[n.Name], "--enable-exec-probes")
	}
	holds := func(m *lab.Node) {
		t.Helper()
		if err := lab.WaitSoleHolder(nodes, vip, m, 3*interval, settle); err != nil {
			t.Fatal(err)
		}
	}
	state := func(n *lab.Node, want string) {
		t.Helper()
		if err := lab.WaitKubeVRRPState(procs[n.Name], name, want, settle); err != nil {
			t.Fatal(err)
		}
	}
	// Election: n1 first, then n2 joins as backup.
	start(n1)
	holds(n1)
	start(n2)
	state(n2, "Backup")
	// n1's probe fails: FAULT, n2 takes over; it recovers: n1 preempts.
	if err := os.Remove(ready[n1.Name]); err != nil {
		t.Fatal(err)
	}
	state(n1, "Fault")
	holds(n2)
	n1.MustWriteFile("ready", nil)
	holds(n1)
	state(n2, "Backup")
	// Failover at n1's stop, then n2's stop.
	for _, n := range []*lab.Node{n1, n2} {
		if err := procs[n.Name].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := procs[n.Name].Wait(settle); err != nil {
			t.Fatalf("%s: %v\n%s", n, err, procs[n.Name].Tail(20))
		}
		if n == n1 {
			holds(n2)
		}
	}

	for _, n := range nodes {
		// What the commands must have been told: each transition its events report, the
		// state's own command then all.
		var want [][]string
		var states []string
		for _, tr := range lab.KubeVRRPTransitions(procs[n.Name]) {
			st, ok := notifyState[tr.State]
			if !ok {
				t.Fatalf("%s: a transition into %q", n, tr.State)
			}
			states = append(states, st+" "+tr.Reason)
			args := []string{"--token=s3cr3t", "INSTANCE", name, st, strconv.Itoa(tr.Priority), tr.Reason}
			want = append(want, append([]string{strings.ToLower(st)}, args...), append([]string{"all"}, args...))
		}
		got := readNotifyRuns(t, runs[n.Name])
		var gotArgs [][]string
		for _, r := range got {
			gotArgs = append(gotArgs, r.Args)
			if len(r.Env) != 0 {
				t.Errorf("%s: a command ran with the environment %q", n, r.Env)
			}
		}
		if diff := cmp.Diff(want, gotArgs); diff != "" {
			t.Errorf("%s: the commands run (-want, from its transitions, +got):\n%s", n, diff)
		}
		t.Logf("%s: %d commands for %s", n, len(got), strings.Join(states, ", "))
		// The scenario's own milestones, whatever the start made.
		wantStates := map[string][]string{
			n1.Name: {"FAULT ProbeFailed", "MASTER Preempting", "STOP Shutdown"},
			n2.Name: {"BACKUP", "MASTER", "BACKUP HigherPriorityMaster", "MASTER", "STOP Shutdown"},
		}[n.Name]
		i := 0
		for _, s := range states {
			if i < len(wantStates) && strings.HasPrefix(s, wantStates[i]) {
				i++
			}
		}
		if i < len(wantStates) {
			t.Errorf("%s: the commands were told %q, want %q in that order", n, states, wantStates)
		}
		if len(states) == 0 || states[len(states)-1] != "STOP Shutdown" {
			t.Errorf("%s: the last change is %q, want STOP Shutdown", n, states)
		}
		if strings.Contains(procs[n.Name].Log(), "s3cr3t") {
			t.Errorf("%s: kube-vrrp logged a command's argument", n)
		}
	}
}
