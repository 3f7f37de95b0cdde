// Package agent is the per-node runtime: it turns a set of desired vrrp.Configs, keyed by
// name, into running routers sharing one socket per interface, and reports their state. It
// imports no Kubernetes package; both `kube-vrrp run` and the in-cluster agent drive it.
package agent
