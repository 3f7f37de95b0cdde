package main

import (
	"io"
	"strings"
	"testing"
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
	} {
		_, err := parseAgentFlags(append([]string{"--node-name", "lb1"}, tc.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}
