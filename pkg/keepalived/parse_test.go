package keepalived

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// dump flattens a block tree to one line per statement: "line:col keyword [args] {" ... "}".
func dump(nodes []*Node, indent string) []string {
	var out []string
	for _, n := range nodes {
		args := make([]string, len(n.Args))
		for i, a := range n.Args {
			args[i] = a.Value
			if a.Quoted {
				args[i] = fmt.Sprintf("%q", a.Value)
			}
		}
		s := fmt.Sprintf("%s%d:%d %s", indent, n.Pos.Line, n.Pos.Col, n.Keyword)
		if len(args) > 0 {
			s += " [" + strings.Join(args, " ") + "]"
		}
		if n.HasBlock {
			out = append(out, s+" {")
			out = append(out, dump(n.Block, indent+"  ")...)
			out = append(out, indent+"}")
		} else {
			out = append(out, s)
		}
	}
	return out
}

func mapFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, data := range files {
		m[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

func TestParseAST(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		opts  *Options
		want  []string
		warns []string
	}{{
		name: "blocks, comments and quotes",
		files: map[string]string{"k.conf": `! comment
global_defs {   # trailing comment
  router_id lb1!bang ends the word
}
vrrp_script chk {
  script "/usr/bin/pgrep -x haproxy"
  user 'nobody'
}
`},
		want: []string{
			"2:1 global_defs {",
			"  3:3 router_id [lb1]",
			"}",
			"5:1 vrrp_script [chk] {",
			`  6:3 script ["/usr/bin/pgrep -x haproxy"]`,
			`  7:3 user ["nobody"]`,
			"}",
		},
	}, {
		name: "brace on the next line and statements after braces",
		files: map[string]string{"k.conf": `vrrp_instance VI_1
{
  authentication { auth_type PASS
    auth_pass "a#b!c" }
  virtual_ipaddress { 192.0.2.1/24 }
}`},
		want: []string{
			"1:1 vrrp_instance [VI_1] {",
			"  3:3 authentication {",
			"    3:20 auth_type [PASS]",
			`    4:5 auth_pass ["a#b!c"]`,
			"  }",
			"  5:3 virtual_ipaddress {",
			"    5:23 192.0.2.1/24",
			"  }",
			"}",
		},
	}, {
		name:  "escapes and joined quoted parts",
		files: map[string]string{"k.conf": `x "a\tb" 'c d'e "\x41\101\"" ab"c d"ef` + "\n"},
		want:  []string{`1:1 x ["a\tb" "c de" "AA\"" "abc def"]`},
	}, {
		name: "includes: relative to the including file, globs sorted, braces",
		files: map[string]string{
			"etc/keepalived.conf":   "include conf.d/*.conf\ninclude /etc/extra/{b,a}.conf\nlast\n",
			"etc/conf.d/2.conf":     "two\n",
			"etc/conf.d/1.conf":     "one\ninclude ../sub/x.conf\n",
			"etc/sub/x.conf":        "x\n",
			"etc/extra/a.conf":      "a\n",
			"etc/extra/b.conf":      "b\n",
			"etc/conf.d/skip.conf~": "never\n",
		},
		want: []string{"1:1 one", "1:1 x", "1:1 two", "1:1 b", "1:1 a", "3:1 last"},
	}, {
		name: "files of one glob may include each other: siblings are no cycle",
		files: map[string]string{
			"k.conf":   "include d/*.conf\n",
			"d/a.conf": "a\ninclude b.conf\n",
			"d/b.conf": "b\n",
		},
		want: []string{"1:1 a", "1:1 b", "1:1 b"},
	}, {
		name:  "a plain include that matches nothing is a warning",
		files: map[string]string{"k.conf": "include none/*.conf\nx\n"},
		want:  []string{"2:1 x"},
		warns: []string{"k.conf:1: include none/*.conf matches no file; nothing included"},
	}, {
		name: "conditional configuration with a config id",
		files: map[string]string{"k.conf": `@lb1 priority 110
@lb2 priority 100
@^lb1 state BACKUP
  @^lb2   state MASTER
`},
		opts: &Options{ConfigID: "lb1"},
		want: []string{"1:6 priority [110]", "4:11 state [MASTER]"},
	}, {
		name:  "conditional configuration without a config id",
		files: map[string]string{"k.conf": "@lb1 priority 110\n@^lb1 priority 100\n"},
		want:  []string{"2:7 priority [100]"},
		warns: []string{
			"k.conf:1: conditional line for config id '@lb1' skipped: no config id given (keepalived uses its -i option or the host name); pass the config id to choose",
			"k.conf:2: conditional line for config id '@^lb1' kept: no config id given (keepalived uses its -i option or the host name); pass the config id to choose",
		},
	}, {
		name: "parameter substitution",
		files: map[string]string{"k.conf": `$PRIO=110
$NET=192.0.2
$ADDR=${NET}.10/24
priority $PRIO
address ${ADDR} $UNDEFINED ${_HASH}x
`},
		want: []string{"4:1 priority [110]", "5:1 address [192.0.2.10/24 $UNDEFINED #x]"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "k.conf"
			if _, ok := tt.files[name]; !ok {
				name = "etc/keepalived.conf"
			}
			ast, err := ParseAST(mapFS(tt.files), name, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, dump(ast.Nodes, "")); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}
			var warns []string
			for _, w := range ast.Warnings {
				warns = append(warns, w.String())
			}
			if diff := cmp.Diff(tt.warns, warns); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseIncludePositions(t *testing.T) {
	fsys := mapFS(map[string]string{
		"main.conf":         "global_defs {\n  router_id a\n}\ninclude inc/*.conf\n",
		"inc/instance.conf": "vrrp_instance V {\n  virtual_router_id 51\n  priority x\n}\n",
	})
	_, err := Parse(fsys, "main.conf", nil)
	if err == nil || err.Error() != `inc/instance.conf:3:12: priority: "x" is not an integer` {
		t.Fatalf("error = %v, want the position inside the included file", err)
	}
}

// Malformed configurations: every one is an error at a file:line:col, never a panic.
func TestParseErrors(t *testing.T) {
	big := strings.Repeat("# padding line of 39 bytes............\n", (1<<20)/39+10)
	tests := []struct {
		name  string
		files map[string]string
		opts  *Options
		want  string
	}{
		{"missing closing brace", map[string]string{"k.conf": "vrrp_instance VI_1 {\n  priority 100\n  virtual_ipaddress {\n    192.0.2.1\n}\n"},
			nil, "k.conf:1:20: '{' of vrrp_instance is never closed (missing '}')"},
		{"extra closing brace", map[string]string{"k.conf": "global_defs {\n}\n}\n"},
			nil, "k.conf:3:1: unexpected '}' without a matching '{'"},
		{"brace without keyword", map[string]string{"k.conf": "global_defs {\n}\n\n  {\n"},
			nil, "k.conf:4:3: unexpected '{' without a keyword before it"},
		{"unterminated quote", map[string]string{"k.conf": "vrrp_script s {\n  script \"/bin/true\n}\n"},
			nil, "k.conf:2:10: unterminated quoted string"},
		{"bad number", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 51\n  priority high\n}\n"},
			nil, `k.conf:3:12: priority: "high" is not an integer`},
		{"number out of range", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 256\n}\n"},
			nil, "k.conf:2:21: virtual_router_id: 256 is outside 1..255"},
		{"bad interval", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  advert_int 1e3\n}\n"},
			nil, `k.conf:3:14: advert_int: "1e3" is not a number of seconds`},
		{"interval out of range", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  advert_int 0.001\n}\n"},
			nil, "k.conf:3:14: advert_int: 0.001 is outside 0.01..255"},
		{"garp_master_delay in whole seconds", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  garp_master_delay 1.5\n}\n"},
			nil, `k.conf:3:21: garp_master_delay: "1.5" is not an integer`},
		{"garp_master_delay beyond keepalived's limit", map[string]string{"k.conf": "global_defs {\n  vrrp_garp_master_delay 4295\n}\n"},
			nil, "k.conf:2:26: vrrp_garp_master_delay: 4295 is outside 0..4294"},
		{"negative garp_master_repeat", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  garp_master_repeat -1\n}\n"},
			nil, "k.conf:3:22: garp_master_repeat: -1 is outside 0..2147483647"},
		{"bad vrrp_min_garp", map[string]string{"k.conf": "global_defs {\n  vrrp_min_garp maybe\n}\n"},
			nil, `k.conf:2:17: vrrp_min_garp: "maybe" is not one of on, off, true, false, yes, no`},
		{"weight out of range", map[string]string{"k.conf": "vrrp_script s {\n  script /bin/true\n  weight -300\n}\n"},
			nil, "k.conf:3:10: weight: -300 is outside -253..253"},
		{"interface dot dot", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  interface ..\n}\n"},
			nil, `k.conf:3:13: interface: ".." is not a valid interface name: "." and ".." are not link names: use the name of a network interface, e.g. eth0`},
		{"bad state", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  state PRIMARY\n}\n"},
			nil, `k.conf:3:9: state: "PRIMARY" is not MASTER or BACKUP`},
		{"unknown block", map[string]string{"k.conf": "vrrp_instanse VI_1 {\n  virtual_router_id 1\n}\n"},
			nil, `k.conf:1:1: unknown block "vrrp_instanse"`},
		{"unknown block inside an instance", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  virtual_ipaddres {\n    192.0.2.1\n  }\n}\n"},
			nil, `k.conf:3:3: unknown block "virtual_ipaddres" in vrrp_instance V`},
		{"two addresses on a line", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.1/24 192.0.2.2/24\n  }\n}\n"},
			nil, `k.conf:4:18: virtual_ipaddress: write one address per line (keepalived would read "192.0.2.2/24" as an option of 192.0.2.1/24)`},
		{"bad address", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.300/24\n  }\n}\n"},
			nil, `k.conf:4:5: virtual_ipaddress: "192.0.2.300/24" is not an IP address`},
		{"instance without vrid", map[string]string{"k.conf": "vrrp_instance V {\n  priority 1\n}\n"},
			nil, "k.conf:1:1: vrrp_instance V has no virtual_router_id"},
		{"instance defined twice", map[string]string{"k.conf": "vrrp_instance V {\n  virtual_router_id 1\n}\nvrrp_instance V {\n  virtual_router_id 2\n}\n"},
			nil, "k.conf:4:1: vrrp_instance V is defined twice (first at k.conf:1:1)"},
		{"huge file", map[string]string{"k.conf": big},
			nil, fmt.Sprintf("k.conf:%d:%d: file is larger than 1048576 bytes (the limit is reached here)", (1<<20)/39+1, (1<<20)%39+1)},
		{"huge included file", map[string]string{"k.conf": "x\ninclude big.conf\n", "big.conf": strings.Repeat("y", 101)},
			&Options{MaxFileSize: 100}, "big.conf:1:101: file is larger than 100 bytes (the limit is reached here)"},
		{"total size", map[string]string{"k.conf": "include a.conf\ninclude b.conf\n", "a.conf": strings.Repeat("#", 90), "b.conf": strings.Repeat("#", 90)},
			&Options{MaxFileSize: 100, MaxTotalSize: 150}, "k.conf:2:9: configuration files are larger than 150 bytes in total"},
		{"include cycle", map[string]string{"k.conf": "include a.conf\n", "a.conf": "x\ninclude b.conf\n", "b.conf": "include ./a.conf\n"},
			nil, "b.conf:1:9: include cycle: k.conf -> a.conf -> b.conf -> a.conf"},
		{"self include", map[string]string{"k.conf": "include *.conf\n"},
			nil, "k.conf:1:9: include cycle: k.conf -> k.conf"},
		{"include depth", map[string]string{"k.conf": "include 1.conf\n", "1.conf": "include 2.conf\n", "2.conf": "include 3.conf\n", "3.conf": "x\n"},
			&Options{MaxIncludeDepth: 2}, "2.conf:1:9: includes nested deeper than 2"},
		{"too many files", map[string]string{"k.conf": "include d/*\n", "d/1": "", "d/2": "", "d/3": ""},
			&Options{MaxFiles: 3}, "k.conf:1:9: too many configuration files (limit 3)"},
		{"include outside the root", map[string]string{"k.conf": "include ../../etc/passwd\n"},
			nil, `k.conf:1:9: include: "../../etc/passwd" is outside the configuration root`},
		{"strict include without a match", map[string]string{"k.conf": "includea missing.conf\n"},
			nil, "k.conf:1:10: includea missing.conf matches no file"},
		{"include of a directory", map[string]string{"k.conf": "include d\n", "d/x": ""},
			nil, "k.conf:1:9: include d: d is a directory, not a regular file; include only regular files"},
		{"blocks nested too deep", map[string]string{"k.conf": strings.Repeat("a {\n", 20) + strings.Repeat("}\n", 20)},
			nil, "k.conf:17:3: blocks nested deeper than 16"},
		{"word too long", map[string]string{"k.conf": "router_id " + strings.Repeat("x", 5000) + "\n"},
			nil, "k.conf:1:11: word longer than 4096 bytes"},
		{"line too long", map[string]string{"k.conf": "\n" + strings.Repeat("x ", 40000) + "\n"},
			nil, "k.conf:2:1: line longer than 65536 bytes"},
		{"multiline parameter", map[string]string{"k.conf": "$X= \\\n a \\\n"},
			nil, "k.conf:1:1: multiline parameter definitions ($X= ... \\) are not supported; expand them before converting"},
		{"sequence block", map[string]string{"k.conf": "~SEQ(A, 1, 3) x $A\n"},
			nil, "k.conf:1:1: ~SEQ sequence blocks are not supported; expand them before converting"},
		{"recursive parameter", map[string]string{"k.conf": "$A=${A}${A}\nx $A\n"},
			nil, "k.conf:2:1: parameter substitution nests deeper than 32 (a parameter refers to itself?)"},
		{"parameter bomb", map[string]string{"k.conf": "$A=" + strings.Repeat("y", 100) + "\n" + strings.Repeat("x"+strings.Repeat(" $A", 20)+"\n", 10)},
			&Options{MaxTotalSize: 1000}, "k.conf:3:1: parameter substitution expands the configuration beyond 4000 bytes"},
		{"include after substitution", map[string]string{"k.conf": "$F=x.conf\ninclude $F\n", "x.conf": ""},
			nil, "k.conf:2:1: include after conditional configuration or parameter substitution is not honoured by keepalived; write it on a line of its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(mapFS(tt.files), "k.conf", tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			requirePositions(t, err)
			got := err.Error()
			if i := strings.IndexByte(got, '\n'); i >= 0 {
				got = got[:i] // the first error is the one the case is about
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// requirePositions fails unless every error in err is an *Error with a line and column.
func requirePositions(t *testing.T, err error) {
	t.Helper()
	var list ErrorList
	var one *Error
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || e.Pos.File == "" {
				t.Errorf("error without a position: %v", e)
			}
		}
	case errors.As(err, &one):
		if one.Pos.Line < 1 || one.Pos.Col < 1 || one.Pos.File == "" {
			t.Errorf("error without a position: %v", one)
		}
	default:
		t.Errorf("error %T is not an *Error or ErrorList: %v", err, err)
	}
}

