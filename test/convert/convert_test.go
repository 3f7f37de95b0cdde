package convert_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// vip is the virtual address of every pair (the lab client is .250, the nodes .11 and .12).
var vip = netip.MustParsePrefix("198.18.0.100/24")

// nice is the niceness of the speakers and of the test process: the machine running these
// tests is often busy, and a speaker stalled for longer than Master_Down_Interval (360 ms at
// advert_int 0.1) legitimately loses its role, which is not what these tests are about.
const nice = -10

func TestMain(m *testing.M) {
	flag.Parse()
	// The runs spend their time waiting for VRRP timers (a run of the advert_int 1 pair takes
	// about a minute and a few CPU seconds), so all of them run at once unless -parallel says
	// otherwise; the default, GOMAXPROCS, would queue them on a small machine.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(len(cases)*len(placements)))
	}
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "convert tests:", err)
		}
	}
	os.Exit(m.Run())
}

// pairCase is one keepalived pair of testdata/<dir>: lb1.conf and lb2.conf.
type pairCase struct {
	dir string
	// instance is the vrrp_instance's name (keepalived logs it); virtualIP is the name the
	// conversion gives the VirtualIP (kube-vrrp logs it as "vip").
	instance, virtualIP string
	// advert is advert_int: it sizes the observation windows.
	advert time.Duration
	// preempt is what the original pair does when lb1 (priority 110) comes back while lb2
	// (100) is MASTER: take the VIP back, or leave it (nopreempt).
	preempt bool
	// staggered starts lb1 first and lb2 once lb1 holds the VIP. Without preemption a
	// simultaneous start is a race between two Master_Down timers 4 ms apart (priorities 110
	// and 100 at 100 ms), decided by which process happened to start first.
	staggered bool
}

var cases = []pairCase{
	// VRRPv2 multicast, auth_type PASS, priorities 110/100 (state MASTER/BACKUP), advert_int 1.
	{dir: "v2-multicast-pass", instance: "VI_1", virtualIP: "vi-1", advert: time.Second, preempt: true},
	// VRRPv3 (global vrrp_version 3) at advert_int 0.1, unicast_src_ip/unicast_peer.
	{dir: "v3-unicast-fast", instance: "VI_API", virtualIP: "vi-api", advert: 100 * time.Millisecond, preempt: true},
	// Both state BACKUP with nopreempt, priorities 110/100, VRRPv3 at advert_int 0.1.
	{dir: "v3-nopreempt", instance: "VI_DB", virtualIP: "vi-db", advert: 100 * time.Millisecond, staggered: true},
}

// window is how long after a step (for a start: after the speaker reported its first state)
// the VIP's holders are read: beyond any protocol reaction to it (Master_Down_Interval is 3
// adverts plus a skew below one), with room for a loaded machine.
func (c pairCase) window() time.Duration { return 4*c.advert + time.Second }

// stable is how long the holders must not change before they are read.
func (c pairCase) stable() time.Duration { return 3*c.advert + 200*time.Millisecond }

// roles are the two keepalived hosts; lb1 runs on lab node n1 and lb2 on n2.
var roles = []string{"lb1", "lb2"}

// placement says which speaker runs each role.
type placement struct {
	name string
	// kubeVRRP is the role that runs `kube-vrrp run` with the converted YAML ("": none,
	// both run keepalived with their original configuration).
	kubeVRRP string
}

var placements = []placement{
	{name: "keepalived-pair"},
	{name: "kube-vrrp-as-lb1", kubeVRRP: "lb1"},
	{name: "kube-vrrp-as-lb2", kubeVRRP: "lb2"},
}

