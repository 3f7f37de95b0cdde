// Package loadbalancer is `kube-vrrp controller`: Services of type LoadBalancer on real VRRP
// (docs/design.md §7.12). For each Service of class kubevrrp.io/vrrp (and, when told to, of no
// class) it allocates an address and a VRID per IP family from a VirtualIPPool, as a VirtualIP
// made from the pool's template, named after the address and labelled with the Service; it
// writes status.loadBalancer.ingress (ipMode VIP) and a condition, and deletes the VirtualIPs
// when the Service goes or stops being one it serves. The node agents then run the VirtualIPs
// as any other.
//
//   - ServiceReconciler allocates and releases, one Service at a time, leader-elected; for a
//     Service with externalTrafficPolicy Local it narrows the members of its VirtualIPs to the
//     nodes of its ready endpoints (EndpointSlices), in place; and it tells the Service, in
//     Events, which node holds each of its addresses (the VirtualIP's status.master).
//   - PoolReconciler writes each pool's counts and its Ready condition.
//
// The API server is the allocator's memory: an address is taken when a VirtualIP has it, and
// the n-th address of a pool always has the pool's n-th VRID, so the create of the VirtualIP
// named after the address is the one step that takes both, or fails (AlreadyExists) for
// everyone but one.
package loadbalancer
