package desired

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	probepkg "github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

func dur(d time.Duration) *v1alpha1.Duration { return &v1alpha1.Duration{Duration: d} }

// validVIP is the seed-style HAProxy pair: every test starts from it and breaks one rule.
func validVIP() *v1alpha1.VirtualIP {
	return &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: "haproxy"},
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

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*v1alpha1.VirtualIP)
		// want are the paths of the errors, in order.
		want []string
	}{
		{name: "valid seed", mut: func(*v1alpha1.VirtualIP) {}},
		{name: "valid v2 with PASS", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = dur(time.Second)
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "vrrp", Key: "password"}}
		}},
		{name: "valid IPv6 unicast", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"2001:db8::100/64", "2001:db8::101"}
			v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"2001:db8::11", "2001:db8::12"}}
		}},
		{name: "valid bare address and every probe type", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"198.18.0.10"}
			v.Spec.Probes = []v1alpha1.ProbeSpec{
				probe("p", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Process = &v1alpha1.ProcessProbe{Name: "haproxy"} }),
				probe("t", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.TCP = &v1alpha1.TCPProbe{Address: "[::1]:8404"} }),
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
		{name: "missing name", mut: func(v *v1alpha1.VirtualIP) { v.Name = "" }, want: []string{"metadata.name"}},
		{name: "bad name", mut: func(v *v1alpha1.VirtualIP) { v.Name = "Bad_Name" }, want: []string{"metadata.name"}},

		// vrid
		{name: "vrid 0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 0 }, want: []string{"spec.vrid"}},
		{name: "vrid 256", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 256 }, want: []string{"spec.vrid"}},
		{name: "vrid 255", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 255 }},

		// version
		{name: "version 4", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Version = 4 }, want: []string{"spec.version"}},
		{name: "IPv6 needs v3", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.Addresses = []string{"2001:db8::1"}
		}, want: []string{"spec.version"}},

		// addresses
		{name: "no addresses", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = nil }, want: []string{"spec.addresses"}},
		{name: "65 addresses", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = nil
			for i := range 65 {
				v.Spec.Addresses = append(v.Spec.Addresses, "198.18.1."+itoa(i+1))
			}
		}, want: []string{"spec.addresses"}},
		{name: "64 addresses", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = nil
			for i := range 64 {
				v.Spec.Addresses = append(v.Spec.Addresses, "198.18.1."+itoa(i+1))
			}
		}},
		{name: "unparsable address", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.300"} }, want: []string{"spec.addresses[0]"}},
		{name: "bad prefix length", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.1/33"} }, want: []string{"spec.addresses[0]"}},
		{name: "/0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"192.0.2.1/0"} }, want: []string{"spec.addresses[0]"}},
		{name: "zone", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"fe80::1%eth0"} }, want: []string{"spec.addresses[0]"}},
		{name: "mapped", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"::ffff:192.0.2.1"} }, want: []string{"spec.addresses[0]"}},
		{name: "multicast, loopback, unspecified, broadcast", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"224.0.0.18", "127.0.0.1", "0.0.0.0", "255.255.255.255"}
		}, want: []string{"spec.addresses[0]", "spec.addresses[1]", "spec.addresses[2]", "spec.addresses[3]"}},
		{name: "duplicate after normalisation", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"192.0.2.100/24", "192.0.2.100", "2001:db8::1", "192.0.2.101/32", "192.0.2.101/24"}
		}, want: []string{"spec.addresses[1]", "spec.addresses[2]", "spec.addresses[4]"}},
		{name: "duplicate IPv6 spelled differently", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Addresses = []string{"2001:db8::a/64", "2001:DB8:0:0::A"}
		}, want: []string{"spec.addresses[1]"}},
		{name: "mixed families", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"2001:db8::1", "192.0.2.1"} }, want: []string{"spec.addresses[1]"}},

		// advertisementInterval
		{name: "v3 5ms", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(5 * time.Millisecond) }, want: []string{"spec.advertisementInterval"}},
		{name: "v3 15ms step", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(15 * time.Millisecond) }, want: []string{"spec.advertisementInterval"}},
		{name: "v3 41s", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(41 * time.Second) }, want: []string{"spec.advertisementInterval"}},
		{name: "v3 40.95s", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(40950 * time.Millisecond) }},
		{name: "v3 10ms", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(10 * time.Millisecond) }},
		{name: "v3 negative", mut: func(v *v1alpha1.VirtualIP) { v.Spec.AdvertisementInterval = dur(-time.Second) }, want: []string{"spec.advertisementInterval"}},
		{name: "v2 1500ms", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = dur(1500 * time.Millisecond)
		}, want: []string{"spec.advertisementInterval"}},
		{name: "v2 256s", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = dur(256 * time.Second)
		}, want: []string{"spec.advertisementInterval"}},
		{name: "v2 100ms", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = dur(100 * time.Millisecond)
		}, want: []string{"spec.advertisementInterval"}},
		{name: "v2 255s", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = dur(255 * time.Second)
		}},

		// priorities and nodes
		{name: "priority 0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](0) }, want: []string{"spec.priority"}},
		{name: "priority 256", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](256) }, want: []string{"spec.priority"}},
		// Only one node can own the addresses: 255 for the whole group claims them on every node.
		{name: "priority 255 for the whole group", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Priority = ptr.To[int32](255) }, want: []string{"spec.priority"}},
		{name: "priority 255 for one node is left to For", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Priority = ptr.To[int32](255) }},
		{name: "priority 255 for two nodes", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = []v1alpha1.NodeOverride{
				{Name: "lb1", Priority: ptr.To[int32](255)}, {Name: "lb2", Priority: ptr.To[int32](100)},
				{Name: "lb3", Priority: ptr.To[int32](255)}, {Name: "lb4", Priority: ptr.To[int32](255)},
			}
		}, want: []string{"spec.nodes[2].priority", "spec.nodes[3].priority"}},
		{name: "node priority 0", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Priority = ptr.To[int32](0) }, want: []string{"spec.nodes[0].priority"}},
		{name: "duplicate node, nameless node", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = append(v.Spec.Nodes, v1alpha1.NodeOverride{Name: "lb1"}, v1alpha1.NodeOverride{})
		}, want: []string{"spec.nodes[1].name", "spec.nodes[2].name"}},
		{name: "node interface", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Interface = "eth0:1" }, want: []string{"spec.nodes[0].interface"}},

		// interface
		{name: "interface too long", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "abcdefghijklmnop" }, want: []string{"spec.interface"}},
		{name: "interface 15 chars", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "abcdefghijklmno" }},
		{name: "interface slash", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth/0" }, want: []string{"spec.interface"}},
		{name: "interface space", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth 0" }, want: []string{"spec.interface"}},
		{name: "interface dot", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = ".." }, want: []string{"spec.interface"}},

		// members: nodeSelector or nodes[]
		{name: "neither nodeSelector nor nodes", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes = nil }, want: []string{"spec.nodeSelector"}},
		{name: "empty nodes and no nodeSelector", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes = []v1alpha1.NodeOverride{} }, want: []string{"spec.nodeSelector"}},
		{name: "empty nodeSelector without nodes", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Nodes = nil
			v.Spec.NodeSelector = &metav1.LabelSelector{}
		}},

		// nodeSelector
		{name: "selector bad key", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"bad key": "x"}}
		}, want: []string{"spec.nodeSelector.matchLabels"}},
		{name: "selector bad operator", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
		}, want: []string{"spec.nodeSelector.matchExpressions[0].operator"}},
		{name: "selector In without values", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn}}}
		}, want: []string{"spec.nodeSelector.matchExpressions[0].values"}},
		{name: "selector valid", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}}
		}},

		// preempt
		{name: "preemptDelay negative", mut: func(v *v1alpha1.VirtualIP) { v.Spec.PreemptDelay = dur(-time.Second) }, want: []string{"spec.preemptDelay"}},
		{name: "preemptDelay 2h", mut: func(v *v1alpha1.VirtualIP) { v.Spec.PreemptDelay = dur(2 * time.Hour) }, want: []string{"spec.preemptDelay"}},
		{name: "preemptDelay 1h", mut: func(v *v1alpha1.VirtualIP) { v.Spec.PreemptDelay = dur(time.Hour) }},
		{name: "nopreempt with only weighted probes", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Preempt = ptr.To(false) }, want: []string{"spec.preempt"}},
		{name: "nopreempt with a weight-0 probe too", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Preempt = ptr.To(false)
			v.Spec.Probes = append(v.Spec.Probes, probe("file", nil))
		}},
		{name: "nopreempt without probes", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Preempt = ptr.To(false)
			v.Spec.Probes = nil
		}},

		// unicast
		{name: "peers: bad, CIDR, zone, family, duplicate, multicast, VIP", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Unicast = &v1alpha1.UnicastSpec{Peers: []string{
				"192.0.2.11", "nope", "192.0.2.12/24", "fe80::1%eth0", "2001:db8::1", "192.0.2.11", "224.0.0.18", "192.0.2.100",
			}}
		}, want: []string{"spec.unicast.peers[1]", "spec.unicast.peers[2]", "spec.unicast.peers[3]", "spec.unicast.peers[4]",
			"spec.unicast.peers[5]", "spec.unicast.peers[6]", "spec.unicast.peers[7]"}},

		// authentication
		{name: "auth with v3", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
		}, want: []string{"spec.authentication"}},
		{name: "auth AH, empty ref", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = dur(time.Second)
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "AH"}
		}, want: []string{"spec.authentication.type", "spec.authentication.secretRef.name", "spec.authentication.secretRef.key"}},

		{name: "checksumMode", mut: func(v *v1alpha1.VirtualIP) { v.Spec.ChecksumMode = "None" }, want: []string{"spec.checksumMode"}},
		{name: "checksumMode RFC9568", mut: func(v *v1alpha1.VirtualIP) { v.Spec.ChecksumMode = "RFC9568" }},

		// probes
		{name: "probe names", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", nil), probe("a", nil), probe("", nil), probe("Bad_Name", nil)}
		}, want: []string{"spec.probes[1].name", "spec.probes[2].name", "spec.probes[3].name"}},
		{name: "probe without check", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", func(p *v1alpha1.ProbeSpec) { p.File = nil })}
		}, want: []string{"spec.probes[0]"}},
		{name: "probe with two checks", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", func(p *v1alpha1.ProbeSpec) { p.TCP = &v1alpha1.TCPProbe{Address: "x:1"} })}
		}, want: []string{"spec.probes[0]"}},
		{name: "probe numbers", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Probes = []v1alpha1.ProbeSpec{probe("a", func(p *v1alpha1.ProbeSpec) {
				p.Fall, p.Rise, p.Weight = ptr.To[int32](0), ptr.To[int32](256), 254
			}), probe("b", func(p *v1alpha1.ProbeSpec) { p.Weight = -254 }),
				probe("c", func(p *v1alpha1.ProbeSpec) { p.Weight, p.Fall, p.Rise = -253, ptr.To[int32](255), ptr.To[int32](1) })}
		}, want: []string{"spec.probes[0].fall", "spec.probes[0].rise", "spec.probes[0].weight", "spec.probes[1].weight"}},
		{name: "probe interval and timeout", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Probes = []v1alpha1.ProbeSpec{
				probe("a", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(0) }),
				probe("b", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(2 * time.Hour) }),
				probe("c", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(0) }),
				probe("d", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(2 * time.Second) }), // default interval 1s
				probe("e", func(p *v1alpha1.ProbeSpec) { p.Interval, p.Timeout = dur(3*time.Second), dur(2*time.Second) }),
			}
		}, want: []string{"spec.probes[0].interval", "spec.probes[1].interval", "spec.probes[2].timeout", "spec.probes[3].timeout"}},
		// An interval of 1ns kept a core busy: 10ms..1h, and a timeout of 1ms..the interval.
		{name: "probe interval and timeout lower bounds", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Probes = []v1alpha1.ProbeSpec{
				probe("a", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(1) }),
				probe("b", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(9 * time.Millisecond) }),
				probe("c", func(p *v1alpha1.ProbeSpec) { p.Interval = dur(10 * time.Millisecond) }),
				probe("d", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(1) }),
				probe("e", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(999 * time.Microsecond) }),
				probe("f", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(time.Millisecond) }),
				probe("g", func(p *v1alpha1.ProbeSpec) {
					p.Interval, p.Timeout = dur(10*time.Millisecond), dur(10*time.Millisecond)
				}),
				probe("h", func(p *v1alpha1.ProbeSpec) {
					p.Interval, p.Timeout = dur(10*time.Millisecond), dur(11*time.Millisecond)
				}),
			}
		}, want: []string{"spec.probes[0].interval", "spec.probes[1].interval", "spec.probes[3].timeout", "spec.probes[4].timeout", "spec.probes[7].timeout"}},
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
				probe("exec-empty", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Exec = &v1alpha1.ExecProbe{} }),
				probe("iface", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Interface = &v1alpha1.InterfaceProbe{Name: "a b"} }),
				probe("file", func(p *v1alpha1.ProbeSpec) { p.File.Path = "run/ok" }),
				probe("proc", func(p *v1alpha1.ProbeSpec) {
					p.File = nil
					p.Process = &v1alpha1.ProcessProbe{Name: "/usr/sbin/haproxy"}
				}),
			}
		}, want: []string{
			"spec.probes[0].tcp.address", "spec.probes[1].tcp.address", "spec.probes[2].tcp.address",
			"spec.probes[3].http.url", "spec.probes[4].http.url", "spec.probes[5].http.url", "spec.probes[6].http.expectedStatus",
			"spec.probes[7].exec.command[0]", "spec.probes[8].exec.command", "spec.probes[9].interface.name",
			"spec.probes[10].file.path", "spec.probes[11].process.name",
		}},
		// The CRD's string bounds (TestCRDBounds), one byte over.
		{name: "strings one byte too long", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = dur(time.Second)
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{
				Name: strings.Repeat("s", v1alpha1.MaxNameLength+1), Key: strings.Repeat("k", v1alpha1.MaxNameLength+1)}}
			v.Spec.Probes = []v1alpha1.ProbeSpec{
				probe("f", func(p *v1alpha1.ProbeSpec) { p.File.Path = "/" + strings.Repeat("x", v1alpha1.MaxFilePathLength) }),
				probe("h", func(p *v1alpha1.ProbeSpec) {
					p.File = nil
					p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/" + strings.Repeat("x", v1alpha1.MaxURLLength)}
				}),
				probe("e", func(p *v1alpha1.ProbeSpec) {
					p.File = nil
					p.Exec = &v1alpha1.ExecProbe{Command: []string{"/bin/x", strings.Repeat("x", v1alpha1.MaxExecArgLength+1)}}
				}),
				probe("t", func(p *v1alpha1.ProbeSpec) {
					p.File = nil
					p.TCP = &v1alpha1.TCPProbe{Address: strings.Repeat("h", v1alpha1.MaxHostPortLength) + ":1"}
				}),
			}
		}, want: []string{
			"spec.authentication.secretRef.name", "spec.authentication.secretRef.key",
			"spec.probes[0].file.path", "spec.probes[1].http.url", "spec.probes[2].exec.command[1]", "spec.probes[3].tcp.address",
		}},
		{name: "17 probes", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Probes = nil
			for i := range 17 {
				v.Spec.Probes = append(v.Spec.Probes, probe("p"+itoa(i), nil))
			}
		}, want: []string{"spec.probes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP()
			tt.mut(vip)
			errs := Validate(vip)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() error fields mismatch (-want +got):\n%s\nerrors: %v", diff, errs)
			}
			for _, e := range errs {
				if e.Type != field.ErrorTypeTooMany && e.Detail == "" {
					t.Errorf("error %q says nothing about what to change", e)
				}
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The messages are the user interface of `kubectl apply` and `kube-vrrp validate`: they name the
// field and say what to change.
func TestValidateMessages(t *testing.T) {
	vip := validVIP()
	vip.Spec.VRID = 0
	vip.Spec.Version = 2
	vip.Spec.Addresses = []string{"2001:db8::1", "192.0.2.1"}
	vip.Spec.AdvertisementInterval = dur(100 * time.Millisecond)
	vip.Spec.Preempt = ptr.To(false)
	got := make([]string, 0)
	for _, e := range Validate(vip) {
		got = append(got, e.Error())
	}
	want := []string{
		`spec.vrid: Invalid value: 0: set vrid to 1..255, the virtual_router_id shared by every member of the group`,
		`spec.addresses[1]: Invalid value: "192.0.2.1": all addresses of a VirtualIP are one family and the first is IPv6: move IPv4 addresses to another VirtualIP`,
		`spec.version: Invalid value: 2: VRRPv2 carries only IPv4: set version: 3 for IPv6 addresses`,
		`spec.advertisementInterval: Invalid value: "100ms": VRRPv2 advertises whole seconds: set 1s..255s, or set version: 3 for sub-second intervals`,
		`spec.preempt: Invalid value: false: a weighted probe only changes the priority, and without preemption a lower priority never moves the VIP: set preempt: true, or give a probe weight 0 so that its failure resigns the VIP`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() messages mismatch (-want +got):\n%s", diff)
	}
}

// The owner-priority and probe-bound messages say which field, why and what to set.
func TestValidateMessagesOwnerAndProbeBounds(t *testing.T) {
	vip := validVIP()
	vip.Spec.Priority = ptr.To[int32](255)
	vip.Spec.Nodes = []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr.To[int32](255)}, {Name: "lb2", Priority: ptr.To[int32](255)}}
	vip.Spec.Probes[0].Interval = dur(1)
	vip.Spec.Probes = append(vip.Spec.Probes, probe("t", func(p *v1alpha1.ProbeSpec) { p.Timeout = dur(1) }))
	vip.Spec.Probes = append(vip.Spec.Probes, probe("c", func(p *v1alpha1.ProbeSpec) {
		p.Interval, p.Timeout = dur(time.Hour+time.Millisecond), dur(time.Hour+time.Millisecond)
		p.Fall, p.Rise, p.Weight = ptr.To[int32](0), ptr.To[int32](256), -254
	}))
	got := make([]string, 0)
	for _, e := range Validate(vip) {
		got = append(got, e.Error())
	}
	want := []string{
		`spec.priority: Invalid value: 255: 255 here would make every selected node claim to own the addresses, and only one node can (RFC 5798 §5.2.4): set 1..254 here, and 255 only in the nodes[] override of the one node that has the addresses as its own interface addresses`,
		`spec.nodes[1].priority: Invalid value: 255: only one node can own the addresses, and nodes[0] (lb1) has priority 255 already: keep 255 only for the node that has the addresses as its own interface addresses, and set 1..254 for the others`,
		`spec.probes[0].interval: Invalid value: "1ns": set an interval of 10ms..1h, e.g. 1s (a probe checks at most 100 times a second)`,
		`spec.probes[1].timeout: Invalid value: "1ns": set a timeout of at least 1ms, so that a check can complete, and at most the interval (1s), so that checks never overlap`,
		`spec.probes[2].interval: Invalid value: "1h0m0.001s": set an interval of 10ms..1h, e.g. 1s (a probe checks at most 100 times a second)`,
		`spec.probes[2].fall: Invalid value: 0: set fall to 1..255 consecutive failures`,
		`spec.probes[2].rise: Invalid value: 256: set rise to 1..255 consecutive successes`,
		`spec.probes[2].weight: Invalid value: -254: set weight to -253..253 (0: FAULT while failing; negative: added while failing; positive: added while succeeding)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() messages mismatch (-want +got):\n%s", diff)
	}
}

// The announcement and notify messages say which field and what to set (the CRD says the same:
// test/envtest TestCRDRejects).
func TestValidateMessagesAnnouncementsNotify(t *testing.T) {
	vip := validVIP()
	vip.Spec.Announcements = &v1alpha1.AnnouncementSpec{Count: ptr.To[int32](0), RefreshCount: ptr.To[int32](17),
		RepeatDelay: dur(-time.Second), RefreshInterval: dur(999 * time.Millisecond)}
	vip.Spec.Notify = &v1alpha1.NotifySpec{Master: []string{"on-master"}, All: []string{},
		Fault: append([]string{"/bin/true"}, make([]string, 32)...), Stop: []string{"/bin/true", strings.Repeat("a", 1025)},
		Timeout: dur(99 * time.Millisecond)}
	got := make([]string, 0)
	for _, e := range Validate(vip) {
		got = append(got, e.Error())
	}
	want := []string{
		`spec.announcements.count: Invalid value: 0: set count to 1..16 messages per address (default 2)`,
		`spec.announcements.refreshCount: Invalid value: 17: set refreshCount to 1..16 messages per address (default 1)`,
		`spec.announcements.repeatDelay: Invalid value: "-1s": set repeatDelay to 0s (no second burst) ..1h`,
		`spec.announcements.refreshInterval: Invalid value: "999ms": set refreshInterval to 1s..24h, or remove it for no refresh`,
		`spec.notify.master[0]: Invalid value: "on-master": give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-master]`,
		`spec.notify.fault: Too many: 33: must have at most 32 items`,
		`spec.notify.stop[1]: Too long: may not be more than 1024 bytes`,
		`spec.notify.all[0]: Invalid value: "": give the command as an argv list whose first element is the program's absolute path (there is no shell and no PATH lookup), e.g. [/usr/local/bin/on-all]`,
		`spec.notify.timeout: Invalid value: "99ms": set timeout to 100ms..10m (default 10s)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() messages mismatch (-want +got):\n%s", diff)
	}
	vip.Spec.Notify = &v1alpha1.NotifySpec{}
	if errs := Validate(vip); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "give at least one of master, backup, fault, stop or all") {
		t.Errorf("an empty notify: %v", errs)
	}
}

// A command line written whole as the first element (as keepalived's notify_* are written)
// shows only its first word: the rest are arguments, which may carry credentials.
func TestValidateNotifyShowsNoArguments(t *testing.T) {
	vip := validVIP()
	vip.Spec.Notify = &v1alpha1.NotifySpec{Master: []string{"curl -u admin:S3cretPw http://h/", "--token", "T0kenArg"}}
	errs := Validate(vip)
	if len(errs) == 0 {
		t.Fatal("Validate() accepted a relative program")
	}
	msg := errs.ToAggregate().Error()
	for _, s := range []string{"S3cretPw", "admin", "T0kenArg"} {
		if strings.Contains(msg, s) {
			t.Errorf("Validate() shows an argument of the command (%q): %s", s, msg)
		}
	}
	if want := `spec.notify.master[0]: Invalid value: "curl ..."`; !strings.Contains(msg, want) {
		t.Errorf("Validate() = %s, want it to contain %s", msg, want)
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "192.0.2.10", want: "192.0.2.10/32"},
		{in: "192.0.2.10/24", want: "192.0.2.10/24"},
		{in: "2001:db8::10", want: "2001:db8::10/128"},
		{in: "2001:DB8::10/64", want: "2001:db8::10/64"},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "::ffff:192.0.2.1", wantErr: true},
		{in: "::ffff:192.0.2.1/120", wantErr: true},
		{in: "192.0.2.10/", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAddress(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseAddress(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("ParseAddress(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// The rules of a probe's target are pkg/probe's; each error names the field and gives the rule's
// message, which says what to write.
func TestValidateMessagesProbeTargets(t *testing.T) {
	vip := validVIP()
	vip.Spec.Interface = ".."
	vip.Spec.Nodes[0].Interface = "eth0:1"
	vip.Spec.Probes = []v1alpha1.ProbeSpec{
		probe("proc", func(p *v1alpha1.ProbeSpec) {
			p.File = nil
			p.Process = &v1alpha1.ProcessProbe{Name: "sbin/haproxy", Executable: "/usr//sbin/haproxy"}
		}),
		probe("tcp", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.TCP = &v1alpha1.TCPProbe{Address: "h:0"} }),
		probe("http", func(p *v1alpha1.ProbeSpec) {
			p.File = nil
			p.HTTP = &v1alpha1.HTTPProbe{URL: "http:///x", ExpectedStatus: ptr.To[int32](0)}
		}),
		probe("exec", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Exec = &v1alpha1.ExecProbe{Command: []string{"pgrep"}} }),
		probe("exec-empty", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Exec = &v1alpha1.ExecProbe{} }),
		probe("iface", func(p *v1alpha1.ProbeSpec) { p.File = nil; p.Interface = &v1alpha1.InterfaceProbe{Name: "eth0 "} }),
		probe("file", func(p *v1alpha1.ProbeSpec) { p.File.Path = "run/ok" }),
		probe("exe-long", func(p *v1alpha1.ProbeSpec) {
			p.File = nil
			p.Process = &v1alpha1.ProcessProbe{Name: "x", Executable: "/" + strings.Repeat("x", v1alpha1.MaxExecutableLength)}
		}),
	}
	got := make([]string, 0)
	for _, e := range Validate(vip) {
		got = append(got, e.Error())
	}
	want := []string{
		`spec.nodes[0].interface: Invalid value: "eth0:1": interface names cannot contain '/', ':' or whitespace; use the link's name, e.g. eth0 (not an alias like eth0:1)`,
		`spec.interface: Invalid value: "..": "." and ".." are not link names: use the name of a network interface, e.g. eth0`,
		`spec.probes[0].process.name: Invalid value: "sbin/haproxy": give the process name as the kernel keeps it (as pgrep -x): 1..15 bytes, no path`,
		`spec.probes[0].process.executable: Invalid value: "/usr//sbin/haproxy": give the executable's absolute path as /proc/PID/exe shows it (no //, . or .. parts, no trailing /), e.g. /usr/sbin/haproxy`,
		`spec.probes[1].tcp.address: Invalid value: "h:0": the port must be a number 1..65535`,
		`spec.probes[2].http.url: Invalid value: "http:///x": the URL needs a host, e.g. http://127.0.0.1:8080/healthz`,
		`spec.probes[2].http.expectedStatus: Invalid value: 0: set an HTTP status code 100..599, or omit it for any 2xx or 3xx`,
		`spec.probes[3].exec.command[0]: Invalid value: "pgrep": give the program's absolute path first (there is no shell and no PATH lookup), e.g. /usr/bin/pgrep`,
		`spec.probes[4].exec.command: Required value: give the command as an argv list, e.g. [/usr/bin/check, --quiet]`,
		`spec.probes[5].interface.name: Invalid value: "eth0 ": interface names cannot contain '/', ':' or whitespace; use the link's name, e.g. eth0 (not an alias like eth0:1)`,
		`spec.probes[6].file.path: Invalid value: "run/ok": give an absolute path, e.g. /run/haproxy.ok`,
		`spec.probes[7].process.executable: Too long: may not be more than 4095 bytes`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() messages mismatch (-want +got):\n%s", diff)
	}
}

