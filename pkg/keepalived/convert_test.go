package keepalived

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
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

// keepalivedAnnouncements is keepalived's gratuitous ARP timing written out: 5 messages per
// address, a second burst 5s later, no refresh.
func keepalivedAnnouncements() *v1alpha1.AnnouncementSpec {
	return &v1alpha1.AnnouncementSpec{Count: ptr(int32(5)), RepeatDelay: dur(5 * time.Second)}
}

// instance wraps the body of a vrrp_instance with a VRID and an address.
func instance(body string) string {
	return "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10/24\n  }\n" + body + "}\n"
}

func TestConvertSpec(t *testing.T) {
	base := func(mod func(*v1alpha1.VirtualIPSpec)) v1alpha1.VirtualIPSpec {
		s := v1alpha1.VirtualIPSpec{
			VRID: 51, Version: 2, Interface: "eth0", Addresses: []string{"192.0.2.10/24"},
			AdvertisementInterval: dur(time.Second), Priority: ptr(int32(100)), Announcements: keepalivedAnnouncements(),
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
			name: "notify, use_vmac and garp_master_delay are converted; what has no equivalent is reported",
			conf: instance("  notify_master /etc/keepalived/master.sh\n  use_vmac\n  garp_master_delay 1\n  mcast_src_ip 192.0.2.1\n"),
			want: base(func(s *v1alpha1.VirtualIPSpec) {
				s.Notify = &v1alpha1.NotifySpec{Master: []string{"/etc/keepalived/master.sh"}}
				s.VirtualMAC = true
				s.Announcements.RepeatDelay = dur(time.Second)
			}),
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: notify commands run only where exec is enabled",
				"k.conf:7: vrrp_instance VI_1: notify_master: keepalived ran it with its own arguments only",
				"k.conf:10: vrrp_instance VI_1: mcast_src_ip is not converted: kube-vrrp sends from the node's address on the interface",
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

// keepalived 2.2.7 in a sync group without sync_group_tracking_weight (checked with keepalived
// -t and its data dump): a member's own weighted interface gets weight 0, its weighted script
// is dropped, its weighted process keeps its weight; the group's own tracking keeps its weights,
// unless a member is the address owner, which clears them for every member.
func TestConvertSyncGroup(t *testing.T) {
	conf := `vrrp_script chk {
  script "pgrep -x haproxy"
  weight -20
}
vrrp_track_process tp {
  process conntrackd
  weight -10
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
  track_process {
    tp
  }
  track_interface {
    eth2 weight -7
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
		"a": {
			{Name: "interface-eth2", Interface: &v1alpha1.InterfaceProbe{Name: "eth2"}},
			{Name: "tp", Process: &v1alpha1.ProcessProbe{Name: "conntrackd"}, Weight: -10},
			eth9,
		},
		"b": {eth9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probes (-want +got):\n%s", diff)
	}
	checkWarnings(t, res.Warnings, []string{
		"k.conf:9: vrrp_sync_group G (A, B): kube-vrrp has no sync groups",
		"k.conf:25: vrrp_instance A: track_script chk (weight -20) is not converted: keepalived ignores a sync group member's weighted script unless sync_group_tracking_weight is set",
		"k.conf:31: vrrp_instance A: track_interface eth2 weight -7: keepalived sets the weight of a sync group member's tracked interface to 0 (FAULT on failure) unless sync_group_tracking_weight is set, and so does the conversion",
	})

	// sync_group_tracking_weight keeps the weights.
	res = convertString(t, strings.Replace(conf, "  group {", "  sync_group_tracking_weight\n  group {", 1))
	var weights []int32
	for _, p := range res.VirtualIPs[0].Spec.Probes {
		weights = append(weights, p.Weight)
	}
	if diff := cmp.Diff([]int32{-7, -20, -10, -5}, weights); diff != "" {
		t.Errorf("with sync_group_tracking_weight: weights (-want +got):\n%s", diff)
	}

	// A member that owns the addresses clears the weights of the group's tracking, for every
	// member; its own weighted tracking is ignored, as for any owner.
	res = convertString(t, strings.Replace(conf, "  interface eth1\n", "  interface eth1\n  priority 255\n", 1))
	got = map[string][]v1alpha1.ProbeSpec{}
	for _, v := range res.VirtualIPs {
		got[v.Name] = v.Spec.Probes
	}
	eth9.Weight = 0
	want["a"][2], want["b"][0] = eth9, eth9
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("with an owner: probes (-want +got):\n%s", diff)
	}
	checkWarnings(t, res.Warnings, []string{
		"k.conf:9: vrrp_sync_group G (A, B): kube-vrrp has no sync groups",
		"k.conf:15: vrrp_sync_group G: track_interface eth9 weight -5: keepalived clears the weights of a sync group's tracked objects when a member is the address owner (priority 255), so a failure puts every member in FAULT, and so does the conversion",
		"k.conf:25: vrrp_instance A: track_script chk (weight -20) is not converted",
		"k.conf:31: vrrp_instance A: track_interface eth2 weight -7: keepalived sets the weight",
		"k.conf:36: vrrp_instance B: priority 255 makes this node the address owner",
	})
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

// convertValid converts conf and requires every VirtualIP to pass desired.Validate, the rules
// of `kube-vrrp validate` and the CRD.
func convertValid(t *testing.T, conf string) *Result {
	t.Helper()
	res := convertString(t, conf)
	for i := range res.VirtualIPs {
		if errs := desired.Validate(&res.VirtualIPs[i]); len(errs) > 0 {
			t.Errorf("VirtualIP %s does not validate: %v", res.VirtualIPs[i].Name, errs.ToAggregate())
		}
	}
	return res
}

func TestConvertVirtualMAC(t *testing.T) {
	tests := []struct {
		name  string
		conf  string
		want  bool
		warns []string
	}{
		{name: "use_vmac", conf: instance("  use_vmac\n"), want: true},
		{name: "no use_vmac", conf: instance(""), want: false},
		{
			name: "a name and a MAC address are not kept",
			conf: instance("  use_vmac vrrp.51 02:00:00:00:00:01\n"),
			want: true,
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: use_vmac vrrp.51: kube-vrrp names and manages its own macvlan for the VirtualIP (virtualMAC: true) and always sends its adverts and announcements from it; the name vrrp.51 is not used",
				"k.conf:7: vrrp_instance VI_1: use_vmac MAC address 02:00:00:00:00:01: kube-vrrp always uses the RFC 5798 virtual router MAC, 00:00:5e:00:01:33 for this group; 02:00:00:00:00:01 is not used",
			},
		},
		{
			name: "IPv6 uses the IPv6 virtual router MAC",
			conf: "vrrp_instance V6 {\n  interface eth0\n  virtual_router_id 10\n  use_vmac 02:00:00:00:00:02\n  virtual_ipaddress {\n    2001:db8::10/64\n  }\n}\n",
			want: true,
			warns: []string{
				"k.conf:4: vrrp_instance V6: use_vmac MAC address 02:00:00:00:00:02: kube-vrrp always uses the RFC 5798 virtual router MAC, 00:00:5e:00:02:0a for this group",
			},
		},
		{
			name: "use_vmac_addr and vmac_xmit_base",
			conf: instance("  use_vmac\n  use_vmac_addr\n  vmac_xmit_base\n"),
			want: true,
			warns: []string{
				"k.conf:8: vrrp_instance VI_1: use_vmac_addr is not converted: kube-vrrp names and manages its own macvlan (virtualMAC), one on the VirtualIP's interface, binds all the addresses there and always sends from it",
				"k.conf:9: vrrp_instance VI_1: vmac_xmit_base is not converted: kube-vrrp names and manages its own macvlan (virtualMAC) and always sends its adverts and announcements from it, never from the base interface",
			},
		},
		{
			name: "use_vmac on an address",
			conf: "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.10/24 dev eth0 use_vmac\n  }\n}\n",
			want: false,
			warns: []string{
				"k.conf:5: vrrp_instance VI_1: address 192.0.2.10/24 option use_vmac (a macvlan on the address's own dev) cannot be expressed: virtualMAC puts all of a VirtualIP's addresses on one macvlan of its interface",
			},
		},
		{
			name:  "words after the name and address are ignored",
			conf:  instance("  use_vmac vrrp.51 02:00:00:00:00:01 extra\n"),
			want:  true,
			warns: []string{"use_vmac vrrp.51", "use_vmac MAC address", `k.conf:7: use_vmac: "extra" ignored (keepalived reads an interface name and a MAC address, and ignores the rest)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := convertValid(t, tt.conf)
			if got := res.VirtualIPs[0].Spec.VirtualMAC; got != tt.want {
				t.Errorf("virtualMAC = %v, want %v", got, tt.want)
			}
			checkWarnings(t, res.Warnings, tt.warns)
		})
	}
}