// Steps of the script every run goes through, in order.
const (
	stepElection        = "election"         // both speakers started
	stepLinkCut         = "lb1 link cut"     // lb1's switch port detached (lb1 keeps its carrier)
	stepLinkRestored    = "lb1 link back"    // re-attached: the split brain heals
	stepStopped         = "lb1 stopped"      // SIGTERM to lb1's speaker (priority 0)
	stepRestarted       = "lb1 restarted"    // lb1's speaker started again: preempt or not
	stepReelection      = "re-election"      // both stopped, then started afresh (staggered)
	stepCarrierLost     = "lb1 carrier lost" // lb1's switch port down: lb1 sees NO-CARRIER
	stepCarrierRestored = "lb1 carrier back" // port up again
)

// carrierSteps are compared in a subtest of their own: keepalived goes to FAULT there (its
// interface lost carrier), so these steps check that kube-vrrp follows its link too.
var carrierSteps = map[string]bool{stepCarrierLost: true, stepCarrierRestored: true}

// observation is what a run shows after one step, once the VIP's holders are stable.
type observation struct {
	Step string
	// Holders are the roles with the VIP bound ("lb1", "lb1+lb2", "none").
	Holders string
	// States is each role's state as its speaker last reported it ("MASTER", "BACKUP",
	// "FAULT", "stopped"), e.g. "lb1=MASTER lb2=BACKUP".
	States string
	// Client is the role the client reaches the VIP at, "" where not asked: a healed split
	// brain or a hand back need not re-announce the VIP before the client's neighbour entry
	// expires (see test/interop), so only elections and failovers ask.
	Client string
	// Path lists the holders seen during the step, for the log (transients differ in timing
	// between speakers and are not compared).
	Path string
}

func (o observation) String() string {
	s := fmt.Sprintf("holders %-7s %s", o.Holders, o.States)
	if o.Client != "" {
		s += ", client reaches " + o.Client
	}
	return s
}

// behaviour is the observations of one run, in step order.
type behaviour []observation

func (b behaviour) get(step string) (observation, bool) {
	for _, o := range b {
		if o.Step == step {
			return o, true
		}
	}
	return observation{}, false
}

// expectedOriginal is what the original keepalived pair must show, so that the converted
// pairs are compared with a baseline that exercised what it is meant to: at a link cut the
// isolated lb1 keeps the VIP on its side (it has carrier and hears nothing), and the healed
// split brain goes to the higher priority whether or not it preempts (a MASTER hearing a
// higher priority steps down; nopreempt only keeps a BACKUP from taking over); nopreempt
// shows when lb1 comes back as BACKUP, after a restart or after its carrier returned
// (keepalived goes to FAULT and releases the VIP while the carrier is gone).
func expectedOriginal(c pairCase) behaviour {
	back := observation{Holders: "lb1", States: "lb1=MASTER lb2=BACKUP"}
	if !c.preempt {
		back = observation{Holders: "lb2", States: "lb1=BACKUP lb2=MASTER"}
	}
	with := func(o observation, step string) observation { o.Step = step; return o }
	return behaviour{
		{Step: stepElection, Holders: "lb1", States: "lb1=MASTER lb2=BACKUP", Client: "lb1"},
		{Step: stepLinkCut, Holders: "lb1+lb2", States: "lb1=MASTER lb2=MASTER", Client: "lb2"},
		{Step: stepLinkRestored, Holders: "lb1", States: "lb1=MASTER lb2=BACKUP"},
		{Step: stepStopped, Holders: "lb2", States: "lb1=stopped lb2=MASTER", Client: "lb2"},
		with(back, stepRestarted),
		{Step: stepReelection, Holders: "lb1", States: "lb1=MASTER lb2=BACKUP", Client: "lb1"},
		{Step: stepCarrierLost, Holders: "lb2", States: "lb1=FAULT lb2=MASTER", Client: "lb2"},
		with(back, stepCarrierRestored),
	}
}

