// Command pause is the lab cluster's pod sandbox (infra) process: it waits for SIGTERM or
// SIGINT and exits 0. internal/cluster builds it into the pause image containerd's CRI is
// configured with, so no registry is needed.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
