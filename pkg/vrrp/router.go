package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// queueLen bounds the packets waiting for a router; beyond it packets are dropped and counted
// (a flood must not grow memory).
const queueLen = 64

// queueKeep is the most packets whose room the queue keeps once it has drained: enough for the
// adverts a BACKUP receives one at a time, so that they cost no allocation each.
const queueKeep = 4

// hostTimeout bounds one host operation (netlink, announce) so a stuck kernel call can't stall
// the state machine forever. It also bounds how long Run waits for the link state before Start.
const hostTimeout = 2 * time.Second

// Restarting a failed link-state watch backs off from linkWatchRetry to linkWatchRetryMax.
const (
	linkWatchRetry    = time.Second
	linkWatchRetryMax = 30 * time.Second
)

// A failed Bind (the instance then rests in Fault) or Unbind (retried while the addresses may
// still be on the link) is retried after hostRetry, doubling up to hostRetryMax while it keeps
// failing.
const (
	hostRetry    = time.Second
	hostRetryMax = 30 * time.Second
)

// Router drives one Instance against the host: it owns the goroutine and the one timer, feeds
// the instance received packets, timer expiries and commands, and carries out its outputs.
type Router struct {
	inst *Instance
	send Sender
	link Link
	log  *slog.Logger
	emit func(Event)

	in  packetQueue
	ctl chan command
	// stopped is closed when the loop has stopped taking commands; done when Run has returned.
	stopped chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	status Status
	queued uint64 // packets dropped because the queue was full
	// handoffBound (HandoffOnStop) makes Run end with a handoff, resume (ResumeAtStart) start
	// with Instance.Resume; handedOff is what Run handed over (HandedOff).
	handoffBound time.Duration
	resume       bool
	handedOff    *Handoff

	// Owned by the Run goroutine: the host retries (see hostRetry).
	bindRetry  backoff
	unbind     []netip.Prefix // addresses whose removal failed, to retry
	unbindErr  error
	unbindNext backoff
	bindErr    error
	// signalledForeign is the foreign-router list of the last EventForeign; foreignSignals
	// are the times of the recent ones.
	signalledForeign []Foreign
	foreignSignals   []time.Time

	health heartbeat // for Stalled (health.go)

	// addrs is the instance's configured addresses, written by the Run goroutine when a
	// reconfiguration changes them, before it binds them: the address watch passes on only
	// the removals of these. A link's watch reports every removal on the link to every
	// instance watching it, and a command per report and instance made a flush of a link with
	// N virtual addresses cost N^2 round trips to the instances' loops.
	addrs atomic.Pointer[[]netip.Prefix]
}

// backoff is a retry time with a doubling delay.
type backoff struct {
	at    time.Time
	delay time.Duration
}

// fail schedules the next attempt after the current delay and doubles it.
func (b *backoff) fail(now time.Time) {
	if b.delay == 0 {
		b.delay = hostRetry
	}
	b.at = now.Add(b.delay)
	b.delay = min(2*b.delay, hostRetryMax)
}

func (b *backoff) due(now time.Time) bool { return !b.at.IsZero() && !now.Before(b.at) }

// NewRouter returns a router for inst; it starts nothing. emit, if set, is called from the
// router's goroutine with every event (see EventKind), in order, after the host has carried
// out the output that caused it; it must not block (docs/design.md §3.2).
func NewRouter(inst *Instance, send Sender, link Link, log *slog.Logger, emit func(Event)) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if emit == nil {
		emit = func(Event) {}
	}
	r := &Router{
		inst: inst, send: send, link: link, emit: emit,
		log:     log.With("vip", inst.cfg.Name, "vrid", inst.cfg.VRID),
		in:      packetQueue{ready: make(chan struct{}, 1)},
		ctl:     make(chan command),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
	r.status = inst.Status()
	r.noteAddrs()
	return r
}

// noteAddrs records the instance's configured addresses for the address watch.
func (r *Router) noteAddrs() {
	as := slices.Clone(r.inst.cfg.Addresses)
	r.addrs.Store(&as)
}

// configured reports whether p is one of the instance's configured addresses.
func (r *Router) configured(p netip.Prefix) bool {
	as := r.addrs.Load()
	return as != nil && slices.Contains(*as, p)
}

