package notify

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The states a command is told, as keepalived names them.
const (
	StateMaster = "MASTER"
	StateBackup = "BACKUP"
	StateFault  = "FAULT"
	StateStop   = "STOP"
)

// QueueLength is how many changes of one VirtualIP may wait for their commands; beyond it the
// oldest waiting change is dropped (see the package doc).
const QueueLength = 16

// Stream is the agent's event stream as a subscriber sees it (*agent.Subscription).
type Stream interface {
	Ready() <-chan struct{}
	Take() []vrrp.Event
}

// Commands are the commands of one VirtualIP (v1alpha1.NotifySpec): argv lists, nil where
// none is given, and the bound of each run.
type Commands struct {
	Master, Backup, Fault, Stop, All []string
	Timeout                          time.Duration
}

// CommandsOf returns the commands of spec, nil for none.
func CommandsOf(spec *v1alpha1.NotifySpec) *Commands {
	if spec == nil {
		return nil
	}
	c := &Commands{
		Master: slices.Clone(spec.Master), Backup: slices.Clone(spec.Backup), Fault: slices.Clone(spec.Fault),
		Stop: slices.Clone(spec.Stop), All: slices.Clone(spec.All), Timeout: v1alpha1.DefaultNotifyTimeout,
	}
	if spec.Timeout != nil {
		c.Timeout = spec.Timeout.Duration
	}
	return c
}

// of returns the state's own command.
func (c *Commands) of(state string) []string {
	switch state {
	case StateMaster:
		return c.Master
	case StateBackup:
		return c.Backup
	case StateFault:
		return c.Fault
	case StateStop:
		return c.Stop
	}
	return nil
}

// Programs lists the programs (first elements, as probe.ShownProgram shows them) of the
// commands given, in the order master, backup, fault, stop, all, each once: what may be shown
// of them (the arguments may carry credentials).
func (c *Commands) Programs() []string {
	var out []string
	for _, argv := range [][]string{c.Master, c.Backup, c.Fault, c.Stop, c.All} {
		if len(argv) > 0 && !slices.Contains(out, probe.ShownProgram(argv[0])) {
			out = append(out, probe.ShownProgram(argv[0]))
		}
	}
	return out
}

// Change is one state change as the commands are told it.
type Change struct {
	Instance string
	State    string // StateMaster, StateBackup, StateFault or StateStop
	Priority uint8  // the effective priority after the change
	Reason   string // the engine's CamelCase reason, e.g. MasterDownTimer
}

// Args are the arguments appended to each command, in keepalived's order with the reason
// last: INSTANCE, the VirtualIP's name, the state, the priority, the reason.
func (c Change) Args() []string {
	return []string{"INSTANCE", c.Instance, c.State, strconv.Itoa(int(c.Priority)), c.Reason}
}

// stateOf maps an engine state entered to the state a command is told: Initialize is entered
// only when the instance stops (reason Shutdown, or Handoff at a restart), which is STOP.
func stateOf(s vrrp.State) string {
	switch s {
	case vrrp.Master:
		return StateMaster
	case vrrp.Backup:
		return StateBackup
	case vrrp.Fault:
		return StateFault
	}
	return StateStop
}

// Runner runs the commands of every VirtualIP it was given (Set) on the changes of the agent's
// event stream (Handle, or Start).
type Runner struct {
	log *slog.Logger
	// queueLen is QueueLength; tests shorten it.
	queueLen int
	// kill ends every running command (Close, once its wait is over).
	kill   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// cmds: VirtualIP -> its commands as last Set, nil for none; a VirtualIP not Set has
	// none, unless it ran commands before it was forgotten (instance.cmds).
	cmds  map[string]*Commands
	insts map[string]*instance
	// closed: Close has begun; killed: its wait is over, nothing more runs.
	closed, killed bool
	dropped        uint64
}

