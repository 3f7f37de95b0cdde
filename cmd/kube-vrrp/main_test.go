package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "no command", wantCode: exitUsage, wantStderr: "Usage: kube-vrrp COMMAND"},
		{name: "help", args: []string{"help"}, wantCode: exitOK, wantStdout: "  validate   check VirtualIP"},
		{name: "--help", args: []string{"--help"}, wantCode: exitOK, wantStdout: "  run        run VRRP"},
		{name: "unknown command", args: []string{"agnet"}, wantCode: exitUsage, wantStderr: `kube-vrrp: unknown command "agnet"`},
		{name: "version", args: []string{"version"}, wantCode: exitOK,
			wantStdout: "kube-vrrp dev (commit unknown, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"},
		{name: "version with argument", args: []string{"version", "x"}, wantCode: exitUsage, wantStderr: `unexpected argument "x"`},
		{name: "validate -h", args: []string{"validate", "-h"}, wantCode: exitOK, wantStderr: "Usage: kube-vrrp validate -f FILE..."},
		{name: "validate without files", args: []string{"validate"}, wantCode: exitUsage, wantStderr: "no manifest given: use -f FILE"},
		{name: "validate bad flag", args: []string{"validate", "--frobnicate"}, wantCode: exitUsage, wantStderr: "flag provided but not defined: -frobnicate"},
		{name: "run -h", args: []string{"run", "-h"}, wantCode: exitOK, wantStderr: "Usage: kube-vrrp run -f FILE... --node NAME"},
		{name: "run without node", args: []string{"run", "-f", "testdata/haproxy.yaml"}, wantCode: exitUsage, wantStderr: "kube-vrrp run: --node is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestVersionFromLdflags(t *testing.T) {
	oldV, oldC := version, commit
	t.Cleanup(func() { version, commit = oldV, oldC })
	version, commit = "v1.2.3", "abc1234"
	_, stdout, _ := runCLI(t, "version")
	if !strings.HasPrefix(stdout, "kube-vrrp v1.2.3 (commit abc1234, go") {
		t.Errorf("version output = %q", stdout)
	}
}

// TestValidateCommand runs `kube-vrrp validate` end to end on the manifests in testdata.
func TestValidateCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "good manifests, files after -f as a shell glob gives them",
			args:       []string{"-f", "testdata/haproxy.yaml", "testdata/keepalived-v2.yaml", "-f", "testdata/ipv6.yaml"},
			wantStdout: "ok haproxy\nok legacy\nok web-v6\n",
		},
		{
			name:     "invalid objects",
			args:     []string{"-f", "testdata/invalid.yaml"},
			wantCode: exitError,
			// The valid object is still reported.
			wantStdout: "ok fine\n",
			wantStderr: `testdata/invalid.yaml: VirtualIP "broken": spec.vrid: Invalid value: 300: set vrid to 1..255, the virtual_router_id shared by every member of the group
testdata/invalid.yaml: VirtualIP "broken": spec.addresses[1]: Duplicate value: "198.18.0.100": the address is already listed at index 0; remove one
testdata/invalid.yaml: VirtualIP "broken": spec.addresses[2]: Invalid value: "2001:db8::1": all addresses of a VirtualIP are one family and the first is IPv4: move IPv6 addresses to another VirtualIP
testdata/invalid.yaml: VirtualIP "broken": spec.advertisementInterval: Invalid value: "100ms": VRRPv2 advertises whole seconds: set 1s..255s, or set version: 3 for sub-second intervals
testdata/invalid.yaml: VirtualIP "broken": spec.priority: Invalid value: 0: set a priority of 1..254 (255 only on the node that owns the addresses)
testdata/invalid.yaml: VirtualIP "broken": spec.nodeSelector: Required value: name the nodes that run this VirtualIP: set spec.nodeSelector (an empty selector {} selects every node that runs the agent) or list the members in spec.nodes
testdata/invalid.yaml: VirtualIP "broken": spec.probes[0].timeout: Invalid value: "2s": set a timeout of at least 1ms, so that a check can complete, and at most the interval (1s), so that checks never overlap
testdata/invalid.yaml: VirtualIP "broken": spec.preempt: Invalid value: false: a weighted probe only changes the priority, and without preemption a lower priority never moves the VIP: set preempt: true, or give a probe weight 0 so that its failure resigns the VIP
testdata/invalid.yaml: VirtualIP "no-secret": spec.authentication.secretRef.name: Secret "missing" not found: add a Secret of that name to the manifests
`,
		},
		{
			name:     "password too long, value not shown",
			args:     []string{"-f", "testdata/long-password.yaml"},
			wantCode: exitError,
			wantStderr: `testdata/long-password.yaml: VirtualIP "long-password": spec.authentication.secretRef: Invalid value: "auth/password": the password in Secret "auth" key "password" has 17 bytes: PASS authentication takes 1..8 bytes
`,
		},
		{
			name:       "unknown field",
			args:       []string{"-f", "testdata/typo.yaml"},
			wantCode:   exitError,
			wantStderr: "testdata/typo.yaml: document 1 (line 1): VirtualIP: unknown field \"spec.unicast.peer\"\n",
		},
		{
			name:       "the same VirtualIP twice",
			args:       []string{"-f", "testdata/haproxy.yaml", "-f", "testdata/haproxy.yaml"},
			wantCode:   exitError,
			wantStderr: "testdata/haproxy.yaml: document 1 (line 3): VirtualIP \"haproxy\" is already defined at testdata/haproxy.yaml: document 1 (line 3): names must be unique\n",
		},
		{
			name:       "missing file",
			args:       []string{"-f", "testdata/nope.yaml"},
			wantCode:   exitError,
			wantStderr: "read manifest: open testdata/nope.yaml: no such file or directory\n",
		},
		{
			name:       "no VirtualIP",
			args:       []string{"-f", "testdata/secret-only.yaml"},
			wantCode:   exitError,
			wantStderr: "testdata/secret-only.yaml: no VirtualIP found\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"validate"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout); diff != "" {
				t.Errorf("stdout mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr); diff != "" {
				t.Errorf("stderr mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(stderr, "too-long-password") || strings.Contains(stdout, "k33p4l1v") {
				t.Error("a password appears in the output")
			}
		})
	}
}

