package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Faults beyond CutLink, LinkDown, BlockVRRP and RecreateLink: one-way VRRP loss and a lossy
// link. Like those, they act on the node's bridge port in the switch namespace, never inside
// the node, so the software under test sees only what the wire shows it. Each kind of fault
// has its own nftables table per port (bridge family), so faults of different kinds, and
// BlockVRRP's table, stack without rewriting each other.

// Direction says which way a one-way fault acts, seen from the node.
type Direction int

const (
	// FromNode is what the node sends: the switch drops it as it enters from the node's port
	// (bridge prerouting, once per frame, so every receiver misses the same frames).
	FromNode Direction = 1 << iota
	// ToNode is what the node receives: the switch drops it on its way out to the node's
	// port (bridge postrouting).
	ToNode
	// BothWays is FromNode and ToNode.
	BothWays = FromNode | ToNode
)

func (d Direction) String() string {
	switch d {
	case FromNode:
		return "from the node"
	case ToNode:
		return "to the node"
	case BothWays:
		return "both ways"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Name prefixes of what the faults of this file add to the switch namespace, per port.
const (
	oneWayTable = "kvoneway_"
	lossTable   = "kvloss_"
	// ifbPrefix names the ifb device that carries the port's ingress through netem.
	ifbPrefix = "kvifb-"
)

// DropVRRPOneWay drops VRRP (IP protocol 112, IPv4 and IPv6, multicast and unicast) at the
// node's bridge port in direction d only; everything else still flows. FromNode makes a
// speaker that hears its peers but is not heard (a one-way broken transceiver, a
// misconfigured ACL); ToNode one that is heard but hears nobody. A later call replaces the
// earlier one; ClearFaults (or d 0) removes it.
func (n *Node) DropVRRPOneWay(d Direction) error {
	if d&^BothWays != 0 {
		return fmt.Errorf("drop VRRP at %s: direction %d: want FromNode, ToNode or BothWays", n.Port, d)
	}
	var rules []string
	for _, m := range []string{"ip protocol 112", "ip6 nexthdr 112"} {
		if d&FromNode != 0 {
			rules = append(rules, fmt.Sprintf("add rule bridge %s%s in iifname %q %s counter drop", oneWayTable, n.Port, n.Port, m))
		}
		if d&ToNode != 0 {
			rules = append(rules, fmt.Sprintf("add rule bridge %s%s out oifname %q %s counter drop", oneWayTable, n.Port, n.Port, m))
		}
	}
	if err := n.lab.replacePortTable(oneWayTable+n.Port, rules); err != nil {
		return fmt.Errorf("drop VRRP %s at %s: %w", d, n.Port, err)
	}
	return nil
}

// LinkImpairment describes a lossy, jittery link (ImpairLink).
type LinkImpairment struct {
	// LossPercent of the frames are dropped, independently, in each direction (0..100).
	LossPercent int
	// Delay and Jitter: each frame is delayed by Delay ± Jitter (netem only).
	Delay, Jitter time.Duration
}

// ImpairLink makes the node's link lossy both ways, at its bridge port: with sch_netem, a
// netem qdisc on the port's egress (toward the node) and another on an ifb device the port's
// ingress is redirected through (from the node), each with the loss, delay and jitter of im.
// A kernel without sch_netem gets an nftables rule per direction that drops LossPercent of
// the frames at random (numgen), without delay or jitter. It returns which of the two ran, in
// words, for the test's report. ClearFaults removes it.
func (n *Node) ImpairLink(im LinkImpairment) (string, error) {
	if im.LossPercent < 0 || im.LossPercent > 100 || im.Delay < 0 || im.Jitter < 0 {
		return "", fmt.Errorf("impair %s's link: loss %d%%, delay %v, jitter %v: want loss 0..100 and no negative time",
			n, im.LossPercent, im.Delay, im.Jitter)
	}
	netem := fmt.Sprintf("netem loss %d%% delay %dus %dus", im.LossPercent, im.Delay.Microseconds(), im.Jitter.Microseconds())
	err := n.lab.tc("qdisc add dev " + n.Port + " root " + netem)
	if err == nil {
		ifb := ifbPrefix + n.Port
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := ipBatch(ctx, n.lab.Switch, "link add "+ifb+" type ifb", "link set "+ifb+" up")
		for _, cmd := range []string{
			"qdisc add dev " + ifb + " root " + netem,
			"qdisc add dev " + n.Port + " handle ffff: ingress",
			"filter add dev " + n.Port + " parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev " + ifb,
		} {
			if err == nil {
				err = n.lab.tc(cmd)
			}
		}
		if err != nil {
			return "", errors.Join(fmt.Errorf("impair %s's link: %w", n, err), n.ClearFaults())
		}
		return fmt.Sprintf("tc %s, both ways", netem), nil
	}
	if !strings.Contains(err.Error(), "unknown") {
		return "", fmt.Errorf("impair %s's link: %w", n, err)
	}
	rules := []string{
		fmt.Sprintf("add rule bridge %s%s in iifname %q numgen random mod 100 < %d counter drop", lossTable, n.Port, n.Port, im.LossPercent),
		fmt.Sprintf("add rule bridge %s%s out oifname %q numgen random mod 100 < %d counter drop", lossTable, n.Port, n.Port, im.LossPercent),
	}
	if err := n.lab.replacePortTable(lossTable+n.Port, rules); err != nil {
		return "", fmt.Errorf("impair %s's link: %w", n, err)
	}
	return fmt.Sprintf("nft random drop %d%% both ways, no delay or jitter (kernel without sch_netem)", im.LossPercent), nil
}

// ClearFaults removes what DropVRRPOneWay and ImpairLink installed for the node (it leaves
// CutLink, LinkDown and BlockVRRP to their own undo). It is idempotent.
func (n *Node) ClearFaults() error {
	l := n.lab
	var errs []error
	for _, t := range []string{oneWayTable, lossTable} {
		if err := l.replacePortTable(t+n.Port, nil); err != nil {
			errs = append(errs, err)
		}
	}
	// tc and ip: only what exists is removed, so that "nothing to remove" is no error.
	if out, err := l.switchOutput("tc", "qdisc", "show", "dev", n.Port); err != nil {
		errs = append(errs, err)
	} else {
		if strings.Contains(out, "netem") {
			errs = append(errs, l.switchRun("tc", "qdisc", "del", "dev", n.Port, "root"))
		}
		if strings.Contains(out, "ingress") {
			errs = append(errs, l.switchRun("tc", "qdisc", "del", "dev", n.Port, "ingress"))
		}
	}
	if out, err := l.switchOutput("ip", "-br", "link", "show", "type", "ifb"); err != nil {
		errs = append(errs, err)
	} else if ifb := ifbPrefix + n.Port; strings.Contains(out, ifb) {
		errs = append(errs, l.switchRun("ip", "link", "del", ifb))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clear the faults at %s: %w", n.Port, err)
	}
	return nil
}

// replacePortTable replaces the switch's bridge table name with one holding rules (chain "in"
// at prerouting, "out" at postrouting), in one nft transaction; no rules deletes the table.
// "add" then "delete" makes the delete succeed whether or not the table existed.
func (l *Lab) replacePortTable(name string, rules []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "add table bridge %s\ndelete table bridge %s\n", name, name)
	if len(rules) > 0 {
		fmt.Fprintf(&b, "add table bridge %s\n", name)
		fmt.Fprintf(&b, "add chain bridge %s in { type filter hook prerouting priority 0; policy accept; }\n", name)
		fmt.Fprintf(&b, "add chain bridge %s out { type filter hook postrouting priority 0; policy accept; }\n", name)
		for _, r := range rules {
			b.WriteString(r + "\n")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := run(ctx, b.String(), "ip", "netns", "exec", l.Switch, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nft table %s (is nftables installed? hack/install-deps.sh): %w", name, err)
	}
	return nil
}

// tc runs `tc ARGS` (space-separated) in the switch namespace.
func (l *Lab) tc(args string) error {
	return l.switchRun(append([]string{"tc"}, strings.Fields(args)...)...)
}

// switchRun runs a short command in the switch namespace.
func (l *Lab) switchRun(argv ...string) error {
	_, err := l.switchOutput(argv...)
	return err
}

func (l *Lab) switchOutput(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return run(ctx, "", append([]string{"ip", "netns", "exec", l.Switch}, argv...)...)
}