// instance is what the runner keeps of one VirtualIP's instance while it runs or its changes
// wait.
type instance struct {
	// cmds are the commands of its last change: a VirtualIP forgotten as it is removed
	// (Forget comes before the runner reads the removal's events) still runs its STOP with
	// them.
	cmds *Commands
	// last is the state last reported ("" none yet).
	last    string
	queue   []job
	running bool
	// removed: the instance was removed; forgotten once its queue is empty.
	removed bool
	// startFailed: its last change was a start that failed (FAULT, StartFailed) and it has not
	// run since. The reconciler retries such a start, removing and applying again, for as long
	// as it fails: the FAULT runs once for the whole streak, and a removal runs no STOP for an
	// instance that never ran. Kept until the VirtualIP is forgotten or starts.
	startFailed bool
	// dropped counts the changes dropped from its queue since its worker last said so.
	dropped uint64
}

type job struct {
	change Change
	cmds   *Commands
}

// New returns a runner that logs to log; it runs nothing until it is handed events.
func New(log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kill, cancel := context.WithCancel(context.Background())
	return &Runner{log: log, queueLen: QueueLength, kill: kill, cancel: cancel,
		cmds: map[string]*Commands{}, insts: map[string]*instance{}}
}

// Set gives the VirtualIP name the commands of spec (nil: none), from its next change on. Set
// it before the instance is applied, so that its first change finds them.
func (r *Runner) Set(name string, spec *v1alpha1.NotifySpec) {
	c := CommandsOf(spec)
	r.mu.Lock()
	r.cmds[name] = c
	r.mu.Unlock()
}

// Forget drops what Set gave name, once the VirtualIP no longer runs on this node; the STOP of
// its removal still runs with the commands it had.
func (r *Runner) Forget(name string) {
	r.mu.Lock()
	delete(r.cmds, name)
	if inst := r.insts[name]; inst != nil && inst.startFailed && inst.removed && !inst.running {
		delete(r.insts, name)
	}
	r.mu.Unlock()
}

// LongestTimeout is the longest timeout of the commands Set, 0 with none.
func (r *Runner) LongestTimeout() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Duration
	for _, c := range r.cmds {
		if c != nil {
			d = max(d, c.Timeout)
		}
	}
	return d
}

// Dropped is how many changes were dropped from full queues, their commands never run.
func (r *Runner) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Handle maps one event of the agent's stream to a change and queues its commands: a
// transition (into Master, Backup, Fault, or Initialize: STOP), an instance that could not
// start (FAULT, reason StartFailed; once for a streak of failed starts, see
// instance.startFailed), the removal of an instance that ran and whose stop was not reported
// (STOP, reason Shutdown). It never blocks.
func (r *Runner) Handle(e vrrp.Event) {
	if e.Kind == vrrp.EventDropped {
		r.log.Warn("notify: events were lost before their commands could be queued; those changes run none", "count", e.Count)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	inst := r.insts[e.Instance]
	var ch Change
	switch e.Kind {
	case vrrp.EventTransition:
		ch = Change{Instance: e.Instance, State: stateOf(e.State), Priority: e.Priority, Reason: e.Reason}
	case vrrp.EventApplied:
		if e.Reason != agent.ReasonStartFailed || inst != nil && inst.startFailed {
			return
		}
		ch = Change{Instance: e.Instance, State: StateFault, Priority: e.Priority, Reason: agent.ReasonStartFailed}
	case vrrp.EventRemoved:
		if inst == nil {
			return
		}
		inst.removed = true
		if inst.startFailed {
			return // it never ran: no STOP; kept to remember the streak (Forget drops it)
		}
		if inst.last == "" || inst.last == StateStop {
			if !inst.running {
				delete(r.insts, e.Instance)
			}
			return
		}
		ch = Change{Instance: e.Instance, State: StateStop, Priority: e.Priority, Reason: vrrp.ReasonShutdown}
	default:
		return
	}
	if inst == nil {
		inst = &instance{}
		r.insts[e.Instance] = inst
	}
	if e.Kind != vrrp.EventRemoved {
		inst.removed = false
	}
	inst.startFailed = e.Kind == vrrp.EventApplied
	if c, ok := r.cmds[e.Instance]; ok {
		inst.cmds = c
	}
	inst.last = ch.State
	if inst.cmds == nil || (len(inst.cmds.of(ch.State)) == 0 && len(inst.cmds.All) == 0) {
		if inst.removed && !inst.running {
			delete(r.insts, e.Instance)
		}
		return
	}
	inst.queue = append(inst.queue, job{change: ch, cmds: inst.cmds})
	if len(inst.queue) > r.queueLen {
		inst.queue = slices.Delete(inst.queue, 0, 1)
		inst.dropped++
		r.dropped++
	}
	if !inst.running {
		inst.running = true
		r.wg.Add(1)
		go r.work(e.Instance)
	}
}

// work runs the queued changes of the VirtualIP name, one at a time, until none waits.
func (r *Runner) work(name string) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		inst := r.insts[name]
		if len(inst.queue) == 0 || r.killed {
			if n := len(inst.queue); n > 0 {
				r.log.Warn("notify: stopping with changes whose commands did not run", "vip", name, "count", n)
				inst.queue = nil
			}
			inst.running = false
			if inst.removed {
				delete(r.insts, name)
			}
			r.mu.Unlock()
			return
		}
		j := inst.queue[0]
		inst.queue = slices.Delete(inst.queue, 0, 1)
		dropped := inst.dropped
		inst.dropped = 0
		r.mu.Unlock()
		if dropped > 0 {
			r.log.Warn("notify: changes dropped before their commands ran: the commands are slower than the state changes",
				"vip", name, "dropped", dropped, "queue", r.queueLen)
		}
		r.runChange(j)
	}
}

