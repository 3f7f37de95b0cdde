package envtest

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	probepkg "github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// httpsProbe makes the VirtualIP's one probe an http probe of url with tls.
func httpsProbe(v *v1alpha1.VirtualIP, url string, tls *v1alpha1.HTTPProbeTLS) {
	v.Spec.Probes[0].Process = nil
	v.Spec.Probes[0].HTTP = &v1alpha1.HTTPProbe{URL: url, TLS: tls}
}

// TestCRDHTTPTLS: an http probe's tls (docs/design.md §6.1). The API server and desired.Validate
// (kube-vrrp validate, the agent) accept the same settings, which desired.Probes carries to the
// probe, and refuse the same mistakes, the API server with a message that says what to write.
func TestCRDHTTPTLS(t *testing.T) {
	ctx := requireAPIServer(t)
	const pki = "/etc/kubernetes/pki/"
	long := "/" + strings.Repeat("p", v1alpha1.MaxTLSFileLength-1)

	accepted := []struct {
		name string
		url  string
		tls  v1alpha1.HTTPProbeTLS
	}{
		{"kube-apiserver", "https://127.0.0.1:6443/readyz", v1alpha1.HTTPProbeTLS{CAFile: pki + "ca.crt",
			CertFile: pki + "apiserver-kubelet-client.crt", KeyFile: pki + "apiserver-kubelet-client.key",
			BearerTokenFile: "/var/run/secrets/probe/token", ServerName: "kubernetes.default.svc"}},
		{"empty", "https://h/", v1alpha1.HTTPProbeTLS{}},
		{"insecure", "https://h/", v1alpha1.HTTPProbeTLS{InsecureSkipVerify: true}},
		{"certificate and key in one file", "https://h/", v1alpha1.HTTPProbeTLS{CertFile: "/var/lib/kubelet/pki/kubelet-client-current.pem",
			KeyFile: "/var/lib/kubelet/pki/kubelet-client-current.pem"}},
		{"server name IPv4", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "10.96.0.1"}},
		{"server name IPv6", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "2001:db8::1"}},
		{"server name with underscore and capitals", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "_Svc.Example-1.test"}},
		{"longest strings", "https://h/", v1alpha1.HTTPProbeTLS{CAFile: long, CertFile: long, KeyFile: long, BearerTokenFile: long,
			ServerName: strings.Repeat(strings.Repeat("a", 62)+".", 4) + "a"}},
	}
	for i, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP(fmt.Sprintf("tls-ok-%d", i))
			httpsProbe(vip, tt.url, &tt.tls)
			if errs := desired.Validate(vip); len(errs) > 0 {
				t.Errorf("desired.Validate: %.300v", errs.ToAggregate())
			}
			if err := k8s.Create(ctx, vip, client.DryRunAll); err != nil {
				t.Errorf("the API server refused it: %.300v", err)
			}
			specs, err := desired.Probes(vip)
			want := probepkg.HTTPSOptions{CAFile: tt.tls.CAFile, CertFile: tt.tls.CertFile, KeyFile: tt.tls.KeyFile,
				BearerTokenFile: tt.tls.BearerTokenFile, ServerName: tt.tls.ServerName, InsecureSkipVerify: tt.tls.InsecureSkipVerify}
			if err != nil || len(specs) != 1 || specs[0].HTTPS != want {
				t.Errorf("desired.Probes: %.300v, %v; want HTTPS %.300v", specs, err, want)
			}
		})
	}

	rejected := []struct {
		name string
		url  string
		tls  v1alpha1.HTTPProbeTLS
		// want are parts of the API server's answer: the field path and what to write.
		want []string
	}{
		{"http", "http://127.0.0.1:8080/healthz", v1alpha1.HTTPProbeTLS{BearerTokenFile: "/run/token"}, []string{
			"spec.probes[0].http.tls: Invalid value: tls is only for an https:// url (a bearer token would travel in clear text over http://): change the url to https:// or remove tls"}},
		{"empty with http", "HTTP://h/", v1alpha1.HTTPProbeTLS{}, []string{"spec.probes[0].http.tls", "tls is only for an https:// url"}},
		{"insecure with http", "http://h/", v1alpha1.HTTPProbeTLS{InsecureSkipVerify: true}, []string{"spec.probes[0].http.tls", "tls is only for an https:// url"}},
		{"certificate without key", "https://h/", v1alpha1.HTTPProbeTLS{CertFile: pki + "c.crt"}, []string{
			"spec.probes[0].http.tls: Invalid value: certFile and keyFile go together: set both"}},
		{"key without certificate", "https://h/", v1alpha1.HTTPProbeTLS{KeyFile: pki + "c.key"}, []string{
			"spec.probes[0].http.tls", "certFile and keyFile go together"}},
		{"CA and insecure", "https://h/", v1alpha1.HTTPProbeTLS{CAFile: pki + "ca.crt", InsecureSkipVerify: true}, []string{
			"spec.probes[0].http.tls: Invalid value: caFile and insecureSkipVerify exclude each other: keep caFile, which verifies the server, and remove insecureSkipVerify"}},
		{"server name with a zone", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "fe80::1%eth0"}, []string{
			"spec.probes[0].http.tls.serverName: Invalid value: \"fe80::1%eth0\": give a DNS name or IP address that the server's certificate names"}},
		{"server name with a leading dash", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "-h.example"}, []string{"spec.probes[0].http.tls.serverName"}},
		{"server name with an empty label", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "h..example"}, []string{"spec.probes[0].http.tls.serverName"}},
		{"server name with a trailing dot", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "h.example."}, []string{"spec.probes[0].http.tls.serverName"}},
		{"server name with a port", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: "h.example:6443"}, []string{"spec.probes[0].http.tls.serverName"}},
		{"server name label of 64", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: strings.Repeat("a", 64) + ".example"}, []string{"spec.probes[0].http.tls.serverName"}},
		{"server name of 254", "https://h/", v1alpha1.HTTPProbeTLS{ServerName: strings.Repeat(strings.Repeat("a", 62)+".", 4) + "ab"}, []string{
			"spec.probes[0].http.tls.serverName: Too long: may not be more than 253 bytes"}},
		{"file of 4096", "https://h/", v1alpha1.HTTPProbeTLS{CAFile: long + "p"}, []string{
			"spec.probes[0].http.tls.caFile: Too long: may not be more than 4095 bytes"}},
	}
	// Each file's path: absolute and clean, as pkg/probe's CheckCredentialFile.
	for _, p := range []string{"ca.crt", "/", "/etc/pki/", "/etc//pki/ca.crt", "/etc/./pki/ca.crt", "/etc/../pki/ca.crt", "/etc/pki/.", "/etc/pki/.."} {
		for _, f := range []string{"caFile", "certFile", "keyFile", "bearerTokenFile"} {
			var tls v1alpha1.HTTPProbeTLS
			switch f {
			case "caFile":
				tls.CAFile = p
			case "certFile":
				tls.CertFile, tls.KeyFile = p, "/k"
			case "keyFile":
				tls.CertFile, tls.KeyFile = "/c", p
			case "bearerTokenFile":
				tls.BearerTokenFile = p
			}
			rejected = append(rejected, struct {
				name string
				url  string
				tls  v1alpha1.HTTPProbeTLS
				want []string
			}{f + " " + p, "https://h/", tls, []string{
				"spec.probes[0].http.tls." + f + ": Invalid value: \"" + p + "\": give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /"}})
		}
	}
	for i, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			vip := validVIP(fmt.Sprintf("tls-bad-%d", i))
			httpsProbe(vip, tt.url, &tt.tls)
			if errs := desired.Validate(vip); len(errs) == 0 {
				t.Errorf("desired.Validate accepts what the CRD must refuse")
			}
			err := k8s.Create(ctx, vip, client.DryRunAll)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("the API server: %v, want Invalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the API server's error lacks %q:\n%v", w, err)
				}
			}
		})
	}

	// The gap: the CRD's isIP refuses an IPv4-mapped IPv6 address, which pkg/probe's
	// CheckServerName (netip) takes; the CRD is the stricter, and nobody names a server so.
	t.Run("server name IPv4-mapped", func(t *testing.T) {
		vip := validVIP("tls-mapped")
		httpsProbe(vip, "https://h/", &v1alpha1.HTTPProbeTLS{ServerName: "::ffff:10.96.0.1"})
		if errs := desired.Validate(vip); len(errs) > 0 {
			t.Errorf("desired.Validate refuses it now (%v): the gap is closed, make this case a refusal", errs.ToAggregate())
		}
		if err := k8s.Create(ctx, vip, client.DryRunAll); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.probes[0].http.tls.serverName") {
			t.Errorf("the API server: %v, want Invalid naming spec.probes[0].http.tls.serverName", err)
		}
	})
}

