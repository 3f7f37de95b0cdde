package agentlab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// The Kubernetes-mode part of the chaos suite (test/chaos covers the LAN and the host). Its
// rows go to the log and, when $KUBE_VRRP_CHAOS_TABLE is set (`make test` sets it), to that
// file's name with ".k8s" appended, in test/chaos's table format.
const (
	// apiDownEnv sets how long the API server stays down (default 10m, at least 20s): a
	// shorter outage for a quick run, e.g. KUBE_VRRP_CHAOS_API_DOWN=1m.
	apiDownEnv = "KUBE_VRRP_CHAOS_API_DOWN"
	// etcdDownEnv sets how long etcd stays down (default 1m, at least 20s).
	etcdDownEnv = "KUBE_VRRP_CHAOS_ETCD_DOWN"
	// chaosTableEnv is test/chaos's TableEnv; this package writes to its value + ".k8s".
	chaosTableEnv = "KUBE_VRRP_CHAOS_TABLE"
	chaosImpl     = "kube-vrrp agent"

	// v2Interval is the VirtualIP's advertisement interval: VRRPv2 (PASS authentication
	// exists only there) counts whole seconds.
	v2Interval = time.Second
	// quiet is how long a group must show no sign of two passwords to count as agreeing: a
	// node on another password than the MASTER's drops each of its adverts (one a second),
	// and takes over after Master_Down_Interval (3.65 s at most here). It is above both.
	quiet = 5 * time.Second
	// passKey is the key of the password in the Secrets.
	passKey = "password"
)

// The three passwords of the rotation scenario, and the names the report gives them (the
// report never prints a password).
var passwords = map[string]string{"rot-pw-1": "first", "rot-pw-2": "second", "rot-pw-3": "third"}

// masterDown is RFC 3768 §6.1's Master_Down_Interval of a backup of priority prio:
// 3 × Advertisement_Interval + Skew_Time, (256 - Priority) / 256 s.
func masterDown(prio int32) time.Duration {
	return 3*v2Interval + time.Duration(256-prio)*time.Second/256
}

// TestChaosK8s runs the agents through the faults of a cluster rather than of the LAN, in
// order, each starting from a settled group with n1 MASTER: the VirtualIP is VRRPv2 with PASS
// authentication from a Secret, advert 1 s, n1/n2/n3 at 110/100/90.
//
//  1. PASS rotation, live: (a) a new Secret and secretRef pointed at it; (b) the Secret's
//     password edited in place. Holders are sampled every 10 ms, the MASTER's adverts read off
//     the wire, every agent's auth_failed drops scraped every 100 ms.
//  2. kube-apiserver down for $KUBE_VRRP_CHAOS_API_DOWN (10m): n1's link cut and restored
//     during it; status catches up once it is back, no agent restarts, and outside the cut
//     the VIP always has exactly one holder (sampled every 100 ms, with a client probe).
//  3. etcd down (kube-apiserver up) for $KUBE_VRRP_CHAOS_ETCD_DOWN (1m): the same.
//  4. SIGTERM to every agent at once: no VIP left on any node, every state record empty.
//
// Run as root: go test -count=1 -v -timeout 30m -run TestChaosK8s ./test/agentlab/
func TestChaosK8s(t *testing.T) {
	privtest.Require(t)
	if testing.Short() {
		t.Skip("runs kube-apiserver and three agents for several minutes; skipped in -short mode")
	}
	apiDown, err := envDuration(apiDownEnv, 10*time.Minute, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	etcdDown, err := envDuration(etcdDownEnv, time.Minute, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after a failure too.
	t.Cleanup(func() { flushChaosTable(t) })

	e := newEnv(t)
	sn := startSniffer(t, e.l)
	if err := setupPASS(t, e); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"RotateToNewSecret", func(t *testing.T) { testRotateNewSecret(t, e, sn) }},
		{"EditSecretInPlace", func(t *testing.T) { testEditSecretInPlace(t, e, sn) }},
		{"APIServerDown", func(t *testing.T) {
			testControlPlaneOutage(t, e, outage{
				what: "kube-apiserver", down: apiDown,
				stop: e.cp.StopAPIServer, start: e.cp.StartAPIServer,
			})
		}},
		{"EtcdDown", func(t *testing.T) {
			testControlPlaneOutage(t, e, outage{
				what: "etcd", down: etcdDown,
				stop: e.cp.StopEtcd, start: e.cp.StartEtcd,
			})
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			break // the next steps start from this one's end state
		}
	}
	// Always, whatever happened before: a stop leaves nothing behind, and no agent was refused
	// anything by the API server or the kernel.
	t.Run("SIGTERMLeavesNothing", func(t *testing.T) { testSIGTERMAll(t, e) })
	t.Run("NoForbiddenOrEPERM", func(t *testing.T) { testNoForbidden(t, e) })
}

// envDuration reads a duration from the environment variable name: def when unset.
func envDuration(name string, def, least time.Duration) (time.Duration, error) {
	s := os.Getenv(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a duration: write one such as 10m or 90s", name, s)
	}
	if d < least {
		return 0, fmt.Errorf("%s=%v is too short: at least %v (a link cut, its failover and the hand-back happen during the outage)", name, d, least)
	}
	return d, nil
}

// passSecret is a Secret of the agents' namespace holding password under passKey.
func passSecret(name, password string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cluster.Namespace},
		Data:       map[string][]byte{passKey: []byte(password)},
	}
}

