package controllers

// The agent's permissions, generated into config/rbac by `make generate` (least privilege,
// docs/design.md §7.10): read VirtualIPs and Nodes; write VirtualIPMembers (its own, which
// the admission policy enforces, and delete those of nodes gone, a prune) and patch VirtualIP
// status (the summary); get, by name, the Secrets of its own namespace that VirtualIPs
// reference, never list or watch them (VirtualIPReconciler.Secrets is an uncached reader);
// write events.k8s.io Events; in its own namespace, read its pod, its DaemonSet and their
// ControllerRevisions (the restart decision, stopwatch.go). No Lease and no core/v1 Events:
// nothing is leader-elected, every agent summarises the status of the VirtualIPs that select
// its node. TokenReviews and SubjectAccessReviews: /metrics asks the API server who a scraper
// is and whether it may get /metrics (NewMetricsServer); creating one reveals nothing but the
// answer about the token or user the agent was shown.
//
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualips,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualips/status,verbs=get;patch
// +kubebuilder:rbac:groups=kubevrrp.io,resources=virtualipmembers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",namespace=kube-vrrp,resources=secrets,verbs=get
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
