#!/usr/bin/env bash
# Dependency rules, run by make verify:
# - The engine must stay a plain library: pkg/vrrp and pkg/vrrp/packet import only the standard
#   library (and each other). docs/design.md §2.2.
# - The agent's binary must not link the API server's libraries (k8s.io/apiserver and, with
#   them, cel-go, gRPC, OpenTelemetry): the agent's resident memory is mostly the pages of its
#   own text and data that the kernel maps in, so its size is its RSS; they made it 81 MB
#   instead of 49. /metrics asks the API server with client-go's typed clients instead
#   (controllers/metrics_auth.go, docs/design.md §7.9).
set -euo pipefail
cd "$(dirname "$0")/.."
module=$(go list -m)
bad=0
for pkg in ./pkg/vrrp ./pkg/vrrp/packet; do
  while read -r dep; do
    case "$dep" in
      "$module/pkg/vrrp"|"$module/pkg/vrrp/packet") ;;
      *.*/*) echo "dependency rule: $pkg imports $dep (only the standard library is allowed)"; bad=1 ;;
    esac
  done < <(go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' "$pkg")
done

heavy='^(k8s\.io/apiserver|github\.com/google/cel-go|google\.golang\.org/grpc|go\.opentelemetry\.io)(/|$)'
cmd=./cmd/kube-vrrp
# Name each package of the binary that imports a heavy one directly: that is where to cut.
links=$(go list -deps -f '{{if not .Standard}}{{.ImportPath}} {{join .Imports " "}}{{end}}' "$cmd" |
  while read -r importer imports; do
    if [[ $importer =~ $heavy ]]; then continue; fi
    for dep in $imports; do
      if [[ $dep =~ $heavy ]]; then echo "  $importer imports $dep"; fi
    done
  done)
if [ -n "$links" ]; then
  echo "dependency rule: $cmd links k8s.io/apiserver, cel-go, gRPC or OpenTelemetry; the agent's binary size is"
  echo "its RSS, keep them out (docs/design.md §7.9):"
  echo "$links"
  bad=1
fi
exit $bad
