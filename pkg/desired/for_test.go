package desired

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

var netipCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(s))
	for _, x := range s {
		out = append(out, addr(x))
	}
	return out
}
func pfxs(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s))
	for _, x := range s {
		out = append(out, pfx(x))
	}
	return out
}

// testNode is lb1 with a loopback, eth0 on the VIP's LAN and eth1 on another.
func testNode() Node {
	return Node{
		Name:   "lb1",
		Labels: map[string]string{"role": "lb"},
		Interfaces: []Interface{
			{Name: "lo", Index: 1, Up: true, Prefixes: pfxs("127.0.0.1/8", "::1/128")},
			{Name: "eth0", Index: 2, Up: true, Prefixes: pfxs("192.0.2.11/24", "2001:db8::11/64", "fe80::11/64")},
			{Name: "eth1", Index: 3, Up: true, Prefixes: pfxs("198.51.100.11/24", "fe80::1:11/64")},
		},
	}
}

// baseConfig is what validVIP gives on testNode.
func baseConfig() vrrp.Config {
	return vrrp.Config{
		Name:      "haproxy",
		Interface: "eth0",
		VRID:      51,
		Version:   3,
		Interval:  100 * time.Millisecond,
		Priority:  110,
		Addresses: pfxs("192.0.2.100/24"),
		Primary:   addr("192.0.2.11"),
		Preempt:   true,
		Accept:    true,
	}
}

