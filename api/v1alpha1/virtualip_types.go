package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualIPSpec describes one VRRP group: which nodes take part, the addresses they share and
// how they elect the node that holds them.
//
// +kubebuilder:validation:XValidation:rule=`!has(self.advertisementInterval) || self.version != 3 || !self.advertisementInterval.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self.advertisementInterval) >= duration('10ms') && duration(self.advertisementInterval) <= duration('40950ms') && int(duration(self.advertisementInterval)) % 10000000 == 0)`,messageExpression=`'advertisementInterval must be a multiple of 10ms between 10ms and 40.95s for version 3 (VRRPv3 counts centiseconds); got ' + self.advertisementInterval`,fieldPath=`.advertisementInterval`
// +kubebuilder:validation:XValidation:rule=`!has(self.advertisementInterval) || self.version != 2 || !self.advertisementInterval.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self.advertisementInterval) >= duration('1s') && duration(self.advertisementInterval) <= duration('255s') && int(duration(self.advertisementInterval)) % 1000000000 == 0)`,messageExpression=`'advertisementInterval must be whole seconds between 1s and 255s for version 2 (set version: 3 for sub-second intervals); got ' + self.advertisementInterval`,fieldPath=`.advertisementInterval`
// +kubebuilder:validation:XValidation:rule=`has(self.nodeSelector) || (has(self.nodes) && self.nodes.size() > 0)`,message=`name the nodes that run this VirtualIP: set spec.nodeSelector (an empty selector {} selects every node that runs the agent) or list the members in spec.nodes`,fieldPath=`.nodeSelector`,reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule=`self.version == 3 || !self.addresses.exists(a, (isIP(a) || isCIDR(a)) && (isCIDR(a) ? cidr(a).ip() : ip(a)).family() == 6)`,message=`VRRPv2 carries only IPv4: set version: 3 for IPv6 addresses`,fieldPath=`.version`
// +kubebuilder:validation:XValidation:rule=`!has(self.authentication) || self.version == 2`,message=`authentication exists only in VRRPv2 (RFC 5798 §9 removed it): set version: 2 or remove authentication`,fieldPath=`.authentication`
// +kubebuilder:validation:XValidation:rule=`!has(self.preempt) || self.preempt || !has(self.probes) || self.probes.size() == 0 || self.probes.exists(p, !has(p.weight) || p.weight == 0)`,message=`preempt: false with only weighted probes can never move the addresses (a weight only changes the priority, and without preemption a lower priority never takes over): set preempt: true, or give a probe weight 0 so that its failure resigns the addresses`,fieldPath=`.preempt`
// +kubebuilder:validation:XValidation:rule=`!has(self.unicast) || !has(self.unicast.peers) || self.unicast.peers.all(p, !isIP(p) || self.addresses.all(a, !(isIP(a) || isCIDR(a)) || (isCIDR(a) ? cidr(a).ip() : ip(a)).family() == ip(p).family()))`,messageExpression=`'unicast.peers must be of the family of the addresses (IPv4 peers for IPv4 addresses, IPv6 peers for IPv6 addresses); got addresses ' + self.addresses.join(', ') + ' and peers ' + self.unicast.peers.join(', ')`,fieldPath=`.unicast.peers`
// +kubebuilder:validation:XValidation:rule=`!has(self.unicast) || !has(self.unicast.peers) || self.unicast.peers.all(p, !isIP(p) || !self.addresses.exists(a, (isIP(a) || isCIDR(a)) && (isCIDR(a) ? cidr(a).ip() : ip(a)) == ip(p)))`,messageExpression=`'unicast.peers lists the routers\' own addresses and cannot contain a virtual address; got addresses ' + self.addresses.join(', ') + ' and peers ' + self.unicast.peers.join(', ')`,fieldPath=`.unicast.peers`
type VirtualIPSpec struct {
	// vrid is the Virtual Router Identifier shared by every member of the group, as keepalived's
	// virtual_router_id. It must be unique per interface and address family on the LAN.
	// Immutable: to change it, create a new VirtualIP and delete the old one.
	// +kubebuilder:validation:XValidation:rule=`self >= 1 && self <= 255`,message=`vrid must be 1..255 (keepalived's virtual_router_id, the same on every member of the group)`
	// +kubebuilder:validation:XValidation:rule=`self == oldSelf`,message=`vrid is immutable: to change it, create a new VirtualIP with the new vrid and delete this one`
	// +required
	VRID int32 `json:"vrid"`

	// version is the VRRP protocol version: 3 (RFC 5798/9568, default) or 2 (RFC 3768).
	// IPv6 addresses need version 3; PASS authentication needs version 2.
	// +kubebuilder:validation:Enum=2;3
	// +kubebuilder:default=3
	// +optional
	Version int32 `json:"version,omitempty"`

	// interface is the network interface that carries the adverts and the addresses. Empty means
	// the interface holding a node address in the first address's subnet.
	// +optional
	Interface InterfaceName `json:"interface,omitempty"`

	// addresses are the virtual addresses the MASTER holds, as CIDR ("192.0.2.10/24") or bare IP
	// (a bare address is a /32 or /128). All of one family.
	// 1..64 entries, no address twice (192.0.2.10 and 192.0.2.10/24 are the same address).
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:XValidation:rule=`(isIP(self) || isCIDR(self))`,message=`write an IP address or CIDR such as 192.0.2.10, 192.0.2.10/24 or 2001:db8::10/64 (no zone, no IPv4-mapped IPv6 address, no leading zeros)`
	// +kubebuilder:validation:items:XValidation:rule=`!(isIP(self) || isCIDR(self)) || !((isCIDR(self) ? cidr(self).ip() : ip(self)).isUnspecified() || (isCIDR(self) ? cidr(self).ip() : ip(self)).isLoopback() || cidr('224.0.0.0/4').containsIP((isCIDR(self) ? cidr(self).ip() : ip(self))) || cidr('ff00::/8').containsIP((isCIDR(self) ? cidr(self).ip() : ip(self))) || (isCIDR(self) ? cidr(self).ip() : ip(self)) == ip('255.255.255.255'))`,message=`a virtual address must be a unicast address, not unspecified, loopback, multicast or broadcast`
	// +kubebuilder:validation:items:XValidation:rule=`!isCIDR(self) || cidr(self).prefixLength() > 0`,message=`a /0 prefix would claim every address: use the subnet's prefix length (e.g. /24) or a bare address`
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1`,message=`list at least one virtual address, e.g. ["192.0.2.10/24"]`
	// +kubebuilder:validation:XValidation:rule=`self.filter(a, (isIP(a) || isCIDR(a))).map(a, (isCIDR(a) ? cidr(a).ip() : ip(a)).family()).distinct().size() <= 1`,messageExpression=`'all addresses of a VirtualIP are one family: move the ' + ((isCIDR(self.filter(a, (isIP(a) || isCIDR(a)))[0]) ? cidr(self.filter(a, (isIP(a) || isCIDR(a)))[0]).ip() : ip(self.filter(a, (isIP(a) || isCIDR(a)))[0])).family() == 4 ? 'IPv6' : 'IPv4') + ' addresses to another VirtualIP; got ' + self.join(', ')`
	// +kubebuilder:validation:XValidation:rule=`self.filter(a, (isIP(a) || isCIDR(a))).map(a, string((isCIDR(a) ? cidr(a).ip() : ip(a)))).distinct().size() == self.filter(a, (isIP(a) || isCIDR(a))).size()`,messageExpression=`'each address may be listed once (192.0.2.10 and 192.0.2.10/24 are the same address): remove the duplicates; got ' + self.join(', ')`
	// +listType=set
	// +required
	Addresses []string `json:"addresses"`

	// advertisementInterval is how often the MASTER advertises. Version 3: 10ms..40.95s in steps
	// of 10ms (default 100ms: a lost MASTER is replaced in about 0.36s). Version 2: whole seconds
	// 1s..255s (default 1s). Unset, the agent applies the default of the version.
	// +optional
	AdvertisementInterval *Duration `json:"advertisementInterval,omitempty"`

	// priority of every selected node, 1..254 (default 100); the highest priority becomes MASTER.
	// nodes[] overrides it per node. 255 is not allowed here: it says "this node owns the
	// addresses" (RFC 5798 §5.2.4), which only one node can; set it in the nodes[] override of
	// that one node.
	// +kubebuilder:default=100
	// +kubebuilder:validation:XValidation:rule=`self != 255`,message=`priority 255 here would make every selected node claim to own the addresses, and only one node can (RFC 5798 §5.2.4): set 1..254 here, and 255 only in the nodes[] override of the one node that has the addresses as its own interface addresses`
	// +optional
	Priority *Priority `json:"priority,omitempty"`

	// nodes lists nodes by name with settings of their own, e.g. a higher priority for the
	// preferred MASTER. Without nodeSelector these nodes, and only they, are the members of the
	// group; with nodeSelector the selector decides and an entry only overrides the settings of
	// a node it selects. At most one node may have priority 255 (the owner of the addresses).
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule=`self.filter(n, has(n.priority) && n.priority == 255).size() <= 1`,message=`only one node can own the addresses, but several nodes have priority 255: keep 255 only for the node that has the addresses as its own interface addresses, and set 1..254 for the others`
	// +listType=map
	// +listMapKey=name
	// +optional
	Nodes []NodeOverride `json:"nodes,omitempty"`

	// nodeSelector selects the members of the group by node labels. An empty selector {}
	// selects every node that runs the agent, on purpose; a node runs the group only where an
	// interface holds a node address in the first address's subnet (or spec.interface names
	// one), and where none does it has no VirtualIPMember unless nodes names it. Without
	// nodeSelector the members are exactly the nodes listed in nodes; one of the two is
	// required, so that no VirtualIP runs on every node by omission.
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])`,message=`a matchExpressions operator is In, NotIn, Exists or DoesNotExist`
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || has(e.values) && e.values.size() > 0)`,message=`matchExpressions with In or NotIn need values`
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || e.values.size() == 0)`,message=`matchExpressions with Exists or DoesNotExist take no values`
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchLabels) || self.matchLabels.all(k, !format.qualifiedName().validate(k).hasValue())`,message=`matchLabels keys are label keys: an optional DNS subdomain prefix and '/', then a name of at most 63 characters (letters, digits, '-', '_', '.')`
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// preempt lets a higher-priority node take the addresses back from a lower-priority MASTER
	// (default true). false is keepalived's nopreempt; it needs a probe of weight 0 if there are
	// weighted probes, since a weight alone could then never move the addresses.
	// +kubebuilder:default=true
	// +optional
	Preempt *bool `json:"preempt,omitempty"`

	// preemptDelay holds off a preemption after the node starts or recovers (keepalived's
	// preempt_delay), 0s..1h (default 0s: at once).
	// +kubebuilder:default="0s"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self) >= duration('0s') && duration(self) <= duration('1h'))`,message=`preemptDelay must be between 0s (preempt at once) and 1h`
	// +optional
	PreemptDelay *Duration `json:"preemptDelay,omitempty"`

	// accept makes a non-owner MASTER accept packets addressed to the virtual addresses
	// (RFC 5798 Accept_Mode). Default true, as keepalived without vrrp_strict.
	// +kubebuilder:default=true
	// +optional
	Accept *bool `json:"accept,omitempty"`

	// unicast sends adverts to each peer instead of the VRRP multicast group. Absent means
	// multicast (224.0.0.18 / ff02::12).
	// +optional
	Unicast *UnicastSpec `json:"unicast,omitempty"`

	// authentication is VRRPv2 simple-text authentication, compatible with keepalived's
	// auth_type PASS. It protects against misconfiguration, not against attackers.
	// +optional
	Authentication *AuthenticationSpec `json:"authentication,omitempty"`

	// checksumMode selects the VRRPv3 IPv4 checksum that is sent: PseudoHeader (default, what
	// keepalived and FRR send) or RFC9568 (no pseudo-header). Both forms are accepted.
	// +kubebuilder:validation:Enum=PseudoHeader;RFC9568
	// +kubebuilder:default=PseudoHeader
	// +optional
	ChecksumMode string `json:"checksumMode,omitempty"`

	// probes track the health of local services; see ProbeSpec.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Probes []ProbeSpec `json:"probes,omitempty"`

	// virtualMAC makes the MASTER use the RFC 5798 §7.3 virtual router MAC address
	// (00:00:5e:00:01:<vrid> for IPv4, 00:00:5e:00:02:<vrid> for IPv6) for the addresses, as
	// keepalived's use_vmac and FRR do: the agent creates a macvlan interface with that
	// address on the interface, binds the addresses there and sends adverts and gratuitous
	// ARPs / NAs from it. Clients' neighbour entries then stay valid across a failover (only
	// switches relearn the port), which helps clients that ignore gratuitous ARP. The agent
	// removes the macvlan when the VirtualIP stops. Default false.
	// +optional
	VirtualMAC bool `json:"virtualMAC,omitempty"`

	// announcements tunes the gratuitous ARPs (IPv4) and unsolicited neighbour advertisements
	// (IPv6) a MASTER sends for its addresses.
	// +optional
	Announcements *AnnouncementSpec `json:"announcements,omitempty"`

	// notify runs commands when this node's state changes, as keepalived's notify_master,
	// notify_backup, notify_fault, notify_stop and notify. Each runs directly (no shell), with
	// an empty environment, one at a time in the order of the changes. The commands run only
	// where exec is enabled (--enable-exec-probes, chart value probes.exec.enabled), since
	// whoever writes a VirtualIP could otherwise run commands on every selected node: without
	// it `kube-vrrp run` refuses the VirtualIP, and the agent runs it without the commands and
	// reports NotifyDisabled (a Warning Event and the member's message). In a cluster, Events
	// and the VirtualIPMembers' status report the same changes without running anything.
	// +optional
	Notify *NotifySpec `json:"notify,omitempty"`
}

