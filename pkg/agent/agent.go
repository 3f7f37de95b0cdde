package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// ReasonStartFailed is the reason of an instance that could not start (its interface or
// socket could not be opened); Status.Message says why.
const ReasonStartFailed = "StartFailed"

// What an EventApplied's Reason says besides ReasonStartFailed: a new instance, or a running
// one whose config or probes changed in place. They describe the agent's own work, not an
// instance's state, so they never become a status reason.
const (
	AppliedNew     = "Applied"
	AppliedInPlace = "Reconfigured"
)

// Host is what the agent needs of the machine; hostnet.Host implements it on Linux.
type Host interface {
	// Listen opens the VRRP socket of ifname sending from src. The agent opens one per
	// interface and source and shares it between instances.
	Listen(ifname string, src netip.Addr) (vrrp.PacketConn, error)
	// Link returns the address and announcement side of ifname.
	Link(ifname string) (vrrp.Link, error)
}

// VirtualMACHost is what the agent needs of a Host, besides Host, to run instances with
// vrrp.Config.VirtualMAC (docs/design.md §5.9); hostnet.Host implements it. A Host without it
// cannot start them (StartFailed).
type VirtualMACHost interface {
	// VirtualMAC returns the virtual MAC interface of VRID vrid for one family on ifname,
	// creating it if needed, or taking over the one a predecessor handed over; primary is the
	// instance's source address. The link is a VirtualMACLink.
	VirtualMAC(ifname string, vrid uint8, ipv6 bool, primary netip.Addr) (vrrp.Link, error)
	// DropVirtualMAC deletes the virtual MAC interface a predecessor handed over for ifname,
	// vrid and the family when no instance of this agent uses it.
	DropVirtualMAC(ifname string, vrid uint8, ipv6 bool) error
}

// VirtualMACLink is the link VirtualMACHost.VirtualMAC returns: the instance's Link, which
// binds and announces the addresses on the virtual MAC interface, and follows the interface's
// state.
type VirtualMACLink interface {
	vrrp.Link
	// Name is the virtual MAC interface's name (its addresses are adopted there).
	Name() string
	// Sender wraps the instance's socket: a MASTER's adverts leave from the virtual MAC
	// interface.
	Sender(vrrp.Sender) vrrp.Sender
	// Close deletes the interface, or with keep (the MASTER handed over to its successor)
	// leaves it up with its addresses for the successor.
	Close(keep bool) error
}

// readBuf is larger than the largest VRRP message (8 + 255*16 + 8 bytes), so any packet that
// fills it is oversized and fails the codec's exact length check.
const readBuf = 8192

// Options are the agent-wide settings.
type Options struct {
	// Probes are the settings of every instance's health probes (exec probes are off unless
	// enabled here).
	Probes probe.Options
	// AcceptFilter returns the host's packet filter for RFC 5798 Accept_Mode off; it is called
	// once, when the first instance with Accept false is applied. Nil: such instances are
	// refused, since nothing could stop the host from accepting packets for their addresses.
	AcceptFilter func() (AcceptFilter, error)
}

// AcceptFilter makes the host drop packets addressed to some addresses, while still answering
// ARP and neighbour discovery for them: RFC 5798 Accept_Mode off (hostnet.AcceptFilter).
type AcceptFilter interface {
	Block(addrs []netip.Addr) error
	Unblock(addrs []netip.Addr) error
}

// Agent runs a set of VRRP instances keyed by name.
type Agent struct {
	host    Host
	log     *slog.Logger
	opts    Options
	changes chan struct{}
	events  *stream

	mu        sync.Mutex
	ctx       context.Context // set while Run runs
	instances map[string]*instance
	sockets   map[sockKey]*socket
	// filter is the Accept_Mode filter once created; blocked holds what each instance has
	// blocked in it.
	filter  AcceptFilter
	blocked map[string][]netip.Addr
	// handoffBound (HandoffOnStop) makes Run's stop a handoff; handedOff is what it handed
	// over; pending holds the predecessor's entries not yet resumed or removed (Resume).
	handoffBound time.Duration
	handedOff    []HandoffEntry
	pending      map[handoffKey]HandoffEntry
	settled      func() // Resume's, until called
}