// An http probe's tls: the rules of pkg/probe (CheckCredentialFile, CheckServerName,
// CheckHTTPS) with the field's path, and tls only with an https:// url, even when empty.
func TestValidateMessagesHTTPTLS(t *testing.T) {
	pki := func(f string) string { return "/etc/kubernetes/pki/" + f }
	tests := []struct {
		name string
		url  string
		tls  v1alpha1.HTTPProbeTLS
		want []string
		// probesAccept: Probes accepts what Validate refuses, a bound of the API (limits.go)
		// that is no rule of the probe's.
		probesAccept bool
	}{
		{name: "every option", url: "https://127.0.0.1:6443/readyz", tls: v1alpha1.HTTPProbeTLS{CAFile: pki("ca.crt"),
			CertFile: pki("c.crt"), KeyFile: pki("c.key"), BearerTokenFile: "/run/token", ServerName: "kubernetes.default.svc"}},
		{name: "empty", url: "https://h/"},
		{name: "insecure", url: "HTTPS://h/", tls: v1alpha1.HTTPProbeTLS{InsecureSkipVerify: true}},
		{name: "server name IP", url: "https://h/", tls: v1alpha1.HTTPProbeTLS{ServerName: "2001:db8::1"}},
		{name: "key and certificate in one file", url: "https://h/", tls: v1alpha1.HTTPProbeTLS{CertFile: "/var/lib/kubelet/pki/kubelet-client-current.pem",
			KeyFile: "/var/lib/kubelet/pki/kubelet-client-current.pem"}},
		{name: "http", url: "http://h/", tls: v1alpha1.HTTPProbeTLS{CAFile: pki("ca.crt")}, want: []string{
			`spec.probes[0].http.tls: Forbidden: TLS settings and a bearer token need an https:// URL (a token would travel in clear text): change the URL to https:// or remove them`}},
		{name: "empty with http", url: "http://h/", want: []string{
			`spec.probes[0].http.tls: Forbidden: tls needs an https:// URL: change the URL to https:// or remove tls`}},
		{name: "unparsable url left to its own rule", url: "http://[::1", want: []string{
			`spec.probes[0].http.url: Invalid value: "http://[::1": write an absolute http:// or https:// URL: parse "http://[::1": missing ']' in host`}},
		{name: "relative files", url: "https://h/", tls: v1alpha1.HTTPProbeTLS{CAFile: "ca.crt", CertFile: "/etc/x/", KeyFile: "/etc//k",
			BearerTokenFile: "/run/../token"}, want: []string{
			`spec.probes[0].http.tls.caFile: Invalid value: "ca.crt": give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/ca.crt`,
			`spec.probes[0].http.tls.certFile: Invalid value: "/etc/x/": give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/ca.crt`,
			`spec.probes[0].http.tls.keyFile: Invalid value: "/etc//k": give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/ca.crt`,
			`spec.probes[0].http.tls.bearerTokenFile: Invalid value: "/run/../token": give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/ca.crt`}},
		{name: "long files", url: "https://h/", tls: v1alpha1.HTTPProbeTLS{CAFile: "/" + strings.Repeat("c", v1alpha1.MaxTLSFileLength),
			CertFile: "/" + strings.Repeat("c", v1alpha1.MaxTLSFileLength-1), KeyFile: "/" + strings.Repeat("k", v1alpha1.MaxTLSFileLength),
			BearerTokenFile: "/" + strings.Repeat("t", v1alpha1.MaxTLSFileLength)}, want: []string{
			`spec.probes[0].http.tls.caFile: Too long: may not be more than 4095 bytes`,
			`spec.probes[0].http.tls.keyFile: Too long: may not be more than 4095 bytes`,
			`spec.probes[0].http.tls.bearerTokenFile: Too long: may not be more than 4095 bytes`}, probesAccept: true},
		{name: "server names", url: "https://h/", tls: v1alpha1.HTTPProbeTLS{ServerName: "fe80::1%eth0"}, want: []string{
			`spec.probes[0].http.tls.serverName: Invalid value: "fe80::1%eth0": give a DNS name or IP address that the server's certificate names, e.g. kubernetes.default.svc or 10.96.0.1`}},
		{name: "long server name", url: "https://h/", tls: v1alpha1.HTTPProbeTLS{ServerName: strings.Repeat("a.", 127)}, want: []string{
			`spec.probes[0].http.tls.serverName: Too long: may not be more than 253 bytes`}},
		{name: "certificate without key, CA and insecure", url: "https://h/", tls: v1alpha1.HTTPProbeTLS{CertFile: pki("c.crt"),
			CAFile: pki("ca.crt"), InsecureSkipVerify: true}, want: []string{
			`spec.probes[0].http.tls: Forbidden: a client certificate needs its key file and a key its certificate file: set both or neither`,
			`spec.probes[0].http.tls: Forbidden: a CA file and InsecureSkipVerify exclude each other: keep the CA file, which verifies the server, and remove InsecureSkipVerify`}},
		{name: "key without certificate over http", url: "http://h/", tls: v1alpha1.HTTPProbeTLS{KeyFile: pki("c.key")}, want: []string{
			`spec.probes[0].http.tls: Forbidden: TLS settings and a bearer token need an https:// URL (a token would travel in clear text): change the URL to https:// or remove them`,
			`spec.probes[0].http.tls: Forbidden: a client certificate needs its key file and a key its certificate file: set both or neither`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP()
			vip.Spec.Probes = []v1alpha1.ProbeSpec{probe("h", func(p *v1alpha1.ProbeSpec) {
				p.File = nil
				p.HTTP = &v1alpha1.HTTPProbe{URL: tt.url, TLS: &tt.tls}
			})}
			got := make([]string, 0)
			for _, e := range Validate(vip) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(append([]string{}, tt.want...), got); diff != "" {
				t.Errorf("Validate() messages mismatch (-want +got):\n%s", diff)
			}
			// Probes (the agent) refuses what Validate refuses, and carries the options.
			specs, err := Probes(vip)
			if (err != nil) != (len(tt.want) > 0 && !tt.probesAccept) {
				t.Errorf("Probes: %.300v; Validate: %.300v", err, got)
			}
			if err == nil && specs[0].HTTPS != (probepkg.HTTPSOptions{CAFile: tt.tls.CAFile, CertFile: tt.tls.CertFile, KeyFile: tt.tls.KeyFile,
				BearerTokenFile: tt.tls.BearerTokenFile, ServerName: tt.tls.ServerName, InsecureSkipVerify: tt.tls.InsecureSkipVerify}) {
				t.Errorf("Probes: HTTPS %.200v, want the tls of the probe %.200v", specs[0].HTTPS, tt.tls)
			}
		})
	}
}

