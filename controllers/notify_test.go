//go:build linux

package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// notifySecret is an argument of the commands of these tests: it must never reach the API
// server (arguments may carry credentials).
const notifySecret = "--token=s3cr3t-n0tify"

// recordingHooks is a NotifyHooks that records its calls, and the agent's, in one order.
type recordingHooks struct {
	mu    sync.Mutex
	calls *[]string
	specs map[string]*v1alpha1.NotifySpec
}

func (h *recordingHooks) Set(name string, spec *v1alpha1.NotifySpec) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.calls = append(*h.calls, "set "+name)
	h.specs[name] = spec
}

func (h *recordingHooks) Forget(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.calls = append(*h.calls, "forget "+name)
	delete(h.specs, name)
}

// orderedAgent is a fakeAgent that records Apply and Remove in calls.
type orderedAgent struct {
	*fakeAgent
	hooks *recordingHooks
}

func (a orderedAgent) Apply(name string, cfg vrrp.Config, probes ...probe.Spec) error {
	a.hooks.mu.Lock()
	*a.hooks.calls = append(*a.hooks.calls, "apply "+name)
	a.hooks.mu.Unlock()
	return a.fakeAgent.Apply(name, cfg, probes...)
}

func (a orderedAgent) Remove(name string) {
	a.hooks.mu.Lock()
	*a.hooks.calls = append(*a.hooks.calls, "remove "+name)
	a.hooks.mu.Unlock()
	a.fakeAgent.Remove(name)
}

func reconcileName(t *testing.T, r *VirtualIPReconciler, name string) {
	t.Helper()
	if _, err := r.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKey{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// With exec enabled the reconciler hands a VirtualIP's spec.notify to the runner before it
// applies it, and forgets it after it removed it (so that its STOP still runs); it reports
// nothing.
func TestReconcileNotifyHooks(t *testing.T) {
	var calls []string
	hooks := &recordingHooks{calls: &calls, specs: map[string]*v1alpha1.NotifySpec{}}
	fa := orderedAgent{newFakeAgent(), hooks}
	vip := testVIP("web", func(v *v1alpha1.VirtualIP) {
		v.Spec.Notify = &v1alpha1.NotifySpec{Master: []string{"/usr/local/bin/on-master", notifySecret}}
	})
	cl := fakeClient(t).WithObjects(testNode("lb1", "198.18.0.11", nil), vip).Build()
	warnings := NewWarnings(nil)
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
		Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler), Notify: hooks, Warnings: warnings}
	reconcileName(t, r, "web")
	if _, ok := warnings.Get("web"); ok {
		t.Error("a warning with exec enabled")
	}
	if got := hooks.specs["web"]; got == nil || !slices.Equal(got.Master, vip.Spec.Notify.Master) {
		t.Errorf("the runner has %+v, want the VirtualIP's spec.notify", got)
	}
	if err := cl.Delete(t.Context(), vip); err != nil {
		t.Fatal(err)
	}
	reconcileName(t, r, "web")
	if want := []string{"set web", "apply web", "remove web", "forget web"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

// A VirtualIP whose start fails is refused and retried, its instance removed each time: its
// commands stay with the runner, so that the runner reads the failure with them and reports
// the streak once (pkg/notify), instead of racing a Forget.
func TestReconcileNotifyKeptOnRefusal(t *testing.T) {
	var calls []string
	hooks := &recordingHooks{calls: &calls, specs: map[string]*v1alpha1.NotifySpec{}}
	fa := orderedAgent{newFakeAgent(), hooks}
	fa.applyErr = errors.New("virtual MAC interface: operation not supported")
	vip := testVIP("web", func(v *v1alpha1.VirtualIP) {
		v.Spec.Notify = &v1alpha1.NotifySpec{Fault: []string{"/usr/local/bin/on-fault"}}
	})
	cl := fakeClient(t).WithObjects(testNode("lb1", "198.18.0.11", nil), vip).Build()
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
		Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler), Notify: hooks, Warnings: NewWarnings(nil)}
	reconcileName(t, r, "web")
	reconcileName(t, r, "web")
	if slices.Contains(calls, "forget web") {
		t.Errorf("calls %q: the refusal forgot the commands of a VirtualIP that still selects the node", calls)
	}
	if hooks.specs["web"] == nil {
		t.Error("the runner lost the VirtualIP's commands")
	}
}

// With exec disabled (no runner), a VirtualIP with spec.notify runs all the same, and a
// NotifyDisabled warning says its commands do not; it goes with spec.notify.
func TestReconcileNotifyDisabled(t *testing.T) {
	fa := newFakeAgent()
	vip := testVIP("web", func(v *v1alpha1.VirtualIP) {
		v.Spec.Notify = &v1alpha1.NotifySpec{All: []string{"/usr/local/bin/on-change", notifySecret}}
	})
	cl := fakeClient(t).WithObjects(testNode("lb1", "198.18.0.11", nil), vip).Build()
	warnings := NewWarnings(nil)
	r := &VirtualIPReconciler{Client: cl, NodeName: "lb1", Namespace: "kube-vrrp", Agent: fa, Interfaces: eth0("198.18.0.11"),
		Rejected: NewRejections(nil), Log: slog.New(slog.DiscardHandler), Warnings: warnings}
	reconcileName(t, r, "web")
	if _, ok := fa.config("web"); !ok {
		t.Fatal("the VirtualIP does not run: a notify command must never keep VRRP from running")
	}
	w, ok := warnings.Get("web")
	if !ok || w.Reason != ReasonNotifyDisabled || !strings.Contains(w.Message, "--enable-exec-probes") {
		t.Errorf("warning %+v (%v), want NotifyDisabled saying how to enable exec", w, ok)
	}
	vip.Spec.Notify = nil
	if err := cl.Update(t.Context(), vip); err != nil {
		t.Fatal(err)
	}
	reconcileName(t, r, "web")
	if w, ok := warnings.Get("web"); ok {
		t.Errorf("warning %+v once spec.notify is gone", w)
	}
}

