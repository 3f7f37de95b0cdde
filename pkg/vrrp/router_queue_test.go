package vrrp_test

import (
	"runtime"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// A router that has received nothing holds no room for a backlog: a node may run a thousand
// instances, most of which never queue a packet.
func TestRouterIdleMemory(t *testing.T) {
	cfg := config4()
	host := newFakeHost(cfg)
	insts := make([]*vrrp.Instance, 100)
	for i := range insts {
		insts[i] = mustNew(t, cfg)
	}
	routers := make([]*vrrp.Router, len(insts))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, in := range insts {
		routers[i] = vrrp.NewRouter(in, host, host, nil, nil)
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / uint64(len(routers))
	t.Logf("NewRouter allocates %d bytes", per)
	if per > 4096 {
		t.Errorf("NewRouter allocates %d bytes, want at most 4096", per)
	}
	runtime.KeepAlive(routers)
}
