package controllers

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// fakeAgent implements Agent and MetricsSource: it records Apply and Remove, and Snapshot,
// TransitionCounts and LostEvents return what the test set.
type fakeAgent struct {
	mu          sync.Mutex
	applyErr    error
	configs     map[string]vrrp.Config
	applied     []string // names, in call order
	removed     []string
	statuses    []agent.Status
	transitions map[agent.TransitionKey]uint64
	lost        map[string]uint64
}

func newFakeAgent() *fakeAgent { return &fakeAgent{configs: map[string]vrrp.Config{}} }

func (f *fakeAgent) Apply(name string, cfg vrrp.Config, _ ...probe.Spec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, name)
	if f.applyErr != nil {
		return f.applyErr
	}
	f.configs[name] = cfg
	return nil
}

func (f *fakeAgent) Remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, name)
	delete(f.configs, name)
}

func (f *fakeAgent) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.configs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (f *fakeAgent) StatusOf(name string) (agent.Status, bool) {
	for _, st := range f.Snapshot() {
		if st.Name == name {
			return st, true
		}
	}
	return agent.Status{}, false
}

func (f *fakeAgent) Snapshot() []agent.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.statuses)
}

func (f *fakeAgent) TransitionCounts() map[agent.TransitionKey]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.transitions)
}

func (f *fakeAgent) LostEvents() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.lost)
}

func (f *fakeAgent) config(name string) (vrrp.Config, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.configs[name]
	return c, ok
}

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// eth0 is a node's interfaces: a loopback and eth0 with ip/24.
func eth0(ip string) func() ([]desired.Interface, error) {
	return func() ([]desired.Interface, error) {
		return []desired.Interface{
			{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix(ip + "/24")}},
		}, nil
	}
}
