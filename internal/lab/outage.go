package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// OutageOptions configure MeasureOutage.
type OutageOptions struct {
	// Probe configures the client's probe (default: UDP every 10 ms).
	Probe ProbeOptions
	// Warmup is how long the target must answer without a loss before the fault is
	// injected (default 300 ms).
	Warmup time.Duration
	// Settle is how long the target must answer without a loss after the fault for the
	// measurement to end (default 1 s).
	Settle time.Duration
	// AwaitOutage keeps measuring until at least one probe sent after the fault was lost (and
	// then Settle passed): for faults whose effect is delayed.
	AwaitOutage bool
	// AwaitNode keeps measuring until this node (UDP probes) has answered a probe sent after
	// the fault (and then Settle passed): for hand-overs to a known node.
	AwaitNode string
	// Timeout bounds the whole measurement after the fault (default 30 s).
	Timeout time.Duration
}

// Outage is what the client saw of a fault.
type Outage struct {
	// Duration is the longest time between consecutive answered probes from the fault on
	// (resolution: one probe interval); about one Interval when nothing was lost.
	Duration time.Duration
	// Lost counts probes sent after the fault that were not answered.
	Lost int
	// Before and After name the node that answered just before the fault and at the end
	// (UDP probes; "" with ICMP).
	Before, After string
	// FaultAt is when the fault function was called.
	FaultAt time.Time
	// Result is the complete probe record.
	Result ProbeResult
}

func (o Outage) String() string {
	s := fmt.Sprintf("outage %v (%d probes lost)", o.Duration.Round(time.Millisecond), o.Lost)
	if o.Before != "" || o.After != "" {
		s += fmt.Sprintf(", %s -> %s", o.Before, o.After)
	}
	return s
}

