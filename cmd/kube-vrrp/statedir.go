package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
)

// cmdStateDir prepares the agent's state directory: the chart's init container runs it as root
// with CAP_CHOWN, so that the agent, a non-root user, owns the hostPath directory.
func cmdStateDir(_ context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("state-dir", flag.ContinueOnError)
	fs.SetOutput(stderr)
	owner := fs.String("owner", "65532:65532", "`UID:GID` of the agent, who gets the directory (mode 0700)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kube-vrrp state-dir [--owner UID:GID] DIR")
		fmt.Fprintln(stderr, "Creates DIR if needed and gives it to the agent's user, mode 0700 (run as root; the chart's init container does).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "kube-vrrp state-dir: give exactly one directory")
		return exitUsage
	}
	uid, gid, err := parseOwner(*owner)
	if err != nil {
		fmt.Fprintf(stderr, "kube-vrrp state-dir: --owner %q: %v\n", *owner, err)
		return exitUsage
	}
	if err := hostnet.PrepareStateDir(fs.Arg(0), uid, gid); err != nil {
		fmt.Fprintf(stderr, "kube-vrrp state-dir: %v\n", err)
		return exitError
	}
	return exitOK
}

// parseOwner reads UID:GID, numeric ids only (the image has no user database).
func parseOwner(s string) (int, int, error) {
	u, g, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, errors.New("want UID:GID")
	}
	uid, err1 := strconv.ParseUint(u, 10, 31)
	gid, err2 := strconv.ParseUint(g, 10, 31)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("want numeric UID:GID")
	}
	return int(uid), int(gid), nil
}