func TestConvertAnnouncements(t *testing.T) {
	ann := func(count int32, delay time.Duration, refresh time.Duration, refreshCount int32) *v1alpha1.AnnouncementSpec {
		a := &v1alpha1.AnnouncementSpec{Count: ptr(count), RepeatDelay: dur(delay)}
		if refresh > 0 {
			a.RefreshInterval, a.RefreshCount = dur(refresh), ptr(refreshCount)
		}
		return a
	}
	global := func(body string) string { return "global_defs {\n" + body + "}\n" }
	tests := []struct {
		name  string
		conf  string
		want  *v1alpha1.AnnouncementSpec
		warns []string
	}{
		{name: "keepalived's defaults are written out: 5 messages, a second burst 5s later, no refresh",
			conf: instance(""), want: ann(5, 5*time.Second, 0, 0)},
		{name: "the instance's own settings",
			conf: instance("  garp_master_delay 0\n  garp_master_repeat 1\n  garp_master_refresh 60\n  garp_master_refresh_repeat 3\n"),
			want: ann(1, 0, time.Minute, 3)},
		{name: "a refresh repeats 1 message by default",
			conf: instance("  garp_master_refresh 300\n"), want: ann(5, 5*time.Second, 5*time.Minute, 1)},
		{name: "global_defs sets the defaults, wherever it stands; the instance's own win",
			conf: instance("  garp_master_repeat 2\n") + global("  vrrp_garp_master_delay 10\n  vrrp_garp_master_repeat 3\n  vrrp_garp_master_refresh 30\n  vrrp_garp_master_refresh_repeat 2\n"),
			want: ann(2, 10*time.Second, 30*time.Second, 2)},
		{name: "vrrp_min_garp: one message, no second burst",
			conf: global("  vrrp_min_garp\n") + instance(""), want: ann(1, 0, 0, 0)},
		{name: "vrrp_min_garp keeps what was set before it, and what follows it wins",
			conf: global("  vrrp_garp_master_delay 3\n  vrrp_min_garp\n  vrrp_garp_master_repeat 4\n") + instance(""),
			want: ann(4, 3*time.Second, 0, 0)},
		{name: "vrrp_min_garp off changes nothing",
			conf: global("  vrrp_min_garp off\n") + instance(""), want: ann(5, 5*time.Second, 0, 0)},
		{name: "vrrp_min_garp sets 0 messages per refresh: keepalived's refresh sends nothing",
			conf: global("  vrrp_min_garp\n") + instance("  garp_master_refresh 30\n"), want: ann(1, 0, 0, 0),
			warns: []string{"k.conf:10: vrrp_instance VI_1: garp_master_refresh 30: global_defs vrrp_min_garp set the messages per refresh to 0, so keepalived sends nothing at a refresh; no refresh is converted"}},
		{name: "beyond kube-vrrp's bounds: clamped",
			conf: instance("  garp_master_delay 4000\n  garp_master_repeat 20\n  garp_master_refresh 100000\n  garp_master_refresh_repeat 17\n"),
			want: ann(16, time.Hour, 24*time.Hour, 16),
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: garp_master_delay 4000: kube-vrrp sends the second burst at most 1h0m0s after a takeover; 1h0m0s is used",
				"k.conf:8: vrrp_instance VI_1: garp_master_repeat 20: kube-vrrp sends at most 16 messages per address in each burst; 16 is used",
				"k.conf:9: vrrp_instance VI_1: garp_master_refresh 100000: kube-vrrp refreshes at least every 24h0m0s; 24h0m0s is used",
				"k.conf:10: vrrp_instance VI_1: garp_master_refresh_repeat 17: kube-vrrp sends at most 16 messages per address at each refresh; 16 is used",
			}},
		{name: "0 messages: keepalived sends 1",
			conf: instance("  garp_master_repeat 0\n  garp_master_refresh 10\n  garp_master_refresh_repeat 0\n"),
			want: ann(1, 5*time.Second, 10*time.Second, 1),
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: garp_master_repeat 0: keepalived sends 1 message per address in each burst (and reports an error), and so does the conversion",
				"k.conf:9: vrrp_instance VI_1: garp_master_refresh_repeat 0: keepalived sends 1 message per address at each refresh",
			}},
		{name: "a refresh repeat without a refresh",
			conf: instance("  garp_master_refresh_repeat 2\n"), want: ann(5, 5*time.Second, 0, 0),
			warns: []string{"k.conf:7: vrrp_instance VI_1: garp_master_refresh_repeat has no effect without garp_master_refresh, in keepalived too; not converted"}},
		{name: "the timing keepalived has and kube-vrrp does not",
			conf: global("  vrrp_garp_lower_prio_delay 10\n  vrrp_garp_interval 0.001\n  vrrp_gna_interval 0.001\n  vrrp_garp_extra_if 60\n") +
				instance("  garp_lower_prio_repeat 1\n  garp_extra_if all 120\n"),
			want: ann(5, 5*time.Second, 0, 0),
			warns: []string{
				"k.conf:2: global_defs vrrp_garp_lower_prio_delay: not converted: not configurable: a kube-vrrp MASTER that hears a lower-priority advert answers it at once with an advert and a new announcement of its addresses, at most once per advert interval (docs/design.md §4.4)",
				"k.conf:3: global_defs vrrp_garp_interval: not converted: kube-vrrp sends the messages of a burst back to back; the spacing is not configurable",
				"k.conf:4: global_defs vrrp_gna_interval: not converted: kube-vrrp sends the messages of a burst back to back",
				"k.conf:5: global_defs vrrp_garp_extra_if: not converted: a VirtualIP announces its addresses on its own interface only; announcements.refreshInterval repeats those announcements while MASTER",
				"k.conf:13: vrrp_instance VI_1: garp_lower_prio_repeat is not converted: not configurable: a kube-vrrp MASTER that hears a lower-priority advert answers it",
				"k.conf:14: vrrp_instance VI_1: garp_extra_if is not converted: a VirtualIP announces its addresses on its own interface only",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := convertValid(t, tt.conf)
			if diff := cmp.Diff(tt.want, res.VirtualIPs[0].Spec.Announcements); diff != "" {
				t.Errorf("announcements (-want +got):\n%s", diff)
			}
			checkWarnings(t, res.Warnings, tt.warns)
		})
	}
}

