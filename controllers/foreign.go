package controllers

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// A foreign router advertises a group's VRID on the link with another list of addresses
// (vrrp.Status.Foreign). Another VRRP group using the same VRID there, another cluster or an
// old keepalived, is the most common VRRP outage in the field: its adverts would silently take
// part in the election. The engine drops them and remembers the sender; here each node lists
// its foreign routers in its member (status.foreignRouters), the aggregator raises the ForeignRouter condition,
// and the node records a Warning Event the first time it hears one.

const (
	// foreignReportFor is how long a node reports a foreign router after its last advert. It
	// is the engine's own memory, but the engine forgets a silent router only when another
	// foreign advert arrives: the member drops it on time by itself.
	foreignReportFor = 5 * time.Minute
	// maxForeignRouters and maxForeignAddresses are the VirtualIPMember CRD's bounds on
	// status.foreignRouters and on its addresses.
	maxForeignRouters   = v1alpha1.MaxForeignRouters
	maxForeignAddresses = v1alpha1.MaxForeignAddresses
	// foreignShown bounds the routers a condition message names, and foreignAddrShown the
	// addresses it names per router: an Event's note is at most 1 kB.
	foreignShown     = 3
	foreignAddrShown = 4
	// foreignSeenStep is how far a router's lastSeen (and count) in this node's stored entry may
	// fall behind what the engine heard before the entry is written again for that alone: a
	// router heard every second would otherwise rewrite the entry every second (foreignCurrent).
	foreignSeenStep = time.Minute
)

// foreignEntries turns the foreign routers of a snapshot into a member's status.foreignRouters:
// the most recent of those heard within foreignReportFor of now, within the CRD's bounds,
// sorted by address. The engine keeps them most recent first, which two routers heard in turn
// reorder at every advert: the entry would change with each.
func foreignEntries(fs []vrrp.Foreign, now time.Time) []v1alpha1.ForeignRouterStatus {
	var out []v1alpha1.ForeignRouterStatus
	for _, f := range fs {
		if len(out) == maxForeignRouters {
			break
		}
		if !f.Src.IsValid() || now.Sub(f.LastSeen) > foreignReportFor {
			continue
		}
		var addrs []string
		for _, a := range f.Addresses[:min(len(f.Addresses), maxForeignAddresses)] {
			addrs = append(addrs, a.WithZone("").String())
		}
		out = append(out, v1alpha1.ForeignRouterStatus{
			// Without zone: a link-local sender's zone is the interface, which has its own field.
			Address:    f.Src.WithZone("").String(),
			Priority:   int32(f.Priority),
			Addresses:  addrs,
			InElection: f.InElection,
			Count:      int64(min(f.Count, math.MaxInt64)),
			// Whole seconds, as the API keeps it.
			LastSeen: metav1.NewTime(f.LastSeen.UTC().Truncate(time.Second)),
		})
	}
	// Addresses as netip writes them: IPv4 first, then in numeric order.
	slices.SortStableFunc(out, func(a, b v1alpha1.ForeignRouterStatus) int {
		return netip.MustParseAddr(a.Address).Compare(netip.MustParseAddr(b.Address))
	})
	return out
}

// foreignCurrent reports whether stored, the foreign routers of this node's entry as the API
// server has it, still says what fresh, those it would write now, says to a reader: the same
// routers, each with the same priority, addresses and inElection, and last seen less than
// foreignSeenStep after the stored lastSeen. Only count and lastSeen may differ: they move with
// every advert, and an entry rewritten for them alone would cost a write per advert interval
// for as long as a foreign router is heard. So a stored lastSeen is at most about a minute
// behind (and count with it) while nothing else changes, and any write carries both afresh.
func foreignCurrent(fresh, stored []v1alpha1.ForeignRouterStatus) bool {
	if len(fresh) != len(stored) {
		return false
	}
	for _, f := range fresh {
		i := slices.IndexFunc(stored, func(s v1alpha1.ForeignRouterStatus) bool { return s.Address == f.Address })
		if i < 0 {
			return false
		}
		s := stored[i]
		if s.Priority != f.Priority || s.InElection != f.InElection || !slices.Equal(s.Addresses, f.Addresses) {
			return false
		}
		// Earlier than stored (a clock set back): written afresh.
		if d := f.LastSeen.Sub(s.LastSeen.Time); d < 0 || d >= foreignSeenStep {
			return false
		}
	}
	return true
}

