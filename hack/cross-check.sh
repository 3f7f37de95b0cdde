#!/usr/bin/env bash
# kube-vrrp builds for macOS and Windows too, where operators run validate, convert and version
# on their laptops (run and agent need Linux; pkg/hostnet and some probes have stubs there).
# For each target: build ./cmd/kube-vrrp, and vet the module's packages it depends on, with
# their tests. Set CROSS_TARGETS to override the GOOS/GOARCH pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${CROSS_TARGETS:-darwin/arm64 windows/amd64}
module=$(go list -m)
for t in $targets; do
  goos=${t%/*} goarch=${t#*/}
  export GOOS=$goos GOARCH=$goarch CGO_ENABLED=0
  mapfile -t pkgs < <(go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/kube-vrrp | grep -E "^$module(/|$)")
  start=$SECONDS
  go build -o /dev/null ./cmd/kube-vrrp
  go vet "${pkgs[@]}"
  echo "cross-check $goos/$goarch: build ./cmd/kube-vrrp and vet ${#pkgs[@]} packages: ok ($((SECONDS - start))s)"
  unset GOOS GOARCH CGO_ENABLED
done