// MeasureOutage probes target from the client, waits until it answers steadily, calls fault
// (for example a node's CutLink, or killing a daemon), and measures how long the client could
// not reach target until it answers steadily again. It returns an error (and what was
// measured so far) if the target never answered before the fault or did not recover within
// Timeout. Benchmarks report Outage.Duration; tests assert on it.
func (l *Lab) MeasureOutage(ctx context.Context, target netip.Addr, fault func() error, o OutageOptions) (Outage, error) {
	if o.Warmup <= 0 {
		o.Warmup = 300 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	p, err := l.StartProbe(target, o.Probe)
	if err != nil {
		return Outage{}, err
	}
	defer p.Stop()

	// Warm up: a window of Warmup without a loss.
	if err := pollUntil(ctx, time.Now().Add(o.Timeout), func() bool {
		r := p.Result()
		return r.Sent > 0 && r.End.Sub(r.Start) >= o.Warmup && cleanSince(r, r.End.Add(-o.Warmup))
	}); err != nil {
		r := p.Stop()
		if errors.Is(err, errPollDeadline) {
			err = fmt.Errorf("%s does not answer steadily before the fault: %s", target, r)
		}
		return Outage{Result: r}, err
	}
	out := Outage{Before: p.Result().Last(), FaultAt: time.Now()}
	if err := fault(); err != nil {
		out.Result = p.Stop()
		return out, fmt.Errorf("fault: %w", err)
	}
	var reached bool
	werr := pollUntil(ctx, out.FaultAt.Add(o.Timeout), func() bool {
		r := p.Result()
		lostAfter := false
		for _, g := range r.Gaps() {
			if g.To.After(out.FaultAt) {
				lostAfter = true
			}
		}
		reached = o.AwaitNode == ""
		for _, rep := range r.Replies {
			if rep.Node == o.AwaitNode && rep.Sent.After(out.FaultAt) {
				reached = true
				break
			}
		}
		settled := r.End.Sub(out.FaultAt) >= o.Settle && cleanSince(r, r.End.Add(-o.Settle))
		return settled && (lostAfter || !o.AwaitOutage) && reached
	})
	if errors.Is(werr, errPollDeadline) {
		werr = fmt.Errorf("%s did not answer steadily again within %v of the fault", target, o.Timeout)
		if !reached {
			werr = fmt.Errorf("%s not answered by %s within %v of the fault", target, o.AwaitNode, o.Timeout)
		}
	}
	out.Result = p.Stop()
	out.Duration, out.Lost = outageAfter(out.Result, out.FaultAt)
	out.After = out.Result.Last()
	return out, werr
}

// cleanSince reports whether every probe sent at or after t was answered.
func cleanSince(r ProbeResult, t time.Time) bool {
	for _, g := range r.Gaps() {
		if g.To.After(t) || g.Open {
			return false
		}
	}
	return true
}

// outageAfter returns the longest span between consecutive answered probes that ends after
// t, and the number of probes lost after t.
func outageAfter(r ProbeResult, t time.Time) (time.Duration, int) {
	var longest time.Duration
	lost := 0
	for _, g := range r.Gaps() {
		if !g.To.After(t) {
			continue
		}
		longest = maxDur(longest, g.Duration())
		lost += g.Lost
	}
	if longest == 0 {
		longest = r.Interval
	}
	return longest, lost
}

// errPollDeadline is pollUntil's error when the deadline passed first.
var errPollDeadline = errors.New("deadline passed")

// pollUntil calls done every 10 ms until it reports true (nil), ctx ends (ctx's error) or,
// after a check and a sleep, deadline has passed (errPollDeadline). Both outage measurements
// use it, for the warm-up before the fault and the wait for recovery after it.
func pollUntil(ctx context.Context, deadline time.Time, done func() bool) error {
	for {
		if done() {
			return nil
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errPollDeadline
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Holders returns the nodes among nodes that have vip's address bound now.
func Holders(nodes []*Node, vip netip.Prefix) []*Node {
	var h []*Node
	for _, n := range nodes {
		if n.HasAddress(vip) {
			h = append(h, n)
		}
	}
	return h
}

// WaitSoleHolder waits until m has been the only holder of vip among nodes for d: a takeover
// that has settled, not one caught mid-flight.
func WaitSoleHolder(nodes []*Node, vip netip.Prefix, m *Node, d, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var since time.Time
	for {
		h := Holders(nodes, vip)
		now := time.Now()
		switch {
		case len(h) != 1 || h[0] != m:
			since = time.Time{}
		case since.IsZero():
			since = now
		case now.Sub(since) >= d:
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("%s not the only holder of %s for %v within %v (holders now: %v)", m, vip.Addr(), d, timeout, h)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stableFor is how long WaitMaster wants the same single holder before it believes it.
const stableFor = 50 * time.Millisecond

// WaitMaster waits until exactly one of nodes holds vip (the address bound on one of its
// links), the same node for 50 ms, and returns that node. It works for any VRRP speaker
// (keepalived, kube-vrrp) because it looks at the outcome, not at logs. A test that needs
// the client's view too asks Lab.WhoAnswers.
func WaitMaster(nodes []*Node, vip netip.Prefix, timeout time.Duration) (*Node, error) {
	deadline := time.Now().Add(timeout)
	var cand *Node
	var since time.Time
	var last []*Node
	for {
		h := Holders(nodes, vip)
		last = h
		now := time.Now()
		switch {
		case len(h) == 1 && h[0] == cand:
			if now.Sub(since) >= stableFor {
				return cand, nil
			}
		case len(h) == 1:
			cand, since = h[0], now
		default:
			cand = nil
		}
		if now.After(deadline) {
			return nil, fmt.Errorf("no single holder of %s after %v (holders: %s)", vip.Addr(), timeout, names(last))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitHolders waits until exactly the nodes in want (none if want is empty) among nodes hold
// vip, e.g. both nodes in a split brain.
func WaitHolders(nodes []*Node, vip netip.Prefix, want []*Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		h := Holders(nodes, vip)
		if names(h) == names(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("holders of %s after %v: %s, want %s", vip.Addr(), timeout, names(h), names(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func names(ns []*Node) string {
	if len(ns) == 0 {
		return "none"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	return strings.Join(s, ",")
}