func TestDecodeCollectsErrors(t *testing.T) {
	_, err := Parse(mapFS(map[string]string{"k.conf": `vrrp_instance V {
  virtual_router_id 0
  priority 300
  advert_int x
  virtual_ipaddress {
    192.0.2.1/24
  }
}
`}), "k.conf", nil)
	want := `k.conf:2:21: virtual_router_id: 0 is outside 1..255
k.conf:3:12: priority: 300 is outside 1..255
k.conf:4:14: advert_int: "x" is not a number of seconds
k.conf:1:1: vrrp_instance V has no virtual_router_id`
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeWarnings(t *testing.T) {
	cfg, err := Parse(mapFS(map[string]string{"k.conf": `vrrp_instance V {
  virtual_router_id 1
  priority 100
  priority 110
  frobnicate yes
  nopreempt now
  virtual_ipaddress {
    192.0.2.1/24
  }
}
`}), "k.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		"k.conf:4: priority is set again in vrrp_instance V (first at k.conf:3); the last one counts, as in keepalived",
		`k.conf:5: unknown keyword "frobnicate" in vrrp_instance V ignored`,
		`k.conf:6: nopreempt takes no value; "now" ignored`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if cfg.Instances[0].Priority != 110 {
		t.Errorf("priority = %d, want the last one, 110", cfg.Instances[0].Priority)
	}
}

func TestDecodeTyped(t *testing.T) {
	cfg, err := Parse(mapFS(map[string]string{"k.conf": `global_defs {
  router_id lb1
  vrrp_version 3
  vrrp_strict
  script_user keepalived_script nogroup
  notification_email { root }
}
vrrp_script s {
  script "/usr/bin/pgrep -x haproxy"
  interval 0.5
  timeout 2
  weight -20 reverse
  fall 2
  rise 3
  init_fail
}
vrrp_track_process p {
  process haproxy -f /etc/haproxy.cfg
  weight 10
  quorum 2
  delay 0.5
}
vrrp_instance V {
  state backup
  interface eth0
  virtual_router_id 51
  priority 110
  advert_int 0.25
  nopreempt
  preempt_delay 1.5
  no_accept
  unicast_src_ip 192.0.2.11
  unicast_peer {
    192.0.2.12 min_ttl 250
  }
  authentication {
    auth_type pass
    auth_pass secret
  }
  virtual_ipaddress {
    192.0.2.100-102/24 dev eth1 label eth1:vip scope link brd 192.0.2.255 -nodad
  }
  track_script {
    s weight 5
  }
  track_interface {
    eth1
  }
  notify_master "/x.sh master" root wheel
  use_vmac vrrp.51 02:00:00:00:00:01
  garp_master_delay 0
  garp_master_refresh 60
}
`}), "k.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Instances[0]
	type summary struct {
		Global       string
		Script       string
		Process      string
		Instance     string
		VIPs         []string
		Peers        []string
		TrackScripts []string
		Notify       []string
		VMAC         string
		Garp         string
	}
	var vips []string
	for _, v := range in.VIPs {
		vips = append(vips, fmt.Sprintf("%s dev=%s label=%s scope=%s brd=%s flags=%v", v.Address, v.Dev, v.Label, v.Scope, v.Brd, v.Flags))
	}
	s, p := cfg.Scripts[0], cfg.TrackProcesses[0]
	got := summary{
		Global: fmt.Sprintf("%s v%d strict=%v user=%s/%s ignored=%s", cfg.Global.RouterID, cfg.Global.VRRPVersion,
			cfg.Global.VRRPStrict, cfg.Global.ScriptUser, cfg.Global.ScriptGroup, cfg.Global.Ignored[0].Keyword),
		Script:  fmt.Sprintf("%q %v %v w=%d rev=%v fall=%d rise=%d init=%v", s.Command, s.Interval, s.Timeout, s.Weight, s.Reverse, s.Fall, s.Rise, s.InitFail),
		Process: fmt.Sprintf("%s %v w=%d q=%d fork=%v term=%v", p.Process, p.Params, p.Weight, p.Quorum, p.ForkDelay, p.TerminateDelay),
		Instance: fmt.Sprintf("%s %s vrid=%d prio=%d adv=%v nopreempt=%v delay=%v accept=%v src=%s auth=%s/%s", in.State, in.Interface, in.VRID,
			in.Priority, in.AdvertInt, in.NoPreempt, in.PreemptDelay, *in.Accept, in.UnicastSrcIP, in.Auth.Type, in.Auth.Pass),
		VIPs:         vips,
		Peers:        []string{fmt.Sprintf("%s %d %d", in.UnicastPeers[0].Addr, in.UnicastPeers[0].MinTTL, in.UnicastPeers[0].MaxTTL)},
		TrackScripts: []string{fmt.Sprintf("%s %d %v", in.TrackScripts[0].Name, in.TrackScripts[0].Weight, in.TrackScripts[0].WeightSet)},
		Notify:       []string{in.Notify[0].Keyword + " " + in.Notify[0].Command + " " + strings.Join(in.Notify[0].Args, ",")},
		VMAC:         fmt.Sprintf("%s %s line %d", in.VMAC.Name, in.VMAC.MAC, in.VMAC.Pos.Line),
		Garp:         fmt.Sprintf("%+v %+v %v %v", in.Garp.Delay, in.Garp.Refresh, in.Garp.Repeat.Set, in.Garp.RefreshRepeat.Set),
	}
	want := summary{
		Global:   "lb1 v3 strict=true user=keepalived_script/nogroup ignored=notification_email",
		Script:   `"/usr/bin/pgrep -x haproxy" 500ms 2s w=-20 rev=true fall=2 rise=3 init=true`,
		Process:  "haproxy [-f /etc/haproxy.cfg] w=10 q=2 fork=500ms term=500ms",
		Instance: "BACKUP eth0 vrid=51 prio=110 adv=250ms nopreempt=true delay=1.5s accept=false src=192.0.2.11 auth=PASS/secret",
		VIPs: []string{
			"192.0.2.100/24 dev=eth1 label=eth1:vip scope=link brd=192.0.2.255 flags=[-nodad]",
			"192.0.2.101/24 dev=eth1 label=eth1:vip scope=link brd=192.0.2.255 flags=[-nodad]",
			"192.0.2.102/24 dev=eth1 label=eth1:vip scope=link brd=192.0.2.255 flags=[-nodad]",
		},
		Peers:        []string{"192.0.2.12 250 -1"},
		TrackScripts: []string{"s 5 true"},
		Notify:       []string{"notify_master /x.sh master root,wheel"},
		VMAC:         "vrrp.51 02:00:00:00:00:01 line 50",
		Garp:         "{Set:true Value:0 Keyword:garp_master_delay Pos:k.conf:51:3} {Set:true Value:60 Keyword:garp_master_refresh Pos:k.conf:52:3} false false",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseSeconds(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = invalid
	}{
		{"1", "1s"}, {"0.1", "100ms"}, {"2.71828", "2.71828s"}, {".5", "500ms"}, {"1.", "1s"},
		{"0.0000015", "2µs"}, {"40.95", "40.95s"}, {"", ""}, {".", ""}, {"-1", ""}, {"1e3", ""},
		{"0x10", ""}, {"1.2.3", ""}, {"1234567890", ""},
	}
	for _, tt := range tests {
		d, ok := parseSeconds(tt.in)
		got := ""
		if ok {
			got = d.String()
		}
		if got != tt.want {
			t.Errorf("parseSeconds(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	cfg, err := LoadFile("testdata/corpus/includes/keepalived.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"testdata/corpus/includes/keepalived.conf",
		"testdata/corpus/includes/conf.d/scripts/api.conf",
		"testdata/corpus/includes/conf.d/scripts/haproxy.conf",
		"testdata/corpus/includes/conf.d/vi_api.conf",
		"testdata/corpus/includes/conf.d/vi_web.conf",
	}
	if diff := cmp.Diff(want, cfg.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if _, err := LoadFile("testdata/does-not-exist.conf", nil); err == nil || !strings.HasPrefix(err.Error(), "testdata/does-not-exist.conf: cannot open") {
		t.Errorf("missing file: error = %v", err)
	}
}
