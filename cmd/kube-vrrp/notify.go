package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
	"github.com/kube-vrrp/kube-vrrp/pkg/notify"
)

// spec.notify in run and agent (docs/design.md §6.6): the commands run where exec is enabled
// (--enable-exec-probes, the switch of exec probes), from a consumer of the agent's event
// stream. Elsewhere run refuses a VirtualIP with notify at start, and the agent runs it
// without its commands and says so (controllers.ReasonNotifyDisabled).

// notifyBuffer is how many events the notify runner may have waiting: it only queues them
// (notify.QueueLength per VirtualIP), so it never falls that far behind.
const notifyBuffer = 1024

// notifyHandoffWait bounds the wait for the commands at a stop for a restart (a handoff): the
// successor waits for this process (the host lock, the pod), and the addresses for the
// successor.
const notifyHandoffWait = time.Second

// hooks runs the spec.notify commands of an agent's VirtualIPs.
type hooks struct {
	*notify.Runner
	sub  *agent.Subscription
	stop func(time.Duration)
}

// startHooks runs the spec.notify commands of a's VirtualIPs (those given to Set) on their
// changes, from now on; close ends it.
func startHooks(a *agent.Agent, log *slog.Logger) *hooks {
	r := notify.New(log)
	sub := a.Subscribe("notify", notifyBuffer)
	return &hooks{Runner: r, sub: sub, stop: r.Start(sub)}
}

// close runs the changes still waiting, the agent's stop among them (STOP), and returns once
// they ran or the wait is over: twice the longest timeout (the stop command and all), or
// notifyHandoffWait when the agent handed its VIPs off to a successor. Call it once the agent
// has stopped; nil does nothing.
func (h *hooks) close(a *agent.Agent) {
	if h == nil {
		return
	}
	wait := 2 * h.LongestTimeout()
	if len(a.HandedOff()) > 0 {
		wait = min(wait, notifyHandoffWait)
	}
	h.stop(wait)
	h.sub.Close()
}

// notifyDisabled says, for each VirtualIP of set with spec.notify that selects node, that its
// commands cannot run with exec disabled and what to change; lines in check's form. It names no
// argument of a command: they may carry credentials.
func notifyDisabled(set *manifest.Set, node string, labels map[string]string) []string {
	var out []string
	for i := range set.VirtualIPs {
		vip := &set.VirtualIPs[i]
		if vip.Spec.Notify == nil {
			continue
		}
		// A selector that does not parse is check's error, not this one's.
		if ok, err := desired.Selects(vip, node, labels); err != nil || !ok {
			continue
		}
		out = append(out, fmt.Sprintf("%s: VirtualIP %q: %s", set.Source(vip.Name), vip.Name, notifyDisabledText(vip.Spec.Notify, false)))
	}
	return out
}

// notifyDisabledText is the refusal (warn false) or the warning of a VirtualIP with spec.notify
// where exec is disabled, or may be.
func notifyDisabledText(n *v1alpha1.NotifySpec, warn bool) string {
	progs := strings.Join(notify.CommandsOf(n).Programs(), ", ")
	if warn {
		return "warning: spec.notify (" + progs + ") runs only where exec is enabled (kube-vrrp run --enable-exec-probes, " +
			"chart value probes.exec.enabled): elsewhere run refuses to start, and the agent runs VRRP without the commands " +
			"(a NotifyDisabled Event)"
	}
	return "spec.notify (" + progs + ") runs commands, and exec is disabled: add --enable-exec-probes " +
		"(chart value probes.exec.enabled) to run them, or remove spec.notify"
}
