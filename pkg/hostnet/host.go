//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Host gives the VRRP engine and the agent their sockets, addresses and announcements on one
// Linux network namespace. It is safe for concurrent use.
type Host struct {
	log *slog.Logger
	// ns is the network namespace the Host was created in; sockets are always opened there,
	// even from goroutines running on threads of another namespace (tests, labs). nsMu
	// guards it and nsClosed: do holds it shared while it uses ns, Close exclusively to close
	// it, so that no socket is opened after Close, in whatever namespace the calling thread
	// is in, nor setns given a descriptor number that was reused.
	nsMu     sync.RWMutex
	ns       netns.NsHandle
	nsClosed bool

	mu     sync.Mutex
	closed bool
	rt     *rtnl // address requests, in ns
	links  map[string]*link
	// events is the rtnetlink subscription every watch shares (Host.follow).
	events rtEvents
	marks  markSupport
	// state, when set, records every address bound (see State); marksOff adds addresses
	// without the IFA_PROTO mark, as a kernel before 6.1 would keep them.
	state    *State
	marksOff bool
	// vmacs are the virtual MAC interfaces in use, by name (nil: being set up); vmacMade
	// those this Host created (their proof of ownership without a state); vmacFilter their
	// nftables tables, once needed (vmac.go).
	vmacs      map[string]*vmacLink
	vmacMade   map[string]bool
	vmacFilter *vmacFilter
}

// HostOption configures a Host.
type HostOption func(*Host)

// WithState records every virtual address the Host binds in st, so that a restarted agent finds
// the ones a killed predecessor left, on any kernel (see RemoveStale).
func WithState(st *State) HostOption { return func(h *Host) { h.state = st } }

// WithoutAddressMark adds addresses without the IFA_PROTO mark, as on a kernel before 6.1 that
// drops it: ownership then rests on this process's memory and the State record alone. It is
// the fallback's switch, for tests and for kernels that mishandle the attribute.
func WithoutAddressMark() HostOption {
	return func(h *Host) { h.marksOff, h.marks = true, marksDropped }
}

// record notes in the state, if any, that ps were bound on ifname (on) or removed. A record that
// cannot be written costs only the clean-up after a kill; the address operation goes on.
func (h *Host) record(ifname string, ps []netip.Prefix, on bool) {
	if h.state == nil || len(ps) == 0 {
		return
	}
	if err := h.state.record(ifname, ps, on); err != nil {
		h.log.Error("recording a virtual address in the state directory; it would not be removed after a crash", "err", err)
	}
}

// markSupport records whether the kernel keeps the IFA_PROTO mark (Linux >= 6.1).
type markSupport uint8

const (
	marksUnknown markSupport = iota
	marksKept
	marksDropped
)

// Supported reports whether this system has what the package drives: nil on Linux; elsewhere
// an error wrapping errors.ErrUnsupported, which every operation there returns.
func Supported() error { return nil }

// NewHost returns a Host for the network namespace of the calling thread. It opens nothing
// until first used. log may be nil.
func NewHost(log *slog.Logger, opts ...HostOption) *Host {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Host{log: log, ns: netns.None(), links: map[string]*link{}, vmacs: map[string]*vmacLink{}}
	for _, o := range opts {
		o(h)
	}
	// Without /proc the Host falls back to the namespace of whichever thread runs each call,
	// which is the process's own unless the caller moved threads around.
	if ns, err := netns.Get(); err == nil {
		h.ns = ns
	} else {
		log.Warn("cannot pin the network namespace; using the calling thread's", "err", err)
	}
	return h
}

// Close releases the Host's netlink sockets and namespace handle. Sockets returned by Listen
// stay open until closed themselves.
func (h *Host) Close() error {
	h.closeVMACs()
	h.events.stopView()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	for _, l := range h.links {
		l.frames.close()
	}
	if h.rt != nil {
		h.rt.close()
	}
	h.nsMu.Lock()
	defer h.nsMu.Unlock()
	h.nsClosed = true
	if h.ns.IsOpen() {
		return h.ns.Close()
	}
	return nil
}

var errHostClosed = errors.New("hostnet: host closed")

// do runs fn on an OS thread inside the Host's network namespace; fn should only open
// sockets, which keep their namespace wherever they are used afterwards. When the calling
// thread is already there, fn runs without setns (which would need CAP_SYS_ADMIN, a capability
// the agent does not have). Otherwise the thread is switched and then thrown away: the
// goroutine exits still locked, so the runtime never reuses a thread in the wrong namespace.
func (h *Host) do(fn func() error) error {
	h.nsMu.RLock()
	defer h.nsMu.RUnlock()
	if h.nsClosed {
		return errHostClosed
	}
	if !h.ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cur, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		same := cur.Equal(h.ns)
		_ = cur.Close()
		if same {
			defer runtime.UnlockOSThread()
			errc <- fn()
			return
		}
		if err := netns.Set(h.ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// handles returns the Host's netlink socket, opening it on first use.
func (h *Host) handles() (*rtnl, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHostClosed
	}
	if h.rt != nil {
		return h.rt, nil
	}
	var rt *rtnl
	err := h.do(func() error {
		var err error
		rt, err = newRTNL()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	h.rt = rt
	return rt, nil
}

// linkInfo is what the Host needs of a link, looked up fresh for each operation so a link
// that was deleted and recreated under the same name keeps working.
type linkInfo struct {
	index int
	name  string
	mac   net.HardwareAddr
	flags net.Flags
}

func (h *Host) lookup(name string) (linkInfo, error) {
	rt, err := h.handles()
	if err != nil {
		return linkInfo{}, err
	}
	li, err := rt.linkByName(name)
	if err != nil {
		return linkInfo{}, fmt.Errorf("look up link %q: %w", name, err)
	}
	return li, nil
}

// Listen opens the VRRP socket of ifname for src's family: a raw IP protocol 112 socket bound
// to the device, joined to 224.0.0.18 or ff02::12, multicast loopback off, TTL / hop limit 255,
// sending every advert from src.
func (h *Host) Listen(ifname string, src netip.Addr) (vrrp.PacketConn, error) {
	c, err := h.listen(ifname, src)
	if err != nil {
		return nil, fmt.Errorf("listen for vrrp on %s: %w", ifname, err)
	}
	return c, nil
}

// Link returns the address and announcement side of ifname. Links are shared: every call with
// the same name returns the same value, so Bind and Unbind from several instances agree on
// which addresses are wanted.
func (h *Host) Link(ifname string) (vrrp.Link, error) {
	if _, err := h.lookup(ifname); err != nil {
		return nil, fmt.Errorf("open link: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("open link: %w", errHostClosed)
	}
	l, ok := h.links[ifname]
	if !ok {
		l = &link{h: h, name: ifname, want: map[netip.Prefix]bool{}, added: map[netip.Prefix]bool{}}
		h.links[ifname] = l
	}
	return l, nil
}

func (h *Host) markSupport() markSupport {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.marks
}

func (h *Host) setMarkSupport(m markSupport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.marks != marksUnknown {
		return
	}
	h.marks = m
	if m == marksDropped {
		h.log.Warn("the kernel does not keep the IFA_PROTO address mark (needs Linux >= 6.1): " +
			"only addresses added by this process are removed, and stale ones are not found after a restart")
	}
}
