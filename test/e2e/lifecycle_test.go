package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevrrpv1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// Bounds of what an uninstall may cost, and how the VIPs' holders are sampled. An upgrade
// moves nothing (docs/design.md §4.9.1; testUpgrade asserts it).
const (
	// lcMaxRelease is the longest from an agent pod seen terminating to the VIP gone from
	// every node at uninstall: the agents release it at SIGTERM, well within the grace period
	// (30 s), after which the kubelet's SIGKILL would leave it bound.
	lcMaxRelease = 5 * time.Second
	// lcSampleEvery is how often the VIP's holders are sampled.
	lcSampleEvery = 5 * time.Millisecond
)

// testUninstall uninstalls the release with helm, as the README says: no agent pod and no
// object of the release is left, the agents released the VIP at once and left nothing on the
// nodes (address, nftables table, record of bound addresses), and the CRDs and the user's
// VirtualIP are kept.
func testUninstall(t *testing.T, e *env) {
	nodes := e.labNodes()
	e.applyVirtualIP(t)
	if err := lab.WaitSoleHolder(nodes, vip, e.node("n1").Node, 300*time.Millisecond, time.Minute); err != nil {
		t.Fatal(err)
	}

	// The release's objects, from helm itself, each present now (so that NotFound afterwards
	// means deleted, not misread).
	manifest, err := e.cp.Helm(e.ctx, "get", "manifest", release, "--namespace", namespace)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := lcParseManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for i, o := range objs {
		kinds[o.GetKind()] = true
		namespaced, err := e.admin.IsObjectNamespaced(o)
		if err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if namespaced && o.GetNamespace() == "" {
			objs[i].SetNamespace(namespace)
		}
		if err := e.admin.Get(e.ctx, client.ObjectKeyFromObject(objs[i]), lcEmpty(o)); err != nil {
			t.Fatalf("%s %s of the release before the uninstall: %v", o.GetKind(), lcObjName(objs[i]), err)
		}
	}
	for _, k := range []string{"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if !kinds[k] {
			t.Errorf("helm get manifest has no %s", k)
		}
	}
	t.Logf("the release's objects: %s", lcObjNames(objs))

	sampler := lcStartVIPSampler(nodes, vip)
	defer sampler.stop()
	t0 := time.Now()
	type helmResult struct {
		out string
		err error
		at  time.Time
	}
	done := make(chan helmResult, 1)
	go func() {
		out, err := e.cp.Helm(e.ctx, "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "3m")
		done <- helmResult{out, err, time.Now()}
	}()
	// The agent pods: when the first is seen terminating, and when all are gone.
	var terminating, gone time.Time
	var h *helmResult
	deadline := t0.Add(3 * time.Minute)
	for h == nil || gone.IsZero() {
		select {
		case r := <-done:
			h = &r
		default:
		}
		pods := e.agentPods(t)
		if terminating.IsZero() && slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil }) {
			terminating = time.Now()
		}
		if len(pods) == 0 && gone.IsZero() {
			gone = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: helm uninstall done %v, agent pods left: %d\n%s", time.Since(t0), h != nil, len(pods), e.describePods())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h.err != nil {
		t.Fatalf("%v\n%s", h.err, h.out)
	}
	tl := sampler.stop()
	if terminating.IsZero() {
		terminating = gone // gone between two polls
	}
	t.Logf("timing: helm uninstall --wait %v; first agent pod terminating after %v, all gone after %v",
		h.at.Sub(t0).Round(time.Millisecond), terminating.Sub(t0).Round(time.Millisecond), gone.Sub(t0).Round(time.Millisecond))

	// The VIP released at once, and bound nowhere now.
	released, ok := tl.releasedAt()
	if ok {
		t.Logf("figure: helm uninstall, VIP released from every node %v after the uninstall started (%v after the first agent pod was seen terminating); holders: %s",
			released.Sub(t0).Round(time.Millisecond), released.Sub(terminating).Round(time.Millisecond), tl)
		if released.Sub(terminating) > lcMaxRelease {
			t.Errorf("the VIP was released %v after the agent pods began terminating, want within %v (they hand over at SIGTERM)",
				released.Sub(terminating).Round(time.Millisecond), lcMaxRelease)
		}
	} else {
		t.Errorf("the VIP is still bound after the agent pods are gone: holders %s", tl)
	}
	for _, k := range e.nodes {
		n := k.Node
		if n.HasAddress(vip) {
			as, _ := n.Addresses()
			t.Errorf("%s still has %s: %v", n.Name, vip.Addr(), as)
		}
		// The Accept_Mode table (docs/design.md §5.7), even though the sample never asks
		// for it: an agent must not leave one behind.
		if out, err := n.Run("nft", "list", "tables"); err != nil {
			t.Errorf("%s: nft list tables: %v: %s", n.Name, err, out)
		} else if strings.Contains(out, "table inet kube_vrrp") {
			t.Errorf("%s: the agent's nftables table is left: %s", n.Name, out)
		}
		// The record of bound addresses in the state directory (docs/design.md §5.6; the
		// chart's stateDir, /run/kube-vrrp, on the node's /run): the agents removed what they bound, so it is
		// empty (the directory and its lock file stay: a hostPath outlives the pods).
		rec := filepath.Join(k.Dir, "run", "kube-vrrp", "bound")
		switch b, err := os.ReadFile(rec); {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			t.Errorf("%s: %v", n.Name, err)
		case strings.TrimSpace(string(b)) != "":
			t.Errorf("%s: the record of bound addresses %s still lists %q", n.Name, rec, b)
		}
	}

	// Every object of the release is gone.
	for _, o := range objs {
		err := e.admin.Get(e.ctx, client.ObjectKeyFromObject(o), lcEmpty(o))
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s %s left after helm uninstall (get: %v)", o.GetKind(), lcObjName(o), err)
		}
	}
	if out, err := e.cp.Helm(e.ctx, "status", release, "--namespace", namespace); err == nil {
		t.Errorf("helm status after uninstall succeeded: %s", out)
	}

	// Helm keeps CRDs it installed from the chart's crds/ directory, by design: deleting the
	// CRD would delete every VirtualIP of every user with it. So the CRDs and the sample stay;
	// removing them is the user's decision (the chart's README says how).
	for _, name := range []string{"virtualips.kubevrrp.io", "virtualipmembers.kubevrrp.io"} {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		if err := e.admin.Get(e.ctx, client.ObjectKey{Name: name}, crd); err != nil {
			t.Errorf("CRD %s after helm uninstall: %v", name, err)
		}
	}
	var v kubevrrpv1alpha1.VirtualIP
	if err := e.admin.Get(e.ctx, client.ObjectKey{Name: "haproxy"}, &v); err != nil {
		t.Errorf("VirtualIP haproxy after helm uninstall: %v", err)
	} else {
		// No agent is left to update it: what it says now is what the last ones wrote.
		ready := "absent"
		if c := meta.FindStatusCondition(v.Status.Conditions, "Ready"); c != nil {
			ready = string(c.Status) + " (" + c.Reason + ")"
		}
		t.Logf("VirtualIP haproxy kept; its status without agents: master %q, members %s, Ready %s", v.Status.Master, lcStates(e.members(t, v.Name)), ready)
	}
}

