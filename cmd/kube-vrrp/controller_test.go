package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseControllerFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "lb-system")
	var stderr bytes.Buffer
	o, err := parseControllerFlags(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.namespace != "lb-system" || !o.leaderElect || o.serveClassless || o.healthAddr != ":9404" || o.log.logFormat != "json" {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseControllerFlags([]string{"--serve-classless", "--leader-elect=false", "--namespace", "", "--health-probe-bind-address", "0", "--log-format", "text"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !o.serveClassless || o.leaderElect || o.healthAddr != "0" || o.log.logFormat != "text" {
		t.Errorf("flags %+v", o)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--health-probe-bind-address", "9404"}, "give host:port"},
		{[]string{"--namespace", ""}, "--namespace is required with --leader-elect"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		if _, err := parseControllerFlags(c.args, &stderr); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
}