// The member's message carries the warning whole, whatever the rest says.
func TestWithWarning(t *testing.T) {
	r := &StatusReconciler{Warnings: NewWarnings(nil)}
	r.Warnings.Set("web", Warning{Reason: ReasonNotifyDisabled, Message: notifyDisabledMessage})
	for _, msg := range []string{"", "probe haproxy failing (-20)", strings.Repeat("x", 2*maxMessage)} {
		got := r.withWarning("web", v1alpha1.NodeStatus{Message: msg}).Message
		if len(got) > maxMessage || !strings.HasSuffix(got, notifyDisabledMessage) {
			t.Errorf("message %q (%d bytes) from %d bytes, want at most %d ending with the warning", got, len(got), len(msg), maxMessage)
		}
	}
	if got := r.withWarning("other", v1alpha1.NodeStatus{Message: "m"}).Message; got != "m" {
		t.Errorf("message of a VirtualIP without warning: %q", got)
	}
}

// Against the API server: an agent with exec disabled runs a VirtualIP with spec.notify,
// reports in its member's message that the commands do not run and records one Warning Event
// NotifyDisabled, neither naming the commands' arguments; removing spec.notify clears the
// message.
func TestNotifyDisabledReported(t *testing.T) {
	cfg := apiServer(t)
	ctx := t.Context()
	admin := apiClient(t, cfg)
	createNodes(t, admin, "nd-n1")
	vip := createVIP(t, admin, "nd", "nd-n1")
	vip.Spec.Notify = &v1alpha1.NotifySpec{Master: []string{"/usr/local/bin/on-master", notifySecret}}
	if err := admin.Update(ctx, vip); err != nil {
		t.Fatal(err)
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme(t),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptionsFor(cfg),
		Client:                 ClientOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	fa := newFakeAgent()
	changes := make(chan struct{}, 1)
	poke := func(string) {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	rejected, warnings := NewRejections(poke), NewWarnings(poke)
	log := slog.New(slog.DiscardHandler)
	if err := (&VirtualIPReconciler{Client: mgr.GetClient(), NodeName: "nd-n1", Namespace: "kube-vrrp", Agent: fa,
		Interfaces: eth0("198.18.0.11"), Rejected: rejected, Warnings: warnings, Log: log}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&StatusReconciler{Client: mgr.GetClient(), Reader: mgr.GetClient(), NodeName: "nd-n1", Agent: fa,
		Rejected: rejected, Warnings: warnings, Recorder: mgr.GetEventRecorder("kube-vrrp-agent"), Log: log,
		Changes: changes}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	eventually(t, 10*time.Second, "the VirtualIP applied", func() error {
		if _, ok := fa.config("nd"); !ok {
			return fmt.Errorf("not applied")
		}
		return nil
	})
	fa.setState("nd", vrrp.Master, vrrp.ReasonMasterDown)
	poke("nd")
	eventually(t, 10*time.Second, "the member saying the commands do not run", func() error {
		m, err := getMember(ctx, admin, "nd", "nd-n1")
		if err != nil {
			return err
		}
		if m.Status.State != "Master" || m.Status.Message != notifyDisabledMessage {
			return fmt.Errorf("state %s, message %q", m.Status.State, m.Status.Message)
		}
		return nil
	})
	var notes []string
	eventually(t, 10*time.Second, "a NotifyDisabled Event", func() error {
		var list eventsv1.EventList
		if err := admin.List(ctx, &list); err != nil {
			return err
		}
		notes = nil
		for _, e := range list.Items {
			if e.Regarding.Kind == "VirtualIP" && e.Regarding.Name == "nd" && e.Reason == ReasonNotifyDisabled {
				if e.Type != "Warning" {
					return fmt.Errorf("event type %s", e.Type)
				}
				notes = append(notes, e.Note)
			}
		}
		if len(notes) == 0 {
			return fmt.Errorf("none")
		}
		return nil
	})
	if want := "node nd-n1: " + notifyDisabledMessage; len(notes) != 1 || notes[0] != want {
		t.Errorf("NotifyDisabled Events %q, want one: %q", notes, want)
	}

	vip = &v1alpha1.VirtualIP{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "nd"}, vip); err != nil {
		t.Fatal(err)
	}
	vip.Spec.Notify = nil
	if err := admin.Update(ctx, vip); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the member's message without the warning", func() error {
		m, err := getMember(ctx, admin, "nd", "nd-n1")
		if err != nil {
			return err
		}
		if m.Status.Message != "" {
			return fmt.Errorf("message %q", m.Status.Message)
		}
		return nil
	})

	// Nothing the API server holds names the commands' arguments.
	var members v1alpha1.VirtualIPMemberList
	var events eventsv1.EventList
	if err := admin.List(ctx, &members); err != nil {
		t.Fatal(err)
	}
	if err := admin.List(ctx, &events); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v %+v", members.Items, events.Items); strings.Contains(s, "s3cr3t") {
		t.Error("a command's argument reached a member or an Event")
	}
}
