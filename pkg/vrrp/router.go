package vrrp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// queueLen bounds the packets waiting for a router; beyond it packets are dropped and counted
// (a flood must not grow memory).
const queueLen = 64

// hostTimeout bounds one host operation (netlink, announce) so a stuck kernel call can't stall
// the state machine forever. It also bounds how long Run waits for the link state before Start.
const hostTimeout = 2 * time.Second

// Restarting a failed link-state watch backs off from linkWatchRetry to linkWatchRetryMax.
const (
	linkWatchRetry    = time.Second
	linkWatchRetryMax = 30 * time.Second
)

// Router drives one Instance against the host: it owns the goroutine and the one timer, feeds
// the instance received packets, timer expiries and commands, and carries out its outputs.
type Router struct {
	inst     *Instance
	send     Sender
	link     Link
	log      *slog.Logger
	onChange func(Status)

	in  chan Packet
	ctl chan command
	// stopped is closed when the loop has stopped taking commands; done when Run has returned.
	stopped chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	status Status
	queued uint64 // packets dropped because the queue was full
}

// NewRouter returns a router for inst; it starts nothing. onChange, if set, is called from the
// router's goroutine after every transition, and when the reason for the state changes without
// one (a Fault with two causes losing one), with the new status; it must not block.
func NewRouter(inst *Instance, send Sender, link Link, log *slog.Logger, onChange func(Status)) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{
		inst: inst, send: send, link: link, onChange: onChange,
		log:     log.With("vip", inst.cfg.Name, "vrid", inst.cfg.VRID),
		in:      make(chan Packet, queueLen),
		ctl:     make(chan command),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
	r.status = inst.Status()
	return r
}

// Deliver queues a received packet without blocking; it reports false when the packet was
// dropped because the router is behind or stopped.
func (r *Router) Deliver(p Packet) bool {
	select {
	case r.in <- p:
		return true
	default:
		r.mu.Lock()
		r.queued++
		r.mu.Unlock()
		return false
	}
}

// command is a call run on the router's goroutine; done is closed once its output is applied.
type command struct {
	f    func(now time.Time) Output
	done chan struct{}
}

// do runs f on the router's goroutine and waits until its output has been carried out; it
// reports false if the router has stopped.
func (r *Router) do(f func(now time.Time) Output) bool {
	c := command{f: f, done: make(chan struct{})}
	select {
	case r.ctl <- c:
	case <-r.stopped:
		return false
	}
	select {
	case <-c.done:
		return true
	case <-r.stopped:
		return false
	}
}

// SetPriority changes the effective priority (see Instance.SetPriority).
func (r *Router) SetPriority(p uint8) {
	r.do(func(now time.Time) Output { return r.inst.SetPriority(now, p) })
}

// SetFault enters or leaves Fault (see Instance.SetFault).
func (r *Router) SetFault(fault bool, reason string) {
	r.do(func(now time.Time) Output { return r.inst.SetFault(now, fault, reason) })
}

// Reconfigure applies cfg without a restart, or returns ErrIncompatible.
func (r *Router) Reconfigure(cfg Config) error {
	var err error
	ok := r.do(func(now time.Time) Output {
		var out Output
		out, err = r.inst.Reconfigure(now, cfg)
		return out
	})
	if !ok {
		return context.Canceled
	}
	return err
}

// Status returns the latest snapshot.
func (r *Router) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	if r.queued > 0 {
		st.Stats.Drops = cloneDrops(st.Stats.Drops)
		st.Stats.Drops[DropQueueFull] += r.queued
	}
	return st
}

// Done is closed when Run has returned.
func (r *Router) Done() <-chan struct{} { return r.done }

