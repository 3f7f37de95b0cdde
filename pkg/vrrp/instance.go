package vrrp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// Drop reasons the engine adds to packet.Reason when it rejects a received advert.
const (
	DropTTL           packet.Reason = "bad_ttl"
	DropVersionMisfit packet.Reason = "version_mismatch"
	DropVRID          packet.Reason = "unknown_vrid"
	DropAuthType      packet.Reason = "auth_type_mismatch"
	DropAuth          packet.Reason = "auth_failed"
	DropInterval      packet.Reason = "interval_mismatch"
	DropNotLinkLocal  packet.Reason = "ipv6_first_not_link_local"
	DropUnknownPeer   packet.Reason = "unknown_peer"
	DropOwnPacket     packet.Reason = "own_packet"
	DropFamily        packet.Reason = "family_mismatch"
	DropInterface     packet.Reason = "wrong_interface"
	DropQueueFull     packet.Reason = "queue_full"
	// DropAddressMismatch: an advert for our VRID whose address list differs from ours, from a
	// router that is not a known member of the group (see Instance.checkAddresses).
	DropAddressMismatch packet.Reason = "address_mismatch"
	dropLogEvery                      = 10 * time.Second
	resignCopies                      = 3
)

// Stats counts what an instance sent, received and dropped.
type Stats struct {
	AdvertsSent     uint64
	AdvertsReceived uint64
	Transitions     uint64
	// Drops counts rejected packets by reason.
	Drops map[packet.Reason]uint64
}

// Status is a snapshot of an instance, for status reporting and logs.
type Status struct {
	Name      string
	Interface string
	VRID      uint8
	State     State
	// Priority is the effective priority now.
	Priority uint8
	// Primary is this router's advert source address.
	Primary netip.Addr
	// Master is the address of the router believed to be MASTER (Primary when MASTER), and
	// MasterPriority the priority it last advertised.
	Master         netip.Addr
	MasterPriority uint8
	Reason         string
	Since          time.Time
	Stats          Stats
	// HostError, set by the Router, says what the host failed to do and is retrying: the
	// addresses could not be bound (the instance is in Fault, reason AddressBindFailed) or
	// removed (a duplicate may be left on the link until the retry succeeds). Empty when
	// all is well.
	HostError string
	// Foreign lists the routers heard advertising this VRID with another address list (at
	// most maxForeign, most recent first): another cluster or an old keepalived using the
	// same VRID on the link, or a member whose config differs from ours.
	Foreign []Foreign
	// Health is the probes' last word (SetHealth), its Message saying where their weights do
	// not apply as they are (Health.Applied).
	Health Health
}

// Foreign is a router heard advertising our VRID with an address list other than ours.
type Foreign struct {
	// Src is the advert's source address.
	Src netip.Addr `json:"src"`
	// Priority is the priority it last advertised.
	Priority uint8 `json:"priority"`
	// Addresses is the address list it last advertised.
	Addresses []netip.Addr `json:"addresses"`
	// InElection is true when its adverts still take part in the election: the sender is a
	// known member of the group (a unicast peer, a node of the VirtualIP), or its list shares
	// an address with ours. Its config is then most likely being changed at the same time as
	// ours. Otherwise they are dropped (DropAddressMismatch).
	InElection bool      `json:"inElection"`
	Count      uint64    `json:"count"`
	LastSeen   time.Time `json:"lastSeen"`
}

// maxForeign bounds the foreign routers remembered per instance, and foreignForget is how
// long one is remembered after its last advert.
const (
	maxForeign    = 8
	foreignForget = 5 * time.Minute
)

// ErrIncompatible is returned by Reconfigure when the new config cannot be applied to a running
// instance (VRID, version, interface, family or source changed): the caller replaces it.
var ErrIncompatible = errors.New("vrrp: config change needs a new instance")

// Instance is one VRRP router: the state machine of RFC 5798 §6.4 (and RFC 3768 §6.4 for v2).
// It performs no I/O and reads no clock: every method takes now and returns what the host must
// do. It is not safe for concurrent use; a Router serialises calls.
type Instance struct {
	cfg      Config
	log      *slog.Logger
	state    State
	priority uint8 // effective priority: the configured one adjusted by health
	// health is the probes' last word (SetHealth); its Fault is one of three independent
	// causes of Fault, with linkDown (SetLinkUp) and hostFault (SetHostFault): the instance
	// is in Fault while any holds.
	health   Health
	linkDown bool
	// hostFault is the third cause: the host could not carry out what the state needs (the
	// MASTER's addresses could not be bound); see SetHostFault.
	hostFault  bool
	hostReason string
	reason     string
	since      time.Time

	masterAdvInterval time.Duration
	masterDownAt      time.Time
	// resigned is set while the Master_Down_Timer runs Skew_Time after a priority-0 advert,
	// so the takeover is reported as a handover (MasterResigned), not a lost master.
	resigned     bool
	advertAt     time.Time
	reannounceAt time.Time
	preemptAt    time.Time
	masterAddr   netip.Addr
	masterPrio   uint8

	stats   Stats
	lastLog map[packet.Reason]time.Time
	foreign []Foreign
	// answeredAt is when the MASTER last answered another master (answerOtherMaster), and
	// answerAgainAt when it announces its addresses once more for an advert of another master
	// heard too soon after that to be answered at once.
	answeredAt    time.Time
	answerAgainAt time.Time
	// refreshAt is when a MASTER with Config.AnnounceRefresh announces its addresses again;
	// zero otherwise.
	refreshAt time.Time
}

// New checks cfg and returns an instance in Initialize. It starts nothing.
func New(cfg Config, log *slog.Logger) (*Instance, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.clone()
	return &Instance{
		cfg:      cfg,
		log:      log.With("vip", cfg.Name, "vrid", cfg.VRID),
		priority: cfg.Priority,
		stats:    Stats{Drops: map[packet.Reason]uint64{}},
		lastLog:  map[packet.Reason]time.Time{},
	}, nil
}

