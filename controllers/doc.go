// Package controllers holds the thin Kubernetes side of the agent (docs/design.md §2.1, §7):
//
//   - VirtualIPReconciler turns each VirtualIP that selects this node into a running VRRP
//     instance (pkg/desired translates, pkg/agent runs); it never stops one on an API error.
//     Of two VirtualIPs that claim one VRID on an interface, or one address, every node runs
//     the older (see claim).
//   - StatusReconciler server-side-applies this node's report on each VirtualIP, its
//     VirtualIPMember, when it differs from the cached one, and deletes it when the node no
//     longer takes part; fed by the agent's change signal; writes are coalesced, retried, and
//     cannot touch VRRP state.
//   - Aggregator, in every agent, writes status.master, the conditions and observedGeneration
//     of the VirtualIPs whose writer its node is (the MASTER, else the first member by name;
//     no leader) under one shared field manager with a resourceVersion precondition, from the
//     members in its cache, and prunes (deletes) the members of nodes that are gone or no
//     longer selected.
//   - Collector exposes the agent's state as Prometheus metrics.
package controllers
