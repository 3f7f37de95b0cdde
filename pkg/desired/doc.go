// Package desired translates a VirtualIP and the facts of one node into the vrrp.Config that
// node runs: pure functions, no I/O, in the spirit of MetalLB's config.For.
package desired
