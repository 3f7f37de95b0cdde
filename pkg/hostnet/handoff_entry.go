package hostnet

import (
	"net/netip"
	"time"
)

// HandoffEntry is one instance a MASTER handed over to its successor on this host: its
// interface, VRID and family, the addresses it left bound, and when the backups take over at
// the latest (a wall-clock time, meaningful only on this boot).
type HandoffEntry struct {
	Interface string
	VRID      uint8
	IPv6      bool
	Addresses []netip.Prefix
	Deadline  time.Time
}
