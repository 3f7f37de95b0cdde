//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// checkForeign names every virtual address that is already on its interface without kube-vrrp
// having added it, and lets the address owner (priority 255) through.
func TestCheckForeign(t *testing.T) {
	cfg := func(name, ifname string, prio uint8, addrs ...string) vrrp.Config {
		c := vrrp.Config{Name: name, Interface: ifname, Priority: prio}
		for _, a := range addrs {
			c.Addresses = append(c.Addresses, netip.MustParsePrefix(a))
		}
		return c
	}
	host := map[string][]netip.Prefix{
		"eth0": {netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("198.18.0.55/32")},
		"eth1": {netip.MustParsePrefix("198.18.1.11/24")},
	}
	foreign := func(ifname string) ([]netip.Prefix, error) {
		if ps, ok := host[ifname]; ok {
			return ps, nil
		}
		return nil, errors.New("link not found")
	}
	if err := checkForeign([]vrrp.Config{cfg("a", "eth0", 100, "198.18.0.100/24"), cfg("b", "eth1", 100, "198.18.0.55/24")}, foreign); err != nil {
		t.Errorf("no virtual address on its own interface: %v", err)
	}
	if err := checkForeign([]vrrp.Config{cfg("owner", "eth0", 255, "198.18.0.11/24")}, foreign); err != nil {
		t.Errorf("the owner: %v", err)
	}
	err := checkForeign([]vrrp.Config{
		cfg("a", "eth0", 100, "198.18.0.100/24", "198.18.0.55/24"),
		cfg("b", "eth1", 100, "198.18.1.11/24"),
		cfg("c", "eth9", 100, "198.18.2.100/24"),
	}, foreign)
	for _, want := range []string{
		"refusing to start: ",
		`VirtualIP "a": address 198.18.0.55 is already on eth0 and kube-vrrp did not add it`,
		`VirtualIP "b": address 198.18.1.11 is already on eth1`,
		`VirtualIP "c": link not found`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkForeign = %v, want it to say %q", err, want)
		}
	}
}

// TestRunRefusesForeignAddress: `kube-vrrp run` will not claim an address that the host
// already has and kube-vrrp did not add (here another program's, on the lab link): it exits
// with an error naming it, and leaves the address where it is.
func TestRunRefusesForeignAddress(t *testing.T) {
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 1, ResponderPort: -1})
	n1 := l.Node(1)
	taken := netip.MustParsePrefix("198.18.0.55/32")
	if out, err := n1.Run("ip", "address", "add", taken.String(), "dev", n1.Interface); err != nil {
		t.Fatalf("ip address add: %v: %s", err, out)
	}
	manifest := n1.MustWriteFile("vip.yaml", fmt.Appendf(nil, `apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: taken}
spec:
  vrid: 51
  addresses: ["198.18.0.55/24"]
  nodes: [{name: %s}]
`, n1.Name))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(testMainEnv, "1")
	p, err := n1.Exec(t.Context(), "agent", exe, "run", "-f", manifest, "--node", n1.Name, "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	want := `VirtualIP \"taken\": address 198.18.0.55 is already on ` + n1.Interface + ` and kube-vrrp did not add it`
	if err := p.Wait(10 * time.Second); err == nil || !strings.Contains(p.Log(), want) {
		t.Errorf("exit %v, want an error saying %s; log:\n%s", err, want, p.Tail(20))
	}
	if !n1.HasAddress(taken) {
		t.Errorf("%s is gone from %s", taken, n1.Name)
	}
}
