package chart

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// warnings records the API server's warnings (deprecated fields, ignored settings, ...).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// TestServerSideDryRun: the real API server accepts every object helm install would create,
// with the default and the non-default values, and every object of config/default: a
// server-side apply (kubectl apply --server-side) and a create with strict field validation
// (helm install), both dry runs, without a warning. The release's namespace is created first.
func TestServerSideDryRun(t *testing.T) {
	requireAPIServer(t)
	ctx := t.Context()
	w := &warnings{}
	c := rest.CopyConfig(cfg)
	c.WarningHandlerWithContext = w
	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver %s", sv.GitVersion)

	sets := []struct {
		name, namespace string
		objects         func(t *testing.T) []*unstructured.Unstructured
	}{
		{"helm defaults", defaults.namespace, func(t *testing.T) []*unstructured.Unstructured {
			o := defaults
			o.kubeVersion = sv.GitVersion // helm install renders for the server it talks to
			return mustRender(t, o).objects
		}},
		{"helm non-default values", nonDefault.namespace, func(t *testing.T) []*unstructured.Unstructured {
			o := nonDefault
			o.kubeVersion = sv.GitVersion
			return mustRender(t, o).objects
		}},
		{"kustomize config/default", "kube-vrrp", func(t *testing.T) []*unstructured.Unstructured {
			return kustomizeBuild(t, filepath.Join(repoRoot, "config", "default"))
		}},
	}
	for _, set := range sets {
		t.Run(set.name, func(t *testing.T) {
			objs := set.objects(t)
			ensureNamespace(t, cl, set.namespace)
			for _, o := range objs {
				if o.GetAPIVersion() == "monitoring.coreos.com/v1" {
					installServiceMonitorStub(t, cl)
				}
			}
			w.take()
			for _, o := range objs {
				id := o.GetKind() + "/" + o.GetName()
				if err := cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
					client.DryRunAll, client.ForceOwnership, client.FieldOwner("kube-vrrp-chart-test")); err != nil {
					t.Errorf("server-side apply (dry run) of %s: %v", id, err)
				}
				if o.GetKind() == "Namespace" {
					continue // created above: a create can only say AlreadyExists
				}
				if err := cl.Create(ctx, o.DeepCopy(), client.DryRunAll, client.FieldValidation("Strict")); err != nil {
					t.Errorf("create (dry run, strict) of %s: %v", id, err)
				}
				for _, warning := range w.take() {
					t.Errorf("API server warning for %s: %s", id, warning)
				}
			}
			t.Logf("%d objects accepted: %s", len(objs), release{objects: objs}.summary())
		})
	}

	// The same calls refuse a misspelt field, so the acceptance above means something.
	t.Run("control", func(t *testing.T) {
		ensureNamespace(t, cl, defaults.namespace)
		o := defaults
		o.kubeVersion = sv.GitVersion
		ds := mustRender(t, o).find(t, "DaemonSet", "kube-vrrp").DeepCopy()
		if err := unstructured.SetNestedField(ds.Object, true, "spec", "template", "spec", "hostNetwrk"); err != nil {
			t.Fatal(err)
		}
		err := cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(ds.DeepCopy()),
			client.DryRunAll, client.ForceOwnership, client.FieldOwner("kube-vrrp-chart-test"))
		if err == nil || !strings.Contains(err.Error(), "hostNetwrk") {
			t.Errorf("server-side apply of a misspelt field: err = %v, want one naming it", err)
		}
		err = cl.Create(ctx, ds.DeepCopy(), client.DryRunAll, client.FieldValidation("Strict"))
		if err == nil || !strings.Contains(err.Error(), "hostNetwrk") {
			t.Errorf("strict create of a misspelt field: err = %v, want one naming it", err)
		}
		w.take()
	})
}

func ensureNamespace(t *testing.T, cl client.Client, name string) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	}}
	if err := cl.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(ns),
		client.FieldOwner("kube-vrrp-chart-test-setup")); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

var serviceMonitorOnce sync.Once

// installServiceMonitorStub installs a CRD for monitoring.coreos.com/v1 ServiceMonitor whose
// spec is free-form: the Prometheus Operator's CRD is not available here, so the API server
// checks the ServiceMonitor's metadata and kind only; TestNonDefault checks that it selects the
// metrics Service and its port.
func installServiceMonitorStub(t *testing.T, cl client.Client) {
	t.Helper()
	serviceMonitorOnce.Do(func() {
		preserve := true
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "monitoring.coreos.com",
				Names: apiextensionsv1.CustomResourceDefinitionNames{
					Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList",
				},
				Scope: apiextensionsv1.NamespaceScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object",
						Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"spec": {Type: "object", XPreserveUnknownFields: &preserve},
						},
					}},
				}},
			},
		}
		if err := cl.Create(t.Context(), crd); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("install the ServiceMonitor stub CRD: %v", err)
		}
		err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			if err := cl.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
				return false, err
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatal(fmt.Errorf("ServiceMonitor stub CRD not established: %w", err))
		}
	})
}
