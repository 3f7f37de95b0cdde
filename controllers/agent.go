package controllers

import (
	"strings"
	"sync"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Agent is the per-node runtime the reconcilers drive; *agent.Agent implements it.
type Agent interface {
	Apply(name string, cfg vrrp.Config, probes ...probe.Spec) error
	Remove(name string)
	Names() []string
	Snapshot() []agent.Status
	// StatusOf is one instance's entry of Snapshot, and whether it runs.
	StatusOf(name string) (agent.Status, bool)
}

// maxMessage is the VirtualIPMember CRD's bound on status.message and status.probes[].message.
const maxMessage = v1alpha1.MaxMessageLength

// maxNote bounds the words an Event's note carries (a message, a probe's reason): an Event's
// note is at most 1 kB with the node's name and the rest around it.
const maxNote = 512

// Rejection is why this node refuses to run a VirtualIP: Reason is one of the refusal reasons
// (reasons.go), Message says what is wrong and what to change.
type Rejection struct {
	Reason  string
	Message string
	// OffLink: the node cannot take part at all, having no interface in the VirtualIP's subnet
	// (a CannotResolve). Unless the VirtualIP names it in spec.nodes, it has no member and
	// records no Event (docs/design.md §7.5).
	OffLink bool
}

// Rejections records, per VirtualIP, why this node refuses to run it (invalid spec, no
// interface, missing Secret, ...), for the status writer to report.
type Rejections struct {
	mu      sync.Mutex
	reasons map[string]Rejection
	notify  func(name string)
}

// NewRejections returns an empty set; notify, if set, is called after every change.
func NewRejections(notify func(name string)) *Rejections {
	return &Rejections{reasons: map[string]Rejection{}, notify: notify}
}

// Set records why name is rejected. The message is cut at maxMessage.
func (r *Rejections) Set(name string, why Rejection) {
	why.Message = truncate(why.Message, maxMessage)
	r.mu.Lock()
	changed := r.reasons[name] != why
	r.reasons[name] = why
	r.mu.Unlock()
	if changed && r.notify != nil {
		r.notify(name)
	}
}

// Clear forgets name.
func (r *Rejections) Clear(name string) {
	r.mu.Lock()
	_, had := r.reasons[name]
	delete(r.reasons, name)
	r.mu.Unlock()
	if had && r.notify != nil {
		r.notify(name)
	}
}

// Get returns why name is rejected, if it is.
func (r *Rejections) Get(name string) (Rejection, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.reasons[name]
	return s, ok
}

// Names lists the rejected VirtualIPs.
func (r *Rejections) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.reasons))
	for n := range r.reasons {
		out = append(out, n)
	}
	return out
}

// truncate cuts s to at most n bytes, ending in "...", without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	// Don't cut a UTF-8 sequence in half.
	for len(s) > 0 && s[len(s)-1]&0xc0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xc0 {
		s = s[:len(s)-1]
	}
	return strings.TrimRight(s, " ") + "..."
}