// lcAgentContainer returns the agent container of p and its status (nil if absent).
func lcAgentContainer(p corev1.Pod) (*corev1.Container, *corev1.ContainerStatus) {
	var c *corev1.Container
	var cs *corev1.ContainerStatus
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == "agent" {
			c = &p.Spec.Containers[i]
		}
	}
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == "agent" {
			cs = &p.Status.ContainerStatuses[i]
		}
	}
	return c, cs
}

func lcPodReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// lcWaitRolledOut waits until the DaemonSet has rolled out its template (updated and ready on
// its three nodes) and runs exactly three pods, one per node, none of them in old, all Ready;
// it returns them.
func (e *env) lcWaitRolledOut(t *testing.T, old map[string]bool, timeout time.Duration) []corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ds := e.daemonSet(t)
		st := ds.Status
		pods := e.agentPods(t)
		why := ""
		switch {
		case st.ObservedGeneration < ds.Generation:
			why = fmt.Sprintf("generation %d observed, %d current", st.ObservedGeneration, ds.Generation)
		case st.DesiredNumberScheduled != 3 || st.UpdatedNumberScheduled != 3 || st.NumberReady != 3 || st.NumberAvailable != 3:
			why = fmt.Sprintf("desired %d, updated %d, ready %d, available %d; want 3",
				st.DesiredNumberScheduled, st.UpdatedNumberScheduled, st.NumberReady, st.NumberAvailable)
		case len(pods) != 3:
			why = fmt.Sprintf("%d agent pods", len(pods))
		}
		nodes := map[string]bool{}
		for _, p := range pods {
			switch {
			case why != "":
			case old[string(p.UID)]:
				why = fmt.Sprintf("pod %s is from before the upgrade", p.Name)
			case p.DeletionTimestamp != nil || !lcPodReady(p):
				why = fmt.Sprintf("pod %s not Ready", p.Name)
			case nodes[p.Spec.NodeName]:
				why = fmt.Sprintf("two pods on %s", p.Spec.NodeName)
			}
			nodes[p.Spec.NodeName] = true
			if c, cs := lcAgentContainer(p); why == "" && (c == nil || cs == nil) {
				why = fmt.Sprintf("pod %s has no agent container status", p.Name)
			}
		}
		if why == "" {
			return pods
		}
		if time.Now().After(deadline) {
			t.Fatalf("rolling update not done after %v: %s\n%s", timeout, why, e.describePods())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lcWaitLog waits until the log of container in p, as the node's kubelet keeps it
// (/var/log/pods on the node), contains substr.
func (e *env) lcWaitLog(p corev1.Pod, container, substr string, timeout time.Duration) error {
	k := e.node(p.Spec.NodeName)
	if k == nil {
		return fmt.Errorf("pod %s on unknown node %q", p.Name, p.Spec.NodeName)
	}
	glob := filepath.Join(k.Dir, "var-log", "pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), container, "*.log")
	deadline := time.Now().Add(timeout)
	for {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), substr) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s on %s: no %s in its %s log (%v)", p.Name, p.Spec.NodeName, substr, container, files)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lcStates(ns []kubevrrpv1alpha1.NodeStatus) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.Name+"="+n.State)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// lcLogTransitionEvents logs the Became<State> Events recorded on the sample VirtualIP since
// since: the agents' own account of the moves. It is not the figure: client-go folds an
// agent's repeated identical Event into a series whose count it writes only later, so Events
// can undercount the moves (the sampled holders cannot).
func (e *env) lcLogTransitionEvents(t *testing.T, since time.Time) {
	t.Helper()
	var list eventsv1.EventList
	if err := e.admin.List(e.ctx, &list); err != nil {
		t.Errorf("list Events: %v", err)
		return
	}
	var seen []string
	for _, ev := range list.Items {
		if ev.Regarding.Kind != "VirtualIP" || ev.Regarding.Name != "haproxy" || !strings.HasPrefix(ev.Reason, "Became") {
			continue
		}
		at := ev.EventTime.Time
		count := int32(1)
		if ev.Series != nil {
			at, count = ev.Series.LastObservedTime.Time, ev.Series.Count
		}
		if at.Before(since) {
			continue
		}
		note := ev.Note
		if len(note) > 60 {
			note = note[:60] + "..."
		}
		seen = append(seen, fmt.Sprintf("%s +%v %s (×%d)", ev.Reason, at.Sub(since).Round(time.Millisecond), note, count))
	}
	slices.Sort(seen)
	t.Logf("Became<State> Events since the upgrade started: %d\n\t%s", len(seen), strings.Join(seen, "\n\t"))
}

// lcParseManifest returns the objects of `helm get manifest`'s output (YAML documents).
func lcParseManifest(manifest string) ([]*unstructured.Unstructured, error) {
	d := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("helm get manifest: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("helm get manifest: an object without apiVersion, kind or name: %v", m)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("helm get manifest: no objects")
	}
	return out, nil
}

// lcEmpty returns an empty object of o's kind to read it into.
func lcEmpty(o *unstructured.Unstructured) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.GroupVersionKind())
	return u
}

