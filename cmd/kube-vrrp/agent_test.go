package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestParseAgentFlagsEndpoints: /metrics is HTTPS with authentication unless turned off, the
// health endpoint is plain HTTP on the loopback, and bad addresses are refused with a message
// that names the flag and what to give.
func TestParseAgentFlagsEndpoints(t *testing.T) {
	o, err := parseAgentFlags([]string{"--node-name", "lb1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.metricsAddr != ":9402" || !o.metricsSecure || o.metricsCertDir != "" || o.healthAddr != "127.0.0.1:9403" {
		t.Errorf("defaults: metrics %q secure %v certs %q, health %q", o.metricsAddr, o.metricsSecure, o.metricsCertDir, o.healthAddr)
	}
	if o.handoffTimeout != 10*time.Second {
		t.Errorf("default --handoff-timeout %s, want 10s", o.handoffTimeout)
	}
	for arg, want := range map[string]time.Duration{"1s": time.Second, "160s": 160 * time.Second} {
		if o, err := parseAgentFlags([]string{"--node-name", "lb1", "--handoff-timeout=" + arg}, io.Discard); err != nil || o.handoffTimeout != want {
			t.Errorf("--handoff-timeout=%s: %s, %v", arg, o.handoffTimeout, err)
		}
	}
	o, err = parseAgentFlags([]string{"--node-name", "lb1", "--metrics-bind-address", "[2001:db8::1]:9500",
		"--metrics-cert-dir", "/etc/certs", "--health-probe-bind-address", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.metricsAddr != "[2001:db8::1]:9500" || o.metricsCertDir != "/etc/certs" || o.healthAddr != "0" {
		t.Errorf("got metrics %q certs %q health %q", o.metricsAddr, o.metricsCertDir, o.healthAddr)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--metrics-bind-address", "9402"}, `--metrics-bind-address "9402": give host:port`},
		{[]string{"--health-probe-bind-address", "localhost"}, `--health-probe-bind-address "localhost": give host:port`},
		{[]string{"--metrics-bind-address", "127.0.0.1:9000", "--health-probe-bind-address", "127.0.0.1:9000"}, "give them different ports"},
		{[]string{"--metrics-secure=false", "--metrics-cert-dir", "/x"}, "--metrics-cert-dir is for HTTPS"},
		{[]string{"--listen", ":9402"}, "flag provided but not defined: -listen"},
		{[]string{"--handoff-timeout", "999ms"}, "--handoff-timeout 999ms: give 1s to 160s"},
		{[]string{"--handoff-timeout", "161s"}, "--handoff-timeout 2m41s: give 1s to 160s"},
		{[]string{"--handoff-timeout", "8"}, "invalid value"},
	} {
		_, err := parseAgentFlags(append([]string{"--node-name", "lb1"}, tc.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}
