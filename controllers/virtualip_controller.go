package controllers

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// Retries of a VirtualIP this node refuses for a cause outside the object. A refusal whose cause
// no watch reports (a Secret the agent may only get by name, this node's Node not yet seen, a
// failed Apply) is retried from retryMin, doubling, up to retryMax, so that the group comes
// back within seconds of the fix. A refusal caused by the host (no interface in the subnet, a
// missing interface, an address already on the host) or by a watched Node is re-reconciled
// when that changes: the host's interfaces are polled every hostPoll (watchHost) and a change
// enqueues every VirtualIP refused for such a reason (hostRefusal); its periodic retry is only
// a safety net, from hostRetryMin doubling up to hostRetryMax, each delay lengthened by up to
// a fifth at random so that a thousand refusals do not come due together. A retry reads the
// cache and the host's interfaces, nothing from the API server (docs/design.md §7.3).
const (
	retryMin     = 250 * time.Millisecond
	retryMax     = 5 * time.Second
	hostRetryMin = 5 * time.Second
	hostRetryMax = 2 * time.Minute
	hostPoll     = 2 * time.Second
	// secretResync re-reads the Secrets of the VirtualIPs this node runs when they are not
	// watched (VirtualIPReconciler.Secrets), so that a changed password is applied.
	secretResync = time.Minute
)

// VirtualIPReconciler runs each VirtualIP that selects this node as a VRRP instance.
type VirtualIPReconciler struct {
	// Client reads from the manager's cache: Nodes, VirtualIPs, and Secrets of Namespace only.
	Client    client.Reader
	NodeName  string
	Namespace string
	Agent     Agent
	// Interfaces returns this node's interfaces (hostnet.Interfaces in the agent).
	Interfaces func() ([]desired.Interface, error)
	// ForeignAddresses returns the addresses on an interface that kube-vrrp did not add
	// (hostnet.Host.ForeignAddresses in the agent): a virtual address among them is refused.
	// nil skips that check.
	ForeignAddresses func(ifname string) ([]netip.Prefix, error)
	// Secrets, if set, reads the PASS Secrets instead of Client, and Secrets are not watched:
	// for an agent allowed only to get the Secrets it is told about, by name. A missing Secret
	// is then noticed by the retries, and a changed one within secretResync.
	Secrets  client.Reader
	Rejected *Rejections
	Log      *slog.Logger
	// Readiness, if set, learns the first list and each reconcile (/readyz).
	Readiness *Readiness
	// Notify runs the VirtualIPs' spec.notify commands; nil when exec is disabled on this agent:
	// a VirtualIP with notify then runs without them, and Warnings says so (NotifyDisabled).
	Notify   NotifyHooks
	Warnings *Warnings

	// HostPoll is how often watchHost reads the host's interfaces; 0 is hostPoll.
	HostPoll time.Duration

	backoffOnce sync.Once
	backoff     workqueue.TypedRateLimiter[string] // retry
	hostBackoff workqueue.TypedRateLimiter[string] // retryHost

	// advertSources: the API server serves VirtualIPMembers, and the other members' advert
	// sources are read (withAdvertSources) and watched (memberEvents). Set by SetupWithManager.
	advertSources bool
}

// Reconcile brings the instance of one VirtualIP in line with the object. An error reading the
// API never stops a running instance: only a successful read that says the object is gone or
// no longer selects this node does.
func (r *VirtualIPReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := r.reconcile(ctx, req)
	if err == nil {
		r.Readiness.reconciled(req.Name)
	}
	return res, err
}