// TestConvertedPairBehavesLikeOriginal runs, for each keepalived pair (the pairs
// concurrently, each run in its own lab), first the original pair, checked against what
// keepalived is known to do, then the two mixed pairs at once (keepalived with its original
// config on one node, `kube-vrrp run` with the converted YAML on the other), all through the
// same script, and checks the mixed pairs against the original step by step.
func TestConvertedPairBehavesLikeOriginal(t *testing.T) {
	privtest.Require(t)
	bin := lab.KubeVRRPBinary(t)
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			t.Parallel()
			confs := originalConfs(t, c)
			manifest, _ := convertPair(t, bin, c)
			if out, err := validate(bin, manifest); err != nil || !strings.Contains(out, "ok "+c.virtualIP) {
				t.Fatalf("kube-vrrp validate of the converted YAML: %v\n%s", err, out)
			}

			// The original pair first: its run is the baseline.
			var orig behaviour
			t.Run(placements[0].name, func(t *testing.T) {
				orig = runScript(t, c, placements[0], bin, confs, manifest)
			})
			if orig == nil {
				t.Fatal("the original pair did not complete its run; nothing to compare with")
			}
			t.Run(placements[0].name+"-as-expected", func(t *testing.T) {
				for _, want := range expectedOriginal(c) {
					o, _ := orig.get(want.Step)
					if o.Holders != want.Holders || o.States != want.States || want.Client != "" && o.Client != want.Client {
						t.Errorf("%s: keepalived pair shows %s; keepalived is expected to show %s", want.Step, o, want)
					}
				}
			})

			// Then keepalived and kube-vrrp, in both placements, each in its own lab.
			got := make([]behaviour, len(placements))
			got[0] = orig
			t.Run("mixed", func(t *testing.T) {
				for i, p := range placements[1:] {
					t.Run(p.name, func(t *testing.T) {
						t.Parallel()
						got[i+1] = runScript(t, c, p, bin, confs, manifest)
					})
				}
			})
			logTable(t, c, got)
			for i, p := range placements[1:] {
				b := got[i+1]
				t.Run(p.name+"-same-as-keepalived-pair", func(t *testing.T) {
					if b == nil {
						t.Skip("the run did not complete (see its failure)")
					}
					compare(t, orig, b, func(step string) bool { return !carrierSteps[step] })
				})
				t.Run(p.name+"-same-on-carrier-loss", func(t *testing.T) {
					if b == nil {
						t.Skip("the run did not complete (see its failure)")
					}
					compare(t, orig, b, func(step string) bool { return carrierSteps[step] })
				})
			}
		})
	}
}

// compare checks that b shows what orig showed at each step for which want is true.
func compare(t *testing.T, orig, b behaviour, want func(step string) bool) {
	t.Helper()
	for _, o := range orig {
		if !want(o.Step) {
			continue
		}
		g, ok := b.get(o.Step)
		switch {
		case !ok:
			t.Errorf("%s: not observed", o.Step)
		case g.Holders != o.Holders || g.States != o.States || o.Client != "" && g.Client != o.Client:
			t.Errorf("%s: %s; the keepalived pair showed %s", o.Step, g, o)
		}
	}
}

