// Package vmac holds the namespace-lab tests of spec.virtualMAC (docs/design.md §5.9) under
// `kube-vrrp run`: the RFC 5798 §7.3 virtual router MAC on a macvlan per instance, seen from a
// client (its neighbour entry for the VIP keeps the virtual MAC across a failover, and one that
// ignores gratuitous ARPs and unsolicited neighbour advertisements recovers in about
// Master_Down_Interval instead of when its entry ages out) and from the switch (the virtual
// MAC is learned on the MASTER's port only, and the first advert of a takeover, captured at
// the switch, already comes from it), and the macvlan's life: removed when the instance
// stops, after a SIGKILL and a restart, kept through a hitless restart, created again after a
// rebuild of its interface.
package vmac
