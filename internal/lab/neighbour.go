package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// neighbourMax bounds the changes a NeighbourWatch keeps.
const neighbourMax = 4096

// NeighbourChange is one change of a node's neighbour entry for an address on its lab link.
type NeighbourChange struct {
	At time.Time
	// MAC is the entry's link-layer address; nil when it has none (INCOMPLETE, FAILED) or
	// was deleted.
	MAC net.HardwareAddr
	// State is the entry's state ("REACHABLE", "STALE", "DELAY", "PROBE", "INCOMPLETE",
	// "FAILED", ...), or "deleted".
	State string
}

func (c NeighbourChange) String() string {
	mac := "-"
	if c.MAC != nil {
		mac = c.MAC.String()
	}
	return fmt.Sprintf("%s %s %s", c.At.Format("15:04:05.000"), mac, c.State)
}

// NeighbourWatch records every change of a node's neighbour entry for one address, from the
// kernel's neighbour notifications (RTNLGRP_NEIGH) in the node's namespace: a client's view
// of which MAC a VIP is at, change by change, where Node.Neighbor polls.
type NeighbourWatch struct {
	done  chan struct{}
	ended chan struct{}
	stop  sync.Once

	mu      sync.Mutex
	changes []NeighbourChange
	err     error
}

// WatchNeighbour starts recording the changes of n's neighbour entry for ip on its lab link,
// the current entry first. Stop ends it; the lab ends it when it closes.
func (n *Node) WatchNeighbour(ip netip.Addr) (*NeighbourWatch, error) {
	n.nlMu.Lock()
	if n.nl == nil {
		n.nlMu.Unlock()
		return nil, errors.New("lab closed")
	}
	link, err := n.nl.LinkByName(n.Interface)
	n.nlMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: link %s: %w", n.Name, n.Interface, err)
	}
	index := link.Attrs().Index
	h, err := netns.GetFromPath(filepath.Join(netnsDir, n.NetNS))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	defer h.Close()
	w := &NeighbourWatch{done: make(chan struct{}), ended: make(chan struct{})}
	ch := make(chan netlink.NeighUpdate, 64)
	err = netlink.NeighSubscribeWithOptions(ch, w.done, netlink.NeighSubscribeOptions{
		Namespace: &h, ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-w.done:
				return // Stop closed the socket
			default:
			}
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: neighbour notifications: %w", n.Name, err)
	}
	want := ip.WithZone("").AsSlice()
	go func() {
		defer close(w.ended)
		for u := range ch {
			if u.LinkIndex != index || !u.IP.Equal(want) {
				continue
			}
			c := NeighbourChange{At: time.Now(), State: neighState(u.State)}
			if u.Type == unix.RTM_DELNEIGH {
				c.State = "deleted"
			} else if len(u.HardwareAddr) > 0 && u.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
				c.MAC = slices.Clone(u.HardwareAddr)
			}
			w.mu.Lock()
			last := len(w.changes) - 1
			if (last < 0 || w.changes[last].State != c.State || w.changes[last].MAC.String() != c.MAC.String()) && len(w.changes) < neighbourMax {
				w.changes = append(w.changes, c)
			}
			w.mu.Unlock()
		}
	}()
	n.lab.addCloser(func() { w.Stop() })
	return w, nil
}

// neighState names a NUD state (the flags of one entry are one state in practice).
func neighState(s int) string {
	var names []string
	for _, f := range []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"},
		{netlink.NUD_STALE, "STALE"}, {netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"},
		{netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
	} {
		if s&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, "|")
}

// Changes returns the changes recorded so far, and the error that ended the notifications
// early (the kernel dropped some: ENOBUFS), if any.
func (w *NeighbourWatch) Changes() ([]NeighbourChange, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.changes), w.err
}

// Stop ends the watch and returns what Changes does.
func (w *NeighbourWatch) Stop() ([]NeighbourChange, error) {
	w.stop.Do(func() { close(w.done) })
	<-w.ended
	return w.Changes()
}

// MACs returns the distinct link-layer addresses in cs, in the order they first appear.
func MACs(cs []NeighbourChange) []string {
	var out []string
	for _, c := range cs {
		if c.MAC != nil && !slices.Contains(out, c.MAC.String()) {
			out = append(out, c.MAC.String())
		}
	}
	return out
}
