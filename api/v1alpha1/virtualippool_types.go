package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Service side of VirtualIPPools (docs/design.md §7.12): the load balancer class the
// controller serves, the annotations a Service may carry, and the labels that tie each
// VirtualIP the controller creates to its Service and pool.
const (
	// LoadBalancerClass is the spec.loadBalancerClass of the Services of type LoadBalancer that
	// kube-vrrp serves (and, when the controller is told to, those that set none).
	LoadBalancerClass = "kubevrrp.io/vrrp"
	// AnnotationPool on a Service names the VirtualIPPool to allocate from.
	AnnotationPool = "kubevrrp.io/pool"
	// AnnotationLoadBalancerIPs on a Service requests its addresses, at most one per family,
	// separated by commas: "198.51.100.10" or "198.51.100.10,2001:db8::10".
	// spec.loadBalancerIP (deprecated by Kubernetes) is honoured too.
	AnnotationLoadBalancerIPs = "kubevrrp.io/load-balancer-ips"

	// LabelServiceNamespace, LabelServiceName and LabelServiceUID name the Service a VirtualIP
	// was allocated to; LabelPool the pool it was allocated from. The controller owns every
	// VirtualIP with LabelServiceUID (a namespaced Service cannot be the owner reference of a
	// cluster-scoped object: the garbage collector would never resolve it).
	LabelServiceNamespace = "kubevrrp.io/service-namespace"
	LabelServiceName      = "kubevrrp.io/service-name"
	LabelServiceUID       = "kubevrrp.io/service-uid"
	LabelPool             = "kubevrrp.io/pool"

	// AnnotationService on a VirtualIP the controller allocated is its Service as
	// "namespace/name", for `kubectl get vip` (the labels above stay what the controller reads).
	AnnotationService = "kubevrrp.io/service"
	// AnnotationTemplateMembers on a VirtualIP of a Service with externalTrafficPolicy: Local
	// keeps the members it had from the pool's template (its nodeSelector and nodes, as JSON)
	// while the controller narrows them to the nodes with a ready endpoint; the controller puts
	// them back, and removes it, when the Service returns to Cluster (docs/design.md §7.12).
	AnnotationTemplateMembers = "kubevrrp.io/template-members"

	// ServiceConditionAllocated is the condition the controller keeps in the status of each
	// Service it serves: True once every family of the Service has its address, False with a
	// reason (PoolExhausted, AddressNotInPool, AddressInUse, ...) and what to change.
	ServiceConditionAllocated = "kubevrrp.io/Allocated"
)

