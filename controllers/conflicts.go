package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// A claim is what one VirtualIP takes: its addresses, anywhere in the cluster, and on this
// node its slot (VRID, interface, family). Two VirtualIPs whose claims overlap cannot both
// run: each would take the other's adverts as its own group's, or each MASTER would remove the
// address the other serves when it resigns.
//
// Every node settles an overlap the same way, from the objects alone: the VirtualIP created
// first wins, then the one whose name sorts first. Which one a node happened to reconcile
// first does not matter, so all nodes agree, also after a restart, and the loser starts by
// itself once the winner is gone or no longer overlaps. A claim comes from the spec, not from
// what runs: a winner that cannot run for a reason of its own (its Secret is missing, say)
// still holds its claim, and says why it does not run.
type claim struct {
	name    string
	created time.Time
	// slot is where it runs on this node; inSlot is false when it does not run here (not
	// selected, or no interface for it), and then only its addresses count.
	slot   desired.Slot
	inSlot bool
	addrs  []netip.Addr
}

// before reports whether c wins over o: created earlier, then by name.
func (c claim) before(o claim) bool {
	if !c.created.Equal(o.created) {
		return c.created.Before(o.created)
	}
	return c.name < o.name
}

// overlaps reports whether c and o cannot both run on this node: same slot (sameSlot), or a
// shared address (the first of c's, addr).
func (c claim) overlaps(o claim) (sameSlot bool, addr netip.Addr, ok bool) {
	if c.inSlot && o.inSlot && c.slot == o.slot {
		return true, netip.Addr{}, true
	}
	for _, a := range c.addrs {
		if slices.Contains(o.addrs, a) {
			return false, a, true
		}
	}
	return false, netip.Addr{}, false
}

// defeat is why a VirtualIP does not run: the reason is ReasonVRIDConflict or
// ReasonAddressConflict, the message names the winner and what both claim.
type defeat struct {
	Rejection
	winner string
}

// loses returns why self may not run next to others: the oldest of them that overlaps it and
// comes before it. ok is false when self comes before every VirtualIP it overlaps.
func loses(self claim, others []claim) (defeat, bool) {
	var (
		winner *claim
		slot   bool
		addr   netip.Addr
	)
	for i := range others {
		o := &others[i]
		if o.name == self.name || !o.before(self) {
			continue
		}
		s, a, ok := self.overlaps(*o)
		if !ok || (winner != nil && !o.before(*winner)) {
			continue
		}
		winner, slot, addr = o, s, a
	}
	if winner == nil {
		return defeat{}, false
	}
	if slot {
		return defeat{winner: winner.name, Rejection: Rejection{Reason: ReasonVRIDConflict, Message: fmt.Sprintf(
			"%s is taken by VirtualIP %q, created before this one: this one starts once %q is deleted or leaves %s; "+
				"to run both, recreate this one with another vrid or give it another interface",
			self.slot, winner.name, winner.name, self.slot.Interface)}}, true
	}
	return defeat{winner: winner.name, Rejection: Rejection{Reason: ReasonAddressConflict, Message: fmt.Sprintf(
		"address %s is also claimed by VirtualIP %q, created before this one: this one starts once %q is deleted or drops it; "+
			"to run both, remove the address from one of them",
		addr, winner.name, winner.name)}}, true
}

// rivals returns the claims of the VirtualIPs that overlap self (self excluded), read from the
// cache. A VirtualIP being deleted claims nothing, nor does an invalid one, which runs nowhere.
// For the slot, only those that select this node and whose interface resolves here count.
// The list is the cache's own objects, not copies (1000 VirtualIPs would be a million copies
// at start-up): nothing here writes to them or keeps them.
func (r *VirtualIPReconciler) rivals(ctx context.Context, self claim, node desired.Node) ([]claim, error) {
	var list v1alpha1.VirtualIPList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var out []claim
	for i := range list.Items {
		v := &list.Items[i]
		if v.Name == self.name || !v.DeletionTimestamp.IsZero() {
			continue
		}
		c := claim{name: v.Name, created: v.CreationTimestamp.Time, addrs: desired.Addresses(v)}
		// Cheap tests first: most VirtualIPs share neither the VRID nor an address.
		sameVRID := self.inSlot && v.Spec.VRID == int32(self.slot.VRID)
		if !sameVRID && !slices.ContainsFunc(c.addrs, func(a netip.Addr) bool { return slices.Contains(self.addrs, a) }) {
			continue
		}
		if errs := desired.Validate(v); len(errs) > 0 {
			continue
		}
		if sameVRID {
			if ok, err := desired.Selects(v, node.Name, node.Labels); err == nil && ok {
				if s, err := desired.SlotFor(v, node); err == nil {
					c.slot, c.inSlot = s, true
				}
			}
		}
		if _, _, ok := self.overlaps(c); ok {
			out = append(out, c)
		}
	}
	return out, nil
}
