package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	probepkg "github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

func dur(d time.Duration) *v1alpha1.Duration { return &v1alpha1.Duration{Duration: d} }

// validVIP is the seed-style HAProxy pair of pkg/desired's tests: every case starts from it and
// breaks one rule.
func validVIP(name string) *v1alpha1.VirtualIP {
	return &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:      51,
			Addresses: []string{"192.0.2.100/24"},
			Nodes:     []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[int32](110)}},
			Probes: []v1alpha1.ProbeSpec{{
				Name:     "haproxy",
				Process:  &v1alpha1.ProcessProbe{Name: "haproxy"},
				Interval: dur(2 * time.Second),
				Fall:     ptr.To[int32](2),
				Rise:     ptr.To[int32](2),
				Weight:   -20,
			}},
		},
	}
}

func probe(name string, mut func(*v1alpha1.ProbeSpec)) v1alpha1.ProbeSpec {
	p := v1alpha1.ProbeSpec{Name: name, File: &v1alpha1.FileProbe{Path: "/run/ok"}}
	if mut != nil {
		mut(&p)
	}
	return p
}

func pass() *v1alpha1.AuthenticationSpec {
	return &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "vrrp", Key: "password"}}
}

func v2(v *v1alpha1.VirtualIP) {
	v.Spec.Version = 2
	v.Spec.AdvertisementInterval = dur(time.Second)
}

func addresses(n int) []string {
	var a []string
	for i := range n {
		a = append(a, fmt.Sprintf("198.18.1.%d", i+1))
	}
	return a
}

