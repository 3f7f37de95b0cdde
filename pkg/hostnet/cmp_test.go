package hostnet

import (
	"net/netip"

	"github.com/google/go-cmp/cmp/cmpopts"
)

// netipOpt lets cmp compare netip values, whose fields are unexported.
var netipOpt = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
