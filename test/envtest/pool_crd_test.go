//go:build linux

package envtest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/lbpool"
)

// validPool is a dual-stack pool: every case of poolRejected starts from it and breaks one rule.
func validPool(name string) *v1alpha1.VirtualIPPool {
	return &v1alpha1.VirtualIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualIPPoolSpec{
			IPv4: &v1alpha1.IPv4Pool{Addresses: []string{"198.18.0.96/28", "198.18.0.200-198.18.0.220"},
				PrefixLength: ptr.To[int32](24), VRIDs: v1alpha1.VRIDRange{First: 100, Last: 149}},
			IPv6: &v1alpha1.IPv6Pool{Addresses: []string{"2001:db8::/120", "2001:db8::1:100-2001:db8::1:1ff"},
				PrefixLength: ptr.To[int32](64), VRIDs: v1alpha1.VRIDRange{First: 100, Last: 149}},
			Template: v1alpha1.VirtualIPTemplate{
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}},
				Unicast:      &v1alpha1.UnicastSpec{Peers: []string{"198.18.0.11", "2001:db8:1::11"}},
			},
		},
	}
}

func v4(addrs ...string) func(*v1alpha1.VirtualIPPool) {
	return func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4.Addresses = addrs }
}

func v6(addrs ...string) func(*v1alpha1.VirtualIPPool) {
	return func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv6.Addresses = addrs }
}