// originalConfs reads the pair's keepalived.conf files by role.
func originalConfs(t *testing.T, c pairCase) map[string]string {
	t.Helper()
	confs := map[string]string{}
	for _, r := range roles {
		b, err := os.ReadFile(filepath.Join("testdata", c.dir, r+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		confs[r] = string(b)
	}
	return confs
}

// convertPair runs `kube-vrrp convert --node lb1=lb1.conf --node lb2=lb2.conf` (file work
// only, no network) and returns the path of the YAML it printed and its warnings.
func convertPair(t *testing.T, bin string, c pairCase) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, "convert",
		"--node", "lb1="+filepath.Join("testdata", c.dir, "lb1.conf"),
		"--node", "lb2="+filepath.Join("testdata", c.dir, "lb2.conf"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kube-vrrp convert: %v\n%s", err, stderr.String())
	}
	t.Logf("kube-vrrp convert warnings:\n%s", stderr.String())
	path := filepath.Join(t.TempDir(), c.dir+".yaml")
	if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, stderr.String()
}

// validate runs `kube-vrrp validate -f path`.
func validate(bin, path string) (string, error) {
	out, err := exec.Command(bin, "validate", "-f", path).CombinedOutput()
	return string(out), err
}

// TestConvertedPairsValidate checks that `kube-vrrp validate` accepts what `kube-vrrp
// convert` prints for every pair, and that the conversion kept what the pair's behaviour
// depends on: per-node priorities, version, interval, preemption, unicast peers, PASS.
func TestConvertedPairsValidate(t *testing.T) {
	privtest.Require(t)
	bin := lab.KubeVRRPBinary(t)
	want := map[string][]string{
		"v2-multicast-pass": {"version: 2", "advertisementInterval: 1s", "- name: lb1\n    priority: 110", "priority: 100",
			"type: PASS", "password: k8sVIP42", "vrid: 51"},
		"v3-unicast-fast": {"version: 3", "advertisementInterval: 100ms", "- name: lb1\n    priority: 110", "priority: 100",
			"unicast:\n    peers:\n    - 198.18.0.11\n    - 198.18.0.12", "vrid: 52"},
		"v3-nopreempt": {"version: 3", "advertisementInterval: 100ms", "- name: lb1\n    priority: 110", "priority: 100",
			"preempt: false", "vrid: 53"},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			path, warnings := convertPair(t, bin, c)
			out, err := validate(bin, path)
			if err != nil || strings.TrimSpace(out) != "ok "+c.virtualIP {
				t.Errorf("kube-vrrp validate: %v\n%s", err, out)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range want[c.dir] {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("converted YAML lacks %q:\n%s", w, b)
				}
			}
			// Probes would be ignored by `kube-vrrp run` for now; these pairs have none.
			if bytes.Contains(b, []byte("probes:")) {
				t.Errorf("converted YAML has probes; the pairs here are meant to have no track scripts:\n%s", b)
			}
			if strings.Contains(warnings, "cannot be merged") {
				t.Errorf("the pair did not merge cleanly:\n%s", warnings)
			}
		})
	}
}

// run is one pair in its own lab going through the script.
type run struct {
	t        *testing.T
	c        pairCase
	p        placement
	l        *lab.Lab
	bin      string
	confs    map[string]string // keepalived.conf by role
	manifest string            // converted YAML
	nodes    map[string]*lab.Node
	procs    map[string]*lab.Proc // running speaker by role (nil: stopped)
	clientAt time.Time            // when the client last resolved the VIP
}

// runScript builds a lab, runs the pair of placement p through the script and returns what
// it showed.
func runScript(t *testing.T, c pairCase, p placement, bin string, confs map[string]string, manifest string) behaviour {
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	r := &run{t: t, c: c, p: p, l: l, bin: bin, confs: confs, manifest: manifest,
		nodes: map[string]*lab.Node{"lb1": l.Node(1), "lb2": l.Node(2)}, procs: map[string]*lab.Proc{}}
	if p.kubeVRRP == "" {
		// The originals must be valid keepalived configurations, not just parse here.
		for _, role := range roles {
			path := r.nodes[role].MustWriteFile(role+"-check.conf", []byte(confs[role]))
			if out, err := r.nodes[role].Run("keepalived", "--config-test", "-f", path); err != nil {
				t.Fatalf("keepalived --config-test %s.conf: %v\n%s", role, err, out)
			}
		}
	}
	var b behaviour
	add := func(o observation) {
		t.Logf("%-17s %s (holders seen: %s)", o.Step, o, o.Path)
		b = append(b, o)
	}

	add(r.startPair(stepElection))

	r.quiet()
	t0 := r.fault(r.nodes["lb1"].CutLink)
	add(r.observe(stepLinkCut, t0, true))
	t0 = r.fault(r.nodes["lb1"].RestoreLink)
	add(r.observe(stepLinkRestored, t0, false))

	r.quiet()
	t0 = time.Now()
	r.stop("lb1")
	add(r.observe(stepStopped, t0, true))
	r.quiet()
	r.start("lb1")
	add(r.observe(stepRestarted, r.waitStarted("lb1"), false))

	r.stop("lb2")
	r.stop("lb1")
	if err := lab.WaitHolders(l.Nodes(), vip, nil, 5*time.Second); err != nil {
		t.Fatalf("after stopping both speakers: %v", err)
	}
	add(r.startPair(stepReelection))

	r.quiet()
	t0 = r.fault(r.nodes["lb1"].LinkDown)
	add(r.observe(stepCarrierLost, t0, true))
	t0 = r.fault(r.nodes["lb1"].RestoreLink)
	add(r.observe(stepCarrierRestored, t0, false))
	return b
}

