package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kube-vrrp/kube-vrrp/controllers/loadbalancer"
)

// controllerOptions are the flags of `kube-vrrp controller`.
type controllerOptions struct {
	namespace, kubeconfig string
	leaderElect           bool
	serveClassless        bool
	healthAddr            string
	log                   runOptions // level and format
}

func parseControllerFlags(args []string, stderr io.Writer) (controllerOptions, error) {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o controllerOptions
	var level, format string
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "kube-vrrp"
	}
	fs.StringVar(&o.namespace, "namespace", ns, "`NAMESPACE` of the controller: its Lease "+loadbalancer.LeaseName+" (default $POD_NAMESPACE, else kube-vrrp)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "`FILE` with the API server and credentials (default: in-cluster, or $KUBECONFIG)")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "allocate only while holding the Lease, so that one replica of several allocates (false: a single process, e.g. outside the cluster)")
	fs.BoolVar(&o.serveClassless, "serve-classless", false, "also serve the Services of type LoadBalancer that set no spec.loadBalancerClass, as the cluster's default load balancer (none other may run)")
	fs.StringVar(&o.healthAddr, "health-probe-bind-address", ":9404", "`ADDR` of /healthz and /readyz in plain HTTP for the kubelet (\"0\" disables)")
	fs.StringVar(&level, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	fs.StringVar(&format, "log-format", "json", "log `FORMAT` on standard error: text or json")
	if err := fs.Parse(args); err != nil {
		return o, printedError{err}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.healthAddr != "0" {
		if _, _, err := net.SplitHostPort(o.healthAddr); err != nil {
			return o, fmt.Errorf("--health-probe-bind-address %q: give host:port, e.g. :9404 (\"0\" disables it)", o.healthAddr)
		}
	}
	if o.leaderElect && o.namespace == "" {
		return o, errors.New("--namespace is required with --leader-elect: the Lease lives there")
	}
	if err := o.log.setLogging(level, format); err != nil {
		return o, err
	}
	return o, nil
}

// cmdController runs the Service controller (docs/design.md §7.12) until SIGTERM or SIGINT.
func cmdController(ctx context.Context, args []string, _, stderr io.Writer) int {
	o, err := parseControllerFlags(args, stderr)
	if err != nil {
		return reportFlagError(stderr, "controller", err)
	}
	log := newLogger(stderr, o.log)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := runController(ctx, o, log); err != nil {
		log.Error("kube-vrrp controller failed", "err", err)
		return exitError
	}
	return exitOK
}

func runController(ctx context.Context, o controllerOptions, log *slog.Logger) error {
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("API server configuration: %w", err)
	}
	mgr, err := loadbalancer.NewManager(cfg, loadbalancer.Options{Namespace: o.namespace, LeaderElection: o.leaderElect,
		ServeClassless: o.serveClassless, HealthProbeBindAddress: o.healthAddr, Log: log})
	if err != nil {
		return err
	}
	log.Info("kube-vrrp controller running", "namespace", o.namespace, "leaderElect", o.leaderElect, "serveClassless", o.serveClassless, "version", version)
	return mgr.Start(ctx)
}
