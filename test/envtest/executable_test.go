package envtest

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// TestCRDProcessExecutable: spec.probes[].process.executable takes an absolute path as
// /proc/PID/exe shows it; the API server and desired.Validate (kube-vrrp validate, the agent)
// refuse anything else alike, naming the field, and carry a valid one to the probe.
func TestCRDProcessExecutable(t *testing.T) {
	ctx := requireAPIServer(t)
	for i, exe := range []string{"/usr/sbin/haproxy", "/opt/haproxy 2.9/bin/haproxy"} {
		vip := validVIP(fmt.Sprintf("exe-ok-%d", i))
		vip.Spec.Probes[0].Process.Executable = exe
		if errs := desired.Validate(vip); len(errs) > 0 {
			t.Errorf("%q: desired.Validate: %v", exe, errs.ToAggregate())
		}
		if err := k8s.Create(ctx, vip, client.DryRunAll); err != nil {
			t.Errorf("%q: the API server refused it: %v", exe, err)
		}
		specs, err := desired.Probes(vip)
		if err != nil || len(specs) != 1 || specs[0].Executable != exe || specs[0].Process != "haproxy" {
			t.Errorf("%q: probes %+v, %v", exe, specs, err)
		}
	}
	for i, exe := range []string{"haproxy", "usr/sbin/haproxy", "/", "/usr/sbin/", "/usr//sbin/haproxy", "/usr/./sbin/haproxy",
		"/usr/sbin/../sbin/haproxy", "/usr/sbin/.", "/usr/sbin/..", "/" + strings.Repeat("a", 4095)} {
		t.Run(fmt.Sprintf("%.40s", exe), func(t *testing.T) {
			vip := validVIP(fmt.Sprintf("exe-bad-%d", i))
			vip.Spec.Probes[0].Process.Executable = exe
			errs := desired.Validate(vip)
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "spec.probes[0].process.executable") {
				t.Errorf("desired.Validate: %v, want an error naming spec.probes[0].process.executable", errs.ToAggregate())
			}
			err := k8s.Create(ctx, vip, client.DryRunAll)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.probes[0].process.executable") {
				t.Fatalf("the API server: %v, want Invalid naming spec.probes[0].process.executable", err)
			}
			if len(exe) < 4096 && !strings.Contains(err.Error(), "give the executable's absolute path as /proc/PID/exe shows it") {
				t.Errorf("the API server's message does not say what to give: %v", err)
			}
		})
	}
}
