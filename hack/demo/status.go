package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/rest"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// watchStatus prints the VirtualIP's status.master, Ready and status.nodes every time they
// change, until the returned function is called (which may be called more than once): one
// line with every node's state and priority, then the state, reason and message of each node
// whose state, reason or message changed.
func (d *demo) watchStatus(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lastLine, lastNode := "", map[string]string{}
		for ctx.Err() == nil {
			if _, v, err := d.snapshot(ctx); err == nil {
				line := statusLine(v)
				var why []string
				nodes := slices.Clone(v.Status.Nodes)
				slices.SortFunc(nodes, func(a, b v1alpha1.NodeStatus) int { return strings.Compare(a.Name, b.Name) })
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

// statusLine is what status says in one line: "master=n1 Ready=True  n1 Master 110 ...".
func statusLine(v *v1alpha1.VirtualIP) string {
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
	nodes := slices.Clone(v.Status.Nodes)
	slices.SortFunc(nodes, func(a, b v1alpha1.NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	for _, n := range nodes {
		fmt.Fprintf(&b, "  %s %-6s %3d", n.Name, n.State, n.Priority)
	}
	return strings.TrimSpace(b.String())
}

// getVIP prints `kubectl get vip`: the API server's Table of VirtualIPs (the CRD's printer
// columns), as kubectl asks for it and prints it.
func (d *demo) getVIP(ctx context.Context) error {
	cfg := d.cp.RESTConfig()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, cfg.Host+"/apis/"+v1alpha1.GroupVersion.String()+"/virtualips", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET virtualips as Table: %s: %s", resp.Status, b)
	}
	var t metav1.Table
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("GET virtualips as Table: %w", err)
	}
	d.printf("\n$ kubectl get vip\n%s\n", formatTable(&t, time.Now()))
	return nil
}

// formatTable prints a Table as kubectl does: the columns of priority 0, upper-case headers,
// dates as ages.
func formatTable(t *metav1.Table, now time.Time) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	var cols []int
	var heads []string
	for i, c := range t.ColumnDefinitions {
		if c.Priority == 0 {
			cols = append(cols, i)
			heads = append(heads, strings.ToUpper(c.Name))
		}
	}
	fmt.Fprintln(w, strings.Join(heads, "\t"))
	for _, r := range t.Rows {
		var cells []string
		for _, i := range cols {
			var s string
			if i < len(r.Cells) && r.Cells[i] != nil {
				s = fmt.Sprint(r.Cells[i])
			}
			if t.ColumnDefinitions[i].Type == "date" {
				if at, err := time.Parse(time.RFC3339, s); err == nil {
					s = duration.HumanDuration(now.Sub(at))
				}
			}
			if s == "" {
				s = "<none>"
			}
			cells = append(cells, s)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	_ = w.Flush()
	return strings.TrimRight(b.String(), "\n")
}
