package agent

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// HandoffEntry is one instance handed over between this node's agents at a restart
// (docs/design.md §4.9.1): what HandedOff returns when the agent stops, and what Resume takes
// from its successor. It is the handoff record's entry (hostnet.HandoffEntry).
type HandoffEntry struct {
	Interface string
	VRID      uint8
	IPv6      bool
	Addresses []netip.Prefix
	// Deadline is when the backups take over at the latest, and the addresses' kernel
	// lifetime ends.
	Deadline time.Time
}

// Adopter is what the agent needs of a Host, besides Host, to resume what its predecessor
// handed over: Adopt returns those of ps that are on ifname and kube-vrrp's, and makes them
// the Host's own (hostnet.Host.Adopt). A Host without it resumes nothing.
type Adopter interface {
	Adopt(ifname string, ps []netip.Prefix) ([]netip.Prefix, error)
}

type handoffKey struct {
	ifname string
	vrid   uint8
	v6     bool
}

// HandoffOnStop makes Run, when its context ends, hand every MASTER over to its successor on
// this node instead of to the backups (vrrp.Router.HandoffOnStop with bound): call it before
// cancelling Run's context, when the stop is a restart. HandedOff then returns what was handed
// over. A bound of 0 takes it back. An instance removed or replaced meanwhile still hands over
// to the backups.
func (a *Agent) HandoffOnStop(bound time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handoffBound = max(bound, 0)
	for _, inst := range a.instances {
		if inst.router != nil {
			inst.router.HandoffOnStop(a.handoffBound)
		}
	}
}

// HandedOff returns what the instances handed over when Run stopped (HandoffOnStop), for the
// handoff record: one entry per MASTER whose addresses were left bound, and the entries its own
// predecessor handed over that no instance had settled yet, with their deadlines. Call it after
// Run has returned.
func (a *Agent) HandedOff() []HandoffEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.handedOff)
}

// Resume gives the agent what its predecessor on this node handed over (the entries of the
// handoff record); call it before Run. An instance that starts while its entry is before its
// deadline, with the same interface, VRID, family and set of addresses, all of them still on
// the link and kube-vrrp's, resumes as MASTER (vrrp.Router.ResumeAtStart): no move, no
// announcement. Its probes count as healthy until each has decided, at most until the
// deadline, so that a probe not yet checked does not make it resign (the predecessor was
// MASTER with them). Any other instance starts as usual.
//
// The addresses of the entries that no instance resumes are removed: an entry whose instance
// starts without matching it (a changed config) before that instance starts, and so is one
// listing an address of an instance that starts; the rest when Run has started the instances
// applied before it, if there were any (standalone mode applies them all first), else at
// their deadline (Kubernetes, whose instances arrive as the VirtualIPs are read). The kernel
// removes them at the deadline too, given a lifetime by the predecessor.
//
// settled, if set, is called once every entry is settled (resumed, or its addresses removed),
// with the agent's lock held: it removes the handoff record (hostnet.State.ForgetHandoff),
// which until then a successor that stops or is killed leaves to the next start. With no
// entries it is called at once.
func (a *Agent) Resume(entries []HandoffEntry, settled func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = map[handoffKey]HandoffEntry{}
	}
	for _, e := range entries {
		e.Addresses = slices.Clone(e.Addresses)
		a.pending[handoffKey{e.Interface, e.VRID, e.IPv6}] = e
	}
	a.settled = settled
	a.checkSettledLocked()
}

// checkSettledLocked calls the settled function of Resume once no entry is pending.
func (a *Agent) checkSettledLocked() {
	if len(a.pending) == 0 && a.settled != nil {
		f := a.settled
		a.settled = nil
		f()
	}
}

