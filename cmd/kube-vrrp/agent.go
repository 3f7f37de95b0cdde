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
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// agentOptions are the flags of `kube-vrrp agent`.
type agentOptions struct {
	node, namespace, kubeconfig string
	// metricsAddr serves /metrics: HTTPS, authenticated and authorized by the API server
	// unless metricsSecure is false; metricsCertDir holds its certificate (tls.crt, tls.key).
	metricsAddr    string
	metricsSecure  bool
	metricsCertDir string
	// healthAddr serves /healthz and /readyz in plain HTTP for the kubelet.
	healthAddr string
	execProbes bool
	// tokenFiles lets https probes send bearer tokens read from files (off by default: the
	// author of a VirtualIP names the file and the server).
	tokenFiles bool
	log        runOptions // level and format
	// stateDir and addressMark: see addStateFlags.
	stateDir    string
	addressMark bool
	// handoffTimeout bounds a handoff to the successor at a restart (docs/design.md §4.9.1):
	// at SIGTERM, when controllers.StopWatch says the pod is being replaced.
	handoffTimeout time.Duration
}

func parseAgentFlags(args []string, stderr io.Writer) (agentOptions, error) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o agentOptions
	var level, format string
	fs.StringVar(&o.node, "node-name", os.Getenv("NODE_NAME"), "`NAME` of the Node this agent runs on (default $NODE_NAME)")
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "kube-vrrp"
	}
	fs.StringVar(&o.namespace, "namespace", ns, "`NAMESPACE` of the agent: Secrets for authentication (default $POD_NAMESPACE, else kube-vrrp)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "`FILE` with the API server and credentials (default: in-cluster, or $KUBECONFIG)")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":9402", "`ADDR` (host:port) of /metrics (\"0\" disables): HTTPS, and a caller needs a bearer token the API server authenticates and RBAC allows to get the non-resource URL /metrics")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve /metrics over HTTPS with authentication and authorization; false serves it in plain HTTP to anyone who can connect (a lab only)")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "`DIR` with tls.crt and tls.key for /metrics, reloaded when they change (default: a self-signed certificate made at start)")
	fs.StringVar(&o.healthAddr, "health-probe-bind-address", "127.0.0.1:9403", "`ADDR` of /healthz and /readyz in plain HTTP for the kubelet (\"0\" disables); answers even when the API server is down")
	fs.BoolVar(&o.execProbes, "enable-exec-probes", false, "let exec probes run their commands (off: they fail with a reason saying so)")
	fs.BoolVar(&o.tokenFiles, "enable-probe-token-files", false, "let https probes send a bearer token read from tls.bearerTokenFile (off: they fail with a reason saying so; whoever writes a VirtualIP names the file and the server)")
	addStateFlags(fs, &o.stateDir, &o.addressMark)
	fs.DurationVar(&o.handoffTimeout, "handoff-timeout", defaultHandoffTimeout, "how long a restart (a rolling update of the DaemonSet) may keep this node's VIPs waiting for the successor before the backups take over, `DURATION` from 1s to 160s")
	fs.StringVar(&level, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	fs.StringVar(&format, "log-format", "json", "log `FORMAT` on standard error: text or json")
	if err := fs.Parse(args); err != nil {
		return o, printedError{err}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.node == "" {
		return o, errors.New("--node-name (or $NODE_NAME, from the downward API) is required")
	}
	for _, f := range []struct{ name, addr string }{{"metrics-bind-address", o.metricsAddr}, {"health-probe-bind-address", o.healthAddr}} {
		if f.addr == "0" {
			continue
		}
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return o, fmt.Errorf("--%s %q: give host:port, e.g. :9402, 127.0.0.1:9403 or [2001:db8::1]:9402 (\"0\" disables it)", f.name, f.addr)
		}
	}
	if o.metricsAddr != "0" && o.healthAddr != "0" && o.metricsAddr == o.healthAddr {
		return o, fmt.Errorf("--metrics-bind-address and --health-probe-bind-address are both %s: give them different ports", o.metricsAddr)
	}
	if o.handoffTimeout < time.Second || o.handoffTimeout > 160*time.Second {
		return o, fmt.Errorf("--handoff-timeout %s: give 1s to 160s", o.handoffTimeout)
	}
	if o.metricsCertDir != "" && !o.metricsSecure {
		return o, errors.New("--metrics-cert-dir is for HTTPS: drop it, or --metrics-secure=false")
	}
	if err := o.log.setLogging(level, format); err != nil {
		return o, err
	}
	return o, nil
}

func cmdAgent(ctx context.Context, args []string, _, stderr io.Writer) int {
	o, err := parseAgentFlags(args, stderr)
	if err != nil {
		return reportFlagError(stderr, "agent", err)
	}
	// Before the API server's configuration, whose errors would hide this one on a laptop.
	if err := needLinux(); err != nil {
		fmt.Fprintf(stderr, "kube-vrrp agent: %v\n", err)
		return exitError
	}
	log := newLogger(stderr, o.log)
	if err := runAgent(ctx, o, log); err != nil {
		log.Error("kube-vrrp agent failed", "err", err)
		return exitError
	}
	return exitOK
}

func scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// apiHealthCheck makes client-go notice a dead connection to the API server within seconds. A
// node whose network is cut keeps its one HTTP/2 connection to the API server, and nothing
// says it is dead until client-go's health check gives up (no frame for 30 s, then a ping
// unanswered for 15 s) or TCP's backed-off retransmissions do: for up to ~45 s after the
// network is back, VirtualIP edits and deletes do not reach the node and its status is not
// written. Values in the environment win.
var apiHealthCheck = map[string]string{
	"HTTP2_READ_IDLE_TIMEOUT_SECONDS": "5",
	"HTTP2_PING_TIMEOUT_SECONDS":      "5",
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	for k, v := range apiHealthCheck {
		if _, ok := os.LookupEnv(k); !ok {
			if err := os.Setenv(k, v); err != nil {
				return nil, err
			}
		}
	}
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}

// runAgent runs the VRRP agent and, beside it, the Kubernetes side. The data plane never waits
// for the API server: the agent runs on the last specs it was given, and the managers that
// talk to the API server are restarted on failure without touching it.
func runAgent(ctx context.Context, o agentOptions, log *slog.Logger) error {
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("API server configuration: %w", err)
	}
	sch, err := scheme()
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("API server configuration: %w", err)
	}
	// RemoveStale (in openState) leaves what the predecessor handed over; the agent resumes
	// it as the VirtualIPs are read, or removes it at the deadline.
	state, err := openState(ctx, log, o.stateDir, o.addressMark)
	if err != nil {
		return err
	}
	defer state.Close()
	handed := takeHandoff(state, log)

	host := hostnet.NewHost(log, hostOptions(state, o.addressMark)...)
	defer host.Close()
	accept := &acceptFilter{host: host}
	defer accept.close(log)
	a := agent.New(host, log, agent.Options{Probes: probe.Options{ExecEnabled: o.execProbes, TokenFilesEnabled: o.tokenFiles}, AcceptFilter: accept.open})
	a.Resume(handed, forgetHandoff(state, log))

	// SIGTERM is a restart when the DaemonSet is replacing this pod (a rolling update): the
	// VIPs are handed to the new pod's agent. Anything else is a final stop: they go to the
	// backups at once. The decision is made from watches kept current beforehand (its own
	// pod and node, its DaemonSet and ControllerRevisions), not from requests at the signal;
	// watches that are not current mean a final stop.
	podNamespace := os.Getenv("POD_NAMESPACE")
	if podNamespace == "" {
		podNamespace = o.namespace
	}
	podName := os.Getenv("POD_NAME")
	if podName == "" {
		log.Warn("POD_NAME is not set (the downward API): every SIGTERM is a final stop, a rolling update moves the VIPs")
	}
	stopWatch := controllers.NewStopWatch(clientset, podNamespace, podName, o.node, log)
	ctx, stop := notifyStop(ctx, func(sig os.Signal) {
		if sig != syscall.SIGTERM {
			log.Info("stopping: handing the VIPs over to the backups", "signal", sig.String())
			return
		}
		at := time.Now()
		restart, reason := stopWatch.Decide(context.Background(), controllers.StopDecisionWait)
		attrs := []any{"reason", reason, "decidedIn", time.Since(at).String()}
		if seen := stopWatch.DeletionSeen(); !seen.IsZero() {
			// Positive: the watch saw the pod's deletion before the signal came.
			attrs = append(attrs, "podDeletionSeenBeforeSignal", at.Sub(seen).String())
		}
		if restart {
			log.Info("stopping for a restart: handing the VIPs to the new agent",
				append(attrs, "handoffTimeout", o.handoffTimeout.String())...)
			a.HandoffOnStop(o.handoffTimeout)
			return
		}
		log.Info("stopping: handing the VIPs over to the backups", attrs...)
	}, syscall.SIGTERM, syscall.SIGINT)
	// The watches live until the decision is made (notifyStop cancels ctx after it).
	stopWatchDone := make(chan struct{})
	go func() {
		defer close(stopWatchDone)
		stopWatch.Run(ctx)
	}()
	defer func() { <-stopWatchDone }()
	defer stop()
	// Subscribed before the agent runs, so the first transitions become Events too; it and
	// the reporter outlive the node managers, keeping what happens while the API server is
	// away (and the transitions the flap limit holds back).
	reporter := &controllers.EventReporter{Stream: a.Subscribe("events", eventsBufferK8s), NodeName: o.node, Log: log}
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	rejected := controllers.NewRejections(func(string) { poke() })
	warnings := controllers.NewWarnings(func(string) { poke() })
	// spec.notify's commands run only where exec is enabled (docs/design.md §6.6): subscribed
	// before the agent runs, so that the first changes run them too. Elsewhere the VirtualIPs
	// run without them, and their members and a Warning Event say so (NotifyDisabled).
	var hk *hooks
	var notifyHooks controllers.NotifyHooks
	if o.execProbes {
		hk = startHooks(a, log)
		notifyHooks = hk
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(ctx) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.Changes():
				poke()
			}
		}
	}()

	col := &controllers.Collector{Agent: a, Node: o.node}
	if hk != nil {
		col.Notify = hk.Runner
	}
	if err := metrics.Registry.Register(col); err != nil {
		return err
	}
	if o.metricsAddr != "0" {
		srv, err := controllers.NewMetricsServer(controllers.MetricsOptions{
			BindAddress: o.metricsAddr, Secure: o.metricsSecure, CertDir: o.metricsCertDir, ServerName: o.node,
		}, cfg)
		if err != nil {
			return err
		}
		// Apart from the node manager, which restarts whenever the API server is unreachable;
		// restarted when it fails (e.g. its address not yet there at boot).
		go keepRunning(ctx, log, "metrics server", srv.Start)
	}
	// Ready once the VirtualIPs are read and their instances started: a rolling update
	// replaces the next node's agent (maybe a MASTER handing off) only when this one listens.
	ready := controllers.NewReadiness(a)
	if o.healthAddr != "0" {
		srv, err := controllers.ServeHealthReady(o.healthAddr, a, ready)
		if err != nil {
			return err
		}
		defer srv.Close()
	}

	interfaces := func() ([]desired.Interface, error) {
		ifs, err := hostnet.Interfaces()
		if err != nil {
			return nil, err
		}
		return nodeFromHost(o.node, nil, ifs).Interfaces, nil
	}
	node := func(ctx context.Context) error {
		mgr, err := newNodeManager(cfg, sch)
		if err != nil {
			return err
		}
		// Secrets: got by name from the API server, never listed or watched (the agent's Role
		// grants get only); a changed password is read again within a minute.
		vr := &controllers.VirtualIPReconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), NodeName: o.node,
			Namespace: o.namespace, Agent: a, Interfaces: interfaces, Rejected: rejected, Log: log,
			ForeignAddresses: withoutHandedOver(host.ForeignAddresses, handed), Readiness: ready,
			Notify: notifyHooks, Warnings: warnings}
		if err := vr.SetupWithManager(mgr); err != nil {
			return err
		}
		if err := mgr.Add(reporter.For(mgr.GetClient(), mgr.GetEventRecorder(eventsReporter))); err != nil {
			return err
		}
		sr := &controllers.StatusReconciler{Client: mgr.GetClient(), Reader: mgr.GetClient(), NodeName: o.node,
			Agent: a, Rejected: rejected, Warnings: warnings, Recorder: mgr.GetEventRecorder(eventsReporter), Log: log, Changes: kick}
		if err := addStatusControllers(mgr, log, sr, &controllers.Aggregator{Client: mgr.GetClient(), NodeName: o.node, Log: log}); err != nil {
			return err
		}
		return mgr.Start(ctx)
	}
	go keepRunning(ctx, log, "node controllers", node)

	log.Info("kube-vrrp agent running", "node", o.node, "namespace", o.namespace, "version", version)
	<-ctx.Done()
	err = <-agentDone // the handover (priority 0, addresses removed) or handoff is done
	writeHandoff(state, a, log)
	hk.close(a) // the STOP of every instance, and what waited
	log.Info("kube-vrrp agent stopped", "node", o.node)
	return err
}

