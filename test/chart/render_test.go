package chart

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/internal/chart"
)

const repoRoot = "../.."

var chartDir = filepath.Join(repoRoot, "charts", "kube-vrrp")

const kubeVersion = chart.DefaultKubeVersion

// scheme knows every built-in kind the chart renders, and CRDs: strict conversion to these
// types catches a misspelt or misplaced field in a template.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// release is a rendered chart: what helm template --include-crds prints, as objects in order.
type release struct {
	objects []*unstructured.Unstructured
	notes   string
}

// renderOptions name the release and give its values (YAML, as in a values file).
type renderOptions struct {
	name, namespace string
	values          string
	kubeVersion     string // default kubeVersion
}

// render renders the chart for a test.
func render(t testing.TB, o renderOptions) (release, error) {
	t.Helper()
	r, err := chart.Render(t.Context(), chartDir, chart.Options{ReleaseName: o.name, Namespace: o.namespace, Values: o.values, KubeVersion: o.kubeVersion})
	if err != nil {
		return release{}, err
	}
	return release{objects: r.Objects, notes: r.Notes}, nil
}

func mustRender(t testing.TB, o renderOptions) release {
	t.Helper()
	r, err := render(t, o)
	if err != nil {
		t.Fatalf("render %s in %s: %v", o.name, o.namespace, err)
	}
	return r
}

// find returns the rendered object of that kind and name; the test fails if there is none.
func (r release) find(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range r.objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered; got %s", kind, name, r.summary())
	return nil
}

// kinds lists kind/name of every object, in order.
func (r release) summary() string {
	var s []string
	for _, o := range r.objects {
		s = append(s, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(s, ", ")
}

// typed converts a rendered object to its Go type, failing on any field the type lacks.
func typed[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// strictTyped converts every rendered object of a kind the scheme knows, failing on unknown
// fields; objects of other kinds (ServiceMonitor) are left to the API server.
func strictTyped(t testing.TB, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if !scheme.Recognizes(gvk) {
			continue
		}
		obj, err := scheme.New(gvk)
		if err != nil {
			t.Fatal(err)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
			t.Errorf("%s %s: %v", gvk.Kind, u.GetName(), err)
		}
	}
}

func (r release) daemonSet(t testing.TB, name string) *appsv1.DaemonSet {
	t.Helper()
	return typed[appsv1.DaemonSet](t, r.find(t, "DaemonSet", name))
}

// yamlDocuments splits a multi-document YAML file into its non-empty documents.
func yamlDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// readObjects reads every document of a YAML file as an object.
func readObjects(t testing.TB, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for i, d := range yamlDocuments(data) {
		var obj map[string]any
		if err := yaml.UnmarshalStrict(d, &obj); err != nil {
			t.Fatalf("%s, document %d: %v", path, i, err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: obj})
	}
	return objs
}

func findObject(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q among %d objects", kind, name, len(objs))
	return nil
}

func findKind(t testing.TB, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(found))
	}
	return found[0]
}

func quote(s []string) string { return fmt.Sprintf("%q", s) }
