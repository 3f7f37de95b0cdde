// Command demo is `make demo`: kube-vrrp installed on a real Kubernetes cluster, on one
// machine, with a visible failover. It builds a lab of three node network namespaces (n1, n2,
// n3) and a client on one bridge; builds the release image with `make image`; starts etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler in the client's namespace and
// containerd and a kubelet on each node (internal/cluster), and imports the image into every
// node's containerd; runs HAProxy on every node as a node process, serving HTTP on the
// virtual address; installs the chart with the real helm as the README says, waits for the
// DaemonSet's pods, labels the nodes and applies a VirtualIP with a process probe on HAProxy
// with the real kubectl; then kills HAProxy on the MASTER and starts it again, printing
// `kubectl get vip`, the nodes' states as they change and the HTTP outage a client measured;
// and finally runs helm uninstall. It prints how long each phase took.
//
// Everything lives in namespaces, cgroups and temporary directories it creates and removes,
// on success, failure, Ctrl-C and the terminal's closing; the host's own network is untouched.
// It needs root.
//
//	go run ./hack/demo                                   # what make demo runs
//	go run ./hack/demo --keep                            # make demo KEEP=1: the cluster stays up until Ctrl-C
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
	bin := flag.String("bin", "bin/kube-vrrp", "path of the kube-vrrp binary (--standalone only; the cluster runs the image make image builds)")
	alone := flag.Bool("standalone", false, "the demo without Kubernetes: `kube-vrrp run -f vip.yaml` on each node")
	keep := flag.Bool("keep", false, "keep the cluster running after the scenario, and print how to reach it with kubectl and helm, until Ctrl-C")
	flag.Parse()
	if *alone {
		if err := standalone(*bin); err != nil {
			fmt.Fprintln(os.Stderr, "demo failed:", err)
			os.Exit(1)
		}
		return
	}
	_, err := Run(context.Background(), Options{Out: os.Stdout, HandleSignals: true, Nice: -10, Keep: *keep})
	os.Exit(exitStatus(err))
}

// exitStatus says how Run ended, on standard error, and returns the command's exit status:
// 128 plus the signal's number when a signal stopped it, as a shell reports a process killed
// by it.
func exitStatus(err error) int {
	var sig interrupted
	switch {
	case errors.As(err, &sig):
		if sig.err != nil {
			fmt.Fprintf(os.Stderr, "demo interrupted (%v): %v\n", sig.sig, sig.err)
		} else {
			fmt.Fprintf(os.Stderr, "demo interrupted (%v); everything was removed\n", sig.sig)
		}
		return 128 + int(sig.sig)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		return 1
	}
	return 0
}

// interrupted is Run's error when a signal stopped it (with HandleSignals); err is what the
// cleanup failed to do or left behind, if anything.
type interrupted struct {
	sig syscall.Signal
	err error
}

func (i interrupted) Error() string {
	if i.err != nil {
		return fmt.Sprintf("interrupted by %v: %v", i.sig, i.err)
	}
	return "interrupted by " + i.sig.String()
}
