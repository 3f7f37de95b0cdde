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

// convert prints no secret of the input on stderr (warnings, errors), in one-file and pair
// mode; stdout carries the password only in the Secret.
func TestConvertKeepsSecretsOffStderr(t *testing.T) {
	const pass, cred = "Sup3rPw", "Hunt3r2pw"
	conf := func(prio, path string) string {
		return "vrrp_script chk {\n  script \"curl -s http://mon:" + cred + "@127.0.0.1:8404" + path + " | grep -q UP\"\n}\n" +
			"vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority " + prio + "\n" +
			"  authentication {\n    auth_type PASS\n    auth_pass " + pass + " trailing\n  }\n" +
			"  virtual_ipaddress {\n    192.0.2.10/24\n  }\n  track_script {\n    chk\n  }\n" +
			"  notify_master \"/usr/local/bin/alert https://mon:" + cred + "@alerts.example/\"\n}\n"
	}
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lb1 := write("lb1.conf", conf("110", "/stats"))
	lb2 := write("lb2.conf", conf("100", "/stats"))
	lb2diff := write("lb2-diff.conf", conf("100", "/other"))
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"one file", []string{"convert", lb1}, exitOK},
		{"pair", []string{"convert", "--node", "lb1=" + lb1, "--node", "lb2=" + lb2}, exitOK},
		{"pair whose probes differ", []string{"convert", "--node", "lb1=" + lb1, "--node", "lb2=" + lb2diff}, exitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := cli(t.Context(), tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), "<redacted>") {
				t.Errorf("stderr shows no redacted message:\n%s", errb.String())
			}
			for _, s := range []string{pass, cred} {
				if strings.Contains(errb.String(), s) {
					t.Errorf("stderr shows the secret %q:\n%s", s, errb.String())
				}
			}
			if tc.code == exitOK && (!strings.Contains(out.String(), "password: "+pass) || strings.Count(out.String(), pass) != 1) {
				t.Errorf("stdout must hold the password once, in the Secret:\n%s", out.String())
			}
		})
	}
}
