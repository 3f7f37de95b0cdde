package keepalived

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
)

// The kubeadm HA guide's pair converts to one VirtualIP whose check_apiserver script is the
// probe kube-vrrp static-pod generates, with warnings naming file:line and the numbers.
func TestConvertKubeadmGuide(t *testing.T) {
	dir := filepath.Join(corpusDir, "kubeadm-ha")
	per := map[string]*Config{}
	for _, n := range []string{"cp1", "cp2"} {
		cfg, err := LoadFile(filepath.Join(dir, n+".conf"), &Options{ConfigID: n})
		if err != nil {
			t.Fatal(err)
		}
		per[n] = cfg
	}
	res, err := Merge(per)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.VirtualIPs) != 1 || len(res.Secrets) != 1 {
		t.Fatalf("%d VirtualIPs, %d Secrets; want 1 and 1", len(res.VirtualIPs), len(res.Secrets))
	}
	vip := &res.VirtualIPs[0]
	if errs := desired.Validate(vip); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	want := staticpod.APIServerProbe(staticpod.DefaultAPIServer, staticpod.DefaultCAFile, staticpod.DefaultServerName)
	if diff := cmp.Diff([]v1alpha1.ProbeSpec{want}, vip.Spec.Probes); diff != "" {
		t.Errorf("probes (-want +got):\n%s", diff)
	}
	if got := res.Secrets[0].StringData[SecretKey]; got != "42" {
		t.Errorf("password %q, want the guide's 42", got)
	}
	if vip.Spec.Version != 2 || vip.Spec.VRID != 51 {
		t.Errorf("version %d vrid %d, want 2 and 51 (keepalived's PASS pair)", vip.Spec.Version, vip.Spec.VRID)
	}

	conf := filepath.Join(dir, "cp1.conf")
	for _, w := range []string{
		conf + ":7: vrrp_script check_apiserver (/etc/keepalived/check_apiserver.sh): the kubeadm HA guide's API server check is not run; it is mapped to the http probe apiserver of kube-apiserver's /readyz on this node, https://127.0.0.1:6443/readyz, verified with the CA file /etc/kubernetes/pki/ca.crt",
		conf + ":8: vrrp_script check_apiserver: interval 3s, fall 10, rise 2 (a dead API server seen after about 30s) shortened to interval 200ms, timeout 150ms, fall 2, rise 2 (seen within 550ms)",
		conf + ":9: vrrp_script check_apiserver: weight -2 became -100",
	} {
		if !hasPrefix(res.Warnings, w) {
			t.Errorf("no warning starts with\n  %s\nwarnings:\n  %s", w, strings.Join(res.Warnings, "\n  "))
		}
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "exec probe") {
			t.Errorf("the API server check became an exec probe: %s", w)
		}
	}
}

func hasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// The check is recognised by its name or by its script's file name, and nothing else is.
func TestAPIServerCheckRecognised(t *testing.T) {
	conf := func(name, script, weight string) string {
		return "vrrp_script " + name + " {\n  script \"" + script + "\"\n" + weight + "}\n" +
			instance("  priority 150\n  track_script {\n    "+name+"\n  }\n")
	}
	for _, tc := range []struct {
		name, script, weight string
		api                  bool
		weightWarning        bool
	}{
		{"check_apiserver", "/usr/local/bin/health.sh", "", true, true},
		{"chk_api", "/etc/keepalived/check_apiserver.sh", "  weight -100\n", true, false},
		{"chk_api", "/bin/sh /etc/keepalived/check_apiserver.sh", "  weight 0\n", true, true},
		{"chk_api", "/etc/keepalived/check_apiserver.sh.bak", "", false, false},
		{"check_apiserver_old", "/usr/bin/curl -sfk https://localhost:6443/", "", false, false},
	} {
		t.Run(tc.name+" "+tc.script, func(t *testing.T) {
			res := convertString(t, conf(tc.name, tc.script, tc.weight))
			probes := res.VirtualIPs[0].Spec.Probes
			if len(probes) != 1 {
				t.Fatalf("%d probes, want 1", len(probes))
			}
			p := probes[0]
			isAPI := p.Name == staticpod.ProbeName && p.HTTP != nil && p.HTTP.TLS != nil && p.Weight == staticpod.APIServerWeight
			if isAPI != tc.api {
				t.Errorf("mapped to the API server probe: %v, want %v (%+v)", isAPI, tc.api, p)
			}
			all := strings.Join(res.Warnings, "\n")
			if got := strings.Contains(all, " became -100"); got != tc.weightWarning {
				t.Errorf("weight warning %v, want %v:\n%s", got, tc.weightWarning, all)
			}
			if tc.api && !strings.Contains(all, "shortened to interval 200ms") {
				t.Errorf("no timing warning:\n%s", all)
			}
		})
	}
}

// The testdata's check_apiserver.sh is the script the guide's configuration runs.
func TestKubeadmGuideScript(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(corpusDir, "kubeadm-ha", "check_apiserver.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "curl -sfk --max-time 2") || !strings.Contains(string(b), "https://localhost:${APISERVER_DEST_PORT}/") {
		t.Errorf("check_apiserver.sh is not the guide's check:\n%s", b)
	}
	cfg, err := LoadFile(filepath.Join(corpusDir, "kubeadm-ha", "cp1.conf"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Scripts) != 1 || filepath.Base(cfg.Scripts[0].Command) != "check_apiserver.sh" {
		t.Errorf("cp1.conf's script: %+v", cfg.Scripts)
	}
}