func lcObjName(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

func lcObjNames(objs []*unstructured.Unstructured) string {
	var s []string
	for _, o := range objs {
		s = append(s, o.GetKind()+" "+lcObjName(o))
	}
	return strings.Join(s, ", ")
}

// lcVIPSampler records who holds each of some VIPs, every lcSampleEvery (one read of every
// node's addresses a sample), as a timeline of changes per VIP.
type lcVIPSampler struct {
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once
	tls   []lcTimeline
}

func lcStartVIPSampler(nodes []*lab.Node, ps ...netip.Prefix) *lcVIPSampler {
	s := &lcVIPSampler{stopc: make(chan struct{}), done: make(chan struct{}), tls: make([]lcTimeline, len(ps))}
	start := time.Now()
	for i := range s.tls {
		s.tls[i].start = start
	}
	go func() {
		defer close(s.done)
		last := make([]string, len(ps))
		for i := range last {
			last[i] = "-"
		}
		for {
			names := make([][]string, len(ps))
			ok := true
			for _, n := range nodes {
				as, err := n.Addresses()
				if err != nil {
					// Not a sample: an unreadable node is not one without the VIP.
					ok = false
					break
				}
				for i, p := range ps {
					if slices.ContainsFunc(as, func(a netip.Prefix) bool { return a.Addr() == p.Addr() }) {
						names[i] = append(names[i], n.Name)
					}
				}
			}
			now := time.Now()
			for i := range ps {
				if !ok {
					break
				}
				if k := strings.Join(names[i], ","); k != last[i] {
					s.tls[i].changes = append(s.tls[i].changes, lcHolders{at: now, nodes: names[i]})
					last[i] = k
				}
				s.tls[i].end = now
			}
			select {
			case <-s.stopc:
				return
			case <-time.After(lcSampleEvery):
			}
		}
	}()
	return s
}

// stopAll stops sampling and returns the timelines, in the order of the VIPs.
func (s *lcVIPSampler) stopAll() []lcTimeline {
	s.once.Do(func() { close(s.stopc) })
	<-s.done
	return s.tls
}

// stop stops sampling and returns the first VIP's timeline.
func (s *lcVIPSampler) stop() lcTimeline {
	return s.stopAll()[0]
}

// lcHolders is who holds the VIP from at on (sorted node names; none: nobody).
type lcHolders struct {
	at    time.Time
	nodes []string
}

// lcTimeline is who held the VIP from start to end: a change per element.
type lcTimeline struct {
	start, end time.Time
	changes    []lcHolders
}

// lcHandover is one time the VIP left its sole holder (from) until it had one again (to, at
// end; end is zero if it never did). from == to is a blip: a second holder for a moment, or
// none.
type lcHandover struct {
	from, to   string
	start, end time.Time
}

func (tl lcTimeline) handovers() []lcHandover {
	var out []lcHandover
	var cur *lcHandover
	sole := ""
	for _, c := range tl.changes {
		if len(c.nodes) != 1 {
			if cur == nil {
				cur = &lcHandover{from: sole, start: c.at}
			}
			continue
		}
		switch {
		case cur != nil:
			cur.to, cur.end = c.nodes[0], c.at
			out = append(out, *cur)
			cur = nil
		case sole != "":
			// From one holder straight to another between two samples.
			out = append(out, lcHandover{from: sole, to: c.nodes[0], start: c.at, end: c.at})
		}
		sole = c.nodes[0]
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// moves counts the handovers that ended on another node than they started from.
func (tl lcTimeline) moves() int {
	n := 0
	for _, h := range tl.handovers() {
		if !h.end.IsZero() && h.to != h.from {
			n++
		}
	}
	return n
}

// longest returns the longest time the number of holders satisfied ok.
func (tl lcTimeline) longest(ok func(holders int) bool) time.Duration {
	var d time.Duration
	for i, c := range tl.changes {
		end := tl.end
		if i+1 < len(tl.changes) {
			end = tl.changes[i+1].at
		}
		if ok(len(c.nodes)) {
			d = max(d, end.Sub(c.at))
		}
	}
	return d
}

// last returns the holders at the end.
func (tl lcTimeline) last() []string {
	if len(tl.changes) == 0 {
		return nil
	}
	return tl.changes[len(tl.changes)-1].nodes
}

// releasedAt returns when the VIP was last released by every node, if nobody holds it at the
// end.
func (tl lcTimeline) releasedAt() (time.Time, bool) {
	if len(tl.changes) == 0 || len(tl.last()) != 0 {
		return time.Time{}, false
	}
	return tl.changes[len(tl.changes)-1].at, true
}

// at formats a time of the timeline relative to its start.
func (tl lcTimeline) at(t time.Time) string {
	return "+" + t.Sub(tl.start).Round(time.Millisecond).String()
}

func (tl lcTimeline) String() string {
	var b strings.Builder
	for i, c := range tl.changes {
		if i > 0 {
			b.WriteString(" -> ")
		}
		who := strings.Join(c.nodes, "+")
		if who == "" {
			who = "none"
		}
		fmt.Fprintf(&b, "%s %s", who, tl.at(c.at))
	}
	fmt.Fprintf(&b, " (until %s)", tl.at(tl.end))
	return b.String()
}

// TestLifecycleTimeline checks the upgrade's arithmetic on a made-up timeline: n1, then n1 and
// n2 for 30 ms, n2, nobody for 100 ms, n1 again, then nobody at the end.
func TestLifecycleTimeline(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tl := lcTimeline{start: t0, end: ms(2000), changes: []lcHolders{
		{ms(0), []string{"n1"}},
		{ms(500), []string{"n1", "n2"}},
		{ms(530), []string{"n2"}},
		{ms(1000), nil},
		{ms(1100), []string{"n2"}}, // a blip: n2 again
		{ms(1200), []string{"n1"}}, // straight from n2 to n1 between two samples
		{ms(1900), nil},
	}}
	want := []lcHandover{
		{"n1", "n2", ms(500), ms(530)},
		{"n2", "n2", ms(1000), ms(1100)},
		{"n2", "n1", ms(1200), ms(1200)},
		{"n1", "", ms(1900), time.Time{}},
	}
	if got := tl.handovers(); !slices.Equal(got, want) {
		t.Errorf("handovers %+v, want %+v", got, want)
	}
	if got := tl.moves(); got != 2 {
		t.Errorf("moves %d, want 2", got)
	}
	if got := tl.longest(func(n int) bool { return n >= 2 }); got != 30*time.Millisecond {
		t.Errorf("longest with two holders %v, want 30ms", got)
	}
	if got := tl.longest(func(n int) bool { return n == 0 }); got != 100*time.Millisecond {
		t.Errorf("longest with none %v, want 100ms (the open 100 ms at the end ties)", got)
	}
	if at, ok := tl.releasedAt(); !ok || !at.Equal(ms(1900)) {
		t.Errorf("released at %v %v, want +1.9s", at, ok)
	}
	if s := tl.String(); s != "n1 +0s -> n1+n2 +500ms -> n2 +530ms -> none +1s -> n2 +1.1s -> n1 +1.2s -> none +1.9s (until +2s)" {
		t.Errorf("String: %s", s)
	}
}