// rejected are objects the API server must refuse. It holds a case for each rule
// docs/design.md §1.1 lists and every case pkg/desired's TestValidate rejects (same names), so that
// TestCRDRejects also proves the CRD refuses what the agent refuses. Each want is a part of the API
// server's answer: the field path and the words that say what to change.
var rejected = []struct {
	name string
	mut  func(*v1alpha1.VirtualIP)
	want []string
	// agentAccepts says why desired.Validate accepts the object; empty: it rejects it too.
	agentAccepts string
}{
	// metadata
	{name: "missing name", mut: func(v *v1alpha1.VirtualIP) { v.Name = "" }, want: []string{"name or generateName is required"}},
	{name: "bad name", mut: func(v *v1alpha1.VirtualIP) { v.Name = "Bad_Name" }, want: []string{`metadata.name: Invalid value: "Bad_Name"`, "RFC 1123 subdomain"}},

	// vrid
	{name: "vrid 0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 0 }, want: []string{"spec.vrid: Invalid value: 0: vrid must be 1..255 (keepalived's virtual_router_id"}},
	{name: "vrid 256", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 256 }, want: []string{"spec.vrid: Invalid value: 256: vrid must be 1..255"}},

	// version
	{name: "version 4", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Version = 4 }, want: []string{"spec.version: Unsupported value: 4", `supported values: "2", "3"`}},
	{name: "IPv6 needs v3", mut: func(v *v1alpha1.VirtualIP) {
		v2(v)
		v.Spec.Addresses = []string{"2001:db8::1"}
	}, want: []string{"spec.version: Invalid value: VRRPv2 carries only IPv4: set version: 3 for IPv6 addresses"}},
	{name: "PASS with v3", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Authentication = pass() },
		want: []string{"spec.authentication: Invalid value: authentication exists only in VRRPv2 (RFC 5798 §9 removed it): set version: 2 or remove authentication"}},
	{name: "auth AH, empty ref", mut: func(v *v1alpha1.VirtualIP) {
		v2(v)
		v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "AH"}
	}, want: []string{`spec.authentication.type: Unsupported value: "AH"`, `supported values: "PASS"`,
		"spec.authentication.secretRef.name: Invalid value", "spec.authentication.secretRef.key: Invalid value"}},

	// addresses
	{name: "no addresses", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{} },
		want: []string{"spec.addresses: Invalid value", `list at least one virtual address, e.g. ["192.0.2.10/24"]`}},
	{name: "null addresses", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = nil }, want: []string{"spec.addresses"}},
	{name: "65 addresses", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = addresses(65) },
		want: []string{"spec.addresses: Too many: 65: must have at most 64 items"}},
	{name: "unparsable address", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.300"} },
		want: []string{`spec.addresses[0]: Invalid value: "192.0.2.300": write an IP address or CIDR such as 192.0.2.10, 192.0.2.10/24 or 2001:db8::10/64`}},
	{name: "bad address string", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"vip.example.com"} },
		want: []string{`spec.addresses[0]: Invalid value: "vip.example.com": write an IP address or CIDR`}},
	{name: "leading zero", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.010"} },
		want: []string{`spec.addresses[0]: Invalid value: "192.0.2.010": write an IP address or CIDR`, "no leading zeros"}},
	{name: "bad prefix length", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.1/33"} },
		want: []string{`spec.addresses[0]: Invalid value: "192.0.2.1/33": write an IP address or CIDR`}},
	{name: "/0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.1/0"} },
		want: []string{`spec.addresses[0]: Invalid value: "192.0.2.1/0": a /0 prefix would claim every address: use the subnet's prefix length (e.g. /24) or a bare address`}},
	{name: "zone", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"fe80::1%eth0"} },
		want: []string{`spec.addresses[0]: Invalid value: "fe80::1%eth0": write an IP address or CIDR`, "no zone"}},
	{name: "mapped", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"::ffff:192.0.2.1"} },
		want: []string{`spec.addresses[0]: Invalid value: "::ffff:192.0.2.1": write an IP address or CIDR`, "no IPv4-mapped IPv6 address"}},
	{name: "multicast, loopback, unspecified, broadcast", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Addresses = []string{"224.0.0.18", "127.0.0.1", "0.0.0.0", "255.255.255.255"}
	}, want: []string{
		`spec.addresses[0]: Invalid value: "224.0.0.18": a virtual address must be a unicast address, not unspecified, loopback, multicast or broadcast`,
		`spec.addresses[1]: Invalid value: "127.0.0.1": a virtual address must be a unicast address`,
		`spec.addresses[2]: Invalid value: "0.0.0.0": a virtual address must be a unicast address`,
		`spec.addresses[3]: Invalid value: "255.255.255.255": a virtual address must be a unicast address`}},
	{name: "IPv6 multicast", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"ff02::12"} },
		want: []string{`spec.addresses[0]: Invalid value: "ff02::12": a virtual address must be a unicast address`}},
	{name: "duplicate addresses", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.100/24", "192.0.2.100"} },
		want: []string{"spec.addresses: Invalid value: each address may be listed once (192.0.2.10 and 192.0.2.10/24 are the same address): remove the duplicates; got 192.0.2.100/24, 192.0.2.100"}},
	{name: "exact duplicate addresses", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.100", "192.0.2.100"} },
		want: []string{`spec.addresses[1]: Duplicate value: "192.0.2.100"`}},
	{name: "duplicate after normalisation", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Addresses = []string{"192.0.2.100/24", "192.0.2.100", "2001:db8::1", "192.0.2.101/32", "192.0.2.101/24"}
	}, want: []string{"spec.addresses: Invalid value: each address may be listed once", "spec.addresses: Invalid value: all addresses of a VirtualIP are one family: move the IPv6 addresses to another VirtualIP"}},
	{name: "duplicate IPv6 spelled differently", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"2001:db8::a/64", "2001:DB8:0:0::A"} },
		want: []string{"spec.addresses: Invalid value: each address may be listed once", "remove the duplicates; got 2001:db8::a/64, 2001:DB8:0:0::A"}},
	{name: "mixed families", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"2001:db8::1", "192.0.2.1"} },
		want: []string{"spec.addresses: Invalid value: all addresses of a VirtualIP are one family: move the IPv4 addresses to another VirtualIP; got 2001:db8::1, 192.0.2.1"}},
	{name: "address too long", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{strings.Repeat("1", 65)} },
		want: []string{"spec.addresses[0]: Too long: may not be more than 64 bytes"}},

	// advertisementInterval
	{name: "v3 interval 15ms", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(15 * time.Millisecond) },
		want: []string{"spec.advertisementInterval: Invalid value", "advertisementInterval must be a multiple of 10ms between 10ms and 40.95s for version 3", "got 15ms"}},
	{name: "v3 5ms", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(5 * time.Millisecond) },
		want: []string{"multiple of 10ms between 10ms and 40.95s for version 3", "got 5ms"}},
	{name: "v3 41s", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(41 * time.Second) },
		want: []string{"multiple of 10ms between 10ms and 40.95s for version 3", "got 41s"}},
	{name: "v3 negative", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(-time.Second) },
		want: []string{"multiple of 10ms between 10ms and 40.95s for version 3", "got -1s"}},
	{name: "v2 interval 1500ms", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Version = 2
		v.Spec.AdvertisementInterval = dur(1500 * time.Millisecond)
	}, want: []string{"spec.advertisementInterval: Invalid value", "advertisementInterval must be whole seconds between 1s and 255s for version 2", "got 1.5s"}},
	{name: "v2 256s", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Version = 2
		v.Spec.AdvertisementInterval = dur(256 * time.Second)
	}, want: []string{"whole seconds between 1s and 255s for version 2", "got 4m16s"}},
	{name: "v2 100ms", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Version = 2
		v.Spec.AdvertisementInterval = dur(100 * time.Millisecond)
	}, want: []string{"set version: 3 for sub-second intervals", "got 100ms"}},

	// priorities and nodes
	{name: "priority 0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](0) },
		want: []string{"spec.priority: Invalid value: 0: priority must be 1..254; 255 is only for the owner of the addresses"}},
	{name: "priority 256", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](256) },
		want: []string{"spec.priority: Invalid value: 256: priority must be 1..254; 255 is only for the owner of the addresses"}},
	// Only one node can own the addresses (RFC 5798 §5.2.4).
	{name: "priority 255 for the whole group", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](255) },
		want: []string{"spec.priority: Invalid value: 255: priority 255 here would make every selected node claim to own the addresses, and only one node can (RFC 5798 §5.2.4): set 1..254 here, and 255 only in the nodes[] override of the one node that has the addresses as its own interface addresses"}},
	{name: "priority 255 for two nodes", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Nodes = []v1alpha1.NodeOverride{
			{Name: "lb1", Priority: ptr.To[int32](255)}, {Name: "lb2", Priority: ptr.To[int32](100)},
			{Name: "lb3", Priority: ptr.To[int32](255)},
		}
	}, want: []string{"spec.nodes: Invalid value", "only one node can own the addresses, but several nodes have priority 255: keep 255 only for the node that has the addresses as its own interface addresses, and set 1..254 for the others"}},
	{name: "node priority 0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Priority = ptr.To[int32](0) },
		want: []string{"spec.nodes[0].priority: Invalid value: 0: priority must be 1..254; 255 is only for the owner"}},
	{name: "node priority 256", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Priority = ptr.To[int32](vrrp.OwnerPriority + 1) },
		want: []string{"spec.nodes[0].priority: Invalid value: 256: priority must be 1..254; 255 is only for the owner"}},
	{name: "duplicate node, nameless node", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb1"}, v1alpha1.NodeOverride{})
	}, want: []string{`spec.nodes[1]: Duplicate value: {"name":"lb1"}`, `spec.nodes[2].name: Invalid value: "": spec.nodes[2].name in body should be at least 1 chars long`}},
	{name: "node interface", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Interface = "eth0:1" },
		want: []string{`spec.nodes[0].interface: Invalid value: "eth0:1": interface must be a Linux link name such as eth0: no '/', ':' (an alias like eth0:1 is not a link) or whitespace, not . or ..`}},
	{name: "node name too long", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Name = strings.Repeat("n", 254) },
		want: []string{"spec.nodes[0].name: Too long: may not be more than 253 bytes"}},

	// interface
	{name: "interface too long", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "abcdefghijklmnop" },
		want: []string{"spec.interface: Too long: may not be more than 15 bytes"}},
	{name: "interface slash", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth/0" },
		want: []string{`spec.interface: Invalid value: "eth/0": interface must be a Linux link name such as eth0`}},
	{name: "interface space", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth 0" },
		want: []string{`spec.interface: Invalid value: "eth 0": interface must be a Linux link name`}},
	// Whitespace as Go's unicode.IsSpace sees it (probe.CheckInterfaceName), not only CEL's \s.
	{name: "interface vertical tab", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth\v0" },
		want: []string{`spec.interface: Invalid value: "eth\v0": interface must be a Linux link name`}},
	{name: "interface no-break space", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth\u00a00" },
		want: []string{`spec.interface: Invalid value: "eth\u00a00": interface must be a Linux link name`}},
	{name: "interface NUL", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth\x000" },
		want: []string{`interface must be a Linux link name`}},
	{name: "interface dot", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = ".." },
		want: []string{`spec.interface: Invalid value: "..": interface must be a Linux link name`}},

	// preempt
	{name: "preemptDelay negative", mut: func(v *v1alpha1.VirtualIP) { v.Spec.PreemptDelay = dur(-time.Second) },
		want: []string{`spec.preemptDelay: Invalid value: "-1s": preemptDelay must be between 0s (preempt at once) and 1h`}},
	{name: "preemptDelay 2h", mut: func(v *v1alpha1.VirtualIP) { v.Spec.PreemptDelay = dur(2 * time.Hour) },
		want: []string{`spec.preemptDelay: Invalid value: "2h0m0s": preemptDelay must be between 0s (preempt at once) and 1h`}},

	// announcements
	{name: "announcements count 0 and refreshCount 17", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Announcements = &v1alpha1.AnnouncementSpec{Count: ptr.To[int32](0), RefreshCount: ptr.To[int32](17)}
	}, want: []string{"spec.announcements.count: Invalid value: 0: spec.announcements.count in body should be greater than or equal to 1",
		"spec.announcements.refreshCount: Invalid value: 17: spec.announcements.refreshCount in body should be less than or equal to 16"}},
	{name: "announcements repeatDelay negative", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Announcements = &v1alpha1.AnnouncementSpec{RepeatDelay: dur(-time.Second)}
	}, want: []string{`spec.announcements.repeatDelay: Invalid value: "-1s": repeatDelay must be between 0s (no second burst) and 1h`}},
	{name: "announcements refreshInterval 500ms", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Announcements = &v1alpha1.AnnouncementSpec{RefreshInterval: dur(500 * time.Millisecond)}
	}, want: []string{`spec.announcements.refreshInterval: Invalid value: "500ms": refreshInterval must be between 1s and 24h (remove it for no refresh)`}},
	{name: "announcements refreshInterval 25h", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Announcements = &v1alpha1.AnnouncementSpec{RefreshInterval: dur(25 * time.Hour)}
	}, want: []string{`refreshInterval must be between 1s and 24h`}},

	// notify
	{name: "notify empty", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Notify = &v1alpha1.NotifySpec{} },
		want: []string{"spec.notify: Invalid value: give at least one of master, backup, fault, stop or all (or remove notify)"}},
	{name: "notify relative program", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Notify = &v1alpha1.NotifySpec{Master: []string{"on-master.sh", "--x"}}
	}, want: []string{"spec.notify.master: Invalid value: give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup)"}},
	{name: "notify too many args and a long one", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Notify = &v1alpha1.NotifySpec{Fault: append([]string{"/bin/true"}, make([]string, 32)...), Stop: []string{"/bin/true", strings.Repeat("a", 1025)}}
	}, want: []string{"spec.notify.fault: Too many: 33: must have at most 32 items", "spec.notify.stop[1]: Too long: may not be more than 1024 bytes"}},
	{name: "notify timeout 50ms", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Notify = &v1alpha1.NotifySpec{Master: []string{"/bin/true"}, Timeout: dur(50 * time.Millisecond)}
	}, want: []string{`spec.notify.timeout: Invalid value: "50ms": timeout must be between 100ms and 10m`}},
	{name: "notify timeout 11m", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Notify = &v1alpha1.NotifySpec{Master: []string{"/bin/true"}, Timeout: dur(11 * time.Minute)}
	}, want: []string{`timeout must be between 100ms and 10m`}},
	{name: "preempt false with only weighted probes", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Preempt = ptr.To(false) },
		want: []string{"spec.preempt: Invalid value", "preempt: false with only weighted probes can never move the addresses",
			"set preempt: true, or give a probe weight 0"}},

	// unicast
	{name: "peers: bad, CIDR, zone, multicast", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.11", "nope", "192.0.2.12/24", "fe80::1%eth0", "224.0.0.18"}}
	}, want: []string{
		`spec.unicast.peers[1]: Invalid value: "nope": write a peer as an IP address without prefix length or zone, e.g. 192.0.2.12 or 2001:db8::12`,
		`spec.unicast.peers[2]: Invalid value: "192.0.2.12/24": write a peer as an IP address`,
		`spec.unicast.peers[3]: Invalid value: "fe80::1%eth0": write a peer as an IP address`,
		`spec.unicast.peers[4]: Invalid value: "224.0.0.18": a unicast peer is the unicast address of another router, not unspecified, loopback, multicast or broadcast`}},
	{name: "peers: family", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.11", "2001:db8::1"}}
	}, want: []string{"spec.unicast.peers: Invalid value: unicast.peers must be of the family of the addresses (IPv4 peers for IPv4 addresses, IPv6 peers for IPv6 addresses); got addresses 192.0.2.100/24 and peers 192.0.2.11, 2001:db8::1"}},
	{name: "peers: duplicate", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"2001:db8::11", "2001:DB8::11"}}
		v.Spec.Addresses = []string{"2001:db8::100"}
	}, want: []string{"spec.unicast.peers: Invalid value: each peer may be listed once (2001:db8::1 and 2001:DB8::1 are the same address): remove the duplicates; got 2001:db8::11, 2001:DB8::11"}},
	{name: "peers: VIP", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.11", "192.0.2.100"}}
	}, want: []string{"spec.unicast.peers: Invalid value: unicast.peers lists the routers' own addresses and cannot contain a virtual address; got addresses 192.0.2.100/24 and peers 192.0.2.11, 192.0.2.100"}},
	{name: "peers: bad, CIDR, zone, family, duplicate, multicast, VIP", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{
			"192.0.2.11", "nope", "192.0.2.12/24", "fe80::1%eth0", "2001:db8::1", "192.0.2.11", "224.0.0.18", "192.0.2.100",
		}}
	}, want: []string{`spec.unicast.peers[5]: Duplicate value: "192.0.2.11"`}},
	{name: "peer IPv4-mapped", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"::ffff:192.0.2.11"}}
	},
		want:         []string{`spec.unicast.peers[0]: Invalid value: "::ffff:192.0.2.11": write a peer as an IP address`},
		agentAccepts: "the agent reads an IPv4-mapped peer as its IPv4 address; the CEL ip library refuses the mapped form"},
	{name: "peer too long", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{strings.Repeat("1", 46)}}
	},
		want: []string{"spec.unicast.peers[0]: Too long: may not be more than 45 bytes"}},

	// members: nodeSelector or nodes[]; the message says what to write.
	{name: "neither nodeSelector nor nodes", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes = nil },
		want: []string{"spec.nodeSelector: Required value: " + desired.MembersRequired}},
	{name: "empty nodes and no nodeSelector", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes = []v1alpha1.NodeOverride{} },
		want: []string{"spec.nodeSelector: Required value: " + desired.MembersRequired}},

	// nodeSelector
	{name: "selector bad key", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"bad key": "x"}}
	}, want: []string{"spec.nodeSelector: Invalid value: matchLabels keys are label keys: an optional DNS subdomain prefix and '/', then a name of at most 63 characters"}},
	{name: "selector bad operator", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
	}, want: []string{"spec.nodeSelector: Invalid value: a matchExpressions operator is In, NotIn, Exists or DoesNotExist"}},
	{name: "selector In without values", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn}}}
	}, want: []string{"spec.nodeSelector: Invalid value: matchExpressions with In or NotIn need values"}},
	{name: "selector Exists with values", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpExists, Values: []string{"b"}}}}
	}, want: []string{"spec.nodeSelector: Invalid value: matchExpressions with Exists or DoesNotExist take no values"}},

	{name: "checksumMode", mut: func(v *v1alpha1.VirtualIP) { v.Spec.ChecksumMode = "None" },
		want: []string{`spec.checksumMode: Unsupported value: "None"`, `supported values: "PseudoHeader", "RFC9568"`}},
	{name: "secret name too long", mut: func(v *v1alpha1.VirtualIP) {
		v2(v)
		v.Spec.Authentication = pass()
		v.Spec.Authentication.SecretRef.Name = strings.Repeat("s", 254)
	}, want: []string{"spec.authentication.secretRef.name: Too long: may not be more than 253 bytes"}},
	{name: "secret key too long", mut: func(v *v1alpha1.VirtualIP) {
		v2(v)
		v.Spec.Authentication = pass()
		v.Spec.Authentication.SecretRef.Key = strings.Repeat("k", v1alpha1.MaxNameLength+1)
	}, want: []string{"spec.authentication.secretRef.key: Too long: may not be more than 253 bytes"}},

	// probes
	{name: "probe names", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", nil), probe("a", nil), probe("", nil), probe("Bad_Name", nil)}
	}, want: []string{`spec.probes[1]: Duplicate value: {"name":"a"}`, `spec.probes[3].name: Invalid value: "Bad_Name": a probe name is a DNS label`}},
	{name: "probe name not a DNS label", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("Bad_Name", nil)}
	}, want: []string{`spec.probes[0].name: Invalid value: "Bad_Name": a probe name is a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit`}},
	{name: "probe name too long", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Probes[0].Name = strings.Repeat("p", 64) },
		want: []string{"spec.probes[0].name: Too long: may not be more than 63 bytes"}},
	{name: "probe without check", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", func(p *v1alpha1.ProbeSpec) { p.File = nil })}
	}, want: []string{"spec.probes[0]: Invalid value", "probe a checks nothing: set exactly one of process, tcp, http, exec, interface, file"}},
	{name: "probe with two checks", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", func(p *v1alpha1.ProbeSpec) { p.TCP = &v1alpha1.TCPProbe{Address: "x:1"} })}
	}, want: []string{"spec.probes[0]: Invalid value", "probe a checks one thing but sets tcp and file: keep exactly one, or split it into several probes"}},
	{name: "fall 0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Probes[0].Fall = ptr.To[int32](0) },
		want: []string{"spec.probes[0].fall: Invalid value: 0: fall must be 1..255 consecutive failures"}},
	{name: "probe numbers", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", func(p *v1alpha1.ProbeSpec) {
			p.Fall, p.Rise, p.Weight = ptr.To[int32](0), ptr.To[int32](256), 254
		}), probe("b", func(p *v1alpha1.ProbeSpec) { p.Weight = -254 }),
			probe("c", func(p *v1alpha1.ProbeSpec) { p.Weight, p.Fall, p.Rise = -253, ptr.To[int32](255), ptr.To[int32](1) })}
	}, want: []string{"spec.probes[0].fall: Invalid value: 0: fall must be 1..255", "spec.probes[0].rise: Invalid value: 256: rise must be 1..255 consecutive successes",
		"spec.probes[0].weight: Invalid value: 254: weight must be -253..253 (0: FAULT while failing; negative: added while failing; positive: added while succeeding)",
		"spec.probes[1].weight: Invalid value: -254: weight must be -253..253"}},
	{name: "probe interval and timeout", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("a", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(0) }),
			probe("b", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(2 * time.Hour) }),
			probe("c", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(0) }),
			probe("d", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(2 * time.Second) }), // default interval 1s
			probe("e", func(p *v1alpha1.ProbeSpec) { p.Interval, p.Timeout = dur(3*time.Second), dur(2*time.Second) }),
		}
	}, want: []string{
		`spec.probes[0].interval: Invalid value: "0s": interval must be between 10ms and 1h, e.g. 1s (a probe checks at most 100 times a second)`,
		`spec.probes[1].interval: Invalid value: "2h0m0s": interval must be between 10ms and 1h`,
		`spec.probes[2].timeout: Invalid value: "0s": timeout must be at least 1ms and at most the interval, e.g. 500ms`,
		"spec.probes[3].timeout: Invalid value: timeout must be at most the interval (1s) so that checks never overlap; got 2s"}},
	// An interval of 1ns kept a core busy.
	{name: "probe interval and timeout lower bounds", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("a", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(1) }),
			probe("b", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(9 * time.Millisecond) }),
			probe("d", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(1) }),
			probe("e", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(999 * time.Microsecond) }),
			probe("h", func(p *v1alpha1.ProbeSpec) {
				p.Interval, p.Timeout = dur(10*time.Millisecond), dur(11*time.Millisecond)
			}),
		}
	}, want: []string{
		`spec.probes[0].interval: Invalid value: "1ns": interval must be between 10ms and 1h`,
		`spec.probes[1].interval: Invalid value: "9ms": interval must be between 10ms and 1h`,
		`spec.probes[2].timeout: Invalid value: "1ns": timeout must be at least 1ms and at most the interval`,
		`spec.probes[3].timeout: Invalid value: "999µs": timeout must be at least 1ms and at most the interval`,
		"spec.probes[4].timeout: Invalid value: timeout must be at most the interval (10ms) so that checks never overlap; got 11ms"}},
	{name: "probe targets", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("tcp-noport", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.TCP = &v1alpha1.TCPProbe{Address: "127.0.0.1"} }),
			probe("tcp-nohost", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.TCP = &v1alpha1.TCPProbe{Address: ":80"} }),
			probe("tcp-port", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.TCP = &v1alpha1.TCPProbe{Address: "h:70000"} }),
			probe("http-scheme", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.HTTP = &v1alpha1.HTTPProbe{URL: "ftp://h/x"} }),
			probe("http-parse", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.HTTP = &v1alpha1.HTTPProbe{URL: "http://[::1"} }),
			probe("http-host", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.HTTP = &v1alpha1.HTTPProbe{URL: "http:///x"} }),
			probe("http-status", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/", ExpectedStatus: ptr.To[int32](99)}
			}),
			probe("exec-rel", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.Exec = &v1alpha1.ExecProbe{Command: []string{"pgrep", "x"}}
			}),
			probe("exec-empty", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Exec = &v1alpha1.ExecProbe{Command: []string{}} }),
			probe("iface", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Interface = &v1alpha1.InterfaceProbe{Name: "a b"} }),
			probe("file", func(p *v1alpha1.ProbeSpec) { p.File.Path = "run/ok" }),
			probe("proc", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.Process = &v1alpha1.ProcessProbe{Name: "sbin/haproxy"}
			}),
		}
	}, want: []string{
		`spec.probes[0].tcp.address: Invalid value: "127.0.0.1": write host:port with a port 1..65535, e.g. 127.0.0.1:8404 or [::1]:8404`,
		`spec.probes[1].tcp.address: Invalid value: ":80": write host:port`,
		`spec.probes[2].tcp.address: Invalid value: "h:70000": write host:port`,
		`spec.probes[3].http.url: Invalid value: "ftp://h/x": write an absolute http:// or https:// URL with a host, e.g. http://127.0.0.1:8080/healthz`,
		`spec.probes[4].http.url: Invalid value: "http://[::1": write an absolute http:// or https:// URL`,
		`spec.probes[5].http.url: Invalid value: "http:///x": write an absolute http:// or https:// URL`,
		"spec.probes[6].http.expectedStatus: Invalid value: 99: expectedStatus must be an HTTP status code 100..599, or be omitted for any 2xx or 3xx",
		`spec.probes[7].exec.command: Invalid value: give the program's absolute path as command[0] (there is no shell and no PATH lookup), e.g. /usr/bin/pgrep; got "pgrep"`,
		"spec.probes[8].exec.command: Invalid value: give the command as an argv list",
		`spec.probes[9].interface.name: Invalid value: "a b": interface must be a Linux link name`,
		`spec.probes[10].file.path: Invalid value: "run/ok": give an absolute path, e.g. /run/haproxy.ok`,
		`spec.probes[11].process.name: Invalid value: "sbin/haproxy": give the process name as the kernel keeps it (as pgrep -x), not a path: e.g. haproxy`,
	}},
	{name: "process name too long", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Probes[0].Process.Name = "/usr/sbin/haproxy" },
		want: []string{"spec.probes[0].process.name: Too long: may not be more than 15 bytes"}},
	{name: "file path too long", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("f", func(p *v1alpha1.ProbeSpec) { p.File.Path = "/" + strings.Repeat("x", 4096) })}
	}, want: []string{"spec.probes[0].file.path: Too long: may not be more than 4096 bytes"}},
	{name: "url too long", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("h", func(p *v1alpha1.ProbeSpec) {
			p.File = nil
			p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/" + strings.Repeat("x", 2040)}
		})}
	}, want: []string{"spec.probes[0].http.url: Too long: may not be more than 2048 bytes"}},
	{name: "exec argument too long", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("e", func(p *v1alpha1.ProbeSpec) {
			p.File = nil
			p.Exec = &v1alpha1.ExecProbe{Command: []string{"/bin/x", strings.Repeat("x", 1025)}}
		})}
	}, want: []string{"spec.probes[0].exec.command[1]: Too long: may not be more than 1024 bytes"}},
	{name: "tcp address too long", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("t", func(p *v1alpha1.ProbeSpec) {
			p.File = nil
			p.TCP = &v1alpha1.TCPProbe{Address: strings.Repeat("h", v1alpha1.MaxHostPortLength-4) + ":8404"}
		})}
	}, want: []string{"spec.probes[0].tcp.address: Too long: may not be more than 261 bytes"}},
	// interface names are one type (v1alpha1.InterfaceName) wherever they appear.
	{name: "probe interface names", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("alias", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Interface = &v1alpha1.InterfaceProbe{Name: "eth0:1"} }),
			probe("dot", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Interface = &v1alpha1.InterfaceProbe{Name: "."} }),
		}
	}, want: []string{
		`spec.probes[0].interface.name: Invalid value: "eth0:1": interface must be a Linux link name such as eth0: no '/', ':' (an alias like eth0:1 is not a link)`,
		`spec.probes[1].interface.name: Invalid value: ".": interface must be a Linux link name`}},
	// A Too long error stops the API server before the CEL rules: a case of its own.
	{name: "probe interface name too long", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{probe("long", func(p *v1alpha1.ProbeSpec) {
			p.File = nil
			p.Interface = &v1alpha1.InterfaceProbe{Name: strings.Repeat("e", vrrp.MaxInterfaceName+1)}
		})}
	}, want: []string{"spec.probes[0].interface.name: Too long: may not be more than 15 bytes"}},
	{name: "node interface too long", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Nodes[0].Interface = strings.Repeat("e", vrrp.MaxInterfaceName+1)
	}, want: []string{"spec.nodes[0].interface: Too long: may not be more than 15 bytes"}},
	{name: "17 probes", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = nil
		for i := range 17 {
			v.Spec.Probes = append(v.Spec.Probes, probe(fmt.Sprintf("p%d", i), nil))
		}
	}, want: []string{"spec.probes: Too many: 17: must have at most 16 items"}},
}

