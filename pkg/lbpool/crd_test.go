package lbpool

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// The generated CRDs (make generate).
const (
	poolCRD = "../../config/crd/bases/kubevrrp.io_virtualippools.yaml"
	vipCRD  = "../../config/crd/bases/kubevrrp.io_virtualips.yaml"
)

func schema(t *testing.T, file string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Schema == nil {
		t.Fatalf("%s: want one version with a schema", file)
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

// TestTemplateIsVirtualIPSpec: the pool's template has the schema of a VirtualIP's spec, field
// for field, rule for rule, without vrid and addresses and the rules on addresses (the pool's
// own rules stand for those): one set of rules, whichever way a VirtualIP is written. Only the
// words of the struct's rules and the descriptions may differ.
func TestTemplateIsVirtualIPSpec(t *testing.T) {
	tmpl := schema(t, poolCRD).Properties["spec"].Properties["template"]
	spec := schema(t, vipCRD).Properties["spec"]

	delete(spec.Properties, "vrid")
	delete(spec.Properties, "addresses")
	spec.Required = slices.DeleteFunc(spec.Required, func(s string) bool { return s == "vrid" || s == "addresses" })
	var kept []apiextensionsv1.ValidationRule
	dropped := 0
	for _, r := range spec.XValidations {
		if strings.Contains(r.Rule, "self.addresses") {
			dropped++
			continue
		}
		kept = append(kept, r)
	}
	if dropped != 3 {
		t.Errorf("dropped %d rules of VirtualIPSpec on its addresses, want 3 (IPv6 needs v3, the peers' family, no virtual peer): "+
			"a new rule on addresses needs a rule of the pool (and a case here)", dropped)
	}
	rulesOf := func(rs []apiextensionsv1.ValidationRule) []apiextensionsv1.ValidationRule {
		out := slices.Clone(rs)
		for i := range out {
			out[i].Message, out[i].MessageExpression = "", ""
		}
		return out
	}
	if diff := cmp.Diff(rulesOf(kept), rulesOf(tmpl.XValidations)); diff != "" {
		t.Errorf("the template's rules differ from VirtualIPSpec's (-VirtualIPSpec +template):\n%s", diff)
	}
	if len(spec.Required) == 0 {
		spec.Required = nil
	}
	spec.XValidations, tmpl.XValidations = nil, nil
	spec.Description, tmpl.Description = "", ""
	if diff := cmp.Diff(spec, tmpl); diff != "" {
		t.Errorf("the template's schema differs from VirtualIPSpec's (-VirtualIPSpec +template):\n%s", diff)
	}
}

// TestPoolCRDBounds: every maxLength and maxItems of the pool's CRD outside the template (the
// VirtualIP's, checked by pkg/desired through TestTemplateIsVirtualIPSpec) is its constant.
func TestPoolCRDBounds(t *testing.T) {
	root := schema(t, poolCRD)
	maxLength := map[string]int{
		"spec.ipv4.addresses[]": v1alpha1.MaxPoolEntryLength4,
		"spec.ipv6.addresses[]": v1alpha1.MaxPoolEntryLength6,
		"spec.namespaces[]":     63,
	}
	maxItems := map[string]int{
		"spec.ipv4.addresses": v1alpha1.MaxPoolEntries,
		"spec.ipv6.addresses": v1alpha1.MaxPoolEntries,
		"spec.namespaces":     v1alpha1.MaxPoolNamespaces,
		"status.conditions":   v1alpha1.MaxConditions,
	}
	var walk func(s *apiextensionsv1.JSONSchemaProps, path string)
	walk = func(s *apiextensionsv1.JSONSchemaProps, path string) {
		if path == "spec.template" || strings.HasPrefix(path, "status.conditions[]") || strings.HasPrefix(path, "metadata") {
			return
		}
		for _, b := range []struct {
			kind string
			got  *int64
			want map[string]int
		}{{"maxLength", s.MaxLength, maxLength}, {"maxItems", s.MaxItems, maxItems}} {
			want, ok := b.want[path]
			switch {
			case b.got == nil && ok:
				t.Errorf("%s: no %s, the constant says %d", path, b.kind, want)
			case b.got != nil && !ok:
				t.Errorf("%s: %s %d has no constant: give it one in api/v1alpha1/limits.go and a row here", path, b.kind, *b.got)
			case b.got != nil && *b.got != int64(want):
				t.Errorf("%s: %s %d, the constant %d", path, b.kind, *b.got, want)
			}
			delete(b.want, path)
		}
		for name, c := range s.Properties {
			p := name
			if path != "" {
				p = path + "." + name
			}
			walk(&c, p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(s.Items.Schema, path+"[]")
		}
	}
	walk(root, "")
	for p := range maxLength {
		t.Errorf("%s: not in the CRD", p)
	}
	for p := range maxItems {
		t.Errorf("%s: not in the CRD", p)
	}
	// The VRIDs' range and the prefix lengths.
	for _, f := range []struct {
		fam  string
		bits int64
	}{{"ipv4", 32}, {"ipv6", 128}} {
		pl := root.Properties["spec"].Properties[f.fam].Properties["prefixLength"]
		if pl.Minimum == nil || *pl.Minimum != 1 || pl.Maximum == nil || int64(*pl.Maximum) != f.bits {
			t.Errorf("%s.prefixLength: minimum %v, maximum %v; want 1..%d", f.fam, pl.Minimum, pl.Maximum, f.bits)
		}
		for _, v := range []string{"first", "last"} {
			s := root.Properties["spec"].Properties[f.fam].Properties["vrids"].Properties[v]
			if !slices.ContainsFunc(s.XValidations, func(r apiextensionsv1.ValidationRule) bool { return r.Rule == "self >= 1 && self <= 255" }) {
				t.Errorf("%s.vrids.%s: no rule 1..255", f.fam, v)
			}
		}
	}
}
