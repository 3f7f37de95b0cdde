package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Status from run mode (docs/design.md §7.11): `kube-vrrp run --kubeconfig FILE` reports the
// state of the VirtualIPs it runs from its files to the cluster, as an agent does, once the API
// server answers: this node's VirtualIPMembers and, when it is their writer, the summaries. The
// VRRP instances never wait for it and it cannot change them: it reads the agent's state
// through readOnlyAgent, and it runs beside the agent, restarted with a backoff when it fails.

// controlPlaneUserPrefix begins the user name of a control-plane node's client certificate
// (kube-vrrp:node:<node>), which the admission policy reads the node from.
const controlPlaneUserPrefix = "kube-vrrp:node:"

// kubeconfigPoll is how often the mirror looks whether its kubeconfig changed (a renewed
// certificate, a file installed after the pod started): it starts again with the new one.
const kubeconfigPoll = 10 * time.Second

// mirror is the status mirror of run --kubeconfig.
type mirror struct {
	kubeconfig string
	node       string
	log        *slog.Logger
	agent      *agent.Agent
	// files are the VirtualIPs run runs, by name, as its files have them.
	files  map[string]*v1alpha1.VirtualIP
	scheme *runtime.Scheme
	// said is what was last logged of the kubeconfig file's mode, so that a restart every 30 s
	// does not repeat it.
	said string
}

// newMirror returns the status mirror of the VirtualIPs of cfgs (those run runs), as vips (the
// files) have them.
func newMirror(kubeconfig, node string, log *slog.Logger, a *agent.Agent, vips []v1alpha1.VirtualIP, cfgs []vrrp.Config) (*mirror, error) {
	sch, err := scheme()
	if err != nil {
		return nil, err
	}
	files := map[string]*v1alpha1.VirtualIP{}
	for i := range vips {
		if slices.ContainsFunc(cfgs, func(c vrrp.Config) bool { return c.Name == vips[i].Name }) {
			files[vips[i].Name] = &vips[i]
		}
	}
	return &mirror{kubeconfig: kubeconfig, node: node, log: log, agent: a, files: files, scheme: sch}, nil
}

// run mirrors the status until ctx is done, or fails: the kubeconfig unreadable or changed, the
// API server unreachable at start (keepRunning starts it again).
func (m *mirror) run(ctx context.Context) error {
	stamp, err := m.stamp()
	if err != nil {
		return err
	}
	cfg, err := restConfig(m.kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", m.kubeconfig, err)
	}
	if err := checkNodeCredential(cfg, m.node); err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", m.kubeconfig, err)
	}
	mgr, err := newNodeManager(cfg, m.scheme)
	if err != nil {
		return err
	}
	view := &clusterView{Client: mgr.GetClient(), node: m.node, files: m.files, log: m.log}
	// No refusals: run refuses at start, before any instance runs.
	rejected := controllers.NewRejections(func(string) {})
	sr := &controllers.StatusReconciler{Client: mgr.GetClient(), Reader: view, NodeName: m.node,
		Agent: readOnlyAgent{m.agent}, Rejected: rejected, Recorder: mgr.GetEventRecorder(eventsReporter), Log: m.log,
		Changes: m.agent.Changes()}
	if err := addStatusControllers(mgr, m.log, sr, &controllers.Aggregator{Client: view, NodeName: m.node, Log: m.log}); err != nil {
		return err
	}
	if err := mgr.Add(runnableFunc(func(ctx context.Context) error {
		return waitFileChanged(ctx, m.kubeconfig, stamp, kubeconfigPoll)
	})); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// stamp reads the kubeconfig's digest, and warns (once per mode) when others than its owner
// may read it: it holds the private key of this node's certificate.
func (m *mirror) stamp() ([sha256.Size]byte, error) {
	fi, err := os.Stat(m.kubeconfig)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("--kubeconfig: %w (status is mirrored once it exists; VRRP runs meanwhile)", err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 && m.said != mode.String() {
		m.said = mode.String()
		m.log.Warn("the kubeconfig holds a private key and others may read it: give it mode 0600",
			"kubeconfig", m.kubeconfig, "mode", mode.String())
	}
	return fileDigest(m.kubeconfig)
}

// maxKubeconfig bounds what the mirror reads of its kubeconfig to tell a change.
const maxKubeconfig = 1 << 20

func fileDigest(name string) ([sha256.Size]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, maxKubeconfig)); err != nil {
		return [sha256.Size]byte{}, err
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

// waitFileChanged returns an error once the digest of name differs from was (checked every
// every): the manager starts again with the new file. nil when ctx is done.
func waitFileChanged(ctx context.Context, name string, was [sha256.Size]byte, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if now, err := fileDigest(name); err != nil || now != was {
				return fmt.Errorf("%s changed: starting again with it", name)
			}
		}
	}
}

