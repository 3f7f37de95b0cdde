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

# The build, its version check against the main module's k8s.io/apimachinery and its flags are
# hack/k8s-binaries.sh's, for every Kubernetes binary the lab uses.
dir=$(bash "$root/hack/k8s-binaries.sh" kube-apiserver)

etcd=$(command -v etcd || true)
if [ -z "$etcd" ]; then
  echo "envtest: etcd not found; install Debian's etcd-server (bash hack/install-deps.sh)" >&2
  exit 1
fi
ln -sfn "$etcd" "$dir/etcd"

if [ "${1:-}" != "-q" ]; then
  echo "$dir"
fi