// TestCRDRejects: each invalid object is refused by the API server with its message, and
// desired.Validate refuses it too (the agent re-validates objects written before a rule existed).
func TestCRDRejects(t *testing.T) {
	ctx := requireAPIServer(t)
	for i, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP(fmt.Sprintf("reject-%d", i))
			tt.mut(vip)

			errs := desired.Validate(vip)
			switch {
			case tt.agentAccepts == "" && len(errs) == 0:
				t.Errorf("desired.Validate accepts what the CRD rejects; make them agree or set agentAccepts")
			case tt.agentAccepts != "" && len(errs) > 0:
				t.Errorf("desired.Validate rejects it now (%v): drop agentAccepts", errs.ToAggregate())
			}

			err := k8s.Create(ctx, vip, client.DryRunAll)
			if err == nil {
				t.Fatalf("the API server accepted %+v", vip.Spec)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the API server's error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// accepted are valid objects: the API server and desired.Validate accept them. They are
// pkg/desired's TestValidate valid cases plus the boundaries of every range.
var accepted = []struct {
	name string
	mut  func(*v1alpha1.VirtualIP)
}{
	{name: "valid seed", mut: func(*v1alpha1.VirtualIP) {}},
	{name: "valid v2 with PASS", mut: func(v *v1alpha1.VirtualIP) {
		v2(v)
		v.Spec.Authentication = pass()
	}},
	{name: "valid IPv6 unicast", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Addresses = []string{"2001:db8::100/64", "2001:db8::101"}
		v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"2001:db8::11", "2001:db8::12"}}
	}},
	{name: "IPv6 link-local first address", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Addresses = []string{"fe80::100/64", "2001:db8::101"}
	}},
	{name: "valid bare address and every probe type", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Addresses = []string{"198.18.0.10"}
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("p", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Process = &v1alpha1.ProcessProbe{Name: "haproxy"} }),
			probe("t", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.TCP = &v1alpha1.TCPProbe{Address: "[::1]:8404"} }),
			probe("t4", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.TCP = &v1alpha1.TCPProbe{Address: "localhost:65535"} }),
			probe("h", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.HTTP = &v1alpha1.HTTPProbe{URL: "https://127.0.0.1:8404/healthz", ExpectedStatus: ptr.To[int32](204)}
			}),
			probe("e", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.Exec = &v1alpha1.ExecProbe{Command: []string{"/usr/bin/true"}}
			}),
			probe("i", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Interface = &v1alpha1.InterfaceProbe{Name: "eth0"} }),
			probe("f", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(time.Second); p.Interval = dur(time.Second) }),
		}
	}},
	{name: "vrid 1", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 1 }},
	{name: "vrid 255", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 255 }},
	{name: "64 addresses", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = addresses(64) }},
	{name: "v3 40.95s", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(40950 * time.Millisecond) }},
	{name: "v3 10ms", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(10 * time.Millisecond) }},
	{name: "v2 255s", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Version = 2
		v.Spec.AdvertisementInterval = dur(255 * time.Second)
	}},
	{name: "priority 1", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](1) }},
	{name: "priority 255 for one node is left to For", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb2", Priority: ptr.To[int32](255)})
	}},
	{name: "priority 254 for the whole group", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](254) }},
	{name: "interface 15 chars", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "abcdefghijklmno" }},
	{name: "selector valid", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}}
	}},
	{name: "empty nodeSelector without nodes", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Nodes = nil
		v.Spec.NodeSelector = &metav1.LabelSelector{}
	}},
	{name: "preemptDelay 1h", mut: func(v *v1alpha1.VirtualIP) { v.Spec.PreemptDelay = dur(time.Hour) }},
	{name: "virtualMAC, announcements and notify at their bounds", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.VirtualMAC = true
		v.Spec.Announcements = &v1alpha1.AnnouncementSpec{Count: ptr.To[int32](16), RepeatDelay: dur(0),
			RefreshInterval: dur(time.Second), RefreshCount: ptr.To[int32](1)}
		v.Spec.Notify = &v1alpha1.NotifySpec{Master: append([]string{"/usr/local/bin/on-master"}, make([]string, 31)...),
			All: []string{"/usr/local/bin/notify", strings.Repeat("a", 1024)}, Timeout: dur(10 * time.Minute)}
	}},
	{name: "announcements at the other bounds, notify timeout 100ms", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Announcements = &v1alpha1.AnnouncementSpec{Count: ptr.To[int32](1), RepeatDelay: dur(time.Hour),
			RefreshInterval: dur(24 * time.Hour), RefreshCount: ptr.To[int32](16)}
		v.Spec.Notify = &v1alpha1.NotifySpec{Stop: []string{"/bin/true"}, Timeout: dur(100 * time.Millisecond)}
	}},
	{name: "nopreempt with a weight-0 probe too", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Preempt = ptr.To(false)
		v.Spec.Probes = append(v.Spec.Probes, probe("file", nil))
	}},
	{name: "nopreempt without probes", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Preempt = ptr.To(false)
		v.Spec.Probes = nil
	}},
	{name: "checksumMode RFC9568", mut: func(v *v1alpha1.VirtualIP) { v.Spec.ChecksumMode = "RFC9568" }},
	{name: "longest strings", mut: func(v *v1alpha1.VirtualIP) {
		v2(v)
		v.Spec.Authentication = pass()
		v.Spec.Authentication.SecretRef.Name = strings.Repeat("s", v1alpha1.MaxNameLength)
		v.Spec.Authentication.SecretRef.Key = strings.Repeat("k", v1alpha1.MaxNameLength)
		v.Spec.Nodes[0].Name = strings.Repeat("n", v1alpha1.MaxNameLength)
		v.Spec.Nodes[0].Interface = strings.Repeat("e", vrrp.MaxInterfaceName)
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("f", func(p *v1alpha1.ProbeSpec) { p.File.Path = "/" + strings.Repeat("x", v1alpha1.MaxFilePathLength-1) }),
			probe("h", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/" + strings.Repeat("x", v1alpha1.MaxURLLength-len("http://h/"))}
			}),
			probe("e", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.Exec = &v1alpha1.ExecProbe{Command: []string{"/bin/x", strings.Repeat("x", v1alpha1.MaxExecArgLength)}}
			}),
			probe("t", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.TCP = &v1alpha1.TCPProbe{Address: strings.Repeat("h", v1alpha1.MaxHostPortLength-5) + ":8404"}
			}),
			probe("i", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.Interface = &v1alpha1.InterfaceProbe{Name: strings.Repeat("e", vrrp.MaxInterfaceName)}
			}),
			probe("p", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.Process = &v1alpha1.ProcessProbe{Name: strings.Repeat("p", probepkg.MaxProcessName),
					Executable: "/" + strings.Repeat("x", v1alpha1.MaxExecutableLength-1)}
			}),
		}
	}},
	{name: "probe interval 10ms, timeout 1ms and 10ms", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("a", func(p *v1alpha1.ProbeSpec) { p.Interval, p.Timeout = dur(10*time.Millisecond), dur(time.Millisecond) }),
			probe("b", func(p *v1alpha1.ProbeSpec) {
				p.Interval, p.Timeout = dur(10*time.Millisecond), dur(10*time.Millisecond)
			}),
		}
	}},
	{name: "probe weights -253 and 253, fall and rise 255", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.Probes = []v1alpha1.ProbeSpec{
			probe("a", func(p *v1alpha1.ProbeSpec) { p.Weight, p.Fall, p.Rise = -253, ptr.To[int32](255), ptr.To[int32](255) }),
			probe("b", func(p *v1alpha1.ProbeSpec) { p.Weight = 253 }),
		}
	}},
}

