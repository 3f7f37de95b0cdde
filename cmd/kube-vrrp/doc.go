// Command kube-vrrp is the kube-vrrp binary: the standalone VRRP speaker (run), the manifest
// checker (validate) and build information (version). It only wires packages together.
package main
