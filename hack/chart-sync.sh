#!/usr/bin/env bash
# chart-sync.sh: keep the Helm chart's copies of the generated manifests identical to them.
#
#   config/crd/bases/*.yaml  ->  charts/kube-vrrp/crds/          (the CRDs, byte for byte)
#   config/rbac/role.yaml    ->  charts/kube-vrrp/files/rbac/role.yaml
#                                (templates/rbac.yaml takes the ClusterRole's and the Role's
#                                rules from it, so the chart grants exactly what the
#                                controllers' +kubebuilder:rbac markers generate)
#   config/rbac/lb_controller_role.yaml -> charts/kube-vrrp/files/rbac/lb_controller_role.yaml
#                                (the same for the Service controller, templates/lb-controller.yaml)
#
# Usage: hack/chart-sync.sh          copy (make chart)
#        hack/chart-sync.sh --check  copy nothing; fail, showing the diff, when a copy differs,
#                                    is missing, or the chart has a CRD that config/ has not
#                                    (make verify)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart=$root/charts/kube-vrrp
check=
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

pairs=()
for crd in "$root"/config/crd/bases/*.yaml; do
  pairs+=("$crd" "$chart/crds/$(basename "$crd")")
done
pairs+=("$root/config/rbac/role.yaml" "$chart/files/rbac/role.yaml")
pairs+=("$root/config/rbac/lb_controller_role.yaml" "$chart/files/rbac/lb_controller_role.yaml")

stale=0
for ((i = 0; i < ${#pairs[@]}; i += 2)); do
  src=${pairs[i]} dst=${pairs[i + 1]}
  if [ -n "$check" ]; then
    if ! cmp -s "$src" "$dst"; then
      diff -u "$src" "$dst" >&2 || true
      echo "chart-sync: ${dst#"$root"/} differs from ${src#"$root"/}" >&2
      stale=1
    fi
  else
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
  fi
done

# A CRD removed from config/ must leave the chart too.
for crd in "$chart"/crds/*.yaml; do
  [ -e "$crd" ] || continue
  if [ ! -e "$root/config/crd/bases/$(basename "$crd")" ]; then
    if [ -n "$check" ]; then
      echo "chart-sync: ${crd#"$root"/} has no source in config/crd/bases" >&2
      stale=1
    else
      rm "$crd"
    fi
  fi
done

if [ "$stale" -ne 0 ]; then
  echo "chart-sync: the chart is stale: run 'make chart' (after 'make generate') and commit" >&2
  exit 1
fi
