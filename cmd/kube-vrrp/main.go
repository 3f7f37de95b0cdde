package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// command is one subcommand; run returns the exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"agent", "the in-cluster agent (DaemonSet): VirtualIPs that select this node become VRRP instances", cmdAgent},
		{"controller", "the Service controller (Deployment): LoadBalancer Services get addresses from VirtualIPPools", cmdController},
		{"run", "run VRRP for the VirtualIPs in manifest files, as one node, without Kubernetes", cmdRun},
		{"validate", "check VirtualIP and Secret manifests with the rules of the CRD and the agent", cmdValidate},
		{"convert", "print VirtualIP manifests equivalent to keepalived configurations", cmdConvert},
		{"static-pod", "generate kube-vrrp as a kubeadm static pod holding the control-plane VIP", cmdStaticPod},
		{"state-dir", "prepare the agent's state directory for its user (the chart's init container)", cmdStateDir},
		{"version", "print version and build information", cmdVersion},
	}
}

func main() {
	// The image gives the binary file capabilities (NET_ADMIN, NET_RAW), which puts it in the
	// kernel's secure mode, where Go would print no goroutine stacks on a crash.
	debug.SetTraceback("all")
	// A soft memory limit below the container's, unless GOMEMLIMIT says otherwise (memlimit.go).
	setMemoryLimit()
	// The daemons' collector keeps less garbage, unless GOGC says otherwise (memlimit.go).
	if len(os.Args) > 1 && (os.Args[1] == "agent" || os.Args[1] == "run") {
		setDaemonGCPercent()
	}
	os.Exit(cli(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the subcommand named by args[0].
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "kube-vrrp: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "kube-vrrp makes virtual IPs highly available with VRRP (wire-compatible with keepalived).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: kube-vrrp COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "kube-vrrp COMMAND -h" for a command's flags.`)
}

// fileList is a repeatable -f flag.
type fileList []string

func (f *fileList) String() string { return strings.Join(*f, ",") }

func (f *fileList) Set(s string) error {
	if s == "" {
		return errors.New("empty file name")
	}
	*f = append(*f, s)
	return nil
}

// parseInterspersed parses flags that may come after positional arguments, as in
// "-f a.yaml b.yaml --node lb1" (what a shell glob after -f gives), and passes each positional
// argument to arg in order, between the flags' own Set calls. Everything after "--" is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string, arg func(string) error) error {
	for {
		if err := fs.Parse(args); err != nil {
			return printedError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return nil
		}
		// Parse stops at the first non-flag, or drops a "--" and stops after it.
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			for _, a := range rest {
				if err := arg(a); err != nil {
					return err
				}
			}
			return nil
		}
		if err := arg(rest[0]); err != nil {
			return err
		}
		args = rest[1:]
	}
}

// printedError is an error the FlagSet has already printed, with the usage.
type printedError struct{ error }

func (e printedError) Unwrap() error { return e.error }

// reportFlagError prints err unless the FlagSet already did, and returns the exit code.
func reportFlagError(stderr io.Writer, cmd string, err error) int {
	if !errors.As(err, new(printedError)) {
		fmt.Fprintf(stderr, "kube-vrrp %s: %v\n", cmd, err)
	}
	return flagError(err)
}

// flagError reports a usage error; it returns the exit code for err from FlagSet.Parse.
func flagError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}
