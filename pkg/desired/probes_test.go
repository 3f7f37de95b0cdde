package desired

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	probepkg "github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

func TestProbes(t *testing.T) {
	vip := &v1alpha1.VirtualIP{}
	vip.Name = "web"
	vip.Spec.Probes = []v1alpha1.ProbeSpec{
		{Name: "haproxy", Process: &v1alpha1.ProcessProbe{Name: "haproxy"},
			Interval: &v1alpha1.Duration{Duration: 2 * time.Second}, Fall: ptr.To[int32](2), Rise: ptr.To[int32](3), Weight: -20},
		{Name: "health", HTTP: &v1alpha1.HTTPProbe{URL: "http://127.0.0.1:8404/healthz", ExpectedStatus: ptr.To[int32](200)},
			Timeout: &v1alpha1.Duration{Duration: 300 * time.Millisecond}},
		{Name: "port", TCP: &v1alpha1.TCPProbe{Address: "127.0.0.1:80"}, Weight: 20},
		{Name: "uplink", Interface: &v1alpha1.InterfaceProbe{Name: "eth1"}},
		{Name: "flag", File: &v1alpha1.FileProbe{Path: "/run/lb-ready"}},
		{Name: "script", Exec: &v1alpha1.ExecProbe{Command: []string{"/usr/bin/true"}}},
		{Name: "apiserver", HTTP: &v1alpha1.HTTPProbe{URL: "https://127.0.0.1:6443/readyz", TLS: &v1alpha1.HTTPProbeTLS{
			CAFile: "/etc/kubernetes/pki/ca.crt", CertFile: "/etc/kubernetes/pki/c.crt", KeyFile: "/etc/kubernetes/pki/c.key",
			BearerTokenFile: "/run/token", ServerName: "kubernetes.default.svc"}}},
		{Name: "insecure", HTTP: &v1alpha1.HTTPProbe{URL: "https://[::1]:8443/", TLS: &v1alpha1.HTTPProbeTLS{InsecureSkipVerify: true}}},
	}
	got, err := Probes(vip)
	if err != nil {
		t.Fatal(err)
	}
	want := []probepkg.Spec{
		{Name: "haproxy", Kind: probepkg.KindProcess, Process: "haproxy", Interval: 2 * time.Second, Fall: 2, Rise: 3, Weight: -20},
		{Name: "health", Kind: probepkg.KindHTTP, URL: "http://127.0.0.1:8404/healthz", ExpectedStatus: 200, Timeout: 300 * time.Millisecond},
		{Name: "port", Kind: probepkg.KindTCP, Address: "127.0.0.1:80", Weight: 20},
		{Name: "uplink", Kind: probepkg.KindInterface, Interface: "eth1"},
		{Name: "flag", Kind: probepkg.KindFile, Path: "/run/lb-ready"},
		{Name: "script", Kind: probepkg.KindExec, Command: []string{"/usr/bin/true"}},
		{Name: "apiserver", Kind: probepkg.KindHTTP, URL: "https://127.0.0.1:6443/readyz", HTTPS: probepkg.HTTPSOptions{
			CAFile: "/etc/kubernetes/pki/ca.crt", CertFile: "/etc/kubernetes/pki/c.crt", KeyFile: "/etc/kubernetes/pki/c.key",
			BearerTokenFile: "/run/token", ServerName: "kubernetes.default.svc"}},
		{Name: "insecure", Kind: probepkg.KindHTTP, URL: "https://[::1]:8443/", HTTPS: probepkg.HTTPSOptions{InsecureSkipVerify: true}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Probes (-want +got):\n%s", diff)
	}

	// A probe the CRD would reject (written before a rule existed) is refused here too.
	vip.Spec.Probes = []v1alpha1.ProbeSpec{{Name: "none"}}
	if _, err := Probes(vip); err == nil {
		t.Error("a probe with no handler was accepted")
	}
}
