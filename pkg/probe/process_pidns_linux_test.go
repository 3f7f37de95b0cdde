package probe

import (
	"strings"
	"testing"
)

// An agent that is PID 1 runs in a PID namespace of its own (a pod without hostPID): a process
// probe that finds nothing says why, and which setting to change, instead of a bare "no
// process" that reads like HAProxy being down.
func TestProcessOwnPIDNamespaceSaysHostPID(t *testing.T) {
	name := uniqueName() // no such process
	c := newProcessChecker(name, "", testLogger(t))
	t.Cleanup(c.close)
	if ok, reason := c.check(t.Context()); ok || reason != `no process named "`+name+`"` {
		t.Fatalf("in the node's PID namespace: %v %q, want the plain reason", ok, reason)
	}
	c.self = 1
	ok, reason := c.check(t.Context())
	if ok || !strings.HasPrefix(reason, `no process named "`+name+`": `) || !strings.Contains(reason, "hostPID: true") {
		t.Errorf("as PID 1: %v %q, want a reason naming hostPID", ok, reason)
	}
}
