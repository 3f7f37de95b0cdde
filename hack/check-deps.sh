#!/usr/bin/env bash
# The engine must stay a plain library: pkg/vrrp and pkg/vrrp/packet import only the standard
# library (and each other). docs/design.md §2.2.
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
exit $bad
