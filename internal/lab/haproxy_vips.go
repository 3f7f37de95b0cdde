package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// HAProxyVIPsConfig renders an haproxy.cfg for node n serving HTTP on several virtual
// addresses (port 80, each bound `transparent`, so HAProxy listens before an address is on the
// node) and on the node's own address at readyPort (a port of its own, so that it runs beside
// an HAProxyConfig's instance, which has port 80 of the node's address), answering every
// request with the node's name. dir receives the pid file and the stats socket.
func HAProxyVIPsConfig(n *Node, vips []netip.Addr, readyPort uint16, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n")
	fmt.Fprintf(&b, "    pidfile %s\n", filepath.Join(dir, "haproxy.pid"))
	fmt.Fprintf(&b, "    stats socket %s mode 600 level admin\n", filepath.Join(dir, "stats.sock"))
	b.WriteString("    nbthread 1\n    maxconn 2000\n\n")
	b.WriteString("defaults\n    mode http\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\n\n")
	b.WriteString("frontend web\n")
	for _, v := range vips {
		fmt.Fprintf(&b, "    bind %s transparent\n", netip.AddrPortFrom(v, 80))
	}
	fmt.Fprintf(&b, "    bind %s\n", netip.AddrPortFrom(n.IPv4, readyPort))
	fmt.Fprintf(&b, "    http-request return status 200 content-type text/plain string %q\n", n.Name)
	return b.String()
}

// ExecHAProxyVIPs starts haproxy in the namespace with HAProxyVIPsConfig (its own directory
// under the node's per start) and waits until it answers on the node's own address at
// readyPort, from the client.
func (ns *PIDNamespace) ExecHAProxyVIPs(vips []netip.Addr, readyPort uint16) (*HAProxy, error) {
	return ns.execHAProxy("haproxy-vips", func(dir string) string { return HAProxyVIPsConfig(ns.Node, vips, readyPort, dir) },
		netip.AddrPortFrom(ns.Node.IPv4, readyPort))
}