// AnnouncementSpec tunes the gratuitous ARPs and unsolicited neighbour advertisements of a
// MASTER. On a takeover it sends a burst (count messages per address), and a second burst
// repeatDelay later.
type AnnouncementSpec struct {
	// count is the number of messages per address in each burst, 1..16 (default 2;
	// keepalived's garp_master_repeat).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	Count *int32 `json:"count,omitempty"`

	// repeatDelay is the delay of the second burst after a takeover, for switches that
	// dropped the first while a port was converging (keepalived's garp_master_delay),
	// 0s..1h; 0s sends no second burst (default 2s).
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self) >= duration('0s') && duration(self) <= duration('1h'))`,message=`repeatDelay must be between 0s (no second burst) and 1h`
	// +optional
	RepeatDelay *Duration `json:"repeatDelay,omitempty"`

	// refreshInterval makes a MASTER announce its addresses again at this interval for as
	// long as it stays MASTER, for switches and hosts that age entries out (keepalived's
	// garp_master_refresh), 1s..24h. Absent: no refresh.
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self) >= duration('1s') && duration(self) <= duration('24h'))`,message=`refreshInterval must be between 1s and 24h (remove it for no refresh)`
	// +optional
	RefreshInterval *Duration `json:"refreshInterval,omitempty"`

	// refreshCount is the number of messages per address at each refresh, 1..16 (default 1;
	// keepalived's garp_master_refresh_repeat).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	RefreshCount *int32 `json:"refreshCount,omitempty"`
}

