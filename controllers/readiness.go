package controllers

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Readiness is what /readyz answers (ServeHealthReady): the agent is ready once it has read
// the VirtualIPs (the first list after its cache synced), reconciled each of them, and every
// instance it runs has started: MASTER, BACKUP having heard a MASTER, or in Fault for a cause
// other than its probes' first check. It then stays ready for the agent's life, whatever the
// API server does later.
//
// A DaemonSet's rolling update replaces the next node's agent once this one is ready. That
// agent may be a MASTER handing its VIPs to its successor (docs/design.md §4.9.1): it sends
// one advert with a stretched interval and goes silent. A BACKUP that was not yet listening
// then (its VirtualIP not yet read, or in Fault until its probes first report, which hears
// nobody) misses it, and takes the VIP after its own Master_Down_Interval while the old
// MASTER's node still holds it: two MASTERs until the successor resumes, connections reset.
// Measured on the real cluster before this existed: the new pod Ready 0.25 s before its
// agent had applied its VirtualIPs.
type Readiness struct {
	agent Agent
	ready atomic.Bool

	mu sync.Mutex
	// listed: the first list was read; pending are its names not reconciled since, done the
	// names reconciled before it was read (both emptied once ready).
	listed  bool
	pending map[string]bool
	done    map[string]bool
}

// NewReadiness returns the readiness of agent, not ready until the VirtualIPReconciler given
// it (VirtualIPReconciler.Readiness) has reconciled the first list.
func NewReadiness(agent Agent) *Readiness {
	return &Readiness{agent: agent, pending: map[string]bool{}, done: map[string]bool{}}
}

// listedNames records the names of the VirtualIPs of a list read after the cache synced.
func (r *Readiness) listedNames(names []string) {
	if r == nil || r.ready.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listed {
		// A later manager's list (the previous one failed): what the first one did not
		// have is not waited for.
		return
	}
	r.listed = true
	for _, n := range names {
		if !r.done[n] {
			r.pending[n] = true
		}
	}
	r.done = nil
}

// reconciled records that name was reconciled without error.
func (r *Readiness) reconciled(name string) {
	if r == nil || r.ready.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listed {
		delete(r.pending, name)
	} else if len(r.done) < maxReadinessNames {
		r.done[name] = true
	}
}

// maxReadinessNames bounds the names remembered as reconciled before the first list is read
// (the reconciles start once the cache syncs, the list is read beside them): more VirtualIPs
// than this and those beyond are waited for again, which costs a reconcile's time.
const maxReadinessNames = 1 << 16

// Ready returns nil once the agent is ready, else why not (VirtualIP names and states only).
func (r *Readiness) Ready() error {
	if r.ready.Load() {
		return nil
	}
	r.mu.Lock()
	listed, pending := r.listed, len(r.pending)
	var some []string
	for n := range r.pending {
		some = append(some, n)
		if len(some) == 3 {
			break
		}
	}
	r.mu.Unlock()
	switch {
	case !listed:
		return errors.New("the VirtualIPs are not read yet")
	case pending > 0:
		slices.Sort(some)
		return fmt.Errorf("%d VirtualIPs not reconciled yet (%s)", pending, strings.Join(some, ", "))
	}
	var starting []string
	for _, st := range r.agent.Snapshot() {
		if why := starting1(st.Status); why != "" {
			starting = append(starting, st.Name+": "+why)
		}
	}
	if len(starting) > 0 {
		slices.Sort(starting)
		if len(starting) > 3 {
			starting = append(starting[:3], fmt.Sprintf("%d more", len(starting)-3))
		}
		return fmt.Errorf("instances starting: %s", strings.Join(starting, "; "))
	}
	r.ready.Store(true)
	r.mu.Lock()
	r.pending, r.done = nil, nil
	r.mu.Unlock()
	return nil
}

// starting1 says why an instance has not started yet in the sense of Readiness ("" if it has).
func starting1(st vrrp.Status) string {
	switch st.State {
	case vrrp.Master:
		return ""
	case vrrp.Backup:
		if !st.Master.IsValid() {
			return "Backup, no MASTER heard yet"
		}
		return ""
	case vrrp.Fault:
		if st.Reason == vrrp.ReasonProbePending {
			return "Fault, probes not checked yet"
		}
		return ""
	}
	return st.State.String()
}
