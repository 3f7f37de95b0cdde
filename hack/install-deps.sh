#!/usr/bin/env bash
# Debian packages the build, the tests, the benchmarks and `make demo` need.
#
# Idempotent and fast: one dpkg-query when everything is present; apt-get update and
# install only for what is missing. Runs as root on a fresh Debian (12) machine.
#
#   iproute2      ip netns / ip link / bridge: the namespace lab (internal/lab)
#   nftables      nft: the lab's VRRP filter (split brain) on the lab switch's bridge ports
#   keepalived    the reference VRRP implementation: interop tests and benchmarks
#   frr           FRR's vrrpd (with zebra): the second VRRP implementation of the interop tests;
#                 they run it per lab node, never as the packaged service
#   haproxy       the workload of `make demo` and the end-to-end scenarios
#   iputils-ping  ping: reachability checks inside the lab
#   tcpdump       looking at adverts when a lab test fails
#   etcd-server   etcd for envtest (test/envtest; hack/envtest.sh links /usr/bin/etcd)
#   libcap2-bin   setcap: the file capabilities internal/filecaps writes are setcap's (as in the Dockerfile)
#   ca-certificates  the CA bundle of `make image` (hack/image)
#   containerd    ctr and containerd: hack/image's test imports the image into a containerd of its own;
#                 the lab's real nodes (internal/cluster) run one per node beside a kubelet
#   runc          the OCI runtime of those containerds (containerd depends on it; named for clarity)
#   containernetworking-plugins  the CNI plugins (bridge, host-local, loopback) of the lab's nodes
#
# Installing never starts the packaged daemons (keepalived, haproxy, frr, nftables, etcd, containerd) on the host:
# a temporary policy-rc.d forbids service starts while apt runs. The tests start their own
# daemons inside network namespaces only.
set -euo pipefail

packages=(iproute2 nftables keepalived frr haproxy iputils-ping tcpdump etcd-server procps netcat-openbsd util-linux libcap2-bin ca-certificates containerd runc containernetworking-plugins)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in
    ii*) ;;
    *) missing+=("$p") ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2

# Keep apt from starting haproxy/keepalived/frr/nftables services on the host while installing.
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  created_policy=1
fi
cleanup() {
  if [ -n "$created_policy" ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# frr's package enables frr.service at boot (zebra, staticd and watchfrr in the host's own
# network namespace); the tests run FRR only inside lab namespaces, so a frr installed here is
# disabled again (systemctl works on the unit files without a running systemd).
if [[ " ${missing[*]} " == *" frr "* ]] && command -v systemctl >/dev/null; then
  systemctl disable --quiet frr.service 2>/dev/null || true
fi
