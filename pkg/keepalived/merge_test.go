package keepalived

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// hostConf is one host of a pair: the fields tests vary, in a realistic configuration.
type hostConf struct {
	prio     string
	iface    string
	vip      string
	advert   string
	pass     string
	version  string
	weight   string
	extra    string
	src      string
	peer     string
	script   string
	instName string
}

func (h hostConf) String() string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	s := "vrrp_script chk {\n  script \"" + def(h.script, "pgrep -x haproxy") + "\"\n  interval 2\n  weight " + def(h.weight, "-20") + "\n}\n"
	s += "vrrp_instance " + def(h.instName, "VI_1") + " {\n"
	s += "  interface " + def(h.iface, "eth0") + "\n"
	s += "  virtual_router_id 51\n"
	s += "  priority " + def(h.prio, "100") + "\n"
	s += "  advert_int " + def(h.advert, "1") + "\n"
	if h.version != "" {
		s += "  version " + h.version + "\n"
	}
	if h.pass != "" {
		s += "  authentication {\n    auth_type PASS\n    auth_pass " + h.pass + "\n  }\n"
	}
	if h.src != "" {
		s += "  unicast_src_ip " + h.src + "\n"
	}
	if h.peer != "" {
		s += "  unicast_peer {\n    " + h.peer + "\n  }\n"
	}
	s += "  virtual_ipaddress {\n    " + def(h.vip, "192.0.2.100/24") + "\n  }\n"
	s += "  track_script {\n    chk\n  }\n" + h.extra + "}\n"
	return s
}

func mergeHosts(t *testing.T, hosts map[string]string) (*Result, error) {
	t.Helper()
	files := map[string]string{}
	for n, c := range hosts {
		files[n+".conf"] = c
	}
	fsys := mapFS(files)
	per := map[string]*Config{}
	for n := range hosts {
		cfg, err := Parse(fsys, n+".conf", nil)
		if err != nil {
			t.Fatalf("Parse(%s): %v", n, err)
		}
		per[n] = cfg
	}
	return Merge(per)
}

func TestMerge(t *testing.T) {
	probe := v1alpha1.ProbeSpec{Name: "chk", Process: &v1alpha1.ProcessProbe{Name: "haproxy"}, Interval: dur(2 * time.Second), Weight: -20}
	base := func(mod func(*v1alpha1.VirtualIPSpec)) v1alpha1.VirtualIPSpec {
		s := v1alpha1.VirtualIPSpec{
			VRID: 51, Version: 2, Interface: "eth0", Addresses: []string{"192.0.2.100/24"},
			AdvertisementInterval: dur(time.Second), Priority: ptr(int32(100)), Announcements: keepalivedAnnouncements(),
			Nodes: []v1alpha1.NodeOverride{{Name: "lb1"}, {Name: "lb2"}}, Probes: []v1alpha1.ProbeSpec{probe},
		}
		if mod != nil {
			mod(&s)
		}
		return s
	}
	tests := []struct {
		name  string
		hosts map[string]hostConf
		want  v1alpha1.VirtualIPSpec
	}{
		{
			name:  "priorities become per-node overrides of the lower one",
			hosts: map[string]hostConf{"lb1": {prio: "110"}, "lb2": {prio: "100"}},
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Nodes = []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr(int32(110))}, {Name: "lb2"}}
			}),
		},
		{
			name:  "the most common priority is spec.priority",
			hosts: map[string]hostConf{"lb1": {prio: "150"}, "lb2": {prio: "100"}, "lb3": {prio: "100"}},
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Nodes = []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr(int32(150))}, {Name: "lb2"}, {Name: "lb3"}}
			}),
		},
		{
			name:  "interfaces differ per node",
			hosts: map[string]hostConf{"lb1": {prio: "110", iface: "bond0"}, "lb2": {}, "lb3": {}},
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Nodes = []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr(int32(110)), Interface: "bond0"}, {Name: "lb2"}, {Name: "lb3"}}
			}),
		},
		{
			name: "unicast: every member's source address and peers in one list",
			hosts: map[string]hostConf{
				"lb1": {prio: "110", src: "192.0.2.11", peer: "192.0.2.12", pass: "secret"},
				"lb2": {src: "192.0.2.12", peer: "192.0.2.11", pass: "secret"},
			},
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Nodes = []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr(int32(110))}, {Name: "lb2"}}
				s.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.11", "192.0.2.12"}}
				s.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "vi-1-vrrp-auth", Key: "password"}}
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts := map[string]string{}
			for n, h := range tt.hosts {
				hosts[n] = h.String()
			}
			res, err := mergeHosts(t, hosts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.VirtualIPs) != 1 {
				t.Fatalf("%d VirtualIPs, want 1", len(res.VirtualIPs))
			}
			if diff := cmp.Diff(tt.want, res.VirtualIPs[0].Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if tt.want.Authentication != nil {
				if len(res.Secrets) != 1 || res.Secrets[0].StringData[SecretKey] != "secret" {
					t.Errorf("Secrets = %+v, want one with the password", res.Secrets)
				}
			}
		})
	}
}