func TestFor(t *testing.T) {
	tests := []struct {
		name     string
		vip      func(*v1alpha1.VirtualIP)
		node     func(*Node)
		peers    []Peer
		password string
		want     func(*vrrp.Config)
		// wantErr is a substring of the error; empty means no error.
		wantErr string
	}{
		{name: "defaults and node override", want: func(*vrrp.Config) {}},
		{name: "spec priority for a node without override", node: func(n *Node) { n.Name = "lb2" },
			vip: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](90) }, want: func(c *vrrp.Config) { c.Priority = 90 }},
		{name: "default priority", node: func(n *Node) { n.Name = "lb2" }, want: func(c *vrrp.Config) { c.Priority = 100 }},
		{name: "settings pass through", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.AdvertisementInterval = dur(40 * time.Millisecond)
			v.Spec.PreemptDelay = dur(30 * time.Second)
			v.Spec.Accept = ptr.To(false)
			v.Spec.Preempt = ptr.To(false)
			v.Spec.Probes = append(v.Spec.Probes, probe("file", nil))
			v.Spec.ChecksumMode = "RFC9568"
			v.Spec.Addresses = []string{"192.0.2.100/24", "192.0.2.101"}
		}, want: func(c *vrrp.Config) {
			c.Interval = 40 * time.Millisecond
			c.PreemptDelay = 30 * time.Second
			c.Accept, c.Preempt = false, false
			c.Checksum = packet.ChecksumRFC9568
			c.Addresses = pfxs("192.0.2.100/24", "192.0.2.101/32")
		}},
		{name: "v2 default interval", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Version = 2 },
			want: func(c *vrrp.Config) { c.Version, c.Interval = 2, time.Second }},
		{name: "invalid VirtualIP", vip: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 0 }, wantErr: `VirtualIP "haproxy" is invalid: spec.vrid`},

		// Interface resolution.
		{name: "spec.interface", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth1" },
			want: func(c *vrrp.Config) { c.Interface, c.Primary = "eth1", addr("198.51.100.11") }},
		{name: "nodes[].interface beats spec.interface", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Interface = "eth0"
			v.Spec.Nodes[0].Interface = "eth1"
		}, want: func(c *vrrp.Config) { c.Interface, c.Primary = "eth1", addr("198.51.100.11") }},
		{name: "another node's override does not apply", node: func(n *Node) { n.Name = "lb2" }, vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes[0].Interface = "eth1"
		}, want: func(c *vrrp.Config) { c.Priority = 100 }},
		{name: "interface missing", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "bond0" },
			wantErr: `interface "bond0" (spec.interface) does not exist on the node`},
		{name: "node interface missing", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Interface = "bond0" },
			wantErr: `interface "bond0" (spec.nodes[0].interface) does not exist`},
		{name: "no interface in the subnet", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"203.0.113.10/24"} },
			wantErr: "no interface has an address in the subnet of 203.0.113.10/24: set spec.interface"},
		{name: "bare address inside a node subnet", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"198.51.100.50"} },
			want: func(c *vrrp.Config) {
				c.Interface, c.Primary, c.Addresses = "eth1", addr("198.51.100.11"), pfxs("198.51.100.50/32")
			}},
		{name: "VIP subnet holds the node address", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"198.51.0.1/16"} },
			want: func(c *vrrp.Config) {
				c.Interface, c.Primary, c.Addresses = "eth1", addr("198.51.100.11"), pfxs("198.51.0.1/16")
			}},
		{name: "first address decides", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"198.51.100.50/24", "192.0.2.100/24"} },
			want: func(c *vrrp.Config) {
				c.Interface, c.Primary, c.Addresses = "eth1", addr("198.51.100.11"), pfxs("198.51.100.50/24", "192.0.2.100/24")
			}},
		{name: "two interfaces in the subnet", node: func(n *Node) {
			n.Interfaces = append(n.Interfaces, Interface{Name: "eth2", Index: 4, Up: true, Prefixes: pfxs("192.0.2.12/24")})
		}, wantErr: "interfaces eth0 and eth2 both have an address in the subnet of 192.0.2.100/24: set spec.interface"},
		{name: "an up interface beats a down one", node: func(n *Node) {
			n.Interfaces[1].Up = false
			n.Interfaces = append(n.Interfaces, Interface{Name: "eth2", Index: 4, Up: true, Prefixes: pfxs("192.0.2.12/24")})
		}, want: func(c *vrrp.Config) { c.Interface, c.Primary = "eth2", addr("192.0.2.12") }},
		{name: "a down interface is still chosen when it is the only one", node: func(n *Node) { n.Interfaces[1].Up = false },
			want: func(*vrrp.Config) {}},
		{name: "a bound VIP is neither the match nor the primary", node: func(n *Node) {
			// This node is MASTER: the VIP is on eth0 ahead of its own address, and a /32 VIP on eth1.
			n.Interfaces[1].Prefixes = pfxs("192.0.2.100/24", "192.0.2.11/24")
			n.Interfaces[2].Prefixes = append(n.Interfaces[2].Prefixes, pfx("192.0.2.101/32"))
		}, vip: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.100/24", "192.0.2.101"} },
			want: func(c *vrrp.Config) { c.Addresses = pfxs("192.0.2.100/24", "192.0.2.101/32") }},
		{name: "interface without IPv4", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth1" }, node: func(n *Node) {
			n.Interfaces[2].Prefixes = pfxs("fe80::1:11/64")
		}, wantErr: "interface eth1 has no IPv4 address to send adverts from"},

		// IPv6.
		{name: "IPv6 uses the link-local source", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"2001:db8::100/64"} },
			want: func(c *vrrp.Config) { c.Addresses, c.Primary = pfxs("2001:db8::100/64"), addr("fe80::11") }},
		{name: "IPv6 without link-local", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"2001:db8::100/64"} },
			node:    func(n *Node) { n.Interfaces[1].Prefixes = pfxs("192.0.2.11/24", "2001:db8::11/64") },
			wantErr: "interface eth0 has no IPv6 link-local (fe80::/10) address"},
		// Unicast peers name global addresses and a receiver accepts only adverts from a listed
		// peer, so IPv6 unicast adverts come from the interface's global address.
		{name: "IPv6 unicast uses the global source", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"2001:db8::100/64"}
			v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"2001:db8::12"}}
		}, want: func(c *vrrp.Config) {
			c.Addresses, c.Primary = pfxs("2001:db8::100/64"), addr("2001:db8::11")
			c.Peers, c.Members, c.MembersComplete = addrs("2001:db8::12"), []vrrp.Member{{Addr: addr("2001:db8::12")}}, true
		}},
		{name: "IPv6 unicast without a global address", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"2001:db8::100/64"}
			v.Spec.Interface = "eth0"
			v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"2001:db8::12"}}
		}, node: func(n *Node) { n.Interfaces[1].Prefixes = pfxs("192.0.2.11/24", "fe80::11/64") },
			wantErr: "interface eth0 has no global IPv6 address"},

		// Address owner.
		{name: "priority 255 on the owner", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"192.0.2.11/24"}
			v.Spec.Nodes[0].Priority = ptr.To[int32](255)
		}, want: func(c *vrrp.Config) { c.Priority, c.Addresses = 255, pfxs("192.0.2.11/24") }},
		{name: "priority 255 on a non-owner", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb2", Priority: ptr.To[int32](255)})
		},
			node:    func(n *Node) { n.Name = "lb2" },
			wantErr: "priority 255 is only for the owner of the addresses, but 192.0.2.100 is not an address of eth0: use a priority of 1..254"},

		// Unicast and members.
		{name: "unicast peers from the spec skip the node's own", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.13", "192.0.2.11", "192.0.2.12"}}
		}, want: func(c *vrrp.Config) {
			c.Peers = addrs("192.0.2.12", "192.0.2.13")
			c.Members = []vrrp.Member{{Addr: addr("192.0.2.12")}, {Addr: addr("192.0.2.13")}}
			c.MembersComplete = true
		}},
		{name: "unicast peers from nodes", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.50"}}
			v.Spec.Probes[0].Weight = 20
		}, peers: []Peer{
			{Name: "lb3", Addrs: addrs("192.0.2.13", "2001:db8::13"), Priority: 100},
			{Name: "lb2", Addrs: addrs("192.0.2.12", "::ffff:192.0.2.14"), Priority: 250},
			{Name: "self", Addrs: addrs("192.0.2.11"), Priority: 90},
		}, want: func(c *vrrp.Config) {
			c.Peers = addrs("192.0.2.12", "192.0.2.13", "192.0.2.14", "192.0.2.50")
			c.Members = []vrrp.Member{
				{Addr: addr("192.0.2.12"), MaxPriority: 254},
				{Addr: addr("192.0.2.13"), MaxPriority: 120},
				{Addr: addr("192.0.2.14"), MaxPriority: 254},
				{Addr: addr("192.0.2.50")},
			}
			c.MembersComplete = true
		}},
		{name: "unicast without fromNodes keeps the known priority of a listed peer", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Unicast = &v1alpha1.UnicastSpec{FromNodes: ptr.To(false), Peers: []string{"192.0.2.12"}}
		}, peers: []Peer{{Name: "lb2", Addrs: addrs("192.0.2.12"), Priority: 100}, {Name: "lb3", Addrs: addrs("192.0.2.13"), Priority: 255}},
			want: func(c *vrrp.Config) {
				c.Peers = addrs("192.0.2.12")
				c.Members = []vrrp.Member{{Addr: addr("192.0.2.12"), MaxPriority: 100}}
				c.MembersComplete = true
			}},
		{name: "unicast with no peer at all", vip: func(v *v1alpha1.VirtualIP) { v.Spec.Unicast = &v1alpha1.UnicastSpec{} },
			wantErr: "unicast is set but there is no peer to advertise to"},
		{name: "unicast whose only peer is the node", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.11"}}
		}, peers: []Peer{}, wantErr: "unicast is set but there is no peer"},
		{name: "multicast with cluster peers is complete", peers: []Peer{
			{Name: "lb3", Addrs: addrs("192.0.2.13"), Priority: 0},
			{Name: "lb2", Addrs: addrs("192.0.2.12", "198.51.100.12"), Priority: 255},
		}, want: func(c *vrrp.Config) {
			c.Members = []vrrp.Member{
				{Addr: addr("192.0.2.12"), MaxPriority: 255},
				{Addr: addr("192.0.2.13")},
				{Addr: addr("198.51.100.12"), MaxPriority: 255},
			}
			c.MembersComplete = true
		}},
		{name: "multicast alone in the cluster is complete", peers: []Peer{},
			want: func(c *vrrp.Config) { c.MembersComplete = true }},

		// Authentication.
		{name: "v2 PASS", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
		}, password: "12345678", want: func(c *vrrp.Config) {
			c.Version, c.Interval, c.Password = 2, time.Second, []byte("12345678")
		}},
		{name: "v2 PASS too long", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
		}, password: "123456789", wantErr: `VirtualIP "haproxy": spec.authentication.secretRef: Invalid value: "s/k": the password in Secret "s" key "k" has 9 bytes: PASS authentication takes 1..8 bytes`},
		{name: "v2 PASS empty", vip: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
		}, wantErr: "has 0 bytes"},
		{name: "a password without authentication is ignored", password: "secret", want: func(*vrrp.Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP()
			if tt.vip != nil {
				tt.vip(vip)
			}
			node := testNode()
			if tt.node != nil {
				tt.node(&node)
			}
			var pw []byte
			if tt.password != "" {
				pw = []byte(tt.password)
			}
			got, err := For(vip, node, tt.peers, pw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("For() error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.password) && tt.password != "" {
					t.Errorf("For() error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("For() error = %v", err)
			}
			want := baseConfig()
			tt.want(&want)
			if diff := cmp.Diff(want, got, netipCmp); diff != "" {
				t.Errorf("For() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestForDoesNotAliasInputs(t *testing.T) {
	vip := validVIP()
	vip.Spec.Version = 2
	vip.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
	pw := []byte("secret")
	cfg, err := For(vip, testNode(), nil, pw)
	if err != nil {
		t.Fatal(err)
	}
	pw[0] = 'X'
	if string(cfg.Password) != "secret" {
		t.Errorf("Config.Password = %q changed with the caller's slice", cfg.Password)
	}
}

func TestForIsDeterministic(t *testing.T) {
	vip := validVIP()
	vip.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.30", "192.0.2.20"}}
	peers := []Peer{
		{Name: "c", Addrs: addrs("192.0.2.15", "192.0.2.14")},
		{Name: "a", Addrs: addrs("192.0.2.13")},
		{Name: "b", Addrs: addrs("192.0.2.12")},
	}
	first, err := For(vip, testNode(), peers, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		peers[0], peers[1], peers[2] = peers[2], peers[0], peers[1]
		got, err := For(vip, testNode(), peers, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, got, netipCmp); diff != "" {
			t.Fatalf("For() depends on the order of peers (-want +got):\n%s", diff)
		}
	}
}

func TestNodePriority(t *testing.T) {
	vip := validVIP()
	if got := NodePriority(vip, "lb1"); got != 110 {
		t.Errorf("NodePriority(lb1) = %d, want 110", got)
	}
	if got := NodePriority(vip, "lb2"); got != DefaultPriority {
		t.Errorf("NodePriority(lb2) = %d, want %d", got, DefaultPriority)
	}
	vip.Spec.Priority = ptr.To[int32](90)
	if got := NodePriority(vip, "lb2"); got != 90 {
		t.Errorf("NodePriority(lb2) = %d, want 90", got)
	}
}

func TestSelects(t *testing.T) {
	labels := map[string]string{"node-role.kubernetes.io/lb": "", "zone": "a"}
	lb1 := []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[int32](110)}}
	members := []v1alpha1.NodeOverride{{Name: "lb1"}, {Name: "lb2", Priority: ptr.To[int32](90)}}
	tests := []struct {
		name    string
		sel     *metav1.LabelSelector
		nodes   []v1alpha1.NodeOverride
		node    string
		want    bool
		wantErr string
	}{
		// Without a selector the members are exactly spec.nodes[].
		{name: "nil selector, listed node", nodes: members, node: "lb2", want: true},
		{name: "nil selector, first listed node", nodes: members, node: "lb1", want: true},
		{name: "nil selector, unlisted node", nodes: members, node: "lb3", want: false},
		{name: "nil selector, a node's labels do not matter", nodes: members, node: "web7", want: false},
		// With neither, nothing is selected, and the error says what to write.
		{name: "neither selector nor nodes", node: "lb1", wantErr: MembersRequired},
		{name: "neither, empty nodes", nodes: []v1alpha1.NodeOverride{}, node: "lb1", wantErr: MembersRequired},
		// An empty selector selects every node, listed or not: deliberate.
		{name: "empty selects all", sel: &metav1.LabelSelector{}, node: "web7", want: true},
		{name: "empty selects all, with overrides", sel: &metav1.LabelSelector{}, nodes: lb1, node: "web7", want: true},
		// With a selector, nodes[] only overrides: an unselected listed node stays out.
		{name: "selector decides over nodes[]", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "b"}}, nodes: lb1, node: "lb1", want: false},
		{name: "matchLabels", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}}, node: "web7", want: true},
		{name: "matchLabels mismatch", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "b"}}, node: "web7", want: false},
		{name: "expression", sel: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}},
			{Key: "broken", Operator: metav1.LabelSelectorOpDoesNotExist},
		}}, node: "web7", want: true},
		{name: "invalid", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key": ""}}, node: "lb1", wantErr: "spec.nodeSelector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP()
			vip.Spec.NodeSelector = tt.sel
			vip.Spec.Nodes = tt.nodes
			got, err := Selects(vip, tt.node, labels)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Selects() error = %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Selects() error = %v, want one containing %q", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Selects() = %v, want %v", got, tt.want)
			}
		})
	}
}
