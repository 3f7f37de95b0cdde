// Package controllers holds the thin Kubernetes side of the agent (docs/design.md §2.1, §7):
//
//   - VirtualIPReconciler turns each VirtualIP that selects this node into a running VRRP
//     instance (pkg/desired translates, pkg/agent runs); it never stops one on an API error.
//     Of two VirtualIPs that claim one VRID on an interface, or one address, every node runs
//     the older (see claim).
//   - StatusReconciler server-side-applies this node's entry of status.nodes when it differs
//     from the cached one, fed by the agent's change signal; writes are coalesced, retried,
//     and cannot touch VRRP state.
//   - Aggregator, in every agent for the VirtualIPs that select its node (no leader),
//     writes status.master, the conditions and observedGeneration under one shared field
//     manager with a resourceVersion precondition, and prunes entries of nodes that are gone.
//   - Collector exposes the agent's state as Prometheus metrics.
package controllers
