package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualIPSpec describes one VRRP group: which nodes take part, the addresses they share and
// how they elect the node that holds them.
type VirtualIPSpec struct {
	// vrid is the Virtual Router Identifier shared by every member of the group, as keepalived's
	// virtual_router_id. It must be unique per interface and address family on the LAN.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
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
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[^/\s:]*$`
	// +optional
	Interface string `json:"interface,omitempty"`

	// addresses are the virtual addresses the MASTER holds, as CIDR ("192.0.2.10/24") or bare IP
	// (a bare address is a /32 or /128). All of one family.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +required
	Addresses []string `json:"addresses"`

	// advertisementInterval is how often the MASTER advertises. Version 3: 10ms..40.95s in steps
	// of 10ms (default 100ms). Version 2: whole seconds 1s..255s (default 1s).
	// +optional
	AdvertisementInterval *metav1.Duration `json:"advertisementInterval,omitempty"`

	// priority of every selected node, 1..254 (default 100); 255 is reserved for the owner of
	// the addresses. nodes[] overrides it per node.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +optional
	Priority *int32 `json:"priority,omitempty"`

	// nodes overrides settings per node, e.g. a higher priority for the preferred MASTER.
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=name
	// +optional
	Nodes []NodeOverride `json:"nodes,omitempty"`

	// nodeSelector selects the nodes that run an instance of this group; empty selects every
	// node that runs the agent.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// preempt lets a higher-priority node take the addresses back from a lower-priority MASTER
	// (default true). false is keepalived's nopreempt.
	// +optional
	Preempt *bool `json:"preempt,omitempty"`

	// preemptDelay holds off a preemption after the node starts or recovers (keepalived's
	// preempt_delay).
	// +optional
	PreemptDelay *metav1.Duration `json:"preemptDelay,omitempty"`

	// accept makes a non-owner MASTER accept packets addressed to the virtual addresses
	// (RFC 5798 Accept_Mode). Default true, as keepalived without vrrp_strict.
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
	// +optional
	ChecksumMode string `json:"checksumMode,omitempty"`

	// probes track the health of local services; see ProbeSpec.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Probes []ProbeSpec `json:"probes,omitempty"`
}

// NodeOverride sets per-node values of a VirtualIP.
type NodeOverride struct {
	// name of the Node.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// priority of this node, 1..254 (255 only for the owner of the addresses).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +optional
	Priority *int32 `json:"priority,omitempty"`

	// interface overrides spec.interface on this node.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[^/\s:]*$`
	// +optional
	Interface string `json:"interface,omitempty"`
}

// UnicastSpec configures unicast adverts.
type UnicastSpec struct {
	// fromNodes adds the addresses of the other selected nodes to the peers (default true).
	// +optional
	FromNodes *bool `json:"fromNodes,omitempty"`

	// peers are extra peer addresses, e.g. an existing keepalived host. A node skips its own
	// addresses, so one list may name every member.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=45
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
type ProbeSpec struct {
	// name identifies the probe in status and metrics.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
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
	// exec succeeds when the command exits 0. Refused unless the agent enables exec probes.
	// +optional
	Exec *ExecProbe `json:"exec,omitempty"`
	// interface succeeds while the named link is up.
	// +optional
	Interface *InterfaceProbe `json:"interface,omitempty"`
	// file succeeds while the path exists.
	// +optional
	File *FileProbe `json:"file,omitempty"`

	// interval between checks (default 1s).
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// timeout of one check (default: the interval).
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// fall is how many consecutive failures make the probe unhealthy (default 1).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +optional
	Fall *int32 `json:"fall,omitempty"`
	// rise is how many consecutive successes make it healthy again (default 1).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +optional
	Rise *int32 `json:"rise,omitempty"`
	// weight, as keepalived: 0 puts the node in FAULT while the probe fails; a negative weight
	// is added to the priority while it fails; a positive weight is added while it succeeds.
	// +kubebuilder:validation:Minimum=-253
	// +kubebuilder:validation:Maximum=253
	// +optional
	Weight int32 `json:"weight,omitempty"`
}

// ProcessProbe matches processes by name (the kernel's comm, as pgrep -x).
type ProcessProbe struct {
	// name of the process, at most 15 characters as the kernel keeps it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +required
	Name string `json:"name"`
}

// TCPProbe connects to host:port.
type TCPProbe struct {
	// address as host:port.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=261
	// +required
	Address string `json:"address"`
}

// HTTPProbe sends a GET.
type HTTPProbe struct {
	// url to GET (http or https).
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +required
	URL string `json:"url"`
	// expectedStatus is the status code that means healthy; absent means any 2xx or 3xx.
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	// +optional
	ExpectedStatus *int32 `json:"expectedStatus,omitempty"`
}

// ExecProbe runs a command directly, without a shell, with an empty environment.
type ExecProbe struct {
	// command is the argv; the first element is an absolute path.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +listType=atomic
	// +required
	Command []string `json:"command"`
}

// InterfaceProbe checks a link.
type InterfaceProbe struct {
	// name of the interface.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +required
	Name string `json:"name"`
}

// FileProbe checks that a path exists.
type FileProbe struct {
	// path to check.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Path string `json:"path"`
}

// VirtualIPStatus is what the agents observe.
type VirtualIPStatus struct {
	// observedGeneration is the generation the aggregator last saw.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// master is the node that is MASTER now, empty if none.
	// +optional
	Master string `json:"master,omitempty"`
	// nodes has one entry per participating node, written by that node's agent.
	// +listType=map
	// +listMapKey=name
	// +optional
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// conditions: Ready, DualMaster, NoMaster.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodeStatus is one node's view of the group.
type NodeStatus struct {
	// name of the node.
	// +required
	Name string `json:"name"`
	// state is Initialize, Backup, Master or Fault.
	// +optional
	State string `json:"state,omitempty"`
	// priority is the effective priority now.
	// +optional
	Priority int32 `json:"priority,omitempty"`
	// interface carrying the adverts.
	// +optional
	Interface string `json:"interface,omitempty"`
	// address is the source address of the node's adverts.
	// +optional
	Address string `json:"address,omitempty"`
	// lastTransitionTime is when the state last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// reason says why the node is in this state.
	// +optional
	Reason string `json:"reason,omitempty"`
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
