package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	set, err := Load("testdata/haproxy.yaml")
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	var names []string
	for _, v := range set.VirtualIPs {
		names = append(names, v.Name)
	}
	if diff := cmp.Diff([]string{"haproxy", "v6"}, names); diff != "" {
		t.Errorf("VirtualIP names mismatch (-want +got):\n%s", diff)
	}
	vip := set.VirtualIPs[0]
	if vip.Spec.VRID != 51 || vip.Spec.Version != 2 || vip.Spec.AdvertisementInterval.Duration.String() != "1s" ||
		len(vip.Spec.Probes) != 1 || vip.Spec.Probes[0].Weight != -20 || vip.Spec.Authentication.SecretRef.Key != "password" {
		t.Errorf("VirtualIP haproxy decoded wrongly: %+v", vip.Spec)
	}
	if got := set.Source("haproxy"); got != "testdata/haproxy.yaml" {
		t.Errorf("Source(haproxy) = %q", got)
	}
	wantSecret := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "vrrp-auth", Namespace: "kube-vrrp"},
		Data:       map[string][]byte{"password": []byte("s3cret"), "other": []byte("other")},
	}
	if diff := cmp.Diff(map[string]corev1.Secret{"vrrp-auth": wantSecret}, set.Secrets); diff != "" {
		t.Errorf("Secrets mismatch (-want +got):\n%s", diff)
	}
	pw, err := set.Password(&vip)
	if err != nil || string(pw) != "s3cret" {
		t.Errorf("Password() = %q, %v; want s3cret", pw, err)
	}
}