// Deliver queues a received packet without blocking; it reports false when the packet was
// dropped because the router is behind or stopped.
func (r *Router) Deliver(p Packet) bool {
	r.health.queued(time.Now())
	if r.in.push(p) {
		return true
	}
	r.health.dropped()
	r.mu.Lock()
	r.queued++
	r.mu.Unlock()
	return false
}

// packetQueue is a router's queue of received packets, oldest first, at most queueLen. Its
// array is only as large as the backlog, and goes once the queue has drained unless it is
// small (queueKeep): most instances receive nothing (a MASTER) or one advert at a time (a
// BACKUP), and a channel of queueLen packets would hold 6 KiB for each of them for ever.
type packetQueue struct {
	ready chan struct{} // holds a token while packets wait

	mu   sync.Mutex
	buf  []Packet // waiting from head on
	head int
}

// push queues p; it reports false, queueing nothing, when queueLen packets already wait.
func (q *packetQueue) push(p Packet) bool {
	q.mu.Lock()
	n := len(q.buf) - q.head
	if n >= queueLen {
		q.mu.Unlock()
		return false
	}
	if len(q.buf) == cap(q.buf) && q.head > 0 {
		// Full at the back with room at the front: move the waiting ones down.
		copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, p)
	q.mu.Unlock()
	q.signal()
	return true
}

// pop takes the oldest packet; ok is false when none waits. A token stays in ready while more
// wait, so the loop takes them one at a time between its timers and commands.
func (q *packetQueue) pop() (p Packet, ok bool) {
	q.mu.Lock()
	if q.head == len(q.buf) {
		q.mu.Unlock()
		return Packet{}, false
	}
	p = q.buf[q.head]
	q.buf[q.head] = Packet{}
	q.head++
	more := q.head < len(q.buf)
	if !more {
		if cap(q.buf) > queueKeep {
			q.buf = nil
		} else {
			q.buf = q.buf[:0]
		}
		q.head = 0
	}
	q.mu.Unlock()
	if more {
		q.signal()
	}
	return p, true
}

func (q *packetQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
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
	r.health.queued(time.Now())
	select {
	case r.ctl <- c:
	case <-r.stopped:
		r.health.dropped()
		return false
	}
	select {
	case <-c.done:
		return true
	case <-r.stopped:
		return false
	}
}

// SetHealth applies the probes' word (see Instance.SetHealth).
func (r *Router) SetHealth(h Health) {
	r.do(func(now time.Time) Output { return r.inst.SetHealth(now, h) })
}

// Reconfigure applies cfg without a restart, or returns ErrIncompatible.
func (r *Router) Reconfigure(cfg Config) error {
	return r.doErr(func(now time.Time) (Output, error) {
		out, err := r.inst.Reconfigure(now, cfg)
		r.noteAddrs()
		return out, err
	})
}

// ReconfigureHealth applies cfg and the probes' new word as one step (see
// Instance.ReconfigureHealth), or returns ErrIncompatible.
func (r *Router) ReconfigureHealth(cfg Config, h Health) error {
	return r.doErr(func(now time.Time) (Output, error) {
		out, err := r.inst.ReconfigureHealth(now, cfg, h)
		r.noteAddrs()
		return out, err
	})
}