// A value of global_defs beyond kube-vrrp's bounds is reported once, not once per instance.
func TestConvertAnnouncementsGlobalWarningOnce(t *testing.T) {
	conf := "global_defs {\n  vrrp_garp_master_repeat 30\n}\n" + instance("") +
		strings.NewReplacer("VI_1", "VI_2", "virtual_router_id 51", "virtual_router_id 52", "192.0.2.10", "192.0.2.20").Replace(instance(""))
	res := convertValid(t, conf)
	for _, v := range res.VirtualIPs {
		if c := v.Spec.Announcements.Count; c == nil || *c != 16 {
			t.Errorf("%s: count %v, want 16", v.Name, c)
		}
	}
	checkWarnings(t, res.Warnings, []string{
		"k.conf:2: global_defs vrrp_garp_master_repeat 30: kube-vrrp sends at most 16 messages per address in each burst; 16 is used",
	})
}

func TestConvertNotify(t *testing.T) {
	const exec = "notify commands run only where exec is enabled (--enable-exec-probes, chart value probes.exec.enabled): without it kube-vrrp run refuses the VirtualIP, and an agent runs the VirtualIP without them and reports NotifyDisabled"
	tests := []struct {
		name  string
		conf  string
		want  *v1alpha1.NotifySpec
		warns []string
	}{
		{
			name: "each keyword to its field, split into argv without a shell",
			conf: instance("  notify_master \"/usr/local/bin/gw 'up now' \\\"x y\\\"\"\n  notify_backup /usr/local/bin/backup.sh\n  notify_fault \"/usr/local/bin/gw fault\"\n  notify_stop \"/usr/local/bin/gw stop\"\n  notify /etc/keepalived/notify.sh\n"),
			want: &v1alpha1.NotifySpec{
				Master: []string{"/usr/local/bin/gw", "up now", "x y"},
				Backup: []string{"/usr/local/bin/backup.sh"},
				Fault:  []string{"/usr/local/bin/gw", "fault"},
				Stop:   []string{"/usr/local/bin/gw", "stop"},
				All:    []string{"/etc/keepalived/notify.sh"},
			},
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: " + exec,
				"k.conf:7: vrrp_instance VI_1: notify_master, notify_backup, notify_fault, notify_stop: keepalived ran each with its own arguments only; kube-vrrp appends five: INSTANCE, the VirtualIP's name, the new state (MASTER, BACKUP, FAULT or STOP), the priority and the reason",
				"k.conf:11: vrrp_instance VI_1: notify: kube-vrrp passes keepalived's four arguments in the same order (INSTANCE, the name, the new state: MASTER, BACKUP, FAULT or STOP, the priority) and a fifth, the reason (one CamelCase word); the name is the VirtualIP's, vi-1, where keepalived passed VI_1",
			},
		},
		{
			name: "the generic notify alone; no name warning when the names agree",
			conf: strings.Replace(instance("  notify /etc/keepalived/notify.sh\n"), "VI_1", "gw", 1),
			want: &v1alpha1.NotifySpec{All: []string{"/etc/keepalived/notify.sh"}},
			warns: []string{
				"k.conf:7: vrrp_instance gw: " + exec,
				"k.conf:7: vrrp_instance gw: notify: kube-vrrp passes keepalived's four arguments in the same order (INSTANCE, the name, the new state: MASTER, BACKUP, FAULT or STOP, the priority) and a fifth, the reason (one CamelCase word)",
			},
		},
		{
			name: "keepalived keeps the first of a keyword",
			conf: instance("  notify_master /usr/local/bin/a\n  notify_master /usr/local/bin/b\n"),
			want: &v1alpha1.NotifySpec{Master: []string{"/usr/local/bin/a"}},
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: " + exec,
				"k.conf:7: vrrp_instance VI_1: notify_master: keepalived ran it with its own arguments only",
				"k.conf:8: vrrp_instance VI_1: notify_master is given again (first at k.conf:7); keepalived keeps the first one, and so does the conversion",
			},
		},
		{
			name: "user and group: the agent's user runs it",
			conf: instance("  notify_master /usr/local/bin/up.sh keepalived_script nogroup extra\n"),
			want: &v1alpha1.NotifySpec{Master: []string{"/usr/local/bin/up.sh"}},
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: notify_master: keepalived runs it as user keepalived_script and group nogroup; kube-vrrp runs notify commands as the agent's user. (keepalived reads the words after an unquoted command as user and group: to pass them as arguments, quote the whole command)",
				"k.conf:7: vrrp_instance VI_1: notify_master: words after the group (extra) are ignored by keepalived, and here too",
				"k.conf:7: vrrp_instance VI_1: " + exec,
				"k.conf:7: vrrp_instance VI_1: notify_master: keepalived ran it",
			},
		},
		{
			name: "shell syntax is passed as it is, as keepalived 2.x does",
			conf: instance("  notify_master \"/usr/bin/logger up > /dev/null; /bin/true\"\n"),
			want: &v1alpha1.NotifySpec{Master: []string{"/usr/bin/logger", "up", ">", "/dev/null;", "/bin/true"}},
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: notify_master (/usr/bin/logger up > /dev/null; /bin/true): it has shell syntax (; >), but keepalived 2.x ran it without a shell, passing these characters to the program as they are, and so does kube-vrrp; if a shell was meant, put the command in a script and give the script's absolute path",
				"k.conf:7: vrrp_instance VI_1: " + exec,
				"k.conf:7: vrrp_instance VI_1: notify_master: keepalived ran it",
			},
		},
		{
			name: "notify_deleted and notify_master_rx_lower_pri are reported",
			conf: instance("  notify_deleted\n  notify_deleted /usr/local/bin/gone\n  notify_master_rx_lower_pri /usr/local/bin/restore-eip\n"),
			warns: []string{
				"k.conf:7: vrrp_instance VI_1: notify_deleted is not converted: kube-vrrp has no DELETED state; a VirtualIP that is deleted, or no longer selects the node, stops its instance there, which runs notify.stop (and notify.all with STOP)",
				`k.conf:8: vrrp_instance VI_1: notify_deleted is not converted, and its command "/usr/local/bin/gone" does not run: kube-vrrp has no DELETED state`,
				`k.conf:9: vrrp_instance VI_1: notify_master_rx_lower_pri "/usr/local/bin/restore-eip" is not converted: kube-vrrp has no such hook`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := convertValid(t, tt.conf)
			if diff := cmp.Diff(tt.want, res.VirtualIPs[0].Spec.Notify); diff != "" {
				t.Errorf("notify (-want +got):\n%s", diff)
			}
			checkWarnings(t, res.Warnings, tt.warns)
		})
	}
}

