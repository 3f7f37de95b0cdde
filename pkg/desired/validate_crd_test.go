package desired

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	probepkg "github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// crdFile and memberCRDFile are the generated CRDs (make generate) of VirtualIP and
// VirtualIPMember; the chart's copies equal them (test/chart).
const (
	crdFile       = "../../config/crd/bases/kubevrrp.io_virtualips.yaml"
	memberCRDFile = "../../config/crd/bases/kubevrrp.io_virtualipmembers.yaml"
)

// TestCRDBounds checks every bound of the generated CRDs (VirtualIP, and VirtualIPMember, a
// node's report) against the Go constant that is its one home (pkg/vrrp, pkg/probe,
// api/v1alpha1), which Validate enforces or the agent truncates to: the markers repeat the
// numbers as text, and this test is what keeps the copies equal. A new maxLength or maxItems
// without a row here fails, and so does a row whose bound is gone. test/envtest checks the
// same objects against a real API server and Validate.
func TestCRDBounds(t *testing.T) {
	root := loadSchema(t, crdFile)

	// Every maxLength and maxItems of the schema, by path ("[]" is a list's items). The
	// subtree of status.conditions[] is metav1.Condition's own.
	maxLength := map[string]int{
		"spec.addresses[]":                       v1alpha1.MaxAddressLength,
		"spec.advertisementInterval":             v1alpha1.MaxDurationLength,
		"spec.authentication.secretRef.key":      v1alpha1.MaxNameLength,
		"spec.authentication.secretRef.name":     v1alpha1.MaxNameLength,
		"spec.interface":                         vrrp.MaxInterfaceName,
		"spec.nodes[].interface":                 vrrp.MaxInterfaceName,
		"spec.nodes[].name":                      v1alpha1.MaxNameLength,
		"spec.preemptDelay":                      v1alpha1.MaxDurationLength,
		"spec.probes[].exec.command[]":           v1alpha1.MaxExecArgLength,
		"spec.announcements.repeatDelay":         v1alpha1.MaxDurationLength,
		"spec.announcements.refreshInterval":     v1alpha1.MaxDurationLength,
		"spec.notify.timeout":                    v1alpha1.MaxDurationLength,
		"spec.notify.master[]":                   v1alpha1.MaxExecArgLength,
		"spec.notify.backup[]":                   v1alpha1.MaxExecArgLength,
		"spec.notify.fault[]":                    v1alpha1.MaxExecArgLength,
		"spec.notify.stop[]":                     v1alpha1.MaxExecArgLength,
		"spec.notify.all[]":                      v1alpha1.MaxExecArgLength,
		"spec.probes[].file.path":                v1alpha1.MaxFilePathLength,
		"spec.probes[].http.url":                 v1alpha1.MaxURLLength,
		"spec.probes[].http.tls.caFile":          v1alpha1.MaxTLSFileLength,
		"spec.probes[].http.tls.certFile":        v1alpha1.MaxTLSFileLength,
		"spec.probes[].http.tls.keyFile":         v1alpha1.MaxTLSFileLength,
		"spec.probes[].http.tls.bearerTokenFile": v1alpha1.MaxTLSFileLength,
		"spec.probes[].http.tls.serverName":      v1alpha1.MaxServerNameLength,
		"spec.probes[].interface.name":           vrrp.MaxInterfaceName,
		"spec.probes[].interval":                 v1alpha1.MaxDurationLength,
		"spec.probes[].name":                     v1alpha1.MaxProbeName,
		"spec.probes[].process.executable":       v1alpha1.MaxExecutableLength,
		"spec.probes[].process.name":             probepkg.MaxProcessName,
		"spec.probes[].tcp.address":              v1alpha1.MaxHostPortLength,
		"spec.probes[].timeout":                  v1alpha1.MaxDurationLength,
		"spec.unicast.peers[]":                   v1alpha1.MaxIPLength,

		"status.master": v1alpha1.MaxNameLength,
	}
	maxItems := map[string]int{
		"spec.addresses":             v1alpha1.MaxAddresses,
		"spec.nodes":                 v1alpha1.MaxNodes,
		"spec.probes":                v1alpha1.MaxProbes,
		"spec.probes[].exec.command": v1alpha1.MaxExecArgs,
		"spec.notify.master":         v1alpha1.MaxExecArgs,
		"spec.notify.backup":         v1alpha1.MaxExecArgs,
		"spec.notify.fault":          v1alpha1.MaxExecArgs,
		"spec.notify.stop":           v1alpha1.MaxExecArgs,
		"spec.notify.all":            v1alpha1.MaxExecArgs,
		"spec.unicast.peers":         v1alpha1.MaxPeers,
		"status.conditions":          v1alpha1.MaxConditions,
	}
	checkBounds(t, crdFile, root, maxLength, maxItems)

	// A node's report: its VirtualIPMember.
	checkBounds(t, memberCRDFile, loadSchema(t, memberCRDFile), map[string]int{
		"spec.node":                           v1alpha1.MaxNameLength,
		"spec.virtualIP":                      v1alpha1.MaxNameLength,
		"status.address":                      v1alpha1.MaxIPLength,
		"status.foreignRouters[].address":     v1alpha1.MaxIPLength,
		"status.foreignRouters[].addresses[]": v1alpha1.MaxIPLength,
		"status.interface":                    vrrp.MaxInterfaceName,
		"status.message":                      v1alpha1.MaxMessageLength,
		"status.probes[].message":             v1alpha1.MaxMessageLength,
		"status.probes[].name":                v1alpha1.MaxProbeName,
		"status.reason":                       v1alpha1.MaxReasonLength,
		"status.state":                        v1alpha1.MaxStateLength,
	}, map[string]int{
		"status.foreignRouters":             v1alpha1.MaxForeignRouters,
		"status.foreignRouters[].addresses": v1alpha1.MaxForeignAddresses,
		"status.probes":                     v1alpha1.MaxProbes,
	})

	// Numeric ranges in CEL rules: the rule and its message, from the constants.
	ranges := []struct{ path, rule, message string }{
		{"spec.vrid", fmt.Sprintf("self >= %d && self <= %d", vrrp.MinVRID, vrrp.MaxVRID), fmt.Sprintf("%d..%d", vrrp.MinVRID, vrrp.MaxVRID)},
		{"spec.priority", fmt.Sprintf("self >= %d && self <= %d", vrrp.MinPriority, vrrp.OwnerPriority), fmt.Sprintf("%d..%d; %d is only for the owner", vrrp.MinPriority, vrrp.MaxBackupPriority, vrrp.OwnerPriority)},
		{"spec.priority", fmt.Sprintf("self != %d", vrrp.OwnerPriority), fmt.Sprintf("set %d..%d here, and %d only in the nodes[] override", vrrp.MinPriority, vrrp.MaxBackupPriority, vrrp.OwnerPriority)},
		{"spec.nodes[].priority", fmt.Sprintf("self >= %d && self <= %d", vrrp.MinPriority, vrrp.OwnerPriority), fmt.Sprintf("%d..%d; %d is only for the owner", vrrp.MinPriority, vrrp.MaxBackupPriority, vrrp.OwnerPriority)},
		{"spec.nodes", fmt.Sprintf("n.priority == %d", vrrp.OwnerPriority), fmt.Sprintf("several nodes have priority %d", vrrp.OwnerPriority)},
		{"spec.probes[].fall", fmt.Sprintf("self >= 1 && self <= %d", probepkg.MaxCount), fmt.Sprintf("1..%d", probepkg.MaxCount)},
		{"spec.probes[].rise", fmt.Sprintf("self >= 1 && self <= %d", probepkg.MaxCount), fmt.Sprintf("1..%d", probepkg.MaxCount)},
		{"spec.probes[].weight", fmt.Sprintf("self >= -%d && self <= %d", probepkg.MaxWeight, probepkg.MaxWeight), fmt.Sprintf("-%d..%d", probepkg.MaxWeight, probepkg.MaxWeight)},
	}
	for _, r := range ranges {
		if !slices.ContainsFunc(at(t, root, r.path).XValidations, func(v apiextensionsv1.ValidationRule) bool {
			return strings.Contains(v.Rule, r.rule) && strings.Contains(v.Message, r.message)
		}) {
			t.Errorf("%s: no rule with %q and a message with %q:\n%s", r.path, r.rule, r.message, rules(at(t, root, r.path)))
		}
	}

	// Duration ranges: the duration('...') literals of the rule and its step (% nanoseconds).
	durations := []struct {
		path, selector string // the rule at path whose text contains selector
		bounds         []time.Duration
		step           time.Duration
	}{
		{"spec", "self.version != 3", []time.Duration{vrrp.MinIntervalV3, vrrp.MaxIntervalV3}, vrrp.IntervalStepV3},
		{"spec", "self.version != 2", []time.Duration{vrrp.MinIntervalV2, vrrp.MaxIntervalV2}, vrrp.IntervalStepV2},
		{"spec.preemptDelay", "duration(self)", []time.Duration{0, v1alpha1.MaxPreemptDelay}, 0},
		{"spec.probes[].interval", "duration(self)", []time.Duration{probepkg.MinInterval, probepkg.MaxInterval}, 0},
		{"spec.probes[].timeout", "duration(self)", []time.Duration{probepkg.MinTimeout}, 0},
		{"spec.announcements.repeatDelay", "duration(self)", []time.Duration{0, v1alpha1.MaxAnnounceRepeatDelay}, 0},
		{"spec.announcements.refreshInterval", "duration(self)", []time.Duration{v1alpha1.MinAnnounceRefresh, v1alpha1.MaxAnnounceRefresh}, 0},
		{"spec.notify.timeout", "duration(self)", []time.Duration{v1alpha1.MinNotifyTimeout, v1alpha1.MaxNotifyTimeout}, 0},
	}
	for _, d := range durations {
		var found []string
		for _, v := range at(t, root, d.path).XValidations {
			if strings.Contains(v.Rule, d.selector) && strings.Contains(v.Rule, "duration(") {
				found = append(found, v.Rule)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: want one duration rule with %q, got %d:\n%s", d.path, d.selector, len(found), strings.Join(found, "\n"))
			continue
		}
		if got := durationLiterals(t, found[0]); !slices.Equal(got, d.bounds) {
			t.Errorf("%s: the rule's bounds are %v, the constants %v:\n%s", d.path, got, d.bounds, found[0])
		}
		var got time.Duration
		if m := regexp.MustCompile(`% (\d+) == 0`).FindStringSubmatch(found[0]); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			got = time.Duration(n)
		}
		if got != d.step {
			t.Errorf("%s: the rule's step is %v, the constant %v:\n%s", d.path, got, d.step, found[0])
		}
	}
}