// NotifySpec lists the commands run on this node's state changes. Each command is an argv
// (1..32 elements, the first an absolute path) to which five arguments are appended, in
// keepalived's order: INSTANCE, the VirtualIP's name, the new state (MASTER, BACKUP, FAULT or
// STOP), the effective priority and the reason (one CamelCase word, e.g. MasterDownTimer).
// On a change the state's own command runs first, then all.
//
// +kubebuilder:validation:XValidation:rule=`has(self.master) || has(self.backup) || has(self.fault) || has(self.stop) || has(self.all)`,message=`give at least one of master, backup, fault, stop or all (or remove notify)`
type NotifySpec struct {
	// master runs when the node becomes MASTER (keepalived's notify_master).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1 && self[0].startsWith('/')`,message=`give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-master]`
	// +listType=atomic
	// +optional
	Master []string `json:"master,omitempty"`
	// backup runs when the node becomes BACKUP (keepalived's notify_backup).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1 && self[0].startsWith('/')`,message=`give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-backup]`
	// +listType=atomic
	// +optional
	Backup []string `json:"backup,omitempty"`
	// fault runs when the node enters FAULT (keepalived's notify_fault).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1 && self[0].startsWith('/')`,message=`give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-fault]`
	// +listType=atomic
	// +optional
	Fault []string `json:"fault,omitempty"`
	// stop runs when the instance stops (keepalived's notify_stop).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1 && self[0].startsWith('/')`,message=`give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-stop]`
	// +listType=atomic
	// +optional
	Stop []string `json:"stop,omitempty"`
	// all runs on every change, after the state's own command (keepalived's notify).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1 && self[0].startsWith('/')`,message=`give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-change]`
	// +listType=atomic
	// +optional
	All []string `json:"all,omitempty"`
	// timeout bounds each run, 100ms..10m (default 10s); a command still running then is
	// killed, with its process group.
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self) >= duration('100ms') && duration(self) <= duration('10m'))`,message=`timeout must be between 100ms and 10m`
	// +optional
	Timeout *Duration `json:"timeout,omitempty"`
}

// NodeOverride sets per-node values of a VirtualIP.
type NodeOverride struct {
	// name of the Node.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// priority of this node, 1..254, or 255 for the one node that owns the addresses (has them
	// as its own interface addresses; the agent checks it).
	// +optional
	Priority *Priority `json:"priority,omitempty"`

	// interface overrides spec.interface on this node.
	// +optional
	Interface InterfaceName `json:"interface,omitempty"`
}

// UnicastSpec configures unicast adverts.
type UnicastSpec struct {
	// fromNodes adds the addresses of the other selected nodes to the peers (default true).
	// +kubebuilder:default=true
	// +optional
	FromNodes *bool `json:"fromNodes,omitempty"`

	// peers are extra peer addresses, e.g. an existing keepalived host. A node skips its own
	// addresses, so one list may name every member. IP addresses without prefix length, of the
	// family of spec.addresses, at most 64.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=45
	// +kubebuilder:validation:items:XValidation:rule=`isIP(self)`,message=`write a peer as an IP address without prefix length or zone, e.g. 192.0.2.12 or 2001:db8::12`
	// +kubebuilder:validation:items:XValidation:rule=`!isIP(self) || !(ip(self).isUnspecified() || ip(self).isLoopback() || cidr('224.0.0.0/4').containsIP(ip(self)) || cidr('ff00::/8').containsIP(ip(self)) || ip(self) == ip('255.255.255.255'))`,message=`a unicast peer is the unicast address of another router, not unspecified, loopback, multicast or broadcast`
	// +kubebuilder:validation:XValidation:rule=`self.filter(p, isIP(p)).map(p, string(ip(p))).distinct().size() == self.filter(p, isIP(p)).size()`,messageExpression=`'each peer may be listed once (2001:db8::1 and 2001:DB8::1 are the same address): remove the duplicates; got ' + self.join(', ')`
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// AuthenticationSpec is VRRPv2 authentication.
type AuthenticationSpec struct {
	// type of authentication; only PASS (simple text, at most 8 bytes) is supported.
	// +kubebuilder:validation:Enum=PASS
	// +required
	Type string `json:"type"`

	// secretRef names the Secret (in the agent's namespace) and key holding the password.
	// +required
	SecretRef SecretKeyRef `json:"secretRef"`
}

// SecretKeyRef selects a key of a Secret in the agent's own namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// ProbeSpec is one health check. Exactly one of process, tcp, http, exec, interface and file
// is set.
//
// +kubebuilder:validation:XValidation:rule=`has(self.process) || has(self.tcp) || has(self.http) || has(self.exec) || has(self.interface) || has(self.file)`,messageExpression=`'probe ' + self.name + ' checks nothing: set exactly one of process, tcp, http, exec, interface, file'`
// +kubebuilder:validation:XValidation:rule=`[has(self.process), has(self.tcp), has(self.http), has(self.exec), has(self.interface), has(self.file)].filter(x, x).size() <= 1`,messageExpression=`'probe ' + self.name + ' checks one thing but sets ' + ((has(self.process) ? ' and process' : "") + (has(self.tcp) ? ' and tcp' : "") + (has(self.http) ? ' and http' : "") + (has(self.exec) ? ' and exec' : "") + (has(self.interface) ? ' and interface' : "") + (has(self.file) ? ' and file' : "")).substring(5) + ': keep exactly one, or split it into several probes'`
// +kubebuilder:validation:XValidation:rule=`!has(self.timeout) || !has(self.interval) || !self.timeout.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || !self.interval.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self.timeout) <= duration(self.interval)`,messageExpression=`'timeout must be at most the interval (' + self.interval + ') so that checks never overlap; got ' + self.timeout`,fieldPath=`.timeout`
type ProbeSpec struct {
	// name identifies the probe in status and metrics.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule=`self.size() == 0 || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')`,message=`a probe name is a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit`
	// +required
	Name string `json:"name"`

	// process succeeds while a process of this name runs.
	// +optional
	Process *ProcessProbe `json:"process,omitempty"`
	// tcp succeeds when a TCP connection to the address opens.
	// +optional
	TCP *TCPProbe `json:"tcp,omitempty"`
	// http succeeds when a GET returns an expected status.
	// +optional
	HTTP *HTTPProbe `json:"http,omitempty"`
	// exec succeeds when the command exits 0. Unless the agent enables exec probes (chart value
	// probes.exec.enabled, run flag --enable-exec-probes), the command is never run and the
	// probe fails with a reason that says so.
	// +optional
	Exec *ExecProbe `json:"exec,omitempty"`
	// interface succeeds while the named link is up.
	// +optional
	Interface *InterfaceProbe `json:"interface,omitempty"`
	// file succeeds while the path exists.
	// +optional
	File *FileProbe `json:"file,omitempty"`

	// interval between checks, 10ms..1h (default 1s). keepalived's vrrp_script counts whole
	// seconds; probes go down to 10ms, VRRPv3's shortest advertisement interval: checking more
	// often costs a check each time for a failure seen a few milliseconds sooner.
	// +kubebuilder:default="1s"
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self) >= duration('10ms') && duration(self) <= duration('1h'))`,message=`interval must be between 10ms and 1h, e.g. 1s (a probe checks at most 100 times a second)`
	// +optional
	Interval *Duration `json:"interval,omitempty"`
	// timeout of one check, 1ms..the interval (default: the interval). Below 1ms a check would
	// fail from scheduling delays rather than from the service.
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self) >= duration('1ms'))`,message=`timeout must be at least 1ms and at most the interval, e.g. 500ms`
	// +optional
	Timeout *Duration `json:"timeout,omitempty"`
	// fall is how many consecutive failures make the probe unhealthy, 1..255 (default 1).
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule=`self >= 1 && self <= 255`,message=`fall must be 1..255 consecutive failures`
	// +optional
	Fall *int32 `json:"fall,omitempty"`
	// rise is how many consecutive successes make it healthy again, 1..255 (default 1).
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule=`self >= 1 && self <= 255`,message=`rise must be 1..255 consecutive successes`
	// +optional
	Rise *int32 `json:"rise,omitempty"`
	// weight, as keepalived: 0 puts the node in FAULT while the probe fails; a negative weight
	// is added to the priority while it fails; a positive weight is added while it succeeds.
	// -253..253; the effective priority is clamped to 1..254.
	// +kubebuilder:validation:XValidation:rule=`self >= -253 && self <= 253`,message=`weight must be -253..253 (0: FAULT while failing; negative: added while failing; positive: added while succeeding)`
	// +optional
	Weight int32 `json:"weight,omitempty"`
}