// speaker names what runs role in this placement.
func (r *run) speaker(role string) string {
	if role == r.p.kubeVRRP {
		return "kube-vrrp"
	}
	return "keepalived"
}

// startPair starts both speakers (lb1 first and lb2 once lb1 holds the VIP if the case is
// staggered) and observes the election.
func (r *run) startPair(step string) observation {
	r.start("lb1")
	r.waitStarted("lb1")
	if r.c.staggered {
		if err := lab.WaitHolders(r.l.Nodes(), vip, []*lab.Node{r.nodes["lb1"]}, 10*time.Second); err != nil {
			r.t.Fatalf("%s: lb1 (%s) alone: %v\n%s", step, r.speaker("lb1"), err, r.procs["lb1"].Tail(20))
		}
	}
	r.start("lb2")
	return r.observe(step, r.waitStarted("lb2"), true)
}

// waitStarted waits until role's speaker has reported a state and returns when: the steps'
// windows count from there, so that a slow process start on a loaded machine does not pass
// for a protocol decision.
func (r *run) waitStarted(role string) time.Time {
	r.t.Helper()
	p := r.procs[role]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if r.state(role) != "none" {
			return time.Now()
		}
		if p.Exited() || time.Now().After(deadline) {
			r.t.Fatalf("%s (%s) reported no state:\n%s", role, r.speaker(role), p.Tail(20))
		}
	}
}

// start starts role's speaker: keepalived with the original configuration, or kube-vrrp run
// with the converted YAML as the node the conversion named role: the converted spec.nodes
// names the members, so no labels are needed.
func (r *run) start(role string) {
	r.t.Helper()
	n := r.nodes[role]
	if r.speaker(role) == "keepalived" {
		r.procs[role] = n.StartKeepalived(r.t, r.confs[role])
		return
	}
	state, err := n.StateDir(0)
	if err != nil {
		r.t.Fatal(err)
	}
	events, err := n.EventsFile("kube-vrrp")
	if err != nil {
		r.t.Fatal(err)
	}
	p, err := n.Exec(context.Background(), "kube-vrrp",
		"nice", "-n", strconv.Itoa(nice),
		r.bin, "run", "-f", r.manifest, "--node", role,
		"--log-format", "json", "--state-dir", state, "--events", events)
	if err != nil {
		r.t.Fatalf("%s: kube-vrrp run: %v", role, err)
	}
	p.EventsPath = events
	r.procs[role] = p
}

// stop stops role's speaker with SIGTERM (both speakers resign with priority 0) and waits
// for it to exit.
func (r *run) stop(role string) {
	r.t.Helper()
	p := r.procs[role]
	if err := p.Stop(); err != nil {
		r.t.Errorf("stopping %s (%s): %v\n%s", role, r.speaker(role), err, p.Tail(20))
	}
	r.procs[role] = nil
}

// fault injects f and returns when.
func (r *run) fault(f func() error) time.Time {
	r.t.Helper()
	t0 := time.Now()
	if err := f(); err != nil {
		r.t.Fatal(err)
	}
	return t0
}