func (r *VirtualIPReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	name := req.Name
	var vip v1alpha1.VirtualIP
	if err := r.Client.Get(ctx, types.NamespacedName{Name: name}, &vip); err != nil {
		if apierrors.IsNotFound(err) {
			r.remove(name, "deleted")
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !vip.DeletionTimestamp.IsZero() {
		r.remove(name, "being deleted")
		return reconcile.Result{}, nil
	}
	var self corev1.Node
	if err := r.Client.Get(ctx, types.NamespacedName{Name: r.NodeName}, &self); err != nil {
		if apierrors.IsNotFound(err) {
			r.Rejected.Set(name, Rejection{Reason: ReasonNodeNotVisible, Message: "Node " + r.NodeName + " not found; is --node-name right?"})
			return r.retry(name), nil
		}
		return reconcile.Result{}, err
	}
	ok, err := desired.Selects(&vip, self.Name, self.Labels)
	if err != nil {
		r.reject(name, Rejection{Reason: ReasonInvalidSpec, Message: err.Error()})
		return reconcile.Result{}, nil
	}
	if !ok {
		r.remove(name, "does not select this node")
		return reconcile.Result{}, nil
	}
	// The agent re-validates: objects written before a CRD rule existed, or never checked.
	if errs := desired.Validate(&vip); len(errs) > 0 {
		r.reject(name, Rejection{Reason: ReasonInvalidSpec, Message: errs.ToAggregate().Error()})
		return reconcile.Result{}, nil
	}
	// Whether this node can take part at all comes first, from the host alone: a node that is
	// not on the group's link (or lacks the interface it names) is refused before any Node is
	// read, whatever else the spec or its Secret says. In a big cluster most VirtualIPs are
	// on other links than this node's, and each such reconcile would otherwise read every
	// Node (docs/design.md §7.3).
	// (This node's own address as a virtual address would look like no address in the subnet:
	// said first, as it is.)
	if why := nodeAddressInUse(&vip, []corev1.Node{self}, r.NodeName); why != "" {
		r.reject(name, Rejection{Reason: ReasonAddressInUse, Message: why})
		return r.retryHost(name), nil
	}
	ifs, err := r.Interfaces()
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("reading this node's interfaces: %w", err)
	}
	node := desired.Node{Name: r.NodeName, Labels: self.Labels, Interfaces: ifs}
	if _, err := desired.SlotFor(&vip, node); err != nil {
		r.reject(name, Rejection{Reason: ReasonCannotResolve, Message: err.Error(), OffLink: offLink(err)})
		return r.retryHost(name), nil
	}
	// Every Node, as the cache holds them, not copied: at start every VirtualIP is reconciled
	// once, and a deep copy of each Node each time is what a cluster of thousands of Nodes
	// cannot afford (docs/design.md §7.2). The items are the cache's own: nodeAddressInUse and
	// peers only read them, and nothing built from them refers to them (peers copies what it
	// keeps: names, parsed addresses).
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, err
	}
	if why := nodeAddressInUse(&vip, nodes.Items, r.NodeName); why != "" {
		// A Node's change of addresses enqueues it (nodeAffects).
		r.reject(name, Rejection{Reason: ReasonAddressInUse, Message: why})
		return r.retryHost(name), nil
	}
	pw, refusal, err := r.password(ctx, &vip)
	if err != nil {
		return reconcile.Result{}, err
	}
	if refusal != nil {
		// The Secret is the cause whatever the reason says: it may be fixed without any event
		// this agent sees.
		r.reject(name, *refusal)
		return r.retry(name), nil
	}
	peers := r.peers(&vip, nodes.Items)
	if r.advertSources && advertSourcesMatter(&vip) {
		known, err := r.withAdvertSources(ctx, name, peers)
		if err != nil {
			return reconcile.Result{}, err
		}
		r.Log.Debug("members known by their advert sources", "vip", name, "known", known, "of", len(peers))
	}
	cfg, err := desired.For(&vip, node, peers, pw)
	if err != nil {
		// The host's interfaces (watchHost) or the Nodes (no unicast peer left) are the cause.
		r.reject(name, Rejection{Reason: ReasonCannotResolve, Message: err.Error(), OffLink: offLink(err)})
		return r.retryHost(name), nil
	}
	probes, err := desired.Probes(&vip)
	if err != nil {
		r.reject(name, Rejection{Reason: ReasonInvalidSpec, Message: err.Error()})
		return reconcile.Result{}, nil
	}

	// Another VirtualIP may claim the same slot or address: the older one runs (see claim).
	me := claim{name: name, created: vip.CreationTimestamp.Time, slot: desired.SlotOf(cfg), inSlot: true,
		addrs: desired.Addresses(&vip)}
	rivals, err := r.rivals(ctx, me, node)
	if err != nil {
		return reconcile.Result{}, err
	}
	if d, lost := loses(me, rivals); lost {
		// No retry: the winner's change or deletion enqueues this one (SetupWithManager).
		r.reject(name, d.Rejection)
		return reconcile.Result{}, nil
	}

	if r.ForeignAddresses != nil {
		foreign, err := r.ForeignAddresses(cfg.Interface)
		if err != nil {
			return reconcile.Result{}, fmt.Errorf("reading the addresses of %s: %w", cfg.Interface, err)
		}
		if err := desired.CheckForeign(cfg, foreign); err != nil {
			r.reject(name, Rejection{Reason: ReasonAddressInUse, Message: err.Error()})
			return r.retryHost(name), nil
		}
	}

	// This one wins its claims: a younger rival this node runs (it came first, e.g. before this
	// one moved to its interface) stops, and its own reconcile reports the same.
	running := r.Agent.Names()
	for _, o := range rivals {
		if slices.Contains(running, o.name) {
			if d, lost := loses(o, []claim{me}); lost {
				r.reject(o.name, d.Rejection)
			}
		}
	}
	r.notify(&vip)
	if err := r.Agent.Apply(name, cfg, probes...); err != nil {
		r.reject(name, Rejection{Reason: ReasonApplyFailed, Message: err.Error()})
		return r.retry(name), nil
	}
	r.Rejected.Clear(name)
	r.forget(name)
	if r.Secrets != nil && vip.Spec.Authentication != nil {
		return reconcile.Result{RequeueAfter: secretResync}, nil
	}
	return reconcile.Result{}, nil
}

