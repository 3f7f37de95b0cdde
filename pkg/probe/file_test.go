package probe

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "haproxy.ok")
	if err := os.WriteFile(exists, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		ok     bool
		reason string
	}{
		{exists, true, exists + " exists"},
		{dir, true, dir + " exists"},
		{filepath.Join(dir, "missing"), false, filepath.Join(dir, "missing") + " does not exist"},
		{dangling, false, dangling + " does not exist"},
	}
	for _, tt := range tests {
		ok, reason := (&fileChecker{path: tt.path}).check(t.Context())
		if ok != tt.ok || reason != tt.reason {
			t.Errorf("check(%s) = %t, %q; want %t, %q", tt.path, ok, reason, tt.ok, tt.reason)
		}
	}
}

// A check whose context ends before stat answers fails at once and does not start another
// stat while one is in flight.
func TestFileTimeout(t *testing.T) {
	c := &fileChecker{path: t.TempDir()}
	c.inflight = make(chan struct{}) // a stat that hangs
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if ok, reason := c.check(ctx); ok || reason != "stat "+c.path+": no answer within the timeout" {
		t.Errorf("check() = %t, %q; want a timeout", ok, reason)
	}
}
