package probe

import (
	"net"
	"strings"
	"testing"
)

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := ln.Addr().String()
	t.Cleanup(func() { ln.Close() })
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLn.Addr().String()
	closedLn.Close()

	if ok, reason := (tcpChecker{address: open}).check(t.Context()); !ok || reason != "connected to "+open {
		t.Errorf("check(%s) = %t, %q; want true: connected", open, ok, reason)
	}
	if ok, reason := (tcpChecker{address: closed}).check(t.Context()); ok || !strings.Contains(reason, "connection refused") {
		t.Errorf("check(%s) = %t, %q; want false: connection refused", closed, ok, reason)
	}
}
