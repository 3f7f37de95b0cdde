package loadbalancer

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// externalTrafficPolicy: Local (docs/design.md §7.12). kube-proxy delivers such a Service's
// external traffic only to endpoints on the node it arrives at, and drops it at a node with
// none; with ipMode VIP the traffic arrives at the node that holds the address, so only nodes
// with a ready endpoint may hold it. The controller reads the Service's EndpointSlices and
// narrows the members of its VirtualIPs to those nodes, in place (the address and VRID stay),
// keeping the template's members in an annotation to put them back when the Service returns
// to Cluster.

// membersWindow bounds the churn of a VirtualIP's members: after a change of its members, the
// next waits until this long after it, and then writes what the endpoints are by then. A
// change after a quiet spell is written at once; a burst (a rollout, readiness flapping)
// costs at most one write per window, which every agent watching VirtualIPs receives.
const membersWindow = time.Second

func isLocal(svc *corev1.Service) bool {
	return svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// endpointNodes are the nodes of svc's endpoints by family (lbpool.EndpointNodes), from the
// cache of its EndpointSlices.
func (r *ServiceReconciler) endpointNodes(ctx context.Context, svc *corev1.Service) (map[int][]string, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &list, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, fmt.Errorf("list the EndpointSlices of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return map[int][]string{4: lbpool.EndpointNodes(list.Items, 4), 6: lbpool.EndpointNodes(list.Items, 6)}, nil
}

// enqueueForSlice reconciles the Service of an EndpointSlice, if it is one whose VirtualIPs
// follow its endpoints: of type LoadBalancer, served, with externalTrafficPolicy Local. (A
// Service that turns back to Cluster is reconciled by its own update.)
func (r *ServiceReconciler) enqueueForSlice(ctx context.Context, o client.Object, q workqueue) {
	name := o.GetLabels()[discoveryv1.LabelServiceName]
	if name == "" {
		return
	}
	key := types.NamespacedName{Namespace: o.GetNamespace(), Name: name}
	var svc corev1.Service
	if err := r.Client.Get(ctx, key, &svc); err != nil {
		return
	}
	if r.serves(&svc) && isLocal(&svc) {
		q.Add(reconcile.Request{NamespacedName: key})
	}
}

// templateMembers are the members v had from its pool's template: those kept in its
// annotation while it is narrowed, else those it has. An annotation that does not read (a
// hand edit) gives way to the pool's template as it is now; without the pool there is none.
func (r *ServiceReconciler) templateMembers(ctx context.Context, v *v1alpha1.VirtualIP) (lbpool.Members, error) {
	s, narrowed := v.Annotations[v1alpha1.AnnotationTemplateMembers]
	if !narrowed {
		return lbpool.MembersOf(v), nil
	}
	m, err := lbpool.DecodeMembers(s)
	if err == nil {
		return m, nil
	}
	var pool v1alpha1.VirtualIPPool
	if perr := r.Client.Get(ctx, client.ObjectKey{Name: v.Labels[v1alpha1.LabelPool]}, &pool); perr != nil {
		return lbpool.Members{}, fmt.Errorf("%w; and pool %q, whose template would do, cannot be read: %w", err, v.Labels[v1alpha1.LabelPool], perr)
	}
	return lbpool.Members{NodeSelector: pool.Spec.Template.NodeSelector.DeepCopy(), Nodes: pool.Spec.Template.Nodes}, nil
}

// shaped is v as the controller keeps it for svc: annotated with the Service; with
// externalTrafficPolicy Local, its template's members kept in an annotation and its members
// narrowed to nodes; otherwise its template's members, and no such annotation.
func (r *ServiceReconciler) shaped(ctx context.Context, svc *corev1.Service, v *v1alpha1.VirtualIP, nodes []string) (*v1alpha1.VirtualIP, error) {
	out := v.DeepCopy()
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[v1alpha1.AnnotationService] = svc.Namespace + "/" + svc.Name
	_, narrowed := v.Annotations[v1alpha1.AnnotationTemplateMembers]
	if !isLocal(svc) && !narrowed {
		return out, nil
	}
	base, err := r.templateMembers(ctx, v)
	if err != nil {
		return nil, err
	}
	if isLocal(svc) {
		out.Annotations[v1alpha1.AnnotationTemplateMembers] = lbpool.EncodeMembers(base)
		lbpool.Narrow(base, nodes).Set(out)
	} else {
		delete(out.Annotations, v1alpha1.AnnotationTemplateMembers)
		base.Set(out)
	}
	return out, nil
}

// narrowNew gives a VirtualIP about to be created for svc its shape (shaped), so that a
// Service with externalTrafficPolicy Local never has a VirtualIP on all the template's nodes,
// not even for a moment.
func narrowNew(svc *corev1.Service, v *v1alpha1.VirtualIP, nodes []string) {
	if !isLocal(svc) {
		return
	}
	base := lbpool.MembersOf(v)
	if v.Annotations == nil {
		v.Annotations = map[string]string{}
	}
	v.Annotations[v1alpha1.AnnotationTemplateMembers] = lbpool.EncodeMembers(base)
	lbpool.Narrow(base, nodes).Set(v)
}

// reshape writes v's shape (shaped) if it differs, in place: a patch of its metadata and
// members, with v's resourceVersion as precondition. A change of members waits for
// membersWindow after the last one (the returned wait; nothing written).
func (r *ServiceReconciler) reshape(ctx context.Context, log *slog.Logger, svc *corev1.Service, v *v1alpha1.VirtualIP, nodes []string) (time.Duration, error) {
	want, err := r.shaped(ctx, svc, v, nodes)
	if err != nil {
		// Nothing to restore from: leave the members as they are, and say why each time.
		log.Error("cannot set the members of the VirtualIP", "virtualIP", v.Name, "error", err)
		return 0, nil
	}
	members := !lbpool.MembersOf(want).Equal(lbpool.MembersOf(v))
	if !members && maps.Equal(want.Annotations, v.Annotations) {
		return 0, nil
	}
	now := time.Now()
	if members {
		if wait := r.membersWait(v.Name, now); wait > 0 {
			return wait, nil
		}
	}
	patch := client.MergeFromWithOptions(v, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Patch(ctx, want, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return 100 * time.Millisecond, nil
		}
		return 0, fmt.Errorf("update the members of VirtualIP %s: %w", v.Name, err)
	}
	if members {
		r.membersWritten(v.Name, now)
		log.Info("members", "virtualIP", v.Name, "local", isLocal(svc), "endpointNodes", nodes, "nodeSelector", selectorString(want.Spec.NodeSelector), "nodes", len(want.Spec.Nodes))
	}
	return 0, nil
}

func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return "<none>"
	}
	return metav1.FormatLabelSelector(s)
}

// membersWait is how long a change of the members of VirtualIP name must wait (membersWindow).
func (r *ServiceReconciler) membersWait(name string, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.membersAt[name]; ok {
		if wait := last.Add(membersWindow).Sub(now); wait > 0 {
			return wait
		}
	}
	return 0
}

// membersWritten records a change of the members of VirtualIP name, and forgets those older
// than the window: the map holds only the changes of the last window.
func (r *ServiceReconciler) membersWritten(name string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	maps.DeleteFunc(r.membersAt, func(_ string, at time.Time) bool { return now.Sub(at) >= membersWindow })
	if r.membersAt == nil {
		r.membersAt = map[string]time.Time{}
	}
	r.membersAt[name] = now
}