// VirtualIPPoolSpec is a range of addresses and VRIDs per family, and the VirtualIP that each
// allocation becomes.
//
// +kubebuilder:validation:XValidation:rule=`has(self.ipv4) || has(self.ipv6)`,message=`give the pool its addresses: set ipv4, ipv6 or both`
// +kubebuilder:validation:XValidation:rule=`!has(self.ipv4) || has(self.ipv4.prefixLength) || has(self.template.interface)`,message=`set ipv4.prefixLength to the prefix length of the subnet the addresses are on (24: 198.18.0.100 becomes 198.18.0.100/24, held on the interface with a node address in that subnet), or name the interface in template.interface`,fieldPath=`.ipv4.prefixLength`,reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule=`!has(self.ipv6) || has(self.ipv6.prefixLength) || has(self.template.interface)`,message=`set ipv6.prefixLength to the prefix length of the subnet the addresses are on (64: 2001:db8::100 becomes 2001:db8::100/64, held on the interface with a node address in that subnet), or name the interface in template.interface`,fieldPath=`.ipv6.prefixLength`,reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule=`!has(self.ipv6) || !has(self.template.version) || self.template.version == 3`,message=`VRRPv2 carries only IPv4: set template.version: 3 for a pool with ipv6 addresses, or give the IPv6 addresses a pool of their own`,fieldPath=`.template.version`
// +kubebuilder:validation:XValidation:rule=`!has(self.template.unicast) || !has(self.template.unicast.peers) || self.template.unicast.peers.all(p, (!has(self.ipv4) || self.ipv4.addresses.all(e, !((isCIDR(e) || (e.split('-').size() == 2 && isIP(e.split('-')[0]) && isIP(e.split('-')[1]))) && (isCIDR(e) ? cidr(e).ip().family() == 4 : (ip(e.split('-')[0]).family() == 4 && ip(e.split('-')[1]).family() == 4))) || !(isIP(p) && ip(p).family() == 4 && (isCIDR(e) ? cidr(e).containsIP(p) : ((int(e.split('-')[0].split('.')[0]) * 16777216 + int(e.split('-')[0].split('.')[1]) * 65536 + int(e.split('-')[0].split('.')[2]) * 256 + int(e.split('-')[0].split('.')[3])) <= (int(p.split('.')[0]) * 16777216 + int(p.split('.')[1]) * 65536 + int(p.split('.')[2]) * 256 + int(p.split('.')[3])) && (int(p.split('.')[0]) * 16777216 + int(p.split('.')[1]) * 65536 + int(p.split('.')[2]) * 256 + int(p.split('.')[3])) <= (int(e.split('-')[1].split('.')[0]) * 16777216 + int(e.split('-')[1].split('.')[1]) * 65536 + int(e.split('-')[1].split('.')[2]) * 256 + int(e.split('-')[1].split('.')[3]))))))) && (!has(self.ipv6) || self.ipv6.addresses.all(e, !((isCIDR(e) || (e.split('-').size() == 2 && isIP(e.split('-')[0]) && isIP(e.split('-')[1]))) && (isCIDR(e) ? cidr(e).ip().family() == 6 : (ip(e.split('-')[0]).family() == 6 && ip(e.split('-')[1]).family() == 6)) && !e.contains('.')) || !(isIP(p) && ip(p).family() == 6 && !p.contains('.') && (isCIDR(e) ? cidr(e).containsIP(p) : (cidr(e.split('-')[0] + '/112').containsIP(p) && ('0000' + e.split('-')[0].substring(e.split('-')[0].lastIndexOf(':') + 1)).substring(size(e.split('-')[0].substring(e.split('-')[0].lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + p.substring(p.lastIndexOf(':') + 1)).substring(size(p.substring(p.lastIndexOf(':') + 1))).lowerAscii() && ('0000' + p.substring(p.lastIndexOf(':') + 1)).substring(size(p.substring(p.lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + e.split('-')[1].substring(e.split('-')[1].lastIndexOf(':') + 1)).substring(size(e.split('-')[1].substring(e.split('-')[1].lastIndexOf(':') + 1))).lowerAscii()))))))`,messageExpression=`'template.unicast.peers lists the routers\' own addresses and cannot hold an address of the pool; got ' + self.template.unicast.peers.join(', ')`,fieldPath=`.template.unicast.peers`
type VirtualIPPoolSpec struct {
	// ipv4 are the pool's IPv4 addresses and the VRIDs they get.
	// +optional
	IPv4 *IPv4Pool `json:"ipv4,omitempty"`
	// ipv6 are the pool's IPv6 addresses and the VRIDs they get.
	// +optional
	IPv6 *IPv6Pool `json:"ipv6,omitempty"`

	// template is the VirtualIP each address becomes: who runs it (nodeSelector or nodes), how
	// they elect and what they probe. The controller adds the vrid and the address, and of
	// template.unicast.peers only those of the address's family. For a Service with
	// externalTrafficPolicy: Local it narrows the members to the nodes with a ready endpoint of
	// the Service (kubernetes.io/hostname In [...] ANDed with nodeSelector, or the nodes listed
	// that have one), and to none while there is none.
	// +required
	Template VirtualIPTemplate `json:"template"`

	// autoAssign lets Services that name no pool and request no address get one from this pool
	// (default true). false: only a Service that names the pool (the kubevrrp.io/pool
	// annotation) or requests one of its addresses gets one.
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// namespaces, if set, are the only namespaces whose Services may get an address of the pool,
	// also when they name it or request one of its addresses. At most 64.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule=`self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')`,message=`a namespace name is a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit`
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// serviceSelector, if set, selects by label the only Services that may get an address of the
	// pool, also when they name it or request one of its addresses.
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])`,message=`a matchExpressions operator is In, NotIn, Exists or DoesNotExist`
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || has(e.values) && e.values.size() > 0)`,message=`matchExpressions with In or NotIn need values`
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || e.values.size() == 0)`,message=`matchExpressions with Exists or DoesNotExist take no values`
	// +kubebuilder:validation:XValidation:rule=`!has(self.matchLabels) || self.matchLabels.all(k, !format.qualifiedName().validate(k).hasValue())`,message=`matchLabels keys are label keys: an optional DNS subdomain prefix and '/', then a name of at most 63 characters (letters, digits, '-', '_', '.')`
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
}

// IPv4Pool is the IPv4 part of a pool: its addresses, the prefix length they get and their
// VRIDs. The n-th address of the pool (entries in order, each from its first address) gets
// the n-th VRID of vrids, so the pool offers as many addresses as the shorter of the two
// has (docs/design.md §7.12).
type IPv4Pool struct {
	// addresses are 1..16 entries, each a CIDR by its network address (198.18.0.96/28) or a
	// range first-last (198.18.0.100-198.18.0.120), no two sharing an address.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=31
	// +kubebuilder:validation:items:XValidation:rule=`(isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1])))`,message=`write a CIDR such as 198.18.0.0/28 or a range such as 198.18.0.100-198.18.0.120 (first-last; no spaces, zones or leading zeros)`
	// +kubebuilder:validation:items:XValidation:rule=`!(isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) || (isCIDR(self) ? cidr(self).ip().family() == 4 : (ip(self.split('-')[0]).family() == 4 && ip(self.split('-')[1]).family() == 4))`,messageExpression=`'ipv4.addresses holds IPv4 addresses only: move ' + self + ' to ipv6.addresses'`
	// +kubebuilder:validation:items:XValidation:rule=`!isCIDR(self) || cidr(self).ip() == cidr(self).masked().ip()`,message=`write a CIDR by its network address, its host bits zero (198.18.0.0/28, not 198.18.0.5/28); a single address is 198.18.0.5/32`
	// +kubebuilder:validation:items:XValidation:rule=`isCIDR(self) || !((isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) && (isCIDR(self) ? cidr(self).ip().family() == 4 : (ip(self.split('-')[0]).family() == 4 && ip(self.split('-')[1]).family() == 4))) || (int(self.split('-')[0].split('.')[0]) * 16777216 + int(self.split('-')[0].split('.')[1]) * 65536 + int(self.split('-')[0].split('.')[2]) * 256 + int(self.split('-')[0].split('.')[3])) <= (int(self.split('-')[1].split('.')[0]) * 16777216 + int(self.split('-')[1].split('.')[1]) * 65536 + int(self.split('-')[1].split('.')[2]) * 256 + int(self.split('-')[1].split('.')[3]))`,messageExpression=`'a range goes from its first to its last address: write ' + self.split('-')[1] + '-' + self.split('-')[0]`
	// +kubebuilder:validation:items:XValidation:rule=`!((isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) && (isCIDR(self) ? cidr(self).ip().family() == 4 : (ip(self.split('-')[0]).family() == 4 && ip(self.split('-')[1]).family() == 4))) || !['0.0.0.0/32', '127.0.0.0/8', '224.0.0.0/4', '255.255.255.255/32'].exists(b, (isCIDR(self) ? cidr(self).containsIP(b.split('/')[0]) : ((int(self.split('-')[0].split('.')[0]) * 16777216 + int(self.split('-')[0].split('.')[1]) * 65536 + int(self.split('-')[0].split('.')[2]) * 256 + int(self.split('-')[0].split('.')[3])) <= (int(b.split('/')[0].split('.')[0]) * 16777216 + int(b.split('/')[0].split('.')[1]) * 65536 + int(b.split('/')[0].split('.')[2]) * 256 + int(b.split('/')[0].split('.')[3])) && (int(b.split('/')[0].split('.')[0]) * 16777216 + int(b.split('/')[0].split('.')[1]) * 65536 + int(b.split('/')[0].split('.')[2]) * 256 + int(b.split('/')[0].split('.')[3])) <= (int(self.split('-')[1].split('.')[0]) * 16777216 + int(self.split('-')[1].split('.')[1]) * 65536 + int(self.split('-')[1].split('.')[2]) * 256 + int(self.split('-')[1].split('.')[3])))) || cidr(b).containsIP((isCIDR(self) ? self.split('/')[0] : self.split('-')[0])))`,message=`the pool's addresses are unicast: an entry must not take in the unspecified, loopback, multicast or broadcast addresses (0.0.0.0/32, 127.0.0.0/8, 224.0.0.0/4, 255.255.255.255/32)`
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1`,message=`list at least one CIDR or range, e.g. ["198.18.0.100-198.18.0.120"]`
	// +kubebuilder:validation:XValidation:rule=`self.all(a, self.all(b, a == b || !((isCIDR(a) || (a.split('-').size() == 2 && isIP(a.split('-')[0]) && isIP(a.split('-')[1]))) && (isCIDR(a) ? cidr(a).ip().family() == 4 : (ip(a.split('-')[0]).family() == 4 && ip(a.split('-')[1]).family() == 4))) || !((isCIDR(b) || (b.split('-').size() == 2 && isIP(b.split('-')[0]) && isIP(b.split('-')[1]))) && (isCIDR(b) ? cidr(b).ip().family() == 4 : (ip(b.split('-')[0]).family() == 4 && ip(b.split('-')[1]).family() == 4))) || !((isCIDR(a) ? cidr(a).containsIP((isCIDR(b) ? b.split('/')[0] : b.split('-')[0])) : ((int(a.split('-')[0].split('.')[0]) * 16777216 + int(a.split('-')[0].split('.')[1]) * 65536 + int(a.split('-')[0].split('.')[2]) * 256 + int(a.split('-')[0].split('.')[3])) <= (int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[0]) * 16777216 + int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[1]) * 65536 + int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[2]) * 256 + int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[3])) && (int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[0]) * 16777216 + int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[1]) * 65536 + int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[2]) * 256 + int((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).split('.')[3])) <= (int(a.split('-')[1].split('.')[0]) * 16777216 + int(a.split('-')[1].split('.')[1]) * 65536 + int(a.split('-')[1].split('.')[2]) * 256 + int(a.split('-')[1].split('.')[3])))) || (isCIDR(b) ? cidr(b).containsIP((isCIDR(a) ? a.split('/')[0] : a.split('-')[0])) : ((int(b.split('-')[0].split('.')[0]) * 16777216 + int(b.split('-')[0].split('.')[1]) * 65536 + int(b.split('-')[0].split('.')[2]) * 256 + int(b.split('-')[0].split('.')[3])) <= (int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[0]) * 16777216 + int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[1]) * 65536 + int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[2]) * 256 + int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[3])) && (int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[0]) * 16777216 + int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[1]) * 65536 + int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[2]) * 256 + int((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).split('.')[3])) <= (int(b.split('-')[1].split('.')[0]) * 16777216 + int(b.split('-')[1].split('.')[1]) * 65536 + int(b.split('-')[1].split('.')[2]) * 256 + int(b.split('-')[1].split('.')[3])))))))`,messageExpression=`'each address is in one entry of the pool, but entries of ' + self.join(', ') + ' overlap: merge them or make them disjoint'`
	// +listType=set
	// +required
	Addresses []string `json:"addresses"`

	// prefixLength of the subnet the addresses are on, 1..32: a VirtualIP gets its address with
	// it (198.18.0.100/24), and the nodes hold it on their interface with an address in that
	// subnet. Without it the address is a /32, and template.interface must name the interface.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	// +optional
	PrefixLength *int32 `json:"prefixLength,omitempty"`

	// vrids are the VRIDs of the pool's IPv4 VirtualIPs, first..last: the n-th address gets
	// the n-th VRID. They must not overlap the vrids of another pool's ipv4; a VRID that a
	// VirtualIP of IPv4 addresses already has is skipped, with its address.
	// +required
	VRIDs VRIDRange `json:"vrids"`
}

// IPv6Pool is the IPv6 part of a pool: its addresses, the prefix length they get and their
// VRIDs, as IPv4Pool.
type IPv6Pool struct {
	// addresses are 1..16 entries, each a CIDR by its network address (2001:db8::/120) or a
	// range first-last (2001:db8::100-2001:db8::1ff), no two sharing an address.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=79
	// +kubebuilder:validation:items:XValidation:rule=`(isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1])))`,message=`write a CIDR such as 2001:db8::/120 or a range such as 2001:db8::100-2001:db8::1ff (first-last; no spaces, zones or leading zeros)`
	// +kubebuilder:validation:items:XValidation:rule=`!(isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) || !self.contains('.')`,message=`write IPv6 addresses in hex only: 2001:db8::c000:205, not 2001:db8::192.0.2.5`
	// +kubebuilder:validation:items:XValidation:rule=`isCIDR(self) || !((isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) && (isCIDR(self) ? cidr(self).ip().family() == 6 : (ip(self.split('-')[0]).family() == 6 && ip(self.split('-')[1]).family() == 6)) && !self.contains('.')) || cidr(self.split('-')[0] + '/112').containsIP(self.split('-')[1])`,message=`an IPv6 range lies in one /112 (its addresses differ only in the last group, as 2001:db8::100-2001:db8::1ff): write a larger one as a CIDR`
	// +kubebuilder:validation:items:XValidation:rule=`!(isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) || (isCIDR(self) ? cidr(self).ip().family() == 6 : (ip(self.split('-')[0]).family() == 6 && ip(self.split('-')[1]).family() == 6))`,messageExpression=`'ipv6.addresses holds IPv6 addresses only: move ' + self + ' to ipv4.addresses'`
	// +kubebuilder:validation:items:XValidation:rule=`!isCIDR(self) || cidr(self).ip() == cidr(self).masked().ip()`,message=`write a CIDR by its network address, its host bits zero (2001:db8::/120, not 2001:db8::5/120); a single address is 2001:db8::5/128`
	// +kubebuilder:validation:items:XValidation:rule=`isCIDR(self) || !((isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) && (isCIDR(self) ? cidr(self).ip().family() == 6 : (ip(self.split('-')[0]).family() == 6 && ip(self.split('-')[1]).family() == 6)) && !self.contains('.')) || !cidr(self.split('-')[0] + '/112').containsIP(self.split('-')[1]) || ('0000' + self.split('-')[0].substring(self.split('-')[0].lastIndexOf(':') + 1)).substring(size(self.split('-')[0].substring(self.split('-')[0].lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + self.split('-')[1].substring(self.split('-')[1].lastIndexOf(':') + 1)).substring(size(self.split('-')[1].substring(self.split('-')[1].lastIndexOf(':') + 1))).lowerAscii()`,messageExpression=`'a range goes from its first to its last address: write ' + self.split('-')[1] + '-' + self.split('-')[0]`
	// +kubebuilder:validation:items:XValidation:rule=`!((isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))) && (isCIDR(self) ? cidr(self).ip().family() == 6 : (ip(self.split('-')[0]).family() == 6 && ip(self.split('-')[1]).family() == 6)) && !self.contains('.')) || !['::/128', '::1/128', 'ff00::/8'].exists(b, (isCIDR(self) ? cidr(self).containsIP(b.split('/')[0]) : (cidr(self.split('-')[0] + '/112').containsIP(b.split('/')[0]) && ('0000' + self.split('-')[0].substring(self.split('-')[0].lastIndexOf(':') + 1)).substring(size(self.split('-')[0].substring(self.split('-')[0].lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + b.split('/')[0].substring(b.split('/')[0].lastIndexOf(':') + 1)).substring(size(b.split('/')[0].substring(b.split('/')[0].lastIndexOf(':') + 1))).lowerAscii() && ('0000' + b.split('/')[0].substring(b.split('/')[0].lastIndexOf(':') + 1)).substring(size(b.split('/')[0].substring(b.split('/')[0].lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + self.split('-')[1].substring(self.split('-')[1].lastIndexOf(':') + 1)).substring(size(self.split('-')[1].substring(self.split('-')[1].lastIndexOf(':') + 1))).lowerAscii())) || cidr(b).containsIP((isCIDR(self) ? self.split('/')[0] : self.split('-')[0])))`,message=`the pool's addresses are unicast: an entry must not take in the unspecified, loopback, multicast or broadcast addresses (::/128, ::1/128, ff00::/8)`
	// +kubebuilder:validation:XValidation:rule=`self.size() >= 1`,message=`list at least one CIDR or range, e.g. ["2001:db8::100-2001:db8::1ff"]`
	// +kubebuilder:validation:XValidation:rule=`self.all(a, self.all(b, a == b || !((isCIDR(a) || (a.split('-').size() == 2 && isIP(a.split('-')[0]) && isIP(a.split('-')[1]))) && (isCIDR(a) ? cidr(a).ip().family() == 6 : (ip(a.split('-')[0]).family() == 6 && ip(a.split('-')[1]).family() == 6)) && !a.contains('.')) || !((isCIDR(b) || (b.split('-').size() == 2 && isIP(b.split('-')[0]) && isIP(b.split('-')[1]))) && (isCIDR(b) ? cidr(b).ip().family() == 6 : (ip(b.split('-')[0]).family() == 6 && ip(b.split('-')[1]).family() == 6)) && !b.contains('.')) || !((isCIDR(a) ? cidr(a).containsIP((isCIDR(b) ? b.split('/')[0] : b.split('-')[0])) : (cidr(a.split('-')[0] + '/112').containsIP((isCIDR(b) ? b.split('/')[0] : b.split('-')[0])) && ('0000' + a.split('-')[0].substring(a.split('-')[0].lastIndexOf(':') + 1)).substring(size(a.split('-')[0].substring(a.split('-')[0].lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + (isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).substring((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).lastIndexOf(':') + 1)).substring(size((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).substring((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).lastIndexOf(':') + 1))).lowerAscii() && ('0000' + (isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).substring((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).lastIndexOf(':') + 1)).substring(size((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).substring((isCIDR(b) ? b.split('/')[0] : b.split('-')[0]).lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + a.split('-')[1].substring(a.split('-')[1].lastIndexOf(':') + 1)).substring(size(a.split('-')[1].substring(a.split('-')[1].lastIndexOf(':') + 1))).lowerAscii())) || (isCIDR(b) ? cidr(b).containsIP((isCIDR(a) ? a.split('/')[0] : a.split('-')[0])) : (cidr(b.split('-')[0] + '/112').containsIP((isCIDR(a) ? a.split('/')[0] : a.split('-')[0])) && ('0000' + b.split('-')[0].substring(b.split('-')[0].lastIndexOf(':') + 1)).substring(size(b.split('-')[0].substring(b.split('-')[0].lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + (isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).substring((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).lastIndexOf(':') + 1)).substring(size((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).substring((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).lastIndexOf(':') + 1))).lowerAscii() && ('0000' + (isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).substring((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).lastIndexOf(':') + 1)).substring(size((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).substring((isCIDR(a) ? a.split('/')[0] : a.split('-')[0]).lastIndexOf(':') + 1))).lowerAscii() <= ('0000' + b.split('-')[1].substring(b.split('-')[1].lastIndexOf(':') + 1)).substring(size(b.split('-')[1].substring(b.split('-')[1].lastIndexOf(':') + 1))).lowerAscii())))))`,messageExpression=`'each address is in one entry of the pool, but entries of ' + self.join(', ') + ' overlap: merge them or make them disjoint'`
	// +listType=set
	// +required
	Addresses []string `json:"addresses"`

	// prefixLength of the subnet the addresses are on, 1..128 (64: 2001:db8::100/64). Without it
	// the address is a /128, and template.interface must name the interface.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	// +optional
	PrefixLength *int32 `json:"prefixLength,omitempty"`

	// vrids are the VRIDs of the pool's IPv6 VirtualIPs, first..last: the n-th address gets
	// the n-th VRID. They must not overlap the vrids of another pool's ipv6 (IPv4 and IPv6
	// groups are apart in VRRP: the same VRID may serve both families).
	// +required
	VRIDs VRIDRange `json:"vrids"`
}

// VRIDRange is the VRIDs first..last, both included.
//
// +kubebuilder:validation:XValidation:rule=`self.first <= self.last`,message=`vrids go from first to last: first must be at most last, e.g. {first: 100, last: 149}`
type VRIDRange struct {
	// first VRID, 1..255.
	// +kubebuilder:validation:XValidation:rule=`self >= 1 && self <= 255`,message=`a VRID is 1..255 (keepalived's virtual_router_id)`
	// +required
	First int32 `json:"first"`
	// last VRID, 1..255, at least first.
	// +kubebuilder:validation:XValidation:rule=`self >= 1 && self <= 255`,message=`a VRID is 1..255 (keepalived's virtual_router_id)`
	// +required
	Last int32 `json:"last"`
}

// VirtualIPTemplate is a VirtualIPSpec without vrid and addresses, which the controller fills
// in: the same fields with the same rules, checked against the VirtualIP's schema by
// pkg/lbpool's tests. The rules of VirtualIPSpec on its addresses are the pool's here (IPv6
// needs version 3; the unicast peers are not the pool's addresses and are given to each
// VirtualIP by family).
//
// +kubebuilder:validation:XValidation:rule=`!has(self.advertisementInterval) || self.version != 3 || !self.advertisementInterval.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self.advertisementInterval) >= duration('10ms') && duration(self.advertisementInterval) <= duration('40950ms') && int(duration(self.advertisementInterval)) % 10000000 == 0)`,messageExpression=`'advertisementInterval must be a multiple of 10ms between 10ms and 40.95s for version 3 (VRRPv3 counts centiseconds); got ' + self.advertisementInterval`,fieldPath=`.advertisementInterval`
// +kubebuilder:validation:XValidation:rule=`!has(self.advertisementInterval) || self.version != 2 || !self.advertisementInterval.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self.advertisementInterval) >= duration('1s') && duration(self.advertisementInterval) <= duration('255s') && int(duration(self.advertisementInterval)) % 1000000000 == 0)`,messageExpression=`'advertisementInterval must be whole seconds between 1s and 255s for version 2 (set version: 3 for sub-second intervals); got ' + self.advertisementInterval`,fieldPath=`.advertisementInterval`
// +kubebuilder:validation:XValidation:rule=`has(self.nodeSelector) || (has(self.nodes) && self.nodes.size() > 0)`,message=`name the nodes that run the pool's VirtualIPs: set template.nodeSelector (an empty selector {} selects every node that runs the agent) or list the members in template.nodes`,fieldPath=`.nodeSelector`,reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule=`!has(self.authentication) || self.version == 2`,message=`authentication exists only in VRRPv2 (RFC 5798 §9 removed it): set version: 2 or remove authentication`,fieldPath=`.authentication`
// +kubebuilder:validation:XValidation:rule=`!has(self.preempt) || self.preempt || !has(self.probes) || self.probes.size() == 0 || self.probes.exists(p, !has(p.weight) || p.weight == 0)`,message=`preempt: false with only weighted probes can never move the addresses (a weight only changes the priority, and without preemption a lower priority never takes over): set preempt: true, or give a probe weight 0 so that its failure resigns the addresses`,fieldPath=`.preempt`
type VirtualIPTemplate struct {
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

// VirtualIPPoolStatus counts the pool's addresses by family.
type VirtualIPPoolStatus struct {
	// observedGeneration is the generation the status was written for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ipv4 counts the IPv4 addresses.
	// +optional
	IPv4 *PoolFamilyStatus `json:"ipv4,omitempty"`
	// ipv6 counts the IPv6 addresses.
	// +optional
	IPv6 *PoolFamilyStatus `json:"ipv6,omitempty"`
	// conditions: Ready (the pool is valid and does not overlap an older pool).
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PoolFamilyStatus counts the addresses of one family of a pool.
type PoolFamilyStatus struct {
	// allocated is the number of the pool's addresses that Services have.
	// +optional
	Allocated int32 `json:"allocated"`
	// available is the number of addresses a Service could get now: the addresses with a VRID
	// (as many as the shorter of addresses and vrids) whose address and VRID no VirtualIP has.
	// +optional
	Available int32 `json:"available"`
}

// VirtualIPPool is a range of addresses and VRIDs from which Services of type LoadBalancer
// (spec.loadBalancerClass kubevrrp.io/vrrp) get their external addresses: each address becomes
// a VirtualIP made from the pool's template, named after the address and labelled with its
// Service (docs/design.md §7.12). `kube-vrrp controller` allocates; the agents run the
// VirtualIPs as any other.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=vippool
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="IPv4 Allocated",type=integer,JSONPath=`.status.ipv4.allocated`
// +kubebuilder:printcolumn:name="IPv4 Available",type=integer,JSONPath=`.status.ipv4.available`
// +kubebuilder:printcolumn:name="IPv6 Allocated",type=integer,JSONPath=`.status.ipv6.allocated`
// +kubebuilder:printcolumn:name="IPv6 Available",type=integer,JSONPath=`.status.ipv6.available`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule=`self.metadata.name.size() <= 63`,message=`a pool's name is at most 63 characters: its VirtualIPs carry it as the value of their label kubevrrp.io/pool`
type VirtualIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualIPPoolSpec   `json:"spec"`
	Status VirtualIPPoolStatus `json:"status,omitempty"`
}

// VirtualIPPoolList is a list of VirtualIPPools.
//
// +kubebuilder:object:root=true
type VirtualIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualIPPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VirtualIPPool{}, &VirtualIPPoolList{})
}
