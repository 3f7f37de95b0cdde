package keepalived

import (
	"net/netip"
	"time"
)

// Config is the VRRP part of a keepalived configuration. Fields hold what the file says;
// keepalived's defaults are applied by Convert, not here (zero means "not set" unless a
// field says otherwise).
type Config struct {
	// File is the main file and Files every file read, as shown in positions.
	File  string
	Files []string

	Global         GlobalDefs
	Scripts        []*Script // vrrp_script, in file order
	TrackProcesses []*TrackProcess
	Instances      []*Instance
	SyncGroups     []*SyncGroup

	// Ignored are top-level sections and keywords that are read but not converted (LVS
	// virtual_server, bfd_instance, static_routes, ...).
	Ignored []Directive
	// Warnings are problems found while reading: unknown keywords, repeated keywords,
	// conditional lines decided without a config id.
	Warnings []Warning

	// secrets are the secrets Decode found in the block tree (auth_pass values, credentials
	// in commands), kept out of every message about this configuration (see redact.go).
	secrets []string
}

// Directive is a statement kept as written, for what is not interpreted.
type Directive struct {
	Keyword  string
	Args     []string
	Pos      Pos
	HasBlock bool
}

// GlobalDefs is the global_defs section.
type GlobalDefs struct {
	Pos                  Pos
	RouterID             string
	EnableScriptSecurity bool
	ScriptUser           string
	ScriptGroup          string
	VRRPVersion          int // 2, 3, or 0 when not set (keepalived's default is 2)
	VRRPStrict           bool
	// Garp holds the vrrp_garp_master_* defaults of every instance, with vrrp_min_garp applied
	// where it stands among them (as keepalived applies it).
	Garp Garp
	// Ignored are the other global_defs keywords.
	Ignored []Directive
	// Keys is where each interpreted keyword was set.
	Keys map[string]Pos
}

// Script is a vrrp_script.
type Script struct {
	Name string
	Pos  Pos
	// Command is the script string as keepalived reads it: the first argument of "script".
	// keepalived execs it directly, splitting it at unquoted whitespace (no shell).
	Command string
	// ExtraArgs are words written after an unquoted script path. keepalived ignores them.
	ExtraArgs []string
	Interval  time.Duration // 0: not set (keepalived's default is 1s)
	Timeout   time.Duration // 0: not set (the interval)
	Weight    int
	WeightSet bool
	Reverse   bool
	Fall      int // 0: not set (1)
	Rise      int // 0: not set (1)
	InitFail  bool
	User      string
	Group     string
	Keys      map[string]Pos
}

// TrackProcess is a vrrp_track_process.
type TrackProcess struct {
	Name           string
	Pos            Pos
	Process        string
	Params         []string
	ParamMatch     string
	Weight         int
	WeightSet      bool
	Reverse        bool
	Quorum         int // 0: not set (1)
	QuorumMax      int
	QuorumMaxSet   bool
	ForkDelay      time.Duration
	TerminateDelay time.Duration
	FullCommand    bool
	Keys           map[string]Pos
}

// Instance is a vrrp_instance.
type Instance struct {
	Name             string
	Pos              Pos
	State            string // MASTER, BACKUP or "" when not set
	Interface        string
	VRID             int
	Priority         int           // 0: not set (100, or 255 with state MASTER)
	AdvertInt        time.Duration // 0: not set (1s)
	Version          int           // 0: not set (global vrrp_version)
	NoPreempt        bool
	PreemptDelay     time.Duration
	Accept           *bool // accept / no_accept
	StrictMode       *bool // strict_mode; nil: global vrrp_strict
	DontTrackPrimary bool
	Auth             *Auth
	VIPs             []VIP
	ExcludedVIPs     []VIP
	UnicastSrcIP     netip.Addr
	UnicastPeers     []UnicastPeer
	TrackScripts     []TrackRef
	TrackInterfaces  []TrackRef
	TrackProcesses   []TrackRef
	Notify           []Notify
	// VMAC is use_vmac (nil when not set).
	VMAC *VMAC
	// Garp holds this instance's own garp_master_* settings; Global.Garp has the defaults.
	Garp Garp
	// Ignored are the keywords of vrrp_instance that Convert cannot express (use_vmac_addr,
	// garp_lower_prio_*, virtual_routes, mcast_src_ip, ...).
	Ignored []Directive
	Keys    map[string]Pos
}

// VMAC is use_vmac [NAME] [MAC].
type VMAC struct {
	Pos  Pos
	Name string // the macvlan's name, "" when not given
	MAC  string // the MAC address given, "" when not given
}

// Garp is keepalived's timing of gratuitous ARPs / unsolicited NAs: garp_master_* in a
// vrrp_instance, vrrp_garp_master_* in global_defs. A value that is not Set is keepalived's
// default (see Convert).
type Garp struct {
	Delay         GarpValue // garp_master_delay: seconds to the second burst, 0 for none
	Repeat        GarpValue // garp_master_repeat: messages per address in a burst
	Refresh       GarpValue // garp_master_refresh: seconds between refreshes, 0 for none
	RefreshRepeat GarpValue // garp_master_refresh_repeat: messages per address at a refresh
}

// GarpValue is one setting of Garp, with the keyword and the place that set it.
type GarpValue struct {
	Set     bool
	Value   int
	Keyword string
	Pos     Pos
}

// Auth is the authentication block.
type Auth struct {
	Pos  Pos
	Type string // PASS or AH
	Pass string
	// PassPos is where auth_pass was set (zero when it was not).
	PassPos Pos
}

// VIP is one virtual_ipaddress entry.
type VIP struct {
	Pos Pos
	// Address is the address as written without a range ("192.0.2.10/24", "2001:db8::1").
	Address string
	Prefix  netip.Prefix // Bits is the full length when no mask was written
	Brd     string
	Dev     string
	Scope   string
	Label   string
	Peer    string
	// Flags are the other options (home, -nodad, noprefixroute, no_track, use_vmac, ...).
	Flags []string
}

// UnicastPeer is one unicast_peer entry.
type UnicastPeer struct {
	Pos    Pos
	Addr   netip.Addr
	MinTTL int // -1: not set
	MaxTTL int // -1: not set
}

// TrackRef is one entry of track_script, track_interface or track_process.
type TrackRef struct {
	Pos       Pos
	Name      string
	Weight    int
	WeightSet bool
	Reverse   bool
}

// Notify is a notify script (notify, notify_master, ...).
type Notify struct {
	Pos     Pos
	Keyword string
	Command string
	// Args are the words after the command, which keepalived reads as the user and group to
	// run it as.
	Args []string
}

// SyncGroup is a vrrp_sync_group.
type SyncGroup struct {
	Name            string
	Pos             Pos
	Group           []string
	GroupPos        Pos
	TrackScripts    []TrackRef
	TrackInterfaces []TrackRef
	TrackProcesses  []TrackRef
	Notify          []Notify
	// TrackingWeight is sync_group_tracking_weight: member weights are kept.
	TrackingWeight bool
	Ignored        []Directive
	Keys           map[string]Pos
}
