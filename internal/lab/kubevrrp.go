package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// VirtualIP describes a kube-vrrp VirtualIP manifest for `kube-vrrp run`, the counterpart of
// VRRPInstance. Zero fields are left out, so kube-vrrp's defaults apply. Every lab node that
// runs the manifest is a member: it has nodeSelector: {}, which selects every node
// (docs/design.md §1.1), and NodePriorities only override.
type VirtualIP struct {
	// Name is metadata.name (default "lab"); kube-vrrp logs it as "vip".
	Name string
	// VRID, 1..255 (required).
	VRID int
	// Version is 2 or 3 (0: omitted, kube-vrrp's default 3).
	Version int
	// Interface is spec.interface (empty: kube-vrrp picks the link of the VIP's subnet).
	Interface string
	// Addresses are the virtual addresses; one family.
	Addresses []netip.Prefix
	// AdvertInt is spec.advertisementInterval (0: the version's default).
	AdvertInt time.Duration
	// Priority is spec.priority (0: omitted, default 100).
	Priority int
	// NodePriorities become spec.nodes[] overrides, by node name.
	NodePriorities map[string]int
	// NoPreempt writes `preempt: false`.
	NoPreempt bool
	// PreemptDelay is spec.preemptDelay.
	PreemptDelay time.Duration
	// UnicastPeers, when set, switch to unicast adverts (spec.unicast.peers). One list may
	// name every member: kube-vrrp skips its own addresses.
	UnicastPeers []netip.Addr
	// AuthPass adds PASS authentication with a Secret holding it (VRRPv2 only).
	AuthPass string
	// Extra lines go verbatim under spec:, indented by two spaces.
	Extra []string
}

// WithPeers returns a copy of v in unicast mode with the lab addresses of nodes (of the first
// address's family) as peers.
func (v VirtualIP) WithPeers(nodes ...*Node) VirtualIP {
	v.UnicastPeers = nil
	v6 := len(v.Addresses) > 0 && v.Addresses[0].Addr().Is6()
	for _, n := range nodes {
		if v6 {
			v.UnicastPeers = append(v.UnicastPeers, n.IPv6)
		} else {
			v.UnicastPeers = append(v.UnicastPeers, n.IPv4)
		}
	}
	return v
}

// VIPName returns the name kube-vrrp logs for v ("vip" attribute).
func (v VirtualIP) VIPName() string {
	if v.Name == "" {
		return "lab"
	}
	return v.Name
}