// Validate checks the rules the engine relies on; pkg/desired checks the user-facing ones.
func (c *Config) Validate() error {
	switch {
	case c.VRID < MinVRID:
		return fmt.Errorf("vrrp: VRID must be %d..%d", MinVRID, MaxVRID)
	case c.Version != 2 && c.Version != 3:
		return fmt.Errorf("vrrp: version %d, want 2 or 3", c.Version)
	case c.Priority < MinPriority:
		return fmt.Errorf("vrrp: priority must be %d..%d", MinPriority, OwnerPriority)
	case len(c.Interface) > MaxInterfaceName:
		return fmt.Errorf("vrrp: interface name %q is longer than %d bytes", c.Interface, MaxInterfaceName)
	case len(c.Addresses) == 0 || len(c.Addresses) > packet.MaxAddresses-1:
		return fmt.Errorf("vrrp: %d addresses, want 1..%d", len(c.Addresses), packet.MaxAddresses-1)
	case !c.Primary.IsValid():
		return errors.New("vrrp: no primary (source) address")
	case len(c.Password) > packet.PassLen:
		return fmt.Errorf("vrrp: password longer than %d bytes", packet.PassLen)
	case c.PreemptDelay < 0 || c.AnnounceRepeat < 0 || c.AnnounceRefresh < 0:
		return errors.New("vrrp: negative delay")
	case c.AnnounceCount < 0 || c.AnnounceRefreshCount < 0:
		return errors.New("vrrp: negative announcement count")
	}
	is6 := c.Primary.Is6()
	for _, p := range c.Addresses {
		if !p.IsValid() || p.Addr().Is6() != is6 || p.Addr().Is4In6() {
			return fmt.Errorf("vrrp: address %s is not of the primary address's family", p)
		}
	}
	for _, p := range c.Peers {
		if p.Is6() != is6 {
			return fmt.Errorf("vrrp: peer %s is not of the primary address's family", p)
		}
	}
	switch c.Version {
	case 2:
		if is6 {
			return errors.New("vrrp: VRRPv2 carries only IPv4; use version 3 for IPv6")
		}
		if c.Interval < MinIntervalV2 || c.Interval > MaxIntervalV2 || c.Interval%IntervalStepV2 != 0 {
			return fmt.Errorf("vrrp: v2 interval %s is not 1..255 whole seconds", c.Interval)
		}
	case 3:
		if len(c.Password) > 0 {
			return errors.New("vrrp: authentication is VRRPv2 only (RFC 5798 §9)")
		}
		if c.Interval < MinIntervalV3 || c.Interval > MaxIntervalV3 || c.Interval%IntervalStepV3 != 0 {
			return fmt.Errorf("vrrp: v3 interval %s is not 10ms..40.95s in 10ms steps", c.Interval)
		}
	}
	return nil
}

func (c Config) clone() Config {
	c.Addresses = slices.Clone(c.Addresses)
	c.Peers = slices.Clone(c.Peers)
	c.Members = slices.Clone(c.Members)
	c.Password = slices.Clone(c.Password)
	return c
}

func (c *Config) announceRepeat() time.Duration {
	if c.AnnounceRepeat == 0 {
		return DefaultAnnounceRepeat
	}
	return c.AnnounceRepeat
}

func (c *Config) announceCount() int {
	if c.AnnounceCount == 0 {
		return DefaultAnnounceCount
	}
	return c.AnnounceCount
}

func (c *Config) refreshCount() int {
	if c.AnnounceRefreshCount == 0 {
		return DefaultAnnounceRefreshCount
	}
	return c.AnnounceRefreshCount
}

// State returns the current state.
func (in *Instance) State() State { return in.state }

// Config returns a copy of the running config.
func (in *Instance) Config() Config { return in.cfg.clone() }

// Status returns a snapshot.
func (in *Instance) Status() Status {
	st := in.stats
	st.Drops = make(map[packet.Reason]uint64, len(in.stats.Drops))
	for k, v := range in.stats.Drops {
		st.Drops[k] = v
	}
	return Status{
		Name: in.cfg.Name, Interface: in.cfg.Interface, VRID: in.cfg.VRID,
		State: in.state, Priority: in.priority, Primary: in.cfg.Primary,
		Master: in.masterAddr, MasterPriority: in.masterPrio,
		Reason: in.reason, Since: in.since, Stats: st,
		Foreign: cloneForeign(in.foreign), Health: in.health.Applied(in.cfg.Priority),
	}
}

func cloneForeign(f []Foreign) []Foreign {
	if len(f) == 0 {
		return nil
	}
	c := slices.Clone(f)
	for i := range c {
		c[i].Addresses = slices.Clone(c[i].Addresses)
	}
	return c
}

// skew is Skew_Time: RFC 5798 §6.1 for v3 (scaled by Master_Adver_Interval), RFC 3768 §6.1 for
// v2 (fractions of a second).
func (in *Instance) skew() time.Duration {
	p := time.Duration(256 - int(in.priority))
	if in.cfg.Version == 2 {
		return p * time.Second / 256
	}
	return p * in.masterAdvInterval / 256
}

// masterDownInterval is 3 * Master_Adver_Interval + Skew_Time (RFC 5798 §6.1). For v2 the
// Master_Adver_Interval is always the configured one (RFC 3768 §6.1).
func (in *Instance) masterDownInterval() time.Duration {
	return 3*in.masterAdvInterval + in.skew()
}

func (in *Instance) is6() bool { return in.cfg.Primary.Is6() }

// Start handles the Startup event (RFC 5798 §6.4.1).
func (in *Instance) Start(now time.Time) Output {
	var out Output
	in.preemptAt = now.Add(in.cfg.PreemptDelay)
	in.masterAdvInterval = in.cfg.Interval
	switch {
	case in.faulted():
		in.transition(&out, now, Fault, in.faultReason())
	case in.priority == OwnerPriority:
		in.becomeMaster(&out, now, ReasonOwner)
	default:
		in.becomeBackup(&out, now, ReasonStarted)
	}
	in.schedule(&out)
	return out
}

// Tick handles expired timers. Calling it early is harmless.
func (in *Instance) Tick(now time.Time) Output {
	var out Output
	switch in.state {
	case Backup:
		// RFC 5798 §6.4.2: Master_Down_Timer fired.
		if !now.Before(in.masterDownAt) {
			reason := ReasonMasterDown
			if in.resigned {
				reason = ReasonMasterResigned
			}
			in.becomeMaster(&out, now, reason)
		}
	case Master:
		if !now.Before(in.advertAt) {
			// RFC 5798 §6.4.3: Adver_Timer fired.
			in.sendAdvert(&out, in.priority, 1)
			in.advertAt = now.Add(in.cfg.Interval)
		}
		if !in.reannounceAt.IsZero() && !now.Before(in.reannounceAt) {
			// Second burst; binding again is idempotent and heals a failed earlier bind.
			in.reannounceAt = time.Time{}
			out.Bind = slices.Clone(in.cfg.Addresses)
			in.announce(&out, in.addrs(), in.cfg.announceCount())
		}
		if !in.answerAgainAt.IsZero() && !now.Before(in.answerAgainAt) {
			// Another master heard again after our answer (answerOtherMaster). It counts as
			// an answer: the next interval's adverts are answered once at most, not once at
			// once and once more now.
			in.answerAgainAt = time.Time{}
			in.answeredAt = now
			in.announce(&out, in.addrs(), in.cfg.announceCount())
		}
		if !in.refreshAt.IsZero() && !now.Before(in.refreshAt) {
			// Periodic refresh (keepalived's garp_master_refresh). From now, not from when it
			// was due: after a stall one refresh is enough.
			in.refreshAt = now.Add(in.cfg.AnnounceRefresh)
			in.announce(&out, in.addrs(), in.cfg.refreshCount())
		}
	}
	in.schedule(&out)
	return out
}