// noInterfaceInSubnet is how desired.For says that no interface of the node has an address in
// the subnet of a VirtualIP without spec.interface: the node is not on the group's link, and
// cannot take part (Rejection.OffLink). TestVirtualIPReconcile holds it to desired.For's words.
const noInterfaceInSubnet = "no interface has an address in the subnet of "

// offLink reports whether err, from desired.For, says that the node has no interface in the
// VirtualIP's subnet. A named interface that is missing, two interfaces in the subnet, or one
// without an address to send from are the user's to fix on a node of the group: not off-link.
func offLink(err error) bool { return strings.Contains(err.Error(), noInterfaceInSubnet) }

// retry schedules the next attempt of name after a refusal whose cause may go away without an
// event this agent sees: retryMin, doubling up to retryMax while it lasts.
func (r *VirtualIPReconciler) retry(name string) reconcile.Result {
	r.limiters()
	return reconcile.Result{RequeueAfter: r.backoff.When(name)}
}

// retryHost schedules the next attempt of name after a refusal caused by the host or a Node
// (hostRefusal), whose change enqueues it anyway: hostRetryMin, doubling up to hostRetryMax,
// plus up to a fifth at random.
func (r *VirtualIPReconciler) retryHost(name string) reconcile.Result {
	r.limiters()
	d := r.hostBackoff.When(name)
	return reconcile.Result{RequeueAfter: d + rand.N(d/5+1)}
}

// forget resets the retry back-offs of name.
func (r *VirtualIPReconciler) forget(name string) {
	r.limiters()
	r.backoff.Forget(name)
	r.hostBackoff.Forget(name)
}

func (r *VirtualIPReconciler) limiters() {
	r.backoffOnce.Do(func() {
		r.backoff = workqueue.NewTypedItemExponentialFailureRateLimiter[string](retryMin, retryMax)
		r.hostBackoff = workqueue.NewTypedItemExponentialFailureRateLimiter[string](hostRetryMin, hostRetryMax)
	})
}

// hostRefusal reports whether a refusal may be caused by the host's interfaces or addresses
// (or a Node's addresses): a CannotResolve (no interface in the subnet, a missing interface,
// no address to send from, the owner's priority without the address) or an AddressInUse (a
// virtual address already on the host, or a Node's). Those are retried slowly (retryHost),
// and watchHost enqueues them when the interfaces change.
func hostRefusal(why Rejection) bool {
	return why.Reason == ReasonCannotResolve || why.Reason == ReasonAddressInUse
}

// hostWatch is what watchHost last read of the host's interfaces.
type hostWatch struct {
	fingerprint uint64
	known       bool
}

// watchHost reads the host's interfaces every HostPoll until ctx ends (pollHost).
func (r *VirtualIPReconciler) watchHost(ctx context.Context, w *hostWatch, enqueue func(name string)) {
	every := r.HostPoll
	if every <= 0 {
		every = hostPoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.pollHost(w, enqueue)
		}
	}
}

