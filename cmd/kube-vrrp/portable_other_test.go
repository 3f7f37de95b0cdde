//go:build !linux

package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// Outside Linux, validate (of a manifest with a process probe), convert and version work, and
// run and agent exit 1 saying they need Linux.
func TestPortableCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout for exitOK, else in stderr
	}{
		{"version", []string{"version"}, exitOK, runtime.GOOS + "/" + runtime.GOARCH},
		{"validate", []string{"validate", "-f", "testdata/haproxy.yaml"}, exitOK, "ok haproxy"},
		{"convert", []string{"convert", corpus + "track-process/keepalived.conf"}, exitOK, "kind: VirtualIP"},
		{"run", []string{"run", "-f", "testdata/haproxy.yaml", "--node", "lb1"}, exitError, "running VRRP needs Linux"},
		{"agent", []string{"agent", "--node-name", "lb1"}, exitError, "running VRRP needs Linux"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cli(t.Context(), tt.args, &out, &errb)
			got := out.String()
			if tt.wantCode != exitOK {
				got = errb.String()
			}
			if code != tt.wantCode || !strings.Contains(got, tt.want) {
				t.Errorf("kube-vrrp %s: exit %d, want %d and %q in\nstdout:\n%s\nstderr:\n%s",
					strings.Join(tt.args, " "), code, tt.wantCode, tt.want, out.String(), errb.String())
			}
		})
	}
}
