package loadbalancer

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// A VirtualIP the API server refuses is reported to the Service's namespace by the fields it
// names, never by the API server's words, which can quote the pool template's values (here a
// probe's argument carrying a credential).
func TestInvalidVIPShowsFieldsNotValues(t *testing.T) {
	const secret = "--token=s3cr3t-lb"
	err := apierrors.NewInvalid(schema.GroupKind{Group: "kubevrrp.io", Kind: "VirtualIP"}, "lb-198-18-0-100", field.ErrorList{
		field.Invalid(field.NewPath("spec", "probes").Index(0).Child("exec", "command"), "/usr/bin/check "+secret, "give the program's absolute path"),
		field.Invalid(field.NewPath("spec", "unicast", "peers"), "198.18.0.9", "wrong family"),
	})
	r := &ServiceReconciler{}
	ref := r.invalidVIP(err, "public")
	if ref == nil {
		t.Fatal("no refusal for an Invalid error")
	}
	if ref.reason != ReasonInvalidVirtualIP {
		t.Errorf("reason %q", ref.reason)
	}
	if strings.Contains(ref.message, "s3cr3t") || strings.Contains(ref.message, "absolute path") {
		t.Errorf("the Service's message quotes the API server: %q", ref.message)
	}
	for _, f := range []string{"spec.probes[0].exec.command", "spec.unicast.peers", "pool public"} {
		if !strings.Contains(ref.message, f) {
			t.Errorf("the message %q does not name %s", ref.message, f)
		}
	}
	if r.invalidVIP(apierrors.NewConflict(schema.GroupResource{}, "x", nil), "public") != nil {
		t.Error("a refusal for a conflict")
	}
}
