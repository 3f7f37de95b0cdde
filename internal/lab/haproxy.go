package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HAProxyConfig is an haproxy.cfg for Debian's haproxy serving HTTP on a virtual address, the
// load balancer that VRRP moves an address between.
type HAProxyConfig struct {
	// VIP is the virtual address to serve (bound with `transparent`, so HAProxy starts and
	// listens before the address is on the node, as it must on a BACKUP).
	VIP netip.Addr
	// Port is the HTTP port (default 80).
	Port int
	// Body is what every request is answered with (status 200, text/plain); default the
	// node's name, so a client learns which node served it.
	Body string
	// Dir receives the pid file and the stats socket.
	Dir string
}

// maxUnixPath is the longest path a unix socket can bind (sun_path less its NUL).
const maxUnixPath = 107

// String renders the configuration for node n: one frontend on VIP:Port and on the node's
// own address (for readiness checks from the client), answering every request itself.
func (c HAProxyConfig) String(n *Node) string {
	port := c.Port
	if port == 0 {
		port = 80
	}
	body := c.Body
	if body == "" {
		body = n.Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n")
	fmt.Fprintf(&b, "    pidfile %s\n", filepath.Join(c.Dir, "haproxy.pid"))
	fmt.Fprintf(&b, "    stats socket %s mode 600 level admin\n", filepath.Join(c.Dir, "stats.sock"))
	// One thread: two of these per lab on a 2-core machine, beside the speakers.
	b.WriteString("    nbthread 1\n    maxconn 2000\n\n")
	b.WriteString("defaults\n    mode http\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\n\n")
	b.WriteString("frontend web\n")
	fmt.Fprintf(&b, "    bind %s transparent\n", netip.AddrPortFrom(c.VIP, uint16(port)))
	fmt.Fprintf(&b, "    bind %s\n", netip.AddrPortFrom(n.IPv4, uint16(port)))
	fmt.Fprintf(&b, "    http-request return status 200 content-type text/plain string %q\n", body)
	return b.String()
}

// HAProxy is a running haproxy in a node (in the foreground, `-db`, one process: SIGKILL of
// its pid is the crash to survive).
type HAProxy struct {
	*NSProc
	// Config, PidFile and Socket are this instance's own files in the node's directory.
	Config, PidFile, Socket string
}

// ExecHAProxy starts haproxy in the namespace with HAProxyConfig{VIP: vip} (its own directory
// under the node's per start, so restarts and other nodes never share a pid file or socket)
// and waits until it answers on the node's own address, from the client.
func (ns *PIDNamespace) ExecHAProxy(vip netip.Addr) (*HAProxy, error) {
	return ns.execHAProxy("haproxy", func(dir string) string { return HAProxyConfig{VIP: vip, Dir: dir}.String(ns.Node) },
		netip.AddrPortFrom(ns.Node.IPv4, 80))
}

// execHAProxy runs HAProxy as process name in the node's PID namespace with the configuration
// config makes for its directory, and waits until ready (on the node's address) answers with
// the node's name.
func (ns *PIDNamespace) execHAProxy(name string, config func(dir string) string, ready netip.AddrPort) (*HAProxy, error) {
	n := ns.Node
	name = n.lab.procName(n.Name, name)
	dir := filepath.Join(n.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	h := &HAProxy{
		Config:  filepath.Join(dir, "haproxy.cfg"),
		PidFile: filepath.Join(dir, "haproxy.pid"),
		Socket:  filepath.Join(dir, "stats.sock"),
	}
	if len(h.Socket) > maxUnixPath {
		return nil, fmt.Errorf("%s: haproxy stats socket path too long for a unix socket (%d bytes): %s", n.Name, len(h.Socket), h.Socket)
	}
	if err := os.WriteFile(h.Config, []byte(config(dir)), 0o644); err != nil {
		return nil, err
	}
	p, err := ns.Exec(context.Background(), name, "haproxy", "-db", "-f", h.Config)
	if err != nil {
		return nil, err
	}
	h.NSProc = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := n.lab.HTTPGet(ready, time.Second)
		if err == nil && body == n.Name {
			return h, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("%s: haproxy does not answer on %s (%v):\n%s", n.Name, ready, err, p.Tail(10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartHAProxy is ExecHAProxy for tests.
func (ns *PIDNamespace) StartHAProxy(t testing.TB, vip netip.Addr) *HAProxy {
	t.Helper()
	h, err := ns.ExecHAProxy(vip)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
