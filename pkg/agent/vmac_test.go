package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// vmacHost is a fakeHost that gives instances with VirtualMAC a link of their own
// (hostnet.Host.VirtualMAC): its addresses are bound there, not on the interface.
type vmacHost struct {
	*fakeHost
	mu      sync.Mutex
	links   map[string]*fakeVMAC
	dropped []string
}

type fakeVMAC struct {
	*fakeHost // the macvlan's own addresses
	name      string
	sent      atomic.Int32 // adverts sent through Sender
	closed    atomic.Bool
	kept      atomic.Bool
	unbinds   [][]netip.Prefix // what each Unbind was given
}

func (v *fakeVMAC) Unbind(ctx context.Context, ps []netip.Prefix) error {
	v.mu.Lock()
	v.unbinds = append(v.unbinds, slices.Clone(ps))
	v.mu.Unlock()
	return v.fakeHost.Unbind(ctx, ps)
}

type senderFunc func(b []byte, dst netip.Addr) error

func (f senderFunc) WriteTo(b []byte, dst netip.Addr) error { return f(b, dst) }

func (h *vmacHost) VirtualMAC(ifname string, vrid uint8, ipv6 bool, primary netip.Addr) (vrrp.Link, error) {
	fam := 4
	if ipv6 {
		fam = 6
	}
	name := fmt.Sprintf("kv%d-%d-%s", fam, vrid, ifname)
	l := &fakeVMAC{fakeHost: &fakeHost{hub: h.hub, bound: map[netip.Prefix]bool{}}, name: name}
	h.mu.Lock()
	h.links[name] = l
	h.mu.Unlock()
	return l, nil
}

func (h *vmacHost) DropVirtualMAC(ifname string, vrid uint8, ipv6 bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropped = append(h.dropped, fmt.Sprintf("%s/%d/%t", ifname, vrid, ipv6))
	return nil
}

// Adopt adopts what is bound on the interface or on a virtual MAC interface of that name.
func (h *vmacHost) Adopt(ifname string, ps []netip.Prefix) ([]netip.Prefix, error) {
	on := h.fakeHost
	if l := h.link(ifname); l != nil {
		on = l.fakeHost
	}
	var out []netip.Prefix
	for _, p := range ps {
		if on.has(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (h *vmacHost) link(name string) *fakeVMAC {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.links[name]
}

func (v *fakeVMAC) Name() string { return v.name }

func (v *fakeVMAC) Sender(s vrrp.Sender) vrrp.Sender {
	return senderFunc(func(b []byte, dst netip.Addr) error {
		v.sent.Add(1)
		return s.WriteTo(b, dst)
	})
}

func (v *fakeVMAC) Close(keep bool) error {
	v.kept.Store(keep)
	v.closed.Store(true)
	return nil
}

func vmacConfig(primary string, prio uint8) vrrp.Config {
	c := config(primary, prio)
	c.VirtualMAC = true
	return c
}

// An instance with VirtualMAC binds on its virtual MAC interface and sends through its sender;
// removed, it closes the interface (deleted); stopped for a restart as MASTER, it keeps it for
// its successor.
func TestVirtualMACInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &hub{}
		h1 := &vmacHost{fakeHost: &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}, links: map[string]*fakeVMAC{}}
		h2 := &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}
		a1, a2 := New(h1, nil, Options{}), New(h2, nil, Options{})
		if err := a1.Apply("web", vmacConfig("198.18.0.11", 110)); err != nil {
			t.Fatal(err)
		}
		if err := a2.Apply("web", vmacConfig("198.18.0.12", 100)); err != nil {
			t.Fatal(err)
		}
		stop1 := runAgent(t, a1)
		runAgent(t, a2)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if s1 := state(t, a1, "web"); s1 != vrrp.Master {
			t.Fatalf("a1: %v, want Master", s1)
		}
		// a2's host cannot make the interface: it does not start, and says why.
		if st, _ := a2.StatusOf("web"); st.State != vrrp.Fault || st.Reason != ReasonStartFailed || !strings.Contains(st.Message, "virtualMAC") {
			t.Errorf("a2 without virtual MAC interfaces: %v %s %q, want Fault StartFailed about virtualMAC", st.State, st.Reason, st.Message)
		}
		v := h1.link("kv4-51-eth0")
		if v == nil {
			t.Fatal("no virtual MAC interface made")
		}
		if !v.has(vip) || h1.has(vip) {
			t.Errorf("VIP on the virtual MAC interface %t, on the interface %t; want it on the former only", v.has(vip), h1.has(vip))
		}
		if v.sent.Load() == 0 {
			t.Error("no advert went through the virtual MAC interface's sender")
		}

		a1.HandoffOnStop(8 * time.Second)
		stop1()
		if !v.closed.Load() || !v.kept.Load() || !v.has(vip) {
			t.Errorf("after a handoff: closed %t kept %t VIP %t, want it kept with the VIP", v.closed.Load(), v.kept.Load(), v.has(vip))
		}
		if hs := a1.HandedOff(); len(hs) != 1 || hs[0].Interface != "eth0" {
			t.Errorf("handed off %v, want one entry on eth0", hs)
		}

		// Started again and removed: deleted.
		runAgent(t, a1)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		v = h1.link("kv4-51-eth0")
		a1.Remove("web")
		if !v.closed.Load() || v.kept.Load() {
			t.Errorf("after Remove: closed %t kept %t, want it deleted", v.closed.Load(), v.kept.Load())
		}
	})
}