type instance struct {
	cfg    vrrp.Config
	router *vrrp.Router
	sock   *socket
	// vmac is the virtual MAC interface of an instance with cfg.VirtualMAC, while it runs.
	vmac   VirtualMACLink
	cancel context.CancelFunc
	err    error // why it is not running
	// final is the router's last status once Run has stopped it: the shutdown's transition
	// (reason Shutdown, its time and counters) stays visible to a last Snapshot.
	final *vrrp.Status

	probes []probe.Spec
	// prober is the running probe set, replaced when the probes change.
	prober *prober
}

// prober runs one instance's probes and hands their health to the router as one input
// (vrrp.Health, with keepalived's weight rules: probe.Weigh). The engine adjusts the
// configured priority itself, so a config change needs nothing from here.
type prober struct {
	runner *probe.Runner
	cancel context.CancelFunc
	done   chan struct{}
	// carried is the health of the probes of the same names in the prober this one replaced,
	// counted until this one's own checks decide: editing a probe must not put a healthy
	// instance in Fault (every node gets the edit at once and would resign together). For an
	// instance resumed after a handoff, every probe counts as healthy until carriedUntil (the
	// handoff's deadline), when carried is dropped; guarded by mu.
	carried      map[string]bool
	carriedUntil time.Time

	mu      sync.Mutex
	results map[string]probe.Result
}

// ProbeStatus is one probe's health as last reported.
type ProbeStatus struct {
	Name string
	// Known is false until the probe's first check has decided.
	Known   bool
	Healthy bool
	// Reason is what the deciding check said.
	Reason string
	Since  time.Time
}

// Status is an instance's VRRP status with its probes' health.
type Status struct {
	vrrp.Status
	Probes []ProbeStatus
	// Adjustment says why the priority differs from the configured one, or why the
	// instance is in Fault (e.g. "probe haproxy failing (-20)").
	Adjustment string
	// Message says in words what Reason (a CamelCase word) does not: why the instance could
	// not start. Empty otherwise (Adjustment and HostError say the rest).
	Message string
}

type sockKey struct {
	ifname string
	src    netip.Addr
}

type socket struct {
	key    sockKey
	conn   vrrp.PacketConn
	refs   int
	mu     sync.RWMutex
	routes map[uint8]*vrrp.Router
	drops  map[packet.Reason]*atomic.Uint64
	done   chan struct{}
	closed atomic.Bool
}

// New returns an agent; it starts nothing.
func New(host Host, log *slog.Logger, opts Options) *Agent {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{
		host:      host,
		log:       log,
		opts:      opts,
		changes:   make(chan struct{}, 1),
		events:    newStream(),
		instances: map[string]*instance{},
		sockets:   map[sockKey]*socket{},
		blocked:   map[string][]netip.Addr{},
	}
}

// Changes is signalled (coalesced) whenever an event is published: a wake-up for consumers
// that write what is (status), not a record of what happened (Subscribe).
func (a *Agent) Changes() <-chan struct{} { return a.changes }

func (a *Agent) notify() {
	select {
	case a.changes <- struct{}{}:
	default:
	}
}

