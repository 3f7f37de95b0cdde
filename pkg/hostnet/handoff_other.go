//go:build !linux

package hostnet

import (
	"fmt"
	"net/netip"
)

// WriteHandoff fails: see Supported.
func (s *State) WriteHandoff(entries []HandoffEntry) error {
	return fmt.Errorf("write the handoff record: %w", errNotLinux)
}

// TakeHandoff fails: see Supported.
func (s *State) TakeHandoff() ([]HandoffEntry, error) {
	return nil, fmt.Errorf("handoff record: %w", errNotLinux)
}

// ForgetHandoff fails: see Supported.
func (s *State) ForgetHandoff() error {
	return fmt.Errorf("remove the handoff record: %w", errNotLinux)
}

// Adopt fails: see Supported.
func (h *Host) Adopt(ifname string, ps []netip.Prefix) ([]netip.Prefix, error) {
	return nil, fmt.Errorf("adopt addresses on %s: %w", ifname, errNotLinux)
}