// checkNodeCredential refuses a client certificate made for another node's control-plane
// identity (kube-vrrp:node:<node>): the admission policy would refuse every member written with
// it. Other credentials are the API server's business.
func checkNodeCredential(cfg *rest.Config, node string) error {
	data := cfg.CertData
	if len(data) == 0 && cfg.CertFile != "" {
		var err error
		if data, err = os.ReadFile(cfg.CertFile); err != nil {
			return err
		}
	}
	if len(data) == 0 {
		return nil
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("the client certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("the client certificate: %w", err)
	}
	if who, ok := strings.CutPrefix(cert.Subject.CommonName, controlPlaneUserPrefix); ok && who != node {
		return fmt.Errorf("the client certificate is node %q's (%s), not this node's (--node %s): "+
			"the admission policy would refuse every member written with it; make one for %s%s",
			who, cert.Subject.CommonName, node, controlPlaneUserPrefix, node)
	}
	return nil
}

// readOnlyAgent gives the status controllers the agent's state and no way to change it: in run
// mode VRRP follows the files alone.
type readOnlyAgent struct{ a *agent.Agent }

var _ controllers.Agent = readOnlyAgent{}

func (r readOnlyAgent) Apply(name string, _ vrrp.Config, _ ...probe.Spec) error {
	return fmt.Errorf("VirtualIP %s: in run mode only the files configure VRRP", name)
}
func (readOnlyAgent) Remove(string)                               {}
func (r readOnlyAgent) Names() []string                           { return r.a.Names() }
func (r readOnlyAgent) Snapshot() []agent.Status                  { return r.a.Snapshot() }
func (r readOnlyAgent) StatusOf(name string) (agent.Status, bool) { return r.a.StatusOf(name) }

// clusterView is the cluster as the status controllers of run --kubeconfig see it: only the
// VirtualIPs that run runs from its files, and of those only the ones whose copy in the cluster
// selects this node; every other VirtualIP reads as not found, so that this node neither
// reports on it nor summarises it. The copy in the cluster is the members' owner and holds the
// summary; VRRP follows the file. A copy that does not select this node would have its writer
// prune this node's member as soon as it is written, and this node write it again: a loop.
type clusterView struct {
	client.Client
	node  string
	files map[string]*v1alpha1.VirtualIP
	log   *slog.Logger

	mu   sync.Mutex
	said map[string]string // VirtualIP -> what was last logged of it
}

// Get reads obj; a VirtualIP this node does not mirror is not found.
func (v *clusterView) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	vip, ok := obj.(*v1alpha1.VirtualIP)
	if !ok {
		return v.Client.Get(ctx, key, obj, opts...)
	}
	file, mirrored := v.files[key.Name]
	if !mirrored {
		return notFound(key.Name)
	}
	err := v.Client.Get(ctx, key, obj, opts...)
	if apierrors.IsNotFound(err) {
		v.say(key.Name, "absent", slog.LevelInfo, "no VirtualIP of this name in the cluster: its status is mirrored once it is applied")
	}
	if err != nil {
		return err
	}
	var self corev1.Node
	err = v.Client.Get(ctx, types.NamespacedName{Name: v.node}, &self, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) {
		v.say(key.Name, "no node", slog.LevelWarn, "no Node of this node's name in the cluster: no status is mirrored "+
			"(--node must be the name the kubelet registers)")
		return notFound(key.Name)
	}
	if err != nil {
		return err
	}
	gen := fmt.Sprint(vip.Generation)
	if ok, err := desired.Selects(vip, v.node, self.Labels); err != nil || !ok {
		v.say(key.Name, "not selected "+gen, slog.LevelWarn, "the VirtualIP in the cluster does not take in this node "+
			"(spec.nodes, spec.nodeSelector): its status is not mirrored. Apply each control-plane node's file "+
			"server-side with a field manager of its own, so that spec.nodes names every one of them")
		return notFound(key.Name)
	}
	if vip.Spec.VRID != file.Spec.VRID || !sameAddresses(vip.Spec.Addresses, file.Spec.Addresses) {
		v.say(key.Name, "differs "+gen, slog.LevelWarn, "the VirtualIP in the cluster has another VRID or other addresses "+
			"than the file: VRRP follows the file, and the status mirrored is the file's group",
			"clusterVRID", vip.Spec.VRID, "fileVRID", file.Spec.VRID,
			"clusterAddresses", vip.Spec.Addresses, "fileAddresses", file.Spec.Addresses)
		return nil
	}
	v.say(key.Name, "mirrored "+gen, slog.LevelInfo, "mirroring the status of the VirtualIP to the cluster")
	return nil
}

// say logs msg about the VirtualIP name unless what was last logged of it is already key.
func (v *clusterView) say(name, key string, level slog.Level, msg string, attrs ...any) {
	v.mu.Lock()
	if v.said == nil {
		v.said = map[string]string{}
	}
	same := v.said[name] == key
	v.said[name] = key
	v.mu.Unlock()
	if !same {
		v.log.Log(context.Background(), level, msg, append([]any{"vip", name, "node", v.node}, attrs...)...)
	}
}

func notFound(name string) error {
	return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("virtualips").GroupResource(), name)
}

// sameAddresses reports whether a and b list the same addresses with the same prefix lengths,
// in any order and however written (a bare address is a /32 or /128).
func sameAddresses(a, b []string) bool {
	norm := func(in []string) []string {
		out := make([]string, 0, len(in))
		for _, s := range in {
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.String())
			} else if ip, err := netip.ParseAddr(s); err == nil {
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()).String())
			} else {
				out = append(out, s)
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}

// startMirror starts the status mirror of run --kubeconfig beside the agent, restarted with a
// backoff whenever it fails, until ctx is done.
func startMirror(ctx context.Context, m *mirror) {
	ctrl.SetLogger(logr.FromSlogHandler(m.log.Handler()))
	m.log.Info("mirroring status to the cluster once the API server answers", "kubeconfig", m.kubeconfig)
	go keepRunning(ctx, m.log, "status mirror", m.run)
}
