package v1alpha1_test

import (
	"encoding/json"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

var durationRE = regexp.MustCompile(v1alpha1.DurationPattern)

// The CRD's syntax rule and the agent's time.ParseDuration (through Duration.UnmarshalJSON)
// must accept the same strings: a duration the API server accepts and the agent cannot read
// would stop the agent at the object, and the reverse would be refused for nothing.
func TestDurationPatternIsParseDuration(t *testing.T) {
	for _, s := range durationCorpus {
		checkDurationPattern(t, s)
	}
}

func FuzzDurationPattern(f *testing.F) {
	for _, s := range durationCorpus {
		f.Add(s)
	}
	f.Fuzz(checkDurationPattern)
}

var durationCorpus = []string{
	"0", "+0", "-0", "0s", "1ns", "1us", "1µs", "1μs", "1ms", "1s", "1m", "1h", "1h2m3s4ms5us6ns",
	"1.5s", ".5s", "1.s", "-1s", "+1s", "1m30s", "100ms", "40.95s", "0.000000001s", "00001s",
	"", "1", "100", "1 s", " 1s", "1s ", "fast", "1sec", "ms", "s", ".s", "1..5s", "1.5.s",
	"--1s", "+-1s", "1S", "1H", "1d", "1w", "1e3s", "0x10s", "1_000s", "１s", "1s\n", "\t1s",
	"1µ", "1u", "1n", "1ms1", "1h-1m",
	"2562047h", "9999999999h", "9223372036854775807ns", "9223372036854775808ns", "2562047h47m16.854775807s",
}

func checkDurationPattern(t *testing.T, s string) {
	matched := durationRE.MatchString(s)
	_, err := time.ParseDuration(s)
	switch {
	case matched && err != nil && overflows(s):
		// The pattern cannot count: a number beyond 290 years matches but does not parse.
		// The API server still refuses it (the rule's duration() fails), with a plainer message.
	case matched != (err == nil):
		t.Errorf("%q: DurationPattern matches: %v; time.ParseDuration: %v", s, matched, err)
	}
}

// overflows reports whether s, which matches DurationPattern, is too long a span for a
// time.Duration.
func overflows(s string) bool {
	units := map[string]int64{"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
	sum := new(big.Rat)
	for _, m := range regexp.MustCompile(`([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)`).FindAllStringSubmatch(s, -1) {
		n, ok := new(big.Rat).SetString(strings.TrimSuffix("0"+m[1], ".")) // "1." and ".5" too
		if !ok {
			return false
		}
		sum.Add(sum, n.Mul(n, new(big.Rat).SetInt64(units[m[2]])))
	}
	return sum.Cmp(new(big.Rat).SetInt64(math.MaxInt64)) > 0
}

// Duration reads and writes JSON and unstructured content as metav1.Duration does: a string.
func TestDurationEncoding(t *testing.T) {
	spec := v1alpha1.VirtualIPSpec{
		VRID:                  7,
		Addresses:             []string{"192.0.2.7"},
		AdvertisementInterval: &v1alpha1.Duration{Duration: 90 * time.Second},
		PreemptDelay:          &v1alpha1.Duration{},
		Probes: []v1alpha1.ProbeSpec{{
			Name: "ok", File: &v1alpha1.FileProbe{Path: "/run/ok"},
			Interval: &v1alpha1.Duration{Duration: 1500 * time.Millisecond}, Timeout: &v1alpha1.Duration{Duration: time.Microsecond},
		}},
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"advertisementInterval":"1m30s"`, `"preemptDelay":"0s"`, `"interval":"1.5s"`, `"timeout":"1µs"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	var back v1alpha1.VirtualIPSpec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(spec, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"advertisementInterval":"fast"}`), &back); err == nil {
		t.Error(`"fast" unmarshaled`)
	}

	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := u["advertisementInterval"]; got != "1m30s" {
		t.Errorf("unstructured advertisementInterval = %#v, want \"1m30s\"", got)
	}
	var fromU v1alpha1.VirtualIPSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, &fromU); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(spec, fromU); diff != "" {
		t.Errorf("unstructured round trip (-want +got):\n%s", diff)
	}
}