// ProcessProbe matches processes by name (the kernel's comm, as pgrep -x), and by executable
// when one is given.
type ProcessProbe struct {
	// name of the process as the kernel keeps it (as pgrep -x): 1..15 characters, no path.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule=`!self.contains('/')`,message=`give the process name as the kernel keeps it (as pgrep -x), not a path: e.g. haproxy`
	// +required
	Name string `json:"name"`
	// executable, if set, is the program the process must run, as the kernel reports it
	// (readlink /proc/PID/exe: absolute, symbolic links resolved), e.g. /usr/sbin/haproxy: a
	// process that merely has the name does not count. The agent must be allowed to read the
	// link: a process of another user needs CAP_SYS_PTRACE, which the chart's agent lacks.
	// +kubebuilder:validation:MaxLength=4095
	// +kubebuilder:validation:XValidation:rule=`self.startsWith('/') && !self.endsWith('/') && !self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..')`,message=`give the executable's absolute path as /proc/PID/exe shows it (no //, . or .. parts, no trailing /), e.g. /usr/sbin/haproxy`
	// +optional
	Executable string `json:"executable,omitempty"`
}

// TCPProbe connects to host:port.
type TCPProbe struct {
	// address as host:port, e.g. 127.0.0.1:8404 or [::1]:8404.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([^:\\[\\]]+|\\[[^\\[\\]]+\\]):[0-9]{1,5}$') && int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535`,message=`write host:port with a port 1..65535, e.g. 127.0.0.1:8404 or [::1]:8404`
	// +required
	Address string `json:"address"`
}

