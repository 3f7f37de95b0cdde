// Package keepalived reads keepalived.conf (the VRRP part of keepalived 2.x's syntax, see
// keepalived.conf(5)) and converts it into VirtualIP resources: Parse builds a typed Config,
// Convert turns one host's Config into VirtualIPs and Secrets, Merge combines the per-host
// configurations of a group into one VirtualIP per VRRP group with per-node overrides, and
// Result.YAML prints them.
//
// The conversion keeps keepalived's behaviour, including what keepalived 2.2.7 does rather
// than what its manual says where the two differ (checked against keepalived itself):
// unset values get keepalived's defaults written out (version 2, advert_int 1s, priority 100,
// probe weight 0 = FAULT, also for vrrp_track_process), advert_int is rounded as keepalived
// rounds it (whole seconds half up for v2, 10ms steps for v3), state MASTER without a
// priority is the address owner (255, written as 254), nopreempt and preempt_delay are
// cleared with state MASTER, a sync group member's weighted track_interface gets weight 0 and
// its weighted track_script is dropped (its track_process keeps its weight), the garp_master_*
// timing (keepalived's 5 messages and second burst 5s later when unset, vrrp_garp_master_* and
// vrrp_min_garp of global_defs) becomes spec.announcements, use_vmac spec.virtualMAC, and
// scripts and notify commands are split into argv without a shell (notify_master, ...,
// notify become spec.notify). The kubeadm HA guide's check_apiserver script is not run but
// mapped to the probe of kube-apiserver's /readyz that kube-vrrp static-pod generates
// (pkg/staticpod), with sub-second timing and its weight, each change a warning. Everything
// that is not expressed exactly is reported as a warning with its file and line; what cannot
// be converted safely is an error.
//
// No warning or error shows a secret of the input: auth_pass values and credentials in
// commands (URL userinfo, curl -u, wget --password, Authorization headers) are replaced by
// <redacted> (see redact.go). The password goes into a Secret; a probe keeps the
// credentials its URL or command needs, with a warning. include reads regular files only.
package keepalived
