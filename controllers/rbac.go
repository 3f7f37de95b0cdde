package controllers

// The agent's permissions, generated into config/rbac by `make generate` (least privilege:
// read VirtualIPs, Nodes and the Secrets of its own namespace; patch VirtualIP status; Events;
// the aggregator's Lease):
//
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualips,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualips/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",namespace=kube-vrrp,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kube-vrrp,resources=leases,verbs=get;create;update
//
// Leader election records "became leader" as a core/v1 Event in the Lease's namespace
// (controller-runtime's deprecated recorder), not through events.k8s.io:
//
// +kubebuilder:rbac:groups="",namespace=kube-vrrp,resources=events,verbs=create;patch