// runChange runs the state's own command of one change, then all.
func (r *Runner) runChange(j job) {
	for _, argv := range [][]string{j.cmds.of(j.change.State), j.cmds.All} {
		if len(argv) == 0 {
			continue
		}
		if !strings.HasPrefix(argv[0], "/") {
			// desired.Validate refuses it; never looked up in PATH.
			r.log.Error("notify: not running a command whose program is not an absolute path", "vip", j.change.Instance,
				"state", j.change.State)
			continue
		}
		r.runOne(j.change, argv, j.cmds.Timeout)
	}
}

// runOne runs argv with the change's arguments within timeout and logs how it ended.
func (r *Runner) runOne(ch Change, argv []string, timeout time.Duration) {
	attrs := []any{"vip", ch.Instance, "state", ch.State, "reason", ch.Reason, "program", probe.ShownProgram(argv[0])}
	if r.kill.Err() != nil {
		return
	}
	full := append(slices.Clip(argv), ch.Args()...)
	start := time.Now()
	err, timedOut := run(r.kill, full, timeout)
	attrs = append(attrs, "took", time.Since(start).Round(time.Millisecond).String())
	switch {
	case timedOut:
		r.log.Warn("notify: command killed with its process group at its timeout", append(attrs, "timeout", timeout.String())...)
	case r.kill.Err() != nil:
		r.log.Warn("notify: command killed: the agent is stopping", attrs...)
	case err != nil:
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			attrs = append(attrs, "exitCode", ee.ExitCode())
		}
		r.log.Warn("notify: command failed", append(attrs, "err", errorText(err))...)
	default:
		r.log.Info("notify: command ran", attrs...)
	}
}

// errorText is what the log shows of a run's error (probe.ShownExecError).
func errorText(err error) string { return probe.ShownExecError(err) }

// Close waits until every change queued has run its commands or ctx is done; then the
// commands still running are killed with their process groups and the changes still queued
// are dropped (and logged). Events handed to Handle after Close begins are ignored.
func (r *Runner) Close(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.mu.Lock()
		r.killed = true
		r.mu.Unlock()
		r.cancel()
		<-done
	}
	r.cancel()
}

// Start hands every event of s to Handle, from a goroutine, until stop is called. stop hands
// over what s still holds (the events published until then: the STOP of an agent that has
// just stopped), then closes the runner, waiting up to wait for the commands (Close).
func (r *Runner) Start(s Stream) (stop func(wait time.Duration)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.Ready():
				for _, e := range s.Take() {
					r.Handle(e)
				}
			}
		}
	}()
	return func(wait time.Duration) {
		cancel()
		<-done
		for _, e := range s.Take() {
			r.Handle(e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		r.Close(ctx)
	}
}