// Apply adds or updates the instance name and its health probes. A running instance is
// reconfigured in place when the change allows it (addresses, peers, priority, timers,
// probes), and replaced otherwise.
func (a *Agent) Apply(name string, cfg vrrp.Config, probes ...probe.Spec) error {
	cfg.Name = name
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("applying %q: %w", name, err)
	}
	if _, err := probe.New(probes, a.opts.Probes, nil); err != nil {
		return fmt.Errorf("applying %q: %w", name, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for other, o := range a.instances {
		if other != name && o.cfg.Interface == cfg.Interface && o.cfg.VRID == cfg.VRID &&
			o.cfg.Primary.Is6() == cfg.Primary.Is6() {
			return fmt.Errorf("applying %q: VRID %d on %s is already used by %q", name, cfg.VRID, cfg.Interface, other)
		}
		// Two groups holding one address would take it from each other: the one resigning
		// removes the address the other MASTER serves.
		if other != name {
			for _, p := range cfg.Addresses {
				if slices.ContainsFunc(o.cfg.Addresses, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
					return fmt.Errorf("applying %q: address %s is already a virtual address of %q", name, p.Addr(), other)
				}
			}
		}
	}
	// Accept_Mode off: the addresses are blocked before the instance can hold them, so there
	// is never a moment when a MASTER accepts their packets; those no longer wanted are
	// unblocked once the change is applied.
	prevBlocked := a.blocked[name]
	unblock, err := a.blockLocked(name, cfg)
	if err != nil {
		return fmt.Errorf("applying %q: %w", name, err)
	}
	applied := false
	defer func() {
		if applied {
			a.unblockLocked(unblock)
			return
		}
		// The running instance keeps its old config: keep what it needs blocked, and
		// unblock what was blocked for the refused one only.
		var added []netip.Addr
		for _, x := range a.blocked[name] {
			if !slices.Contains(prevBlocked, x) {
				added = append(added, x)
			}
		}
		a.unblockLocked(added)
		if len(prevBlocked) == 0 {
			delete(a.blocked, name)
		} else {
			a.blocked[name] = prevBlocked
		}
	}()
	cur, ok := a.instances[name]
	if ok && cur.router != nil {
		var err error
		same := slices.EqualFunc(cur.probes, probes, specEqual)
		var carried map[string]bool
		if same {
			err = cur.router.Reconfigure(cfg)
		} else {
			// The old probes stop first, so that none of their word lands after the new
			// one; the new probes' view, from what the old ones knew, goes with the config
			// as one step (a new base priority is never acted on with the old weights).
			if cur.prober != nil {
				cur.prober.stop()
				carried = cur.prober.health()
			}
			err = cur.router.ReconfigureHealth(cfg, probe.Weigh(probes, carried))
			if err != nil && !errors.Is(err, vrrp.ErrIncompatible) {
				// Refused: the old probes go on, from what they knew.
				a.startProberLocked(cur, carried, time.Time{})
			}
		}
		if err == nil {
			cur.cfg = cfg
			if !same {
				cur.probes = slices.Clone(probes)
				a.startProberLocked(cur, carried, time.Time{})
			}
			applied = true
			st := cur.router.Status()
			a.emit(vrrp.Event{Kind: vrrp.EventApplied, At: time.Now(), Instance: name, Reason: AppliedInPlace,
				State: st.State, Priority: st.Priority})
			return nil
		}
		if !errors.Is(err, vrrp.ErrIncompatible) {
			return fmt.Errorf("applying %q: %w", name, err)
		}
		a.stopLocked(cur)
	}
	inst := &instance{cfg: cfg, probes: slices.Clone(probes)}
	a.instances[name] = inst
	// The instance is in place now (running, or reported with its start error): its
	// addresses stay blocked as its config says.
	applied = true
	a.emit(vrrp.Event{Kind: vrrp.EventApplied, At: time.Now(), Instance: name, Reason: AppliedNew, Priority: cfg.Priority})
	if a.ctx == nil {
		return nil
	}
	return a.startLocked(inst)
}

// Remove stops the instance name (a MASTER hands over) and forgets it.
func (a *Agent) Remove(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if inst, ok := a.instances[name]; ok {
		a.stopLocked(inst)
		delete(a.instances, name)
		a.unblockLocked(a.blocked[name])
		delete(a.blocked, name)
		a.emit(vrrp.Event{Kind: vrrp.EventRemoved, At: time.Now(), Instance: name})
	}
}

// acceptBlocked returns the addresses cfg needs blocked: all of them when Accept_Mode is off,
// except for the address owner, which always accepts (RFC 5798 §6.1, §6.4.3).
func acceptBlocked(cfg vrrp.Config) []netip.Addr {
	if cfg.Accept || cfg.Priority == vrrp.OwnerPriority {
		return nil
	}
	out := make([]netip.Addr, len(cfg.Addresses))
	for i, p := range cfg.Addresses {
		out[i] = p.Addr()
	}
	return out
}

// blockLocked blocks what cfg needs and name has not blocked yet, and records it; it returns
// what name had blocked and no longer needs, for unblockLocked once the change is applied.
func (a *Agent) blockLocked(name string, cfg vrrp.Config) ([]netip.Addr, error) {
	want, have := acceptBlocked(cfg), a.blocked[name]
	var add, drop []netip.Addr
	for _, x := range want {
		if !slices.Contains(have, x) {
			add = append(add, x)
		}
	}
	for _, x := range have {
		if !slices.Contains(want, x) {
			drop = append(drop, x)
		}
	}
	if len(add) > 0 {
		if a.filter == nil {
			if a.opts.AcceptFilter == nil {
				return nil, errors.New("accept: false needs a packet filter on the host, and this agent has none: set accept: true")
			}
			f, err := a.opts.AcceptFilter()
			if err != nil {
				return nil, fmt.Errorf("accept: false needs the host's nftables filter: %w", err)
			}
			a.filter = f
		}
		if err := a.filter.Block(add); err != nil {
			return nil, fmt.Errorf("accept: false: blocking the addresses: %w", err)
		}
	}
	if len(want) == 0 {
		delete(a.blocked, name)
	} else {
		a.blocked[name] = want
	}
	return drop, nil
}

// unblockLocked unblocks addrs; a failure is logged (the addresses stay blocked, which only
// matters if this node later holds them with Accept_Mode on).
func (a *Agent) unblockLocked(addrs []netip.Addr) {
	if len(addrs) == 0 || a.filter == nil {
		return
	}
	if err := a.filter.Unblock(addrs); err != nil {
		a.log.Error("accept mode: unblocking addresses", "addresses", addrs, "err", err)
	}
}

// Names returns the names of the configured instances.
func (a *Agent) Names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.instances))
	for n := range a.instances {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Snapshot returns the status of every instance, sorted by name. An instance that could not
// start is reported in Fault with the error as its reason.
func (a *Agent) Snapshot() []Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Status, 0, len(a.instances))
	for name, inst := range a.instances {
		out = append(out, inst.status(name))
	}
	slices.SortFunc(out, func(x, y Status) int { return cmpString(x.Name, y.Name) })
	return out
}

