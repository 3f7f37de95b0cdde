package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
)

// addStateFlags adds the flags of the host-local state shared by run and agent.
func addStateFlags(fs *flag.FlagSet, dir *string, mark *bool) {
	fs.StringVar(dir, "state-dir", hostnet.DefaultStateDir,
		"`DIR` private to the agent's user (mode 0700, on a tmpfs such as /run) holding the host lock and the record of bound addresses; one agent per directory")
	fs.BoolVar(mark, "address-mark", true,
		"mark bound addresses with IFA_PROTO (Linux 6.1 and later) to find them after a crash; false relies on the record in --state-dir alone, as on older kernels")
}

// needLinux is the error of the commands that drive the host (run, agent) on other systems,
// where pkg/hostnet has only stubs; it wraps errors.ErrUnsupported.
func needLinux() error {
	if err := hostnet.Supported(); err != nil {
		return fmt.Errorf("running VRRP needs Linux (netlink, raw sockets, nftables): %w", err)
	}
	return nil
}

// openState takes the host lock and removes the addresses an earlier agent left behind (a
// SIGKILL, an OOM kill) before this one joins: those carrying the mark, and those in the record.
// It is the first thing run does to the host, so on other systems it fails there (needLinux).
func openState(ctx context.Context, log *slog.Logger, dir string, mark bool) (*hostnet.State, error) {
	if err := needLinux(); err != nil {
		return nil, err
	}
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
	// A killed agent's accept-mode table would keep dropping packets for its addresses.
	switch gone, err := hostnet.RemoveStaleAcceptTable(); {
	case err != nil:
		// No nf_tables here: only accept: false needs it, and it is refused then.
		log.Debug("no stale accept-mode table removed", "err", err)
	case gone:
		log.Info("removed the accept-mode nftables table of an earlier agent", "table", hostnet.AcceptTable)
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

// acceptFilter creates the host's Accept_Mode filter when the first instance with accept: false
// needs it (agent.Options.AcceptFilter), and deletes its table when the agent stops.
type acceptFilter struct {
	host *hostnet.Host
	f    *hostnet.AcceptFilter
}

func (a *acceptFilter) open() (agent.AcceptFilter, error) {
	f, err := a.host.AcceptFilter()
	if err != nil {
		return nil, err
	}
	a.f = f
	return f, nil
}

// close deletes the filter's table; call it once every instance has stopped.
func (a *acceptFilter) close(log *slog.Logger) {
	if a.f == nil {
		return
	}
	if err := a.f.Close(); err != nil {
		log.Warn("removing the accept-mode nftables table", "err", err)
	}
}