// doErr is do for a command that can be refused: it returns f's error, or context.Canceled if
// the router has stopped.
func (r *Router) doErr(f func(now time.Time) (Output, error)) error {
	var err error
	ok := r.do(func(now time.Time) Output {
		var out Output
		out, err = f(now)
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

// HandoffOnStop makes Run, when its context ends, hand a MASTER over to its successor on this
// node (Instance.Handoff with bound, docs/design.md §4.9.1) instead of to the backups: the
// addresses stay bound and, when the Link is an AddressRetainer, get the handoff's window as
// their lifetime first; if that fails, Run shuts down as usual (priority 0, addresses removed).
// Call it before cancelling Run's context; a bound of 0 or less takes it back.
func (r *Router) HandoffOnStop(bound time.Duration) {
	r.mu.Lock()
	r.handoffBound = max(bound, 0)
	r.mu.Unlock()
}

// HandedOff returns what Run handed over to a successor when it ended, for the handoff record:
// nil while Run runs, and when it shut down instead (the instance was not MASTER, no handoff
// was asked for, or the addresses could not be given a lifetime).
func (r *Router) HandedOff() *Handoff {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handedOff == nil {
		return nil
	}
	h := *r.handedOff
	h.Addresses = slices.Clone(h.Addresses)
	return &h
}

// ResumeAtStart makes Run start the instance with Instance.Resume instead of Start: as the
// MASTER its predecessor on this node handed over to it, whose addresses are still bound (the
// caller has matched the handoff record, docs/design.md §4.9.1). Once they are bound, Run makes
// them permanent again when the Link is an AddressRetainer (lifetime 0). Call it before Run.
func (r *Router) ResumeAtStart() {
	r.mu.Lock()
	r.resume = true
	r.mu.Unlock()
}

// Run starts the instance (ResumeAtStart: resumes it) and blocks until ctx is cancelled; then it
// shuts the instance down (a MASTER hands over with priority 0 and removes its addresses) or
// hands it off (HandoffOnStop) and returns.
//
// When the Link also implements LinkStateWatcher, the instance follows the interface: Fault
// while it is down or without carrier (Instance.SetLinkUp). Start then waits for the first
// report, at most hostTimeout, so that an instance whose link is already down starts in Fault
// instead of passing through Backup.
func (r *Router) Run(ctx context.Context) error {
	defer close(r.done)
	defer r.health.stopped()
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
		in     <-chan struct{}
		waited <-chan time.Time
	)
	start := func() {
		linkKnown, waited, in = nil, nil, r.in.ready
		r.mu.Lock()
		resume := r.resume
		r.mu.Unlock()
		if !resume {
			next = r.apply(ctx, r.inst.Start(time.Now()))
			return
		}
		next = r.apply(ctx, r.inst.Resume(time.Now()))
		if r.inst.State() == Master {
			// Bound, they are ours again: the lifetime the predecessor gave them goes. Should
			// this fail they expire at its deadline, and the address watch puts them back.
			if err := r.retain(ctx, r.inst.cfg.Addresses, 0); err != nil {
				r.log.Error("making the resumed virtual addresses permanent", "err", err)
			}
		}
	}
	var startBy time.Time // before Start: when the wait for the link state ends
	if linkKnown == nil {
		start()
	} else {
		startBy = time.Now().Add(hostTimeout)
		wait := time.NewTimer(hostTimeout)
		defer wait.Stop()
		waited = wait.C
	}
	for {
		due := earliest(next, r.bindRetry.at, r.unbindNext.at)
		arm(timer, due)
		if in == nil {
			due = startBy
		}
		r.health.waiting(time.Now(), due)
		select {
		case <-ctx.Done():
			// The handover must still reach the wire and the host: use a fresh context.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostTimeout)
			r.stop(sctx)
			cancel()
			return nil
		case <-timer.C:
			// Adverts that wait in the queue arrived before this timer was taken up: after a
			// stall (CPU starvation, a slow host call) both are ready, and select picks either.
			// A Master_Down_Timer acted on first would take over from a MASTER heard in time.
			if in != nil {
				for p, ok := r.in.pop(); ok; p, ok = r.in.pop() {
					r.health.took(time.Now())
					next = r.apply(ctx, r.inst.Receive(time.Now(), p))
				}
			}
			now := time.Now()
			r.retryUnbind(ctx, now)
			if r.bindRetry.due(now) {
				// The back-off after a failed bind is over: leave Fault and take part again.
				r.bindRetry.at, r.bindErr = time.Time{}, nil
				next = r.apply(ctx, r.inst.SetHostFault(now, false, ReasonBindRetry))
				// Until the next back-off has passed, take over only if the master goes
				// silent: preempting a healthy one would only resign again if the bind
				// still fails.
				r.inst.HoldPreemption(now.Add(r.bindRetry.delay))
			}
			next = r.apply(ctx, r.inst.Tick(time.Now()))
		case <-in:
			p, ok := r.in.pop()
			if !ok {
				continue
			}
			r.health.took(time.Now())
			next = r.apply(ctx, r.inst.Receive(time.Now(), p))
		case c := <-r.ctl:
			r.health.took(time.Now())
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

// stop ends the instance at the end of Run: a handoff if one was asked for (HandoffOnStop) and
// the instance is MASTER, else a shutdown.
func (r *Router) stop(ctx context.Context) {
	r.mu.Lock()
	bound := r.handoffBound
	r.mu.Unlock()
	var out Output
	if bound > 0 && r.inst.State() == Master {
		// The lifetime first: if the addresses cannot be given one, a successor that never
		// came would leave them on the link for ever; hand over to the backups instead.
		if err := r.retain(ctx, r.inst.cfg.Addresses, r.inst.handoffWindow(bound)); err != nil {
			r.log.Error("giving the virtual addresses a lifetime for a handoff; handing over to the backups instead", "err", err)
		} else {
			out = r.inst.Handoff(time.Now(), bound)
		}
	}
	if out.Handoff == nil {
		out = r.inst.Shutdown(time.Now())
	}
	r.apply(ctx, out)
	// Whatever a failed removal left on the link goes too, now rather than never; what was
	// handed over stays.
	if h := out.Handoff; h != nil {
		r.unbind = slices.DeleteFunc(r.unbind, func(p netip.Prefix) bool { return slices.Contains(h.Addresses, p) })
		r.mu.Lock()
		r.handedOff = h
		r.mu.Unlock()
	}
	if len(r.unbind) > 0 {
		if err := r.link.Unbind(ctx, r.unbind); err != nil {
			r.log.Error("removing virtual addresses at shutdown", "err", err)
		}
	}
}

// retain gives ps the lifetime (0: permanent) when the link can (AddressRetainer); a link that
// cannot keeps them as they are.
func (r *Router) retain(ctx context.Context, ps []netip.Prefix, lifetime time.Duration) error {
	ar, ok := r.link.(AddressRetainer)
	if !ok {
		return nil
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostTimeout)
	defer cancel()
	return ar.Retain(hctx, slices.Clone(ps), lifetime)
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
		if !waitOrDone(ctx, delay) {
			return
		}
		delay = min(2*delay, linkWatchRetryMax)
	}
}

// watch follows removals of the instance's addresses, starting the watch again with a
// back-off when it fails (as watchLinkState does): a watch stopped for good would leave an
// address someone else removed off the link for the instance's life. A new watch reports what
// is missing at its start.
func (r *Router) watch(ctx context.Context) {
	delay := linkWatchRetry
	for {
		start := time.Now()
		err := r.link.WatchRemoved(ctx, func(p netip.Prefix) {
			if !r.configured(p) {
				return // another instance's address on the same link
			}
			r.do(func(now time.Time) Output { return r.inst.AddressRemoved(now, p) })
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			return // the link does not watch removals
		}
		if time.Since(start) > time.Minute {
			delay = linkWatchRetry
		}
		r.log.Warn("address watch stopped; starting it again", "err", err, "in", delay)
		if !waitOrDone(ctx, delay) {
			return
		}
		delay = min(2*delay, linkWatchRetryMax)
	}
}

// waitOrDone waits d and reports true, or false as soon as ctx ends.
func waitOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// earliest is the first non-zero time of ts; zero if none.
func earliest(ts ...time.Time) time.Time {
	var e time.Time
	for _, t := range ts {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	return e
}

// retryUnbind tries again to remove the addresses whose removal failed, unless the instance
// has meanwhile become MASTER again and holds them.
func (r *Router) retryUnbind(ctx context.Context, now time.Time) {
	if !r.unbindNext.due(now) {
		return
	}
	if r.inst.State() == Master {
		// Those it holds again are no longer to remove; the rest (an address a
		// reconfiguration took away) still are.
		cur := r.inst.Config().Addresses
		r.unbind = slices.DeleteFunc(r.unbind, func(p netip.Prefix) bool { return slices.Contains(cur, p) })
		if len(r.unbind) == 0 {
			r.unbindErr, r.unbindNext = nil, backoff{}
			return
		}
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostTimeout)
	err := r.link.Unbind(hctx, r.unbind)
	cancel()
	r.noteUnbind(now, r.unbind, err)
	r.publish(Output{})
}

// noteUnbind records the result of removing ps: a failure keeps them for a retry.
func (r *Router) noteUnbind(now time.Time, ps []netip.Prefix, err error) {
	if err == nil {
		r.unbind = slices.DeleteFunc(r.unbind, func(p netip.Prefix) bool { return slices.Contains(ps, p) })
		if len(r.unbind) == 0 {
			r.unbindErr, r.unbindNext = nil, backoff{}
		}
		return
	}
	r.log.Error("removing virtual addresses; retrying", "err", err, "in", r.unbindNext.delay)
	for _, p := range ps {
		if !slices.Contains(r.unbind, p) {
			r.unbind = append(r.unbind, p)
		}
	}
	r.unbindErr = err
	r.unbindNext.fail(now)
}

func arm(t *time.Timer, next time.Time) {
	t.Stop()
	if next.IsZero() {
		return
	}
	t.Reset(time.Until(next))
}

// apply carries out out in the order that shortens a failover: step down first, claim the role
// on the wire, then take the addresses and announce them. With Config.VirtualMAC the addresses
// are taken before the advert is sent: binding sets the virtual MAC interface up, and an advert
// sent before would leave from the parent's MAC (the Sender sends from the macvlan only while
// it is up), so that the switches would learn the virtual MAC only from the announcements
// (docs/design.md §5.9). RFC 5798 §6.4.1/§6.4.2 order only the advert before the gratuitous
// ARP; binding is the host's business.
//
// A failed unbind is retried with a back-off (the address may be left on the link, a duplicate
// of the new MASTER's). A failed bind puts the instance in Fault (AddressBindFailed): it resigns,
// so no MASTER advertises without its addresses, and after a back-off it leaves Fault as Backup
// and competes again.
func (r *Router) apply(ctx context.Context, out Output) time.Time {
	if len(out.Unbind) > 0 {
		// Not cut short by the end of Run: an address half removed would stay a duplicate.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostTimeout)
		err := r.link.Unbind(hctx, out.Unbind)
		cancel()
		r.noteUnbind(time.Now(), out.Unbind, err)
	}
	bindFirst := r.inst.cfg.VirtualMAC
	if !bindFirst {
		r.sendAll(out.Send)
	}
	if len(out.Bind) > 0 {
		hctx, cancel := context.WithTimeout(ctx, hostTimeout)
		err := r.link.Bind(hctx, out.Bind)
		cancel()
		if err != nil {
			now := time.Now()
			r.bindErr = err
			r.bindRetry.fail(now)
			r.log.Error("adding virtual addresses; resigning until the retry", "err", err, "retry in", r.bindRetry.at.Sub(now))
			r.publish(out)
			// The Fault's own output removes whatever part was bound and sends priority 0
			// (with bindFirst, out's advert is not sent: the role is not claimed at all).
			return r.apply(ctx, r.inst.SetHostFault(now, true, ReasonBindFailed))
		}
		r.bindErr = nil
		r.bindRetry.delay = 0
		r.unbind = slices.DeleteFunc(r.unbind, func(p netip.Prefix) bool { return slices.Contains(out.Bind, p) })
		if len(r.unbind) == 0 {
			r.unbindErr, r.unbindNext = nil, backoff{}
		}
	}
	if bindFirst {
		r.sendAll(out.Send)
	}
	if len(out.Announce) > 0 {
		hctx, cancel := context.WithTimeout(ctx, hostTimeout)
		if err := r.announce(hctx, out.Announce, out.AnnounceCount); err != nil {
			r.log.Warn("announcing virtual addresses", "err", err)
		}
		cancel()
	}
	r.publish(out)
	return out.Next
}

// sendAll sends the adverts ds; a failure is logged, and the next interval sends again.
func (r *Router) sendAll(ds []Datagram) {
	for _, d := range ds {
		if err := r.send.WriteTo(d.Data, d.Dst); err != nil {
			r.log.Warn("sending advert", "to", d.Dst, "err", err)
		}
	}
}

// announce sends count messages per address when the link can (BurstAnnouncer), else one
// Announce burst.
func (r *Router) announce(ctx context.Context, addrs []netip.Addr, count int) error {
	if b, ok := r.link.(BurstAnnouncer); ok && count > 0 {
		return b.AnnounceBurst(ctx, addrs, count)
	}
	return r.link.Announce(ctx, addrs)
}

// publish takes a new status snapshot and emits what happened: out's transition and packet
// drop report, and what changed since the last snapshot without a transition (priority, the
// reason or the probes' word, the host error, the set of foreign routers: one heard for the
// first time, or forgotten; their counts and last adverts wait for the next snapshot).
func (r *Router) publish(out Output) {
	st := r.inst.Status()
	var errs []string
	if r.bindErr != nil {
		errs = append(errs, "binding the addresses failed: "+r.bindErr.Error())
	}
	if r.unbindErr != nil {
		errs = append(errs, fmt.Sprintf("removing %v failed, retrying: %v", r.unbind, r.unbindErr))
	}
	st.HostError = strings.Join(errs, "; ")
	r.mu.Lock()
	prev := r.status
	r.status = st
	r.mu.Unlock()
	now := time.Now()
	ev := func(k EventKind, at time.Time) Event {
		return Event{Kind: k, At: at, Instance: st.Name, From: st.State, State: st.State, Priority: st.Priority, Master: st.Master}
	}
	switch {
	case out.Transition != nil:
		e := ev(EventTransition, out.Transition.At)
		e.From, e.Reason, e.Message = out.Transition.From, out.Transition.Reason, stateMessage(st)
		if h := out.Handoff; h != nil {
			e.Message = strings.TrimPrefix(e.Message+fmt.Sprintf("; %v kept for a successor for %v", h.Addresses, h.Window), "; ")
		}
		r.emit(e)
	case st.Priority != prev.Priority:
		e := ev(EventPriority, now)
		e.From = prev.State
		e.Reason, e.Message = st.Health.Reason, st.Health.Message
		r.emit(e)
	case st.Reason != prev.Reason || st.Health != prev.Health:
		e := ev(EventReason, now)
		e.Reason, e.Message = st.Reason, stateMessage(st)
		r.emit(e)
	}
	if st.HostError != prev.HostError {
		e := ev(EventHostError, now)
		e.Message = st.HostError
		r.emit(e)
	}
	if d := out.Dropped; d != nil {
		e := ev(EventPacketDrop, now)
		e.Drop, e.Src, e.Count = d.Reason, d.Src, d.Count
		r.emit(e)
	}
	// A change of the foreign routers is reported at most foreignSignalBurst times per
	// foreignSignalWindow: an attacker rotating source addresses changes the set at every
	// packet, and each report costs a status write and Events. A change held back is reported
	// with the next publish the window allows.
	if !sameForeign(st.Foreign, r.signalledForeign) {
		r.foreignSignals = slices.DeleteFunc(r.foreignSignals, func(t time.Time) bool { return now.Sub(t) >= foreignSignalWindow })
		if len(r.foreignSignals) < foreignSignalBurst {
			r.foreignSignals = append(r.foreignSignals, now)
			r.signalledForeign = st.Foreign
			e := ev(EventForeign, now)
			e.Foreign = st.Foreign
			r.emit(e)
		}
	}
}

// stateMessage says in words why st is in its state, where the reason alone does not: the
// probes (a Fault of theirs, or a priority they adjust) and the host's error.
func stateMessage(st Status) string {
	var parts []string
	if st.Health.Message != "" && (st.State != Fault || st.Health.Fault) {
		parts = append(parts, st.Health.Message)
	}
	if st.HostError != "" {
		parts = append(parts, st.HostError)
	}
	return strings.Join(parts, "; ")
}

// A change in the foreign routers alone is signalled at most foreignSignalBurst times per
// foreignSignalWindow.
const (
	foreignSignalBurst  = 4
	foreignSignalWindow = 10 * time.Second
)

// sameForeign reports whether a and b list the same foreign routers, each as much in the
// election, in any order: the list is most recent first, so two routers heard in turn reorder
// it at every advert.
func sameForeign(a, b []Foreign) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y Foreign) bool { return y.Src == x.Src && y.InElection == x.InElection }) {
			return false
		}
	}
	return true
}

func cloneDrops[K comparable](m map[K]uint64) map[K]uint64 {
	c := make(map[K]uint64, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}
