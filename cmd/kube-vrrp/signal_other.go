//go:build !unix

package main

import "os"

// restartSignal is `kube-vrrp run`'s "stop for a restart"; there is none here, where run does
// not run (needLinux).
var restartSignal os.Signal