// HTTPProbe sends a GET.
//
// +kubebuilder:validation:XValidation:rule=`!has(self.tls) || !isURL(self.url) || url(self.url).getScheme() == 'https'`,message=`tls is only for an https:// url (a bearer token would travel in clear text over http://): change the url to https:// or remove tls`,fieldPath=`.tls`
type HTTPProbe struct {
	// url to GET: an absolute http:// or https:// URL with a host.
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule=`isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ""`,message=`write an absolute http:// or https:// URL with a host, e.g. http://127.0.0.1:8080/healthz`
	// +required
	URL string `json:"url"`
	// expectedStatus is the status code that means healthy; absent means any 2xx or 3xx.
	// +kubebuilder:validation:XValidation:rule=`self >= 100 && self <= 599`,message=`expectedStatus must be an HTTP status code 100..599, or be omitted for any 2xx or 3xx`
	// +optional
	ExpectedStatus *int32 `json:"expectedStatus,omitempty"`
	// tls holds the TLS settings and credentials of a probe of an https:// URL, for a server
	// that wants them, such as kube-apiserver's /readyz. It is refused with an http:// URL.
	// Without it, the server's certificate is verified against the system's roots and no
	// credentials are sent.
	// +optional
	TLS *HTTPProbeTLS `json:"tls,omitempty"`
}

