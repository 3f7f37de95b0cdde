//go:build linux

package hostnet

import (
	"errors"
	"net/netip"
	"testing"
)

// After Close the Host opens nothing: a call racing with Close (a watch reopening its socket,
// an announcement) would otherwise open it in the calling thread's namespace, or setns to a
// descriptor number reused since.
func TestHostDoAfterClose(t *testing.T) {
	h := newTestNS(t).host(t)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	ran := false
	if err := h.do(func() error { ran = true; return nil }); !errors.Is(err, errHostClosed) || ran {
		t.Errorf("do after Close: %v, ran %v; want errHostClosed, not run", err, ran)
	}
	if _, err := h.Listen("lo", netip.MustParseAddr("198.18.0.1")); err == nil {
		t.Error("Listen after Close succeeded")
	}
}