// TestCRDDurationPattern: every duration field has the syntax rule of v1alpha1.Duration, and
// every copy of the pattern in the CRD (the guards of the rules that parse a duration) is
// v1alpha1.DurationPattern.
func TestCRDDurationPattern(t *testing.T) {
	root := loadSchema(t, crdFile)
	for _, p := range []string{"spec.advertisementInterval", "spec.preemptDelay", "spec.probes[].interval", "spec.probes[].timeout",
		"spec.announcements.repeatDelay", "spec.announcements.refreshInterval", "spec.notify.timeout"} {
		want := fmt.Sprintf("self.matches('%s')", v1alpha1.DurationPattern)
		if !slices.ContainsFunc(at(t, root, p).XValidations, func(v apiextensionsv1.ValidationRule) bool {
			return v.Rule == want && strings.HasPrefix(v.Message, "write a duration such as")
		}) {
			t.Errorf("%s: no syntax rule %s:\n%s", p, want, rules(at(t, root, p)))
		}
	}
	copies := 0
	matches := regexp.MustCompile(`matches\('([^']*)'\)`)
	walk(root, "", func(path string, s *apiextensionsv1.JSONSchemaProps) {
		for _, v := range s.XValidations {
			for _, m := range matches.FindAllStringSubmatch(v.Rule+" "+v.MessageExpression, -1) {
				if !strings.Contains(m[1], "(ns|") {
					continue // another pattern, e.g. an interface name's
				}
				copies++
				if m[1] != v1alpha1.DurationPattern {
					t.Errorf("%s: a rule matches durations with %q, not v1alpha1.DurationPattern %q:\n%s", path, m[1], v1alpha1.DurationPattern, v.Rule)
				}
			}
		}
	})
	// The syntax rule in each of the 7 fields (one marker, on Duration) and the guards of the
	// rules that parse a duration.
	if copies <= 7 {
		t.Errorf("the CRD has %d copies of the duration pattern, want the 7 syntax rules and the guards", copies)
	}
	t.Logf("%d copies of the duration pattern", copies)
}

