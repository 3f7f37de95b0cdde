package poolcel

import (
	"os"
	"strings"
	"testing"
)

// TestMarkers: the markers of the pool's address entries in api/v1alpha1 are the rules this
// package builds. After a change here, paste the markers the failure prints.
func TestMarkers(t *testing.T) {
	b, err := os.ReadFile("../../api/v1alpha1/virtualippool_types.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	// Each family's markers sit in the declaration of its type.
	for _, c := range []struct {
		family int
		typ    string
	}{{4, "type IPv4Pool struct"}, {6, "type IPv6Pool struct"}} {
		start := strings.Index(src, c.typ)
		if start < 0 {
			t.Fatalf("no %q", c.typ)
		}
		end := start + strings.Index(src[start:], "\n}\n")
		decl := src[start:end]
		for _, m := range Markers(c.family) {
			if !strings.Contains(decl, "\t// "+m.Text+"\n") {
				t.Errorf("%s: the marker %q is not this package's rule; write:\n\t// %s", c.typ, m.Name, m.Text)
			}
		}
	}
	if !strings.Contains(src, "\n// "+PeersMarker()+"\ntype VirtualIPPoolSpec struct") {
		t.Errorf("VirtualIPPoolSpec: the peers marker is not this package's rule; write, just above the type:\n// %s", PeersMarker())
	}
}