// foreignWriteEvery is the least time between two writes of this node's entry of a VirtualIP
// when the later one changes only its foreign routers. The engine remembers 8 of them: a
// sender on the link rotating 9 or more source addresses, or changing its priority at every
// advert, would otherwise cost a status write per advert on every node running the VRID.
const foreignWriteEvery = 10 * time.Second

// foreignOnly reports whether a write of want over have (ok, had: whether each is an entry)
// would change only their foreign routers.
func foreignOnly(want v1alpha1.NodeStatus, ok bool, have v1alpha1.NodeStatus, had bool) bool {
	if !ok || !had {
		return false
	}
	want.ForeignRouters, have.ForeignRouters = nil, nil
	return entryKey(want, true) == entryKey(have, true)
}

// foreignHold returns how long a write of want over have must wait when this node last wrote
// a change of the entry's foreign routers alone at last (zero: not since it started): none,
// unless this one too changes only the foreign routers (foreignOnly) and last is less than
// foreignWriteEvery before now. A change of anything else (state, priority, reason, ...) is
// written at once, and carries the foreign routers with it. A held write is not dropped: the
// reconciler looks again when the hold runs out and writes the entry as it is then.
func foreignHold(want v1alpha1.NodeStatus, ok bool, have v1alpha1.NodeStatus, had bool, last, now time.Time) time.Duration {
	if last.IsZero() || !foreignOnly(want, ok, have, had) {
		return 0
	}
	// At most foreignWriteEvery, even with a clock set back.
	return min(max(last.Add(foreignWriteEvery).Sub(now), 0), foreignWriteEvery)
}

// foreignCoarse is fs as foreignCurrent compares it, for a key that changes when it may no
// longer be current: count left out, lastSeen to the foreignSeenStep.
func foreignCoarse(fs []v1alpha1.ForeignRouterStatus) []v1alpha1.ForeignRouterStatus {
	if fs == nil {
		return nil
	}
	out := make([]v1alpha1.ForeignRouterStatus, len(fs))
	for i, f := range fs {
		f.Count = 0
		f.LastSeen = metav1.NewTime(f.LastSeen.Truncate(foreignSeenStep))
		out[i] = f
	}
	return out
}

// foreignHeard is one foreign router as the nodes of a group hear it on one interface.
type foreignHeard struct {
	nodes  []string // the nodes that hear it, sorted
	iface  string
	router v1alpha1.ForeignRouterStatus // as the node that heard it last reports it
	from   string                       // that node
}

// foreignOutsiders returns the foreign routers the entries report that are not nodes of the
// group, one per sender and interface, sorted. A node of the group whose list differs from
// another's is an edit of spec.addresses reaching the nodes a moment apart (they all read the
// same VirtualIP, and converge by themselves): it stays in its member's status.foreignRouters but
// is not worth a condition or a Warning after every edit. A listed unicast peer is no node: a
// keepalived peer whose list differs stays so until someone fixes it.
func foreignOutsiders(nodes []v1alpha1.NodeStatus) []foreignHeard {
	ours := map[string]bool{}
	for _, n := range nodes {
		if n.Address != "" {
			ours[n.Address] = true
		}
	}
	byKey := map[string]*foreignHeard{}
	for _, n := range nodes {
		for _, f := range n.ForeignRouters {
			if ours[f.Address] {
				continue
			}
			key := f.Address + "\x00" + n.Interface
			h := byKey[key]
			switch {
			case h == nil:
				h = &foreignHeard{iface: n.Interface, router: f, from: n.Name}
				byKey[key] = h
			case f.LastSeen.After(h.router.LastSeen.Time),
				// The same second: the first node by name, whatever the order of the entries.
				f.LastSeen.Equal(&h.router.LastSeen) && n.Name < h.from:
				h.router, h.from = f, n.Name
			}
			h.nodes = append(h.nodes, n.Name)
		}
	}
	out := make([]foreignHeard, 0, len(byKey))
	for _, h := range byKey {
		slices.Sort(h.nodes)
		h.nodes = slices.Compact(h.nodes)
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b foreignHeard) int {
		if c := strings.Compare(a.router.Address, b.router.Address); c != 0 {
			return c
		}
		return strings.Compare(a.iface, b.iface)
	})
	return out
}