// checkBounds checks that the maxLength and maxItems of the schema root (of file) are exactly
// those of the rows, by path ("[]" is a list's items). The subtree of status.conditions[] is
// metav1.Condition's own.
func checkBounds(t *testing.T, file string, root *apiextensionsv1.JSONSchemaProps, maxLength, maxItems map[string]int) {
	t.Helper()
	walk(root, "", func(path string, s *apiextensionsv1.JSONSchemaProps) {
		if strings.HasPrefix(path, "status.conditions[]") {
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
				t.Errorf("%s: %s: the CRD has no %s, the constant says %d: restore the marker or drop the row", file, path, b.kind, want)
			case b.got != nil && !ok:
				t.Errorf("%s: %s: %s %d has no constant: give it one (pkg/vrrp, pkg/probe or api/v1alpha1) and a row here", file, path, b.kind, *b.got)
			case b.got != nil && *b.got != int64(want):
				t.Errorf("%s: %s: the CRD's %s is %d, the constant %d", file, path, b.kind, *b.got, want)
			}
			delete(b.want, path)
		}
	})
	for p, n := range maxLength {
		t.Errorf("%s: %s: not in the CRD (maxLength %d)", file, p, n)
	}
	for p, n := range maxItems {
		t.Errorf("%s: %s: not in the CRD (maxItems %d)", file, p, n)
	}
}