// Receive handles a received packet: it validates it in the order of RFC 5798 §7.1 (RFC 3768
// §7.1 for v2), counts and drops a bad one, and runs the state machine on a good one.
func (in *Instance) Receive(now time.Time, p Packet) Output {
	var out Output
	adv, reason := in.check(p)
	if reason == "" {
		reason = in.checkAddresses(now, p.Src, adv)
	}
	if reason != "" {
		in.drop(&out, now, reason, p.Src)
		in.schedule(&out)
		return out
	}
	in.stats.AdvertsReceived++
	switch in.state {
	case Backup:
		in.backupReceive(&out, now, p.Src, adv)
	case Master:
		in.masterReceive(&out, now, p.Src, adv)
	}
	in.schedule(&out)
	return out
}

// linkTTL is the TTL (hop limit) every VRRP packet is sent with and a multicast one must arrive
// with: no router forwarded it, so the sender is on the link (RFC 5798 §5.1.1.3, §7.1).
const linkTTL = 255

func (in *Instance) check(p Packet) (*packet.Advertisement, packet.Reason) {
	if !p.Src.IsValid() || p.Src.Is6() != in.is6() || p.Src.Is4In6() {
		return nil, DropFamily
	}
	if p.Src == in.cfg.Primary {
		return nil, DropOwnPacket
	}
	adv, err := packet.Parse(p.Data, p.Src, p.Dst)
	if err != nil {
		return nil, packet.ReasonOf(err)
	}
	// RFC 5798 §7.1: the TTL (hop limit) must be 255, which proves the sender is on the link.
	// A multicast instance holds every advert to it, whatever the destination: an advert sent
	// from off-link to one of our unicast addresses must not take part in the election. Only
	// an instance configured for unicast relaxes it (its adverts may be routed; keepalived
	// does the same), and only for its listed peers: any other sender is dropped below.
	if len(in.cfg.Peers) == 0 && p.TTL != linkTTL {
		return nil, DropTTL
	}
	if adv.Version != in.cfg.Version {
		return nil, DropVersionMisfit
	}
	if adv.VRID != in.cfg.VRID {
		return nil, DropVRID
	}
	if len(in.cfg.Peers) > 0 && !slices.Contains(in.cfg.Peers, p.Src) {
		return nil, DropUnknownPeer
	}
	if adv.Version == 2 {
		// RFC 3768 §7.1: the auth type must match, and for simple text the data too.
		want := uint8(packet.AuthNone)
		if len(in.cfg.Password) > 0 {
			want = packet.AuthPass
		}
		if adv.AuthType != want {
			return nil, DropAuthType
		}
		if want == packet.AuthPass {
			var pw [packet.PassLen]byte
			copy(pw[:], in.cfg.Password)
			if subtle.ConstantTimeCompare(pw[:], adv.AuthData[:]) != 1 {
				return nil, DropAuth
			}
		}
		// RFC 3768 §7.1: the advertisement interval must match the configured one.
		if adv.Interval != in.cfg.Interval {
			return nil, DropInterval
		}
	}
	// RFC 5798 §5.2.9: for IPv6 the first address is the virtual router's link-local one.
	if in.is6() && !adv.Addresses[0].IsLinkLocalUnicast() {
		return nil, DropNotLinkLocal
	}
	return adv, ""
}

// checkAddresses compares the advert's address list with ours (RFC 5798 §7.1 and RFC 3768
// §7.1 allow the check and ask for a log when it fails). Two groups sharing a VRID on one link
// are the most common VRRP outage in the field: another cluster, or an old keepalived, whose
// adverts would silently take part in our election. Such a sender is remembered (Status.Foreign,
// for a condition and an Event) and logged. Its advert is dropped unless the sender is a known
// member of the group (a listed peer, or a member when the list is complete): a member whose list
// differs is most likely getting the same config change as us, and dropping its adverts during
// a rollout would make two MASTERs. A sender whose list shares an address with ours is treated the
// same way: an edit adds or removes some addresses and keeps others, while another group's list
// is its own (and if it does share one, that address is contested, and one MASTER for it is
// better than two). Members are known by the addresses the cluster lists (InternalIPs) and, in
// IPv6 multicast groups, by the link-local advert sources the agents publish (Config.Members
// as pkg/desired builds it). For a member whose source is unknown, or a VRRP interface other
// than the InternalIP's, only the shared-address rule keeps an edit in progress in the
// election: an edit that replaces every address of such a group can make two MASTERs until
// all nodes have it. For IPv6,
// link-local entries are left out of the comparison:
// implementations differ on whether they list the virtual router's link-local address.
func (in *Instance) checkAddresses(now time.Time, src netip.Addr, adv *packet.Advertisement) packet.Reason {
	ours := in.advertAddrs()
	if sameAddresses(ours, adv.Addresses, in.is6()) {
		// A sender whose list now matches ours (its edit arrived) is no longer foreign.
		in.foreign = slices.DeleteFunc(in.foreign, func(f Foreign) bool { return f.Src == src })
		return ""
	}
	member := len(in.cfg.Peers) > 0 && slices.Contains(in.cfg.Peers, src) ||
		in.cfg.MembersComplete && slices.ContainsFunc(in.cfg.Members, func(m Member) bool { return m.Addr == src }) ||
		overlap(ours, adv.Addresses, in.is6())
	in.rememberForeign(now, src, adv, member)
	if in.shouldLog(now, DropAddressMismatch) {
		in.log.Warn("another VRRP router advertises this VRID with other addresses; give one of the two groups another VRID",
			"from", src, "interface", in.cfg.Interface, "theirs", adv.Addresses, "ours", ours,
			"priority", adv.Priority, "in_election", member)
	}
	if member {
		return ""
	}
	return DropAddressMismatch
}