func TestCRDAccepts(t *testing.T) {
	ctx := requireAPIServer(t)
	for i, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP(fmt.Sprintf("accept-%d", i))
			tt.mut(vip)
			if errs := desired.Validate(vip); len(errs) > 0 {
				t.Errorf("desired.Validate rejects it: %v", errs.ToAggregate())
			}
			if err := k8s.Create(ctx, vip, client.DryRunAll); err != nil {
				t.Errorf("the API server rejects it: %v", err)
			}
		})
	}
}

// agentOnly are objects desired.Validate rejects and the CRD cannot: the gaps of the CRD. The
// test keeps this list honest: a case the CRD starts to reject must move to rejected.
var agentOnly = []struct {
	name string
	mut  func(*v1alpha1.VirtualIP)
	why  string
}{
	{name: "selector bad label value", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"role": "load balancer"}}
	}, why: nodeSelectorGap},
	{name: "selector bad expression key", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "bad key", Operator: metav1.LabelSelectorOpExists}}}
	}, why: nodeSelectorGap},
	{name: "selector bad expression value", mut: func(v *v1alpha1.VirtualIP) {
		v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn, Values: []string{"b c"}}}}
	}, why: nodeSelectorGap},
}

const nodeSelectorGap = "nodeSelector is a metav1.LabelSelector, whose schema bounds no string or list: the CRD checks " +
	"operators, values per operator and matchLabels keys, but a CEL rule over every label value or expression key exceeds " +
	"the CRD's cost budget; the agent checks them"

