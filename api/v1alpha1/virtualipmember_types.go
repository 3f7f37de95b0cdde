package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualIPMemberSpec names the VirtualIP and the node a VirtualIPMember reports on. It never
// changes.
type VirtualIPMemberSpec struct {
	// virtualIP is the name of the VirtualIP this member belongs to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	VirtualIP string `json:"virtualIP"`
	// node is the name of the node whose agent reports here.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Node string `json:"node"`
}

// VirtualIPMember is one node's report on one VirtualIP: its VRRP state, effective priority,
// probes and why. The node's agent writes it, and only it (docs/design.md §7.5); the
// VirtualIP's status holds the summary (master, conditions). A node that runs a VirtualIP, or
// is refused it for a reason to fix, has a member; one with no interface in the subnet of the
// first address has none, unless the VirtualIP's spec.nodes names it. List the members of one
// VirtualIP with `kubectl get vipm --field-selector spec.virtualIP=NAME`.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=vipm
// +kubebuilder:selectablefield:JSONPath=`.spec.virtualIP`
// +kubebuilder:selectablefield:JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="VirtualIP",type=string,JSONPath=`.spec.virtualIP`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.status.priority`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule=`self.spec == oldSelf.spec`,message=`spec names the VirtualIP and node a member reports on and cannot change: delete the member instead`
// +kubebuilder:validation:XValidation:rule=`!self.spec.virtualIP.contains('.') && size(self.spec.virtualIP) + 1 + size(self.spec.node) <= 253 ? self.metadata.name == self.spec.virtualIP + '.' + self.spec.node : (self.metadata.name.startsWith(size(self.spec.virtualIP) > 128 ? self.spec.virtualIP.substring(0, 128) : self.spec.virtualIP) && self.metadata.name.matches('[.][0-9a-f]{16}$'))`,message=`a member is named <spec.virtualIP>.<spec.node> (for a VirtualIP name with a dot, or beyond 253 characters: the VirtualIP's name, a dot and a hash of both names): one name per VirtualIP and node, so that no member takes another's name`
type VirtualIPMember struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VirtualIPMemberSpec `json:"spec"`
	// status is the node's report.
	// +optional
	Status NodeStatus `json:"status,omitempty"`
}

// VirtualIPMemberList is a list of VirtualIPMembers.
//
// +kubebuilder:object:root=true
type VirtualIPMemberList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualIPMember `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VirtualIPMember{}, &VirtualIPMemberList{})
}

// Misnamed reports whether m's name is not MemberName of its spec: a member no agent writes
// under that name, which the agents ignore.
func (m *VirtualIPMember) Misnamed() bool {
	return m.Name != MemberName(m.Spec.VirtualIP, m.Spec.Node)
}

// Entry is the member's status with the node's name (Name, which status does not store).
func (m *VirtualIPMember) Entry() NodeStatus {
	e := m.Status
	e.Name = m.Spec.Node
	return e
}

// memberHashLength is how many hex digits of a hash end a member name too long to be
// "<virtualIP>.<node>".
const memberHashLength = 16

// MemberName is the name of the VirtualIPMember of node in the VirtualIP vip, one per pair:
// "<vip>.<node>" when vip has no dot (the first dot then tells the two names apart) and that
// fits in an object name; else the beginning of vip, a dot and a hash of both names ("web.prod"
// and "n1" would otherwise share "web.prod.n1" with "web" and "prod.n1"). The CRD holds a
// member's name to the first form, and the agents ignore, and the summary's writer deletes, a
// member whose name is not MemberName of its spec (docs/design.md §7.5).
func MemberName(vip, node string) string {
	if !strings.Contains(vip, ".") && len(vip)+1+len(node) <= MaxNameLength {
		return vip + "." + node
	}
	sum := sha256.Sum256([]byte(vip + "\x00" + node))
	head := strings.TrimRight(vip[:min(len(vip), MaxNameLength-memberHashLength-1)], ".-")
	return head + "." + hex.EncodeToString(sum[:])[:memberHashLength]
}
