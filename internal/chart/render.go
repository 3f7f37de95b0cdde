// Package chart renders the Helm chart charts/kube-vrrp as helm template does, with Helm's own
// Go packages, for the chart's tests (test/chart, test/envtest). make demo and test/e2e install
// the chart with the helm binary instead (internal/cluster).
package chart

import (
	"context"
	"fmt"
	"sort"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// DefaultKubeVersion is the Kubernetes version Render assumes when Options.KubeVersion is
// empty: the minor of the client libraries and of the envtest kube-apiserver.
const DefaultKubeVersion = "v1.37.1"

// Options say what to render: helm template NAME CHART -n NAMESPACE -f VALUES
// --kube-version KUBEVERSION --include-crds.
type Options struct {
	ReleaseName, Namespace string
	// Values is a values file's content (YAML); empty for the chart's defaults.
	Values string
	// KubeVersion is the cluster's version (Capabilities.KubeVersion); DefaultKubeVersion if
	// empty.
	KubeVersion string
}

// Release is a rendered chart.
type Release struct {
	// Objects are what helm install would create, in Helm's order (CRDs first).
	Objects []*unstructured.Unstructured
	// Notes is templates/NOTES.txt as rendered.
	Notes string
}

// Render renders the chart in chartDir (charts/kube-vrrp) as helm template does, with Helm's
// own packages: client only, the values checked against values.schema.json, CRDs included.
func Render(ctx context.Context, chartDir string, o Options) (*Release, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", chartDir, err)
	}
	vals, err := chartutil.ReadValues([]byte(o.Values))
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	kv := o.KubeVersion
	if kv == "" {
		kv = DefaultKubeVersion
	}
	kver, err := chartutil.ParseKubeVersion(kv)
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %q: %w", kv, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.ClientOnly = true
	install.DryRun = true
	install.IncludeCRDs = true
	install.Replace = true
	install.ReleaseName = o.ReleaseName
	install.Namespace = o.Namespace
	install.KubeVersion = kver
	rel, err := install.RunWithContext(ctx, chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart %s as release %s in %s: %w", chartDir, o.ReleaseName, o.Namespace, err)
	}
	if len(rel.Hooks) > 0 {
		return nil, fmt.Errorf("render chart %s: %d hooks, which Render does not apply", chartDir, len(rel.Hooks))
	}
	r := &Release{Notes: rel.Info.Notes}
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		var obj map[string]any
		if err := yaml.UnmarshalStrict([]byte(manifests[k]), &obj); err != nil {
			return nil, fmt.Errorf("render chart %s: a document is not YAML: %w\n%s", chartDir, err, manifests[k])
		}
		if len(obj) == 0 {
			continue // a template that rendered to comments only
		}
		r.Objects = append(r.Objects, &unstructured.Unstructured{Object: obj})
	}
	return r, nil
}