func TestLoadSeveralFiles(t *testing.T) {
	a := write(t, "a.yaml", "apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: a}\nspec: {vrid: 1, addresses: [192.0.2.1]}\n")
	b := write(t, "b.yaml", "apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: b}\nspec: {vrid: 2, addresses: [192.0.2.2]}\n")
	set, err := Load(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if set.Source("a") != a || set.Source("b") != b || set.Source("c") != "" {
		t.Errorf("Source() = %q, %q, %q", set.Source("a"), set.Source("b"), set.Source("c"))
	}
}

func TestLoadErrors(t *testing.T) {
	const vipHead = "apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: x}\n"
	tests := []struct {
		name    string
		content string
		// want are substrings of the error's lines, in order; FILE stands for the file's path.
		want []string
	}{
		{name: "unknown field", content: vipHead + "spec:\n  vrid: 1\n  adresses: [192.0.2.1]\n",
			want: []string{`FILE: document 1 (line 1): VirtualIP: unknown field "spec.adresses"`}},
		{name: "unknown nested field", content: vipHead + "spec:\n  vrid: 1\n  addresses: [192.0.2.1]\n  probes:\n  - name: a\n    file: {path: /x, mode: 1}\n",
			want: []string{`unknown field "spec.probes[0].file.mode"`}},
		{name: "duplicate key", content: vipHead + "spec:\n  vrid: 1\n  vrid: 2\n",
			want: []string{`FILE: document 1 (line 1): invalid YAML: yaml: unmarshal errors:   line 6: key "vrid" already set in map`}},
		{name: "wrong type", content: vipHead + "spec:\n  vrid: one\n",
			want: []string{`VirtualIP: cannot unmarshal string into Go struct field VirtualIPSpec.spec.vrid of type int32`}},
		{name: "bad duration", content: vipHead + "spec:\n  vrid: 1\n  advertisementInterval: soon\n",
			want: []string{`time: invalid duration "soon"`}},
		{name: "syntax error with the file's line", content: "# c\n---\n" + vipHead + "spec: [\n",
			want: []string{`FILE: document 1 (line 3): invalid YAML: yaml: line 6: did not find expected node content`}},
		{name: "leading comments", content: "# c\n\n" + vipHead + "spec: {vrdi: 1}\n",
			want: []string{`FILE: document 1 (line 3): VirtualIP: unknown field "spec.vrdi"`}},
		{name: "YAML error lines count from the file", content: vipHead + "spec: {vrid: 1}\n---\n# c\n" + vipHead + "spec:\n  vrid: 1\n  vrid: 2\n",
			want: []string{`FILE: document 2 (line 7): invalid YAML: yaml: unmarshal errors:   line 12: key "vrid" already set in map`}},
		{name: "unknown kind", content: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			want: []string{`FILE: document 1 (line 1): kind "ConfigMap" (apiVersion "v1") is not supported: only VirtualIP (kubevrrp.io/v1alpha1) and Secret (v1) are read`}},
		{name: "wrong apiVersion", content: "apiVersion: kubevrrp.io/v1\nkind: VirtualIP\nmetadata: {name: x}\n",
			want: []string{`VirtualIP has apiVersion "kubevrrp.io/v1": use apiVersion: kubevrrp.io/v1alpha1`}},
		{name: "no kind", content: "metadata: {name: x}\n", want: []string{`every document needs apiVersion and kind`}},
		{name: "kind not a string", content: "apiVersion: v1\nkind: [Secret]\n", want: []string{`every document needs apiVersion and kind`}},
		{name: "list", content: "- a\n- b\n", want: []string{`want an object with apiVersion and kind, not a list`}},
		{name: "scalar", content: "hello\n", want: []string{`not a string`}},
		{name: "no name", content: "apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nspec: {vrid: 1}\n",
			want: []string{`VirtualIP: metadata.name: Required value`}},
		{name: "duplicate VirtualIP", content: vipHead + "spec: {vrid: 1}\n---\n" + vipHead + "spec: {vrid: 2}\n",
			want: []string{`FILE: document 2 (line 6): VirtualIP "x" is already defined at FILE: document 1 (line 1): names must be unique`}},
		{name: "duplicate Secret", content: "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
			want: []string{`Secret "s" is already defined at`}},
		{name: "Secret without name", content: "apiVersion: v1\nkind: Secret\ndata: {}\n", want: []string{`Secret: metadata.name: Required value`}},
		{name: "every problem is reported", content: vipHead + "spec: {vrdi: 1}\n---\nkind: Foo\napiVersion: v1\n",
			want: []string{`document 1 (line 1): VirtualIP: unknown field "spec.vrdi"`, `document 2 (line 6): kind "Foo"`}},
		{name: "too many documents", content: strings.Repeat("---\n", MaxDocuments+1), want: []string{`FILE: more than 1000 YAML documents`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, "m.yaml", tt.content)
			set, err := Load(p)
			if err == nil {
				t.Fatalf("Load() = %+v, want an error", set)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Load() error has %d lines, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				w = strings.ReplaceAll(w, "FILE", p)
				if !strings.Contains(lines[i], w) {
					t.Errorf("Load() error line %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestLoadEmptyFiles(t *testing.T) {
	for _, content := range []string{"", "---\n", "# only a comment\n---\n---\n~\n", "\xef\xbb\xbf\r\n---\r\n"} {
		set, err := Load(write(t, "e.yaml", content))
		if err != nil {
			t.Errorf("Load(%q) error = %v", content, err)
			continue
		}
		if len(set.VirtualIPs) != 0 || len(set.Secrets) != 0 {
			t.Errorf("Load(%q) = %+v, want nothing", content, set)
		}
	}
}

func TestLoadCRLF(t *testing.T) {
	content := "apiVersion: kubevrrp.io/v1alpha1\r\nkind: VirtualIP\r\nmetadata: {name: a}\r\nspec: {vrid: 1}\r\n---\r\napiVersion: kubevrrp.io/v1alpha1\r\nkind: VirtualIP\r\nmetadata: {name: b}\r\nspec: {vrid: 2}\r\n"
	set, err := Load(write(t, "crlf.yaml", content))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.VirtualIPs) != 2 {
		t.Errorf("Load() read %d VirtualIPs, want 2", len(set.VirtualIPs))
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	big := write(t, "big.yaml", "# "+strings.Repeat("x", MaxFileSize)+"\n")
	dup := write(t, "dup.yaml", "apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: a}\nspec: {vrid: 1}\n")
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{name: "none", want: "no manifest file given"},
		{name: "missing", paths: []string{filepath.Join(dir, "nope.yaml")}, want: "no such file or directory"},
		{name: "directory", paths: []string{dir}, want: "is a directory"},
		{name: "too big", paths: []string{big}, want: "larger than 4194304 bytes"},
		{name: "duplicate across files", paths: []string{dup, dup}, want: `VirtualIP "a" is already defined at ` + dup + ": document 1 (line 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.paths...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Parse("big", make([]byte, MaxFileSize+1)); err == nil || !strings.Contains(err.Error(), "big: larger than") {
		t.Errorf("Parse(big) error = %v", err)
	}
}

// Secret values must never reach an error message, whatever is wrong with the Secret.
func TestSecretValuesStayOutOfErrors(t *testing.T) {
	const value = "Zm9vYmFyIQ" // also not valid base64 (no padding)
	tests := []string{
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: " + value + "}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: [" + value + "]}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: " + value + ", password: " + value + "}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: \"" + value + "}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  password: " + value + "\n   bad: indent\n",
	}
	for _, content := range tests {
		_, err := Parse("s.yaml", []byte(content))
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", content)
			continue
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("Parse() error %q shows the secret value", err)
		}
	}
}

func TestStringDataNumberHint(t *testing.T) {
	_, err := Parse("s.yaml", []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: 12345678}\n"))
	if err == nil || !strings.Contains(err.Error(), `stringData values are strings: quote them`) {
		t.Errorf("Parse() error = %v, want a hint to quote the value", err)
	}
}

func TestPassword(t *testing.T) {
	set := &Set{Secrets: map[string]corev1.Secret{
		"auth":  {Data: map[string][]byte{"password": []byte("hunter2"), "other": nil}},
		"empty": {},
	}}
	vip := func(name, key string) *v1alpha1.VirtualIP {
		return &v1alpha1.VirtualIP{
			ObjectMeta: metav1.ObjectMeta{Name: "v"},
			Spec: v1alpha1.VirtualIPSpec{Authentication: &v1alpha1.AuthenticationSpec{
				Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: name, Key: key},
			}},
		}
	}
	tests := []struct {
		name    string
		vip     *v1alpha1.VirtualIP
		want    string
		wantErr string
	}{
		{name: "no authentication", vip: &v1alpha1.VirtualIP{}},
		{name: "found", vip: vip("auth", "password"), want: "hunter2"},
		{name: "no secret", vip: vip("nope", "password"),
			wantErr: `VirtualIP "v": spec.authentication.secretRef.name: Secret "nope" not found: add a Secret of that name to the manifests`},
		{name: "no key", vip: vip("auth", "pass"),
			wantErr: `VirtualIP "v": spec.authentication.secretRef.key: Secret "auth" has no key "pass" (it has "other", "password")`},
		{name: "no keys at all", vip: vip("empty", "pass"), wantErr: `VirtualIP "v": spec.authentication.secretRef.key: Secret "empty" has no key "pass" (it has no keys)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := set.Password(tt.vip)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Password() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("Password() error shows the password")
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Password() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// The result is a copy.
	pw, _ := set.Password(vip("auth", "password"))
	pw[0] = 'X'
	if string(set.Secrets["auth"].Data["password"]) != "hunter2" {
		t.Error("Password() returned the Secret's own slice")
	}
}
