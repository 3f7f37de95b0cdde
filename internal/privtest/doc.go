// Package privtest gates tests that need root (network namespaces, raw sockets, netlink).
package privtest
