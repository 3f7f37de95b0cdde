package envtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// TestSamples: `kubectl apply -f config/samples/` works, and the agent accepts every sample.
func TestSamples(t *testing.T) {
	ctx := requireAPIServer(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		for i, doc := range documents(t, f) {
			t.Run(fmt.Sprintf("%s#%d", filepath.Base(f), i), func(t *testing.T) {
				var vip v1alpha1.VirtualIP
				if err := yaml.UnmarshalStrict(doc, &vip); err != nil {
					t.Fatalf("the sample does not decode strictly into a VirtualIP: %v", err)
				}
				if errs := desired.Validate(&vip); len(errs) > 0 {
					t.Errorf("desired.Validate rejects the sample: %v", errs.ToAggregate())
				}
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal(doc, &u.Object); err != nil {
					t.Fatal(err)
				}
				if err := k8s.Create(ctx, u); err != nil {
					t.Fatalf("the API server rejects the sample: %v", err)
				}
				t.Cleanup(func() { _ = k8s.Delete(ctx, u) })
			})
		}
	}
}

// documents splits a YAML stream into its non-empty documents.
func documents(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("VirtualIP"))
	return u
}

// TestPrinterColumns: `kubectl get vip` prints VRID, ADDRESSES, MASTER, READY, SERVICE (of a
// VirtualIP allocated to a Service of type LoadBalancer; none here), AGE. kubectl asks the API
// server for a Table and prints its columns upper-cased.
func TestPrinterColumns(t *testing.T) {
	ctx := requireAPIServer(t)
	vip := validVIP("printer")
	vip.Spec.Addresses = []string{"192.0.2.100/24", "192.0.2.101/24"}
	if err := k8s.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, vip) })

	vip.Status.Master = "lb1"
	meta.SetStatusCondition(&vip.Status.Conditions, metav1.Condition{
		Type: "Ready", Status: metav1.ConditionTrue, Reason: "OneMaster", Message: "lb1 is the only MASTER",
		ObservedGeneration: vip.Generation,
	})
	if err := k8s.Status().Update(ctx, vip); err != nil {
		t.Fatalf("status update: %v", err)
	}

	names, cells := printerRow(t, "printer")
	got := map[string]string{}
	for i, n := range names[:6] {
		got[n] = fmt.Sprint(cells[i])
	}
	want := map[string]string{
		"NAME": "printer", "VRID": "51", "ADDRESSES": `["192.0.2.100/24","192.0.2.101/24"]`,
		"MASTER": "lb1", "READY": "True", "SERVICE": "<nil>",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cells (-want +got):\n%s", diff)
	}
	if age := fmt.Sprint(cells[6]); age == "" || age == "<nil>" {
		t.Errorf("AGE is empty")
	}
}

// printerRow returns the columns of `kubectl get vip`, upper-cased, and the cells of the
// VirtualIP name: the API server's Table, which kubectl asks for and prints.
func printerRow(t *testing.T, name string) (names []string, cells []any) {
	t.Helper()
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSuffix(cfg.Host, "/") + "/apis/kubevrrp.io/v1alpha1/virtualips/" + name
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	var table metav1.Table
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&table); err != nil {
		t.Fatalf("decode the Table: %v\n%s", err, body)
	}
	if table.Kind != "Table" {
		t.Fatalf("got a %q, not a Table:\n%s", table.Kind, body)
	}
	for _, c := range table.ColumnDefinitions {
		names = append(names, strings.ToUpper(c.Name))
	}
	if diff := cmp.Diff([]string{"NAME", "VRID", "ADDRESSES", "MASTER", "READY", "SERVICE", "AGE"}, names); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("want one row, got %d", len(table.Rows))
	}
	cells = table.Rows[0].Cells
	if len(cells) != len(names) {
		t.Fatalf("want %d cells, got %v", len(names), cells)
	}
	return names, cells
}