// String renders the manifest (and the Secret, with AuthPass).
func (v VirtualIP) String() string {
	var b strings.Builder
	name := v.VIPName()
	fmt.Fprintf(&b, "apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata:\n  name: %s\nspec:\n", name)
	fmt.Fprintf(&b, "  vrid: %d\n", v.VRID)
	if v.Version != 0 {
		fmt.Fprintf(&b, "  version: %d\n", v.Version)
	}
	if v.Interface != "" {
		fmt.Fprintf(&b, "  interface: %s\n", v.Interface)
	}
	addrs := make([]string, len(v.Addresses))
	for i, a := range v.Addresses {
		addrs[i] = fmt.Sprintf("%q", a.String())
	}
	fmt.Fprintf(&b, "  addresses: [%s]\n", strings.Join(addrs, ", "))
	if v.AdvertInt != 0 {
		fmt.Fprintf(&b, "  advertisementInterval: %s\n", v.AdvertInt)
	}
	if v.Priority != 0 {
		fmt.Fprintf(&b, "  priority: %d\n", v.Priority)
	}
	if len(v.NodePriorities) > 0 {
		b.WriteString("  nodes:\n")
		names := make([]string, 0, len(v.NodePriorities))
		for n := range v.NodePriorities {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(&b, "  - {name: %s, priority: %d}\n", n, v.NodePriorities[n])
		}
	}
	b.WriteString("  nodeSelector: {}\n")
	if v.NoPreempt {
		b.WriteString("  preempt: false\n")
	}
	if v.PreemptDelay != 0 {
		fmt.Fprintf(&b, "  preemptDelay: %s\n", v.PreemptDelay)
	}
	if len(v.UnicastPeers) > 0 {
		peers := make([]string, len(v.UnicastPeers))
		for i, p := range v.UnicastPeers {
			peers[i] = fmt.Sprintf("%q", p.String())
		}
		fmt.Fprintf(&b, "  unicast:\n    peers: [%s]\n", strings.Join(peers, ", "))
	}
	if v.AuthPass != "" {
		fmt.Fprintf(&b, "  authentication:\n    type: PASS\n    secretRef: {name: %s-auth, key: password}\n", name)
	}
	for _, e := range v.Extra {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	if v.AuthPass != "" {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s-auth\nstringData:\n  password: %q\n", name, v.AuthPass)
	}
	return b.String()
}

// ExecKubeVRRP writes manifest to a new file in the node's directory and starts
// `bin run -f FILE --node <node> --log-format json --events EVENTS` with args appended,
// logging to n.Dir/kube-vrrp[.N].log. Its typed events (EVENTS, n.Dir/kube-vrrp[.N].events)
// are what KubeVRRPEvents and KubeVRRPTransitions read. The lab stops the process on Close at
// the latest.
func (n *Node) ExecKubeVRRP(bin, manifest string, args ...string) (*Proc, error) {
	name, argv, events, err := n.kubeVRRPArgv(bin, manifest, args)
	if err != nil {
		return nil, err
	}
	p, err := n.Exec(context.Background(), name, argv...)
	if p != nil {
		p.EventsPath = events
	}
	return p, err
}

// kubeVRRPArgv writes manifest and makes the events file of a new kube-vrrp process on n, and
// returns its name and its command (at the lab's speaker niceness and user).
func (n *Node) kubeVRRPArgv(bin, manifest string, args []string) (name string, argv []string, events string, err error) {
	name = n.lab.procName(n.Name, "kube-vrrp")
	path, err := n.WriteFile(name+".yaml", []byte(manifest))
	if err != nil {
		return "", nil, "", err
	}
	state, err := n.StateDir(0)
	if err != nil {
		return "", nil, "", err
	}
	if events, err = n.EventsFile(name); err != nil {
		return "", nil, "", err
	}
	argv = append([]string{bin, "run", "-f", path, "--node", n.Name, "--log-format", "json", "--state-dir", state,
		"--events", events}, args...)
	return name, n.lab.speakerArgv(argv), events, nil
}

// StartKubeVRRP is ExecKubeVRRP with the binary of KubeVRRPBinary, for tests.
func (n *Node) StartKubeVRRP(t testing.TB, manifest string, args ...string) *Proc {
	t.Helper()
	p, err := n.ExecKubeVRRP(KubeVRRPBinary(t), manifest, args...)
	if err != nil {
		t.Fatalf("%s: kube-vrrp: %v", n.Name, err)
	}
	return p
}

// KubeVRRPTransition is one transition event of a kube-vrrp process.
type KubeVRRPTransition struct {
	// Time and Since are when the instance changed state (the engine's clock reading).
	Time, Since time.Time
	// VIP is the VirtualIP's name.
	VIP string
	// From and State are the states before and after ("None", "Initialize", "Backup",
	// "Master", "Fault"); Reason says why (e.g. "MasterDownTimer", "Preempting").
	From, State, Reason string
	// Priority is the effective priority at the transition.
	Priority int
}

// KubeVRRPTransitions returns the transitions a kube-vrrp process started by ExecKubeVRRP has
// reported so far (its events), in order.
func KubeVRRPTransitions(p *Proc) []KubeVRRPTransition {
	var out []KubeVRRPTransition
	for _, e := range KubeVRRPEvents(p, vrrp.EventTransition) {
		out = append(out, KubeVRRPTransition{Time: e.At, Since: e.At, VIP: e.Instance, From: e.From.String(),
			State: e.State.String(), Reason: e.Reason, Priority: int(e.Priority)})
	}
	return out
}

// KubeVRRPEvents returns the events of the given kinds (all if none) that a kube-vrrp process
// started by ExecKubeVRRP has written so far, in order: its --events file, decoded with the
// type it was written with. A line still being written is left for the next call.
func KubeVRRPEvents(p *Proc, kinds ...vrrp.EventKind) []vrrp.Event {
	if p.EventsPath == "" {
		return nil
	}
	b, err := os.ReadFile(p.EventsPath)
	if err != nil {
		return nil
	}
	var out []vrrp.Event
	for line := range bytes.Lines(b) {
		if !bytes.HasSuffix(line, []byte("\n")) {
			break // being written
		}
		var e vrrp.Event
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		if len(kinds) == 0 || slices.Contains(kinds, e.Kind) {
			out = append(out, e)
		}
	}
	return out
}

// KubeVRRPLog returns the JSON log records of p whose "msg" is msg (all records if msg is
// ""), skipping lines that are not JSON.
func KubeVRRPLog(p *Proc, msg string) []map[string]any {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		if msg == "" || rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// KubeVRRPState returns the latest state kube-vrrp process p logged for the VirtualIP vip
// ("" if none yet).
func KubeVRRPState(p *Proc, vip string) string {
	st := ""
	for _, t := range KubeVRRPTransitions(p) {
		if t.VIP == vip {
			st = t.State
		}
	}
	return st
}

// WaitKubeVRRPState waits until the latest state p logged for vip is state ("Master",
// "Backup", ...).
func WaitKubeVRRPState(p *Proc, vip, state string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := KubeVRRPState(p, vip)
		if got == state {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s/%s exited; %s is %q, want %s:\n%s", p.Node.Name, p.Name, vip, got, state, p.Tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/%s: %s is %q after %v, want %s", p.Node.Name, p.Name, vip, got, timeout, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// EventsFile creates n.Dir/name.events for a kube-vrrp process's --events, writable by the
// agent whatever user it runs as (speakerArgv), and returns its path; set the process's
// EventsPath to it for KubeVRRPEvents.
func (n *Node) EventsFile(name string) (string, error) {
	path, err := n.WriteFile(name+".events", nil)
	if err != nil {
		return "", err
	}
	return path, os.Chmod(path, 0o666)
}

// WaitKubeVRRPEvent waits until p has written an event that match accepts, among its events
// from index from on (0: all; len(KubeVRRPEvents(p)) taken earlier: only newer ones).
func WaitKubeVRRPEvent(p *Proc, from int, timeout time.Duration, match func(vrrp.Event) bool) (vrrp.Event, error) {
	deadline := time.Now().Add(timeout)
	for {
		evs := KubeVRRPEvents(p)
		for _, e := range evs[min(from, len(evs)):] {
			if match(e) {
				return e, nil
			}
		}
		if p.Exited() {
			return vrrp.Event{}, fmt.Errorf("%s/%s exited without the event:\n%s", p.Node.Name, p.Name, p.Tail(20))
		}
		if time.Now().After(deadline) {
			return vrrp.Event{}, fmt.Errorf("%s/%s: no such event after %v (%d events)", p.Node.Name, p.Name, timeout, len(evs)-min(from, len(evs)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Dropped matches a packet drop report for reason (vrrp.Drop*, e.g. "auth_failed").
func Dropped(reason string) func(vrrp.Event) bool {
	return func(e vrrp.Event) bool { return e.Kind == vrrp.EventPacketDrop && string(e.Drop) == reason }
}

// Entered matches a transition to state ("Master", ...) for reason (any if empty).
func Entered(state, reason string) func(vrrp.Event) bool {
	return func(e vrrp.Event) bool {
		return e.Kind == vrrp.EventTransition && e.State.String() == state && (reason == "" || e.Reason == reason)
	}
}