// pollHost reads the host's interfaces and, when their fingerprint (interfaceFingerprint)
// differs from the one w holds, resets the back-off of every VirtualIP refused for a host
// reason (hostRefusal) and passes its name to enqueue. A first read only sets w; a failed one
// changes nothing.
func (r *VirtualIPReconciler) pollHost(w *hostWatch, enqueue func(name string)) {
	ifs, err := r.Interfaces()
	if err != nil {
		return
	}
	fp := interfaceFingerprint(ifs)
	if w.known && fp != w.fingerprint {
		n := 0
		for _, name := range r.Rejected.Names() {
			if why, ok := r.Rejected.Get(name); ok && hostRefusal(why) {
				r.forget(name)
				enqueue(name)
				n++
			}
		}
		r.Log.Debug("the host's interfaces changed: reconciling the VirtualIPs refused for them", "count", n)
	}
	w.fingerprint, w.known = fp, true
}

// sendTo returns a function that sends the VirtualIP of a name to ch (a source.Channel), or
// gives up when ctx ends.
func sendTo(ctx context.Context, ch chan<- event.TypedGenericEvent[*v1alpha1.VirtualIP]) func(name string) {
	return func(name string) {
		vip := &v1alpha1.VirtualIP{}
		vip.Name = name
		select {
		case ch <- event.TypedGenericEvent[*v1alpha1.VirtualIP]{Object: vip}:
		case <-ctx.Done():
		}
	}
}

// interfaceFingerprint hashes what desired.For reads of the interfaces: their names, indexes,
// whether they are up, and their addresses in order.
func interfaceFingerprint(ifs []desired.Interface) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	num := func(v int) {
		binary.LittleEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	for _, ifc := range ifs {
		num(len(ifc.Name))
		h.Write([]byte(ifc.Name))
		num(ifc.Index)
		if ifc.Up {
			num(1)
		} else {
			num(0)
		}
		num(len(ifc.Prefixes))
		for _, p := range ifc.Prefixes {
			b, _ := p.MarshalBinary()
			num(len(b))
			h.Write(b)
		}
	}
	return h.Sum64()
}

// nodeAddressInUse says which virtual address of vip is a Node's InternalIP or ExternalIP, if
// one is: a MASTER would answer for that node (ARP, NDP) and cut it off. The address owner's
// (priority 255) addresses are the exception, on every node: the owner holds them already and
// never binds or removes them, and the backups take them over when the owner is gone (RFC 5798
// §1: the virtual router's address is the owner's real one).
func nodeAddressInUse(vip *v1alpha1.VirtualIP, nodes []corev1.Node, self string) string {
	addrs := desired.Addresses(vip)
	for i := range nodes {
		n := &nodes[i]
		if desired.NodePriority(vip, n.Name) == desired.OwnerPriority {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil || !slices.Contains(addrs, ip.Unmap()) {
				continue
			}
			which := "node " + n.Name + "'s"
			if n.Name == self {
				which = "this node's (" + n.Name + ")"
			}
			return fmt.Sprintf("address %s is %s %s: a virtual address must not be a node's address; choose a free one",
				ip.Unmap(), which, a.Type)
		}
	}
	return ""
}

// reject stops the instance of name, if it runs, and reports why: a node that cannot run a
// VirtualIP as specified (no unicast peer left, Secret gone, spec invalid) is in FAULT and
// hands the addresses over rather than keep a configuration the cluster no longer has. Only a
// successful read leads here, never an unreachable API server.
func (r *VirtualIPReconciler) reject(name string, why Rejection) {
	if slices.Contains(r.Agent.Names(), name) {
		r.Log.Warn("stopping VRRP instance: this node cannot run it as specified", "vip", name,
			"reason", why.Reason, "message", truncate(why.Message, maxMessage))
		r.Agent.Remove(name)
	}
	// Its notify commands stay set: the VirtualIP still selects this node and its start is
	// retried, and the runner reports a streak of failed starts once (pkg/notify), which it
	// could not do if the commands were forgotten before it read the failure.
	r.Rejected.Set(name, why)
}

func (r *VirtualIPReconciler) remove(name, why string) {
	if slices.Contains(r.Agent.Names(), name) {
		r.Log.Info("stopping VRRP instance", "vip", name, "why", why)
	}
	r.Agent.Remove(name)
	r.forgetNotify(name)
	r.Rejected.Clear(name)
	r.forget(name)
}

