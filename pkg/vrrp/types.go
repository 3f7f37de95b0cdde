package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// State is a VRRP router state (RFC 5798 §6.4), plus Fault: the router does not take part
// because a health probe failed or its interface is unusable.
type State uint8

// The router states.
const (
	Initialize State = iota
	Backup
	Master
	Fault
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "Initialize"
	case Backup:
		return "Backup"
	case Master:
		return "Master"
	case Fault:
		return "Fault"
	}
	return "Unknown"
}

// Member is another router of the group (a unicast peer or another Kubernetes node): its address
// and its highest possible priority. See Config.Members.
type Member struct {
	// Addr is the member's advert source address, or one by which it is known (a node's global
	// address, which an IPv6 multicast advert never comes from); invalid means unknown (a node
	// with no address of the family): the member then counts by its priority alone.
	Addr netip.Addr
	// MaxPriority is the highest priority the member can advertise; 0 means unknown.
	MaxPriority uint8
}

// Config is everything one VRRP instance needs. It is plain data: pkg/desired builds it from a
// VirtualIP and the node's facts.
type Config struct {
	// Name identifies the instance in logs and snapshots (the VirtualIP's name).
	Name string
	// Interface is the name of the link carrying adverts and addresses.
	Interface string
	VRID      uint8
	// Version is 2 (RFC 3768) or 3 (RFC 5798).
	Version uint8
	// Interval is the advertisement interval this router sends as MASTER.
	Interval time.Duration
	// Priority is the base priority, 1..255 (255: address owner).
	Priority uint8
	// Addresses are the virtual addresses, all of one family.
	Addresses []netip.Prefix
	// Primary is this router's own source address: the interface's primary IPv4 address or
	// its IPv6 link-local address. It breaks priority ties (RFC 5798 §6.4.3).
	Primary netip.Addr
	// Preempt lets this router take over from a lower-priority MASTER.
	Preempt bool
	// PreemptDelay holds off preemption after start (keepalived's preempt_delay).
	PreemptDelay time.Duration
	// Accept is RFC 5798 Accept_Mode; the engine reports it, the host applies it.
	Accept bool
	// Peers are unicast destinations; empty means multicast.
	Peers []netip.Addr
	// Members, when MembersComplete, lists every other router of the group. A backup that is
	// certainly the best remaining router then takes over at once on a priority-0 advert
	// instead of waiting Skew_Time.
	Members         []Member
	MembersComplete bool
	// Password is the VRRPv2 PASS authentication data (at most 8 bytes); empty means none.
	Password []byte
	// Checksum selects the v3 IPv4 checksum sent.
	Checksum packet.ChecksumMode
	// AnnounceRepeat is the delay of the second gratuitous ARP / NA burst after a takeover;
	// 0 means DefaultAnnounceRepeat.
	AnnounceRepeat time.Duration
	// NoAnnounceRepeat sends no second burst (spec.announcements.repeatDelay 0s); AnnounceRepeat
	// is then ignored.
	NoAnnounceRepeat bool
	// AnnounceCount is the number of gratuitous ARPs / NAs per address in each burst; 0 means
	// DefaultAnnounceCount.
	AnnounceCount int
	// AnnounceRefresh, when positive, makes a MASTER announce its addresses again at this
	// interval for as long as it stays MASTER (keepalived's garp_master_refresh).
	AnnounceRefresh time.Duration
	// AnnounceRefreshCount is the number of messages per address at each refresh; 0 means
	// DefaultAnnounceRefreshCount.
	AnnounceRefreshCount int
	// VirtualMAC makes the host hold the addresses on a macvlan carrying the RFC 5798 §7.3
	// virtual router MAC and send adverts and announcements from it (docs/design.md §5.9).
	// The engine only carries it; the driver (pkg/agent) and the host apply it.
	VirtualMAC bool
}

// OwnerPriority is the priority of the router that owns the virtual addresses (RFC 5798 §5.2.4):
// it is MASTER at once, accepts their packets whatever Accept_Mode says, and only it may use 255.
const OwnerPriority = 255

// DefaultAnnounceRepeat is the default delay of the second announcement burst, long enough for
// switches that dropped the first while a port was converging.
const DefaultAnnounceRepeat = 2 * time.Second

// DefaultAnnounceCount is the default number of messages per address in an announcement burst.
const DefaultAnnounceCount = 2

// DefaultAnnounceRefreshCount is the default number of messages per address at each refresh.
const DefaultAnnounceRefreshCount = 1

// Packet is a received VRRP message with the IP metadata the receive rules need.
type Packet struct {
	Src, Dst netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit; -1 if unknown.
	TTL int
	// IfIndex is the receiving interface; 0 if unknown.
	IfIndex int
	// Data is the VRRP message without the IP header.
	Data []byte
}

// Datagram is an advert to send.
type Datagram struct {
	Dst  netip.Addr
	Data []byte
}

