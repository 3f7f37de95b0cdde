package manifest

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes the manifest parser panic or hang, and that whatever it
// accepts is consistent. Seeds: testdata/*.yaml and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err != nil {
			if set != nil {
				t.Fatalf("Parse() returned a Set with error %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, v := range set.VirtualIPs {
			if v.Name == "" || seen[v.Name] {
				t.Fatalf("Parse() accepted VirtualIP name %q (empty or duplicate)", v.Name)
			}
			seen[v.Name] = true
			if set.Source(v.Name) != "fuzz.yaml" {
				t.Fatalf("Source(%q) = %q", v.Name, set.Source(v.Name))
			}
			if _, err := set.Password(&v); err != nil && v.Spec.Authentication == nil {
				t.Fatalf("Password() error without authentication: %v", err)
			}
		}
		for name, s := range set.Secrets {
			if name == "" || s.Name != name || len(s.StringData) != 0 {
				t.Fatalf("Parse() kept Secret %q inconsistent: %+v", name, s)
			}
		}
	})
}