// StatusOf returns the status of the instance name, as Snapshot reports it, and whether there
// is one: a reader of one instance does not pay for all of them.
func (a *Agent) StatusOf(name string) (Status, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	inst, ok := a.instances[name]
	if !ok {
		return Status{}, false
	}
	return inst.status(name), true
}

// status is the instance's entry of Snapshot.
func (inst *instance) status(name string) Status {
	var st Status
	switch {
	case inst.router != nil:
		st.Status = inst.router.Status()
		inst.sock.addDrops(&st.Stats)
	case inst.final != nil && inst.err == nil:
		st.Status = *inst.final
	default:
		st.Status = vrrp.Status{Name: name, Interface: inst.cfg.Interface, VRID: inst.cfg.VRID,
			Priority: inst.cfg.Priority, Primary: inst.cfg.Primary, State: vrrp.Initialize}
		if inst.err != nil {
			st.State, st.Reason, st.Message = vrrp.Fault, ReasonStartFailed, inst.err.Error()
		}
	}
	st.Probes = inst.probeStatus()
	st.Adjustment = st.Health.Message
	if inst.router == nil {
		st.Adjustment = probe.Weigh(inst.probes, nil).Applied(inst.cfg.Priority).Message
	}
	return st
}

// probeStatus lists the probes' health in spec order.
func (inst *instance) probeStatus() []ProbeStatus {
	if len(inst.probes) == 0 {
		return nil
	}
	out := make([]ProbeStatus, 0, len(inst.probes))
	var results map[string]probe.Result
	if inst.prober != nil {
		results = inst.prober.snapshot()
	}
	for _, s := range inst.probes {
		ps := ProbeStatus{Name: s.Name}
		if r, ok := results[s.Name]; ok {
			ps.Known, ps.Healthy, ps.Reason, ps.Since = true, r.Healthy, r.Reason, r.At
		}
		out = append(out, ps)
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Run starts every applied instance and blocks until ctx is cancelled; then it stops them all
// at once (every MASTER hands over with priority 0 and removes its addresses, or, after
// HandoffOnStop, hands off to its successor on this node), closes the sockets and returns.
// Instances matching what Resume was given resume as MASTER.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.ctx != nil {
		a.mu.Unlock()
		return errors.New("agent: already running")
	}
	a.ctx = ctx
	a.handedOff = nil
	for _, inst := range a.instances {
		if err := a.startLocked(inst); err != nil {
			a.log.Error("starting VRRP instance", "vip", inst.cfg.Name, "err", err)
		}
	}
	// What the predecessor handed over and no instance resumed: removed now when the
	// instances were applied first (standalone), else at the deadline (see Resume).
	if len(a.instances) > 0 {
		a.settleHandoffLocked("no instance resumed it")
	}
	var settle *time.Timer
	if last := a.handoffDeadlineLocked(); !last.IsZero() {
		settle = time.AfterFunc(time.Until(last), func() { a.settleHandoff("past its deadline") })
	}
	a.mu.Unlock()
	a.notify()

	<-ctx.Done()
	if settle != nil {
		settle.Stop()
	}

	a.mu.Lock()
	var wg sync.WaitGroup
	for _, inst := range a.instances {
		inst.prober.stop()
		inst.prober = nil
		if inst.router != nil {
			inst.cancel()
			wg.Go(func() { <-inst.router.Done() })
		}
	}
	a.mu.Unlock()
	wg.Wait()
	a.mu.Lock()
	for _, inst := range a.instances {
		if inst.router != nil {
			st := inst.router.Status()
			inst.sock.addDrops(&st.Stats)
			inst.final = &st
			if h := inst.router.HandedOff(); h != nil {
				a.handedOff = append(a.handedOff, handedOffEntry(h))
			}
		}
		a.detachLocked(inst)
	}
	// What the predecessor handed over and no instance has settled yet goes on to the
	// successor with its own deadline: this agent's record replaces the predecessor's, and
	// the next start would otherwise remove those addresses as a killed agent's.
	if a.handoffBound > 0 {
		now := time.Now()
		for _, e := range a.pending {
			if now.Before(e.Deadline) {
				e.Addresses = slices.Clone(e.Addresses)
				a.handedOff = append(a.handedOff, e)
			}
		}
	}
	a.ctx = nil
	a.mu.Unlock()
	return nil
}

