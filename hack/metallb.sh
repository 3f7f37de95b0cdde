#!/usr/bin/env bash
# metallb.sh: build MetalLB's speaker and controller from the Go module go.universe.tf/metallb
# (the tools module hack/metallb, which pins its version) into bin/metallb/<version>/, with the
# module's CRDs (config/crd/bases) and RBAC (config/rbac/role.yaml) beside them, and print that
# directory. `make bench` runs it for BenchmarkLoadBalancer (test/bench), which runs MetalLB's
# layer 2 mode beside kube-vrrp; nothing else needs MetalLB, and the main module does not
# depend on it.
#
#   bin/metallb/<version>/speaker        go.universe.tf/metallb/speaker
#   bin/metallb/<version>/controller     go.universe.tf/metallb/controller
#   bin/metallb/<version>/crd/*.yaml     the module's config/crd/bases
#   bin/metallb/<version>/rbac/role.yaml the module's config/rbac/role.yaml
#
# The version is v0.15.2: v0.16.x requires github.com/metallb/frr-k8s v0.0.27, which the Go module
# proxy does not serve. Present binaries are reused. Times on 2 shared cores with a cold build
# cache: a few minutes for both (the Kubernetes client libraries).
#
# Usage: hack/metallb.sh        build if needed, print the directory
#        hack/metallb.sh -q     the same, print nothing
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$root/hack/metallb
GO=${GO:-go}
module=go.universe.tf/metallb

version=$(cd "$tools" && "$GO" list -m -f '{{.Version}}' "$module")
dir=$root/bin/metallb/$version
mkdir -p "$dir"

# The module's source (CRDs, RBAC) from the module cache, downloaded if needed.
(cd "$tools" && "$GO" mod download "$module")
src=$(cd "$tools" && "$GO" list -m -f '{{.Dir}}' "$module")
if [ -z "$src" ] || [ ! -d "$src/config/crd/bases" ]; then
  echo "metallb: no config/crd/bases in the module $module@$version (${src:-not downloaded})" >&2
  exit 1
fi
mkdir -p "$dir/crd" "$dir/rbac"
cp "$src"/config/crd/bases/*.yaml "$dir/crd/"
cp "$src/config/rbac/role.yaml" "$dir/rbac/role.yaml"
chmod -R u+w "$dir/crd" "$dir/rbac"

for c in speaker controller; do
  if [ -x "$dir/$c" ]; then
    continue
  fi
  echo "metallb: building $c $version into $dir (minutes, once)" >&2
  start=$(date +%s)
  (cd "$tools" && CGO_ENABLED=0 "$GO" build -trimpath \
    -ldflags "-s -w -X $module/internal/version.gitCommit=$version -X $module/internal/version.gitBranch=module" \
    -o "$dir/$c.tmp" "$module/$c")
  mv "$dir/$c.tmp" "$dir/$c"
  echo "metallb: built $c in $(($(date +%s) - start))s" >&2
done

if [ "${1:-}" != "-q" ]; then
  echo "$dir"
fi
