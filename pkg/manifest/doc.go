// Package manifest reads VirtualIP and Secret objects from multi-document YAML files, strictly,
// for the standalone `kube-vrrp run` and `kube-vrrp validate` commands.
package manifest