// Transition records a state change.
type Transition struct {
	From, To State
	// Reason is a CamelCase word saying why, used in status and Events (see the Reason*
	// constants).
	Reason string
	At     time.Time
}

// Reasons of transitions: the closed set the engine produces, one CamelCase word each
// (a VirtualIPMember's status.reason, Events).
const (
	// ReasonStarted: Startup as Backup (RFC 5798 §6.4.1).
	ReasonStarted = "Started"
	// ReasonOwner: the address owner (priority 255) became MASTER at once.
	ReasonOwner = "AddressOwner"
	// ReasonMasterDown: Master_Down_Timer expired, no master heard.
	ReasonMasterDown = "MasterDownTimer"
	// ReasonPreempting: a preempting backup outbids the master it heard.
	ReasonPreempting = "Preempting"
	// ReasonHigherPriority: a MASTER heard a better master and stepped down.
	ReasonHigherPriority = "HigherPriorityMaster"
	// ReasonMasterResigned: the master sent priority 0 and Skew_Time passed.
	ReasonMasterResigned = "MasterResigned"
	// ReasonFastHandover: the master sent priority 0 and this backup, knowing every member,
	// is certainly the best remaining router (docs/design.md §4.2).
	ReasonFastHandover = "FastHandover"
	// ReasonShutdown: the instance stopped (a MASTER resigned with priority 0).
	ReasonShutdown = "Shutdown"
	// ReasonHandoff: the instance stopped for a restart, a MASTER keeping its addresses for its
	// successor (Instance.Handoff, docs/design.md §4.9.1).
	ReasonHandoff = "Handoff"
	// ReasonResumed: the instance started as MASTER, taking over from its predecessor on this
	// node the addresses it handed over (Instance.Resume, docs/design.md §4.9.1).
	ReasonResumed = "Resumed"

	// ReasonProbeFailed and ReasonProbePending are the probe Fault (Instance.SetHealth): a
	// weight-0 probe fails, or has not been checked yet since the instance started (it counts
	// as failing until then); ReasonProbeRecovered ends it.
	ReasonProbeFailed    = "ProbeFailed"
	ReasonProbePending   = "ProbePending"
	ReasonProbeRecovered = "ProbeRecovered"

	// ReasonInterfaceDown and ReasonInterfaceUp are the link-state Fault (Instance.SetLinkUp):
	// the interface lost carrier or was set down, and it is usable again.
	ReasonInterfaceDown = "InterfaceDown"
	ReasonInterfaceUp   = "InterfaceUp"

	// ReasonBindFailed is the host Fault (Instance.SetHostFault) of a MASTER whose addresses
	// could not be bound; ReasonBindRetry ends it when the Router's back-off expires.
	ReasonBindFailed = "AddressBindFailed"
	ReasonBindRetry  = "AddressBindRetry"
)

// Reasons lists every transition reason the engine can produce.
var Reasons = []string{
	ReasonStarted, ReasonOwner, ReasonMasterDown, ReasonPreempting, ReasonHigherPriority,
	ReasonMasterResigned, ReasonFastHandover, ReasonShutdown, ReasonHandoff, ReasonResumed,
	ReasonProbeFailed, ReasonProbePending, ReasonProbeRecovered, ReasonInterfaceDown,
	ReasonInterfaceUp, ReasonBindFailed, ReasonBindRetry,
}

// Health is what the node's health probes say about an instance, as one input
// (Instance.SetHealth).
type Health struct {
	// Fault keeps the instance in Fault: a weight-0 probe fails or has not been checked yet.
	Fault bool
	// Adjust is added to the configured priority; the result is clamped to 1..254. The
	// address owner ignores it (RFC 5798 §5.2.4: only the owner uses 255, and always does).
	Adjust int
	// Reason is the CamelCase reason of the transition this health may cause
	// (ReasonProbeFailed, ReasonProbePending or ReasonProbeRecovered).
	Reason string
	// Message says in words which probes decide it (e.g. "probe haproxy failing (-20)").
	Message string
}

// Applied is h as the engine applies it to the configured priority: its Message also says
// where the weights do not apply as they are, because the address owner ignores them or the
// sum is clamped (the priority alone would contradict the probes' words).
func (h Health) Applied(configured uint8) Health {
	if h.Fault || h.Adjust == 0 {
		return h
	}
	var note string
	switch sum := int(configured) + h.Adjust; {
	case configured == OwnerPriority:
		note = "address owner: weights ignored"
	case sum < MinPriority:
		note = fmt.Sprintf("clamped to %d", MinPriority)
	case sum > MaxBackupPriority:
		note = fmt.Sprintf("clamped to %d", MaxBackupPriority)
	default:
		return h
	}
	if h.Message != "" {
		note = h.Message + ", " + note
	}
	h.Message = note
	return h
}

