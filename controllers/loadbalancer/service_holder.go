package loadbalancer

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// The node that holds a Service's address, told on the Service (docs/design.md §7.12): an
// Event when the MASTER of one of its VirtualIPs changes, read from the VirtualIP's
// status.master, which the agents write.

// Reasons of the Events that name the holder of an address.
const (
	// ReasonVIPHeld: a node became MASTER of the address (a Normal Event).
	ReasonVIPHeld = "VIPHeld"
	// ReasonVIPNotHeld: no node holds the address any more (a Warning Event): the agents lost
	// their MASTER, or, with externalTrafficPolicy Local, no node has a ready endpoint.
	ReasonVIPNotHeld = "VIPNotHeld"
)

// heldInterval bounds the holder Events of an address: one at most per interval. A change
// after a quiet spell is told at once; changes within the interval after an Event are told
// once at its end, as the holder is then (a flapping MASTER makes one Event per interval, and
// none for a holder that came and went in between).
const heldInterval = 10 * time.Second

// holder is what the Service was last told about the holder of one of its addresses.
type holder struct {
	service types.NamespacedName
	uid     types.UID // of the VirtualIP
	told    string    // the MASTER last told ("" none)
	at      time.Time // when; zero: never told, only seen
}

// tellHolders records an Event on svc for each VirtualIP of vips whose MASTER changed since
// the last one, at most one per heldInterval per address, and returns when to look again for
// the changes held back (0: none). A VirtualIP seen for the first time (created now, or by the
// previous leader) is not told: its MASTER is the baseline. nodes are the endpoint nodes by
// family, for the message of an address no node holds.
func (r *ServiceReconciler) tellHolders(svc *corev1.Service, vips []*v1alpha1.VirtualIP, nodes map[int][]string, now time.Time) time.Duration {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holders == nil {
		r.holders = map[string]*holder{}
	}
	present := map[string]bool{}
	var after time.Duration
	for _, v := range vips {
		present[v.Name] = true
		h, ok := r.holders[v.Name]
		if !ok || h.uid != v.UID || h.service != key {
			r.holders[v.Name] = &holder{service: key, uid: v.UID, told: v.Status.Master}
			continue
		}
		if h.told == v.Status.Master {
			continue
		}
		if wait := h.at.Add(heldInterval).Sub(now); !h.at.IsZero() && wait > 0 {
			if after == 0 || wait < after {
				after = wait
			}
			continue
		}
		h.told, h.at = v.Status.Master, now
		a, _ := lbpool.AddressOf(v)
		if v.Status.Master != "" {
			r.Recorder.Eventf(svc, v, corev1.EventTypeNormal, ReasonVIPHeld, "Elect", "%s is held by node %s", a, nodeName(v.Status.Master))
			continue
		}
		why := "the nodes that run VirtualIP " + v.Name + " have no MASTER"
		if isLocal(svc) && len(nodes[familyOf(a)]) == 0 {
			why = "no node has a ready endpoint of the Service (externalTrafficPolicy: Local)"
		}
		r.Recorder.Eventf(svc, v, corev1.EventTypeWarning, ReasonVIPNotHeld, "Elect", "%s is held by no node: %s", a, why)
	}
	for name, h := range r.holders {
		if h.service == key && !present[name] {
			delete(r.holders, name)
		}
	}
	return after
}

// forgetHolders drops what was told about the addresses of the Service key (released).
func (r *ServiceReconciler) forgetHolders(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, h := range r.holders {
		if h.service == key {
			delete(r.holders, name)
		}
	}
}

// nodeName shows a node's name from status.master (which any agent may write): as it is when
// it is one, quoted otherwise.
func nodeName(s string) string {
	if len(validation.IsDNS1123Subdomain(s)) == 0 {
		return s
	}
	return fmt.Sprintf("%q", truncate(s, 253))
}
