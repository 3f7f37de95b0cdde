#!/usr/bin/env bash
# k8s-binaries.sh: build Kubernetes components from k8s.io/kubernetes (the tools module
# hack/tools) into bin/k8s/<kubernetes version>/ and print that directory.
#
#   kube-apiserver            envtest (hack/envtest.sh) and the lab's control plane
#   kube-controller-manager   the lab's real cluster (internal/cluster)
#   kube-scheduler
#   kubelet                   one per lab node, beside a containerd of its own
#   kubectl                   the clients of the real cluster (make demo, test/e2e), as users
#   helm                      run them (helm from helm.sh/helm/v3/cmd/helm, not k8s.io/kubernetes)
#
# A present binary is reused. The kubernetes version comes from hack/tools/go.mod and must have
# the minor of k8s.io/apimachinery in the main go.mod: the components the project is tested
# against are those its client libraries are written for. (The patch may differ: the module
# proxy does not serve every k8s.io/kubernetes zip, e.g. v1.37.2 answers 403.)
#
# Times on 2 cores: with a cold Go build cache kube-apiserver ~8 min and kubelet ~4 min; with
# the cache warm from kube-apiserver, kube-controller-manager and kube-scheduler take about
# a minute each (see the measured times the script prints).
#
# Usage: hack/k8s-binaries.sh [-q] [component...]
#        without components: kubelet kube-controller-manager kube-scheduler kubectl helm
#        -q: print nothing (but the build messages, on stderr)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$root/hack/tools
GO=${GO:-go}

quiet=
if [ "${1:-}" = "-q" ]; then
  quiet=1
  shift
fi
components=("$@")
if [ ${#components[@]} -eq 0 ]; then
  components=(kubelet kube-controller-manager kube-scheduler kubectl helm)
fi
for c in "${components[@]}"; do
  case "$c" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kubectl | helm) ;;
    *) echo "k8s-binaries: unknown component $c" >&2; exit 2 ;;
  esac
done

version=$(cd "$tools" && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
apimachinery=$(cd "$root" && "$GO" list -m -f '{{.Version}}' k8s.io/apimachinery)
minor() { echo "$1" | cut -d. -f2; }
if [ "$(minor "$version")" != "$(minor "$apimachinery")" ]; then
  echo "k8s-binaries: hack/tools builds k8s.io/kubernetes $version but the main module uses k8s.io/apimachinery $apimachinery;" \
    "update hack/tools/go.mod (kubernetes v1.$(minor "$apimachinery").x and every staging replace to v0.$(minor "$apimachinery").x)" >&2
  exit 1
fi

dir=$root/bin/k8s/$version
mkdir -p "$dir"

pkg=k8s.io/component-base/version
ldflags="-s -w \
  -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(minor "$version") \
  -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
helm_version=$(cd "$tools" && "$GO" list -m -f '{{.Version}}' helm.sh/helm/v3)
for c in "${components[@]}"; do
  if [ -x "$dir/$c" ]; then
    # helm's version is its own module's, not Kubernetes': rebuild when hack/tools moves it.
    if [ "$c" != helm ] || [ "$("$dir/helm" version --template '{{.Version}}' 2>/dev/null)" = "$helm_version" ]; then
      continue
    fi
  fi
  echo "k8s-binaries: building $c into $dir (minutes, once)" >&2
  start=$(date +%s)
  if [ "$c" = helm ]; then
    (cd "$tools" && CGO_ENABLED=0 "$GO" build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
      -o "$dir/$c.tmp" helm.sh/helm/v3/cmd/helm)
  else
    (cd "$tools" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" \
      -o "$dir/$c.tmp" "k8s.io/kubernetes/cmd/$c")
  fi
  mv "$dir/$c.tmp" "$dir/$c"
  echo "k8s-binaries: built $c in $(($(date +%s) - start))s" >&2
done

if [ -z "$quiet" ]; then
  echo "$dir"
fi
