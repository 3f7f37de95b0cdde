package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
)

// notifyRefusal is what run and validate say of testdata/notify.yaml with exec disabled.
const notifyRefusal = `testdata/notify.yaml: VirtualIP "web": spec.notify (/usr/local/bin/on-master, /usr/local/bin/on-backup, ` +
	`/usr/local/bin/on-change) runs commands, and exec is disabled: add --enable-exec-probes (chart value probes.exec.enabled) ` +
	`to run them, or remove spec.notify`

// run refuses a VirtualIP with spec.notify that selects this node when exec is disabled, before
// it touches the host, naming the programs and never their arguments.
func TestRunRefusesNotifyWithoutExec(t *testing.T) {
	code, _, stderr := runCLI(t, "run", "-f", "testdata/haproxy.yaml", "-f", "testdata/notify.yaml", "--node", "lb1")
	if code != exitError {
		t.Errorf("exit code = %d, want %d", code, exitError)
	}
	for _, want := range []string{notifyRefusal + "\n", "refusing to start: spec.notify runs commands only with --enable-exec-probes"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr = %q, want it to contain %q", stderr, want)
		}
	}
	if strings.Contains(stderr, "s3cr3t") {
		t.Error("a command's argument was printed")
	}
}

// Only the VirtualIPs that select the node count: another node's notify does not stop this one.
func TestNotifyDisabledSelects(t *testing.T) {
	set, err := manifest.Load("testdata/haproxy.yaml", "testdata/notify.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{notifyRefusal}, notifyDisabled(set, "lb2", nil)); diff != "" {
		t.Errorf("lb2 (-want +got):\n%s", diff)
	}
	if got := notifyDisabled(set, "lb3", nil); len(got) != 0 {
		t.Errorf("lb3, which the VirtualIP does not select: %q", got)
	}
}

// validate says what run would: an error with --enable-exec-probes=false, nothing with it
// enabled, and a warning when it does not know.
func TestValidateNotify(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "exec disabled", args: []string{"--enable-exec-probes=false"}, wantCode: exitError, wantStdout: "ok haproxy\n",
			wantStderr: notifyRefusal + "\n"},
		{name: "exec enabled", args: []string{"--enable-exec-probes"}, wantStdout: "ok haproxy\nok web\n"},
		{name: "not known", wantStdout: "ok haproxy\nok web\n",
			wantStderr: `testdata/notify.yaml: VirtualIP "web": warning: spec.notify (/usr/local/bin/on-master, /usr/local/bin/on-backup, ` +
				`/usr/local/bin/on-change) runs only where exec is enabled (kube-vrrp run --enable-exec-probes, chart value ` +
				`probes.exec.enabled): elsewhere run refuses to start, and the agent runs VRRP without the commands (a NotifyDisabled Event)` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "-f", "testdata/haproxy.yaml", "-f", "testdata/notify.yaml"}, tt.args...)
			code, stdout, stderr := runCLI(t, args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if strings.Contains(stdout+stderr, "s3cr3t") {
				t.Error("a command's argument was printed")
			}
		})
	}
}