// HTTPProbeTLS holds the TLS settings and credentials of an http probe with an https:// URL.
// The files are read by the agent, in its own container, at every check, and parsed again when
// their content changes, so that a rotated CA bundle, certificate or token is used from the
// next check on without a restart. A file that is missing, larger than its bound or malformed
// fails the check with a message naming its path, never its content. Whatever the settings,
// the probe speaks TLS 1.2 or later.
//
// +kubebuilder:validation:XValidation:rule=`has(self.certFile) == has(self.keyFile)`,message=`certFile and keyFile go together: set both (keyFile may name the certFile when that file holds the key too) or neither`
// +kubebuilder:validation:XValidation:rule=`!has(self.caFile) || !has(self.insecureSkipVerify) || !self.insecureSkipVerify`,message=`caFile and insecureSkipVerify exclude each other: keep caFile, which verifies the server, and remove insecureSkipVerify`
type HTTPProbeTLS struct {
	// caFile is the absolute path of a PEM bundle of CA certificates (at most 1 MiB), e.g.
	// /etc/kubernetes/pki/ca.crt. The server's certificate is verified against them instead
	// of the system's roots.
	// +kubebuilder:validation:MaxLength=4095
	// +kubebuilder:validation:XValidation:rule=`self.startsWith('/') && !self.endsWith('/') && !self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..')`,message=`give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/ca.crt`
	// +optional
	CAFile string `json:"caFile,omitempty"`
	// certFile is the absolute path of a PEM client certificate, optionally followed by its
	// intermediates (at most 1 MiB), which the probe presents to a server that asks for one.
	// It needs keyFile.
	// +kubebuilder:validation:MaxLength=4095
	// +kubebuilder:validation:XValidation:rule=`self.startsWith('/') && !self.endsWith('/') && !self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..')`,message=`give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/apiserver-kubelet-client.crt`
	// +optional
	CertFile string `json:"certFile,omitempty"`
	// keyFile is the absolute path of the PEM private key of certFile (at most 1 MiB). It may
	// be the certFile itself when that file holds both, as the kubelet's
	// kubelet-client-current.pem does. It needs certFile.
	// +kubebuilder:validation:MaxLength=4095
	// +kubebuilder:validation:XValidation:rule=`self.startsWith('/') && !self.endsWith('/') && !self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..')`,message=`give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/apiserver-kubelet-client.key`
	// +optional
	KeyFile string `json:"keyFile,omitempty"`
	// bearerTokenFile is the absolute path of a file holding a token (at most 16 KiB, white
	// space around it ignored), which the probe sends as "Authorization: Bearer <token>". The
	// token goes only over https, to the server the url names, and never appears in status,
	// events or logs.
	// +kubebuilder:validation:MaxLength=4095
	// +kubebuilder:validation:XValidation:rule=`self.startsWith('/') && !self.endsWith('/') && !self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..')`,message=`give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /var/run/secrets/probe/token`
	// +optional
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
	// serverName, if set, replaces the url's host as the name the probe sends in SNI and the
	// name (a DNS name or an IP address) the server's certificate must be valid for, e.g.
	// kubernetes.default.svc for a url of https://127.0.0.1:6443/readyz.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`isIP(self) || self.matches('^[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?([.][A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)*$')`,message=`give a DNS name or IP address that the server's certificate names (no zone, no IPv4-mapped IPv6 address), e.g. kubernetes.default.svc or 10.96.0.1`
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// insecureSkipVerify, if true, accepts whatever certificate the server presents. The probe
	// then proves nothing of the server's identity, and a token or client certificate goes to
	// whoever answers at the url's address. It is never implied, and it excludes caFile.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// ExecProbe runs a command directly, without a shell, with an empty environment.
type ExecProbe struct {
	// command is the argv, 1..32 elements; the first is the program's absolute path (there is no
	// shell and no PATH lookup).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1`,message=`give the command as an argv list, e.g. [/usr/bin/check, --quiet]`
	// +kubebuilder:validation:XValidation:rule=`self.size() == 0 || self[0].startsWith('/')`,messageExpression=`'give the program\'s absolute path as command[0] (there is no shell and no PATH lookup), e.g. /usr/bin/pgrep; got "' + self[0] + '"'`
	// +listType=atomic
	// +required
	Command []string `json:"command"`
}

// InterfaceProbe checks a link.
type InterfaceProbe struct {
	// name of the interface, e.g. eth0.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name InterfaceName `json:"name"`
}

// FileProbe checks that a path exists.
type FileProbe struct {
	// path to check, absolute.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule=`self.startsWith('/')`,message=`give an absolute path, e.g. /run/haproxy.ok`
	// +required
	Path string `json:"path"`
}

// VirtualIPStatus is the summary of what the members report: which node is MASTER and whether
// the group is healthy. Each node's own report (state, priority, probes, reason) is a
// VirtualIPMember: `kubectl get vipm --field-selector spec.virtualIP=NAME`.
type VirtualIPStatus struct {
	// observedGeneration is the generation the summary was written for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// master is the node that is MASTER now, empty if none.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Master string `json:"master,omitempty"`
	// conditions: Ready, DualMaster, NoMaster, ForeignRouter.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodeStatus is one node's report on a VirtualIP: the status of its VirtualIPMember.
type NodeStatus struct {
	// Name is the node's (the member's spec.node): not stored in status.
	Name string `json:"-"`
	// state is Initialize, Backup, Master or Fault.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +optional
	State string `json:"state,omitempty"`
	// priority is the effective priority now.
	// +optional
	Priority int32 `json:"priority,omitempty"`
	// interface carrying the adverts.
	// +kubebuilder:validation:MaxLength=15
	// +optional
	Interface string `json:"interface,omitempty"`
	// address is the source address of the node's adverts.
	// +kubebuilder:validation:MaxLength=45
	// +optional
	Address string `json:"address,omitempty"`
	// lastTransitionTime is when the state last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// reason says in one CamelCase word why the node is in this state (e.g. MasterDownTimer,
	// ProbeFailed, VRIDConflict), from a closed set (docs/design.md §7.8); message says it in
	// words.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z0-9]*$`
	// +optional
	Reason string `json:"reason,omitempty"`
	// message is a human-readable account of the state: what failed, what the probes do to the
	// priority, what the host is retrying.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
	// probes is the health of this node's probes.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Probes []ProbeStatus `json:"probes,omitempty"`
	// foreignRouters are the routers this node heard in the last 5 minutes advertising this
	// group's VRID on its interface with another list of addresses, most recent first. A router
	// of another VRRP group (another cluster, an old keepalived) using the same VRID on the
	// link is the usual cause: the ForeignRouter condition names it and says what to change.
	// A node of this group is listed too while its list differs from this node's, as during
	// an edit of spec.addresses, which the condition does not report.
	// +kubebuilder:validation:MaxItems=8
	// +listType=map
	// +listMapKey=address
	// +optional
	ForeignRouters []ForeignRouterStatus `json:"foreignRouters,omitempty"`
}

// ForeignRouterStatus is a router heard advertising the group's VRID with another list of
// addresses (RFC 5798 §7.1 and RFC 3768 §7.1 let a router check the list and log a mismatch).
type ForeignRouterStatus struct {
	// address is the source address of its adverts.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=45
	// +required
	Address string `json:"address"`
	// priority it last advertised, 0..255 (0: it was giving up MASTER).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	// +optional
	Priority int32 `json:"priority,omitempty"`
	// addresses it last advertised, in its order (at most the first 16).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=45
	// +listType=atomic
	// +optional
	Addresses []string `json:"addresses,omitempty"`
	// inElection is true when its adverts still take part in this group's election: it is a
	// member of the group (a node of this VirtualIP or one of spec.unicast.peers) or its list
	// shares an address with this group's. When false its adverts are dropped (counted in
	// kube_vrrp_packets_dropped_total{reason="address_mismatch"}).
	// +optional
	InElection bool `json:"inElection,omitempty"`
	// count of its adverts with another list of addresses this node has heard since it first
	// heard it (a router not heard for 5 minutes is forgotten, and counted afresh). Like
	// lastSeen, it is brought up to date when the entry is written for another reason, or
	// once a minute.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Count int64 `json:"count,omitempty"`
	// lastSeen is when its last such advert was heard, up to about a minute behind: the
	// entry is not rewritten at every advert. Routers are listed by address.
	// +required
	LastSeen metav1.Time `json:"lastSeen"`
}

// ProbeStatus is the health of one probe on one node.
type ProbeStatus struct {
	// name of the probe (spec.probes[].name).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// healthy is the probe's health after rise/fall; absent until its first check decided.
	// +optional
	Healthy *bool `json:"healthy,omitempty"`
	// lastTransitionTime is when the health last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// message is what the deciding check said (e.g. no process named "haproxy").
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// VirtualIP is a VRRP group: a set of nodes that elect one MASTER to hold shared addresses.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=vip
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="VRID",type=integer,JSONPath=`.spec.vrid`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Master",type=string,JSONPath=`.status.master`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.metadata.annotations.kubevrrp\.io/service`,description="The Service of type LoadBalancer the address is allocated to (namespace/name)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualIP struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualIPSpec   `json:"spec"`
	Status VirtualIPStatus `json:"status,omitempty"`
}

// VirtualIPList is a list of VirtualIPs.
//
// +kubebuilder:object:root=true
type VirtualIPList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualIP `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VirtualIP{}, &VirtualIPList{})
}
