package controllers

import (
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// NotifyHooks runs the VirtualIPs' spec.notify commands on this node's state changes
// (*notify.Runner, docs/design.md §6.6): the VirtualIPReconciler gives a VirtualIP's commands
// before it applies it, and forgets them once it stops running it (its STOP still runs).
type NotifyHooks interface {
	Set(name string, spec *v1alpha1.NotifySpec)
	Forget(name string)
}

// notifyDisabledMessage is the member's message, and the Event's note, of a VirtualIP whose
// spec.notify this node does not run. It names no command: their arguments may carry
// credentials.
const notifyDisabledMessage = "spec.notify is not run on this node: exec is disabled on its agent " +
	"(enable it with --enable-exec-probes, chart value probes.exec.enabled, or remove spec.notify); VRRP runs as usual"

// Warning is what this node reports about a VirtualIP it runs, besides its state: Reason is a
// warning reason (reasons.go), Message says what is wrong and what to change. Unlike a
// Rejection, the VirtualIP runs.
type Warning struct {
	Reason  string
	Message string
}

// Warnings records, per VirtualIP, a warning of this node about it, for the status writer to
// report: in the member's message, and as a Warning Event when it starts or changes. A nil
// *Warnings holds none.
type Warnings struct {
	mu     sync.Mutex
	byName map[string]Warning
	notify func(name string)
}

// NewWarnings returns an empty set; notify, if set, is called after every change.
func NewWarnings(notify func(name string)) *Warnings {
	return &Warnings{byName: map[string]Warning{}, notify: notify}
}

// Set records the warning of name.
func (w *Warnings) Set(name string, warning Warning) {
	if w == nil {
		return
	}
	warning.Message = truncate(warning.Message, maxMessage)
	w.mu.Lock()
	changed := w.byName[name] != warning
	w.byName[name] = warning
	w.mu.Unlock()
	if changed && w.notify != nil {
		w.notify(name)
	}
}

// Clear forgets name.
func (w *Warnings) Clear(name string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	_, had := w.byName[name]
	delete(w.byName, name)
	w.mu.Unlock()
	if had && w.notify != nil {
		w.notify(name)
	}
}

// Get returns the warning of name, if there is one.
func (w *Warnings) Get(name string) (Warning, bool) {
	var none Warning
	if w == nil {
		return none, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	warning, ok := w.byName[name]
	return warning, ok
}

// notify hands vip's spec.notify to the runner before vip is applied or, without one (exec
// disabled on this agent), records that its commands are not run: VRRP runs all the same, for
// a command must never take a VIP down.
func (r *VirtualIPReconciler) notify(vip *v1alpha1.VirtualIP) {
	switch {
	case r.Notify != nil:
		r.Notify.Set(vip.Name, vip.Spec.Notify)
		r.Warnings.Clear(vip.Name)
	case vip.Spec.Notify != nil:
		r.Warnings.Set(vip.Name, Warning{Reason: ReasonNotifyDisabled, Message: notifyDisabledMessage})
	default:
		r.Warnings.Clear(vip.Name)
	}
}

// forgetNotify forgets the spec.notify of a VirtualIP this node stopped running (after
// Agent.Remove, so that its STOP runs) and its warning.
func (r *VirtualIPReconciler) forgetNotify(name string) {
	if r.Notify != nil {
		r.Notify.Forget(name)
	}
	r.Warnings.Clear(name)
}

// withWarning adds the warning of name, if there is one, to the message of entry, within the
// member's bound: the warning whole, the rest cut first.
func (r *StatusReconciler) withWarning(name string, entry v1alpha1.NodeStatus) v1alpha1.NodeStatus {
	w, ok := r.Warnings.Get(name)
	if !ok {
		return entry
	}
	if entry.Message == "" {
		entry.Message = w.Message
		return entry
	}
	const sep = "; "
	entry.Message = truncate(entry.Message, max(maxMessage-len(w.Message)-len(sep), len("..."))) + sep + w.Message
	entry.Message = truncate(entry.Message, maxMessage)
	return entry
}

// warningEvent records this node's warning about vip as a Warning Event, each time it starts
// or changes (refusalEvent's counterpart for a VirtualIP that runs).
func (r *StatusReconciler) warningEvent(vip *v1alpha1.VirtualIP) {
	if r.lastWarning == nil {
		r.lastWarning = map[string]Warning{}
	}
	warning, ok := r.Warnings.Get(vip.Name)
	if !ok {
		delete(r.lastWarning, vip.Name)
		return
	}
	if prev, seen := r.lastWarning[vip.Name]; seen && prev == warning {
		return
	}
	r.lastWarning[vip.Name] = warning
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(vip, nil, corev1.EventTypeWarning, warning.Reason, "Run", "node %s: %s", r.NodeName, truncate(warning.Message, maxNote))
}
