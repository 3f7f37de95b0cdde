#!/usr/bin/env bash
# envtest.sh: make the envtest assets (kube-apiserver and etcd) and print their directory,
# the value for KUBEBUILDER_ASSETS.
#
#   bin/k8s/<kubernetes version>/kube-apiserver   built from k8s.io/kubernetes by the tools
#                                                 module hack/tools (~8 min on 2 cores, once)
#   bin/k8s/<kubernetes version>/etcd             symlink to Debian's /usr/bin/etcd (etcd-server)
#
# A present kube-apiserver is reused. The kubernetes version comes from hack/tools/go.mod and
# must have the minor of k8s.io/apimachinery in the main go.mod: the API server the CRD is
# tested against is the one the client libraries are written for. (The patch may differ: the
# module proxy does not serve every k8s.io/kubernetes zip, e.g. v1.37.2 answers 403.)
#
# Usage: hack/envtest.sh        build if needed, print the directory
#        hack/envtest.sh -q     the same, print nothing
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$root/hack/tools
GO=${GO:-go}

version=$(cd "$tools" && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
apimachinery=$(cd "$root" && "$GO" list -m -f '{{.Version}}' k8s.io/apimachinery)
minor() { echo "$1" | cut -d. -f2; }
if [ "$(minor "$version")" != "$(minor "$apimachinery")" ]; then
  echo "envtest: hack/tools builds k8s.io/kubernetes $version but the main module uses k8s.io/apimachinery $apimachinery;" \
    "update hack/tools/go.mod (kubernetes v1.$(minor "$apimachinery").x and every staging replace to v0.$(minor "$apimachinery").x)" >&2
  exit 1
fi

dir=$root/bin/k8s/$version
mkdir -p "$dir"

if [ ! -x "$dir/kube-apiserver" ]; then
  echo "envtest: building kube-apiserver $version into $dir (several minutes, once)" >&2
  start=$(date +%s)
  pkg=k8s.io/component-base/version
  ldflags="-s -w \
    -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(minor "$version") \
    -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  (cd "$tools" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" \
    -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
  echo "envtest: built kube-apiserver in $(($(date +%s) - start))s" >&2
fi

etcd=$(command -v etcd || true)
if [ -z "$etcd" ]; then
  echo "envtest: etcd not found; install Debian's etcd-server (bash hack/install-deps.sh)" >&2
  exit 1
fi
ln -sfn "$etcd" "$dir/etcd"

if [ "${1:-}" != "-q" ]; then
  echo "$dir"
fi