// takeHandoffLocked decides, as inst starts, whether it resumes: its entry matches and its
// addresses are still bound (adopted by the Host); it returns the entry then. It removes the
// addresses of an entry it does not match, and of other entries listing its addresses.
func (a *Agent) takeHandoffLocked(inst *instance) (HandoffEntry, bool) {
	if len(a.pending) == 0 {
		return HandoffEntry{}, false
	}
	defer a.checkSettledLocked()
	cfg := inst.cfg
	now := time.Now()
	k := handoffKey{cfg.Interface, cfg.VRID, cfg.Primary.Is6()}
	e, ok := a.pending[k]
	delete(a.pending, k)
	// Another entry holding one of its addresses can never be resumed beside it.
	for k2, o := range a.pending {
		if o.Interface == cfg.Interface && slices.ContainsFunc(o.Addresses, func(p netip.Prefix) bool {
			return slices.ContainsFunc(cfg.Addresses, func(q netip.Prefix) bool { return q.Addr() == p.Addr() })
		}) {
			delete(a.pending, k2)
			a.dropHandoffLocked(o, "its address is another instance's", nil)
		}
	}
	// An instance with virtualMAC resumes the addresses on its virtual MAC interface, where
	// its predecessor bound them (docs/design.md §5.9).
	holder := cfg.Interface
	if inst.vmac != nil {
		holder = inst.vmac.Name()
	}
	if !ok {
		return HandoffEntry{}, false
	}
	why := ""
	switch {
	case !now.Before(e.Deadline):
		why = "past its deadline"
	case !samePrefixes(e.Addresses, cfg.Addresses):
		why = "the addresses changed"
	}
	if why != "" {
		a.dropHandoffLocked(e, why, inst.vmac)
		return HandoffEntry{}, false
	}
	ad, ok := a.host.(Adopter)
	if !ok {
		return HandoffEntry{}, false
	}
	got, err := ad.Adopt(holder, e.Addresses)
	if err != nil || len(got) != len(e.Addresses) {
		a.log.Info("not resuming a handed-over instance: its addresses are no longer bound", "vip", cfg.Name,
			"interface", holder, "addresses", e.Addresses, "bound", got, "err", err)
		// Removed wherever they are: what is left here, or all of them where the predecessor,
		// whose virtualMAC differed, bound them.
		a.dropHandoffLocked(e, "not all bound", inst.vmac)
		return HandoffEntry{}, false
	}
	a.log.Info("resuming the instance handed over by the previous agent", "vip", cfg.Name, "addresses", e.Addresses,
		"deadline", e.Deadline)
	return e, true
}

// dropHandoffLocked removes what an entry no instance resumes left bound: on its interface,
// on vmac (the virtual MAC interface of the instance starting with the entry's interface, VRID
// and family, if it has one), and with the virtual MAC interface the predecessor bound them on
// when no instance uses it (VirtualMACHost.DropVirtualMAC).
func (a *Agent) dropHandoffLocked(e HandoffEntry, why string, vmac VirtualMACLink) {
	a.log.Info("removing the addresses of a handed-over instance not resumed", "interface", e.Interface, "vrid", e.VRID,
		"addresses", e.Addresses, "why", why)
	if ad, ok := a.host.(Adopter); ok {
		holders := []string{e.Interface}
		if vmac != nil {
			holders = append(holders, vmac.Name())
		}
		for _, h := range holders {
			got, err := ad.Adopt(h, e.Addresses)
			if err != nil {
				a.log.Warn("reading the handed-over addresses; they expire at the deadline", "interface", h, "err", err)
				continue
			}
			var l vrrp.Link
			if vmac != nil && h == vmac.Name() {
				// All of them, those gone too (expired at the deadline): the Unbind of the
				// last sets the interface, left up by a MASTER predecessor, down.
				l, got = vmac, e.Addresses
			}
			a.unbindHandedLocked(h, l, got)
		}
	}
	if vh, ok := a.host.(VirtualMACHost); ok {
		if err := vh.DropVirtualMAC(e.Interface, e.VRID, e.IPv6); err != nil {
			a.log.Warn("removing a handed-over virtual MAC interface", "interface", e.Interface, "vrid", e.VRID, "err", err)
		}
	}
}

// unbindHandedLocked removes ps from ifname, through link when set (a virtual MAC interface,
// which goes down with its last address).
func (a *Agent) unbindHandedLocked(ifname string, link vrrp.Link, ps []netip.Prefix) {
	if len(ps) == 0 {
		return
	}
	var err error
	if link == nil {
		link, err = a.host.Link(ifname)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = link.Unbind(ctx, ps)
		cancel()
	}
	if err != nil {
		a.log.Warn("removing handed-over addresses; they expire at the deadline", "interface", ifname, "addresses", ps, "err", err)
	}
}

// settleHandoff removes the addresses of every entry not resumed by now.
func (a *Agent) settleHandoff(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.settleHandoffLocked(why)
}

func (a *Agent) settleHandoffLocked(why string) {
	for k, e := range a.pending {
		delete(a.pending, k)
		a.dropHandoffLocked(e, why, nil)
	}
	a.checkSettledLocked()
}

// handoffDeadlineLocked is the latest deadline of the pending entries (zero: none).
func (a *Agent) handoffDeadlineLocked() time.Time {
	var last time.Time
	for _, e := range a.pending {
		if e.Deadline.After(last) {
			last = e.Deadline
		}
	}
	return last
}

// samePrefixes reports whether a and b hold the same prefixes, in any order.
func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	for _, p := range b {
		if !slices.Contains(a, p) {
			return false
		}
	}
	return true
}

// resumedHealth is what a resumed instance's probes count as until each has decided: healthy.
func resumedHealth(specs []probe.Spec) map[string]bool {
	h := make(map[string]bool, len(specs))
	for _, s := range specs {
		h[s.Name] = true
	}
	return h
}

// handedOffEntry converts what a router handed over.
func handedOffEntry(h *vrrp.Handoff) HandoffEntry {
	return HandoffEntry{Interface: h.Interface, VRID: h.VRID, IPv6: h.IPv6, Addresses: slices.Clone(h.Addresses),
		Deadline: h.Deadline()}
}