// foreignMessage says which nodes hear which foreign routers, and what to change. It names at
// most foreignShown routers; the others are in the members' status.foreignRouters.
func foreignMessage(vrid int32, heard []foreignHeard) string {
	var b strings.Builder
	inElection := false
	for i, h := range heard[:min(len(heard), foreignShown)] {
		if i > 0 {
			b.WriteString("; ")
		}
		who, verb := "node", "hears"
		if len(h.nodes) > 1 {
			who, verb = "nodes", "hear"
		}
		iface := h.iface
		if iface == "" {
			iface = "its interface"
		}
		addrs := h.router.Addresses[:min(len(h.router.Addresses), foreignAddrShown)]
		list := strings.Join(addrs, ", ")
		if more := len(h.router.Addresses) - len(addrs); more > 0 {
			list += fmt.Sprintf(" and %d more", more)
		}
		fmt.Fprintf(&b, "%s %s %s %s on %s advertising VRID %d with %s (priority %d), not this group's addresses",
			who, strings.Join(h.nodes, ", "), verb, h.router.Address, iface, vrid, list, h.router.Priority)
		if h.router.InElection {
			// A listed peer, or a list that shares an address with ours: not dropped.
			b.WriteString(", and its adverts take part in this group's election")
			inElection = true
		}
	}
	if more := len(heard) - foreignShown; more > 0 {
		fmt.Fprintf(&b, "; and %d more (the members' status.foreignRouters)", more)
	}
	fmt.Fprintf(&b, ": another VRRP group uses VRID %d on this link; give one of them another spec.vrid (or fix its addresses)", vrid)
	if inElection {
		b.WriteString("; until then the router whose adverts take part can win the election and leave this group's addresses unheld")
	}
	return b.String()
}

// foreignEvents records a Warning Event the first time this node hears a foreign router that
// is not a node of the group (see foreignOutsiders), per VirtualIP and sender: not again while
// it keeps being heard, again once it has gone (not heard for foreignReportFor, or the
// instance stopped) and comes back. The message is the condition's, for this node and sender.
// At most foreignEventBurst ForeignRouter Events per VirtualIP per foreignEventWindow.
const (
	foreignEventBurst  = 10
	foreignEventWindow = time.Minute
)

func (r *StatusReconciler) foreignEvents(ctx context.Context, vip *v1alpha1.VirtualIP, entry v1alpha1.NodeStatus, ok bool) {
	if r.lastForeign == nil {
		r.lastForeign = map[string]map[string]bool{}
	}
	if !ok {
		delete(r.lastForeign, vip.Name)
		return
	}
	self := entry
	self.Name = r.NodeName
	nodes := []v1alpha1.NodeStatus{self}
	members, _, err := membersOf(ctx, r.Reader, vip.Name)
	if err != nil {
		return // compared again at the next change or resync
	}
	for _, m := range members {
		if m.Spec.Node != r.NodeName {
			// Only their addresses count: they tell the group's nodes from strangers.
			nodes = append(nodes, v1alpha1.NodeStatus{Name: m.Spec.Node, Address: m.Status.Address})
		}
	}
	prev := r.lastForeign[vip.Name]
	now := map[string]bool{}
	at := time.Now()
	if r.foreignEventTimes == nil {
		r.foreignEventTimes = map[string][]time.Time{}
	}
	recent := slices.DeleteFunc(r.foreignEventTimes[vip.Name], func(t time.Time) bool { return at.Sub(t) >= foreignEventWindow })
	for _, h := range foreignOutsiders(nodes) {
		now[h.router.Address] = true
		// At most foreignEventBurst Events per VirtualIP and window: an attacker rotating its
		// source address must not turn into a stream of Events (the condition names them).
		if prev[h.router.Address] || r.Recorder == nil || len(recent) >= foreignEventBurst {
			continue
		}
		recent = append(recent, at)
		r.Recorder.Eventf(vip, nil, corev1.EventTypeWarning, ReasonForeignRouter, "Detect", "%s",
			truncate(foreignMessage(vip.Spec.VRID, []foreignHeard{h}), maxMessage))
	}
	r.foreignEventTimes[vip.Name] = recent
	if len(now) == 0 {
		delete(r.lastForeign, vip.Name)
		return
	}
	r.lastForeign[vip.Name] = now
}