// password returns the PASS password from the Secret in the agent's namespace. A missing Secret
// or key is the user's to fix (refusal set); another error is retried.
func (r *VirtualIPReconciler) password(ctx context.Context, vip *v1alpha1.VirtualIP) ([]byte, *Rejection, error) {
	a := vip.Spec.Authentication
	if a == nil {
		return nil, nil, nil
	}
	var sec corev1.Secret
	key := types.NamespacedName{Namespace: r.Namespace, Name: a.SecretRef.Name}
	read := r.Client
	if r.Secrets != nil {
		read = r.Secrets
	}
	if err := read.Get(ctx, key, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Rejection{Reason: ReasonSecretMissing, Message: fmt.Sprintf(
				"spec.authentication.secretRef: Secret %s/%s not found", r.Namespace, a.SecretRef.Name)}, nil
		}
		if apierrors.IsForbidden(err) {
			// The agent's Role names the Secrets it may get (the chart's rbac.secretNames).
			return nil, &Rejection{Reason: ReasonSecretMissing, Message: fmt.Sprintf(
				"spec.authentication.secretRef: the agent may not get Secret %s/%s: add it to the Secrets its Role names (chart value rbac.secretNames)",
				r.Namespace, a.SecretRef.Name)}, nil
		}
		return nil, nil, err
	}
	v, ok := sec.Data[a.SecretRef.Key]
	if !ok {
		return nil, &Rejection{Reason: ReasonSecretMissing, Message: fmt.Sprintf(
			"spec.authentication.secretRef: Secret %s/%s has no key %q", r.Namespace, a.SecretRef.Name, a.SecretRef.Key)}, nil
	}
	if ferr := desired.ValidatePassword(vip, v); ferr != nil {
		// The message names the rule, never the value.
		return nil, &Rejection{Reason: ReasonInvalidSpec, Message: ferr.Error()}, nil
	}
	return v, nil, nil
}

// peers lists the other nodes the VirtualIP selects, with their addresses and priorities. It
// returns a non-nil slice: the cluster's member set is complete.
func (r *VirtualIPReconciler) peers(vip *v1alpha1.VirtualIP, nodes []corev1.Node) []desired.Peer {
	peers := []desired.Peer{}
	selects := selector(vip)
	for i := range nodes {
		n := &nodes[i]
		if n.Name == r.NodeName || !selects(n.Name, n.Labels) {
			continue
		}
		peers = append(peers, desired.Peer{Name: n.Name, Addrs: nodeAddrs(n), Priority: desired.NodePriority(vip, n.Name)})
	}
	return peers
}

