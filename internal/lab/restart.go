package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// The instruments of the restart lab (docs/design.md §4.9.1; test/agentlab, test/bench), beside
// HTTPLoad and LongConns: who holds a VIP, checked at a steady pace, and how long an address
// has left.

// HolderWatch checks, every interval, which of some nodes hold a VIP, and records every change.
type HolderWatch struct {
	nodes []*Node
	vip   netip.Prefix
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	rec HolderRecord
}

// HolderRecord is what a HolderWatch saw.
type HolderRecord struct {
	// Checks counts the checks.
	Checks int
	// Changes are the holder sets the checks found, each with when it was first found; the
	// first is the first check's.
	Changes []HolderChange
	// End is when the last check was made.
	End time.Time
}

// HolderChange is a holder set and when a check first found it.
type HolderChange struct {
	At time.Time
	// Holders names the nodes that held the VIP, in the order they were given (none: empty).
	Holders []string
}

// WatchHolders starts checking which of nodes hold vip, every interval (default 10 ms). Stop
// it for the record; the lab stops it on Close at the latest.
func WatchHolders(nodes []*Node, vip netip.Prefix, interval time.Duration) *HolderWatch {
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	w := &HolderWatch{nodes: slices.Clone(nodes), vip: vip, stopc: make(chan struct{}), done: make(chan struct{})}
	go w.loop(interval)
	if len(nodes) > 0 {
		nodes[0].lab.addCloser(func() { w.Stop() })
	}
	return w
}

func (w *HolderWatch) loop(interval time.Duration) {
	defer close(w.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		var held []string
		for _, n := range w.nodes {
			if n.HasAddress(w.vip) {
				held = append(held, n.Name)
			}
		}
		now := time.Now()
		w.mu.Lock()
		w.rec.Checks++
		w.rec.End = now
		if k := len(w.rec.Changes); k == 0 || !slices.Equal(w.rec.Changes[k-1].Holders, held) {
			w.rec.Changes = append(w.rec.Changes, HolderChange{At: now, Holders: held})
		}
		w.mu.Unlock()
		select {
		case <-w.stopc:
			return
		case <-tick.C:
		}
	}
}

// Stop ends the checks and returns the record. It may be called again.
func (w *HolderWatch) Stop() HolderRecord {
	w.once.Do(func() { close(w.stopc) })
	<-w.done
	return w.Record()
}

// Record returns what the watch has seen so far.
func (w *HolderWatch) Record() HolderRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rec
	r.Changes = slices.Clone(r.Changes)
	return r
}

// FirstHeld returns when a check first found node holding the VIP (zero: never).
func (r HolderRecord) FirstHeld(node string) time.Time {
	for _, c := range r.Changes {
		if slices.Contains(c.Holders, node) {
			return c.At
		}
	}
	return time.Time{}
}

// LastHeld returns when a check first found node no longer holding the VIP for good (zero:
// it held it at the last check, or never did).
func (r HolderRecord) LastHeld(node string) time.Time {
	var gone time.Time
	held := false
	for _, c := range r.Changes {
		switch h := slices.Contains(c.Holders, node); {
		case h:
			held, gone = true, time.Time{}
		case held && gone.IsZero():
			gone = c.At
		}
	}
	return gone
}

// Moves counts how often the VIP went to another sole holder: n1, n1+n2, n2 is one move (the
// overlap is Split's), n1, none, n2, n1 two.
func (r HolderRecord) Moves() int {
	moves, owner := 0, ""
	for _, c := range r.Changes {
		if len(c.Holders) != 1 {
			continue
		}
		if owner != "" && c.Holders[0] != owner {
			moves++
		}
		owner = c.Holders[0]
	}
	return moves
}

// Split returns the longest time more than one node held the VIP at once (to one check), and
// how many times that happened. A split still going at the last check ends there.
func (r HolderRecord) Split() (longest time.Duration, count int) {
	for i, c := range r.Changes {
		if len(c.Holders) < 2 {
			continue
		}
		count++
		end := r.End
		if i+1 < len(r.Changes) {
			end = r.Changes[i+1].At
		}
		longest = max(longest, end.Sub(c.At))
	}
	return longest, count
}

// Held returns how long node held the VIP in all, by the checks.
func (r HolderRecord) Held(node string) time.Duration {
	var d time.Duration
	for i, c := range r.Changes {
		if !slices.Contains(c.Holders, node) {
			continue
		}
		end := r.End
		if i+1 < len(r.Changes) {
			end = r.Changes[i+1].At
		}
		d += end.Sub(c.At)
	}
	return d
}

// Timeline lists the changes, relative to from: "n1 -0.5s; n1,n2 +7.21s; n2 +8.14s".
func (r HolderRecord) Timeline(from time.Time) string {
	if len(r.Changes) == 0 {
		return "no checks"
	}
	parts := make([]string, len(r.Changes))
	for i, c := range r.Changes {
		h := strings.Join(c.Holders, ",")
		if h == "" {
			h = "none"
		}
		d := c.At.Sub(from).Round(time.Millisecond)
		sign := "+"
		if d < 0 {
			sign = ""
		}
		parts[i] = fmt.Sprintf("%s %s%v", h, sign, d)
	}
	return strings.Join(parts, "; ")
}

// ErrNoAddress is returned by Node.AddressLifetime when the node does not have the address.
var ErrNoAddress = errors.New("address not on the node")

// lifetimeForever is the kernel's valid_lft of a permanent address.
const lifetimeForever = 0xFFFFFFFF

// AddressLifetime returns the valid lifetime left of p's address on the node (a VIP handed over
// at a restart expires by itself, docs/design.md §4.9.1), with forever true for a permanent
// address; ErrNoAddress if the node does not have it. The kernel counts whole seconds.
func (n *Node) AddressLifetime(p netip.Prefix) (left time.Duration, forever bool, err error) {
	as, err := n.addrs(false)
	if err != nil {
		return 0, false, err
	}
	want := p.Addr().WithZone("")
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); !ok || ip.Unmap() != want {
			continue
		}
		if uint32(a.ValidLft) == lifetimeForever {
			return 0, true, nil
		}
		return time.Duration(a.ValidLft) * time.Second, false, nil
	}
	return 0, false, fmt.Errorf("%s: %s: %w", n.Name, want, ErrNoAddress)
}