func (a *Agent) startLocked(inst *instance) error {
	cfg := inst.cfg
	inst.err, inst.final = nil, nil
	link, err := a.host.Link(cfg.Interface)
	if err != nil {
		return a.startFailedLocked(inst, err)
	}
	var vmac VirtualMACLink
	if cfg.VirtualMAC {
		if vmac, err = a.openVirtualMAC(cfg); err != nil {
			return a.startFailedLocked(inst, err)
		}
		link = vmac
	}
	closeVMAC := func() {
		if vmac != nil {
			if err := vmac.Close(false); err != nil {
				a.log.Warn("removing the virtual MAC interface of an instance that could not start", "vip", cfg.Name, "err", err)
			}
		}
	}
	sock, err := a.acquireLocked(sockKey{cfg.Interface, cfg.Primary})
	if err != nil {
		closeVMAC()
		return a.startFailedLocked(inst, err)
	}
	// The engine and router add the vip and vrid attributes themselves.
	log := a.log
	core, err := vrrp.New(cfg, log)
	if err != nil {
		a.releaseLocked(sock)
		closeVMAC()
		return a.startFailedLocked(inst, err)
	}
	inst.vmac = vmac
	// Until its probes have spoken, an instance starts with what they allow (probe.Weigh
	// counts an unchecked probe as failing): a weight-0 probe keeps it in Fault
	// (ProbePending), so a node never takes the VIP before it has seen its HAProxy. One
	// resumed after a handoff holds the VIP already, and its predecessor held it with these
	// probes: they count as healthy until they decide, at most until the handoff's deadline.
	var carried map[string]bool
	var carriedUntil time.Time
	entry, resume := a.takeHandoffLocked(inst)
	if resume {
		carried, carriedUntil = resumedHealth(inst.probes), entry.Deadline
	}
	core.SetHealth(time.Now(), probe.Weigh(inst.probes, carried))
	var send vrrp.Sender = sock.conn
	if vmac != nil {
		send = vmac.Sender(sock.conn)
	}
	r := vrrp.NewRouter(core, send, link, log, a.emit)
	if resume {
		r.ResumeAtStart()
	}
	if a.handoffBound > 0 {
		r.HandoffOnStop(a.handoffBound)
	}
	sock.mu.Lock()
	sock.routes[cfg.VRID] = r
	sock.mu.Unlock()
	ctx, cancel := context.WithCancel(a.ctx)
	inst.router, inst.sock, inst.cancel = r, sock, cancel
	go func() {
		if err := r.Run(ctx); err != nil {
			log.Error("VRRP instance stopped", "err", err)
		}
	}()
	a.startProberLocked(inst, carried, carriedUntil)
	return nil
}