// A handed-over entry no instance resumes has its virtual MAC interface dropped
// (VirtualMACHost.DropVirtualMAC), whatever the instance that starts with its key.
func TestVirtualMACHandoffNotResumed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &hub{}
		h := &vmacHost{fakeHost: &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}, links: map[string]*fakeVMAC{}}
		a := New(h, nil, Options{})
		a.Resume([]HandoffEntry{
			{Interface: "eth0", VRID: 51, Addresses: []netip.Prefix{vip}, Deadline: time.Now().Add(time.Minute)},
			{Interface: "eth1", VRID: 9, Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.1.1/32")}, Deadline: time.Now().Add(time.Minute)},
		}, nil)
		// Without virtualMAC now: its addresses are not on the interface, so it does not resume.
		if err := a.Apply("web", config("198.18.0.11", 110)); err != nil {
			t.Fatal(err)
		}
		runAgent(t, a)
		time.Sleep(time.Second)
		synctest.Wait()
		h.mu.Lock()
		dropped := h.dropped
		h.mu.Unlock()
		for _, want := range []string{"eth0/51/false", "eth1/9/false"} {
			found := false
			for _, d := range dropped {
				found = found || d == want
			}
			if !found {
				t.Errorf("dropped %v, want %s among them", dropped, want)
			}
		}
	})
}

// An entry an instance with virtualMAC does not resume (here: past its deadline) has its
// addresses unbound through the instance's virtual MAC interface even when none is left there
// (the kernel removed them at the deadline): that Unbind is what sets the interface, up as its
// predecessor left it, down, as a backup's must be.
func TestVirtualMACHandoffExpiredUnbinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &hub{}
		h := &vmacHost{fakeHost: &fakeHost{hub: lan, bound: map[netip.Prefix]bool{}}, links: map[string]*fakeVMAC{}}
		a := New(h, nil, Options{})
		a.Resume([]HandoffEntry{{Interface: "eth0", VRID: 51, Addresses: []netip.Prefix{vip}, Deadline: time.Now().Add(-time.Second)}}, nil)
		if err := a.Apply("web", vmacConfig("198.18.0.11", 110)); err != nil {
			t.Fatal(err)
		}
		runAgent(t, a)
		synctest.Wait()
		v := h.link("kv4-51-eth0")
		if v == nil {
			t.Fatal("no virtual MAC interface made")
		}
		v.mu.Lock()
		unbinds := slices.Clone(v.unbinds)
		v.mu.Unlock()
		if !slices.ContainsFunc(unbinds, func(ps []netip.Prefix) bool { return slices.Equal(ps, []netip.Prefix{vip}) }) {
			t.Errorf("Unbinds on the virtual MAC interface: %v, want one of %s", unbinds, vip)
		}
	})
}
