package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// StallLimit is how long an instance's loop may have work waiting (a packet, a command, a
// timer due) without making progress before Healthy reports the agent unhealthy. It is far
// above the longest host operation the loop may wait for (2 s for each of unbind, bind and
// announce): only a loop that is truly wedged passes it.
const StallLimit = 30 * time.Second

// Healthy reports whether every running instance still makes progress (vrrp.Router.Stalled
// with StallLimit). A wedged loop sends no adverts and follows no probe: the node keeps or
// loses the VIP by accident. The kubelet's liveness probe (/healthz) restarts the agent then,
// which hands the VIPs over and starts clean. An instance that could not start is reported in
// its status, not here: restarting would not fix its cause.
func (a *Agent) Healthy(now time.Time) error {
	a.mu.Lock()
	var stalled []string
	for name, inst := range a.instances {
		if inst.router != nil && inst.router.Stalled(now, StallLimit) {
			stalled = append(stalled, name)
		}
	}
	a.mu.Unlock()
	if len(stalled) == 0 {
		return nil
	}
	slices.Sort(stalled)
	return fmt.Errorf("VRRP instance(s) %s made no progress for more than %s with work waiting", strings.Join(stalled, ", "), StallLimit)
}