func TestCRDGaps(t *testing.T) {
	ctx := requireAPIServer(t)
	for i, tt := range agentOnly {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP(fmt.Sprintf("gap-%d", i))
			tt.mut(vip)
			if errs := desired.Validate(vip); len(errs) == 0 {
				t.Errorf("desired.Validate accepts it: it is no gap, drop the case")
			}
			if err := k8s.Create(ctx, vip, client.DryRunAll); err != nil {
				t.Errorf("the CRD rejects it now (%v): move the case to rejected", err)
			}
			t.Log(tt.why)
		})
	}
}

// Durations are strings in the schema; the CRD checks their syntax before any rule parses them.
func TestCRDRejectsUnparsableDurations(t *testing.T) {
	ctx := requireAPIServer(t)
	for i, s := range []string{"1", "100", "1 s", "fast", "1sec", "ms"} {
		for _, field := range []string{"advertisementInterval", "preemptDelay", "probes[0].interval", "probes[0].timeout",
			"announcements.refreshInterval", "notify.timeout"} {
			t.Run(field+"="+s, func(t *testing.T) {
				vip := validVIP(fmt.Sprintf("dur-%d", i))
				u := toUnstructured(t, vip)
				path := strings.Split(strings.NewReplacer("[0]", "").Replace(field), ".")
				spec := u.Object["spec"].(map[string]any)
				switch {
				case len(path) == 1:
					spec[path[0]] = s
				case path[0] == "probes":
					spec["probes"].([]any)[0].(map[string]any)[path[1]] = s
				case path[0] == "notify": // with a command, so that only the duration is wrong
					spec["notify"] = map[string]any{path[1]: s, "master": []any{"/bin/true"}}
				default:
					spec[path[0]] = map[string]any{path[1]: s}
				}
				err := k8s.Create(ctx, u, client.DryRunAll)
				if !apierrors.IsInvalid(err) {
					t.Fatalf("want an Invalid error, got %v", err)
				}
				want := fmt.Sprintf(`spec.%s: Invalid value: %q: write a duration such as 100ms, 1s or 1m30s`, field, s)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the API server's error lacks %q:\n%v", want, err)
				}
				if strings.Contains(err.Error(), "evaluation error") {
					t.Errorf("a rule parsed the bad duration:\n%v", err)
				}
			})
		}
	}
}

