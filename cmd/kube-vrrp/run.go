package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// runOptions are the flags of `kube-vrrp run`.
type runOptions struct {
	files     []string
	node      string
	labels    map[string]string
	level     slog.Level
	logFormat string
	// execProbes lets exec probes run (off by default: a manifest could otherwise run any
	// command as root).
	execProbes bool
	// tokenFiles lets https probes send bearer tokens read from files (off by default: the
	// author of a VirtualIP names the file and the server).
	tokenFiles bool
	// stateDir holds the host lock and the record of bound addresses (hostnet.State);
	// addressMark marks bound addresses with IFA_PROTO (false: the record alone).
	stateDir    string
	addressMark bool
	// events is where every event is written as JSON lines ("" none, "-" standard output).
	events string
	// handoffTimeout bounds a handoff to the successor at a restart (SIGUSR2, docs/design.md
	// §4.9.1).
	handoffTimeout time.Duration
	// kubeconfig, if set, mirrors the state of the VirtualIPs to the cluster (docs/design.md
	// §7.11); VRRP never waits for it.
	kubeconfig string
}

func parseRunFlags(args []string, stderr io.Writer) (runOptions, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		files     fileList
		o         runOptions
		labels    string
		level     string
		logFormat string
	)
	fs.Var(&files, "f", "manifest `FILE` with VirtualIP and Secret objects (repeatable; - reads standard input)")
	fs.StringVar(&o.node, "node", "", "`NAME` of this node, as spec.nodes[].name refers to it (required)")
	fs.StringVar(&labels, "node-labels", "", "labels of this node for spec.nodeSelector, as `k=v,...`")
	fs.StringVar(&level, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "log `FORMAT` on standard error: text or json")
	fs.BoolVar(&o.execProbes, "enable-exec-probes", false, "let exec probes run their commands (off: they fail with a reason saying so)")
	fs.BoolVar(&o.tokenFiles, "enable-probe-token-files", false, "let https probes send a bearer token read from tls.bearerTokenFile (off: they fail with a reason saying so; whoever writes a VirtualIP names the file and the server)")
	addStateFlags(fs, &o.stateDir, &o.addressMark)
	fs.StringVar(&o.events, "events", "", "append every event (transitions, probe results, dropped packets, ...) to `FILE` as JSON lines, - for standard output")
	fs.DurationVar(&o.handoffTimeout, "handoff-timeout", defaultHandoffTimeout, "how long a restart (SIGUSR2) may keep this node's VIPs waiting for the next kube-vrrp run before the backups take over, `DURATION` from 1s to 160s")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "`FILE` with an API server and credentials: report the state of each VirtualIP that a VirtualIP of the same name in the cluster takes this node in to (VirtualIPMembers, the summary); VRRP never waits for it (default: no API server at all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kube-vrrp run -f FILE... --node NAME [--node-labels k=v,...] [--log-level info] [--events FILE] [--kubeconfig FILE]")
		fmt.Fprintln(stderr, "Runs VRRP for every VirtualIP in the files that selects this node, without Kubernetes.")
		fmt.Fprintln(stderr, "With --kubeconfig it also reports their state to the cluster, once the API server answers.")
		fmt.Fprintln(stderr, "SIGTERM or SIGINT hands the addresses over to the backups (priority 0) and exits.")
		fmt.Fprintln(stderr, "SIGUSR2 stops for a restart: the addresses stay for the next kube-vrrp run on this host, which")
		fmt.Fprintln(stderr, "resumes without moving them, and the backups take over if none has within --handoff-timeout.")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args, files.Set); err != nil {
		return runOptions{}, err
	}
	o.files = files
	var err error
	if len(o.files) == 0 {
		return runOptions{}, errors.New("no manifest given: use -f FILE")
	}
	if o.node == "" {
		return runOptions{}, errors.New("--node is required: the name of this node, as spec.nodes[].name refers to it")
	}
	if o.handoffTimeout < time.Second || o.handoffTimeout > 160*time.Second {
		return runOptions{}, fmt.Errorf("--handoff-timeout %s: give 1s to 160s", o.handoffTimeout)
	}
	if o.kubeconfig != "" && slices.Contains(o.files, o.kubeconfig) {
		return runOptions{}, fmt.Errorf("--kubeconfig %s is also given with -f: give the VirtualIP files with -f, the API server's credentials with --kubeconfig", o.kubeconfig)
	}
	if o.labels, err = parseLabels(labels); err != nil {
		return runOptions{}, fmt.Errorf("--node-labels: %w", err)
	}
	if err := o.setLogging(level, logFormat); err != nil {
		return runOptions{}, err
	}
	return o, nil
}

