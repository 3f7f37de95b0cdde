package chart

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// TestStatusPolicyKubeVersion: the status policy is linear in the entries of status.nodes where
// the API server takes CEL's two-variable comprehensions in a new policy (Kubernetes 1.33 and
// later: 1.32 takes only what 1.31 has), and keeps the quadratic form for 1.31 and 1.32, which
// would refuse the linear one and with it the release.
func TestStatusPolicyKubeVersion(t *testing.T) {
	twoVar := []string{"transformMapEntry(", "transformList(", "transformMap("}
	for _, tc := range []struct {
		kubeVersion string
		linear      bool
	}{{"v1.31.0", false}, {"v1.32.9", false}, {"v1.33.0", true}, {"v1.33.1-eks-1a2b3c", true}, {kubeVersion, true}} {
		t.Run(tc.kubeVersion, func(t *testing.T) {
			r := mustRender(t, renderOptions{name: defaults.name, namespace: defaults.namespace, kubeVersion: tc.kubeVersion})
			vap := typed[admissionregistrationv1.ValidatingAdmissionPolicy](t, r.find(t, "ValidatingAdmissionPolicy", "kube-vrrp-status-nodes"))
			var exprs []string
			vars := map[string]string{}
			for _, v := range vap.Spec.Variables {
				vars[v.Name] = v.Expression
				exprs = append(exprs, v.Expression)
			}
			for _, v := range vap.Spec.Validations {
				exprs = append(exprs, v.Expression, v.MessageExpression)
			}
			var used []string
			for _, e := range exprs {
				for _, m := range twoVar {
					if strings.Contains(e, m) {
						used = append(used, m)
					}
				}
			}
			if !tc.linear && len(used) != 0 {
				t.Errorf("for Kubernetes %s the policy uses %v, which its API server refuses", tc.kubeVersion, used)
			}
			// The linear form looks each entry up in a map of the old ones; the quadratic one
			// searches the old list for each (exists inside filter).
			_, byName := vars["oldByName"]
			quadratic := strings.Contains(vars["othersWritten"], "variables.oldNodes.exists(")
			if byName == quadratic || byName != tc.linear {
				t.Errorf("for Kubernetes %s: variables %v, want the linear form %v", tc.kubeVersion, vars, tc.linear)
			}
		})
	}
}
