package chart

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// policyExpressions returns every CEL expression of the policy, its messages' included.
func policyExpressions(vap *admissionregistrationv1.ValidatingAdmissionPolicy) []string {
	var exprs []string
	for _, c := range vap.Spec.MatchConditions {
		exprs = append(exprs, c.Expression)
	}
	for _, v := range vap.Spec.Variables {
		exprs = append(exprs, v.Expression)
	}
	for _, v := range vap.Spec.Validations {
		exprs = append(exprs, v.Expression, v.MessageExpression)
	}
	return exprs
}

// TestMemberPolicyKubeVersion: the member policy has one form for every Kubernetes version the
// chart installs on (docs/design.md §7.5): the same spec whatever --kube-version, and nothing
// in it that a 1.31 or 1.32 API server refuses in a new policy (CEL's two-variable
// comprehensions) or that grows with the cluster: each expression looks at the one member
// written (object), never at a list (no comprehension) nor at the old object.
func TestMemberPolicyKubeVersion(t *testing.T) {
	// A comprehension macro or function call on a list or map: all, exists, exists_one, map,
	// filter, and the two-variable ones (transformList, transformMap, transformMapEntry).
	loop := regexp.MustCompile(`\.\s*(all|exists|exists_one|map|filter|transformList|transformMap|transformMapEntry)\s*\(`)
	var first *admissionregistrationv1.ValidatingAdmissionPolicy
	for _, kv := range []string{"v1.31.0", "v1.32.9", "v1.33.0", "v1.33.1-eks-1a2b3c", kubeVersion} {
		t.Run(kv, func(t *testing.T) {
			r := mustRender(t, renderOptions{name: defaults.name, namespace: defaults.namespace, kubeVersion: kv})
			vap := typed[admissionregistrationv1.ValidatingAdmissionPolicy](t, r.find(t, "ValidatingAdmissionPolicy", "kube-vrrp-members"))
			for _, e := range policyExpressions(vap) {
				if m := loop.FindString(e); m != "" {
					t.Errorf("for Kubernetes %s an expression iterates (%s): %s", kv, m, e)
				}
				if regexp.MustCompile(`\boldObject\b`).MatchString(e) {
					t.Errorf("for Kubernetes %s an expression reads the old object: %s", kv, e)
				}
			}
			if first == nil {
				first = vap
				return
			}
			if diff := cmp.Diff(first.Spec, vap.Spec); diff != "" {
				t.Errorf("the policy for Kubernetes %s differs from the one for %s (-first +this):\n%s", kv, "v1.31.0", diff)
			}
		})
	}
}