// selector returns desired.Selects of vip as a function of a node's name and labels, with
// spec.nodeSelector parsed once: a reconcile matches it against every Node, and parsing it
// (validating each key and value) for each of 5000 Nodes was most of a reconcile's CPU. A
// selector that does not parse, or a VirtualIP with neither a selector nor spec.nodes,
// selects nothing, as desired.Selects says with its error.
func selector(vip *v1alpha1.VirtualIP) func(name string, nodeLabels map[string]string) bool {
	if vip.Spec.NodeSelector == nil {
		return func(name string, nodeLabels map[string]string) bool {
			ok, err := desired.Selects(vip, name, nodeLabels)
			return err == nil && ok
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(vip.Spec.NodeSelector)
	if err != nil {
		return func(string, map[string]string) bool { return false }
	}
	return func(_ string, nodeLabels map[string]string) bool { return sel.Matches(labels.Set(nodeLabels)) }
}

// nodeAddrs returns a Node's InternalIP addresses, then its ExternalIP ones.
func nodeAddrs(n *corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type != t {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil && !slices.Contains(out, ip.Unmap()) {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// SetupWithManager registers the reconciler. It runs on every node (no leader election), and
// after the cache has synced it stops the instances whose VirtualIP the cluster no longer has:
// only a successful list removes a VIP, never an informer disconnect.
//
// Besides its own VirtualIP, a reconcile depends on the Nodes (this node, the members and
// their addresses, the addresses of every node), on the VirtualIPs that share its VRID or an
// address (which of them runs, see claim), on its PASS Secret and, for an IPv6 multicast
// group, on the other members' advert sources: a change of any of those enqueues the
// VirtualIPs it concerns (a Node's: nodeAffects; a member's: memberEvents).
func (r *VirtualIPReconciler) SetupWithManager(mgr ctrl.Manager) error {
	served, err := membersServed(mgr.GetRESTMapper())
	if err != nil {
		return err
	}
	if served {
		if err := indexMembers(context.Background(), mgr); err != nil {
			return err
		}
	}
	r.advertSources = served
	b := ctrl.NewControllerManagedBy(mgr).
		Named("virtualip").
		// The spec only: a reconcile reads the host's interfaces and addresses, and the status,
		// which every agent writes, says nothing it needs. Creation and deletion pass, and so
		// does a deletion with finalizers (it bumps the generation).
		For(&v1alpha1.VirtualIP{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Called with the old and the new object of an update: a winner that moves away or
		// drops an address enqueues the losers it leaves, a deleted one too.
		Watches(&v1alpha1.VirtualIP{}, r.overlappingEvents(),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Node{}, r.nodeEvents(), builder.WithPredicates(nodeChanged()))
	if r.Secrets == nil {
		b = b.Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretUsers))
	}
	if served {
		b = b.Watches(&v1alpha1.VirtualIPMember{}, r.memberEvents())
	}
	// watchHost's names: a change of the host's interfaces reconciles the VirtualIPs it refuses
	// for them.
	hostChanges := make(chan event.TypedGenericEvent[*v1alpha1.VirtualIP])
	b = b.WatchesRawSource(source.Channel(hostChanges, &handler.TypedEnqueueRequestForObject[*v1alpha1.VirtualIP]{}))
	err = b.
		// The agent registers the reconcilers again in a new manager when the last one failed.
		WithOptions(controller.Options{NeedLeaderElection: ptrTo(false), SkipNameValidation: ptrTo(true)}).
		Complete(r)
	if err != nil {
		return err
	}
	err = mgr.Add(runnable(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		var list v1alpha1.VirtualIPList
		if err := r.Client.List(ctx, &list); err != nil {
			return nil // the next start of the manager tries again
		}
		names := make([]string, len(list.Items))
		for i := range list.Items {
			names[i] = list.Items[i].Name
		}
		r.Readiness.listedNames(names)
		for _, name := range r.Agent.Names() {
			if !slices.ContainsFunc(list.Items, func(v v1alpha1.VirtualIP) bool { return v.Name == name }) {
				r.remove(name, "no longer in the cluster")
			}
		}
		<-ctx.Done()
		return nil
	}))
	if err != nil {
		return err
	}
	// The interfaces as they are before any reconcile reads them: a change from then on counts.
	w := &hostWatch{}
	r.pollHost(w, nil)
	return mgr.Add(runnable(func(ctx context.Context) error {
		r.watchHost(ctx, w, sendTo(ctx, hostChanges))
		return nil
	}))
}

// nodeEvents enqueues, for a Node's creation, change or deletion, the VirtualIPs whose
// reconcile it can change (nodeAffects), from the old and the new Node: in a cluster of
// thousands of Nodes and VirtualIPs, a label on one Node must not reconcile every VirtualIP.
func (r *VirtualIPReconciler) nodeEvents() handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) {
			// The Nodes of the informer's first list: every VirtualIP is reconciled once the
			// caches have synced (its own informer's first list enqueues it), reading every
			// Node then. With 5000 Nodes and 1000 VirtualIPs that select them all, each of
			// those Nodes would otherwise read every VirtualIP and match it: 5 million matches
			// at every start.
			if e.IsInInitialList {
				return
			}
			r.enqueueNode(ctx, q, nil, asNode(e.Object))
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			r.enqueueNode(ctx, q, asNode(e.ObjectOld), asNode(e.ObjectNew))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) {
			r.enqueueNode(ctx, q, asNode(e.Object), nil)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q queue) {
			r.enqueueNode(ctx, q, asNode(e.Object), asNode(e.Object))
		},
	}
}

// asNode is obj as a Node, or nil.
func asNode(obj client.Object) *corev1.Node {
	n, _ := obj.(*corev1.Node)
	return n
}

func (r *VirtualIPReconciler) enqueueNode(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], old, new *corev1.Node) {
	for _, req := range r.nodeRequests(ctx, old, new) {
		q.Add(req)
	}
}

// nodeRequests returns the VirtualIPs that a Node's change from old to new (nil: none, for a
// creation or a deletion) concerns (nodeAffects).
func (r *VirtualIPReconciler) nodeRequests(ctx context.Context, old, new *corev1.Node) []reconcile.Request {
	if old == nil && new == nil {
		return nil
	}
	// Read only, as the cache holds them (see Reconcile).
	var list v1alpha1.VirtualIPList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if v := &list.Items[i]; r.nodeAffects(v, old, new) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: v.Name}})
		}
	}
	return out
}

