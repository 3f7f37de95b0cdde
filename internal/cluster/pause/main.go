// Command pause is the lab cluster's pod sandbox (infra) process, and the init of each lab
// node's PID namespace: it reaps every child that ends (as PID 1 of a namespace it adopts the
// orphans: the shims of deleted pods, daemonized processes that were killed), and exits 0 on
// SIGTERM or SIGINT. internal/cluster builds it into the pause image containerd's CRI is
// configured with, so no registry is needed.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range c {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
