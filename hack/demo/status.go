package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// watchStatus prints the VirtualIP's status.master, Ready and its members' reports
// (VirtualIPMembers) every time they change, until the returned function is called (which may be called more than once): one
// line with every node's state and priority, then the state, reason and message of each node
// whose state, reason or message changed.
func (d *demo) watchStatus(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lastLine, lastNode := "", map[string]string{}
		for ctx.Err() == nil {
			if _, v, nodes, err := d.snapshot(ctx); err == nil {
				line := statusLine(v, nodes)
				var why []string
				for _, n := range nodes {
					k := n.State + "\x00" + n.Reason + "\x00" + n.Message
					if lastNode[n.Name] != k {
						lastNode[n.Name] = k
						why = append(why, fmt.Sprintf("%16s%s", "", nodeLine(n)))
					}
				}
				if line != lastLine || len(why) > 0 {
					lastLine = line
					d.printf("  %s  %s\n", clock(time.Now()), line)
					for _, w := range why {
						d.printf("%s\n", w)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

// nodeLine is one node's state with its reason and message: "n1 Fault: ProbeFailed (probe
// haproxy failing)".
func nodeLine(n v1alpha1.NodeStatus) string {
	w := n.Name + " " + n.State
	if n.Reason != "" {
		w += ": " + n.Reason
	}
	if n.Message != "" {
		w += " (" + n.Message + ")"
	}
	return w
}

// statusLine is what status and the members (sorted by node) say in one line: "master=n1 Ready=True  n1 Master 110 ...".
func statusLine(v *v1alpha1.VirtualIP, nodes []v1alpha1.NodeStatus) string {
	ready := "-"
	for _, c := range v.Status.Conditions {
		if c.Type == "Ready" {
			ready = string(c.Status)
		}
	}
	master := v.Status.Master
	if master == "" {
		master = "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "master=%-3s Ready=%-5s", master, ready)
	for _, n := range nodes {
		fmt.Fprintf(&b, "  %s %-6s %3d", n.Name, n.State, n.Priority)
	}
	return strings.TrimSpace(b.String())
}