// setupPASS creates the first Secret and the VirtualIP (VRRPv2, PASS from that Secret,
// advert 1 s) and waits until n1 alone holds the VIP and status has settled.
func setupPASS(t *testing.T, e *env) error {
	ctx := t.Context()
	if err := e.k8s.Create(ctx, passSecret("vip-pass-1", "rot-pw-1")); err != nil {
		return err
	}
	v := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: vipName},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:                  51,
			Version:               2,
			Addresses:             []string{vip.String()},
			AdvertisementInterval: &v1alpha1.Duration{Duration: v2Interval},
			Nodes: []v1alpha1.NodeOverride{
				{Name: "n1", Priority: ptr(priorities["n1"])},
				{Name: "n2", Priority: ptr(priorities["n2"])},
				{Name: "n3", Priority: ptr(priorities["n3"])},
			},
			Authentication: &v1alpha1.AuthenticationSpec{
				Type:      "PASS",
				SecretRef: v1alpha1.SecretKeyRef{Name: "vip-pass-1", Key: passKey},
			},
		},
	}
	created := time.Now()
	if err := e.k8s.Create(ctx, v); err != nil {
		return err
	}
	if err := lab.WaitHolders(e.nodes, vip, e.nodes[:1], settle); err != nil {
		return err
	}
	if _, err := e.waitStatus(ctx, settle, settled("n1")); err != nil {
		return err
	}
	t.Logf("VRRPv2 with PASS from Secret vip-pass-1: n1 MASTER, status settled %v after the create",
		time.Since(created).Round(time.Millisecond))
	return nil
}

// --- scenario 1: PASS rotation ---

// testRotateNewSecret rotates the password the recommended way: a new Secret, then
// spec.authentication.secretRef.name pointed at it. The spec change reaches every agent at
// once (a watch event), so the nodes switch within milliseconds of each other, far below
// Master_Down_Interval: the group must keep one MASTER (n1) throughout and agree within a few
// seconds.
func testRotateNewSecret(t *testing.T, e *env, sn *sniffer) {
	row := chaosRow{Scenario: "PASS rotation: new Secret, secretRef edited", Outcome: "did not finish", Left: "-"}
	defer func() { row.Pass = !t.Failed(); recordRow(t, row) }()
	ctx := t.Context()
	if err := e.k8s.Create(ctx, passSecret("vip-pass-2", "rot-pw-2")); err != nil {
		t.Fatal(err)
	}
	r := e.rotate(t, sn, "second", 30*time.Second, func() error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			v, err := e.get(ctx)
			if err != nil {
				return err
			}
			v.Spec.Authentication.SecretRef.Name = "vip-pass-2"
			return e.k8s.Update(ctx, v)
		})
	})
	row.Outcome, row.Converge = r.outcome(), r.converge
	t.Logf("rotation to a new Secret: %s; converged after %v", r.outcome(), r.converge.Round(time.Millisecond))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.dual > 0 || r.none > 0 {
		t.Errorf("the VIP had two holders for %v and none for %v during the rotation, want one throughout", r.dual, r.none)
	}
	if r.converge > 5*time.Second {
		t.Errorf("the nodes agreed on the new password %v after the edit, want within 5 s", r.converge.Round(time.Millisecond))
	}
}

// testEditSecretInPlace changes the password inside the Secret the VirtualIP already names.
// The agents may not watch Secrets: each reads it again at its next reconcile of the
// VirtualIP, one minute after the last one at the latest. While nodes disagree, one on the
// other password drops the MASTER's adverts and, after Master_Down_Interval, takes over: two
// MASTERs. How long they disagree depends on how far apart the agents' re-reads fall: every
// event of the VirtualIP (a status write) reconciles it on every agent at once and restarts
// each one's minute, so in a quiet group they re-read together. This is measured and
// reported; the assertion is that the group ends with one MASTER, n1, within 2 minutes.
func testEditSecretInPlace(t *testing.T, e *env, sn *sniffer) {
	row := chaosRow{Scenario: "PASS rotation: Secret edited in place", Outcome: "did not finish", Left: "-"}
	defer func() { row.Pass = !t.Failed(); recordRow(t, row) }()
	ctx := t.Context()
	r := e.rotate(t, sn, "third", 2*time.Minute, func() error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var s corev1.Secret
			if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: cluster.Namespace, Name: "vip-pass-2"}, &s); err != nil {
				return err
			}
			s.Data = map[string][]byte{passKey: []byte("rot-pw-3")}
			return e.k8s.Update(ctx, &s)
		})
	})
	row.Outcome, row.Converge = r.outcome(), r.converge
	t.Logf("Secret edited in place: %s; converged after %v", r.outcome(), r.converge.Round(time.Millisecond))
	if r.err != nil {
		t.Fatal(r.err)
	}
}