// eventsReporter is the reporting controller of the Events the agent and run --kubeconfig
// record.
const eventsReporter = "kube-vrrp-agent"

// newNodeManager is the manager of the controllers that talk to the API server, for agent and
// for run --kubeconfig: no metrics or health endpoints of its own (agent serves them apart, so
// that they answer while the API server is away), no leader election.
func newNodeManager(cfg *rest.Config, sch *runtime.Scheme) (ctrl.Manager, error) {
	return ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 sch,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Nodes cached as far as the controllers read them, no managedFields of anything,
		// and no Secret informer, whoever reads a Secret: the agent may not list or watch
		// them.
		// The Nodes' first list is read one Node at a time, each trimmed as it is read.
		Cache:  controllers.CacheOptionsFor(cfg),
		Client: controllers.ClientOptions(),
	})
}

// addStatusControllers adds this node's status controllers to mgr: sr, which writes its
// VirtualIPMembers, and agg, which every agent runs (no leader election) while one member
// writes each VirtualIP's summary: the MASTER its members name, else the first member by name,
// with a stand-by for a writer cut off (docs/design.md §7.5, §7.6). Without the
// VirtualIPMember CRD (a release upgraded before its CRDs were applied) VRRP still runs: only
// the status controllers wait, and the manager fails once the CRD is served, so that it is
// started again with them.
func addStatusControllers(mgr ctrl.Manager, log *slog.Logger, sr *controllers.StatusReconciler, agg *controllers.Aggregator) error {
	served, err := membersServed(mgr.GetRESTMapper())
	if err != nil {
		return err
	}
	if !served {
		log.Error("the VirtualIPMember CRD is not installed: VRRP runs, but this node reports no status until it is " +
			"(kubectl apply --server-side -f charts/kube-vrrp/crds/)")
		return mgr.Add(runnableFunc(func(ctx context.Context) error {
			return waitMembersServed(ctx, mgr.GetRESTMapper(), membersPoll)
		}))
	}
	if err := sr.SetupWithManager(mgr); err != nil {
		return err
	}
	return agg.SetupWithManager(mgr)
}

// membersPoll is how often an agent started without the VirtualIPMember CRD looks for it.
const membersPoll = 10 * time.Second

// membersServed reports whether the API server serves VirtualIPMembers; an error other than
// "no such kind" (the API server unreachable) is returned.
func membersServed(mapper meta.RESTMapper) (bool, error) {
	gvk := v1alpha1.GroupVersion.WithKind("VirtualIPMember")
	_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("looking up VirtualIPMember: %w", err)
}

// waitMembersServed returns an error once the API server serves VirtualIPMembers, so that the
// manager starts again with the status controllers; nil when ctx is done.
func waitMembersServed(ctx context.Context, mapper meta.RESTMapper, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if ok, _ := membersServed(mapper); ok {
				return errors.New("the VirtualIPMember CRD is installed now: starting the status controllers")
			}
		}
	}
}

// runnableFunc is a function run by a manager.
type runnableFunc func(ctx context.Context) error

func (f runnableFunc) Start(ctx context.Context) error { return f(ctx) }

// keepRunning runs f until ctx is done, starting it again (with backoff) when it fails, e.g.
// when the API server is unreachable at start.
func keepRunning(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := f(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		log.Warn("restarting "+what, "err", err, "in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
