package keepalived

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

func parseString(t *testing.T, conf string) *Config {
	t.Helper()
	cfg, err := Parse(mapFS(map[string]string{"k.conf": conf}), "k.conf", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func convertString(t *testing.T, conf string) *Result {
	t.Helper()
	res, err := Convert(parseString(t, conf))
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	return res
}

func dur(d time.Duration) *v1alpha1.Duration { return &v1alpha1.Duration{Duration: d} }

// instance wraps the body of a vrrp_instance with a VRID and an address.
func instance(body string) string {
	return "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10/24\n  }\n" + body + "}\n"
}

func TestConvertSpec(t *testing.T) {
	base := func(mod func(*v1alpha1.VirtualIPSpec)) v1alpha1.VirtualIPSpec {
		s := v1alpha1.VirtualIPSpec{
			VRID: 51, Version: 2, Interface: "eth0", Addresses: []string{"192.0.2.10/24"},
			AdvertisementInterval: dur(time.Second), Priority: ptr(int32(100)),
			NodeSelector: &metav1.LabelSelector{},
		}
		if mod != nil {
			mod(&s)
		}
		return s
	}
	tests := []struct {
		name  string
		conf  string
		want  v1alpha1.VirtualIPSpec
		warns []string // substrings, one per expected warning, in order
	}{
		{
			name: "keepalived defaults are written out: v2, 1s, priority 100",
			conf: instance(""),
			want: base(nil),
		},
		{
			name:  "v2 rounds the interval to whole seconds, half up",
			conf:  instance("  advert_int 1.5\n"),
			want:  base(func(s *v1alpha1.VirtualIPSpec) { s.AdvertisementInterval = dur(2 * time.Second) }),
			warns: []string{"k.conf:7: vrrp_instance VI_1: advert_int 1.5: VRRPv2 advertises whole seconds; keepalived rounds it to 2s"},
		},
		{
			name:  "v2 never goes below 1s",
			conf:  instance("  advert_int 0.4\n"),
			want:  base(nil),
			warns: []string{"keepalived rounds it to 1s"},
		},
		{
			name: "v3 from global vrrp_version, 10ms steps rounded half up",
			conf: "global_defs {\n  vrrp_version 3\n}\n" + instance("  advert_int 0.015\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Version, s.AdvertisementInterval = 3, dur(20*time.Millisecond)
			}),
			warns: []string{"k.conf:10: vrrp_instance VI_1: advert_int 0.015: VRRPv3 advertises in 10ms steps; keepalived rounds it to 20ms"},
		},
		{
			name: "v3 caps the interval at 40.95s; the instance version wins over the global one",
			conf: "global_defs {\n  vrrp_version 2\n}\n" + instance("  version 3\n  advert_int 41\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Version, s.AdvertisementInterval = 3, dur(40950*time.Millisecond)
			}),
			warns: []string{"advert_int 41 is above VRRPv3's 40.95s"},
		},
		{
			name: "v3 keeps a sub-second interval",
			conf: instance("  version 3\n  advert_int 0.1\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Version, s.AdvertisementInterval = 3, dur(100*time.Millisecond)
			}),
		},
		{
			name: "IPv6 runs VRRPv3 even when version 2 is asked for",
			conf: "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  version 2\n  virtual_ipaddress {\n    2001:DB8::10/64\n  }\n}\n",
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Version, s.Addresses = 3, []string{"2001:db8::10/64"}
			}),
			warns: []string{"k.conf:4: vrrp_instance VI_1: IPv6 needs VRRPv3"},
		},
		{
			name: "PASS becomes a Secret reference",
			conf: instance("  authentication {\n    auth_type PASS\n    auth_pass 123456789\n  }\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "vi-1-vrrp-auth", Key: "password"}}
			}),
			warns: []string{"k.conf:9: vrrp_instance VI_1: auth_pass is longer than 8 bytes; keepalived uses only the first 8"},
		},
		{
			name:  "AH is not supported",
			conf:  instance("  authentication {\n    auth_type AH\n    auth_pass x\n  }\n"),
			want:  base(nil),
			warns: []string{"k.conf:7: vrrp_instance VI_1: auth_type AH is not supported by kube-vrrp"},
		},
		{
			name:  "keepalived ignores authentication with v3",
			conf:  instance("  version 3\n  authentication {\n    auth_type PASS\n    auth_pass x\n  }\n"),
			want:  base(func(s *v1alpha1.VirtualIPSpec) { s.Version = 3 }),
			warns: []string{"authentication is ignored by keepalived with VRRPv3"},
		},
		{
			name:  "nopreempt",
			conf:  instance("  state BACKUP\n  nopreempt\n"),
			want:  base(func(s *v1alpha1.VirtualIPSpec) { s.Preempt = ptr(false) }),
			warns: []string{"state BACKUP is not converted: kube-vrrp has no initial state"},
		},
		{
			name: "nopreempt and preempt_delay with state MASTER are cleared, as keepalived does",
			conf: instance("  state MASTER\n  priority 150\n  nopreempt\n  preempt_delay 10\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) { s.Priority = ptr(int32(150)) }),
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: state MASTER is not converted: kube-vrrp has no initial state, nodes elect by priority (this node's is 150)",
				"k.conf:9: vrrp_instance VI_1: nopreempt is ignored by keepalived with state MASTER",
				"k.conf:10: vrrp_instance VI_1: preempt_delay is ignored by keepalived with state MASTER",
			},
		},
		{
			name: "preempt_delay",
			conf: instance("  preempt_delay 2.5\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) { s.PreemptDelay = dur(2500 * time.Millisecond) }),
		},
		{
			name:  "state MASTER without priority is keepalived's 255, converted as 254",
			conf:  instance("  state MASTER\n"),
			want:  base(func(s *v1alpha1.VirtualIPSpec) { s.Priority = ptr(int32(254)) }),
			warns: []string{"k.conf:7: vrrp_instance VI_1: state MASTER without a priority gives this node keepalived's address-owner priority 255"},
		},
		{
			name:  "explicit priority 255",
			conf:  instance("  priority 255\n"),
			want:  base(func(s *v1alpha1.VirtualIPSpec) { s.Priority = ptr(int32(254)) }),
			warns: []string{"k.conf:7: vrrp_instance VI_1: priority 255 makes this node the address owner in keepalived"},
		},
		{
			name: "nopreempt is cleared at priority 255, as keepalived does",
			conf: instance("  state BACKUP\n  priority 255\n  nopreempt\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) { s.Priority = ptr(int32(254)) }),
			warns: []string{
				"k.conf:8: vrrp_instance VI_1: priority 255 makes this node the address owner",
				"k.conf:9: vrrp_instance VI_1: nopreempt is ignored by keepalived with priority 255",
			},
		},
		{
			name:  "vrrp_strict means no accept",
			conf:  "global_defs {\n  vrrp_strict\n}\n" + instance(""),
			want:  base(func(s *v1alpha1.VirtualIPSpec) { s.Accept = ptr(false) }),
			warns: []string{"k.conf:2: vrrp_instance VI_1: strict mode is converted as accept: false"},
		},
		{
			name:  "explicit accept wins over strict mode",
			conf:  instance("  strict_mode on\n  accept\n"),
			want:  base(func(s *v1alpha1.VirtualIPSpec) { s.Accept = ptr(true) }),
			warns: []string{"strict mode is converted as accept: true"},
		},
		{
			name: "unicast: the source address joins the peers",
			conf: instance("  unicast_src_ip 192.0.2.1\n  unicast_peer {\n    192.0.2.3\n    192.0.2.2\n  }\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Unicast = &v1alpha1.UnicastSpec{Peers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}}
			}),
			warns: []string{"k.conf:7: unicast_src_ip 192.0.2.1: kube-vrrp sends from the node's own address; 192.0.2.1 is listed in unicast.peers"},
		},
		{
			name:  "unicast_src_ip alone stays multicast",
			conf:  instance("  unicast_src_ip 192.0.2.1\n"),
			want:  base(nil),
			warns: []string{"unicast_src_ip without unicast_peer: keepalived stays in multicast"},
		},
		{
			name: "address options that cannot be expressed; a range; duplicates",
			conf: "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10-11/24 dev eth1\n    192.0.2.11/24 label eth0:1\n  }\n  virtual_ipaddress_excluded {\n    192.0.2.99\n  }\n}\n",
			want: base(func(s *v1alpha1.VirtualIPSpec) { s.Addresses = []string{"192.0.2.10/24", "192.0.2.11/24"} }),
			warns: []string{
				"k.conf:5: vrrp_instance VI_1: address 192.0.2.10/24 dev eth1: kube-vrrp binds every address on the VirtualIP's interface (eth0)",
				"k.conf:5: vrrp_instance VI_1: address 192.0.2.11/24 dev eth1",
				"k.conf:6: vrrp_instance VI_1: address 192.0.2.11/24 is listed twice; kept once",
				"k.conf:9: vrrp_instance VI_1: virtual_ipaddress_excluded 192.0.2.99 is not converted",
			},
		},
		{
			// A VirtualIP holds each address once, whatever its prefix length (the adverts carry
			// no prefix lengths); found by FuzzParse.
			name: "the same address with two prefix lengths is kept once",
			conf: "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10/24\n    192.0.2.10/16\n    192.0.2.10\n  }\n}\n",
			want: base(func(s *v1alpha1.VirtualIPSpec) { s.Addresses = []string{"192.0.2.10/24"} }),
			warns: []string{
				"k.conf:6: vrrp_instance VI_1: address 192.0.2.10/16 is listed again (first as 192.0.2.10/24 at k.conf:5); kube-vrrp holds each address once, so 192.0.2.10/24 is kept",
				"k.conf:7: vrrp_instance VI_1: address 192.0.2.10 is listed again (first as 192.0.2.10/24 at k.conf:5); kube-vrrp holds each address once, so 192.0.2.10/24 is kept",
			},
		},
		{
			name: "without interface, the addresses' dev is the interface",
			conf: "vrrp_instance VI_1 {\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10/24 dev bond0\n  }\n}\n",
			want: base(func(s *v1alpha1.VirtualIPSpec) { s.Interface = "bond0" }),
			warns: []string{
				"k.conf:1: vrrp_instance VI_1 has no interface; its addresses name dev bond0, which becomes spec.interface",
			},
		},
		{
			name: "notify scripts and unsupported keywords are reported",
			conf: instance("  notify_master /etc/keepalived/master.sh\n  use_vmac\n  garp_master_delay 1\n"),
			want: base(nil),
			warns: []string{
				`k.conf:7: vrrp_instance VI_1: notify_master "/etc/keepalived/master.sh" is not converted: kube-vrrp runs no scripts on transitions`,
				"k.conf:8: vrrp_instance VI_1: use_vmac is not converted: kube-vrrp does not create VMAC interfaces",
				"k.conf:9: vrrp_instance VI_1: garp_master_delay is not converted",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := convertString(t, tt.conf)
			if len(res.VirtualIPs) != 1 {
				t.Fatalf("%d VirtualIPs, want 1", len(res.VirtualIPs))
			}
			if diff := cmp.Diff(tt.want, res.VirtualIPs[0].Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			checkWarnings(t, res.Warnings, tt.warns)
		})
	}
}

// checkWarnings requires each want substring in a distinct warning, in order, and no warning
// beyond those (so nothing unexpected is reported and nothing expected is silent).
func checkWarnings(t *testing.T, got, want []string) {
	t.Helper()
	i := 0
	for _, w := range got {
		if strings.HasSuffix(w, ": "+EveryNodeWarning) {
			continue // every Convert has it: TestConvertSelectsEveryNode
		}
		if i < len(want) && strings.Contains(w, want[i]) {
			i++
			continue
		}
		t.Errorf("unexpected warning: %s", w)
	}
	if i < len(want) {
		t.Errorf("missing warning %q in:\n%s", want[i], strings.Join(got, "\n"))
	}
}

// One host's file names no node: each VirtualIP selects every node explicitly, so that it is
// valid (the CRD wants nodeSelector or spec.nodes), and one warning says so.
func TestConvertSelectsEveryNode(t *testing.T) {
	res := convertString(t, instance("")+strings.NewReplacer("VI_1", "VI_2", "virtual_router_id 51", "virtual_router_id 52", "192.0.2.10", "192.0.2.20").Replace(instance("")))
	if len(res.VirtualIPs) != 2 {
		t.Fatalf("%d VirtualIPs, want 2", len(res.VirtualIPs))
	}
	for _, v := range res.VirtualIPs {
		if v.Spec.NodeSelector == nil || !reflect.DeepEqual(*v.Spec.NodeSelector, metav1.LabelSelector{}) || v.Spec.Nodes != nil {
			t.Errorf("%s: nodeSelector %v, nodes %v; want nodeSelector {} and no nodes", v.Name, v.Spec.NodeSelector, v.Spec.Nodes)
		}
	}
	var n int
	for _, w := range res.Warnings {
		if strings.HasSuffix(w, ": "+EveryNodeWarning) {
			n++
			if !strings.HasPrefix(w, "k.conf:1: ") {
				t.Errorf("warning at %q, want the first instance (k.conf:1)", w)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d warnings that the VirtualIPs select every node, want 1:\n%s", n, strings.Join(res.Warnings, "\n"))
	}
	out, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(out), "\n  nodeSelector: {}\n"); c != 2 {
		t.Errorf("the YAML has nodeSelector: {} %d times, want 2:\n%s", c, out)
	}
}

func TestConvertProbes(t *testing.T) {
	tests := []struct {
		name  string
		conf  string
		want  []v1alpha1.ProbeSpec
		warns []string
	}{
		{
			name: "script fields kept; the reference's weight wins over the script's",
			conf: "vrrp_script chk {\n  script \"/usr/bin/pgrep -x haproxy\"\n  interval 2\n  timeout 1\n  fall 2\n  rise 3\n  weight -20\n}\n" +
				instance("  track_script {\n    chk weight -30\n  }\n"),
			want: []v1alpha1.ProbeSpec{{
				Name: "chk", Process: &v1alpha1.ProcessProbe{Name: "haproxy"},
				Interval: dur(2 * time.Second), Timeout: dur(time.Second), Fall: ptr(int32(2)), Rise: ptr(int32(3)), Weight: -30,
			}},
		},
		{
			name: "keepalived's defaults: weight 0 (FAULT), interval 1s",
			conf: "vrrp_script chk {\n  script \"pidof nginx\"\n}\n" + instance("  track_script {\n    chk\n  }\n"),
			want: []v1alpha1.ProbeSpec{{Name: "chk", Process: &v1alpha1.ProcessProbe{Name: "nginx"}, Interval: dur(time.Second)}},
		},
		{
			name: "track_interface: weight 0 by default, or the given weight",
			conf: instance("  track_interface {\n    eth1\n    eth2 weight 10\n  }\n"),
			want: []v1alpha1.ProbeSpec{
				{Name: "interface-eth1", Interface: &v1alpha1.InterfaceProbe{Name: "eth1"}},
				{Name: "interface-eth2", Interface: &v1alpha1.InterfaceProbe{Name: "eth2"}, Weight: 10},
			},
		},
		{
			name: "vrrp_track_process: default weight 0, delays as fall/rise",
			conf: "vrrp_track_process haproxy {\n  process /usr/sbin/haproxy\n  terminate_delay 2.5\n  quorum 2\n}\n" +
				instance("  track_process {\n    haproxy\n  }\n"),
			want: []v1alpha1.ProbeSpec{{
				Name: "haproxy", Process: &v1alpha1.ProcessProbe{Name: "haproxy"}, Interval: dur(time.Second), Fall: ptr(int32(3)),
			}},
			warns: []string{
				"k.conf:3: vrrp_track_process haproxy: fork_delay/terminate_delay are approximated",
				"k.conf:4: vrrp_track_process haproxy: quorum 2 cannot be expressed",
			},
		},
		{
			name:  "reverse cannot be expressed: the probe is left out",
			conf:  "vrrp_script chk {\n  script /bin/true\n  weight 10 reverse\n}\n" + instance("  track_script {\n    chk\n  }\n"),
			warns: []string{"k.conf:12: vrrp_instance VI_1: track_script chk uses reverse, which kube-vrrp cannot express; the probe is NOT converted"},
		},
		{
			name:  "an unknown script is ignored, as keepalived does",
			conf:  instance("  track_script {\n    nope\n  }\n"),
			warns: []string{"k.conf:8: vrrp_instance VI_1: track_script nope: no vrrp_script of that name"},
		},
		{
			name: "weighted tracking is ignored for an address owner",
			conf: "vrrp_script a {\n  script /bin/true\n  weight -10\n}\nvrrp_script b {\n  script /bin/false\n}\n" +
				instance("  state MASTER\n  track_script {\n    a\n    b\n  }\n"),
			want: []v1alpha1.ProbeSpec{{Name: "b", Exec: &v1alpha1.ExecProbe{Command: []string{"/bin/false"}}, Interval: dur(time.Second)}},
			warns: []string{
				"k.conf:6: vrrp_script b (/bin/false): converted to an exec probe",
				"state MASTER without a priority",
				"k.conf:16: vrrp_instance VI_1: track_script a with weight -10 is ignored by keepalived for an address owner",
			},
		},
		{
			name: "timeout longer than the interval is cut to the interval",
			conf: "vrrp_script chk {\n  script \"killall -0 haproxy\"\n  interval 2\n  timeout 5\n}\n" + instance("  track_script {\n    chk\n  }\n"),
			want: []v1alpha1.ProbeSpec{{
				Name: "chk", Process: &v1alpha1.ProcessProbe{Name: "haproxy"}, Interval: dur(2 * time.Second), Timeout: dur(2 * time.Second),
			}},
			warns: []string{"k.conf:4: vrrp_script chk: timeout 5 is longer than the interval"},
		},
		{
			// A VirtualIP's probe checks at most every 10ms and waits at least 1ms.
			name: "interval below 10ms and timeout below 1ms are raised to kube-vrrp's minimum",
			conf: "vrrp_script chk {\n  script \"killall -0 haproxy\"\n  interval 0.001\n  timeout 0.001\n}\n" +
				"vrrp_script web {\n  script \"curl -sf -m 0.0005 http://127.0.0.1/\"\n}\n" +
				instance("  track_script {\n    chk\n    web\n  }\n"),
			want: []v1alpha1.ProbeSpec{
				{Name: "chk", Process: &v1alpha1.ProcessProbe{Name: "haproxy"}, Interval: dur(10 * time.Millisecond), Timeout: dur(time.Millisecond)},
				{Name: "web", HTTP: &v1alpha1.HTTPProbe{URL: "http://127.0.0.1/"}, Interval: dur(time.Second), Timeout: dur(time.Millisecond)},
			},
			warns: []string{
				"k.conf:3: vrrp_script chk: interval 0.001 is below kube-vrrp's 10ms; 10ms is used",
				"k.conf:7: vrrp_script web: the command's own timeout 0.0005 is below kube-vrrp's 1ms; the probe's timeout is 1ms",
			},
		},
		{
			name:  "nopreempt with only weighted probes: they could never move the VIP",
			conf:  "vrrp_script chk {\n  script \"pgrep -x haproxy\"\n  weight -20\n}\n" + instance("  nopreempt\n  track_script {\n    chk\n  }\n"),
			warns: []string{"k.conf:1: vrrp_instance VI_1: probe chk (weight -20) is not converted: with nopreempt"},
		},
		{
			name: "unquoted script arguments are ignored by keepalived",
			conf: "vrrp_script chk {\n  script /usr/bin/pgrep -x haproxy\n}\n" + instance("  track_script {\n    chk\n  }\n"),
			want: []v1alpha1.ProbeSpec{{Name: "chk", Exec: &v1alpha1.ExecProbe{Command: []string{"/usr/bin/pgrep"}}, Interval: dur(time.Second)}},
			warns: []string{
				`k.conf:2: vrrp_script chk: words after "/usr/bin/pgrep" (-x haproxy) are ignored by keepalived`,
				"converted to an exec probe",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := convertString(t, tt.conf)
			if diff := cmp.Diff(tt.want, res.VirtualIPs[0].Spec.Probes); diff != "" {
				t.Errorf("probes (-want +got):\n%s", diff)
			}
			var got []string
			for _, w := range res.Warnings {
				if !strings.Contains(w, "state BACKUP") {
					got = append(got, w)
				}
			}
			checkWarnings(t, got, tt.warns)
		})
	}
}

func TestConvertSyncGroup(t *testing.T) {
	conf := `vrrp_script chk {
  script "pgrep -x haproxy"
  weight -20
}
vrrp_sync_group G {
  group {
    A
    B
  }
  track_interface {
    eth9 weight -5
  }
}
vrrp_instance A {
  interface eth0
  virtual_router_id 1
  virtual_ipaddress {
    192.0.2.1
  }
  track_script {
    chk
  }
}
vrrp_instance B {
  interface eth1
  virtual_router_id 2
  virtual_ipaddress {
    198.51.100.1
  }
}
`
	res := convertString(t, conf)
	got := map[string][]v1alpha1.ProbeSpec{}
	for _, v := range res.VirtualIPs {
		got[v.Name] = v.Spec.Probes
	}
	eth9 := v1alpha1.ProbeSpec{Name: "interface-eth9", Interface: &v1alpha1.InterfaceProbe{Name: "eth9"}, Weight: -5}
	want := map[string][]v1alpha1.ProbeSpec{
		// The member's own weighted script gets weight 0, as keepalived does in a sync group.
		"a": {{Name: "chk", Process: &v1alpha1.ProcessProbe{Name: "haproxy"}, Interval: dur(time.Second)}, eth9},
		"b": {eth9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probes (-want +got):\n%s", diff)
	}
	checkWarnings(t, res.Warnings, []string{
		"k.conf:5: vrrp_sync_group G (A, B): kube-vrrp has no sync groups",
		"k.conf:21: vrrp_instance A: track_script chk weight -20: keepalived sets the tracking weights of sync group members to 0",
	})

	// sync_group_tracking_weight keeps the weights.
	res = convertString(t, strings.Replace(conf, "  group {", "  sync_group_tracking_weight\n  group {", 1))
	if w := res.VirtualIPs[0].Spec.Probes[0].Weight; w != -20 {
		t.Errorf("with sync_group_tracking_weight: weight = %d, want -20", w)
	}
}

func TestConvertNames(t *testing.T) {
	conf := ""
	for i, name := range []string{"VI_1", "vi-1", "__", "Web.Frontend", strings.Repeat("x", 70)} {
		conf += strings.Replace(strings.Replace(instance(""), "VI_1", name, 1), "virtual_router_id 51", "virtual_router_id "+string(rune('1'+i)), 1)
	}
	res := convertString(t, conf)
	var got []string
	for _, v := range res.VirtualIPs {
		got = append(got, v.Name)
	}
	want := []string{"vi-1", "vi-1-2", "vrid-3", "web-frontend", strings.Repeat("x", 63)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want string
	}{
		{"no address", "vrrp_instance V {\n  virtual_router_id 1\n}\n",
			"k.conf:1:1: vrrp_instance V has no virtual_ipaddress; a VirtualIP needs at least one address"},
		{"mixed families", "vrrp_instance V {\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.1\n    2001:db8::1\n  }\n}\n",
			"k.conf:5:5: vrrp_instance V: virtual_ipaddress mixes IPv4 and IPv6 (keepalived requires one family; put the other family in a second vrrp_instance)"},
		{"peer of the other family", instance("  unicast_peer {\n    2001:db8::2\n  }\n"),
			"k.conf:8:5: vrrp_instance VI_1: unicast peer 2001:db8::2 is IPv6 but the addresses are IPv4"},
		{"same VRID twice", instance("") + strings.Replace(instance(""), "VI_1", "VI_2", 1),
			`k.conf:10:3: vrrp_instance VI_2: virtual_router_id 51 is used twice for IPv4 on interface "eth0"`},
		{"control characters", "vrrp_script s {\n  script \"/bin/echo \\x1b[1m\"\n}\n" + instance("  track_script {\n    s\n  }\n"),
			`k.conf:2:3: vrrp_script s: script "/bin/echo \x1b[1m" has control characters or bytes that are not UTF-8, which a manifest cannot carry`},
		{"unusable address", "vrrp_instance V {\n  virtual_router_id 1\n  virtual_ipaddress {\n    0.0.0.0\n  }\n}\n",
			"k.conf:4:5: vrrp_instance V: address 0.0.0.0 cannot be a virtual address: it is the unspecified address"},
		{"peer is a virtual address", instance("  unicast_peer {\n    192.0.2.10\n  }\n"),
			"k.conf:8:5: vrrp_instance VI_1: unicast peer 192.0.2.10 is also a virtual address; peers are the routers' own addresses"},
		// The rule of every interface name (probe.CheckInterfaceName): white space is any Unicode
		// space, which the VirtualIP's validation refuses too.
		{"track_interface with a no-break space", instance("  track_interface {\n    eth\u00a01\n  }\n"),
			`k.conf:8:5: vrrp_instance VI_1: track_interface "eth\u00a01" is not a valid interface name`},
		{"dev alias", "vrrp_instance V {\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.1 dev eth0:1\n  }\n}\n",
			`k.conf:1:1: vrrp_instance V: dev "eth0:1" is not a valid interface name: interface names cannot contain '/', ':' or whitespace; use the link's name, e.g. eth0 (not an alias like eth0:1)`},
		{"PASS without password", instance("  authentication {\n    auth_type PASS\n  }\n"),
			"k.conf:7:3: vrrp_instance VI_1: auth_type PASS without auth_pass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert(parseString(t, tt.conf))
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

func TestSecretWithBinaryPassword(t *testing.T) {
	res := convertString(t, instance("  authentication {\n    auth_type PASS\n    auth_pass \"a\\x01b\"\n  }\n"))
	s := res.Secrets[0]
	if s.StringData != nil || string(s.Data[SecretKey]) != "a\x01b" {
		t.Errorf("Secret = %+v, want the password as base64 data", s)
	}
	if _, err := res.YAML(); err != nil {
		t.Error(err)
	}
}

func TestClassifyScript(t *testing.T) {
	type got struct {
		Kind    string
		Target  string
		Timeout time.Duration
		Notes   int
	}
	summarize := func(c check) got {
		g := got{Kind: c.kind(), Timeout: c.timeout, Notes: len(c.notes)}
		switch {
		case c.process != nil:
			g.Target = c.process.Name
		case c.http != nil:
			g.Target = c.http.URL
		case c.tcp != nil:
			g.Target = c.tcp.Address
		case c.file != nil:
			g.Target = c.file.Path
		case c.exec != nil:
			g.Target = strings.Join(c.exec.Command, "|")
		}
		return g
	}
	tests := []struct {
		cmd  string
		want got
	}{
		{"pgrep -x haproxy", got{"process", "haproxy", 0, 0}},
		{"/usr/bin/pgrep -x haproxy", got{"process", "haproxy", 0, 0}},
		{"pgrep haproxy", got{"process", "haproxy", 0, 1}},
		{"pgrep -f 'haproxy -f /etc/haproxy'", got{"exec", "/usr/bin/pgrep|-f|haproxy -f /etc/haproxy", 0, 2}},
		{"pgrep -x 'nginx|haproxy'", got{"exec", "/usr/bin/pgrep|-x|nginx|haproxy", 0, 2}},
		{"pgrep -x a_process_name_too_long", got{"exec", "/usr/bin/pgrep|-x|a_process_name_too_long", 0, 2}},
		{"pidof haproxy", got{"process", "haproxy", 0, 0}},
		{"pidof -s haproxy", got{"process", "haproxy", 0, 0}},
		{"pidof nginx haproxy", got{"exec", "/usr/bin/pidof|nginx|haproxy", 0, 2}},
		{"killall -0 haproxy", got{"process", "haproxy", 0, 0}},
		{"/usr/bin/killall -s 0 haproxy", got{"process", "haproxy", 0, 0}},
		{"killall haproxy", got{"exec", "/usr/bin/killall|haproxy", 0, 2}},
		{"/bin/kill -0 `cat /run/haproxy.pid`", got{"exec", "/bin/sh|-c|/bin/kill -0 `cat /run/haproxy.pid`", 0, 1}},
		{"/bin/kill -0 $(cat /run/haproxy.pid)", got{"exec", "/bin/sh|-c|/bin/kill -0 $(cat /run/haproxy.pid)", 0, 1}},
		{"curl -sf http://127.0.0.1:8080/healthz", got{"http", "http://127.0.0.1:8080/healthz", 0, 0}},
		{"curl -fsSo /dev/null -m 2 http://localhost/", got{"http", "http://localhost/", 2 * time.Second, 0}},
		{"curl --fail --max-time=1.5 https://[::1]:8443/", got{"http", "https://[::1]:8443/", 1500 * time.Millisecond, 0}},
		{"curl -s localhost:8080/health", got{"http", "http://localhost:8080/health", 0, 2}},
		{"curl -kf https://127.0.0.1/", got{"http", "https://127.0.0.1/", 0, 1}},
		{"curl -f -H 'Host: example.com' http://127.0.0.1/", got{"exec", "/usr/bin/curl|-f|-H|Host: example.com|http://127.0.0.1/", 0, 2}},
		{"curl -f http://127.0.0.1/ | grep -q ok", got{"exec", "/bin/sh|-c|curl -f http://127.0.0.1/ | grep -q ok", 0, 1}},
		{"wget -q --spider http://127.0.0.1/", got{"http", "http://127.0.0.1/", 0, 0}},
		{"wget -qO- -T 3 http://127.0.0.1/", got{"http", "http://127.0.0.1/", 3 * time.Second, 0}},
		{"wget --timeout=2 -nv http://127.0.0.1/", got{"http", "http://127.0.0.1/", 2 * time.Second, 0}},
		{"nc -z 127.0.0.1 80", got{"tcp", "127.0.0.1:80", 0, 0}},
		{"/bin/nc -zv -w 2 ::1 6443", got{"tcp", "[::1]:6443", 2 * time.Second, 0}},
		{"nc -zw1 db 5432", got{"tcp", "db:5432", time.Second, 0}},
		{"nc -zu 127.0.0.1 53", got{"exec", "/usr/bin/nc|-zu|127.0.0.1|53", 0, 2}},
		{"nc 127.0.0.1 80", got{"exec", "/usr/bin/nc|127.0.0.1|80", 0, 2}},
		{"test -e /etc/keepalived/up", got{"file", "/etc/keepalived/up", 0, 0}},
		{"[ -f /etc/keepalived/up ]", got{"file", "/etc/keepalived/up", 0, 1}},
		{"test ! -f /etc/keepalived/down", got{"exec", "/usr/bin/test|!|-f|/etc/keepalived/down", 0, 2}},
		{"/bin/sh -c 'pgrep -x haproxy >/dev/null 2>&1'", got{"process", "haproxy", 0, 1}},
		{"bash -c 'killall -0 nginx'", got{"process", "nginx", 0, 1}},
		{"/bin/sh -c 'ss -ltn | grep -q :443'", got{"exec", "/bin/sh|-c|ss -ltn | grep -q :443", 0, 1}},
		{"pgrep -x haproxy > /dev/null", got{"process", "haproxy", 0, 1}},
		{"/etc/keepalived/check.sh arg1 'two words'", got{"exec", "/etc/keepalived/check.sh|arg1|two words", 0, 1}},
		{"scripts/check.sh", got{"exec", "/scripts/check.sh", 0, 2}},
		{"/bin/echo 'unbalanced", got{"exec", "/bin/sh|-c|/bin/echo 'unbalanced", 0, 1}},
		{"/usr/bin/grep -q 'a|b' /etc/x", got{"exec", "/usr/bin/grep|-q|a|b|/etc/x", 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summarize(classifyScript(tt.cmd))); diff != "" {
				t.Errorf("classifyScript(%q) (-want +got):\n%s", tt.cmd, diff)
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	// keepalived 2.2.7 runs `script "/x 1 a b 'c d' \"e f\""` as argv [/x 1 a b "c d" "e f"].
	argv, ok := splitCommand(`/x 1 a b 'c d' "e f" g\ h`)
	if !ok {
		t.Fatal("not ok")
	}
	if diff := cmp.Diff([]string{"/x", "1", "a", "b", "c d", "e f", "g h"}, argv); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