// rotation is what rotate measured.
type rotation struct {
	// onWire is when, after the change, the MASTER's adverts first carried the new password.
	onWire time.Duration
	// converge is the time from the change until the group agreed: the later of onWire, the
	// last auth_failed drop and the last change of holders, after which it stayed quiet.
	converge time.Duration
	// dual and none are how long two (or more) nodes, or none, held the VIP; maxDual the
	// longest stretch of two.
	dual, maxDual, none time.Duration
	// drops counts auth_failed drops by node; firstDrop and lastDrop bound them.
	drops               map[string]float64
	firstDrop, lastDrop time.Duration
	// masters lists the nodes that held the VIP at some point.
	masters string
	err     error
}

func (r rotation) outcome() string {
	var b strings.Builder
	if r.dual > 0 {
		fmt.Fprintf(&b, "2 MASTERs for %v (longest %v, held by %s)", r.dual.Round(10*time.Millisecond),
			r.maxDual.Round(10*time.Millisecond), r.masters)
	} else {
		fmt.Fprintf(&b, "one MASTER throughout (%s)", r.masters)
	}
	if r.none > 0 {
		fmt.Fprintf(&b, ", no holder for %v", r.none.Round(10*time.Millisecond))
	}
	if r.onWire > 0 {
		fmt.Fprintf(&b, "; new password on the wire after %v", r.onWire.Round(10*time.Millisecond))
	}
	var total float64
	var by []string
	for _, n := range slices.Sorted(maps.Keys(r.drops)) {
		if d := r.drops[n]; d > 0 {
			total += d
			by = append(by, fmt.Sprintf("%s %.0f", n, d))
		}
	}
	first, last := r.firstDrop.Round(100*time.Millisecond), r.lastDrop.Round(100*time.Millisecond)
	switch {
	case total == 0:
		// Every advert of the MASTER was accepted by every node.
		b.WriteString("; no auth_failed drop: the nodes switched within one advert interval of each other")
	case first == last:
		fmt.Fprintf(&b, "; nodes disagreed briefly: auth_failed drops at +%v (%s)", first, strings.Join(by, ", "))
	default:
		fmt.Fprintf(&b, "; nodes disagreed from +%v to +%v (auth_failed drops: %s)", first, last, strings.Join(by, ", "))
	}
	if r.err != nil {
		fmt.Fprintf(&b, "; %v", r.err)
	}
	return b.String()
}