// poolRejected are pools the API server must refuse, and lbpool.Validate too, with the words
// that say what to change.
var poolRejected = []struct {
	name string
	mut  func(*v1alpha1.VirtualIPPool)
	want []string
}{
	{"no family", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4, p.Spec.IPv6 = nil, nil },
		[]string{"spec: Invalid value", "give the pool its addresses: set ipv4, ipv6 or both"}},
	{"bare address", v4("198.18.0.1"),
		[]string{`spec.ipv4.addresses[0]: Invalid value: "198.18.0.1": write a CIDR such as 198.18.0.0/28 or a range such as 198.18.0.100-198.18.0.120`}},
	{"leading zero", v4("198.18.0.01-198.18.0.5"), []string{`spec.ipv4.addresses[0]: Invalid value: "198.18.0.01-198.18.0.5": write a CIDR`}},
	{"spaces", v4("198.18.0.1 - 198.18.0.5"), []string{`spec.ipv4.addresses[0]: Invalid value: "198.18.0.1 - 198.18.0.5": write a CIDR`}},
	{"IPv6 in ipv4", v4("2001:db8::/120"),
		[]string{`spec.ipv4.addresses[0]: Invalid value: "2001:db8::/120": ipv4.addresses holds IPv4 addresses only: move 2001:db8::/120 to ipv6.addresses`}},
	{"IPv4 in ipv6", v6("198.18.1.0/28"),
		[]string{`spec.ipv6.addresses[0]: Invalid value: "198.18.1.0/28": ipv6.addresses holds IPv6 addresses only: move 198.18.1.0/28 to ipv4.addresses`}},
	{"mixed range", v4("198.18.0.1-2001:db8::1"), []string{`spec.ipv4.addresses[0]: Invalid value: "198.18.0.1-2001:db8::1": ipv4.addresses holds IPv4 addresses only`}},
	{"host bits", v4("198.18.0.5/28"),
		[]string{`spec.ipv4.addresses[0]: Invalid value: "198.18.0.5/28": write a CIDR by its network address, its host bits zero`, "a single address is 198.18.0.5/32"}},
	{"IPv6 host bits", v6("2001:db8::5/120"), []string{`spec.ipv6.addresses[0]: Invalid value: "2001:db8::5/120": write a CIDR by its network address`}},
	{"reversed", v4("198.18.0.120-198.18.0.100"),
		[]string{`spec.ipv4.addresses[0]: Invalid value: "198.18.0.120-198.18.0.100": a range goes from its first to its last address: write 198.18.0.100-198.18.0.120`}},
	{"IPv6 reversed", v6("2001:db8::1FF-2001:db8::100"),
		[]string{`spec.ipv6.addresses[0]: Invalid value: "2001:db8::1FF-2001:db8::100": a range goes from its first to its last address`}},
	{"IPv6 dotted", v6("2001:db8::c612:1-2001:db8::198.18.0.5"), []string{"write IPv6 addresses in hex only"}},
	{"IPv6 range over a /112", v6("2001:db8::ff00-2001:db8::1:ff"), []string{"an IPv6 range lies in one /112", "write a larger one as a CIDR"}},
	{"overlap CIDR and range", v4("198.18.0.0/24", "198.18.0.100-198.18.0.120"),
		[]string{"spec.ipv4.addresses: Invalid value", "each address is in one entry of the pool, but entries of 198.18.0.0/24, 198.18.0.100-198.18.0.120 overlap"}},
	{"overlap ranges", v4("198.18.0.100-198.18.0.120", "198.18.0.5-198.18.0.100"), []string{"each address is in one entry of the pool"}},
	{"one address twice", v4("198.18.0.5/32", "198.18.0.5-198.18.0.5"), []string{"each address is in one entry of the pool"}},
	{"overlap IPv6", v6("2001:db8::1:100-2001:db8::1:1ff", "2001:db8::1:0/112"), []string{"spec.ipv6.addresses: Invalid value", "each address is in one entry of the pool"}},
	{"overlap IPv6 CIDRs", v6("2001:db8::/64", "2001:db8::/120"), []string{"each address is in one entry of the pool"}},
	{"duplicate entry", v4("198.18.0.96/28", "198.18.0.96/28"), []string{`spec.ipv4.addresses[1]: Duplicate value: "198.18.0.96/28"`}},
	{"multicast", v4("224.0.0.0-224.0.0.5"), []string{"the pool's addresses are unicast"}},
	{"across loopback", v4("126.0.0.0-128.0.0.0"), []string{"the pool's addresses are unicast"}},
	{"holds the broadcast address", v4("240.0.0.0/4"), []string{"the pool's addresses are unicast"}},
	{"IPv6 unspecified", v6("::-::5"), []string{"the pool's addresses are unicast"}},
	{"IPv6 multicast", v6("ff02::/120"), []string{"the pool's addresses are unicast"}},
	{"no entries", v4(), []string{"spec.ipv4.addresses: Required value"}},
	{"empty entries", v4([]string{}...), []string{"spec.ipv4.addresses: Invalid value", `list at least one CIDR or range`}},
	{"17 entries", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.IPv4.Addresses = nil
		for i := range 17 {
			p.Spec.IPv4.Addresses = append(p.Spec.IPv4.Addresses, fmt.Sprintf("198.18.%d.0/28", i))
		}
	}, []string{"spec.ipv4.addresses: Too many: 17: must have at most 16 items"}},
	{"entry too long", v6("2001:0db8:0000:0000:0000:0000:0000:0100-2001:0db8:0000:0000:0000:0000:0000:01ff0"),
		[]string{"spec.ipv6.addresses[0]: Too long: may not be more than 79 bytes"}},
	{"vrid 0", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4.VRIDs.First = 0 },
		[]string{"spec.ipv4.vrids.first: Invalid value: 0: a VRID is 1..255"}},
	{"vrid 256", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv6.VRIDs.Last = 256 },
		[]string{"spec.ipv6.vrids.last: Invalid value: 256: a VRID is 1..255"}},
	{"vrids reversed", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4.VRIDs = v1alpha1.VRIDRange{First: 150, Last: 100} },
		[]string{"spec.ipv4.vrids: Invalid value", "vrids go from first to last: first must be at most last"}},
	{"prefixLength 0", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4.PrefixLength = ptr.To[int32](0) },
		[]string{"spec.ipv4.prefixLength: Invalid value: 0: spec.ipv4.prefixLength in body should be greater than or equal to 1"}},
	{"prefixLength 33", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4.PrefixLength = ptr.To[int32](33) },
		[]string{"spec.ipv4.prefixLength: Invalid value: 33: spec.ipv4.prefixLength in body should be less than or equal to 32"}},
	{"prefixLength 129", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv6.PrefixLength = ptr.To[int32](129) },
		[]string{"spec.ipv6.prefixLength: Invalid value: 129"}},
	{"no prefixLength, no interface", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4.PrefixLength = nil },
		[]string{"spec.ipv4.prefixLength: Required value: set ipv4.prefixLength to the prefix length of the subnet the addresses are on", "or name the interface in template.interface"}},
	{"IPv6 with VRRPv2", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.Template.Version = 2
		p.Spec.Template.AdvertisementInterval = dur(time.Second)
	}, []string{"spec.template.version: Invalid value", "VRRPv2 carries only IPv4: set template.version: 3 for a pool with ipv6 addresses"}},
	{"peer in the pool", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.Unicast.Peers = []string{"198.18.0.205"} },
		[]string{"spec.template.unicast.peers: Invalid value", "template.unicast.peers lists the routers' own addresses and cannot hold an address of the pool; got 198.18.0.205"}},
	{"IPv6 peer in the pool", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.Unicast.Peers = []string{"2001:db8::1:1AB"} },
		[]string{"template.unicast.peers lists the routers' own addresses and cannot hold an address of the pool"}},
	{"template names no members", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.NodeSelector = nil },
		[]string{"spec.template.nodeSelector: Required value: name the nodes that run the pool's VirtualIPs: set template.nodeSelector"}},
	{"template priority 255", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.Priority = ptr.To[int32](255) },
		[]string{"spec.template.priority: Invalid value: 255: priority 255 here would make every selected node claim to own the addresses"}},
	{"template PASS with v3", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.Authentication = pass() },
		[]string{"spec.template.authentication: Invalid value: authentication exists only in VRRPv2"}},
	{"template interval", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.AdvertisementInterval = dur(5 * time.Millisecond) },
		[]string{"spec.template.advertisementInterval: Invalid value", "advertisementInterval must be a multiple of 10ms between 10ms and 40.95s for version 3"}},
	{"template bad peer", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.Unicast.Peers = []string{"224.0.0.18"} },
		[]string{`spec.template.unicast.peers[0]: Invalid value: "224.0.0.18": a unicast peer is the unicast address of another router`}},
	{"template bad probe", func(p *v1alpha1.VirtualIPPool) { p.Spec.Template.Probes = []v1alpha1.ProbeSpec{{Name: "x"}} },
		[]string{"spec.template.probes[0]: Invalid value", "probe x checks nothing"}},
	{"bad namespace", func(p *v1alpha1.VirtualIPPool) { p.Spec.Namespaces = []string{"Web"} },
		[]string{`spec.namespaces[0]: Invalid value: "Web": a namespace name is a DNS label`}},
	{"long name", func(p *v1alpha1.VirtualIPPool) { p.Name = strings.Repeat("p", 64) },
		[]string{"a pool's name is at most 63 characters: its VirtualIPs carry it as the value of their label kubevrrp.io/pool"}},
	{"bad selector operator", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.ServiceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Has"}}}
	}, []string{"spec.serviceSelector: Invalid value", "a matchExpressions operator is In, NotIn, Exists or DoesNotExist"}},
}