// overlap reports whether a and b share an address (link-local ones left out when asked).
func overlap(a, b []netip.Addr, skipLinkLocal bool) bool {
	for _, x := range a {
		if !(skipLinkLocal && x.IsLinkLocalUnicast()) && slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func sameAddresses(a, b []netip.Addr, skipLinkLocal bool) bool {
	keep := func(x []netip.Addr) []netip.Addr {
		out := make([]netip.Addr, 0, len(x))
		for _, v := range x {
			if !(skipLinkLocal && v.IsLinkLocalUnicast()) {
				out = append(out, v)
			}
		}
		slices.SortFunc(out, netip.Addr.Compare)
		return slices.Compact(out)
	}
	return slices.Equal(keep(a), keep(b))
}

// rememberForeign records an advert of a foreign router, most recent first, forgetting those
// not heard for foreignForget and keeping at most maxForeign.
func (in *Instance) rememberForeign(now time.Time, src netip.Addr, adv *packet.Advertisement, member bool) {
	f := Foreign{Src: src}
	if i := slices.IndexFunc(in.foreign, func(x Foreign) bool { return x.Src == src }); i >= 0 {
		f = in.foreign[i]
		in.foreign = slices.Delete(in.foreign, i, i+1)
	}
	f.Priority, f.Addresses, f.InElection, f.LastSeen = adv.Priority, slices.Clone(adv.Addresses), member, now
	f.Count++
	in.foreign = slices.DeleteFunc(in.foreign, func(x Foreign) bool { return now.Sub(x.LastSeen) > foreignForget })
	in.foreign = slices.Insert(in.foreign, 0, f)
	if len(in.foreign) > maxForeign {
		in.foreign = in.foreign[:maxForeign]
	}
}

// shouldLog rate-limits the report of one kind of drop to one per dropLogEvery.
func (in *Instance) shouldLog(now time.Time, r packet.Reason) bool {
	if last, ok := in.lastLog[r]; ok && now.Sub(last) < dropLogEvery {
		return false
	}
	in.lastLog[r] = now
	return true
}

// drop counts a rejected packet and, at most once per dropLogEvery and reason, reports it in
// out.Dropped (the count so far, and the last sender).
func (in *Instance) drop(out *Output, now time.Time, r packet.Reason, src netip.Addr) {
	in.stats.Drops[r]++
	if r == DropAddressMismatch || !in.shouldLog(now, r) {
		return // checkAddresses reports it, with more to say (Status.Foreign)
	}
	out.Dropped = &Drop{Reason: r, Src: src, Count: in.stats.Drops[r]}
}

// backupReceive is RFC 5798 §6.4.2 "If an ADVERTISEMENT is received".
func (in *Instance) backupReceive(out *Output, now time.Time, src netip.Addr, adv *packet.Advertisement) {
	if adv.Priority == 0 {
		in.masterAddr, in.masterPrio = netip.Addr{}, 0
		if in.certainlyBest(src) {
			// Beyond the RFC: every other router is known and lower, so nobody else can win
			// the election Skew_Time would hold; take over now.
			in.becomeMaster(out, now, ReasonFastHandover)
			return
		}
		// RFC 5798 §6.4.2: set the Master_Down_Timer to Skew_Time.
		in.masterDownAt = now.Add(in.skew())
		in.resigned = true
		return
	}
	if adv.Priority < in.priority && in.cfg.Preempt {
		// RFC 5798 §6.4.2: with preemption, a lower-priority advert is discarded (the
		// Master_Down_Timer then runs out). Beyond the RFC, when it comes from the master this
		// backup follows, or none is known yet, the master itself has lowered its priority (a
		// probe's weight): take over at once, which makes a probe-driven failover take
		// milliseconds. From anyone else it is discarded as the RFC says: another router
		// still MASTER after a split brain, which the real master will answer, or a forger,
		// whose one priority-1 advert must not make a second MASTER. (Without preemption the
		// RFC has every advert reset the timer, below.)
		if in.masterAddr.IsValid() && in.masterAddr != src {
			return
		}
		if !now.Before(in.preemptAt) {
			in.becomeMaster(out, now, ReasonPreempting)
			return
		}
	}
	in.masterAddr, in.masterPrio = src, adv.Priority
	if in.cfg.Version == 3 {
		// RFC 5798 §6.4.2: v3 backups adopt the master's interval.
		in.masterAdvInterval = adv.Interval
	}
	in.masterDownAt = now.Add(in.masterDownInterval())
	in.resigned = false
}

// masterReceive is RFC 5798 §6.4.3 "If an ADVERTISEMENT is received".
func (in *Instance) masterReceive(out *Output, now time.Time, src netip.Addr, adv *packet.Advertisement) {
	switch {
	case adv.Priority == 0:
		// Another router resigned while we are MASTER: it was a second master (a healed
		// split brain, or a preempted one stepping down). Advertise at once so backups
		// don't take over after Skew_Time, and announce again: neighbours may still
		// have the other router's MAC.
		in.answerOtherMaster(out, now)
	case adv.Priority > in.priority || (adv.Priority == in.priority && addrGreater(src, in.cfg.Primary)):
		in.masterAddr, in.masterPrio = src, adv.Priority
		if in.cfg.Version == 3 {
			in.masterAdvInterval = adv.Interval
		} else {
			in.masterAdvInterval = in.cfg.Interval
		}
		// Beyond the RFC: tell the winner we held the addresses too, so it re-announces them
		// (it hears a lower priority, RFC 9568 §6.4.3; keepalived re-sends its gratuitous ARP
		// on that too); otherwise, when we hear it first after a split brain heals, it never
		// learns and neighbours keep our MAC. The advert must lose to the winner, so it
		// re-announces, yet not to any other backup (none can beat the winner), so that no
		// preempting backup takes over on it: the winner's own priority when our address is
		// lower (the tie-break keeps the winner MASTER), else its priority minus one. Not 0:
		// every other backup would start Skew_Time (RFC 5798 §6.4.2) and take over unless the
		// winner's next advert came first, which at 10 ms intervals it often does not. Not our
		// own priority: a backup between us and the winner would preempt at once.
		in.sendAdvert(out, stepDownPriority(adv.Priority, src, in.cfg.Primary), 1)
		in.becomeBackup(out, now, ReasonHigherPriority)
	default:
		// RFC 9568 §6.4.3: a lower-priority master exists (split brain healing): advertise at
		// once so it steps down, and announce our addresses again so traffic comes back.
		in.answerOtherMaster(out, now)
	}
}

// answerOtherMaster advertises at once and announces the addresses again, because another
// router claims to be MASTER; at most once per advert interval, so that a flood of forged
// adverts is not answered packet for packet (nor turned into a storm of gratuitous ARPs): one
// answer per interval is all a real second master needs, the regular advert does the rest.
//
// Another master heard again within the interval (it stepped down, or both backups took over
// at once and it announced after our answer) gets one more announcement when the interval is
// up: its gratuitous ARPs may have reached the LAN after ours, and neighbours would send to it
// until our next announcement, seconds later. Still at most one per interval.
func (in *Instance) answerOtherMaster(out *Output, now time.Time) {
	if !in.answeredAt.IsZero() && now.Sub(in.answeredAt) < in.cfg.Interval && !now.Before(in.answeredAt) {
		in.answerAgainAt = in.answeredAt.Add(in.cfg.Interval)
		return
	}
	in.answerAgainAt = time.Time{}
	in.answeredAt = now
	in.sendAdvert(out, in.priority, 1)
	in.advertAt = now.Add(in.cfg.Interval)
	in.announce(out, in.addrs(), in.cfg.announceCount())
}

// stepDownPriority is the priority of the last advert of a MASTER at self stepping down for a
// winner at src advertising prio: the highest value the winner still beats.
func stepDownPriority(prio uint8, src, self netip.Addr) uint8 {
	if addrGreater(src, self) || prio <= 1 {
		return prio
	}
	return prio - 1
}

// certainlyBest reports whether every other member is known and could never beat this router,
// so no election is needed when the master at from resigns.
func (in *Instance) certainlyBest(from netip.Addr) bool {
	if !in.cfg.MembersComplete || in.faulted() {
		return false
	}
	for _, m := range in.cfg.Members {
		if m.Addr == from || m.Addr == in.cfg.Primary {
			continue
		}
		// On a tie the sources' addresses decide (RFC 5798 §6.4.3); an IPv6 member known by
		// its node's global address cannot be compared with our link-local source.
		if m.MaxPriority == 0 || m.MaxPriority > in.priority ||
			(m.MaxPriority == in.priority && (addrGreater(m.Addr, in.cfg.Primary) ||
				m.Addr.IsLinkLocalUnicast() != in.cfg.Primary.IsLinkLocalUnicast())) {
			return false
		}
	}
	return true
}

func addrGreater(a, b netip.Addr) bool { return a.Compare(b) > 0 }

// SetHealth applies what the probes say, as one step: the effective priority becomes the
// configured one adjusted by h.Adjust (clamped to 1..254; the owner keeps 255), and h.Fault
// enters or leaves the probe Fault. Entering Fault as MASTER resigns (priority 0 advert,
// addresses removed); leaving it goes to Backup (RFC 5798 §6.4.1 after Startup) with the new
// priority already in place and the preemption hold-off starting again; the instance leaves
// Fault only when the link and host causes are clear as well. Without a Fault change, a MASTER
// advertises a new priority at once, so a preempting backup with a higher one takes over
// without waiting, and a BACKUP that now beats the known master preempts at once. Called
// before Start, it only records: Start goes to Fault if h.Fault.
func (in *Instance) SetHealth(now time.Time, h Health) Output {
	was := in.health.Fault
	in.health = h
	p := in.effectivePriority()
	switch {
	case h.Fault && was:
		// Still failing; the reason may have changed (ProbePending -> ProbeFailed).
		in.priority = p
		if in.state == Fault {
			in.reason = in.faultReason()
		}
		var out Output
		in.schedule(&out)
		return out
	case h.Fault != was:
		in.priority = p
		return in.setFault(now, h.Fault, h.Reason)
	}
	return in.setPriority(now, p)
}

// effectivePriority is the configured priority adjusted by the probes' weights.
func (in *Instance) effectivePriority() uint8 {
	if in.cfg.Priority == OwnerPriority {
		return OwnerPriority
	}
	return uint8(min(max(int(in.cfg.Priority)+in.health.Adjust, MinPriority), MaxBackupPriority))
}

// setPriority changes the effective priority without a Fault change (see SetHealth).
func (in *Instance) setPriority(now time.Time, p uint8) Output {
	var out Output
	old := in.priority
	in.priority = p
	switch in.state {
	case Master:
		if p != old {
			in.masterPrio = p
			in.sendAdvert(&out, p, 1)
			in.advertAt = now.Add(in.cfg.Interval)
		}
	case Backup:
		in.maybePreempt(&out, now)
	}
	in.schedule(&out)
	return out
}

// maybePreempt makes a preempting BACKUP that outbids the known master take over.
func (in *Instance) maybePreempt(out *Output, now time.Time) {
	if in.cfg.Preempt && !now.Before(in.preemptAt) && in.masterPrio != 0 && in.priority > in.masterPrio {
		in.becomeMaster(out, now, ReasonPreempting)
	}
}

// SetLinkUp reports whether the interface can carry VRRP (administratively up, with carrier).
// RFC 5798 §6.4 has no Fault state; this is keepalived's: a router whose interface goes down
// enters FAULT, a MASTER releasing its addresses, and when the interface comes back it starts
// again as BACKUP, so nopreempt keeps it from taking the addresses back. Here entering Fault
// as MASTER resigns with priority 0 adverts, as SetFault does (they may not leave a dead
// link; the backups then wait Master_Down_Interval); leaving goes to Backup (the address
// owner: Master) with the preemption hold-off starting again. A probe fault keeps the
// instance in Fault after the link is back. Called before Start, it only records the state:
// Start goes to Fault if the link is down.
func (in *Instance) SetLinkUp(now time.Time, up bool) Output {
	reason := ReasonInterfaceUp
	if !up {
		reason = ReasonInterfaceDown
	}
	return in.setCause(now, &in.linkDown, !up, reason)
}

// SetHostFault sets or clears the host fault: the driver could not bind the addresses a MASTER
// must hold. A MASTER that advertised without its addresses would be a black hole behind a green
// status, so it resigns like any other Fault (priority 0, addresses removed) and the driver
// clears the fault after a back-off, when the instance goes to Backup and takes part again.
func (in *Instance) SetHostFault(now time.Time, fault bool, reason string) Output {
	if fault && !in.hostFault {
		in.hostReason = reason
	}
	return in.setCause(now, &in.hostFault, fault, reason)
}

// HoldPreemption keeps a Backup from preempting before until (Master_Down_Timer still runs): the
// Router holds it after a failed bind, so that a node that cannot bind its addresses does not
// take them from a healthy master at every retry only to resign again.
func (in *Instance) HoldPreemption(until time.Time) {
	if until.After(in.preemptAt) {
		in.preemptAt = until
	}
}

// faulted reports whether any cause of Fault holds.
func (in *Instance) faulted() bool { return in.health.Fault || in.linkDown || in.hostFault }

// faultReason says why the instance is in Fault: the link first, it silences everything else,
// then the host, then the probes.
func (in *Instance) faultReason() string {
	switch {
	case in.linkDown:
		return ReasonInterfaceDown
	case in.hostFault:
		return in.hostReason
	case in.health.Fault && in.health.Reason != "":
		return in.health.Reason
	}
	return ReasonProbeFailed
}

// setCause sets one cause of Fault (see setFault).
func (in *Instance) setCause(now time.Time, cause *bool, on bool, reason string) Output {
	if *cause == on {
		var out Output
		in.schedule(&out)
		return out
	}
	was := in.faulted()
	*cause = on
	return in.faultChanged(now, was, on, reason)
}

// setFault applies a change of the probe Fault, already recorded in in.health.
func (in *Instance) setFault(now time.Time, on bool, reason string) Output {
	return in.faultChanged(now, in.linkDown || in.hostFault || !on, on, reason)
}

// faultChanged follows one cause of Fault turning on or off; was says whether any cause held
// before. The first cause to appear puts the instance in Fault, a second one changes nothing,
// and the instance leaves Fault when the last one clears; while one still holds, the reason
// becomes that one's.
func (in *Instance) faultChanged(now time.Time, was, on bool, reason string) Output {
	var out Output
	switch {
	case on && !was:
		if in.state == Master {
			in.resign(&out, resignCopies)
		}
		if in.state != Initialize {
			in.transition(&out, now, Fault, reason)
		}
	case on:
		// Already in Fault for the other cause; its reason stands.
	case in.faulted():
		if in.state == Fault {
			in.reason = in.faultReason()
		}
	case in.state == Fault:
		in.preemptAt = now.Add(in.cfg.PreemptDelay)
		in.masterAdvInterval = in.cfg.Interval
		if in.priority == OwnerPriority {
			in.becomeMaster(&out, now, ReasonOwner)
		} else {
			in.becomeBackup(&out, now, reason)
		}
	}
	in.schedule(&out)
	return out
}

// AddressRemoved reports that something removed one of the virtual addresses. A MASTER puts it
// back and announces it.
func (in *Instance) AddressRemoved(now time.Time, p netip.Prefix) Output {
	var out Output
	if in.state == Master && slices.Contains(in.cfg.Addresses, p) {
		out.Bind = []netip.Prefix{p}
		in.announce(&out, []netip.Addr{p.Addr()}, in.cfg.announceCount())
	}
	in.schedule(&out)
	return out
}

// Shutdown handles the Shutdown event (RFC 5798 §6.4.3): a MASTER sends priority 0 (a few
// copies, so one loss doesn't cost Master_Down_Interval) and removes its addresses.
func (in *Instance) Shutdown(now time.Time) Output {
	var out Output
	if in.state == Master {
		in.resign(&out, resignCopies)
	}
	if in.state != Initialize {
		in.transition(&out, now, Initialize, ReasonShutdown)
	}
	return out
}

// Handoff handles a stop for a restart (docs/design.md §4.9.1), the counterpart of Shutdown: a
// MASTER hands its role and its addresses to its successor on this node instead of to the
// backups. It keeps the addresses (no Unbind), announces nothing and goes to Initialize
// (reason Handoff); out.Handoff says what it handed over and for how long.
//
// A VRRPv3 MASTER first sends an advert at its priority (three copies) whose interval is stretched to
// bound/4 (whole centiseconds, at most the field's 40.95 s, at least its own interval): every
// backup adopts the master's interval (RFC 5798 §6.4.2), so its Master_Down_Interval becomes
// 3 x that + Skew_Time, below 4 x that: the handoff's window, bound when bound/4 is whole
// centiseconds within the limits, less when rounded down or clamped, more when raised. A
// VRRPv2 MASTER sends nothing, since its backups drop an advert with another interval (RFC
// 3768 §7.1): the window is their own Master_Down_Interval from the last advert, at most
// 3 x the interval + 1 s (Skew_Time of priority 1 rounded up).
//
// Any other instance, or a bound of 0 or less, stops as Shutdown does.
func (in *Instance) Handoff(now time.Time, bound time.Duration) Output {
	if in.state != Master || bound <= 0 {
		return in.Shutdown(now)
	}
	var out Output
	if in.cfg.Version == 3 {
		// As many copies as a resignation's: one lost would leave the backups on the old
		// interval, and one of them would take over in Master_Down_Interval (a move).
		in.sendAdvertEvery(&out, in.priority, in.handoffInterval(bound), resignCopies)
	}
	out.Handoff = &Handoff{
		Interface: in.cfg.Interface, VRID: in.cfg.VRID, IPv6: in.is6(),
		Addresses: slices.Clone(in.cfg.Addresses), At: now, Window: in.handoffWindow(bound),
	}
	in.stopMasterTimers()
	in.transition(&out, now, Initialize, ReasonHandoff)
	return out
}

// handoffInterval is the interval a VRRPv3 MASTER handing off with bound advertises.
func (in *Instance) handoffInterval(bound time.Duration) time.Duration {
	iv := min((bound / 4).Truncate(IntervalStepV3), MaxIntervalV3)
	return max(iv, in.cfg.Interval)
}

// handoffWindow bounds how long the backups wait after a MASTER hands off with bound: 3
// intervals plus Skew_Time at the lowest priority, rounded up to one interval (v3) or one
// second (v2).
func (in *Instance) handoffWindow(bound time.Duration) time.Duration {
	if bound <= 0 {
		return 0
	}
	if in.cfg.Version == 2 {
		return 3*in.cfg.Interval + time.Second
	}
	return 4 * in.handoffInterval(bound)
}

// Resume starts the instance, in place of Start, as the MASTER its predecessor on this node
// handed over to it (Handoff; docs/design.md §4.9.1): Initialize to Master (reason Resumed),
// binding its addresses (they are still bound: binding them again is harmless) and sending an
// advert at once at its own interval, which the backups adopt back. It announces nothing now
// and sends no second burst: the addresses never left this node's MAC. From then on it is a
// MASTER like any other, refreshing its announcements if Config.AnnounceRefresh says so.
//
// An instance that has a cause of Fault (SetHealth, SetLinkUp) holds the addresses without
// being able to serve them: it resigns as a MASTER entering Fault does (priority 0, so the
// backups take over after Skew_Time instead of the handoff's window; its addresses removed)
// and goes to Fault. Called on a started instance, Resume does nothing.
func (in *Instance) Resume(now time.Time) Output {
	var out Output
	if in.state != Initialize {
		in.schedule(&out)
		return out
	}
	in.preemptAt = now.Add(in.cfg.PreemptDelay)
	in.masterAdvInterval = in.cfg.Interval
	if in.faulted() {
		in.resign(&out, resignCopies)
		in.transition(&out, now, Fault, in.faultReason())
	} else {
		in.takeRole(&out, now, ReasonResumed)
	}
	in.schedule(&out)
	return out
}

func (in *Instance) resign(out *Output, copies int) {
	in.sendAdvert(out, 0, copies)
	out.Unbind = slices.Clone(in.cfg.Addresses)
	in.stopMasterTimers()
}

// Reconfigure applies a new config to a running instance: address changes on a MASTER become
// a bind/unbind diff, peers and priorities change without a state change, and a MASTER's
// announcement timers follow new announcement knobs (retimeAnnouncements). A change of VRID,
// version, interface, family or source returns ErrIncompatible.
func (in *Instance) Reconfigure(now time.Time, cfg Config) (Output, error) {
	if err := in.checkReconfigure(cfg); err != nil {
		// A refused config leaves the instance running as it was: its timers still stand,
		// and the driver re-arms from out.Next, so it must carry them (a zero Next would stop
		// the timer).
		var out Output
		in.schedule(&out)
		return out, err
	}
	return in.reconfigure(now, cfg), nil
}

// ReconfigureHealth is Reconfigure and SetHealth(h) as one step, for a change of config and
// probes together: neither is acted on with the other's old value (a BACKUP preempting with
// a new base priority that the new probes' weights take back, or a MASTER advertising it).
// Entering the probe Fault resigns with the addresses held and then takes the config; leaving
// it takes the config in Fault and then leaves with both. A refused config changes nothing.
func (in *Instance) ReconfigureHealth(now time.Time, cfg Config, h Health) (Output, error) {
	if err := in.checkReconfigure(cfg); err != nil {
		var out Output
		in.schedule(&out)
		return out, err
	}
	switch {
	case h.Fault && !in.health.Fault:
		out := in.SetHealth(now, h)
		return merge(out, in.reconfigure(now, cfg)), nil
	case !h.Fault && in.health.Fault:
		out := in.reconfigure(now, cfg)
		return merge(out, in.SetHealth(now, h)), nil
	}
	// No Fault change: the new word is only recorded, and the config change acts on both.
	in.health = h
	if in.state == Fault {
		in.reason = in.faultReason()
	}
	return in.reconfigure(now, cfg), nil
}

// merge is the output of a followed by b, for two steps of which at most one acts (the other
// only re-arms the timer, in Fault or before Start).
func merge(a, b Output) Output {
	a.Send = append(a.Send, b.Send...)
	a.Bind = append(a.Bind, b.Bind...)
	a.Unbind = append(a.Unbind, b.Unbind...)
	a.Announce = append(a.Announce, b.Announce...)
	a.AnnounceCount = max(a.AnnounceCount, b.AnnounceCount)
	if b.Transition != nil {
		a.Transition = b.Transition
	}
	if b.Dropped != nil {
		a.Dropped = b.Dropped
	}
	a.Next = b.Next
	return a
}

// checkReconfigure refuses a config the running instance cannot take.
func (in *Instance) checkReconfigure(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	old := in.cfg
	if cfg.VRID != old.VRID || cfg.Version != old.Version || cfg.Interface != old.Interface ||
		cfg.Primary != old.Primary || cfg.VirtualMAC != old.VirtualMAC {
		return ErrIncompatible
	}
	if (cfg.Priority == OwnerPriority) != (old.Priority == OwnerPriority) {
		return ErrIncompatible
	}
	return nil
}

// reconfigure applies cfg, which checkReconfigure accepted.
func (in *Instance) reconfigure(now time.Time, cfg Config) Output {
	var out Output
	old := in.cfg
	in.cfg = cfg.clone()
	var added, removed []netip.Prefix
	for _, p := range cfg.Addresses {
		if !slices.Contains(old.Addresses, p) {
			added = append(added, p)
		}
	}
	for _, p := range old.Addresses {
		if !slices.Contains(cfg.Addresses, p) {
			removed = append(removed, p)
		}
	}
	// The effective priority follows a changed base priority, with the probes' adjustment.
	oldPrio := in.priority
	in.priority = in.effectivePriority()
	if in.state == Master {
		in.masterPrio = in.priority
	}
	if in.state == Master {
		out.Unbind, out.Bind = removed, added
		for _, p := range added {
			in.announce(&out, []netip.Addr{p.Addr()}, in.cfg.announceCount())
		}
		in.retimeAnnouncements(now, old)
		changed := len(added)+len(removed) > 0 || cfg.Interval != old.Interval || in.priority != oldPrio
		if changed {
			in.sendAdvert(&out, in.priority, 1)
			in.advertAt = now.Add(in.cfg.Interval)
		}
	}
	if in.state == Backup {
		if in.cfg.Version == 2 {
			in.masterAdvInterval = in.cfg.Interval
		}
		in.maybePreempt(&out, now)
	}
	in.schedule(&out)
	return out
}

// becomeMaster takes the role and announces the addresses: a burst at once and, unless
// NoAnnounceRepeat, a second one AnnounceRepeat later (docs/design.md §5.2).
func (in *Instance) becomeMaster(out *Output, now time.Time, reason string) {
	in.takeRole(out, now, reason)
	in.announce(out, in.addrs(), in.cfg.announceCount())
	if !in.cfg.NoAnnounceRepeat {
		in.reannounceAt = now.Add(in.cfg.announceRepeat())
	}
}

// takeRole makes the instance MASTER: an advert at once, the addresses bound, the Adver_Timer
// running, and the refresh, if configured, one AnnounceRefresh from now; becomeMaster adds
// the takeover's announcements.
func (in *Instance) takeRole(out *Output, now time.Time, reason string) {
	in.sendAdvert(out, in.priority, 1)
	out.Bind = slices.Clone(in.cfg.Addresses)
	in.advertAt = now.Add(in.cfg.Interval)
	in.reannounceAt, in.refreshAt = time.Time{}, time.Time{}
	if in.cfg.AnnounceRefresh > 0 {
		in.refreshAt = now.Add(in.cfg.AnnounceRefresh)
	}
	in.masterDownAt = time.Time{}
	in.masterAddr, in.masterPrio = in.cfg.Primary, in.priority
	in.transition(out, now, Master, reason)
}

func (in *Instance) becomeBackup(out *Output, now time.Time, reason string) {
	if in.state == Master {
		out.Unbind = slices.Clone(in.cfg.Addresses)
	}
	in.stopMasterTimers()
	in.masterDownAt = now.Add(in.masterDownInterval())
	in.resigned = false
	in.transition(out, now, Backup, reason)
}

func (in *Instance) transition(out *Output, now time.Time, to State, reason string) {
	if in.state == to {
		in.reason = reason
		return
	}
	out.Transition = &Transition{From: in.state, To: to, Reason: reason, At: now}
	in.state, in.reason, in.since = to, reason, now
	in.stats.Transitions++
	if to != Master && to != Backup {
		in.masterDownAt = time.Time{}
		// Fault and Initialize hear nobody, so what they knew of the master goes stale; and
		// leaving Master this way, the "master" is this router itself.
		in.masterAddr, in.masterPrio = netip.Addr{}, 0
	}
	// Debug: the agent's owner logs transitions with the host's view (interface, master).
	in.log.Debug("VRRP transition", "from", out.Transition.From.String(), "to", to.String(),
		"reason", reason, "priority", in.priority)
}

func (in *Instance) schedule(out *Output) {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch in.state {
	case Backup:
		consider(in.masterDownAt)
	case Master:
		consider(in.advertAt)
		consider(in.reannounceAt)
		consider(in.answerAgainAt)
		consider(in.refreshAt)
	}
	out.Next = next
}

// stopMasterTimers stops what only a MASTER does: adverts, the second burst, the answer
// pending for another master and the refresh.
func (in *Instance) stopMasterTimers() {
	in.advertAt, in.reannounceAt, in.answerAgainAt, in.refreshAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
}

// announce adds addrs to out's announcements, count messages per address; when out already
// announces (a refresh due with the second burst), the one announcement sends the larger count.
func (in *Instance) announce(out *Output, addrs []netip.Addr, count int) {
	for _, a := range addrs {
		if !slices.Contains(out.Announce, a) {
			out.Announce = append(out.Announce, a)
		}
	}
	out.AnnounceCount = max(out.AnnounceCount, count)
}

// retimeAnnouncements follows a change of the announcement knobs on a MASTER (reconfigure; in.cfg
// is already the new config, old the previous one). A pending second burst moves to the new
// delay after the takeover, or goes with NoAnnounceRepeat. The refresh moves to the new
// interval after the last one (or the takeover), at once if that is already past; turned on,
// it starts one interval from now; turned off, it stops. A new count applies to the next
// announcement by itself.
func (in *Instance) retimeAnnouncements(now time.Time, old Config) {
	notBefore := func(t time.Time) time.Time {
		if t.Before(now) {
			return now
		}
		return t
	}
	if !in.reannounceAt.IsZero() {
		if in.cfg.NoAnnounceRepeat {
			in.reannounceAt = time.Time{}
		} else {
			in.reannounceAt = notBefore(in.reannounceAt.Add(in.cfg.announceRepeat() - old.announceRepeat()))
		}
	}
	switch {
	case in.cfg.AnnounceRefresh <= 0:
		in.refreshAt = time.Time{}
	case in.refreshAt.IsZero():
		in.refreshAt = now.Add(in.cfg.AnnounceRefresh)
	default:
		in.refreshAt = notBefore(in.refreshAt.Add(in.cfg.AnnounceRefresh - old.AnnounceRefresh))
	}
}

func (in *Instance) addrs() []netip.Addr {
	a := make([]netip.Addr, len(in.cfg.Addresses))
	for i, p := range in.cfg.Addresses {
		a[i] = p.Addr()
	}
	return a
}

// advertAddrs is the address list carried in adverts. For IPv6 the first one must be a
// link-local address (RFC 5798 §5.2.9); if none is configured, the VRRP virtual router's
// link-local address derived from its virtual MAC (RFC 5798 §7.3) is put first.
func (in *Instance) advertAddrs() []netip.Addr {
	a := in.addrs()
	if in.is6() && !a[0].IsLinkLocalUnicast() {
		ll := [16]byte{0xfe, 0x80, 8: 0x02, 9: 0x00, 10: 0x5e, 11: 0xff, 12: 0xfe, 13: 0x00, 14: 0x02, 15: in.cfg.VRID}
		a = append([]netip.Addr{netip.AddrFrom16(ll)}, a...)
	}
	return a
}

func (in *Instance) destinations() []netip.Addr {
	if len(in.cfg.Peers) > 0 {
		return in.cfg.Peers
	}
	if in.is6() {
		return []netip.Addr{packet.MulticastIPv6}
	}
	return []netip.Addr{packet.MulticastIPv4}
}

func (in *Instance) sendAdvert(out *Output, prio uint8, copies int) {
	in.sendAdvertEvery(out, prio, in.cfg.Interval, copies)
}

// sendAdvertEvery is sendAdvert with another interval in the advert (Handoff).
func (in *Instance) sendAdvertEvery(out *Output, prio uint8, interval time.Duration, copies int) {
	adv := packet.Advertisement{
		Version: in.cfg.Version, VRID: in.cfg.VRID, Priority: prio,
		Interval: interval, Addresses: in.advertAddrs(),
	}
	if in.cfg.Version == 2 && len(in.cfg.Password) > 0 {
		adv.AuthType = packet.AuthPass
		copy(adv.AuthData[:], in.cfg.Password)
	}
	for range copies {
		for _, dst := range in.destinations() {
			b, err := adv.Marshal(in.cfg.Primary, dst, in.cfg.Checksum)
			if err != nil {
				// Config.Validate makes this unreachable; never send a bad packet.
				in.log.Error("encoding advert", "err", err)
				continue
			}
			out.Send = append(out.Send, Datagram{Dst: dst, Data: b})
			in.stats.AdvertsSent++
		}
	}
}