// rotate applies change and measures, until the group agrees on the password named want or
// timeout passes: holders every 10 ms, the adverts on the wire, every agent's auth_failed
// drops every 100 ms. The group agrees once n1 alone holds the VIP and advertises want, and
// for quiet since the last drop, holder change or advert of another password or node.
func (e *env) rotate(t *testing.T, sn *sniffer, want string, timeout time.Duration, change func() error) rotation {
	t.Helper()
	hs := startHolders(e.nodes, vip, 10*time.Millisecond)
	defer hs.Stop()
	dm := startDrops(e.nodes, 100*time.Millisecond)
	defer dm.Stop()
	// Before: the MASTER n1 advertises, and nothing is dropped.
	time.Sleep(2 * v2Interval)
	if d := dm.events(time.Time{}); len(d) > 0 {
		t.Fatalf("auth_failed drops before the change: %v", d)
	}
	mark(t, "change the password to the "+want)
	t0 := time.Now()
	if err := change(); err != nil {
		t.Fatal(err)
	}
	var r rotation
	var agreed time.Time
	deadline := t0.Add(timeout)
	for {
		now := time.Now()
		var onWire, last time.Time
		for _, a := range sn.since(t0) {
			if onWire.IsZero() && a.From == "n1" && a.Password == want {
				onWire = a.At
			}
			if a.From != "n1" || a.Password != want {
				last = latest(last, a.At)
			}
		}
		drops := dm.events(t0)
		if len(drops) > 0 {
			last = latest(last, drops[len(drops)-1].At)
		}
		spans := hs.Spans()
		for _, s := range spans {
			if s.From.After(t0) {
				last = latest(last, s.From)
			}
		}
		cur := spans[len(spans)-1].Holders
		if !onWire.IsZero() && cur == "n1" {
			at := latest(onWire, last)
			if now.Sub(at) >= quiet {
				agreed = at
				r.onWire = onWire.Sub(t0)
				break
			}
		}
		if now.After(deadline) {
			r.err = fmt.Errorf("no agreement on the %s password %v after the change (n1's adverts with it from %v, holders %s, last disagreement %v)",
				want, timeout, since(t0, onWire), cur, since(t0, last))
			agreed = now
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.converge = agreed.Sub(t0)
	spans := hs.Stop()
	r.dual, r.maxDual = heldBy(spans, t0, time.Now(), func(n int) bool { return n >= 2 })
	r.none, _ = heldBy(spans, t0, time.Now(), func(n int) bool { return n == 0 })
	var held []string
	for _, s := range spans {
		for _, h := range strings.Split(s.Holders, ",") {
			if h != "none" && !slices.Contains(held, h) && !s.End.Before(t0) {
				held = append(held, h)
			}
		}
	}
	slices.Sort(held)
	r.masters = strings.Join(held, ",")
	r.drops = map[string]float64{}
	for i, d := range dm.events(t0) {
		r.drops[d.Node] += d.Delta
		if i == 0 {
			r.firstDrop = d.At.Sub(t0)
		}
		r.lastDrop = d.At.Sub(t0)
	}
	t.Logf("holders from the change on (sampled every 10 ms, longest gap %v): %s", hs.MaxGap().Round(time.Millisecond), spanString(spans, t0))
	return r
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// since renders t relative to t0, or "never".
func since(t0, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(t0).Round(time.Millisecond).String()
}

// --- scenarios 2 and 3: the control plane down ---

// outage is a control-plane component taken down and brought back.
type outage struct {
	what  string
	down  time.Duration
	stop  func() error
	start func(context.Context) error
}

// testControlPlaneOutage takes o's component down for o.down. During it, n1's link is cut
// once: n2 must take over within about Master_Down_Interval, as without Kubernetes. The link
// comes back: n1 preempts. At the end the component starts again: status catches up (master
// n1, n2's member showing its hand-back during the outage) within 10 s, no agent restarted,
// and, sampled every 100 ms (holders, and a client probe) over the whole outage, the VIP had
// exactly one holder and answered at all times except between the cut and the hand-back.
func testControlPlaneOutage(t *testing.T, e *env, o outage) {
	row := chaosRow{Scenario: fmt.Sprintf("%s down %v, n1's link cut during it", o.what, o.down),
		Outcome: "did not finish", Left: "-"}
	defer func() { row.Pass = !t.Failed(); recordRow(t, row) }()
	ctx := t.Context()
	n1, n2 := e.nodes[0], e.nodes[1]
	before, err := e.waitStatus(ctx, statusSettle, settled("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitHolders(e.nodes, vip, e.nodes[:1], settle); err != nil {
		t.Fatal(err)
	}
	pids, starts := map[string]int{}, map[string]int{}
	for name, p := range e.agents {
		pids[name], starts[name] = p.Pid(), strings.Count(p.Log(), "kube-vrrp agent running")
	}
	hs := startHolders(e.nodes, vip, 100*time.Millisecond)
	defer hs.Stop()
	probe, err := e.l.StartProbe(vip.Addr(), lab.ProbeOptions{Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Stop()

	mark(t, "stop "+o.what)
	down := time.Now()
	if err := o.stop(); err != nil {
		t.Fatalf("stop %s: %v", o.what, err)
	}
	up := false
	defer func() {
		if !up {
			_ = o.start(context.Background())
		}
	}()
	// The API server really cannot serve a read that needs etcd.
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = e.k8s.Get(short, types.NamespacedName{Name: vipName}, &v1alpha1.VirtualIP{})
	cancel()
	if err == nil {
		t.Fatalf("the API server answers a GET with %s down", o.what)
	}
	t.Logf("%s down: a GET fails: %.200v", o.what, err)

	out, err := e.l.MeasureOutage(ctx, vip.Addr(), func() error {
		mark(t, "cut n1's link")
		return n1.CutLink()
	}, lab.OutageOptions{AwaitNode: "n2", Timeout: settle})
	restored := false
	defer func() {
		if !restored {
			_ = n1.RestoreLink()
		}
	}()
	if err != nil {
		t.Fatalf("failover with %s down: %v (%s)", o.what, err, out)
	}
	cut := out.FaultAt
	md := masterDown(priorities["n2"])
	t.Logf("%s down, link cut on n1: client saw %s (n2's Master_Down_Interval %v)", o.what, out, md.Round(time.Millisecond))
	if out.After != "n2" || out.Duration > md+time.Second {
		t.Errorf("failover with %s down: %s, want n2 answering within Master_Down_Interval (%v) + 1 s", o.what, out, md.Round(time.Millisecond))
	}
	if m, err := scrapeMetrics(n2); err != nil {
		t.Error(err)
	} else if s := m.value("kube_vrrp_state", `state="Master"`); s != 1 {
		t.Errorf("n2 kube_vrrp_state{state=Master} = %v, want 1", s)
	}

	mark(t, "restore n1's link")
	restored = true
	restore := time.Now()
	if err := n1.RestoreLink(); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitHolders(e.nodes, vip, e.nodes[:1], settle); err != nil {
		t.Fatal(err)
	}
	handBack := time.Since(restore)
	if _, err := probe.WaitReply("n1", settle); err != nil {
		t.Fatal(err)
	}
	// The client's neighbour entry follows n1's announcement; a second is far above that.
	cleanFrom := time.Now().Add(time.Second)
	t.Logf("n1's link back: n1 alone holds the VIP %v later, and answers the client %v later",
		handBack.Round(time.Millisecond), time.Since(restore).Round(time.Millisecond))

	rest := time.Until(down.Add(o.down))
	t.Logf("%s stays down %v more (%v in all)", o.what, rest.Round(time.Second), o.down)
	if err := sleepCtx(ctx, rest); err != nil {
		t.Fatal(err)
	}
	mark(t, "start "+o.what)
	up = true
	if err := o.start(ctx); err != nil {
		t.Fatalf("start %s again: %v", o.what, err)
	}
	back := time.Now()
	downFor := back.Sub(down)
	// Status has caught up once it names n1 MASTER and shows n2's hand-back, which happened
	// during the outage (lastTransitionTime has whole seconds). The first successful GET says
	// when the API server served again: after etcd's return it has to reconnect first, which
	// is not the agents' doing.
	var serving time.Time
	got, err := e.waitStatus(ctx, statusSettle, func(v *observed) error {
		if serving.IsZero() {
			serving = time.Now()
		}
		if err := settled("n1")(v); err != nil {
			return err
		}
		if lt := entry(v, "n2").LastTransitionTime; lt == nil || lt.Time.Before(restore.Truncate(time.Second)) {
			return fmt.Errorf("n2's lastTransitionTime %v is before its hand-back at %s", lt, restore.UTC().Format(time.TimeOnly))
		}
		if v.Status.ObservedGeneration != before.Generation {
			return fmt.Errorf("observedGeneration %d, want %d", v.Status.ObservedGeneration, before.Generation)
		}
		return nil
	})
	catchUp := time.Since(back)
	var serveLag time.Duration
	if !serving.IsZero() {
		serveLag = serving.Sub(back)
	}
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("%s back: the API server served a GET after %v, status caught up after %v: %s", o.what,
			serveLag.Round(time.Millisecond), catchUp.Round(time.Millisecond), summary(got))
		if catchUp-serveLag > 10*time.Second {
			t.Errorf("status caught up %v after the API server served again, want within 10 s", (catchUp - serveLag).Round(time.Millisecond))
		}
	}
	spans := hs.Stop()
	res := probe.Stop()

	// Outside [cut, cleanFrom], n1 alone holds the VIP and every probe is answered by n1.
	var bad []string
	badSpans, badGaps := 0, 0
	for _, s := range spans {
		if s.Holders != "n1" && (s.From.Before(cut) || s.End.After(cleanFrom)) {
			badSpans++
			bad = append(bad, fmt.Sprintf("%s held by %s for %v at +%v", vip.Addr(), s.Holders,
				s.End.Sub(s.From).Round(time.Millisecond), s.From.Sub(down).Round(time.Millisecond)))
		}
	}
	for _, g := range res.Gaps() {
		if !g.To.After(cut) || !g.From.Before(cleanFrom) {
			badGaps++
			bad = append(bad, fmt.Sprintf("the client lost %d probes at +%v", g.Lost, g.From.Sub(down).Round(time.Millisecond)))
		}
	}
	dual, _ := heldBy(spans, cut, cleanFrom, func(n int) bool { return n >= 2 })
	t.Logf("over the outage: holders (sampled every 100 ms, longest gap %v) %s", hs.MaxGap().Round(time.Millisecond), spanString(spans, down))
	t.Logf("over the outage: client %s", res)
	if len(bad) > 0 {
		t.Errorf("outside the link cut, the VIP had not exactly one holder or did not answer: %s", strings.Join(bad, "; "))
	}
	if last := res.Last(); last != "n1" {
		t.Errorf("the client reaches %s at %q at the end, want n1", vip.Addr(), last)
	}
	restarted := 0
	for name, p := range e.agents {
		if p.Exited() || p.Pid() != pids[name] || strings.Count(p.Log(), "kube-vrrp agent running") != starts[name] {
			restarted++
			t.Errorf("agent %s was restarted (exited %v, pid %d -> %d)", name, p.Exited(), pids[name], p.Pid())
		}
	}
	if api := e.cp.APIServer(); api == nil || api.Exited() {
		t.Errorf("kube-apiserver is not running at the end of the %s outage", o.what)
	}
	row.Converge = catchUp
	row.Outcome = fmt.Sprintf("failover to n2 %v (client outage), n1 alone again %v after the link came back; status caught up %v after %s returned (the API server served after %v); "+
		"outside the cut %d intervals with no or two holders and %d client outages (during it n1, cut off, and n2 both held the VIP %v); %d agents restarted",
		out.Duration.Round(10*time.Millisecond), handBack.Round(10*time.Millisecond), catchUp.Round(10*time.Millisecond), o.what,
		serveLag.Round(10*time.Millisecond), badSpans, badGaps, dual.Round(100*time.Millisecond), restarted)
	t.Logf("%s was down %v", o.what, downFor.Round(time.Second))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// --- scenario 4: SIGTERM ---

// testSIGTERMAll sends SIGTERM to every agent at the same moment, as a node drain or an
// uninstall does: each exits 0 within its grace period, no node keeps the VIP, and every state
// directory's record of bound addresses is empty.
func testSIGTERMAll(t *testing.T, e *env) {
	row := chaosRow{Scenario: "SIGTERM to every agent at once", Outcome: "did not finish", Left: "not checked"}
	defer func() { row.Pass = !t.Failed(); recordRow(t, row) }()
	hs := startHolders(e.nodes, vip, 10*time.Millisecond)
	defer hs.Stop()
	mark(t, "SIGTERM every agent")
	t0 := time.Now()
	for _, n := range e.nodes {
		if err := e.agents[n.Name].Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM %s's agent: %v", n.Name, err)
		}
	}
	var slowest time.Duration
	for _, n := range e.nodes {
		p := e.agents[n.Name]
		// Inside the kubelet's default grace period (30 s) with room to spare.
		err := p.Wait(20 * time.Second)
		if errors.Is(err, lab.ErrRunning) {
			t.Errorf("%s's agent still runs 20 s after SIGTERM:\n%s", n.Name, p.Tail(20))
			p.Kill()
			continue
		}
		slowest = max(slowest, time.Since(t0))
		if err != nil {
			t.Errorf("%s's agent exited with %v after SIGTERM:\n%s", n.Name, err, p.Tail(20))
		}
	}
	spans := hs.Stop()
	var left []string
	for _, n := range e.nodes {
		if n.HasAddress(vip) {
			left = append(left, fmt.Sprintf("%s on %s", vip.Addr(), n.Name))
		}
		dir, err := n.StateDir(0)
		if err != nil {
			t.Fatal(err)
		}
		st, err := hostnet.OpenState(dir)
		if err != nil {
			t.Errorf("%s: %v", n.Name, err)
			continue
		}
		for _, b := range st.Stale() {
			left = append(left, fmt.Sprintf("%s's record: %s", n.Name, b))
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}
	gone := spans[len(spans)-1].From.Sub(t0)
	t.Logf("SIGTERM to every agent: all exited within %v; holders %s", slowest.Round(time.Millisecond), spanString(spans, t0))
	row.Converge = gone
	row.Outcome = fmt.Sprintf("all %d agents exited within %v; VIP released %v after the signal (holders: %s)",
		len(e.nodes), slowest.Round(10*time.Millisecond), gone.Round(10*time.Millisecond), holderSequence(spans))
	row.Left = "nothing"
	if len(left) > 0 {
		row.Left = strings.Join(left, ", ")
		t.Errorf("left behind after SIGTERM: %s", row.Left)
	}
	if h := spans[len(spans)-1].Holders; h != "none" {
		t.Errorf("%s still held by %s after every agent stopped", vip.Addr(), h)
	}
}

// --- instruments ---

// holderSpan is a stretch of consecutive samples with the same holders of the VIP.
type holderSpan struct {
	// From is the first sample; End is the next span's first sample (the last sample for the
	// last span).
	From, End time.Time
	// Holders names the nodes holding the VIP ("none", "n1", "n1,n2"); N counts them.
	Holders string
	N       int
}

// holderSampler samples which nodes hold an address at a fixed interval.
type holderSampler struct {
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	spans []holderSpan
	// maxGap is the longest time between two samples: far above the interval means the
	// sampler was starved of CPU and a short stretch could have been missed.
	maxGap time.Duration
}

func startHolders(nodes []*lab.Node, p netip.Prefix, every time.Duration) *holderSampler {
	s := &holderSampler{stop: make(chan struct{}), done: make(chan struct{})}
	sample := func() {
		h := lab.Holders(nodes, p)
		now := time.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		name := names(h)
		if k := len(s.spans); k > 0 {
			s.maxGap = max(s.maxGap, now.Sub(s.spans[k-1].End))
			if s.spans[k-1].Holders == name {
				s.spans[k-1].End = now
				return
			}
			s.spans[k-1].End = now
		}
		s.spans = append(s.spans, holderSpan{From: now, End: now, Holders: name, N: len(h)})
	}
	sample()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				sample()
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return s
}

// Spans returns the spans so far.
func (s *holderSampler) Spans() []holderSpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.spans)
}

// MaxGap returns the longest time between two samples so far.
func (s *holderSampler) MaxGap() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxGap
}

// Stop ends sampling (idempotent) and returns every span.
func (s *holderSampler) Stop() []holderSpan {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return s.Spans()
}

// heldBy returns how long, within [from, to], the VIP had a number of holders that ok accepts,
// in all and in the longest stretch.
func heldBy(spans []holderSpan, from, to time.Time, ok func(int) bool) (total, longest time.Duration) {
	for _, s := range spans {
		if !ok(s.N) {
			continue
		}
		a, b := s.From, s.End
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if d := b.Sub(a); d > 0 {
			total += d
			longest = max(longest, d)
		}
	}
	return total, longest
}

// spanString renders spans relative to t0: "n1 (-2.1s), n1,n2 (+3.2s, 1.4s), n1 (+4.6s)".
func spanString(spans []holderSpan, t0 time.Time) string {
	var parts []string
	for _, s := range spans {
		if s.End.Before(t0) && len(spans) > 1 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s from %+v for %v", s.Holders,
			s.From.Sub(t0).Round(time.Millisecond), s.End.Sub(s.From).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// holderSequence renders who held the VIP in turn: "n1 -> n2 -> none".
func holderSequence(spans []holderSpan) string {
	var seq []string
	for _, s := range spans {
		seq = append(seq, s.Holders)
	}
	return strings.Join(seq, " -> ")
}

// dropEvent is an increase of a node's auth_failed drop counter.
type dropEvent struct {
	At    time.Time
	Node  string
	Delta float64
}

func (d dropEvent) String() string {
	return fmt.Sprintf("%s +%.0f at %s", d.Node, d.Delta, d.At.UTC().Format("15:04:05.000"))
}

// dropMonitor scrapes every agent's kube_vrrp_packets_dropped_total{reason="auth_failed"} at
// a fixed interval and records each increase.
type dropMonitor struct {
	stop chan struct{}
	done chan struct{}

	mu  sync.Mutex
	evs []dropEvent
}

func startDrops(nodes []*lab.Node, every time.Duration) *dropMonitor {
	m := &dropMonitor{stop: make(chan struct{}), done: make(chan struct{})}
	last := map[string]float64{}
	sample := func() {
		for _, n := range nodes {
			mt, err := scrapeMetrics(n)
			if err != nil {
				continue // the next scrape tries again; an agent restart would show elsewhere
			}
			v := max(mt.value("kube_vrrp_packets_dropped_total", `reason="auth_failed"`), 0)
			prev, seen := last[n.Name]
			last[n.Name] = v
			if seen && v > prev {
				m.mu.Lock()
				m.evs = append(m.evs, dropEvent{At: time.Now(), Node: n.Name, Delta: v - prev})
				m.mu.Unlock()
			}
		}
	}
	sample()
	go func() {
		defer close(m.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return m
}

// events returns the increases seen after t.
func (m *dropMonitor) events(t time.Time) []dropEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []dropEvent
	for _, e := range m.evs {
		if e.At.After(t) {
			out = append(out, e)
		}
	}
	return out
}

func (m *dropMonitor) Stop() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

// scrapeMetrics reads n's agent's /metrics (plain HTTP inside n's namespace) and keeps the
// VirtualIP's samples. Unlike env.scrape it returns its error, for use off the test's
// goroutine.
func scrapeMetrics(n *lab.Node) (metrics, error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := n.InNetns(func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + listen + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", n.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", n.Name, err)
	}
	var m metrics
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "kube_vrrp_") && strings.Contains(line, `vip="`+vipName+`"`) {
			m = append(m, line)
		}
	}
	return m, nil
}

// seenAdvert is a VRRPv2 advert of VRID 51 seen on the LAN.
type seenAdvert struct {
	At       time.Time
	From     string // the sending node
	Priority uint8
	// Password names the password it carries ("first", ...; "other" for none of them).
	Password string
}

// sniffer reads every VRRP advert of the VirtualIP on the LAN from the client's namespace (a
// raw socket that joined 224.0.0.18): which node advertises, with which password.
type sniffer struct {
	conn *ipv4.PacketConn
	done chan struct{}

	mu      sync.Mutex
	adverts []seenAdvert
}

func startSniffer(t *testing.T, l *lab.Lab) *sniffer {
	t.Helper()
	client := l.Client()
	var c net.PacketConn
	var pc *ipv4.PacketConn
	err := client.InNetns(func() error {
		var err error
		if c, err = net.ListenPacket(fmt.Sprintf("ip4:%d", packet.Protocol), "0.0.0.0"); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(client.Interface)
		if err != nil {
			return err
		}
		pc = ipv4.NewPacketConn(c)
		return pc.JoinGroup(ifi, &net.IPAddr{IP: packet.MulticastIPv4.AsSlice()})
	})
	if err != nil {
		if c != nil {
			c.Close()
		}
		t.Fatalf("VRRP sniffer in the client namespace: %v", err)
	}
	byAddr := map[netip.Addr]string{}
	for _, n := range l.Nodes() {
		byAddr[n.IPv4] = n.Name
	}
	known := map[[packet.PassLen]byte]string{}
	for pw, name := range passwords {
		var k [packet.PassLen]byte
		copy(k[:], pw)
		known[k] = name
	}
	s := &sniffer{conn: pc, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 1500)
		for {
			n, _, src, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			at := time.Now()
			ip, ok := src.(*net.IPAddr)
			if !ok {
				continue
			}
			from, _ := netip.AddrFromSlice(ip.IP)
			from = from.Unmap()
			adv, err := packet.Parse(buf[:n], from, packet.MulticastIPv4)
			if err != nil || adv.VRID != 51 || adv.Version != 2 {
				continue
			}
			pw, ok := known[adv.AuthData]
			if !ok || adv.AuthType != packet.AuthPass {
				pw = "other"
			}
			name := byAddr[from]
			if name == "" {
				name = from.String()
			}
			s.mu.Lock()
			s.adverts = append(s.adverts, seenAdvert{At: at, From: name, Priority: adv.Priority, Password: pw})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-s.done
	})
	return s
}

// since returns the adverts seen after t.
func (s *sniffer) since(t time.Time) []seenAdvert {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.adverts, t, func(a seenAdvert, t time.Time) int { return a.At.Compare(t) })
	return slices.Clone(s.adverts[i:])
}

// --- the table ---

// chaosRow is one row of the chaos table, as test/chaos's Row.
type chaosRow struct {
	Scenario, Impl, Outcome string
	Converge                time.Duration
	Left                    string
	Pass                    bool
}

var chaosRows struct {
	mu   sync.Mutex
	rows []chaosRow
}

// recordRow logs r and adds it to the table.
func recordRow(t *testing.T, r chaosRow) {
	t.Helper()
	if r.Impl == "" {
		r.Impl = chaosImpl
	}
	t.Logf("chaos row: %s | %s | %s | %s | %s | %s", r.Scenario, r.Impl, r.Outcome, convergeString(r.Converge), r.Left, passString(r.Pass))
	chaosRows.mu.Lock()
	defer chaosRows.mu.Unlock()
	chaosRows.rows = append(chaosRows.rows, r)
}

func convergeString(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

func passString(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

// writeChaosTable writes the rows in test/chaos's format (sorted by scenario, then impl).
func writeChaosTable(w io.Writer, rows []chaosRow) {
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b chaosRow) int {
		if c := strings.Compare(a.Scenario, b.Scenario); c != 0 {
			return c
		}
		return strings.Compare(a.Impl, b.Impl)
	})
	head := []string{"scenario", "impl", "outcome", "converge", "left behind", "pass"}
	cells := [][]string{head}
	for _, r := range rows {
		cells = append(cells, []string{r.Scenario, r.Impl, r.Outcome, convergeString(r.Converge), r.Left, passString(r.Pass)})
	}
	width := make([]int, len(head))
	for _, c := range cells {
		for i, s := range c {
			width[i] = max(width[i], len(s))
		}
	}
	fmt.Fprintln(w, "chaos table, Kubernetes mode (test/agentlab):")
	for _, c := range cells {
		var b strings.Builder
		for i, s := range c {
			fmt.Fprintf(&b, "| %-*s ", width[i], s)
		}
		fmt.Fprintln(w, b.String()+"|")
	}
}

// flushChaosTable logs the table and writes it to $KUBE_VRRP_CHAOS_TABLE.k8s when set.
func flushChaosTable(t *testing.T) {
	chaosRows.mu.Lock()
	rows := slices.Clone(chaosRows.rows)
	chaosRows.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	var b strings.Builder
	writeChaosTable(&b, rows)
	t.Log("\n" + b.String())
	path := os.Getenv(chaosTableEnv)
	if path == "" {
		return
	}
	if err := os.WriteFile(path+".k8s", []byte(b.String()), 0o644); err != nil {
		t.Errorf("chaos table: %v", err)
	}
}
