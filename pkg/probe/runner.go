package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the agent-wide settings of a Runner.
type Options struct {
	// ExecEnabled lets exec probes run. Without it every exec probe fails with
	// ExecDisabledReason: whoever may create a VirtualIP could otherwise run commands as root
	// on every node.
	ExecEnabled bool
	// TokenFilesEnabled lets https probes send a bearer token read from a file
	// (HTTPSOptions.BearerTokenFile). Without it such a probe fails with
	// TokenFilesDisabledReason: whoever may create a VirtualIP names both the file and the
	// server, and could otherwise have any file the agent can read, its own ServiceAccount
	// token included, sent to a server of their choosing.
	TokenFilesEnabled bool
}

// Result is a probe's health transition.
type Result struct {
	// Name of the probe.
	Name string
	// Healthy is the probe's health from now on.
	Healthy bool
	// Reason is what the check that decided it said, e.g. `no process named "haproxy"` or
	// "GET http://127.0.0.1:8404/healthz: status 503, want 2xx or 3xx".
	Reason string
	// At is when the deciding check finished.
	At time.Time
}

// Runner runs a set of probes and reports their health transitions.
//
// Every probe starts unknown; its first check decides its health either way and is reported
// (waiting for rise successes first would leave the node without a decision for rise-1
// intervals at start; Effective treats unknown as failing meanwhile). From then on fall
// consecutive failures make a healthy probe unhealthy and rise consecutive successes make an
// unhealthy one healthy, so a target that flaps cannot move the health faster than that.
//
// A process probe also learns of the exits of the processes it matched, as events. The exit
// of the last one triggers a check at once (a fresh /proc scan), and further checks back to
// back while they fail and fall is not reached: an exit is definitive, so a killed HAProxy
// makes the probe unhealthy in milliseconds whatever fall is, while a process that is still
// or again there (another instance, a reload that started the new process before the old one
// left) is a success that resets the count, as it would be on the next interval. The price:
// a restart with a gap (stop, then start) is a failure too, as it is for clients.
type Runner struct {
	log     *slog.Logger
	probes  []*probe
	results chan Result
	started atomic.Bool

	mu     sync.Mutex
	health map[string]bool
}

// probe is one Spec with its checker and hysteresis state (owned by its goroutine).
type probe struct {
	spec  Spec
	check checker
	h     hysteresis
}

// checker runs one check; ok reports success, reason says why either way.
type checker interface {
	check(ctx context.Context) (ok bool, reason string)
}

// eventSource is a checker that also learns of failures between checks. A value on events
// means the next check should run at once.
type eventSource interface {
	events() <-chan string
}

// closer is a checker holding resources until the Runner stops.
type closer interface {
	close()
}

// New validates specs and prepares a Runner for them; it starts nothing. log may be nil. On
// systems other than Linux it refuses process, exec and interface probes with an error
// wrapping errors.ErrUnsupported.
func New(specs []Spec, opts Options, log *slog.Logger) (*Runner, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seen := make(map[string]bool, len(specs))
	var errs []error
	probes := make([]*probe, 0, len(specs))
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("probe %q: the name is used twice", s.Name))
			continue
		}
		if err := supported(s.Kind); err != nil {
			errs = append(errs, fmt.Errorf("probe %q: %w", s.Name, err))
			continue
		}
		seen[s.Name] = true
		s.Command = append([]string(nil), s.Command...)
		probes = append(probes, &probe{spec: s, check: newChecker(s, opts, log)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new probe runner: %w", err)
	}
	return newRunner(probes, log), nil
}

func newRunner(probes []*probe, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, p := range probes {
		p.h = hysteresis{fall: p.spec.fall(), rise: p.spec.rise()}
	}
	return &Runner{
		log:    log,
		probes: probes,
		// Transitions are rare (at most one per check), so the buffer only absorbs bursts;
		// a reader that stops reading stalls the probes whose transitions it does not take.
		results: make(chan Result, 4*len(probes)+4),
		health:  make(map[string]bool, len(probes)),
	}
}

