// Package chart renders and tests the Helm chart charts/kube-vrrp and the kustomize manifests config/
// with Helm's own Go packages (helm.sh/helm/v3: lint, and the rendering of helm template):
// lint clean; rendered with default and non-default values; the DaemonSet's least privilege
// (non-root, capabilities exactly NET_ADMIN and NET_RAW, ALL dropped, read-only root
// filesystem, no privilege escalation); the chart's CRD and RBAC rules identical to the
// generated config/crd/bases and config/rbac/role.yaml; values.schema.json refusing bad
// values; config/default's DaemonSet the same pod as the chart's; and, against a real
// kube-apiserver and etcd (envtest, the assets of make envtest-assets), a server-side dry run
// of every rendered object.
//
// The chart is rendered by internal/chart (test/envtest uses it too); internal/filecaps checks
// the kernel rules the image relies on for a non-root agent's capabilities, and test/e2e
// installs the chart with helm on a real cluster and checks the pods' credentials.
package chart
