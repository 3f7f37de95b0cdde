package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

const standaloneManifest = `apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: demo
spec:
  vrid: 51
  addresses: ["198.18.0.100/24"]
  advertisementInterval: 100ms
  priority: 90
  nodes:
  - name: n1
    priority: 110
  - name: n2
    priority: 100
  - name: n3
`

var standaloneVIP = netip.MustParsePrefix("198.18.0.100/24")

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

// standalone is the demo without Kubernetes (go run ./hack/demo --standalone): `kube-vrrp run`
// on each node with one VirtualIP file, a graceful handover (SIGTERM) and a link cut, each with
// the outage a client pinging every 10 ms saw.
func standalone(bin string) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: build it first (make build): %w", bin, err)
	}
	step("building a lab: 3 nodes (n1, n2, n3) and a client on one bridge, in network namespaces")
	l, closeLab, err := lab.Open(lab.Options{Nodes: 3})
	if err != nil {
		return err
	}
	defer func() {
		step("tearing the lab down")
		if err := closeLab(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}()
	nodes := l.Nodes()
	fmt.Print(indent(standaloneManifest))

	procs := map[string]*lab.Proc{}
	start := func(n *lab.Node) error {
		path, err := n.WriteFile("vip.yaml", []byte(standaloneManifest))
		if err != nil {
			return err
		}
		state, err := n.StateDir(0)
		if err != nil {
			return err
		}
		p, err := n.Exec(context.Background(), "kube-vrrp", bin, "run", "-f", path, "--node", n.Name, "--state-dir", state)
		if err != nil {
			return err
		}
		procs[n.Name] = p
		return nil
	}
	step("starting `kube-vrrp run -f vip.yaml --node NAME` on every node")
	for _, n := range nodes {
		if err := start(n); err != nil {
			return err
		}
	}
	master, err := lab.WaitMaster(nodes, standaloneVIP, 10*time.Second)
	if err != nil {
		return err
	}
	show(nodes)
	who, err := l.WhoAnswers(standaloneVIP.Addr(), 5*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("client reaches %s at %s\n", standaloneVIP.Addr(), who)

	ctx := context.Background()
	step("SIGTERM on the master %s: it sends priority 0 and removes the address", master.Name)
	o, err := l.MeasureOutage(ctx, standaloneVIP.Addr(), func() error { return procs[master.Name].Signal(syscall.SIGTERM) },
		lab.OutageOptions{AwaitNode: "n2"})
	if err != nil {
		return fmt.Errorf("handover: %w", err)
	}
	fmt.Printf("client saw: %s\n", o)
	show(nodes)

	step("restarting n1: it preempts and takes the address back")
	if err := procs["n1"].Wait(5 * time.Second); err != nil {
		return fmt.Errorf("n1 did not exit after SIGTERM: %w", err)
	}
	o, err = l.MeasureOutage(ctx, standaloneVIP.Addr(), func() error { return start(nodes[0]) }, lab.OutageOptions{AwaitNode: "n1"})
	if err != nil {
		return fmt.Errorf("preemption: %w", err)
	}
	fmt.Printf("client saw: %s\n", o)
	show(nodes)

	step("cutting the master's link (no advert, no goodbye): the backups' Master_Down timer runs out")
	o, err = l.MeasureOutage(ctx, standaloneVIP.Addr(), nodes[0].CutLink, lab.OutageOptions{AwaitNode: "n2"})
	if err != nil {
		return fmt.Errorf("link cut: %w", err)
	}
	fmt.Printf("client saw: %s (keepalived at its default advert_int 1 needs ~3.6 s)\n", o)
	show(nodes)
	if err := nodes[0].RestoreLink(); err != nil {
		return err
	}
	if err := lab.WaitHolders(nodes, standaloneVIP, nodes[:1], 10*time.Second); err != nil {
		return err
	}
	step("link restored: n1 is master again")
	show(nodes)
	return nil
}

// show prints who holds the address.
func show(nodes []*lab.Node) {
	fmt.Printf("%-6s %-18s %s\n", "NODE", "ADDRESS", "HOLDS VIP")
	for _, n := range nodes {
		fmt.Printf("%-6s %-18s %v\n", n.Name, n.IPv4, n.HasAddress(standaloneVIP))
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