// run refuses to start, before it touches the host, when any manifest is invalid.
func TestRunRefusesInvalidManifests(t *testing.T) {
	code, _, stderr := runCLI(t, "run", "-f", "testdata/haproxy.yaml", "-f", "testdata/invalid.yaml", "--node", "lb1")
	if code != exitError {
		t.Errorf("exit code = %d, want %d", code, exitError)
	}
	for _, want := range []string{
		`testdata/invalid.yaml: VirtualIP "broken": spec.vrid: Invalid value: 300`,
		`refusing to start: the manifests have errors`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr = %q, want it to contain %q", stderr, want)
		}
	}
}

func TestParseRunFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    runOptions
		wantErr string
	}{
		{
			name: "minimal",
			args: []string{"-f", "a.yaml", "--node", "lb1"},
			want: runOptions{files: []string{"a.yaml"}, node: "lb1", labels: map[string]string{}, level: slog.LevelInfo, logFormat: "text",
				stateDir: "/run/kube-vrrp", addressMark: true, handoffTimeout: 10 * time.Second},
		},
		{
			name: "everything, files interspersed",
			args: []string{"-f", "a.yaml", "b.yaml", "--node=lb2", "c.yaml", "--node-labels", "zone=a,node-role.kubernetes.io/lb=",
				"--log-level", "debug", "-log-format", "json", "-f", "d.yaml", "--state-dir", "/run/lb2", "--address-mark=false",
				"--handoff-timeout", "20s", "--", "-e.yaml"},
			want: runOptions{files: []string{"a.yaml", "b.yaml", "c.yaml", "d.yaml", "-e.yaml"}, node: "lb2",
				labels: map[string]string{"zone": "a", "node-role.kubernetes.io/lb": ""}, level: slog.LevelDebug, logFormat: "json",
				stateDir: "/run/lb2", handoffTimeout: 20 * time.Second},
		},
		{name: "stdin", args: []string{"-f", "-", "--node", "n"},
			want: runOptions{files: []string{"-"}, node: "n", labels: map[string]string{}, level: slog.LevelInfo, logFormat: "text",
				stateDir: "/run/kube-vrrp", addressMark: true, handoffTimeout: 10 * time.Second}},
		{name: "no files", args: []string{"--node", "lb1"}, wantErr: "no manifest given: use -f FILE"},
		{name: "no node", args: []string{"-f", "a.yaml"}, wantErr: "--node is required"},
		{name: "bad labels", args: []string{"-f", "a.yaml", "--node", "n", "--node-labels", "zone"}, wantErr: `--node-labels: "zone" is not key=value`},
		{name: "bad level", args: []string{"-f", "a.yaml", "--node", "n", "--log-level", "loud"}, wantErr: `--log-level "loud": use debug, info, warn or error`},
		{name: "bad format", args: []string{"-f", "a.yaml", "--node", "n", "--log-format", "xml"}, wantErr: `--log-format "xml": use text or json`},
		{name: "unknown flag", args: []string{"-f", "a.yaml", "--nodes", "n"}, wantErr: "flag provided but not defined: -nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRunFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseRunFlags() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRunFlags() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(runOptions{})); diff != "" {
				t.Errorf("parseRunFlags() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := parseRunFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseRunFlags(-h) error = %v, want flag.ErrHelp", err)
	}
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{in: "", want: map[string]string{}},
		{in: "a=b", want: map[string]string{"a": "b"}},
		{in: " a=b , example.com/c= ", want: map[string]string{"a": "b", "example.com/c": ""}},
		{in: "a", wantErr: `"a" is not key=value`},
		{in: "a=b,a=c", wantErr: `label "a" is given twice`},
		{in: "bad key=x", wantErr: `label key "bad key"`},
		{in: "a=not valid", wantErr: `label "a" value "not valid"`},
		{in: "a=b,", wantErr: `"" is not key=value`},
	}
	for _, tt := range tests {
		got, err := parseLabels(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseLabels(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseLabels(%q) error = %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseLabels(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{args: nil, want: nil},
		{args: []string{"a", "-v", "b"}, want: []string{"a", "b"}},
		{args: []string{"-f", "x", "a", "-f", "y", "b"}, want: []string{"f:x", "a", "f:y", "b"}},
		{args: []string{"-", "-v"}, want: []string{"-"}},
		{args: []string{"a", "--", "-v", "b"}, want: []string{"a", "-v", "b"}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.Bool("v", false, "")
		var got []string
		fs.Func("f", "", func(s string) error { got = append(got, "f:"+s); return nil })
		if err := parseInterspersed(fs, tt.args, func(s string) error { got = append(got, s); return nil }); err != nil {
			t.Fatalf("parseInterspersed(%q) error = %v", tt.args, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseInterspersed(%q) mismatch (-want +got):\n%s", tt.args, diff)
		}
	}
}

var netipCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// lb1 as hostnet reports it: a loopback and eth0 on the lab LAN.
func lb1(labels map[string]string) desired.Node {
	return nodeFromHost("lb1", labels, []hostnet.Interface{
		{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{
			netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("2001:db8::11/64"), netip.MustParsePrefix("fe80::11/64"),
		}},
	})
}

func TestNodeFromHost(t *testing.T) {
	got := lb1(map[string]string{"a": "b"})
	want := desired.Node{Name: "lb1", Labels: map[string]string{"a": "b"}, Interfaces: []desired.Interface{
		{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{
			netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("2001:db8::11/64"), netip.MustParsePrefix("fe80::11/64"),
		}},
	}}
	if diff := cmp.Diff(want, got, netipCmp); diff != "" {
		t.Errorf("nodeFromHost() mismatch (-want +got):\n%s", diff)
	}
}

func TestBuildConfigs(t *testing.T) {
	set, err := manifest.Load("testdata/haproxy.yaml", "testdata/keepalived-v2.yaml", "testdata/ipv6.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, skipped, err := buildConfigs(set, lb1(map[string]string{"node-role.kubernetes.io/lb": ""}))
	if err != nil {
		t.Fatalf("buildConfigs() error = %v", err)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped = %q, want none", skipped)
	}
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	want := []vrrp.Config{
		{Name: "haproxy", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: 110,
			Addresses: []netip.Prefix{pfx("198.18.0.100/24")}, Primary: addr("198.18.0.11"), Preempt: true, Accept: true},
		{Name: "legacy", Interface: "eth0", VRID: 52, Version: 2, Interval: time.Second, Priority: 100,
			Addresses: []netip.Prefix{pfx("198.18.0.101/24")}, Primary: addr("198.18.0.11"), Accept: true,
			Peers: []netip.Addr{addr("198.18.0.12")}, Members: []vrrp.Member{{Addr: addr("198.18.0.12")}}, MembersComplete: true,
			Password: []byte("k33p4l1v")},
		{Name: "web-v6", Interface: "eth0", VRID: 60, Version: 3, Interval: 50 * time.Millisecond, Priority: 100,
			Addresses: []netip.Prefix{pfx("2001:db8::100/64")}, Primary: addr("fe80::11"), Preempt: true, Accept: true},
	}
	if diff := cmp.Diff(want, cfgs, netipCmp); diff != "" {
		t.Errorf("buildConfigs() mismatch (-want +got):\n%s", diff)
	}

	// Without the label, web-v6 does not select the node.
	cfgs, skipped, err = buildConfigs(set, lb1(nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"web-v6"}, skipped); diff != "" || len(cfgs) != 2 {
		t.Errorf("skipped mismatch (-want +got):\n%s\n%d configs", diff, len(cfgs))
	}

	// haproxy and legacy have no nodeSelector: their members are the nodes of spec.nodes
	// (lb1, lb2), not a node named otherwise, whatever its labels.
	lb3 := lb1(map[string]string{"node-role.kubernetes.io/lb": ""})
	lb3.Name = "lb3"
	cfgs, skipped, err = buildConfigs(set, lb3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"haproxy", "legacy"}, skipped); diff != "" || len(cfgs) != 1 || cfgs[0].Name != "web-v6" {
		t.Errorf("skipped mismatch (-want +got):\n%s\nconfigs %+v", diff, cfgs)
	}
}

func TestBuildConfigsErrors(t *testing.T) {
	const twoOnOneVRID = `
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: a}
spec: {vrid: 7, addresses: [198.18.0.100/24], nodeSelector: {}}
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: b}
spec: {vrid: 7, addresses: [198.18.0.101/24], nodes: [{name: lb1}]}
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: c}
spec: {vrid: 7, addresses: ["2001:db8::7/64"], nodeSelector: {}}
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: elsewhere}
spec: {vrid: 8, addresses: [203.0.113.1/24], nodeSelector: {}}
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: lonely}
spec: {vrid: 9, addresses: [198.18.0.102/24], unicast: {}, nodeSelector: {}}
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: nobody}
spec: {vrid: 10, addresses: [198.18.0.103/24]}
`
	set, err := manifest.Parse("m.yaml", []byte(twoOnOneVRID))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = buildConfigs(set, lb1(nil))
	if err == nil {
		t.Fatal("buildConfigs() succeeded, want errors")
	}
	want := []string{
		`VirtualIPs "a" and "b" both use VRID 7 on eth0: give one of them another spec.vrid`,
		`VirtualIP "elsewhere" on node "lb1": no interface has an address in the subnet of 203.0.113.1/24: set spec.interface (or spec.nodes[].interface for this node)`,
		`VirtualIP "lonely" on node "lb1": unicast is set but there is no peer to advertise to: list the other routers in spec.unicast.peers or select other nodes`,
		`VirtualIP "nobody": ` + desired.MembersRequired,
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("buildConfigs() errors mismatch (-want +got):\n%s", diff)
	}
}

// --events writes the agent's stream as JSON lines of vrrp.Event: numbered, typed, and
// decodable with the same type; what is still waiting when the agent stops is written too.
func TestWriteEvents(t *testing.T) {
	a := agent.New(nil, nil, agent.Options{})
	var buf bytes.Buffer
	stop := writeEvents(a.Subscribe("events", 16), nopCloser{&buf}, slog.New(slog.DiscardHandler))
	cfg := func(vrid uint8, vip string) vrrp.Config {
		return vrrp.Config{Interface: "eth0", VRID: vrid, Version: 3, Interval: 100 * time.Millisecond, Priority: 100,
			Addresses: []netip.Prefix{netip.MustParsePrefix(vip)}, Primary: netip.MustParseAddr("198.18.0.11"), Preempt: true, Accept: true}
	}
	if err := a.Apply("a", cfg(51, "198.18.0.100/24")); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply("b", cfg(52, "198.18.0.101/24")); err != nil {
		t.Fatal(err)
	}
	a.Remove("a")
	stop()
	var got []string
	dec := json.NewDecoder(&buf)
	for {
		var e vrrp.Event
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding %q: %v", buf.String(), err)
		}
		got = append(got, fmt.Sprintf("%d %s %s %s", e.Seq, e.Kind, e.Instance, e.Reason))
	}
	want := []string{"1 Applied a Applied", "2 Applied b Applied", "3 Removed a "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events written (-want +got):\n%s", diff)
	}
}

func TestParseOwner(t *testing.T) {
	for _, tt := range []struct {
		in       string
		uid, gid int
		ok       bool
	}{
		{"65532:65532", 65532, 65532, true},
		{"0:0", 0, 0, true},
		{"65532", 0, 0, false},
		{"nonroot:nonroot", 0, 0, false},
		{"-1:5", 0, 0, false},
		{"1:99999999999", 0, 0, false},
	} {
		uid, gid, err := parseOwner(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (uid != tt.uid || gid != tt.gid)) {
			t.Errorf("parseOwner(%q) = %d, %d, %v", tt.in, uid, gid, err)
		}
	}
}
