//go:build unix

package main

import (
	"os"
	"syscall"
)

// restartSignal is `kube-vrrp run`'s "stop for a restart" (docs/design.md §4.9.1).
var restartSignal os.Signal = syscall.SIGUSR2
