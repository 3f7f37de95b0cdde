package loadbalancer

// The controller's permissions, generated into config/rbac/lb_controller_role.yaml by `make
// generate` from this package alone (the agent's role is generated from ./controllers alone:
// no agent may write a Service). Read Services and write their status (the ingress and a
// condition), never their spec or metadata: no finalizer, so a Service's deletion never waits
// for the controller; create, delete, patch and read VirtualIPs (those it allocates: patch
// narrows the members of a Service's VirtualIPs to its endpoints' nodes for
// externalTrafficPolicy Local, in place, and annotates them with the Service), never their
// status; list and watch EndpointSlices (which nodes have a ready endpoint), nothing else of
// them; read VirtualIPPools and write their status; record events.k8s.io Events; its Lease, in
// its own namespace, for leader election.
//
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;patch
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualips,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualippools/status,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kube-vrrp,resources=leases,verbs=get;create;update
