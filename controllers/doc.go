// Package controllers holds the thin Kubernetes reconcilers: VirtualIP objects to the per-node
// agent, and agent state changes to the VirtualIP status (DESIGN.md §2). They arrive with the
// in-cluster agent; `kube-vrrp run` drives pkg/agent without them.
package controllers