func loadSchema(t *testing.T, file string) *apiextensionsv1.JSONSchemaProps {
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

// walk calls fn on s and every schema below it, with its path ("spec.probes[].name").
func walk(s *apiextensionsv1.JSONSchemaProps, path string, fn func(string, *apiextensionsv1.JSONSchemaProps)) {
	fn(path, s)
	for name, c := range s.Properties {
		p := name
		if path != "" {
			p = path + "." + name
		}
		walk(&c, p, fn)
	}
	if s.Items != nil && s.Items.Schema != nil {
		walk(s.Items.Schema, path+"[]", fn)
	}
}

func at(t *testing.T, root *apiextensionsv1.JSONSchemaProps, path string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	var found *apiextensionsv1.JSONSchemaProps
	walk(root, "", func(p string, s *apiextensionsv1.JSONSchemaProps) {
		if p == path {
			found = s
		}
	})
	if found == nil {
		t.Fatalf("%s: not in the CRD", path)
	}
	return found
}

func rules(s *apiextensionsv1.JSONSchemaProps) string {
	var b strings.Builder
	for _, v := range s.XValidations {
		fmt.Fprintf(&b, "  rule: %s\n  message: %s%s\n", v.Rule, v.Message, v.MessageExpression)
	}
	return b.String()
}

// durationLiterals returns the distinct duration('...') literals of a CEL rule, in order.
func durationLiterals(t *testing.T, rule string) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, m := range regexp.MustCompile(`duration\('([^']*)'\)`).FindAllStringSubmatch(rule, -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Errorf("duration literal %q: %v", m[1], err)
			continue
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