// Run starts the instance and blocks until ctx is cancelled; then it shuts the instance down (a
// MASTER hands over with priority 0 and removes its addresses) and returns.
//
// When the Link also implements LinkStateWatcher, the instance follows the interface: Fault
// while it is down or without carrier (Instance.SetLinkUp). Start then waits for the first
// report, at most hostTimeout, so that an instance whose link is already down starts in Fault
// instead of passing through Backup.
func (r *Router) Run(ctx context.Context) error {
	defer close(r.done)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	watchers.Go(func() { r.watch(watchCtx) })
	var linkKnown <-chan struct{}
	if w, ok := r.link.(LinkStateWatcher); ok {
		known := make(chan struct{})
		linkKnown = known
		watchers.Go(func() { r.watchLinkState(watchCtx, w, known) })
	}
	// Nothing outlives Run: once the loop stops taking commands, stop the watchers and wait.
	defer func() { close(r.stopped); stopWatch(); watchers.Wait() }()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		next time.Time
		// in stays nil, and received packets queued, until the instance has started.
		in     <-chan Packet
		waited <-chan time.Time
	)
	start := func() {
		linkKnown, waited, in = nil, nil, r.in
		next = r.apply(ctx, r.inst.Start(time.Now()))
	}
	if linkKnown == nil {
		start()
	} else {
		wait := time.NewTimer(hostTimeout)
		defer wait.Stop()
		waited = wait.C
	}
	for {
		arm(timer, next)
		select {
		case <-ctx.Done():
			// The handover must still reach the wire and the host: use a fresh context.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostTimeout)
			r.apply(sctx, r.inst.Shutdown(time.Now()))
			cancel()
			return nil
		case <-timer.C:
			next = r.apply(ctx, r.inst.Tick(time.Now()))
		case p := <-in:
			next = r.apply(ctx, r.inst.Receive(time.Now(), p))
		case c := <-r.ctl:
			// Before Start this only records (priority, faults, config) for Start to use.
			next = r.apply(ctx, c.f(time.Now()))
			close(c.done)
		case <-linkKnown:
			start()
		case <-waited:
			r.log.Warn("link state not reported in time; starting as if the interface were up", "after", hostTimeout)
			start()
		}
	}
}

// watchLinkState feeds the link's state to the instance through the command path, restarting
// the watch with a back-off when it fails: a watch that stopped for good while the link was
// down would leave the instance in Fault for ever. known is closed after the first report, or
// when the first attempt has failed.
func (r *Router) watchLinkState(ctx context.Context, w LinkStateWatcher, known chan struct{}) {
	var once sync.Once
	ready := func() { once.Do(func() { close(known) }) }
	delay := linkWatchRetry
	for {
		reported := false
		err := w.WatchLinkState(ctx, func(up bool) {
			reported = true
			r.do(func(now time.Time) Output { return r.inst.SetLinkUp(now, up) })
			ready()
		})
		ready()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("returned before it was stopped")
		}
		if reported {
			// It worked for a while: not a persistent failure.
			delay = linkWatchRetry
		}
		r.log.Warn("link state watch stopped; restarting it", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, linkWatchRetryMax)
	}
}

func (r *Router) watch(ctx context.Context) {
	err := r.link.WatchRemoved(ctx, func(p netip.Prefix) {
		r.do(func(now time.Time) Output { return r.inst.AddressRemoved(now, p) })
	})
	if err != nil && ctx.Err() == nil {
		r.log.Warn("address watch stopped; removed VIPs will only be restored on re-announce", "err", err)
	}
}

func arm(t *time.Timer, next time.Time) {
	t.Stop()
	if next.IsZero() {
		return
	}
	t.Reset(time.Until(next))
}

// apply carries out out in the order that shortens a failover: step down first, claim the role
// on the wire, then take the addresses and announce them.
func (r *Router) apply(ctx context.Context, out Output) time.Time {
	if len(out.Unbind) > 0 {
		hctx, cancel := context.WithTimeout(ctx, hostTimeout)
		if err := r.link.Unbind(hctx, out.Unbind); err != nil {
			r.log.Error("removing virtual addresses", "err", err)
		}
		cancel()
	}
	for _, d := range out.Send {
		if err := r.send.WriteTo(d.Data, d.Dst); err != nil {
			r.log.Warn("sending advert", "to", d.Dst, "err", err)
		}
	}
	if len(out.Bind) > 0 {
		hctx, cancel := context.WithTimeout(ctx, hostTimeout)
		if err := r.link.Bind(hctx, out.Bind); err != nil {
			r.log.Error("adding virtual addresses", "err", err)
		}
		cancel()
	}
	if len(out.Announce) > 0 {
		hctx, cancel := context.WithTimeout(ctx, hostTimeout)
		if err := r.link.Announce(hctx, out.Announce); err != nil {
			r.log.Warn("announcing virtual addresses", "err", err)
		}
		cancel()
	}
	st := r.inst.Status()
	r.mu.Lock()
	prev := r.status
	r.status = st
	r.mu.Unlock()
	if (out.Transition != nil || st.Reason != prev.Reason) && r.onChange != nil {
		r.onChange(st)
	}
	return out.Next
}

func cloneDrops[K comparable](m map[K]uint64) map[K]uint64 {
	c := make(map[K]uint64, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}