func TestCRDVRIDImmutable(t *testing.T) {
	ctx := requireAPIServer(t)
	vip := validVIP("immutable")
	if err := k8s.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, vip) })

	vip.Spec.Priority = ptr.To[int32](90)
	if err := k8s.Update(ctx, vip); err != nil {
		t.Fatalf("updating the priority: %v", err)
	}

	vip.Spec.VRID = 52
	err := k8s.Update(ctx, vip)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("changing the vrid: want an Invalid error, got %v", err)
	}
	want := "spec.vrid: Invalid value: 52: vrid is immutable: to change it, create a new VirtualIP with the new vrid and delete this one"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("the API server's error lacks %q:\n%v", want, err)
	}
}

// The schema defaults what docs/design.md §1.1 defaults, except the interval: its default depends
// on the version and the agent applies it.
func TestCRDDefaults(t *testing.T) {
	ctx := requireAPIServer(t)
	vip := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: "defaults"},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:      7,
			Addresses: []string{"192.0.2.7"},
			Nodes:     []v1alpha1.NodeOverride{{Name: "lb1"}},
			Unicast:   &v1alpha1.UnicastSpec{},
			Probes:    []v1alpha1.ProbeSpec{probe("ok", nil)},
		},
	}
	if err := k8s.Create(ctx, vip, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.VirtualIPSpec{
		VRID:         7,
		Version:      3,
		Addresses:    []string{"192.0.2.7"},
		Priority:     ptr.To[int32](100),
		Nodes:        []v1alpha1.NodeOverride{{Name: "lb1"}},
		Preempt:      ptr.To(true),
		PreemptDelay: dur(0),
		Accept:       ptr.To(true),
		Unicast:      &v1alpha1.UnicastSpec{FromNodes: ptr.To(true)},
		ChecksumMode: "PseudoHeader",
		Probes: []v1alpha1.ProbeSpec{{
			Name: "ok", File: &v1alpha1.FileProbe{Path: "/run/ok"},
			Interval: dur(time.Second), Fall: ptr.To[int32](1), Rise: ptr.To[int32](1),
		}},
	}
	if diff := cmp.Diff(want, vip.Spec); diff != "" {
		t.Errorf("defaulted spec mismatch (-want +got):\n%s", diff)
	}
	if errs := desired.Validate(vip); len(errs) > 0 {
		t.Errorf("desired.Validate rejects the defaulted object: %v", errs.ToAggregate())
	}
}

// A member's status.reason is one CamelCase word (the closed set of controllers/reasons.go); a
// reason with words after it is refused, the words belong in message.
func TestCRDStatusReasonIsOneWord(t *testing.T) {
	ctx := requireAPIServer(t)
	m := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName("reason-word", "n1")},
		Spec:   v1alpha1.VirtualIPMemberSpec{VirtualIP: "reason-word", Node: "n1"},
		Status: v1alpha1.NodeStatus{State: "Fault", Reason: "StartFailed", Message: "interface eth9: no such link"}}
	if err := k8s.Create(ctx, m); err != nil {
		t.Fatalf("a CamelCase reason with a message: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.WithoutCancel(ctx), m) })
	for _, bad := range []string{"StartFailed: interface eth9: no such link", "probeFailed", strings.Repeat("A", 65)} {
		m.Status.Reason = bad
		err := k8s.Update(ctx, m)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "status.reason") {
			t.Errorf("reason %q: want Invalid on status.reason, got %v", bad, err)
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
			t.Fatal(err)
		}
	}
}
