package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions are the cache options of the agent's manager (docs/design.md §7.2). Every
// agent caches every Node, so in a big cluster Nodes are most of its heap: it keeps of each only
// what the controllers read (TrimNode). Of every other cached object (VirtualIPs) it drops
// metadata.managedFields, which nothing reads.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Node{}: {Transform: TrimNode}},
	}
}

// ClientOptions are the client options of the agent's manager: Secrets have no informer, so
// the agent never lists or watches them (its Role grants get only, docs/design.md §7.4); the
// VirtualIPReconciler gets the one a VirtualIP references by name (VirtualIPReconciler.Secrets).
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}

// TrimNode is the cache transform of Nodes. It keeps what the controllers read of a Node:
// its name, labels (spec.nodeSelector) and status.addresses (members, unicast peers, the check
// that no virtual address is a node's), with its UID and resourceVersion; it drops the rest
// (managedFields, annotations, spec, images, conditions, nodeInfo, capacity, ...), which is
// most of a Node. Anything but a Node passes unchanged; it is idempotent, as a cache
// transform must be.
func TrimNode(in any) (any, error) {
	n, ok := in.(*corev1.Node)
	if !ok {
		return in, nil
	}
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.Name,
			UID:             n.UID,
			ResourceVersion: n.ResourceVersion,
			Labels:          n.Labels,
		},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}
