//go:build !linux

package probe

import (
	"errors"
	"strings"
	"testing"
)

// TestNewLinuxOnlyKinds: outside Linux, New refuses process, exec and interface probes with
// ErrUnsupported, while their specs stay valid and the portable kinds still run.
func TestNewLinuxOnlyKinds(t *testing.T) {
	for _, s := range []Spec{
		{Name: "p", Kind: KindProcess, Process: "haproxy"},
		{Name: "e", Kind: KindExec, Command: []string{"/bin/true"}},
		{Name: "i", Kind: KindInterface, Interface: "eth0"},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", s.Kind, err)
		}
		_, err := New([]Spec{s}, Options{ExecEnabled: true}, nil)
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "need Linux") {
			t.Errorf("%s: New() = %v, want an error wrapping errors.ErrUnsupported that says it needs Linux", s.Kind, err)
		}
	}
	portable := []Spec{
		{Name: "t", Kind: KindTCP, Address: "127.0.0.1:80"},
		{Name: "h", Kind: KindHTTP, URL: "http://127.0.0.1/"},
		{Name: "f", Kind: KindFile, Path: "/tmp"},
	}
	if _, err := New(portable, Options{}, nil); err != nil {
		t.Errorf("New(tcp, http, file) = %v, want nil", err)
	}
}