// TestCRDHTTPTLSManifest: the tls of docs/design.md §6.1's kube-apiserver probe, written as YAML
// with every field's name as users write it, and explicit empty strings (which a typed client
// never sends): the API server refuses an empty path or server name.
func TestCRDHTTPTLSManifest(t *testing.T) {
	ctx := requireAPIServer(t)
	manifest := `
url: https://127.0.0.1:6443/readyz
tls:
  caFile: /etc/kubernetes/pki/ca.crt
  certFile: /etc/kubernetes/pki/apiserver-kubelet-client.crt
  keyFile: /etc/kubernetes/pki/apiserver-kubelet-client.key
  bearerTokenFile: /var/run/secrets/probe/token
  serverName: kubernetes.default.svc
  insecureSkipVerify: false
`
	var http map[string]any
	if err := yaml.UnmarshalStrict([]byte(manifest), &http); err != nil {
		t.Fatal(err)
	}
	create := func(name string, mut func(tls map[string]any)) error {
		vip := validVIP(name)
		u := toUnstructured(t, vip)
		probes, _, _ := unstructured.NestedSlice(u.Object, "spec", "probes")
		p := probes[0].(map[string]any)
		delete(p, "process")
		h, err := yaml.Marshal(http)
		if err != nil {
			t.Fatal(err)
		}
		var own map[string]any
		if err := yaml.Unmarshal(h, &own); err != nil {
			t.Fatal(err)
		}
		mut(own["tls"].(map[string]any))
		p["http"] = own
		if err := unstructured.SetNestedSlice(u.Object, probes, "spec", "probes"); err != nil {
			t.Fatal(err)
		}
		return k8s.Create(ctx, u, client.DryRunAll)
	}
	if err := create("tls-manifest", func(map[string]any) {}); err != nil {
		t.Fatalf("the API server refused the manifest: %v", err)
	}
	for i, f := range []string{"caFile", "certFile", "keyFile", "bearerTokenFile", "serverName"} {
		err := create(fmt.Sprintf("tls-manifest-%d", i), func(tls map[string]any) { tls[f] = "" })
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.probes[0].http.tls."+f) {
			t.Errorf("%s: \"\": the API server: %v, want Invalid naming spec.probes[0].http.tls.%s", f, err, f)
		}
	}
}
