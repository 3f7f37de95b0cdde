#!/bin/sh
# The kubeadm HA guide's keepalived health check (cp1.conf, cp2.conf): fail unless the API
# server behind APISERVER_DEST_PORT on this node answers. kube-vrrp convert does not run it: it
# maps the vrrp_script to an https probe of kube-apiserver's /readyz (pkg/staticpod).
APISERVER_DEST_PORT=6443
curl -sfk --max-time 2 -o /dev/null "https://localhost:${APISERVER_DEST_PORT}/" || exit 1
