package agentlab_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// The restart lab (docs/design.md §4.9.1): two nodes with HAProxy serving a VIP, `kube-vrrp
// run` on both with VRRPv3 adverts every 100 ms, a client holding long-lived connections
// through the VIP and opening a new one every 10 ms.
const (
	handoffBound = 8 * time.Second
	// handoffConns is how many long-lived connections the client holds.
	handoffConns = 50
)

var (
	handoffVIP = netip.MustParsePrefix("198.18.0.150/24")
	handoffWeb = netip.AddrPortFrom(handoffVIP.Addr(), 80)
)

type handoffNode struct {
	*lab.Node
	ns *lab.PIDNamespace
	kv *lab.NSProc
}

type handoffLab struct {
	t        *testing.T
	l        *lab.Lab
	vip      lab.VirtualIP
	manifest string
	n1, n2   *handoffNode
}

// newHandoffLab starts HAProxy on both nodes and kube-vrrp on n1 (priority 110, MASTER) and
// then on n2 (100, BACKUP).
func newHandoffLab(t *testing.T) *handoffLab {
	t.Helper()
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	h := &handoffLab{t: t, l: l}
	var ns []*handoffNode
	for _, n := range l.Nodes() {
		hn := &handoffNode{Node: n, ns: n.StartPIDNamespace(t)}
		hn.ns.StartHAProxy(t, handoffVIP.Addr())
		ns = append(ns, hn)
	}
	h.n1, h.n2 = ns[0], ns[1]
	h.vip = lab.VirtualIP{Name: "web", VRID: 61, Addresses: []netip.Prefix{handoffVIP},
		AdvertInt: 100 * time.Millisecond, NodePriorities: map[string]int{h.n1.Name: 110, h.n2.Name: 100}}
	h.manifest = h.vip.String()
	h.n1.kv = h.start(h.n1)
	if err := lab.WaitKubeVRRPState(h.n1.kv.Proc, "web", "Master", settle); err != nil {
		t.Fatal(err)
	}
	h.n2.kv = h.start(h.n2)
	if err := lab.WaitKubeVRRPState(h.n2.kv.Proc, "web", "Backup", settle); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitSoleHolder(l.Nodes(), handoffVIP, h.n1.Node, 300*time.Millisecond, settle); err != nil {
		t.Fatal(err)
	}
	return h
}

// start starts a new `kube-vrrp run` on n, from the binary lab.KubeVRRPBinary built for this
// test process.
func (h *handoffLab) start(n *handoffNode) *lab.NSProc {
	return n.ns.StartKubeVRRP(h.t, h.manifest, "--handoff-timeout", handoffBound.String())
}

// exec starts `kube-vrrp run` on n with another manifest and returns once it has been
// executed (or has already ended).
func (h *handoffLab) exec(n *handoffNode, manifest string) *lab.NSProc {
	h.t.Helper()
	p, err := n.ns.ExecKubeVRRP(lab.KubeVRRPBinary(h.t), manifest, "--handoff-timeout", handoffBound.String())
	if err != nil {
		h.t.Fatalf("%s: kube-vrrp: %v", n.Name, err)
	}
	return p
}

