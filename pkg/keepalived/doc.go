// Package keepalived reads keepalived.conf (the VRRP part of keepalived 2.x's syntax, see
// keepalived.conf(5)) and converts it into VirtualIP resources: Parse builds a typed Config,
// Convert turns one host's Config into VirtualIPs and Secrets, Merge combines the per-host
// configurations of a group into one VirtualIP per VRRP group with per-node overrides.
package keepalived