// Every difference one VirtualIP cannot hold is an error naming both files and the field.
func TestMergeDifferences(t *testing.T) {
	const equal = "; make them equal (kube-vrrp keeps it per group, not per node)"
	tests := []struct {
		name string
		lb2  hostConf
		want string
	}{
		{"addresses", hostConf{vip: "192.0.2.101/24"},
			"lb1.conf:11:3: vrid 51 (IPv4): virtual_ipaddress differs between nodes: lb1 has [192.0.2.100/24] here, lb2 has [192.0.2.101/24] at lb2.conf:11:3" + equal},
		{"interval", hostConf{advert: "2"},
			"lb1.conf:10:3: vrid 51 (IPv4): advert_int differs between nodes: lb1 has 1s here, lb2 has 2s at lb2.conf:10:3" + equal},
		{"version", hostConf{version: "3"},
			"lb1.conf:6:1: vrid 51 (IPv4): VRRP version differs between nodes: lb1 has 2 here, lb2 has 3 at lb2.conf:11:3" + equal},
		{"authentication", hostConf{},
			"lb1.conf:11:3: vrid 51 (IPv4): authentication differs between nodes: lb1 has PASS authentication here, lb2 has no PASS authentication at lb2.conf:6:1; make them equal (kube-vrrp keeps it per group, not per node)"},
		{"preemption", hostConf{extra: "  nopreempt\n"},
			"lb1.conf:6:1: vrid 51 (IPv4): preemption differs between nodes: lb1 has preempt here, lb2 has no preempt at lb2.conf:17:3" + equal +
				// With nopreempt, lb2's only probe is weighted: it is dropped, which is a difference too.
				"\nlb1.conf:1:1: vrid 51 (IPv4): tracked chk exists on lb1 but not on lb2 (lb2.conf); track the same scripts on every node"},
		{"use_vmac", hostConf{extra: "  use_vmac\n"},
			"lb1.conf:6:1: vrid 51 (IPv4): use_vmac differs between nodes: lb1 has no use_vmac here, lb2 has use_vmac at lb2.conf:17:3" + equal},
		{"gratuitous ARP timing", hostConf{extra: "  garp_master_refresh 60\n"},
			`lb1.conf:6:1: vrid 51 (IPv4): the gratuitous ARP timing (garp_master_*) differs between nodes: lb1 has {"count":5,"repeatDelay":"5s"} here, lb2 has {"count":5,"repeatDelay":"5s","refreshInterval":"1m0s","refreshCount":1} at lb2.conf:17:3` + equal},
		{"notify", hostConf{extra: "  notify_master \"/usr/local/bin/up 'lb 2'\"\n"},
			`lb1.conf:6:1: vrid 51 (IPv4): notify_master differs between nodes: lb1 has none here, lb2 has "/usr/local/bin/up 'lb 2'" at lb2.conf:17:3` + equal},
		{"script weight", hostConf{weight: "-30"},
			`lb1.conf:1:1: vrid 51 (IPv4): tracked chk differs between nodes: lb1 has {"name":"chk","process":{"name":"haproxy"},"interval":"2s","weight":-20} here, lb2 has {"name":"chk","process":{"name":"haproxy"},"interval":"2s","weight":-30} at lb2.conf:1:1; make the scripts and weights equal`},
		{"script", hostConf{script: "pgrep -x nginx"},
			`lb1.conf:1:1: vrid 51 (IPv4): tracked chk differs between nodes: lb1 has {"name":"chk","process":{"name":"haproxy"},"interval":"2s","weight":-20} here, lb2 has {"name":"chk","process":{"name":"nginx"},"interval":"2s","weight":-30} at lb2.conf:1:1; make the scripts and weights equal`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb1 := hostConf{prio: "110", pass: "secret"}
			if tt.name != "authentication" {
				lb1.pass = ""
			}
			if tt.name == "script" {
				tt.lb2.weight = "-30"
			}
			_, err := mergeHosts(t, map[string]string{"lb1": lb1.String(), "lb2": tt.lb2.String()})
			if err == nil {
				t.Fatal("no error")
			}
			requirePositions(t, err)
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergePasswordsDiffer(t *testing.T) {
	_, err := mergeHosts(t, map[string]string{
		"lb1": hostConf{pass: "one"}.String(),
		"lb2": hostConf{pass: "two"}.String(),
	})
	if err == nil {
		t.Fatal("no error")
	}
	want := "lb1.conf:11:3: vrid 51 (IPv4): auth_pass differs between nodes: lb1 has one password here, lb2 has another at lb2.conf:11:3; make them equal (kube-vrrp keeps it per group, not per node)"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "one ") && strings.Contains(err.Error(), "two") {
		t.Error("the error shows the passwords")
	}
}

func TestMergeGroups(t *testing.T) {
	// lb1 and lb2 share VRID 51; only lb1 has VRID 52; lb2 runs VRID 51 on two LANs.
	lb1 := hostConf{prio: "110"}.String() +
		strings.NewReplacer("VI_1", "VI_2", "virtual_router_id 51", "virtual_router_id 52", "192.0.2.100", "192.0.2.200", "vrrp_script chk", "vrrp_script chk2").Replace(hostConf{}.String())
	lb2 := hostConf{}.String() +
		strings.NewReplacer("VI_1", "VI_B", "eth0", "eth1", "192.0.2.100", "198.51.100.1", "vrrp_script chk", "vrrp_script chk2").Replace(hostConf{}.String())
	// lb1 has VRID 51 once (eth0) and lb2 twice (eth0, eth1): matched by interface; the
	// eth1 instance exists only on lb2.
	res, err := mergeHosts(t, map[string]string{"lb1": lb1, "lb2": lb2})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range res.VirtualIPs {
		if v.Spec.NodeSelector != nil {
			t.Errorf("%s: nodeSelector %v: the members are spec.nodes", v.Name, v.Spec.NodeSelector)
		}
		var members []string
		for _, n := range v.Spec.Nodes {
			members = append(members, n.Name)
		}
		got[v.Name] = strings.Join(members, ",") + " " + v.Spec.Interface + " " + v.Spec.Addresses[0]
	}
	want := map[string]string{
		"vi-1": "lb1,lb2 eth0 192.0.2.100/24",
		"vi-2": "lb1 eth0 192.0.2.200/24",
		"vi-b": "lb2 eth1 198.51.100.1/24",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var only []string
	for _, w := range res.Warnings {
		if strings.Contains(w, "is configured only on") {
			only = append(only, w)
		}
	}
	wantOnly := []string{
		"lb1.conf:23: vrid 52 (IPv4) (vrrp_instance VI_2) is configured only on lb1, not on lb2; the VirtualIP selects only lb1",
		"lb2.conf:23: vrid 51 (IPv4) (vrrp_instance VI_B) is configured only on lb2, not on lb1; the VirtualIP selects only lb2",
	}
	if diff := cmp.Diff(wantOnly, only); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestMergeRejects(t *testing.T) {
	cfg := parseString(t, hostConf{}.String())
	for _, tt := range []struct {
		name string
		in   map[string]*Config
		want string
	}{
		{"no nodes", nil, "keepalived: Merge needs at least one node"},
		{"bad node name", map[string]*Config{"LB_1": cfg}, `keepalived: Merge: "LB_1" is not a valid node name (lower-case DNS subdomain)`},
		{"nil config", map[string]*Config{"lb1": nil}, `keepalived: Merge: node "lb1" has no configuration`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Merge(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v, want %s", err, tt.want)
			}
		})
	}
}

// One file for every host, with keepalived's conditional lines: parse it once per node with
// the node name as config id (keepalived's default config id is the host name).
func TestMergeConditionalTemplate(t *testing.T) {
	fsys := mapFS(map[string]string{"keepalived.conf": `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
@lb1 priority 110
@lb2 priority 100
@lb1 unicast_src_ip 192.0.2.11
@lb2 unicast_src_ip 192.0.2.12
    unicast_peer {
@^lb1   192.0.2.11
@^lb2   192.0.2.12
    }
    virtual_ipaddress {
        192.0.2.100/24
    }
}
`})
	per := map[string]*Config{}
	for _, n := range []string{"lb1", "lb2"} {
		cfg, err := Parse(fsys, "keepalived.conf", &Options{ConfigID: n})
		if err != nil {
			t.Fatal(err)
		}
		per[n] = cfg
	}
	res, err := Merge(per)
	if err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.VirtualIPSpec{
		VRID: 51, Version: 2, Interface: "eth0", Addresses: []string{"192.0.2.100/24"},
		AdvertisementInterval: dur(time.Second), Priority: ptr(int32(100)), Announcements: keepalivedAnnouncements(),
		Nodes:   []v1alpha1.NodeOverride{{Name: "lb1", Priority: ptr(int32(110))}, {Name: "lb2"}},
		Unicast: &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.11", "192.0.2.12"}},
	}
	if diff := cmp.Diff(want, res.VirtualIPs[0].Spec); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// use_vmac, the gratuitous ARP timing and notify commands that agree on every node are the
// group's; the generic notify's warning names the VirtualIP, for each node's file.
func TestMergeHostFeatures(t *testing.T) {
	extra := "  use_vmac\n  garp_master_repeat 2\n  notify \"/usr/local/bin/vrrp-event gw\"\n"
	res, err := mergeHosts(t, map[string]string{
		"lb1": hostConf{prio: "110", extra: extra}.String(),
		"lb2": hostConf{extra: extra}.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := res.VirtualIPs[0].Spec
	if !spec.VirtualMAC {
		t.Error("virtualMAC is false")
	}
	if diff := cmp.Diff(&v1alpha1.AnnouncementSpec{Count: ptr(int32(2)), RepeatDelay: dur(5 * time.Second)}, spec.Announcements); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&v1alpha1.NotifySpec{All: []string{"/usr/local/bin/vrrp-event", "gw"}}, spec.Notify); diff != "" {
		t.Errorf("notify (-want +got):\n%s", diff)
	}
	for _, f := range []string{"lb1.conf", "lb2.conf"} {
		w := f + ":19: vrrp_instance VI_1: notify: kube-vrrp passes keepalived's four arguments in the same order (INSTANCE, the name, the new state: MASTER, BACKUP, FAULT or STOP, the priority) and a fifth, the reason (one CamelCase word); the name is the VirtualIP's, vi-1, where keepalived passed VI_1"
		if !slices.Contains(res.Warnings, w) {
			t.Errorf("no warning\n  %s\nin\n  %s", w, strings.Join(res.Warnings, "\n  "))
		}
	}
}