// openVirtualMAC returns the virtual MAC interface of an instance with cfg.VirtualMAC.
func (a *Agent) openVirtualMAC(cfg vrrp.Config) (VirtualMACLink, error) {
	vh, ok := a.host.(VirtualMACHost)
	if !ok {
		return nil, errors.New("virtualMAC: this host cannot create virtual MAC interfaces")
	}
	l, err := vh.VirtualMAC(cfg.Interface, cfg.VRID, cfg.Primary.Is6(), cfg.Primary)
	if err != nil {
		return nil, err
	}
	vl, ok := l.(VirtualMACLink)
	if !ok {
		return nil, fmt.Errorf("virtualMAC: the host's link %T is not a virtual MAC interface", l)
	}
	return vl, nil
}

// startFailedLocked records why inst could not start and reports it.
func (a *Agent) startFailedLocked(inst *instance, err error) error {
	inst.err = err
	a.emit(vrrp.Event{Kind: vrrp.EventApplied, At: time.Now(), Instance: inst.cfg.Name, State: vrrp.Fault,
		Priority: inst.cfg.Priority, Reason: ReasonStartFailed, Message: err.Error()})
	return fmt.Errorf("starting %q: %w", inst.cfg.Name, err)
}

// startProberLocked starts inst's probes, if any, feeding its router; carried is the health
// of the prober it replaces, or a resumed instance's until the time until when not zero (see
// prober.carried).
func (a *Agent) startProberLocked(inst *instance, carried map[string]bool, until time.Time) {
	inst.prober = nil
	if len(inst.probes) == 0 || inst.router == nil {
		return
	}
	log := a.log.With("vip", inst.cfg.Name)
	runner, err := probe.New(inst.probes, a.opts.Probes, log)
	if err != nil {
		// Apply checked the specs; this is unreachable, but never run without the probes
		// silently: stay in Fault.
		log.Error("starting probes", "err", err)
		inst.router.SetHealth(vrrp.Health{Fault: true, Reason: vrrp.ReasonProbeFailed, Message: "probes could not start: " + err.Error()})
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	p := &prober{runner: runner, cancel: cancel, done: make(chan struct{}), results: map[string]probe.Result{},
		carried: carried, carriedUntil: until}
	inst.prober = p
	r, specs, name := inst.router, inst.probes, inst.cfg.Name
	go func() {
		if err := runner.Run(ctx); err != nil {
			log.Error("probes stopped", "err", err)
		}
	}()
	go func() {
		defer close(p.done)
		// A resumed instance's carried health ends at the handoff's deadline: what has not
		// decided by then counts as it does at any start.
		var expire <-chan time.Time
		if !until.IsZero() {
			t := time.NewTimer(time.Until(until))
			defer t.Stop()
			expire = t.C
		}
		results := runner.Results()
		for {
			select {
			case res, ok := <-results:
				if !ok {
					return
				}
				p.mu.Lock()
				p.results[res.Name] = res
				p.mu.Unlock()
				st := r.Status()
				a.emit(vrrp.Event{Kind: vrrp.EventProbe, At: res.At, Instance: name, State: st.State, Priority: st.Priority,
					Probe: res.Name, Healthy: res.Healthy, Message: res.Reason})
			case <-expire:
				expire = nil
				p.mu.Lock()
				p.carried = nil
				p.mu.Unlock()
			}
			// Only this goroutine sends health while it runs: Apply stops it before it
			// sends the view of new probes.
			r.SetHealth(probe.Weigh(specs, p.health()))
		}
	}()
}

func (p *prober) stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

// health is the runner's health over the carried one.
func (p *prober) health() map[string]bool {
	p.mu.Lock()
	h := make(map[string]bool, len(p.carried))
	for k, v := range p.carried {
		h[k] = v
	}
	p.mu.Unlock()
	for k, v := range p.runner.Health() {
		h[k] = v
	}
	return h
}

func (p *prober) snapshot() map[string]probe.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]probe.Result, len(p.results))
	for k, v := range p.results {
		out[k] = v
	}
	return out
}