// nodeAffects reports whether a Node's change from old to new (nil: none) can change what
// Reconcile makes of vip: every VirtualIP when it is this node (its labels decide whether it
// runs them, its addresses and its existence whether it can); else when the Node joins or
// leaves vip's members (desired.Selects, as peers asks it: spec.nodeSelector matches its
// labels, or without one spec.nodes names it), when a member's addresses change (peers, the
// member set, unicast peers), and when its addresses change and one of them, old or new, is a
// virtual address of vip (nodeAddressInUse, which reads every Node's). Labels of a member that
// stays one, and addresses of other nodes, are read by nothing.
func (r *VirtualIPReconciler) nodeAffects(vip *v1alpha1.VirtualIP, old, new *corev1.Node) bool {
	name := ""
	for _, n := range []*corev1.Node{old, new} {
		if n != nil {
			name = n.Name
		}
	}
	if name == r.NodeName {
		return true
	}
	selects := selector(vip)
	member := func(n *corev1.Node) bool { return n != nil && selects(n.Name, n.Labels) }
	was, is := member(old), member(new)
	if was != is {
		return true
	}
	var before, after []netip.Addr
	if old != nil {
		before = nodeAddrs(old)
	}
	if new != nil {
		after = nodeAddrs(new)
	}
	if slices.Equal(before, after) {
		return false
	}
	if is {
		return true
	}
	addrs := desired.Addresses(vip)
	virtual := func(a netip.Addr) bool { return slices.Contains(addrs, a) }
	return slices.ContainsFunc(before, virtual) || slices.ContainsFunc(after, virtual)
}

// overlappingEvents enqueues, for a VirtualIP's event, the others it overlaps (overlapping),
// except for the VirtualIPs of the informer's first list: each of them is enqueued for itself
// then, and each one's overlaps would read every VirtualIP (a thousand lists of a thousand at
// every start).
func (r *VirtualIPReconciler) overlappingEvents() handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	m := handler.EnqueueRequestsFromMapFunc(r.overlapping)
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) {
			if !e.IsInInitialList {
				m.Create(ctx, e, q)
			}
		},
		UpdateFunc:  m.Update,
		DeleteFunc:  m.Delete,
		GenericFunc: m.Generic,
	}
}

// overlapping maps a VirtualIP to the others that share its VRID or one of its addresses: the
// ones whose claims it may decide.
func (r *VirtualIPReconciler) overlapping(ctx context.Context, obj client.Object) []reconcile.Request {
	v, ok := obj.(*v1alpha1.VirtualIP)
	if !ok {
		return nil
	}
	addrs := desired.Addresses(v)
	// Read only, as the cache holds them (see Reconcile).
	var list v1alpha1.VirtualIPList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		o := &list.Items[i]
		if o.Name == v.Name {
			continue
		}
		if o.Spec.VRID == v.Spec.VRID || slices.ContainsFunc(desired.Addresses(o), func(a netip.Addr) bool { return slices.Contains(addrs, a) }) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: o.Name}})
		}
	}
	return out
}

// secretUsers maps a Secret of the agent's namespace to the VirtualIPs whose PASS password it
// holds: its creation brings a VirtualIP that waited for it back at once.
func (r *VirtualIPReconciler) secretUsers(ctx context.Context, obj client.Object) []reconcile.Request {
	if obj.GetNamespace() != r.Namespace {
		return nil
	}
	// Read only, as the cache holds them (see Reconcile).
	var list v1alpha1.VirtualIPList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, v := range list.Items {
		if a := v.Spec.Authentication; a != nil && a.SecretRef.Name == obj.GetName() {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: v.Name}})
		}
	}
	return out
}

// nodeChanged passes Node events that can change a VirtualIP's members or this node's
// selection: creation, deletion, and changes of labels or addresses (not heartbeats).
func nodeChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Node)
			n, ok2 := e.ObjectNew.(*corev1.Node)
			if !ok1 || !ok2 {
				return true
			}
			return !mapsEqual(o.Labels, n.Labels) || !slices.Equal(o.Status.Addresses, n.Status.Addresses)
		},
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func ptrTo[T any](v T) *T { return &v }
