package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const corpus = "../../pkg/keepalived/testdata/corpus/"

// convert's output is accepted by validate, and what it cannot express is on stderr.
func TestConvertPairThenValidate(t *testing.T) {
	var out, errb bytes.Buffer
	code := cli(t.Context(), []string{"convert",
		"--node", "lb1=" + corpus + "haproxy-pair/lb1.conf",
		"--node", "lb2=" + corpus + "haproxy-pair/lb2.conf"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("convert exit %d, stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{"kind: VirtualIP", "vrid: 51", "name: lb1", "priority: 110", "weight: -20", "kind: Secret"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "warning:") || !strings.Contains(errb.String(), "lb1.conf:") {
		t.Errorf("warnings with file:line expected on stderr, got:\n%s", errb.String())
	}
	file := filepath.Join(t.TempDir(), "vip.yaml")
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var vout, verr bytes.Buffer
	if code := cli(t.Context(), []string{"validate", "-f", file}, &vout, &verr); code != exitOK {
		t.Fatalf("validate of converted output: exit %d\n%s", code, verr.String())
	}
}

func TestConvertErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("vrrp_instance VI_1 {\n  virtual_router_id 300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no input", []string{"convert"}, exitUsage, "give one keepalived.conf"},
		{"file and nodes", []string{"convert", bad, "--node", "a=" + bad}, exitUsage, "give one keepalived.conf"},
		{"bad node flag", []string{"convert", "--node", "lb1"}, exitUsage, "NAME=FILE"},
		{"malformed", []string{"convert", bad}, exitError, "bad.conf:"},
		{"missing file", []string{"convert", filepath.Join(t.TempDir(), "nope.conf")}, exitError, "nope.conf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := cli(t.Context(), tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errb.String())
			}
			if out.Len() != 0 {
				t.Errorf("nothing may be printed on stdout on error, got:\n%s", out.String())
			}
		})
	}
}