func specEqual(a, b probe.Spec) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.Process == b.Process && a.Executable == b.Executable && a.Address == b.Address &&
		a.URL == b.URL && a.ExpectedStatus == b.ExpectedStatus && a.HTTPS == b.HTTPS && slices.Equal(a.Command, b.Command) &&
		a.Interface == b.Interface && a.Path == b.Path && a.Interval == b.Interval && a.Timeout == b.Timeout &&
		a.Fall == b.Fall && a.Rise == b.Rise && a.Weight == b.Weight
}

// stopLocked stops a running instance and waits for its handover. The lock is held: the
// handover takes at most a few host operations, bounded by the router's own timeouts.
func (a *Agent) stopLocked(inst *instance) {
	if inst.router == nil {
		return
	}
	inst.prober.stop()
	inst.prober = nil
	// Removed or replaced: no successor takes this one over, whatever Run's stop will be.
	inst.router.HandoffOnStop(0)
	inst.cancel()
	<-inst.router.Done()
	a.detachLocked(inst)
}

func (a *Agent) detachLocked(inst *instance) {
	if inst.router == nil {
		return
	}
	if inst.vmac != nil {
		// Deleted, unless the MASTER handed its addresses, there, to its successor.
		if err := inst.vmac.Close(inst.router.HandedOff() != nil); err != nil {
			a.log.Warn("removing the virtual MAC interface", "vip", inst.cfg.Name, "err", err)
		}
		inst.vmac = nil
	}
	inst.sock.mu.Lock()
	if inst.sock.routes[inst.cfg.VRID] == inst.router {
		delete(inst.sock.routes, inst.cfg.VRID)
	}
	inst.sock.mu.Unlock()
	a.releaseLocked(inst.sock)
	inst.router, inst.sock, inst.cancel = nil, nil, nil
}

func (a *Agent) acquireLocked(k sockKey) (*socket, error) {
	if s, ok := a.sockets[k]; ok {
		s.refs++
		return s, nil
	}
	conn, err := a.host.Listen(k.ifname, k.src)
	if err != nil {
		return nil, err
	}
	s := &socket{key: k, conn: conn, refs: 1, routes: map[uint8]*vrrp.Router{},
		drops: map[packet.Reason]*atomic.Uint64{}, done: make(chan struct{})}
	for _, r := range []packet.Reason{vrrp.DropVRID, packet.ReasonTooShort} {
		s.drops[r] = new(atomic.Uint64)
	}
	a.sockets[k] = s
	go s.read(a.log.With("interface", k.ifname, "source", k.src))
	return s, nil
}

func (a *Agent) releaseLocked(s *socket) {
	s.refs--
	if s.refs > 0 {
		return
	}
	delete(a.sockets, s.key)
	s.closed.Store(true)
	if err := s.conn.Close(); err != nil {
		a.log.Warn("closing VRRP socket", "interface", s.key.ifname, "err", err)
	}
	<-s.done
}

// read hands each packet to the router of its VRID; the router validates it fully.
func (s *socket) read(log *slog.Logger) {
	defer close(s.done)
	buf := make([]byte, readBuf)
	var lastErr time.Time
	for {
		p, err := s.conn.ReadPacket(buf)
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			if time.Since(lastErr) > 10*time.Second {
				log.Warn("reading VRRP socket", "err", err)
				lastErr = time.Now()
			}
			// Don't spin on a persistent error.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if len(p.Data) < 2 {
			s.drops[packet.ReasonTooShort].Add(1)
			continue
		}
		s.mu.RLock()
		r := s.routes[p.Data[1]]
		s.mu.RUnlock()
		if r == nil {
			s.drops[vrrp.DropVRID].Add(1)
			continue
		}
		p.Data = bytes.Clone(p.Data)
		r.Deliver(p)
	}
}

// addDrops adds the socket's drops (shared by its instances) to st.
func (s *socket) addDrops(st *vrrp.Stats) {
	if st.Drops == nil {
		st.Drops = map[packet.Reason]uint64{}
	}
	for r, n := range s.drops {
		if v := n.Load(); v > 0 {
			st.Drops[r] += v
		}
	}
}
