package v1alpha1

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Bounds the VirtualIP API sets beyond the protocol's (those are in pkg/vrrp and pkg/probe:
// VRID, priorities, advertisement intervals, link and process names, probe timing and
// weights). Each has its one home here; the markers of the types repeat the numbers, since
// controller-gen reads markers as text, and pkg/desired's tests check the generated CRD against
// these constants. pkg/desired enforces them on objects and manifests (docs/design.md §1.1).
const (
	// MaxAddresses is the most entries of spec.addresses; MaxAddressLength bounds each string.
	MaxAddresses     = 64
	MaxAddressLength = 64
	// MaxPeers is the most entries of spec.unicast.peers; MaxIPLength bounds an IP address
	// written without prefix length (INET6_ADDRSTRLEN-1), as a peer or in status.
	MaxPeers    = 64
	MaxIPLength = 45
	// MaxNodes is the most entries of spec.nodes.
	MaxNodes = 256
	// MaxNameLength bounds Kubernetes object names (a DNS-1123 subdomain): nodes, Secrets and
	// their keys.
	MaxNameLength = validation.DNS1123SubdomainMaxLength
	// MaxProbes is the most entries of spec.probes; MaxProbeName bounds a probe's name (a
	// DNS-1123 label).
	MaxProbes    = 16
	MaxProbeName = validation.DNS1123LabelMaxLength
	// MaxPreemptDelay is the longest spec.preemptDelay.
	MaxPreemptDelay = time.Hour
	// MaxAnnounceCount bounds spec.announcements.count and refreshCount;
	// MaxAnnounceRepeatDelay bounds repeatDelay; MinAnnounceRefresh and MaxAnnounceRefresh
	// bound refreshInterval.
	MaxAnnounceCount       = 16
	MaxAnnounceRepeatDelay = time.Hour
	MinAnnounceRefresh     = time.Second
	MaxAnnounceRefresh     = 24 * time.Hour
	// MinNotifyTimeout and MaxNotifyTimeout bound spec.notify.timeout; DefaultNotifyTimeout is
	// its default. A notify command has at most MaxExecArgs elements of MaxExecArgLength.
	MinNotifyTimeout     = 100 * time.Millisecond
	MaxNotifyTimeout     = 10 * time.Minute
	DefaultNotifyTimeout = 10 * time.Second
	// MaxDurationLength bounds the text of a Duration.
	MaxDurationLength = 32
	// MaxExecArgs is the most elements of an exec probe's command, MaxExecArgLength the
	// longest element.
	MaxExecArgs      = 32
	MaxExecArgLength = 1024
	// MaxExecutableLength bounds a process probe's executable (PATH_MAX-1), MaxFilePathLength
	// a file probe's path.
	MaxExecutableLength = 4095
	MaxFilePathLength   = 4096
	// MaxHostPortLength bounds a tcp probe's host:port: a host of up to 253 bytes (a DNS name)
	// in brackets, a colon and a port.
	MaxHostPortLength = 261
	// MaxURLLength bounds an http probe's URL.
	MaxURLLength = 2048
	// MaxTLSFileLength bounds the paths of an http probe's CA, client certificate, key and
	// bearer token files (PATH_MAX-1); MaxServerNameLength its serverName (a DNS name).
	MaxTLSFileLength    = 4095
	MaxServerNameLength = validation.DNS1123SubdomainMaxLength

	// MaxPoolEntries is the most entries of a VirtualIPPool's ipv4.addresses or
	// ipv6.addresses; MaxPoolEntryLength4 and MaxPoolEntryLength6 bound each: the longest range,
	// two addresses and a '-' (255.255.255.255-255.255.255.255; two IPv6 addresses of 39).
	MaxPoolEntries      = 16
	MaxPoolEntryLength4 = 31
	MaxPoolEntryLength6 = 79
	// MaxPoolNamespaces is the most entries of a pool's namespaces, each a DNS-1123 label.
	MaxPoolNamespaces = 64
	// MaxPoolNameLength bounds a pool's name: it is the value of its VirtualIPs' label
	// kubevrrp.io/pool.
	MaxPoolNameLength = validation.LabelValueMaxLength
)

// Bounds of status, which the agents write: whoever fills a field truncates to them.
const (
	// MaxConditions is the most entries of status.conditions.
	MaxConditions = 16
	// MaxStateLength bounds a member's status.state.
	MaxStateLength = 32
	// MaxMessageLength bounds the message of a node's entry and a probe's message.
	MaxMessageLength = 1024
	// MaxReasonLength bounds the reason of a node's entry: one CamelCase word.
	MaxReasonLength = 64
	// MaxForeignRouters is the most entries of a member's status.foreignRouters, and
	// MaxForeignAddresses the most addresses kept of each.
	MaxForeignRouters   = 8
	MaxForeignAddresses = 16
)