// TestPoolCRDRejects: each invalid pool is refused by the API server with its message, and by
// lbpool.Validate (the controller's check of pools written before a rule existed).
func TestPoolCRDRejects(t *testing.T) {
	ctx := requireAPIServer(t)
	for i, tt := range poolRejected {
		t.Run(tt.name, func(t *testing.T) {
			p := validPool(fmt.Sprintf("pool-reject-%d", i))
			tt.mut(p)
			if errs := lbpool.Validate(p); len(errs) == 0 {
				t.Errorf("lbpool.Validate accepts what the CRD rejects")
			}
			err := k8s.Create(ctx, p, client.DryRunAll)
			if err == nil {
				t.Fatalf("the API server accepted %+v", p.Spec)
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

// poolAccepted are valid pools: the API server and lbpool.Validate accept them.
var poolAccepted = []struct {
	name string
	mut  func(*v1alpha1.VirtualIPPool)
}{
	{"valid seed", func(*v1alpha1.VirtualIPPool) {}},
	{"IPv4 only, interface instead of prefixLength", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.IPv6 = nil
		p.Spec.IPv4.PrefixLength = nil
		p.Spec.Template.Interface = "eth1"
		p.Spec.Template.Version = 2
		p.Spec.Template.AdvertisementInterval = dur(time.Second)
		p.Spec.Template.Authentication = pass()
	}},
	{"IPv6 only", func(p *v1alpha1.VirtualIPPool) { p.Spec.IPv4 = nil }},
	{"single addresses, adjacent ranges", func(p *v1alpha1.VirtualIPPool) {
		v4("198.18.0.5/32", "198.18.0.6-198.18.0.6", "198.18.0.7-198.18.0.9", "198.18.0.10-198.18.1.20")(p)
		p.Spec.Template.Unicast.Peers = []string{"198.18.0.4", "198.18.1.21"}
	}},
	{"IPv6 spelled every way", v6("2001:DB8::1:100-2001:db8:0:0:0:0:1:1ff", "2001:db8::/120", "2001:db8:0:0:1::/80", "::2:0-::2:ffff")},
	{"16 entries", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.IPv4.Addresses = nil
		for i := range 16 {
			p.Spec.IPv4.Addresses = append(p.Spec.IPv4.Addresses, fmt.Sprintf("198.18.%d.0/28", i))
		}
		p.Spec.Template.Unicast.Peers = []string{"198.18.0.16"}
	}},
	{"longest entries", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.IPv4.Addresses = []string{"198.198.198.100-198.198.198.200"}
		p.Spec.IPv6.Addresses = []string{"2001:0db8:0000:0000:0000:0000:0000:0100-2001:0db8:0000:0000:0000:0000:0000:01ff"}
		p.Spec.Template.Unicast = nil
	}},
	{"vrids 1-255, prefix lengths 32 and 128", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.IPv4.VRIDs = v1alpha1.VRIDRange{First: 1, Last: 255}
		p.Spec.IPv6.VRIDs = v1alpha1.VRIDRange{First: 7, Last: 7}
		p.Spec.IPv4.PrefixLength = ptr.To[int32](32)
		p.Spec.IPv6.PrefixLength = ptr.To[int32](128)
	}},
	{"namespaces, selector, no auto-assign", func(p *v1alpha1.VirtualIPPool) {
		p.Spec.Namespaces = []string{"web", "shop-1"}
		p.Spec.ServiceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/part-of": "shop"}}
		p.Spec.AutoAssign = ptr.To(false)
	}},
	{"name of 63", func(p *v1alpha1.VirtualIPPool) { p.Name = strings.Repeat("p", 63) }},
}

func TestPoolCRDAccepts(t *testing.T) {
	ctx := requireAPIServer(t)
	for i, tt := range poolAccepted {
		t.Run(tt.name, func(t *testing.T) {
			p := validPool(fmt.Sprintf("pool-accept-%d", i))
			tt.mut(p)
			if errs := lbpool.Validate(p); len(errs) > 0 {
				t.Errorf("lbpool.Validate rejects it: %v", errs.ToAggregate())
			}
			if err := k8s.Create(ctx, p, client.DryRunAll); err != nil {
				t.Errorf("the API server rejects it: %v", err)
			}
		})
	}
}
