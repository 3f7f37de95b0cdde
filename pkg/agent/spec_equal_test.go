package agent

import (
	"reflect"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// A changed executable of a process probe is a changed probe: Apply restarts the prober with it.
func TestSpecEqualExecutable(t *testing.T) {
	a := probe.Spec{Name: "p", Kind: probe.KindProcess, Process: "haproxy"}
	b := a
	b.Executable = "/usr/sbin/haproxy"
	if specEqual(a, b) {
		t.Error("specs differing in Executable compare equal")
	}
	if !specEqual(b, b) {
		t.Error("a spec differs from itself")
	}
}

// Every field of a probe.Spec, down to each HTTPS option, is part of the probe: a change of
// any one alone (such as a rotated CA file's new path) makes specEqual false, so that Apply
// restarts the prober with it rather than keep probing with the old settings.
func TestSpecEqualEveryField(t *testing.T) {
	var leaves func(v reflect.Value, path string, fn func(reflect.Value, string))
	leaves = func(v reflect.Value, path string, fn func(reflect.Value, string)) {
		if v.Kind() == reflect.Struct {
			for i := range v.NumField() {
				leaves(v.Field(i), path+"."+v.Type().Field(i).Name, fn)
			}
			return
		}
		fn(v, path)
	}
	var zero probe.Spec
	n := 0
	leaves(reflect.ValueOf(&zero).Elem(), "Spec", func(_ reflect.Value, path string) {
		n++
		var b probe.Spec
		var f reflect.Value
		leaves(reflect.ValueOf(&b).Elem(), "Spec", func(v reflect.Value, p string) {
			if p == path {
				f = v
			}
		})
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Slice:
			f.Set(reflect.Append(f, reflect.New(f.Type().Elem()).Elem()))
		default:
			t.Fatalf("%s: a field of kind %s: teach this test to set it", path, f.Kind())
		}
		if specEqual(zero, b) || specEqual(b, zero) {
			t.Errorf("specs differing in %s alone compare equal", path)
		}
		if !specEqual(b, b) {
			t.Errorf("a spec with %s set differs from itself", path)
		}
	})
	if n < 20 {
		t.Errorf("walked %d fields of probe.Spec, want every one", n)
	}
}