// startClient starts the client's long-lived connections to the VIP and its new request
// every 10 ms, and returns once n1 has served them for 0.5 s.
func (h *handoffLab) startClient() (connLoad, *lab.HTTPLoad) {
	h.t.Helper()
	conns := startConnLoad(h.t, h.l.Client(), handoffConns)
	load := h.l.StartHTTPLoad(handoffWeb, lab.HTTPLoadOptions{Interval: 10 * time.Millisecond, Timeout: time.Second})
	if _, err := load.WaitServed(h.n1.Name, settle); err != nil {
		h.t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	return conns, load
}

// stopForRestart sends SIGUSR2 to n's agent and waits for it to exit 0, having handed off.
func (h *handoffLab) stopForRestart(n *handoffNode) {
	h.t.Helper()
	if err := n.kv.Signal(syscall.SIGUSR2); err != nil {
		h.t.Fatal(err)
	}
	if err := n.kv.Wait(5 * time.Second); err != nil {
		h.t.Fatalf("%s: kube-vrrp after SIGUSR2: %v, want exit 0:\n%s", n.Name, err, n.kv.Tail(20))
	}
	if !strings.Contains(n.kv.Log(), `"msg":"handed over to the successor"`) {
		h.t.Fatalf("%s: kube-vrrp did not hand off:\n%s", n.Name, n.kv.Tail(20))
	}
}

// holderWatch records, every 10 ms, whether n holds the VIP.
type holderWatch struct {
	w *lab.HolderWatch
	n *lab.Node
}

func watchHolder(n *lab.Node) holderWatch {
	return holderWatch{w: lab.WatchHolders([]*lab.Node{n}, handoffVIP, 10*time.Millisecond), n: n}
}

// stop returns how many checks were made and the first that found the VIP on n.
func (w holderWatch) stop() (checks int, first time.Time) {
	r := w.w.Stop()
	return r.Checks, r.FirstHeld(w.n.Name)
}

// connLoad is the client's long-lived connections to the VIP (lab.LongConns).
type connLoad struct{ c *lab.LongConns }

func startConnLoad(t *testing.T, client *lab.Node, n int) connLoad {
	t.Helper()
	c, err := client.Lab().StartLongConns(handoffWeb, lab.LongConnsOptions{Conns: n})
	if err != nil {
		t.Fatal(err)
	}
	return connLoad{c}
}

// stop ends the connections and returns the requests they carried, their errors and who
// served them.
func (c connLoad) stop() (int, []string, map[string]int) {
	r := c.c.Stop()
	errs := make([]string, len(r.Broken))
	for i, b := range r.Broken {
		errs[i] = b.String()
	}
	return r.Requests, errs, r.Served
}

// TestHandoffRestart restarts the MASTER's agent as a service manager does (SIGUSR2, exit, a
// new process of the freshly built binary): nothing moves. The backup never holds the VIP
// (checked every 10 ms), no long-lived connection breaks, no new request fails, and the new
// process is MASTER with reason Resumed.
func TestHandoffRestart(t *testing.T) {
	h := newHandoffLab(t)
	n1, n2 := h.n1, h.n2
	watch := watchHolder(n2.Node)
	conns, load := h.startClient()

	signalled := time.Now()
	h.stopForRestart(n1)
	exited := time.Now()
	n1.kv = h.start(n1)
	resumed, err := lab.WaitKubeVRRPEvent(n1.kv.Proc, 0, settle, lab.Entered("Master", "Resumed"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGUSR2 to exit %s, exit to the successor's Resumed %s", exited.Sub(signalled).Round(time.Millisecond),
		resumed.At.Sub(exited).Round(time.Millisecond))
	if !strings.Contains(n1.kv.Log(), `"msg":"resuming the instance handed over by the previous agent"`) {
		t.Errorf("%s: the successor does not say it resumed:\n%s", n1.Name, n1.kv.Tail(20))
	}
	// Settled: the record is gone, so a later crash of the successor is not taken for a handoff.
	if state, err := n1.StateDir(0); err != nil {
		t.Error(err)
	} else if _, err := os.Stat(filepath.Join(state, "handoff")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: the handoff record is still there once the successor resumed: %v", n1.Name, err)
	}
	// Past the longest the backup could have waited on the stretched interval.
	time.Sleep(handoffBound + time.Second)

	res := load.Stop()
	requests, errs, served := conns.stop()
	checks, first := watch.stop()
	t.Logf("new connections: %s", res)
	t.Logf("long-lived connections: %d, %d requests, served by %v; %d checks of %s", handoffConns, requests, served, checks, n2.Name)
	if !first.IsZero() {
		t.Errorf("%s held %s at %s, %s after SIGUSR2: the VIP moved", n2.Name, handoffVIP.Addr(), first.Format("15:04:05.000"),
			first.Sub(signalled).Round(time.Millisecond))
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d long-lived connections broke: %s", len(errs), handoffConns, strings.Join(errs, "; "))
	}
	if n := res.Failed(); n > 0 {
		t.Errorf("%d new requests failed: %v", n, res.Errors())
	}
	if len(served) != 1 || served[n1.Name] == 0 {
		t.Errorf("long-lived connections served by %v, want %s alone", served, n1.Name)
	}
	if st := lab.KubeVRRPState(n1.kv.Proc, "web"); st != "Master" {
		t.Errorf("%s: the successor is %s, want Master", n1.Name, st)
	}
	if st := lab.KubeVRRPState(n2.kv.Proc, "web"); st != "Backup" {
		t.Errorf("%s: %s, want Backup", n2.Name, st)
	}
}

// TestHandoffNoSuccessor stops the MASTER's agent for a restart and starts none: the backup
// takes over within the bound (+1 s), and the old node's kernel removes the address by the
// end of its lifetime (the bound, +1 s).
func TestHandoffNoSuccessor(t *testing.T) {
	h := newHandoffLab(t)
	n1, n2 := h.n1, h.n2
	signalled := time.Now()
	h.stopForRestart(n1)
	if !n1.HasAddress(handoffVIP) {
		t.Fatalf("%s removed %s at a handoff", n1.Name, handoffVIP.Addr())
	}
	var took, gone time.Time
	for deadline := signalled.Add(handoffBound + 2*time.Second); time.Now().Before(deadline) && (took.IsZero() || gone.IsZero()); time.Sleep(10 * time.Millisecond) {
		if took.IsZero() && n2.HasAddress(handoffVIP) {
			took = time.Now()
		}
		if gone.IsZero() && !n1.HasAddress(handoffVIP) {
			gone = time.Now()
		}
	}
	t.Logf("after SIGUSR2: %s took over at %s, %s dropped the address at %s", n2.Name, sinceStr(took, signalled), n1.Name, sinceStr(gone, signalled))
	switch {
	case took.IsZero():
		t.Errorf("%s never took over", n2.Name)
	case took.Sub(signalled) > handoffBound+time.Second:
		t.Errorf("%s took over %s after SIGUSR2, want within %s", n2.Name, took.Sub(signalled), handoffBound+time.Second)
	case took.Sub(signalled) < handoffBound/2:
		t.Errorf("%s took over %s after SIGUSR2: the stretched interval did not hold it", n2.Name, took.Sub(signalled))
	}
	if gone.IsZero() || gone.Sub(signalled) > handoffBound+time.Second {
		t.Errorf("%s still had %s %s after SIGUSR2, want it gone by the bound (+1 s)", n1.Name, handoffVIP.Addr(), sinceStr(gone, signalled))
	}
	if _, err := lab.WaitKubeVRRPEvent(n2.kv.Proc, 0, time.Second, lab.Entered("Master", "")); err != nil {
		t.Error(err)
	}
	// The next agent, later, starts as usual from the expired record: it preempts back.
	n1.kv = h.start(n1)
	if err := lab.WaitSoleHolder(h.l.Nodes(), handoffVIP, n1.Node, 300*time.Millisecond, settle); err != nil {
		t.Error(err)
	}
	if strings.Contains(n1.kv.Log(), `"msg":"resuming the instance handed over by the previous agent"`) {
		t.Errorf("%s resumed from an expired handoff:\n%s", n1.Name, n1.kv.Tail(20))
	}
}

// TestHandoffFinalStop: SIGTERM is still final, the handover to the backup a matter of
// milliseconds for the client (its UDP probes to the VIP every 10 ms, which each node answers
// with its name); the HTTP client's view is logged beside it.
func TestHandoffFinalStop(t *testing.T) {
	h := newHandoffLab(t)
	n1, n2 := h.n1, h.n2
	load := h.l.StartHTTPLoad(handoffWeb, lab.HTTPLoadOptions{Interval: 10 * time.Millisecond, Timeout: time.Second})
	if _, err := load.WaitServed(n1.Name, settle); err != nil {
		t.Fatal(err)
	}
	out, err := h.l.MeasureOutage(t.Context(), handoffVIP.Addr(), func() error { return n1.kv.Signal(syscall.SIGTERM) },
		lab.OutageOptions{AwaitNode: n2.Name, Timeout: settle})
	if err != nil {
		t.Fatalf("%v: %s", err, out.Result)
	}
	res := load.Stop()
	t.Logf("SIGTERM: client outage %s; HTTP: %s", out, res)
	// A client that itself stalled (a loaded machine) overstates the outage by up to the
	// stall beyond its probe interval.
	stall := out.Result.MaxSendGap()
	if allowed := 100*time.Millisecond + max(0, stall-10*time.Millisecond); out.Duration > allowed {
		t.Errorf("handover after SIGTERM: client outage %s, want at most 100 ms (the client stalled up to %s)",
			out.Duration, stall.Round(time.Millisecond))
	}
	if err := n1.kv.Wait(5 * time.Second); err != nil {
		t.Errorf("%s after SIGTERM: %v", n1.Name, err)
	}
	if strings.Contains(n1.kv.Log(), `"msg":"handed over to the successor"`) {
		t.Errorf("%s handed off at SIGTERM", n1.Name)
	}
	if n1.HasAddress(handoffVIP) {
		t.Errorf("%s kept %s after SIGTERM", n1.Name, handoffVIP.Addr())
	}
}

func sinceStr(t, from time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(from).Round(time.Millisecond).String()
}

// TestHandoffSuccessorCrash stops the MASTER's agent for a restart (SIGUSR2) and starts a
// successor that dies before it takes over, in three ways:
//
//   - rejected: the new version rejects its manifest (a field it does not know) and exits 1
//     before it touches the host; a service manager starts it three times, 100 ms apart
//     (systemd's Restart=always with its default RestartSec);
//   - failed: it exits 1 after it has read the handoff record (its manifest names an
//     interface the node does not have), three times too. The record stays until an agent
//     has settled it, so each start spares n1's address as handed over (before, the second
//     start found no record and removed it as a crashed agent's: a 7 s outage);
//   - killed: SIGKILLed as soon as it has been executed. How far it got (the handoff record
//     taken? the instance resumed, which makes the address permanent?) is read from the host
//     and logged; a SIGKILL after the resume leaves the address bound, as it leaves any
//     MASTER's, until the next agent starts.
//
// In every case the backup holds the VIP within the bound (+1 s) of the SIGUSR2 (checked
// every 10 ms). Unless the successor resumed, it waited at least half the bound (the stretched
// interval held it), n1's kernel dropped the address by the end of its lifetime (the bound,
// +1 s), the VIP moved once, n2 is its only holder afterwards, and the two held it at once
// for at most the quarter of the bound between the backup's Master_Down_Interval and the
// address's lifetime (+1 s). Where n1 kept the address until then, new requests (every 10 ms)
// were served throughout: by n1's HAProxy, then n2's (an outage of at most 100 ms). Then a
// working agent starts on n1 as usual and preempts back.
func TestHandoffSuccessorCrash(t *testing.T) {
	for _, c := range []struct {
		name string
		// crash starts the successors on n1 and sees them die; it says how far the last got.
		crash func(t *testing.T, h *handoffLab) (how string, resumed bool)
		// kept: n1 keeps the address until the end of its lifetime (unless resumed).
		kept bool
	}{
		{"rejected", func(t *testing.T, h *handoffLab) (string, bool) {
			v := h.vip
			v.Extra = append(slices.Clone(v.Extra), "handoffWindow: 8s")
			h.crashLoop(v.String(), `unknown field "spec.handoffWindow"`)
			return "rejected its manifest 3 times", false
		}, true},
		{"failed", func(t *testing.T, h *handoffLab) (string, bool) {
			v := h.vip
			v.Interface = "eth9"
			h.crashLoop(v.String(), `interface \"eth9\" (spec.interface) does not exist on the node`)
			return "failed after reading the handoff record, 3 times", false
		}, true},
		{"killed", func(t *testing.T, h *handoffLab) (string, bool) {
			p := h.exec(h.n1, h.manifest)
			executed := time.Now()
			p.Kill()
			how := fmt.Sprintf("SIGKILLed %s after it was executed, ", time.Since(executed).Round(10*time.Microsecond))
			state, err := h.n1.StateDir(0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = os.Stat(filepath.Join(state, "handoff"))
			taken := errors.Is(err, fs.ErrNotExist)
			_, forever, lerr := h.n1.AddressLifetime(handoffVIP)
			switch {
			case lerr != nil:
				t.Fatalf("%s after the successor's SIGKILL: %v", h.n1.Name, lerr)
			case forever:
				return how + "after it resumed", true
			case taken:
				return how + "after it settled the handoff record, before its address was made permanent", false
			}
			return how + "before it settled the handoff record", false
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHandoffLab(t)
			n1, n2 := h.n1, h.n2
			watch := lab.WatchHolders([]*lab.Node{n1.Node, n2.Node}, handoffVIP, 10*time.Millisecond)
			conns, load := h.startClient()

			signalled := time.Now()
			h.stopForRestart(n1)
			how, resumed := c.crash(t, h)
			// Until n2 holds the VIP and, unless the successor resumed, n1 no longer does.
			for deadline := signalled.Add(handoffBound + 2*time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				r := watch.Record()
				if !r.FirstHeld(n2.Name).IsZero() && (resumed || !r.LastHeld(n1.Name).IsZero()) {
					break
				}
			}
			time.Sleep(200 * time.Millisecond)
			rec := watch.Stop()
			res := load.Stop()
			cr := conns.c.Stop()
			took, gone := rec.FirstHeld(n2.Name), rec.LastHeld(n1.Name)
			split, splits := rec.Split()
			outage, failed := res.Outage(signalled)
			t.Logf("the successor %s", how)
			t.Logf("after SIGUSR2: %s MASTER at %s, address gone on %s at %s, both held it for %s; holders: %s",
				n2.Name, sinceStr(took, signalled), n1.Name, sinceStr(gone, signalled), split.Round(time.Millisecond), rec.Timeline(signalled))
			t.Logf("new connections: longest outage %s, %d failed after SIGUSR2 (%s); %s", outage.Round(time.Millisecond), failed, res, cr)

			switch {
			case took.IsZero():
				t.Errorf("%s never took over", n2.Name)
			case took.Sub(signalled) > handoffBound+time.Second:
				t.Errorf("%s took over %s after SIGUSR2, want within %s", n2.Name, took.Sub(signalled), handoffBound+time.Second)
			case !resumed && took.Sub(signalled) < handoffBound/2:
				t.Errorf("%s took over %s after SIGUSR2: the stretched interval did not hold it", n2.Name, took.Sub(signalled))
			}
			if _, err := lab.WaitKubeVRRPEvent(n2.kv.Proc, 0, time.Second, lab.Entered("Master", "")); err != nil {
				t.Error(err)
			}
			if resumed {
				t.Logf("%s keeps %s after the SIGKILL of a resumed MASTER until the next agent starts (holders: %v)",
					n1.Name, handoffVIP.Addr(), lab.Holders(h.l.Nodes(), handoffVIP))
			} else {
				if gone.IsZero() || gone.Sub(signalled) > handoffBound+time.Second {
					t.Errorf("%s still had %s %s after SIGUSR2, want it gone by the bound (+1 s)", n1.Name, handoffVIP.Addr(), sinceStr(gone, signalled))
				}
				if last := rec.Changes[len(rec.Changes)-1].Holders; !slices.Equal(last, []string{n2.Name}) {
					t.Errorf("holders of %s at the end: %v, want %s alone", handoffVIP.Addr(), last, n2.Name)
				}
				if m := rec.Moves(); m != 1 {
					t.Errorf("the VIP moved %d times, want once (%s)", m, rec.Timeline(signalled))
				}
				if limit := handoffBound/4 + time.Second; splits > 1 || split > limit {
					t.Errorf("%s and %s held %s at once %d times, for up to %s, want once for at most %s", n1.Name, n2.Name,
						handoffVIP.Addr(), splits, split.Round(time.Millisecond), limit)
				}
				// A client that itself stalled (a loaded machine) overstates the outage by up
				// to the stall beyond its interval.
				stall := res.MaxSendGap()
				if allowed := 100*time.Millisecond + max(0, stall-10*time.Millisecond); c.kept && outage > allowed {
					t.Errorf("new requests: outage %s after SIGUSR2, want at most 100 ms while %s keeps the address (the client stalled up to %s)",
						outage.Round(time.Millisecond), n1.Name, stall.Round(time.Millisecond))
				}
			}

			// The fixed version, later, starts as usual: it preempts back.
			n1.kv = h.start(n1)
			if err := lab.WaitSoleHolder(h.l.Nodes(), handoffVIP, n1.Node, 300*time.Millisecond, settle); err != nil {
				t.Error(err)
			}
			if strings.Contains(n1.kv.Log(), `"msg":"resuming the instance handed over by the previous agent"`) {
				t.Errorf("%s resumed after its predecessor's successor died:\n%s", n1.Name, n1.kv.Tail(20))
			}
		})
	}
}

// crashLoop starts a successor with manifest on n1 three times, 100 ms apart, as a service
// manager restarts a unit that fails; each must exit non-zero, saying want.
func (h *handoffLab) crashLoop(manifest, want string) {
	h.t.Helper()
	for i := range 3 {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		p := h.exec(h.n1, manifest)
		switch err := p.Wait(10 * time.Second); {
		case errors.Is(err, lab.ErrRunning):
			h.t.Fatalf("%s: successor %d still runs with a manifest it should reject:\n%s", h.n1.Name, i+1, p.Tail(20))
		case err == nil:
			h.t.Fatalf("%s: successor %d exited 0, want a failure:\n%s", h.n1.Name, i+1, p.Tail(20))
		}
		if !strings.Contains(p.Log(), want) {
			h.t.Fatalf("%s: successor %d does not say %s:\n%s", h.n1.Name, i+1, want, p.Tail(20))
		}
	}
}