// quiet waits until the client's neighbour entry for the VIP is older than the kernel's
// locktime (1 s), in which a gratuitous ARP that would move it may be ignored; otherwise a
// fast failover right after the client looked would be reported as the client's problem.
func (r *run) quiet() {
	if d := time.Until(r.clientAt.Add(1100 * time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
}

// observe waits until the step is over (the case's window after t0 has passed and the holders
// have not changed for the case's stable time), then reads the holders, the speakers' states
// and, if client, which node the client reaches.
func (r *run) observe(step string, t0 time.Time, client bool) observation {
	r.t.Helper()
	window, stable := r.c.window(), r.c.stable()
	deadline := t0.Add(window + 20*time.Second)
	last, since := "", time.Time{}
	var path []string
	for {
		h := r.holders()
		now := time.Now()
		if h != last || since.IsZero() {
			last, since = h, now
			path = append(path, h)
		}
		if !now.Before(t0.Add(window)) && now.Sub(since) >= stable {
			break
		}
		if now.After(deadline) {
			r.t.Fatalf("%s: the holders of %s do not settle (seen: %s)", step, vip.Addr(), strings.Join(path, " > "))
		}
		time.Sleep(10 * time.Millisecond)
	}
	o := observation{Step: step, Holders: last, States: r.states(), Path: strings.Join(path, " > ")}
	if client {
		o.Client = r.client(last)
	}
	return o
}

// holders returns the roles holding the VIP: "lb1", "lb2", "lb1+lb2" or "none".
func (r *run) holders() string {
	var h []string
	for _, role := range roles {
		if r.nodes[role].HasAddress(vip) {
			h = append(h, role)
		}
	}
	if len(h) == 0 {
		return "none"
	}
	return strings.Join(h, "+")
}

// states returns each role's last reported state, e.g. "lb1=MASTER lb2=BACKUP".
func (r *run) states() string {
	var s []string
	for _, role := range roles {
		s = append(s, role+"="+r.state(role))
	}
	return strings.Join(s, " ")
}

// state returns role's state as its speaker last reported it, in keepalived's words for
// both speakers ("MASTER", "BACKUP", "FAULT"), or "stopped", "exited" (on its own), "none"
// (nothing reported yet).
func (r *run) state(role string) string {
	p := r.procs[role]
	st := ""
	switch {
	case p == nil:
		return "stopped"
	case p.Exited():
		return "exited"
	case r.speaker(role) == "keepalived":
		st = lab.KeepalivedStates(p)[r.c.instance]
	default:
		st = strings.ToUpper(lab.KubeVRRPState(p, r.c.virtualIP))
	}
	if st == "" {
		return "none"
	}
	return st
}

// client returns the role the client reaches the VIP at. When that is not a holder (or none
// answers), it asks again for a while: a neighbour entry may be on its way to being corrected.
func (r *run) client(holders string) string {
	r.t.Helper()
	ask := func() string {
		who, err := r.l.WhoAnswers(vip.Addr(), 3*time.Second)
		r.clientAt = time.Now()
		if err != nil {
			return "none"
		}
		for role, n := range r.nodes {
			if n.Name == who {
				return role
			}
		}
		return who
	}
	isHolder := func(who string) bool { return slices.Contains(strings.Split(holders, "+"), who) }
	who := ask()
	for deadline := time.Now().Add(5 * time.Second); !isHolder(who) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		who = ask()
	}
	return who
}

// logTable logs the behaviour of the three runs side by side.
func logTable(t *testing.T, c pairCase, got []behaviour) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (advert %v):\n", c.dir, c.advert)
	fmt.Fprintf(&b, "  %-17s", "step")
	for _, p := range placements {
		fmt.Fprintf(&b, " | %-52s", p.name)
	}
	b.WriteString("\n")
	for _, step := range []string{stepElection, stepLinkCut, stepLinkRestored, stepStopped, stepRestarted, stepReelection,
		stepCarrierLost, stepCarrierRestored} {
		fmt.Fprintf(&b, "  %-17s", step)
		for i := range placements {
			o, ok := got[i].get(step)
			s := "-"
			if ok {
				s = o.String()
			}
			fmt.Fprintf(&b, " | %-52s", s)
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
}