// A sync group's notify scripts have nothing to attach to in kube-vrrp.
func TestConvertSyncGroupNotify(t *testing.T) {
	conf := "vrrp_sync_group G {\n  group {\n    VI_1\n  }\n  notify_master \"/usr/bin/logger G master\"\n  notify \"/usr/bin/logger G\"\n}\n" + instance("")
	res := convertValid(t, conf)
	if n := res.VirtualIPs[0].Spec.Notify; n != nil {
		t.Errorf("notify = %+v, want none", n)
	}
	checkWarnings(t, res.Warnings, []string{
		"k.conf:1: vrrp_sync_group G (VI_1): kube-vrrp has no sync groups",
		`k.conf:5: vrrp_sync_group G: notify_master "/usr/bin/logger G master" is not converted: kube-vrrp has no sync groups, so nothing runs on a group's changes; to run it on a member's changes, put it in that vrrp_instance`,
		`k.conf:6: vrrp_sync_group G: notify "/usr/bin/logger G" is not converted`,
	})
}

func TestConvertNotifyErrors(t *testing.T) {
	long := "/usr/local/bin/x " + strings.Repeat("a", v1alpha1.MaxExecArgLength+1)
	tests := []struct {
		name string
		conf string
		want string
	}{
		{"no directory", instance("  notify_master \"logger -t gw master\"\n"),
			`k.conf:7:3: vrrp_instance VI_1: notify_master "logger -t gw master": logger is not an absolute path, and kube-vrrp runs notify commands without a PATH lookup; write the program's absolute path ("command -v logger" on the host shows the one keepalived found)`},
		{"relative path", instance("  notify scripts/notify.sh\n"),
			`k.conf:7:3: vrrp_instance VI_1: notify "scripts/notify.sh": scripts/notify.sh is not an absolute path`},
		{"unbalanced quotes", instance("  notify_backup \"/usr/local/bin/x 'a b\"\n"),
			`k.conf:7:3: vrrp_instance VI_1: notify_backup "/usr/local/bin/x 'a b": the quotes are unbalanced; write the command so that it splits into words as intended`},
		{"empty", instance("  notify_fault \"\"\n"),
			"k.conf:7:3: vrrp_instance VI_1: notify_fault: the command is empty; give the program's absolute path"},
		{"too many words", instance("  notify_stop \"/usr/local/bin/x" + strings.Repeat(" a", v1alpha1.MaxExecArgs) + "\"\n"),
			"k.conf:7:3: vrrp_instance VI_1: notify_stop: the command has 33 words; spec.notify holds at most 32 (put the command in a script)"},
		{"a word too long", instance("  notify \"" + long + "\"\n"),
			"k.conf:7:3: vrrp_instance VI_1: notify: a word of the command is longer than 1024 bytes, which spec.notify cannot hold (put the command in a script)"},
		{"control characters", instance("  notify_master \"/usr/local/bin/x \\x1b\"\n"),
			`k.conf:7:3: vrrp_instance VI_1: notify_master "/usr/local/bin/x \x1b" has control characters or bytes that are not UTF-8, which a manifest cannot carry`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert(parseString(t, tt.conf))
			if err == nil {
				t.Fatal("no error")
			}
			requirePositions(t, err)
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n  %s\nwant it to start with\n  %s", err, tt.want)
			}
		})
	}
}