// Output is what the host must do after an event. The Router carries it out in the order that
// shortens a failover: unbind (step down first), send (claim the role on the wire), bind,
// announce; with Config.VirtualMAC, bind before send, so that the advert leaves from the
// virtual MAC interface the bind sets up.
type Output struct {
	Send     []Datagram
	Bind     []netip.Prefix
	Unbind   []netip.Prefix
	Announce []netip.Addr
	// AnnounceCount is how many gratuitous ARPs / NAs per address the host sends for
	// Announce, back to back: Config.AnnounceCount for a takeover's bursts and other
	// announcements, Config.AnnounceRefreshCount for a refresh (the larger when one output
	// carries both). At least 1 when Announce is set.
	AnnounceCount int
	// Transition is set when the state changed.
	Transition *Transition
	// Dropped reports a rejected packet, at most once per reason every 10 s (Stats.Drops
	// counts them all).
	Dropped *Drop
	// Handoff, set by Instance.Handoff when a MASTER handed over to its successor, is what it
	// kept: the host gives those addresses Handoff.Window as their lifetime and records the
	// entry for the successor. Nil when nothing was handed over.
	Handoff *Handoff
	// Next is the earliest time the instance wants Tick called; zero means never.
	Next time.Time
}

// Handoff is what a MASTER handed over to its successor on the same node (Instance.Handoff,
// docs/design.md §4.9.1): the entry of the handoff record.
type Handoff struct {
	Interface string
	VRID      uint8
	// IPv6 is the family of the addresses (and of the adverts).
	IPv6 bool
	// Addresses are the virtual addresses left bound.
	Addresses []netip.Prefix
	// At is when they were handed over. Window bounds how long from then the backups wait
	// before they take over: the successor must resume before At+Window, and the addresses
	// are given Window as their kernel lifetime, so that without a successor they go as the
	// backups take them.
	At     time.Time
	Window time.Duration
}

// Deadline is when the backups take over at the latest: At+Window.
func (h *Handoff) Deadline() time.Time { return h.At.Add(h.Window) }

// Drop is a report of rejected packets: the reason, the last sender and how many were
// rejected for this reason since the instance started.
type Drop struct {
	Reason packet.Reason
	Src    netip.Addr
	Count  uint64
}

// Sender writes adverts. hostnet implements it with a raw IP socket (TTL 255).
type Sender interface {
	WriteTo(b []byte, dst netip.Addr) error
}

// AddressBinder adds and removes the virtual addresses; both are idempotent and never touch an
// address the binder did not add.
type AddressBinder interface {
	Bind(ctx context.Context, p []netip.Prefix) error
	Unbind(ctx context.Context, p []netip.Prefix) error
}

// Announcer sends a burst of gratuitous ARP (IPv4) or unsolicited neighbour advertisements
// (IPv6) for addrs, as many per address as the implementation sends by default (see
// BurstAnnouncer).
type Announcer interface {
	Announce(ctx context.Context, addrs []netip.Addr) error
}

// BurstAnnouncer sends what Announcer does with a given number of messages per address, back
// to back. A Router whose Link also implements it sends Output.AnnounceCount through it; with
// a Link that does not, each announcement is one Announce call and the Link's own number
// applies.
type BurstAnnouncer interface {
	AnnounceBurst(ctx context.Context, addrs []netip.Addr, count int) error
}

// AddressWatcher reports virtual addresses that something else removed, so a MASTER can put
// them back. WatchRemoved blocks until ctx is done.
type AddressWatcher interface {
	WatchRemoved(ctx context.Context, fn func(netip.Prefix)) error
}

// AddressRetainer gives virtual addresses a lifetime, after which the kernel removes them by
// itself, or with lifetime 0 makes them permanent again; it keeps the addresses' other
// attributes. A Router whose Link also implements it gives the addresses a MASTER hands over
// (Router.HandoffOnStop) the handoff's window, so that a successor that never comes leaves no
// duplicate on the link, and makes them permanent when it resumes (Router.ResumeAtStart).
// Without it, handed-over addresses stay until a successor resumes or removes them. An
// implementation may round lifetime up to the kernel's unit.
type AddressRetainer interface {
	Retain(ctx context.Context, ps []netip.Prefix, lifetime time.Duration) error
}

// Link is the host side of one interface: addresses, announcements and the address watch.
type Link interface {
	AddressBinder
	Announcer
	AddressWatcher
}

// LinkStateWatcher reports whether an interface can carry VRRP: administratively up and with
// carrier. A Link that also implements it puts its Router in Fault while the interface is down,
// as keepalived does. WatchLinkState calls fn, from the goroutine that called it, with the
// current state first and then on every change; it blocks until ctx is done.
type LinkStateWatcher interface {
	WatchLinkState(ctx context.Context, fn func(up bool)) error
}

// PacketConn is a VRRP socket on one interface and address family, sending from one source
// address. Several instances on the same interface share it; ReadPacket returns every VRRP
// packet the interface receives, and the driver (pkg/agent) hands each to the instance of
// its VRID.
type PacketConn interface {
	Sender
	// ReadPacket blocks for the next packet; Data may alias buf.
	ReadPacket(buf []byte) (Packet, error)
	Close() error
}
