// Package packet encodes and decodes VRRP advertisements: version 2 (RFC 3768) and version 3
// (RFC 5798, as clarified by RFC 9568), over IPv4 and IPv6. It imports only the standard library.
package packet
