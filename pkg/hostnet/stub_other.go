//go:build !linux

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Outside Linux there are no netlink sockets, raw IP protocol 112 sockets with Linux's socket
// options, packet sockets or nftables: the types and functions below have the Linux API so
// that the command builds everywhere (validate, convert and version run on any system), and
// every operation fails with errNotLinux, which wraps errors.ErrUnsupported.
var errNotLinux = fmt.Errorf("hostnet: not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Supported reports whether this system has what the package drives: nil on Linux; elsewhere
// an error wrapping errors.ErrUnsupported, which every operation there returns.
func Supported() error { return errNotLinux }

// Host is the Linux network namespace's side of the engine; here every method fails.
type Host struct{ _ struct{} }

// HostOption configures a Host.
type HostOption func(*Host)

// WithState records bound addresses in st (Linux only).
func WithState(st *State) HostOption { return func(*Host) {} }

// WithoutAddressMark adds addresses without the IFA_PROTO mark (Linux only).
func WithoutAddressMark() HostOption { return func(*Host) {} }

// NewHost returns a Host whose every operation fails with an error wrapping
// errors.ErrUnsupported.
func NewHost(log *slog.Logger, opts ...HostOption) *Host { return &Host{} }

// Close does nothing: the Host holds nothing.
func (h *Host) Close() error { return nil }

// Listen fails: see Supported.
func (h *Host) Listen(ifname string, src netip.Addr) (vrrp.PacketConn, error) {
	return nil, fmt.Errorf("listen for vrrp on %s: %w", ifname, errNotLinux)
}

// Link fails: see Supported.
func (h *Host) Link(ifname string) (vrrp.Link, error) {
	return nil, fmt.Errorf("open link %s: %w", ifname, errNotLinux)
}

// ForeignAddresses fails: see Supported.
func (h *Host) ForeignAddresses(ifname string) ([]netip.Prefix, error) {
	return nil, fmt.Errorf("addresses of %s: %w", ifname, errNotLinux)
}

// AcceptFilter fails: see Supported.
func (h *Host) AcceptFilter() (*AcceptFilter, error) {
	return nil, fmt.Errorf("create nftables table inet %s: %w", AcceptTable, errNotLinux)
}

// AcceptFilter is Accept_Mode off through nftables (Linux only); none is ever made here.
type AcceptFilter struct{ _ struct{} }

// Block fails: see Supported.
func (f *AcceptFilter) Block(addrs []netip.Addr) error { return errNotLinux }

// Unblock fails: see Supported.
func (f *AcceptFilter) Unblock(addrs []netip.Addr) error { return errNotLinux }

// Blocked fails: see Supported.
func (f *AcceptFilter) Blocked() ([]netip.Addr, error) { return nil, errNotLinux }

// Dropped fails: see Supported.
func (f *AcceptFilter) Dropped() (uint64, error) { return 0, errNotLinux }

// Close does nothing: there is no table.
func (f *AcceptFilter) Close() error { return nil }

// RemoveStaleAcceptTable fails: see Supported.
func RemoveStaleAcceptTable() (bool, error) { return false, errNotLinux }

// Interfaces fails: see Supported.
func Interfaces() ([]Interface, error) {
	return nil, fmt.Errorf("list interfaces: %w", errNotLinux)
}

// State is the agent's host-local state directory (Linux only); OpenState never returns one
// here.
type State struct{ _ struct{} }

// OpenState fails: see Supported.
func OpenState(dir string) (*State, error) {
	return nil, fmt.Errorf("state directory %s: %w", dir, errNotLinux)
}

// Stale returns nothing.
func (s *State) Stale() []BoundAddr { return nil }

// Dir returns "".
func (s *State) Dir() string { return "" }

// Close does nothing.
func (s *State) Close() error { return nil }

// RemoveStale fails: see Supported.
func RemoveStale(ctx context.Context, st *State, marks bool) ([]netip.Prefix, error) {
	return nil, fmt.Errorf("remove stale addresses: %w", errNotLinux)
}

// PrepareStateDir fails: see Supported.
func PrepareStateDir(dir string, uid, gid int) error {
	return fmt.Errorf("prepare state directory %s: %w", dir, errNotLinux)
}

// VirtualMAC fails: see Supported.
func (h *Host) VirtualMAC(parent string, vrid uint8, ipv6 bool, primary netip.Addr) (vrrp.Link, error) {
	return nil, fmt.Errorf("virtual MAC interface of VRID %d on %s: %w", vrid, parent, errNotLinux)
}

// DropVirtualMAC does nothing: no interface is ever made here.
func (h *Host) DropVirtualMAC(parent string, vrid uint8, ipv6 bool) error { return nil }
