// Command demo is `make demo`: kube-vrrp as a cluster runs it, on one machine, with a visible
// failover. It builds a lab of three node network namespaces (n1, n2, n3) and a client on one
// bridge, starts etcd and kube-apiserver inside the lab, registers the nodes as Node objects,
// runs HAProxy on every node serving HTTP on the virtual address, renders the Helm chart
// (charts/kube-vrrp) and applies what a cluster would get, runs the DaemonSet's pod command
// (`kube-vrrp agent`) on each node as the pod would run it (uid 65532 with only NET_ADMIN and
// NET_RAW, the chart's ServiceAccount and RBAC), applies a VirtualIP with a process probe on
// HAProxy, and prints `kubectl get vip` and the nodes' states as they change while HAProxy is
// killed on the MASTER and started again, with the HTTP outage a client measured.
//
// Everything lives in namespaces and temporary directories it creates and removes, on success,
// failure and Ctrl-C; the host's own network is untouched. It needs root.
//
//	go run ./hack/demo --bin bin/kube-vrrp               # what make demo runs
//	go run ./hack/demo --bin bin/kube-vrrp --standalone  # without Kubernetes: kube-vrrp run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
)

func main() {
	bin := flag.String("bin", "bin/kube-vrrp", "path of the kube-vrrp binary")
	alone := flag.Bool("standalone", false, "the demo without Kubernetes: `kube-vrrp run -f vip.yaml` on each node")
	flag.Parse()
	if *alone {
		if err := standalone(*bin); err != nil {
			fmt.Fprintln(os.Stderr, "demo failed:", err)
			os.Exit(1)
		}
		return
	}
	_, err := Run(context.Background(), Options{Bin: *bin, Out: os.Stdout, HandleSignals: true, Nice: -10})
	var sig interrupted
	switch {
	case errors.As(err, &sig):
		fmt.Fprintf(os.Stderr, "demo interrupted (%v); everything was removed\n", sig.sig)
		os.Exit(128 + int(sig.sig))
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// interrupted is Run's error when SIGINT or SIGTERM stopped it (with HandleSignals).
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }
