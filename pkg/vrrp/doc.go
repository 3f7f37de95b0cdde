// Package vrrp is the VRRP engine: the router state machine of RFC 3768 (v2) and RFC 5798 as
// clarified by RFC 9568 (v3), as a deterministic core with explicit time (Instance), and the
// driver that runs one instance against the host (Router). It imports only the standard library.
package vrrp