// parseLabels parses "k=v,k2=v2" into valid Kubernetes labels.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return nil, fmt.Errorf("label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			return nil, fmt.Errorf("label %q value %q: %s", k, v, strings.Join(msgs, "; "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// setLogging sets o's log level and format from the values of --log-level and --log-format
// (run, agent and controller take the same two flags).
func (o *runOptions) setLogging(level, format string) error {
	if err := o.level.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	switch format {
	case "text", "json":
		o.logFormat = format
		return nil
	}
	return fmt.Errorf("--log-format %q: use text or json", format)
}

func newLogger(w io.Writer, o runOptions) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// nodeFromHost describes this machine to desired.For.
func nodeFromHost(name string, labels map[string]string, ifs []hostnet.Interface) desired.Node {
	n := desired.Node{Name: name, Labels: labels, Interfaces: make([]desired.Interface, 0, len(ifs))}
	for _, i := range ifs {
		n.Interfaces = append(n.Interfaces, desired.Interface{
			Name: i.Name, Index: i.Index, Up: i.Up, Prefixes: slices.Clone(i.Prefixes),
		})
	}
	return n
}

// buildConfigs returns the Config of every VirtualIP of set that selects node, and the names of
// those that do not. Standalone mode knows no other nodes, so the unicast peers are only
// spec.unicast.peers. Any error fails the whole set: nothing is half-applied.
func buildConfigs(set *manifest.Set, node desired.Node) (cfgs []vrrp.Config, skipped []string, err error) {
	var errs []error
	type slot struct {
		ifname string
		vrid   uint8
		v6     bool
	}
	used := map[slot]string{}
	for i := range set.VirtualIPs {
		vip := &set.VirtualIPs[i]
		ok, err := desired.Selects(vip, node.Name, node.Labels)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			skipped = append(skipped, vip.Name)
			continue
		}
		pw, err := set.Password(vip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg, err := desired.For(vip, node, nil, pw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("VirtualIP %q: %w", vip.Name, err))
			continue
		}
		s := slot{cfg.Interface, cfg.VRID, cfg.Primary.Is6()}
		if other, dup := used[s]; dup {
			errs = append(errs, fmt.Errorf("VirtualIPs %q and %q both use VRID %d on %s: give one of them another spec.vrid",
				other, vip.Name, cfg.VRID, cfg.Interface))
			continue
		}
		used[s] = vip.Name
		cfgs = append(cfgs, cfg)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return cfgs, skipped, nil
}

// checkForeign refuses to start when a virtual address is already on its interface and
// kube-vrrp did not add it (this host's own address, another program's; foreign is
// hostnet.Host.ForeignAddresses): see desired.CheckForeign. It names every such address.
func checkForeign(cfgs []vrrp.Config, foreign func(ifname string) ([]netip.Prefix, error)) error {
	var errs []error
	for _, c := range cfgs {
		have, err := foreign(c.Interface)
		if err != nil {
			errs = append(errs, fmt.Errorf("VirtualIP %q: %w", c.Name, err))
			continue
		}
		if err := desired.CheckForeign(c, have); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("refusing to start: %w", errors.Join(errs...))
	}
	return nil
}

