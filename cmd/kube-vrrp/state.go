package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
)

// addStateFlags adds the flags of the host-local state shared by run and agent.
func addStateFlags(fs *flag.FlagSet, dir *string, mark *bool) {
	fs.StringVar(dir, "state-dir", hostnet.DefaultStateDir,
		"`DIR` private to the agent's user (mode 0700, on a tmpfs such as /run) holding the host lock and the record of bound addresses; one agent per directory")
	fs.BoolVar(mark, "address-mark", true,
		"mark bound addresses with IFA_PROTO (Linux 6.1 and later) to find them after a crash; false relies on the record in --state-dir alone, as on older kernels")
}

// openState takes the host lock and removes the addresses an earlier agent left behind (a
// SIGKILL, an OOM kill) before this one joins: those carrying the mark, and those in the record.
func openState(ctx context.Context, log *slog.Logger, dir string, mark bool) (*hostnet.State, error) {
	st, err := hostnet.OpenState(dir)
	if err != nil {
		if errors.Is(err, hostnet.ErrLocked) {
			return nil, fmt.Errorf("stop the other agent first: %w", err)
		}
		return nil, fmt.Errorf("%w (set --state-dir to a directory of this user's)", err)
	}
	removed, err := hostnet.RemoveStale(ctx, st, mark)
	for _, p := range removed {
		log.Info("removed stale virtual address", "address", p)
	}
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// hostOptions are the Host's options for the state and the mark switch.
func hostOptions(st *hostnet.State, mark bool) []hostnet.HostOption {
	opts := []hostnet.HostOption{hostnet.WithState(st)}
	if !mark {
		opts = append(opts, hostnet.WithoutAddressMark())
	}
	return opts
}