// Validate (kubectl apply, kube-vrrp validate, the controller) and Probes (the agent, through
// probe.Spec.Validate) apply the same rules to a probe's target: one refuses what the other does.
func TestProbesAgreeWithValidate(t *testing.T) {
	targets := map[string]func(*v1alpha1.ProbeSpec){
		"process":          func(p *v1alpha1.ProbeSpec) { p.Process = &v1alpha1.ProcessProbe{Name: "haproxy"} },
		"process 15 bytes": func(p *v1alpha1.ProbeSpec) { p.Process = &v1alpha1.ProcessProbe{Name: "haproxy-ingress"} },
		"process 16 bytes": func(p *v1alpha1.ProbeSpec) { p.Process = &v1alpha1.ProcessProbe{Name: "haproxy-ingress-"} },
		"process path":     func(p *v1alpha1.ProbeSpec) { p.Process = &v1alpha1.ProcessProbe{Name: "sbin/haproxy"} },
		"executable":       func(p *v1alpha1.ProbeSpec) { p.Process = &v1alpha1.ProcessProbe{Name: "x", Executable: "/usr/sbin/x"} },
		"executable dot":   func(p *v1alpha1.ProbeSpec) { p.Process = &v1alpha1.ProcessProbe{Name: "x", Executable: "/usr/./x"} },
		"executable slash": func(p *v1alpha1.ProbeSpec) { p.Process = &v1alpha1.ProcessProbe{Name: "x", Executable: "/usr/sbin/"} },
		"tcp":              func(p *v1alpha1.ProbeSpec) { p.TCP = &v1alpha1.TCPProbe{Address: "[::1]:80"} },
		"tcp no port":      func(p *v1alpha1.ProbeSpec) { p.TCP = &v1alpha1.TCPProbe{Address: "h"} },
		"tcp no host":      func(p *v1alpha1.ProbeSpec) { p.TCP = &v1alpha1.TCPProbe{Address: ":80"} },
		"tcp port 65536":   func(p *v1alpha1.ProbeSpec) { p.TCP = &v1alpha1.TCPProbe{Address: "h:65536"} },
		"http":             func(p *v1alpha1.ProbeSpec) { p.HTTP = &v1alpha1.HTTPProbe{URL: "https://h/x"} },
		"http scheme":      func(p *v1alpha1.ProbeSpec) { p.HTTP = &v1alpha1.HTTPProbe{URL: "ftp://h/x"} },
		"http no host":     func(p *v1alpha1.ProbeSpec) { p.HTTP = &v1alpha1.HTTPProbe{URL: "http://:80/x"} },
		"http tls": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "https://h/x", TLS: &v1alpha1.HTTPProbeTLS{CAFile: "/ca.crt", ServerName: "h.example"}}
		},
		"http tls empty": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "https://h/x", TLS: &v1alpha1.HTTPProbeTLS{}}
		},
		"http tls empty, http://": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/x", TLS: &v1alpha1.HTTPProbeTLS{}}
		},
		"http tls, http://": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/x", TLS: &v1alpha1.HTTPProbeTLS{BearerTokenFile: "/run/token"}}
		},
		"http tls relative file": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "https://h/x", TLS: &v1alpha1.HTTPProbeTLS{CAFile: "ca.crt"}}
		},
		"http tls key alone": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "https://h/x", TLS: &v1alpha1.HTTPProbeTLS{KeyFile: "/k"}}
		},
		"http tls CA and insecure": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "https://h/x", TLS: &v1alpha1.HTTPProbeTLS{CAFile: "/ca", InsecureSkipVerify: true}}
		},
		"http tls server name": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "https://h/x", TLS: &v1alpha1.HTTPProbeTLS{ServerName: "-h"}}
		},
		"http status 599": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/", ExpectedStatus: ptr.To[int32](599)}
		},
		"http status 600": func(p *v1alpha1.ProbeSpec) {
			p.HTTP = &v1alpha1.HTTPProbe{URL: "http://h/", ExpectedStatus: ptr.To[int32](600)}
		},
		"exec":                 func(p *v1alpha1.ProbeSpec) { p.Exec = &v1alpha1.ExecProbe{Command: []string{"/bin/true", "x"}} },
		"exec relative":        func(p *v1alpha1.ProbeSpec) { p.Exec = &v1alpha1.ExecProbe{Command: []string{"true"}} },
		"exec empty":           func(p *v1alpha1.ProbeSpec) { p.Exec = &v1alpha1.ExecProbe{} },
		"interface":            func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "bond0.100"} },
		"interface dot":        func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "."} },
		"interface dot dot":    func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: ".."} },
		"interface 16 bytes":   func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "abcdefghijklmnop"} },
		"interface alias":      func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "eth0:1"} },
		"interface CR":         func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "eth0\r"} },
		"interface NUL":        func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "eth\x000"} },
		"interface no-break":   func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "eth\u00a00"} },
		"file":                 func(p *v1alpha1.ProbeSpec) { p.File = &v1alpha1.FileProbe{Path: "/run/ok"} },
		"file relative":        func(p *v1alpha1.ProbeSpec) { p.File = &v1alpha1.FileProbe{Path: "run/ok"} },
		"file empty":           func(p *v1alpha1.ProbeSpec) { p.File = &v1alpha1.FileProbe{} },
		"interface vertical":   func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "eth\v0"} },
		"interface line break": func(p *v1alpha1.ProbeSpec) { p.Interface = &v1alpha1.InterfaceProbe{Name: "eth\n0"} },
	}
	for name, set := range targets {
		t.Run(name, func(t *testing.T) {
			vip := validVIP()
			vip.Spec.Probes = []v1alpha1.ProbeSpec{probe("p", func(p *v1alpha1.ProbeSpec) { p.File = nil; set(p) })}
			errs := Validate(vip)
			_, err := Probes(vip)
			if (len(errs) > 0) != (err != nil) {
				t.Errorf("Validate: %v; Probes: %v; want both to accept or both to refuse", errs.ToAggregate(), err)
			}
		})
	}
}
