package hostnet_test

import (
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
)

// The agent runs on a Host; this is checked here rather than in hostnet itself so that agent
// may import hostnet one day without a cycle.
var _ agent.Host = (*hostnet.Host)(nil)