func newChecker(s Spec, opts Options, log *slog.Logger) checker {
	switch s.Kind {
	case KindProcess:
		return newProcessChecker(s.Process, s.Executable, log.With("probe", s.Name))
	case KindTCP:
		return tcpChecker{address: s.Address}
	case KindHTTP:
		if s.HTTPS.BearerTokenFile != "" && !opts.TokenFilesEnabled {
			return failChecker(TokenFilesDisabledReason)
		}
		return newHTTPChecker(s)
	case KindExec:
		if !opts.ExecEnabled {
			return failChecker(ExecDisabledReason)
		}
		return execChecker{argv: s.Command}
	case KindInterface:
		return linkChecker{name: s.Interface}
	case KindFile:
		return &fileChecker{path: s.Path}
	}
	panic("probe: unknown kind " + string(s.Kind)) // Validate rejects it
}

// failChecker always fails with its reason.
type failChecker string

func (f failChecker) check(context.Context) (bool, string) { return false, string(f) }

// Results delivers the health transitions. It is closed when Run returns. Read it
// continuously: a probe whose transition is not taken waits.
func (r *Runner) Results() <-chan Result { return r.results }

// Health returns the health of every probe that has reported, keyed by name; a probe that has
// not is absent (unknown). It is the map Effective takes.
func (r *Runner) Health() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]bool, len(r.health))
	for k, v := range r.health {
		m[k] = v
	}
	return m
}

// Run checks every probe, one goroutine each, until ctx is done; then it releases what the
// probes hold, closes Results and returns nil. It runs once.
func (r *Runner) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("probe runner: Run called twice")
	}
	defer close(r.results)
	var wg sync.WaitGroup
	for _, p := range r.probes {
		wg.Go(func() { r.runProbe(ctx, p) })
	}
	wg.Wait()
	for _, p := range r.probes {
		if c, ok := p.check.(closer); ok {
			c.close()
		}
	}
	return nil
}

func (r *Runner) runProbe(ctx context.Context, p *probe) {
	var events <-chan string
	if es, ok := p.check.(eventSource); ok {
		events = es.events()
	}
	interval := p.spec.interval()
	// The first check runs at once; then one per interval, start to start (a check lasts at
	// most its timeout, which is at most the interval).
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			start := time.Now()
			r.checkOnce(ctx, p)
			timer.Reset(max(0, interval-time.Since(start)))
		case why := <-events:
			r.log.Debug("probe event", "probe", p.spec.Name, "event", why)
			// Check at once, and again while the checks fail short of fall: an exit is
			// definitive, so there is nothing to wait for.
			for ctx.Err() == nil {
				if ok := r.checkOnce(ctx, p); ok || p.h.state == unhealthy {
					break
				}
			}
		}
	}
}

// checkOnce runs one check within the probe's timeout, records it and reports its success.
func (r *Runner) checkOnce(ctx context.Context, p *probe) bool {
	cctx, cancel := context.WithTimeout(ctx, p.spec.timeout())
	ok, reason := p.check.check(cctx)
	cancel()
	if ctx.Err() != nil {
		return ok // stopping: a check cut short says nothing about the target
	}
	if !ok {
		r.log.Debug("probe check failed", "probe", p.spec.Name, "reason", reason)
	}
	if p.h.observe(ok) {
		res := Result{Name: p.spec.Name, Healthy: ok, Reason: reason, At: time.Now()}
		r.mu.Lock()
		r.health[res.Name] = res.Healthy
		r.mu.Unlock()
		// Not logged here: the agent reports it as an event (vrrp.EventProbe), which it logs.
		select {
		case r.results <- res:
		case <-ctx.Done():
		}
	}
	return ok
}

type health int8

const (
	unknown health = iota
	healthy
	unhealthy
)

// hysteresis is keepalived's rise/fall counting, with an unknown start that the first result
// decides.
type hysteresis struct {
	fall, rise int
	state      health
	// run counts the consecutive results against the current state.
	run int
}

// observe records one check result and reports whether the health changed.
func (h *hysteresis) observe(ok bool) bool {
	switch {
	case h.state == unknown:
		h.state, h.run = unhealthy, 0
		if ok {
			h.state = healthy
		}
		return true
	case (h.state == healthy) == ok:
		h.run = 0
		return false
	}
	h.run++
	need := h.rise
	if h.state == healthy {
		need = h.fall
	}
	if h.run < need {
		return false
	}
	h.state, h.run = unhealthy, 0
	if ok {
		h.state = healthy
	}
	return true
}