// buildProbes returns the probes of every configured VirtualIP, by name; any error fails the
// whole set, before anything starts.
func buildProbes(set *manifest.Set, cfgs []vrrp.Config) (map[string][]probe.Spec, error) {
	out := map[string][]probe.Spec{}
	var errs []error
	for i := range set.VirtualIPs {
		vip := &set.VirtualIPs[i]
		if !slices.ContainsFunc(cfgs, func(c vrrp.Config) bool { return c.Name == vip.Name }) {
			continue
		}
		specs, err := desired.Probes(vip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[vip.Name] = specs
	}
	return out, errors.Join(errs...)
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseRunFlags(args, stderr)
	if err != nil {
		return reportFlagError(stderr, "run", err)
	}
	log := newLogger(stderr, o)
	if err := run(ctx, o, log, stdout, stderr); err != nil {
		log.Error("kube-vrrp run failed", "err", err)
		return exitError
	}
	return exitOK
}

// errInvalid means the manifests have errors; they were printed.
var errInvalid = errors.New("refusing to start: the manifests have errors")

// errNotifyDisabled means a VirtualIP has spec.notify and exec is disabled; the VirtualIPs were
// printed.
var errNotifyDisabled = errors.New("refusing to start: spec.notify runs commands only with --enable-exec-probes; add it, or remove spec.notify")

func run(ctx context.Context, o runOptions, log *slog.Logger, stdout, stderr io.Writer) error {
	// Everything that can be checked without touching the host is checked first.
	set, err := manifest.Load(o.files...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errInvalid
	}
	bad := false
	for _, r := range check(set) {
		for _, e := range r.errs {
			fmt.Fprintln(stderr, e)
			bad = true
		}
	}
	if bad {
		return errInvalid
	}
	if !o.execProbes {
		// A command must run wherever its VirtualIP runs, or the VirtualIP not at all: a
		// keepalived user relies on notify_master to start what the VIP serves.
		if lines := notifyDisabled(set, o.node, o.labels); len(lines) > 0 {
			for _, l := range lines {
				fmt.Fprintln(stderr, l)
			}
			return errNotifyDisabled
		}
	}

	// RemoveStale (in openState) leaves what the predecessor handed over; the agent resumes
	// it or removes it.
	state, err := openState(ctx, log, o.stateDir, o.addressMark)
	if err != nil {
		return err
	}
	defer state.Close()
	handed := takeHandoff(state, log)

	ifs, err := hostnet.Interfaces()
	if err != nil {
		return err
	}
	node := nodeFromHost(o.node, o.labels, ifs)
	cfgs, skipped, err := buildConfigs(set, node)
	if err != nil {
		return err
	}
	for _, name := range skipped {
		log.Info("VirtualIP does not select this node", "vip", name, "node", o.node)
	}
	if len(cfgs) == 0 {
		return fmt.Errorf("no VirtualIP selects node %q: check spec.nodes against --node, and spec.nodeSelector against --node-labels", o.node)
	}
	probes, err := buildProbes(set, cfgs)
	if err != nil {
		return err
	}

	host := hostnet.NewHost(log, hostOptions(state, o.addressMark)...)
	defer host.Close()
	if err := checkForeign(cfgs, withoutHandedOver(host.ForeignAddresses, handed)); err != nil {
		return err
	}
	accept := &acceptFilter{host: host}
	defer accept.close(log)
	a := agent.New(host, log, agent.Options{Probes: probe.Options{ExecEnabled: o.execProbes, TokenFilesEnabled: o.tokenFiles}, AcceptFilter: accept.open})
	a.Resume(handed, forgetHandoff(state, log))
	if o.events != "" {
		w, err := openEvents(o.events, stdout)
		if err != nil {
			return err
		}
		stopEvents := writeEvents(a.Subscribe("events", eventsBuffer), w, log)
		// After the agent has stopped: the handover's own events are written too.
		defer stopEvents()
	}
	if o.execProbes && slices.ContainsFunc(set.VirtualIPs, func(v v1alpha1.VirtualIP) bool {
		return v.Spec.Notify != nil && slices.ContainsFunc(cfgs, func(c vrrp.Config) bool { return c.Name == v.Name })
	}) {
		// Before the instances are applied, so that their first changes run the commands too;
		// closed after the agent has stopped, so that their STOP does.
		hk := startHooks(a, log)
		defer hk.close(a)
		for _, v := range set.VirtualIPs {
			if slices.ContainsFunc(cfgs, func(c vrrp.Config) bool { return c.Name == v.Name }) {
				hk.Set(v.Name, v.Spec.Notify)
			}
		}
	}
	for _, c := range cfgs {
		if err := a.Apply(c.Name, c, probes[c.Name]...); err != nil {
			return err
		}
		log.Info("configured", "vip", c.Name, "interface", c.Interface, "vrid", c.VRID, "version", c.Version,
			"priority", c.Priority, "primary", c.Primary, "addresses", c.Addresses, "interval", c.Interval.String(),
			"unicast", len(c.Peers) > 0)
	}

	ctx, stop := notifyStop(ctx, func(sig os.Signal) {
		if sig == restartSignal {
			log.Info("stopping for a restart: handing the VIPs to the next kube-vrrp run", "signal", sig.String(),
				"handoffTimeout", o.handoffTimeout.String())
			a.HandoffOnStop(o.handoffTimeout)
			return
		}
		log.Info("stopping: handing the VIPs over to the backups", "signal", sig.String())
	}, syscall.SIGTERM, syscall.SIGINT, restartSignal)
	defer stop()
	if o.kubeconfig != "" {
		// Beside the agent, never before it: the instances run whether or not the API server
		// answers, and the mirror only reads their state.
		m, err := newMirror(o.kubeconfig, o.node, log, a, set.VirtualIPs, cfgs)
		if err != nil {
			return err
		}
		startMirror(ctx, m)
	}
	log.Info("kube-vrrp running", "node", o.node, "version", version, "instances", len(cfgs))
	if err := a.Run(ctx); err != nil {
		return err
	}
	writeHandoff(state, a, log)
	log.Info("kube-vrrp stopped", "node", o.node)
	return nil
}

// notifyStop returns a context cancelled at the first of sigs, after onSignal has been called
// with it (from another goroutine); stop releases the signals.
func notifyStop(ctx context.Context, onSignal func(os.Signal), sigs ...os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, slices.DeleteFunc(sigs, func(s os.Signal) bool { return s == nil })...)
	go func() {
		select {
		case sig := <-ch:
			onSignal(sig)
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}

// takeHandoff reads the handoff record (docs/design.md §4.9.1): what the previous agent on this
// host handed over, for the agent to resume. A record that cannot be trusted is removed and
// logged, and nothing is resumed. The record stays until the agent has settled its entries
// (forgetHandoff): an agent that fails before, or is killed, leaves it to the next start, which
// would otherwise remove the handed-over addresses as a killed agent's.
func takeHandoff(st *hostnet.State, log *slog.Logger) []agent.HandoffEntry {
	es, err := st.TakeHandoff()
	if err != nil {
		log.Warn("ignoring the handoff record: nothing is resumed, the handed-over addresses expire", "err", err)
	}
	out := make([]agent.HandoffEntry, 0, len(es))
	for _, e := range es {
		log.Info("handed over by the previous agent", "interface", e.Interface, "vrid", e.VRID, "ipv6", e.IPv6,
			"addresses", e.Addresses, "deadline", e.Deadline)
		out = append(out, agent.HandoffEntry{Interface: e.Interface, VRID: e.VRID, IPv6: e.IPv6,
			Addresses: slices.Clone(e.Addresses), Deadline: e.Deadline})
	}
	return out
}

// forgetHandoff is the agent's settled function (agent.Agent.Resume): it removes the handoff
// record once every entry is resumed or removed.
func forgetHandoff(st *hostnet.State, log *slog.Logger) func() {
	return func() {
		if err := st.ForgetHandoff(); err != nil {
			log.Warn("removing the settled handoff record; a next start within its deadline spares its addresses", "err", err)
		}
	}
}

// writeHandoff writes what the stopped agent handed over (HandoffOnStop) as the handoff record
// for its successor. Unwritten, the successor starts as usual: the addresses expire at the
// deadline and the backups take over.
func writeHandoff(st *hostnet.State, a *agent.Agent, log *slog.Logger) {
	hs := a.HandedOff()
	if len(hs) == 0 {
		return
	}
	es := make([]hostnet.HandoffEntry, 0, len(hs))
	for _, h := range hs {
		es = append(es, hostnet.HandoffEntry{Interface: h.Interface, VRID: h.VRID, IPv6: h.IPv6,
			Addresses: slices.Clone(h.Addresses), Deadline: h.Deadline})
		log.Info("handed over to the successor", "interface", h.Interface, "vrid", h.VRID, "addresses", h.Addresses,
			"deadline", h.Deadline)
	}
	if err := st.WriteHandoff(es); err != nil {
		log.Error("writing the handoff record: the successor will not resume, the backups take over at the deadline", "err", err)
	}
}

// withoutHandedOver leaves out of foreign's answer the addresses handed over on the interface
// and not yet past their deadline: on a kernel without address marks they look foreign until
// the agent has adopted them.
func withoutHandedOver(foreign func(string) ([]netip.Prefix, error), handed []agent.HandoffEntry) func(string) ([]netip.Prefix, error) {
	if len(handed) == 0 {
		return foreign
	}
	return func(ifname string) ([]netip.Prefix, error) {
		ps, err := foreign(ifname)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		return slices.DeleteFunc(ps, func(p netip.Prefix) bool {
			return slices.ContainsFunc(handed, func(e agent.HandoffEntry) bool {
				return e.Interface == ifname && now.Before(e.Deadline) && slices.Contains(e.Addresses, p)
			})
		}), nil
	}
}

// eventsBuffer is how many events --events may have waiting before the oldest are lost (and
// counted in a Dropped event): far more than a burst of flaps, for a file on local disk.
const eventsBuffer = 1 << 14

// eventsBufferK8s is how many events the agent keeps for Kubernetes Events while they wait to
// be recorded, e.g. while the API server is away: beyond it the oldest are lost and counted
// (kube_vrrp_events_lost_total{consumer="events"}); status entries do not depend on them.
const eventsBufferK8s = 4096

// openEvents opens the --events destination: standard output for "-", else a file appended to.
func openEvents(path string, stdout io.Writer) (io.WriteCloser, error) {
	if path == "-" {
		return nopCloser{stdout}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("--events: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// writeEvents writes every event of sub to w, one JSON object (vrrp.Event) per line, until the
// returned stop is called; stop writes what is still waiting, then closes w.
func writeEvents(sub *agent.Subscription, w io.WriteCloser, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	enc := json.NewEncoder(w)
	write := func(evs []vrrp.Event) {
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				log.Error("writing events", "err", err)
				return
			}
		}
	}
	go func() {
		defer close(done)
		for {
			evs, err := sub.Next(ctx)
			if err != nil {
				return
			}
			write(evs)
		}
	}()
	return func() {
		cancel()
		<-done
		write(sub.Take())
		sub.Close()
		if err := w.Close(); err != nil {
			log.Error("closing events", "err", err)
		}
	}
}

// defaultHandoffTimeout is --handoff-timeout's default for run and agent (docs/design.md
// §4.9.1): 10 s, since a rolling update's new pod
// (kubelet, containerd, init container, the agent reading its VirtualIPs) took up to 7.4 s
// on a loaded real cluster, beyond the 7.2 s a priority-100 backup waited at 8 s.
const defaultHandoffTimeout = 10 * time.Second
