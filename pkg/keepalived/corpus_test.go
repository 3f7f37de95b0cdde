package keepalived

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the current output")

// corpusDir holds realistic keepalived configurations, one directory per case: a directory
// with keepalived.conf is one host (Convert); otherwise every *.conf directly in it is one
// node of a group, named after the file (Merge). Included files live in subdirectories.
const corpusDir = "testdata/corpus"

type corpusCase struct {
	name  string
	files []string // paths inside corpusDir
	merge bool
}

func corpusCases(t *testing.T) []corpusCase {
	t.Helper()
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c := corpusCase{name: e.Name()}
		if _, err := os.Stat(filepath.Join(corpusDir, e.Name(), "keepalived.conf")); err == nil {
			c.files = []string{path.Join(e.Name(), "keepalived.conf")}
		} else {
			m, _ := filepath.Glob(filepath.Join(corpusDir, e.Name(), "*.conf"))
			sort.Strings(m)
			for _, f := range m {
				c.files = append(c.files, path.Join(e.Name(), filepath.Base(f)))
			}
			c.merge = true
		}
		if len(c.files) == 0 {
			t.Fatalf("corpus case %s has no .conf file", e.Name())
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("empty corpus")
	}
	return cases
}

// render converts a corpus case: the warnings as YAML comments, then the objects.
func (c corpusCase) render(t *testing.T) ([]byte, *Result) {
	t.Helper()
	fsys := os.DirFS(corpusDir)
	var res *Result
	var err error
	if c.merge {
		per := map[string]*Config{}
		for _, f := range c.files {
			cfg, err := Parse(fsys, f, nil)
			if err != nil {
				t.Fatalf("Parse(%s): %v", f, err)
			}
			per[strings.TrimSuffix(path.Base(f), ".conf")] = cfg
		}
		res, err = Merge(per)
	} else {
		cfg, perr := Parse(fsys, c.files[0], nil)
		if perr != nil {
			t.Fatalf("Parse(%s): %v", c.files[0], perr)
		}
		res, err = Convert(cfg)
	}
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	y, err := res.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	var b bytes.Buffer
	verb := "kube-vrrp convert " + c.files[0]
	if c.merge {
		verb = "kube-vrrp convert"
		for _, f := range c.files {
			verb += fmt.Sprintf(" --node %s=%s", strings.TrimSuffix(path.Base(f), ".conf"), f)
		}
	}
	fmt.Fprintf(&b, "# %s\n", verb)
	if len(res.Warnings) == 0 {
		b.WriteString("# no warnings\n")
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(&b, "# warning: %s\n", w)
	}
	b.Write(y)
	return b.Bytes(), res
}

func TestCorpusGolden(t *testing.T) {
	for _, c := range corpusCases(t) {
		t.Run(c.name, func(t *testing.T) {
			got, _ := c.render(t)
			again, _ := c.render(t)
			if !bytes.Equal(got, again) {
				t.Fatalf("output is not deterministic:\n%s", cmp.Diff(string(got), string(again)))
			}
			golden := filepath.Join("testdata", c.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestCorpusGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// The output must be accepted by the same rules as `kube-vrrp validate`, and read back into
// the same objects.
func TestCorpusOutputValidates(t *testing.T) {
	for _, c := range corpusCases(t) {
		t.Run(c.name, func(t *testing.T) {
			out, res := c.render(t)
			secrets := map[string]string{}
			for _, s := range res.Secrets {
				if s.Namespace != SecretNamespace || s.Type != corev1.SecretTypeOpaque {
					t.Errorf("Secret %s: namespace %q type %q", s.Name, s.Namespace, s.Type)
				}
				secrets[s.Name] = s.StringData[SecretKey]
			}
			for i := range res.VirtualIPs {
				vip := &res.VirtualIPs[i]
				if errs := desired.Validate(vip); len(errs) > 0 {
					t.Errorf("VirtualIP %s does not validate: %v", vip.Name, errs.ToAggregate())
				}
				if a := vip.Spec.Authentication; a != nil {
					pw, ok := secrets[a.SecretRef.Name]
					if !ok {
						t.Errorf("VirtualIP %s refers to Secret %s, which is not in the output", vip.Name, a.SecretRef.Name)
					}
					if err := desired.ValidatePassword(vip, []byte(pw)); err != nil {
						t.Errorf("VirtualIP %s: password: %v", vip.Name, err)
					}
				}
			}
			docs := strings.Split(string(out), "\n---\n")
			if len(docs) != len(res.VirtualIPs)+len(res.Secrets) {
				t.Fatalf("%d YAML documents, want %d", len(docs), len(res.VirtualIPs)+len(res.Secrets))
			}
			var back []v1alpha1.VirtualIP
			for _, d := range docs {
				if strings.Contains(d, "\nstatus:") || strings.Contains(d, "creationTimestamp") {
					t.Errorf("document has status or creationTimestamp:\n%s", d)
				}
				if !strings.Contains(d, "kind: VirtualIP") {
					continue
				}
				var v v1alpha1.VirtualIP
				if err := yaml.UnmarshalStrict([]byte(d), &v); err != nil {
					t.Fatalf("read back: %v\n%s", err, d)
				}
				back = append(back, v)
			}
			want := append([]v1alpha1.VirtualIP(nil), res.VirtualIPs...)
			sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
			if diff := cmp.Diff(want, back); diff != "" {
				t.Errorf("YAML does not read back into the same VirtualIPs (-want +got):\n%s", diff)
			}
		})
	}
}

// Every file of the corpus is a configuration keepalived itself accepts without a message.
func TestCorpusKeepalivedAccepts(t *testing.T) {
	requireKeepalived(t)
	for _, c := range corpusCases(t) {
		for _, f := range c.files {
			t.Run(f, func(t *testing.T) {
				keepalivedCheck(t, filepath.Join(corpusDir, f))
			})
		}
	}
}

// The corpus files Parse reads must be every .conf file of the corpus: none is forgotten.
func TestCorpusCoversEveryFile(t *testing.T) {
	read := map[string]bool{}
	fsys := os.DirFS(corpusDir)
	for _, c := range corpusCases(t) {
		for _, f := range c.files {
			cfg, err := Parse(fsys, f, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range cfg.Files {
				read[r] = true
			}
		}
	}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".conf") && !read[p] {
			t.Errorf("%s is in the corpus but no case reads it", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
