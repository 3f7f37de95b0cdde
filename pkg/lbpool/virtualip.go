package lbpool

import (
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// Name is the name of the VirtualIP that holds address a: "lb-" and the address with '-' for
// '.' and ':' (lb-198-18-0-100, lb-2001-db8--100), and a final '0' when an IPv6 address ends in
// "::" (a name ends with a letter or digit). Its canonical form makes it one name per address,
// and the name is the allocation's lock: two creates of one address collide on the API server.
func Name(a netip.Addr) string {
	s := "lb-" + strings.NewReplacer(".", "-", ":", "-").Replace(a.Unmap().WithZone("").String())
	if strings.HasSuffix(s, "-") {
		s += "0"
	}
	return s
}

// Owner is the Service a VirtualIP is allocated to.
type Owner struct {
	Namespace, Name, UID string
}

// VirtualIP is the VirtualIP that gives owner the address a with vrid from pool's family f:
// the pool's template, the address with the family's prefix length, and of the template's
// unicast peers those of a's family. It is named after the address (Name) and labelled with its
// Service and pool, and annotated with the Service as namespace/name (kubectl get vip shows it).
func VirtualIP(pool *v1alpha1.VirtualIPPool, f Family, a netip.Addr, vrid int32, owner Owner) *v1alpha1.VirtualIP {
	t := pool.Spec.Template.DeepCopy()
	addr := a.String()
	if f.PrefixLength > 0 && f.PrefixLength < a.BitLen() {
		addr = netip.PrefixFrom(a, f.PrefixLength).String()
	}
	spec := v1alpha1.VirtualIPSpec{
		VRID:                  vrid,
		Version:               t.Version,
		Interface:             t.Interface,
		Addresses:             []string{addr},
		AdvertisementInterval: t.AdvertisementInterval,
		Priority:              t.Priority,
		Nodes:                 t.Nodes,
		NodeSelector:          t.NodeSelector,
		Preempt:               t.Preempt,
		PreemptDelay:          t.PreemptDelay,
		Accept:                t.Accept,
		Unicast:               t.Unicast,
		Authentication:        t.Authentication,
		ChecksumMode:          t.ChecksumMode,
		Probes:                t.Probes,
		VirtualMAC:            t.VirtualMAC,
		Announcements:         t.Announcements,
		Notify:                t.Notify,
	}
	if u := spec.Unicast; u != nil && len(u.Peers) > 0 {
		var peers []string
		for _, p := range u.Peers {
			if pa, err := netip.ParseAddr(p); err == nil && pa.Is4() == a.Is4() {
				peers = append(peers, p)
			}
		}
		u.Peers = peers
	}
	return &v1alpha1.VirtualIP{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VirtualIP"},
		ObjectMeta: metav1.ObjectMeta{
			Name: Name(a),
			Labels: map[string]string{
				v1alpha1.LabelServiceNamespace: owner.Namespace,
				v1alpha1.LabelServiceName:      owner.Name,
				v1alpha1.LabelServiceUID:       owner.UID,
				v1alpha1.LabelPool:             pool.Name,
			},
			Annotations: map[string]string{v1alpha1.AnnotationService: owner.Namespace + "/" + owner.Name},
		},
		Spec: spec,
	}
}

// AddressOf is the address of a VirtualIP allocated by the controller: its one address,
// without the prefix length.
func AddressOf(vip *v1alpha1.VirtualIP) (netip.Addr, bool) {
	if len(vip.Spec.Addresses) != 1 {
		return netip.Addr{}, false
	}
	s := vip.Spec.Addresses[0]
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), true
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}
