package agent

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// fakeFilter records what is blocked.
type fakeFilter struct {
	mu      sync.Mutex
	blocked map[netip.Addr]bool
	fail    error
	made    int
}

func (f *fakeFilter) Block(addrs []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	for _, a := range addrs {
		f.blocked[a] = true
	}
	return nil
}

func (f *fakeFilter) Unblock(addrs []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		delete(f.blocked, a)
	}
	return nil
}

func (f *fakeFilter) list() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for a := range f.blocked {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func newFilteredAgent(t *testing.T) (*Agent, *fakeFilter) {
	t.Helper()
	f := &fakeFilter{blocked: map[netip.Addr]bool{}}
	a := New(newFakeHost(), nil, Options{AcceptFilter: func() (AcceptFilter, error) {
		f.made++
		return f, nil
	}})
	return a, f
}

// RFC 5798 Accept_Mode off: the host must not accept packets for the addresses (a non-owner
// MASTER does not answer pings to the VIP). The agent blocks them in the host's filter from
// the moment the instance is applied, follows address edits, and unblocks them when the
// instance goes or Accept_Mode is turned on; the owner always accepts.
func TestAcceptModeOffBlocksAddresses(t *testing.T) {
	a, f := newFilteredAgent(t)
	vip2 := netip.MustParsePrefix("198.18.0.101/24")
	cfg := config("198.18.0.11", 100)
	cfg.Accept = false
	if err := a.Apply("web", cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{vip.Addr()}, f.list(), cmpAddr); diff != "" {
		t.Errorf("blocked (-want +got):\n%s", diff)
	}
	cfg.Addresses = []netip.Prefix{vip2}
	if err := a.Apply("web", cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{vip2.Addr()}, f.list(), cmpAddr); diff != "" {
		t.Errorf("after the address edit (-want +got):\n%s", diff)
	}
	cfg.Accept = true
	if err := a.Apply("web", cfg); err != nil {
		t.Fatal(err)
	}
	if got := f.list(); len(got) != 0 {
		t.Errorf("accept: true still blocks %v", got)
	}
	cfg.Accept = false
	if err := a.Apply("web", cfg); err != nil {
		t.Fatal(err)
	}
	a.Remove("web")
	if got := f.list(); len(got) != 0 {
		t.Errorf("removed instance still blocks %v", got)
	}
	// The address owner accepts whatever Accept_Mode says.
	owner := config("198.18.0.11", vrrp.OwnerPriority)
	owner.Accept = false
	if err := a.Apply("owner", owner); err != nil {
		t.Fatal(err)
	}
	if got := f.list(); len(got) != 0 {
		t.Errorf("owner blocks %v", got)
	}
	if f.made != 1 {
		t.Errorf("filter created %d times, want once", f.made)
	}
}

// Without a filter, or when it fails, accept: false is refused with a reason, never run as if
// it were accept: true.
func TestAcceptModeOffRefusedWithoutFilter(t *testing.T) {
	cfg := config("198.18.0.11", 100)
	cfg.Accept = false
	a := New(newFakeHost(), nil, Options{})
	if err := a.Apply("web", cfg); err == nil || !strings.Contains(err.Error(), "accept: false") {
		t.Errorf("Apply without a filter: %v, want a refusal naming accept: false", err)
	}
	if len(a.Names()) != 0 {
		t.Errorf("refused instance was added: %v", a.Names())
	}
	broken := New(newFakeHost(), nil, Options{AcceptFilter: func() (AcceptFilter, error) {
		return nil, errors.New("nf_tables not available")
	}})
	if err := broken.Apply("web", cfg); err == nil || !strings.Contains(err.Error(), "nf_tables not available") {
		t.Errorf("Apply with a failing filter: %v, want its error", err)
	}
}

func newFakeHost() *fakeHost { return &fakeHost{hub: &hub{}, bound: map[netip.Prefix]bool{}} }

var cmpAddr = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
