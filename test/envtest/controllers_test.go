package envtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/controllers"
	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

const (
	groupLabel = "kubevrrp.test/group"
	slotLabel  = "kubevrrp.test/slot"
	// wait bounds every wait for the controllers; they react in milliseconds.
	wait = 20 * time.Second

	// The PASS passwords of the scenario: one too long (refused) and one valid. Neither may
	// appear in any status, Event or log.
	badPassword  = "far-too-long-secret-pw"
	goodPassword = "Pw8!xq#z"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// lostRace matches what the API server says when an aggregator loses a race (409): a summary
// with a stale resourceVersion, a prune whose preconditions (the member's UID and
// resourceVersion) no longer hold.
var lostRace = regexp.MustCompile(`(?i)the object has been modified|precondition|rejected our request|Conflict`)

// TestControllers runs the agent's reconcilers for two simulated nodes, each with its
// aggregator, with the API server's admin credentials.
func TestControllers(t *testing.T) {
	requireAPIServer(t)
	rec := &codeRecorder{}
	checkResponses(t, rec, "admin")
	scenario(t, rec.wrap(cfg), "ctl")
}

// checkResponses fails the test for every refused request of rec once the test's managers have
// stopped (so that what they send while stopping counts too).
func checkResponses(t *testing.T, rec *codeRecorder, who string) {
	t.Cleanup(func() {
		for _, f := range rec.failures() {
			t.Errorf("as %s: %s %s: %d", who, f.method, f.path, f.code)
		}
		if n := rec.count(http.StatusConflict); n > 0 {
			t.Logf("%d writes refused as stale (409, retried with fresh data)", n)
		}
		if rec.total() == 0 {
			t.Error("no request went through the recorded transport")
		}
	})
}

// agentUser is the agent's ServiceAccount, whose credentials the DaemonSet runs with.
const agentUser = "system:serviceaccount:" + agentNamespace + ":kube-vrrp-agent"

// TestControllersLeastPrivilege runs the same scenario as the agent's ServiceAccount bound to the
// generated config/rbac/role.yaml (docs/design.md §7.10): everything works and no request is
// refused. Then it checks that the role grants nothing more than it should.
func TestControllersLeastPrivilege(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	installRBAC(t, admin)
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = rest.ImpersonationConfig{UserName: agentUser}

	t.Run("scenario", func(t *testing.T) {
		rec := &codeRecorder{}
		checkResponses(t, rec, agentUser)
		scenario(t, rec.wrap(sa), "rbac")
	})
	t.Run("tight", func(t *testing.T) { checkTight(t, admin, sa) })
}

// scenario: two nodes, one VirtualIP, every path of the reconcilers; restCfg is what the agents
// (reconcilers and aggregators) run with, prefix makes its objects its own.
func scenario(t *testing.T, restCfg *rest.Config, prefix string) {
	ctx := t.Context()
	admin := adminClient(t)
	ensureNamespace(t, admin, agentNamespace)

	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Registered first, so it runs last: after the managers stopped.
	t.Cleanup(func() {
		out := logs.String()
		for _, pw := range []string{badPassword, goodPassword} {
			if strings.Contains(out, pw) {
				t.Errorf("a password is in the logs")
			}
		}
		// Two aggregators write the same fields: losing a race to the other (a stale summary
		// refused, a prune whose preconditions failed) is retried quietly, never logged as an
		// error.
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "level=ERROR") && lostRace.MatchString(line) {
				t.Errorf("a lost race logged as an error: %.400s", line)
			}
		}
		if t.Failed() {
			if len(out) > 20000 {
				out = "...\n" + out[len(out)-20000:]
			}
			t.Logf("logs:\n%s", out)
		}
	})

	lb1, lb2 := prefix+"-lb1", prefix+"-lb2"
	createNode(t, admin, lb1, "198.18.0.11", map[string]string{groupLabel: prefix, slotLabel: "1"})
	createNode(t, admin, lb2, "198.18.0.12", map[string]string{groupLabel: prefix, slotLabel: "2"})
	n1 := startNode(t, restCfg, log, lb1, "198.18.0.11")
	n2 := startNode(t, restCfg, log, lb2, "198.18.0.12")

	name := prefix + "-web"
	vip := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualIPSpec{
			VRID:         51,
			Addresses:    []string{"198.18.0.100/24"},
			Priority:     ptr.To[int32](100),
			Nodes:        []v1alpha1.NodeOverride{{Name: lb1, Priority: ptr.To[int32](110)}},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: prefix}},
			Unicast:      &v1alpha1.UnicastSpec{Peers: []string{"198.18.0.99"}},
		},
	}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })

	// Each agent gets the config of its node: its priority, its address, the other node and the
	// extra peer as unicast peers and members, with their highest priorities.
	want := func(prio uint8, self, peer string, peerPrio uint8) vrrp.Config {
		return vrrp.Config{
			Name: name, Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: prio,
			Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.100/24")}, Primary: netip.MustParseAddr(self),
			Preempt: true, Accept: true,
			Peers: []netip.Addr{netip.MustParseAddr(peer), netip.MustParseAddr("198.18.0.99")},
			Members: []vrrp.Member{
				{Addr: netip.MustParseAddr(peer), MaxPriority: peerPrio},
				{Addr: netip.MustParseAddr("198.18.0.99")},
			},
			MembersComplete: true,
		}
	}
	t.Run("apply", func(t *testing.T) {
		waitConfig(t, n1, name, want(110, "198.18.0.11", "198.18.0.12", 100))
		waitConfig(t, n2, name, want(100, "198.18.0.12", "198.18.0.11", 110))
	})

	t.Run("members", func(t *testing.T) {
		v := waitStatus(t, admin, name, "both members, Backup, and NoMaster", func(v *vipStatus) error {
			if got := entryNames(v); !slices.Equal(got, []string{lb1, lb2}) {
				return fmt.Errorf("members %v", got)
			}
			return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster)
		})
		for _, w := range []v1alpha1.NodeStatus{
			{Name: lb1, State: "Backup", Priority: 110, Interface: "eth0", Address: "198.18.0.11", Reason: vrrp.ReasonStarted},
			{Name: lb2, State: "Backup", Priority: 100, Interface: "eth0", Address: "198.18.0.12", Reason: vrrp.ReasonStarted},
		} {
			got, _ := entryOf(v, w.Name)
			if got.LastTransitionTime == nil || !got.LastTransitionTime.Equal(&metav1.Time{Time: time.Unix(1_700_000_000, 0)}) {
				t.Errorf("%s: lastTransitionTime %v", w.Name, got.LastTransitionTime)
			}
			got.LastTransitionTime = nil
			if d := cmp.Diff(w, got); d != "" {
				t.Errorf("member of %s (-want +got):\n%s", w.Name, d)
			}
		}
		// Each agent writes its own member, named after the VirtualIP and its node, by
		// server-side apply, and nobody else writes it; the VirtualIP owns it (the garbage
		// collector deletes it with the VirtualIP).
		for _, node := range []string{lb1, lb2} {
			m, _ := memberOf(v, node)
			if want := v1alpha1.MemberName(name, node); m.Name != want {
				t.Errorf("member of %s named %q, want %q", node, m.Name, want)
			}
			wantOwner := []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VirtualIP", Name: name, UID: v.UID}}
			if d := cmp.Diff(wantOwner, m.OwnerReferences); d != "" {
				t.Errorf("owner of %s's member (-want +got):\n%s", node, d)
			}
			if got := memberManagers(m); !slices.Equal(got, []string{"kube-vrrp-agent/" + node}) {
				t.Errorf("%s's member written by %v, want its agent alone", node, got)
			}
			if f := memberFields(t, m, "kube-vrrp-agent/"+node); !strings.Contains(f, `"f:spec"`) || !strings.Contains(f, `"f:status"`) {
				t.Errorf("%s's agent does not own its member's spec and status: %s", node, f)
			}
		}
		// The aggregator owns the summary, and is the only writer of the VirtualIP's status.
		f := managedFields(t, v.VirtualIP, controllers.AggregatorFieldManager)
		for _, k := range []string{`"f:master"`, `"f:conditions"`, `"f:observedGeneration"`} {
			if !strings.Contains(f, k) {
				t.Errorf("the aggregator does not own %s: %s", k, f)
			}
		}
		for _, m := range v.ManagedFields {
			if m.Subresource == "status" && m.Manager != controllers.AggregatorFieldManager {
				t.Errorf("%s writes the VirtualIP's status: %s", m.Manager, m.FieldsV1.Raw)
			}
		}
	})

	t.Run("master", func(t *testing.T) {
		before, err := getVIP(ctx, admin, name)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := memberOf(before, lb2)

		// A takeover within the second: lastTransitionTime keeps its fraction through the API.
		since := time.Now().Truncate(time.Second).Add(123_456_789)
		n1.agent.setStatus(name, agent.Status{Status: vrrp.Status{State: vrrp.Master, Reason: vrrp.ReasonMasterDown, Since: since}})
		v := waitStatus(t, admin, name, "lb1 Master and Ready", func(v *vipStatus) error {
			return wantConditions(v, lb1, controllers.ConditionReady, controllers.ReasonOneMaster)
		})
		if e, _ := entryOf(v, lb1); e.State != "Master" || e.Reason != vrrp.ReasonMasterDown || e.Message != "" ||
			e.LastTransitionTime == nil || !e.LastTransitionTime.Time.Equal(since) {
			t.Errorf("member of lb1: %+v, want Master, MasterDownTimer, no message, since %s", e, since.Format(time.RFC3339Nano))
		}
		// `kubectl get vip` shows the aggregator's summary.
		if _, cells := printerRow(t, name); fmt.Sprint(cells[3]) != lb1 || fmt.Sprint(cells[4]) != "True" {
			t.Errorf("kubectl get vip: MASTER %v READY %v, want %s True", cells[3], cells[4], lb1)
		}
		// Ready became True; DualMaster stayed False, with another reason: its
		// lastTransitionTime is kept.
		for typ, changed := range map[string]bool{controllers.ConditionReady: true, controllers.ConditionDualMaster: false} {
			was, _ := conditionOf(before, typ)
			now, _ := conditionOf(v, typ)
			if kept := now.LastTransitionTime.Equal(&was.LastTransitionTime); changed && now.LastTransitionTime.Before(&was.LastTransitionTime) || !changed && !kept {
				t.Errorf("%s %s (%s) since %s, was %s (%s) since %s", typ, now.Status, now.Reason, now.LastTransitionTime, was.Status, was.Reason, was.LastTransitionTime)
			}
			if now.Message == "" || now.ObservedGeneration != v.Generation {
				t.Errorf("%s: message %q observedGeneration %d", typ, now.Message, now.ObservedGeneration)
			}
		}
		// The other node's member is untouched: not written at all.
		if m, _ := memberOf(v, lb2); m.ResourceVersion != other.ResourceVersion {
			t.Errorf("lb1's change wrote lb2's member: %s", cmp.Diff(other, m))
		}
	})

	t.Run("message", func(t *testing.T) {
		// What the agent says beside the reason, in words, in the member's message.
		st := agent.Status{Status: vrrp.Status{State: vrrp.Master, Reason: vrrp.ReasonMasterDown, Since: time.Now(),
			HostError: "removing [198.18.0.100/24] failed, retrying: device busy"}, Adjustment: "probe web failing (-10)"}
		n1.agent.setStatus(name, st)
		waitStatus(t, admin, name, "lb1's message", func(v *vipStatus) error {
			e, _ := entryOf(v, lb1)
			if want := "probe web failing (-10); removing [198.18.0.100/24] failed, retrying: device busy"; e.Reason != vrrp.ReasonMasterDown || e.Message != want {
				return fmt.Errorf("member of lb1 %+v, want message %q", e, want)
			}
			return wantConditions(v, lb1, controllers.ConditionReady, controllers.ReasonOneMaster)
		})
	})

	t.Run("dual master", func(t *testing.T) {
		n2.agent.set(name, vrrp.Master, vrrp.ReasonMasterDown)
		v := waitStatus(t, admin, name, "DualMaster", func(v *vipStatus) error {
			// Which of the two status.master names is the aggregator's choice.
			master := v.Status.Master
			if master != lb2 {
				master = lb1
			}
			return wantConditions(v, master, controllers.ConditionDualMaster, controllers.ReasonDualMaster)
		})
		if c, _ := conditionOf(v, controllers.ConditionDualMaster); !strings.Contains(c.Message, lb1+", "+lb2) {
			t.Errorf("DualMaster message %q does not name both", c.Message)
		}
		n2.agent.set(name, vrrp.Backup, vrrp.ReasonHigherPriority)
		waitStatus(t, admin, name, "Ready again", func(v *vipStatus) error {
			return wantConditions(v, lb1, controllers.ConditionReady, controllers.ReasonOneMaster)
		})
	})

	t.Run("events", func(t *testing.T) {
		waitEvents(t, admin, name, []wantEvent{
			{typ: "Normal", reason: "BecameBackup", note: "node " + lb1 + ": Initialize -> Backup: Started"},
			{typ: "Normal", reason: "BecameBackup", note: "node " + lb2 + ": Initialize -> Backup: Started"},
			{typ: "Normal", reason: "BecameMaster", note: "node " + lb1 + ": Backup -> Master: MasterDownTimer"},
			{typ: "Normal", reason: "BecameMaster", note: "node " + lb2 + ": Backup -> Master: MasterDownTimer"},
			{typ: "Normal", reason: "BecameBackup", note: "node " + lb2 + ": Master -> Backup: HigherPriorityMaster"},
		})
	})

	t.Run("deselect", func(t *testing.T) {
		// lb2 holds the addresses when it stops being selected: its member must go, and the
		// master with it.
		n1.agent.set(name, vrrp.Backup, vrrp.ReasonHigherPriority)
		n2.agent.set(name, vrrp.Master, vrrp.ReasonPreempting)
		waitStatus(t, admin, name, "lb2 Master", func(v *vipStatus) error {
			return wantConditions(v, lb2, controllers.ConditionReady, controllers.ReasonOneMaster)
		})
		removesBefore := n1.agent.count("Remove", name)
		patchSelector(t, admin, name, map[string]string{groupLabel: prefix, slotLabel: "1"})

		eventually(t, wait, "Remove on lb2", func() error {
			if _, ok := n2.agent.config(name); ok || n2.agent.count("Remove", name) == 0 {
				return fmt.Errorf("lb2 still runs it")
			}
			return nil
		})
		// lb1 keeps running, with lb2 gone from its peers and members (no restart).
		w := want(110, "198.18.0.11", "198.18.0.12", 100)
		w.Peers = w.Peers[1:]
		w.Members = w.Members[1:]
		waitConfig(t, n1, name, w)
		if n := n1.agent.count("Remove", name); n != removesBefore {
			t.Errorf("lb1's instance was removed %d times", n-removesBefore)
		}
		v := waitStatus(t, admin, name, "lb2's member pruned", func(v *vipStatus) error {
			if got := entryNames(v); !slices.Equal(got, []string{lb1}) {
				return fmt.Errorf("members %v", got)
			}
			return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster)
		})
		if v.Status.ObservedGeneration != v.Generation || v.Generation < 2 {
			t.Errorf("observedGeneration %d, generation %d", v.Status.ObservedGeneration, v.Generation)
		}
	})

	t.Run("reselect", func(t *testing.T) {
		applies := n2.agent.count("Apply", name)
		patchSelector(t, admin, name, map[string]string{groupLabel: prefix})
		waitConfig(t, n2, name, want(100, "198.18.0.12", "198.18.0.11", 110))
		if n2.agent.count("Apply", name) == applies {
			t.Error("no new Apply on lb2")
		}
		waitStatus(t, admin, name, "lb2's member back", func(v *vipStatus) error {
			if got := entryNames(v); !slices.Equal(got, []string{lb1, lb2}) {
				return fmt.Errorf("members %v", got)
			}
			return nil
		})
	})

	t.Run("delete", func(t *testing.T) {
		r1, r2 := n1.agent.count("Remove", name), n2.agent.count("Remove", name)
		if err := admin.Delete(ctx, vip); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, "Remove on both", func() error {
			for _, n := range []struct {
				node   *simNode
				before int
			}{{n1, r1}, {n2, r2}} {
				if _, ok := n.node.agent.config(name); ok || n.node.agent.count("Remove", name) == n.before {
					return fmt.Errorf("%s still runs it", n.node.name)
				}
			}
			return nil
		})
	})

	t.Run("secret", func(t *testing.T) { secretScenario(t, admin, prefix, n1) })
}

// secretScenario: a VirtualIP whose PASS Secret is missing, then has no such key, then holds a
// password that is too long, then a valid one. Only the agent can check these; its node's
// member says Fault with the reason, and no password shows anywhere.
func secretScenario(t *testing.T, admin client.Client, prefix string, n1 *simNode) {
	ctx := t.Context()
	name, secretName := prefix+"-auth", prefix+"-vrrp-auth"
	vip := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.VirtualIPSpec{
			VRID: 52, Version: 2, AdvertisementInterval: &v1alpha1.Duration{Duration: time.Second},
			Addresses:      []string{"198.18.0.101/24"},
			NodeSelector:   &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: prefix, slotLabel: "1"}},
			Authentication: &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: secretName, Key: "password"}},
		},
	}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: secretName}}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), secret) })

	fault := func(reason, message string) {
		t.Helper()
		v := waitStatus(t, admin, name, "Fault: "+reason+": "+message, func(v *vipStatus) error {
			e, _ := entryOf(v, n1.name)
			if e.State != "Fault" || e.Reason != reason || e.Message != message {
				return fmt.Errorf("entry %+v", e)
			}
			return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonAllFault)
		})
		if _, ok := n1.agent.config(name); ok {
			t.Errorf("the agent runs the rejected VirtualIP")
		}
		if names := entryNames(v); len(names) != 1 {
			t.Errorf("members %v, want only %s", names, n1.name)
		}
	}
	fault(controllers.ReasonSecretMissing, "spec.authentication.secretRef: Secret "+agentNamespace+"/"+secretName+" not found")

	secret.Data = map[string][]byte{"pw": []byte(badPassword)}
	if err := admin.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	fault(controllers.ReasonSecretMissing, `spec.authentication.secretRef: Secret `+agentNamespace+"/"+secretName+` has no key "password"`)

	secret.Data = map[string][]byte{"password": []byte(badPassword)}
	if err := admin.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	fault(controllers.ReasonInvalidSpec, `spec.authentication.secretRef: Invalid value: "`+secretName+
		`/password": the password in Secret "`+secretName+`" key "password" has 22 bytes: PASS authentication takes 1..8 bytes`)

	// Each refusal is a Warning of its own reason, whose note is its message (no instance runs,
	// so there is no transition and no Became* Event).
	waitRefusalEvent(t, admin, name, n1.name, controllers.ReasonSecretMissing,
		"spec.authentication.secretRef: Secret "+agentNamespace+"/"+secretName+" not found")
	waitRefusalEvent(t, admin, name, n1.name, controllers.ReasonInvalidSpec,
		`spec.authentication.secretRef: Invalid value: "`+secretName+`/password": `)

	secret.Data = map[string][]byte{"password": []byte(goodPassword)}
	if err := admin.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "applied with the password", func() error {
		c, ok := n1.agent.config(name)
		if !ok || string(c.Password) != goodPassword || c.Version != 2 || c.Interval != time.Second {
			return fmt.Errorf("config %v: version %d interval %s", ok, c.Version, c.Interval)
		}
		return nil
	})
	waitStatus(t, admin, name, "Backup", func(v *vipStatus) error {
		if e, _ := entryOf(v, n1.name); e.State != "Backup" || e.Reason != vrrp.ReasonStarted {
			return fmt.Errorf("entry %+v", e)
		}
		return nil
	})
	waitEvents(t, admin, name, []wantEvent{
		{typ: "Normal", reason: "BecameBackup", note: "node " + n1.name + ": Initialize -> Backup: Started"},
	})

	// No password in the object (status, managed fields), its members or any Event.
	var everything []any
	v, err := getVIP(ctx, admin, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.members) == 0 {
		t.Fatal("no member to look into")
	}
	everything = append(everything, v.VirtualIP, v.members)
	var evs eventsv1.EventList
	if err := admin.List(ctx, &evs); err != nil {
		t.Fatal(err)
	}
	everything = append(everything, evs)
	var core corev1.EventList
	if err := admin.List(ctx, &core); err != nil {
		t.Fatal(err)
	}
	everything = append(everything, core)
	b, err := json.Marshal(everything)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{badPassword, goodPassword} {
		if strings.Contains(string(b), pw) {
			t.Errorf("a password is in the VirtualIP, a member or an Event")
		}
	}

	if err := admin.Delete(ctx, vip); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "Remove", func() error {
		if _, ok := n1.agent.config(name); ok {
			return fmt.Errorf("lb1 still runs it")
		}
		return nil
	})
}

// TestAggregatorPrune: the aggregator of a node the VirtualIP does not select leaves it to the
// members; one reconcile of a member's aggregator deletes the member of a node that is no
// longer selected and of a node that is gone, and its summary already leaves them out (it is
// computed from the members that are left, not all those read). Once the VirtualIP selects no
// node, any agent's aggregator prunes and says so.
func TestAggregatorPrune(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	createNode(t, admin, "prune-lb1", "198.18.0.11", map[string]string{groupLabel: "prune", slotLabel: "1"})
	createNode(t, admin, "prune-lb2", "198.18.0.12", map[string]string{groupLabel: "prune", slotLabel: "2"})
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "prune"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 60, Addresses: []string{"198.18.0.110/24"},
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: "prune", slotLabel: "1"}},
	}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	// Members as the agents write them: lb1 Backup, lb2 (not selected) and a deleted node Master.
	for _, e := range []v1alpha1.NodeStatus{{Name: "prune-lb1", State: "Backup"}, {Name: "prune-lb2", State: "Master"}, {Name: "prune-gone", State: "Master"}} {
		applyEntry(t, admin, "prune", e)
	}

	// lb2 is not selected and lb1, a member, reports: lb2's aggregator writes nothing.
	other := &controllers.Aggregator{Client: admin, NodeName: "prune-lb2", Log: slog.New(slog.DiscardHandler)}
	v, err := getVIP(ctx, admin, "prune")
	if err != nil {
		t.Fatal(err)
	}
	rv := v.version()
	if _, err := other.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "prune"}}); err != nil {
		t.Fatal(err)
	}
	if v, err = getVIP(ctx, admin, "prune"); err != nil {
		t.Fatal(err)
	}
	if v.version() != rv {
		t.Errorf("the aggregator of a node that is not selected wrote the object or a member: %s", describe(v))
	}

	agg := &controllers.Aggregator{Client: admin, NodeName: "prune-lb1", Log: slog.New(slog.DiscardHandler)}
	if _, err := agg.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "prune"}}); err != nil {
		t.Fatal(err)
	}
	if v, err = getVIP(ctx, admin, "prune"); err != nil {
		t.Fatal(err)
	}
	if got := entryNames(v); !slices.Equal(got, []string{"prune-lb1"}) {
		t.Errorf("members after one reconcile: %v", got)
	}
	if err := wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster); err != nil {
		t.Errorf("summary after one reconcile: %v", err)
	}

	// Nothing to prune: a second reconcile changes nothing, and keeps lastTransitionTime.
	rv = v.version()
	before, _ := conditionOf(v, controllers.ConditionNoMaster)
	time.Sleep(1100 * time.Millisecond) // metav1.Time has whole seconds
	if _, err := agg.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "prune"}}); err != nil {
		t.Fatal(err)
	}
	v, err = getVIP(ctx, admin, "prune")
	if err != nil {
		t.Fatal(err)
	}
	if v.version() != rv {
		t.Errorf("an idle reconcile wrote the object or a member: %s", describe(v))
	}
	if after, _ := conditionOf(v, controllers.ConditionNoMaster); !after.LastTransitionTime.Equal(&before.LastTransitionTime) {
		t.Errorf("lastTransitionTime moved without a transition: %v -> %v", before.LastTransitionTime, after.LastTransitionTime)
	}

	// A VirtualIP that is gone is not an error.
	if _, err := agg.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "prune-never-existed"}}); err != nil {
		t.Errorf("reconcile of a missing VirtualIP: %v", err)
	}

	// It selects no node now, and lb1's member is stale: no member is left to summarise, so the
	// aggregator of a node that is not selected prunes it and says that no node runs it, after
	// a wait of its own (every agent does it).
	patchSelector(t, admin, "prune", map[string]string{groupLabel: "prune", slotLabel: "none"})
	for range 3 {
		res, err := other.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "prune"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter > time.Second {
			t.Fatalf("waits %v to summarise what no member writes", res.RequeueAfter)
		}
		time.Sleep(res.RequeueAfter)
	}
	if v, err = getVIP(ctx, admin, "prune"); err != nil {
		t.Fatal(err)
	}
	if got := entryNames(v); len(got) != 0 {
		t.Errorf("members once no node is selected: %v", got)
	}
	if err := wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoNodes); err != nil {
		t.Errorf("summary once no node is selected: %v", err)
	}
}

// staleReader returns v, a copy read earlier, for Gets of that VirtualIP and lists of its
// members: what an agent's cache holds before the watch delivers the newer versions.
type staleReader struct {
	client.Client
	v *vipStatus
}

func (s staleReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if v, ok := obj.(*v1alpha1.VirtualIP); ok && key.Name == s.v.Name {
		s.v.DeepCopyInto(v)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

func (s staleReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*v1alpha1.VirtualIPMemberList); ok {
		o := (&client.ListOptions{}).ApplyOptions(opts)
		if o.FieldSelector != nil {
			if name, found := o.FieldSelector.RequiresExactMatch("spec.virtualIP"); found && name == s.v.Name {
				l.Items = nil
				for _, m := range s.v.members {
					l.Items = append(l.Items, *m.DeepCopy())
				}
				return nil
			}
		}
	}
	return s.Client.List(ctx, list, opts...)
}

// TestAggregatorStale: an aggregator that works from old copies of the VirtualIP and its
// members cannot write over what is newer. Its summary carries the copy's resourceVersion, so
// the API server refuses it (409) when another agent wrote a summary since, and the status
// keeps the newer one; its prune deletes a member with the copy's UID and resourceVersion as
// preconditions, so the API server refuses it (409) when the member was written again since,
// and the member stays. Both are a quiet retry (no error, no ERROR log), and the retry with
// the current objects writes the right summary. A member another aggregator pruned first
// (404) is pruned, not an error.
func TestAggregatorStale(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	createNode(t, admin, "stale-lb1", "198.18.0.11", map[string]string{groupLabel: "stale"})
	createNode(t, admin, "stale-lb2", "198.18.0.12", map[string]string{groupLabel: "stale"})
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("lost races logged as errors:\n%s", logs)
		}
	})
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "stale"}}
	newVIP := func(t *testing.T) {
		t.Helper()
		vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "stale"}, Spec: v1alpha1.VirtualIPSpec{
			VRID: 61, Addresses: []string{"198.18.0.111/24"},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: "stale"}},
		}}
		if err := admin.Create(ctx, vip); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			deleteVIP(ctx, admin, vip)
			eventually(t, wait, "VirtualIP stale and its members deleted", func() error {
				v, err := getVIP(ctx, admin, "stale")
				if !apierrors.IsNotFound(err) {
					return fmt.Errorf("get: %v", err)
				}
				if ms, err := membersOf(ctx, admin, "stale"); err != nil || len(ms) > 0 {
					return fmt.Errorf("members %v: %v", entryNames(v), err)
				}
				return nil
			})
		})
	}
	retried := func(t *testing.T, res reconcile.Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("a lost race returned an error (logged as ERROR by controller-runtime): %v", err)
		}
		if res.RequeueAfter <= 0 {
			t.Errorf("a lost race is not retried: %+v", res)
		}
	}

	t.Run("summary", func(t *testing.T) {
		newVIP(t)
		applyEntry(t, admin, "stale", v1alpha1.NodeStatus{Name: "stale-lb1", State: "Backup"})
		applyEntry(t, admin, "stale", v1alpha1.NodeStatus{Name: "stale-lb2", State: "Backup"})
		old, err := getVIP(ctx, admin, "stale")
		if err != nil {
			t.Fatal(err)
		}
		// lb1 takes over after the copy was read, and its aggregator writes the summary: the
		// copy's summary (no master) is now wrong.
		now := metav1.Now()
		applyEntry(t, admin, "stale", v1alpha1.NodeStatus{Name: "stale-lb1", State: "Master", LastTransitionTime: &now})
		agg := &controllers.Aggregator{Client: admin, NodeName: "stale-lb1", Log: log}
		if res, err := agg.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
			t.Fatalf("reconcile with the current objects: %+v, %v", res, err)
		}
		before, err := getVIP(ctx, admin, "stale")
		if err != nil {
			t.Fatal(err)
		}
		if err := wantConditions(before, "stale-lb1", controllers.ConditionReady, controllers.ReasonOneMaster); err != nil {
			t.Fatal(err)
		}

		// In the copy no node is MASTER: lb1, the first by name, writes the summary.
		agg.Client = staleReader{admin, old}
		res, err := agg.Reconcile(ctx, req)
		retried(t, res, err)
		v, err := getVIP(ctx, admin, "stale")
		if err != nil {
			t.Fatal(err)
		}
		if v.version() != before.version() {
			t.Errorf("a summary of resourceVersion %s was written over %s: %s", old.ResourceVersion, before.ResourceVersion, describe(v))
		}
		if !strings.Contains(logs.String(), "summarising again") {
			t.Errorf("the refused summary is not in the debug log:\n%s", logs)
		}

		agg.Client = admin
		if res, err := agg.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
			t.Fatalf("reconcile with the current objects: %+v, %v", res, err)
		}
		if v, err = getVIP(ctx, admin, "stale"); err != nil {
			t.Fatal(err)
		}
		if err := wantConditions(v, "stale-lb1", controllers.ConditionReady, controllers.ReasonOneMaster); err != nil {
			t.Error(err)
		}
		if !strings.Contains(managedFields(t, v.VirtualIP, controllers.AggregatorFieldManager), `"f:master"`) {
			t.Errorf("status.master is not the aggregator's")
		}
	})

	t.Run("prune", func(t *testing.T) {
		newVIP(t)
		applyEntry(t, admin, "stale", v1alpha1.NodeStatus{Name: "stale-gone", State: "Master"})
		applyEntry(t, admin, "stale", v1alpha1.NodeStatus{Name: "stale-lb1", State: "Backup"})
		old, err := getVIP(ctx, admin, "stale")
		if err != nil {
			t.Fatal(err)
		}
		if got := entryNames(old); !slices.Equal(got, []string{"stale-gone", "stale-lb1"}) {
			t.Fatalf("members %v", got)
		}
		// stale-gone's member is written again after the copy was read (its agent, or one of
		// a node of that name that came back): the copy's version of it is not to be deleted.
		applyEntry(t, admin, "stale", v1alpha1.NodeStatus{Name: "stale-gone", State: "Backup"})
		before, err := getVIP(ctx, admin, "stale")
		if err != nil {
			t.Fatal(err)
		}

		agg := &controllers.Aggregator{Client: staleReader{admin, old}, NodeName: "stale-lb1", Log: log}
		res, err := agg.Reconcile(ctx, req)
		retried(t, res, err)
		v, err := getVIP(ctx, admin, "stale")
		if err != nil {
			t.Fatal(err)
		}
		if v.version() != before.version() {
			t.Errorf("a prune of the old member changed the VirtualIP or its members: %s, was %s", v.version(), before.version())
		}
		if !strings.Contains(logs.String(), "while pruning; retrying") {
			t.Errorf("the refused prune is not in the debug log:\n%s", logs)
		}

		// Another node's aggregator prunes it first: this one's delete finds it gone, which
		// is what it wanted, and it writes the summary of the members left.
		gone, _ := memberOf(before, "stale-gone")
		if err := admin.Delete(ctx, gone.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		old.members = before.members // the copy of the member rewritten, which the other deleted
		if res, err := agg.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
			t.Fatalf("reconcile after another pruned first: %+v, %v", res, err)
		}
		if v, err = getVIP(ctx, admin, "stale"); err != nil {
			t.Fatal(err)
		}
		if got := entryNames(v); !slices.Equal(got, []string{"stale-lb1"}) {
			t.Errorf("members %v", got)
		}
		if err := wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster); err != nil {
			t.Error(err)
		}

		agg.Client = admin
		rv := v.version()
		if res, err := agg.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
			t.Fatalf("reconcile with the current objects: %+v, %v", res, err)
		}
		if v, err = getVIP(ctx, admin, "stale"); err != nil {
			t.Fatal(err)
		}
		if v.version() != rv {
			t.Errorf("nothing left to do, but wrote: %s", describe(v))
		}
	})
}

// TestAggregatorWriters (docs/design.md §7.6): one node writes a VirtualIP's summary, the one
// the summary names as MASTER (the newest of two), or the first member by name when there is
// none; the others write nothing. The stand-by, the first other member by name, writes a
// summary that has stayed stale for its Takeover: a writer cut off from the API server does not
// hold it hostage.
func TestAggregatorWriters(t *testing.T) {
	ctx := requireAPIServer(t)
	admin := adminClient(t)
	for _, n := range []string{"writers-lb1", "writers-lb2", "writers-lb3"} {
		createNode(t, admin, n, "198.18.0.11", map[string]string{groupLabel: "writers"})
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "writers"}}
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "writers"}, Spec: v1alpha1.VirtualIPSpec{
		VRID: 62, Addresses: []string{"198.18.0.112/24"},
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: "writers"}},
	}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	agg := func(node string) *controllers.Aggregator {
		return &controllers.Aggregator{Client: admin, NodeName: node, Log: log.With("node", node), Takeover: 500 * time.Millisecond}
	}
	// reconcile runs node's aggregator once; it returns whether it wrote and when it asks to
	// be called again.
	reconcileOnce := func(t *testing.T, a *controllers.Aggregator) (bool, time.Duration) {
		t.Helper()
		before, err := getVIP(ctx, admin, "writers")
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		after, err := getVIP(ctx, admin, "writers")
		if err != nil {
			t.Fatal(err)
		}
		return after.ResourceVersion != before.ResourceVersion, res.RequeueAfter
	}
	lb1, lb2, lb3 := agg("writers-lb1"), agg("writers-lb2"), agg("writers-lb3")
	at := func(s int) *metav1.Time { return &metav1.Time{Time: time.Unix(1_800_000_000+int64(s), 0)} }

	t.Run("master writes", func(t *testing.T) {
		applyEntry(t, admin, "writers", v1alpha1.NodeStatus{Name: "writers-lb1", State: "Backup"})
		applyEntry(t, admin, "writers", v1alpha1.NodeStatus{Name: "writers-lb2", State: "Master", LastTransitionTime: at(0)})
		applyEntry(t, admin, "writers", v1alpha1.NodeStatus{Name: "writers-lb3", State: "Backup"})
		for _, a := range []*controllers.Aggregator{lb3, lb1} {
			if wrote, _ := reconcileOnce(t, a); wrote {
				t.Errorf("%s wrote the summary; lb2, MASTER, writes it", a.NodeName)
			}
		}
		if wrote, again := reconcileOnce(t, lb2); !wrote || again != 0 {
			t.Errorf("lb2, MASTER: wrote %v, again after %v; want a write, and done", wrote, again)
		}
		v := waitStatus(t, admin, "writers", "lb2 MASTER", func(v *vipStatus) error {
			return wantConditions(v, "writers-lb2", controllers.ConditionReady, controllers.ReasonOneMaster)
		})
		if f := managedFields(t, v.VirtualIP, controllers.AggregatorFieldManager); !strings.Contains(f, `"f:master"`) {
			t.Errorf("the summary is not the aggregator's: %s", f)
		}
	})

	t.Run("newest master writes", func(t *testing.T) {
		applyEntry(t, admin, "writers", v1alpha1.NodeStatus{Name: "writers-lb3", State: "Master", LastTransitionTime: at(10)})
		for _, a := range []*controllers.Aggregator{lb1, lb2} {
			if wrote, _ := reconcileOnce(t, a); wrote {
				t.Errorf("%s wrote the summary; lb3, the newest MASTER, writes it", a.NodeName)
			}
		}
		if wrote, _ := reconcileOnce(t, lb3); !wrote {
			t.Errorf("lb3, the newest MASTER, did not write the summary")
		}
		waitStatus(t, admin, "writers", "DualMaster, lb3", func(v *vipStatus) error {
			return wantConditions(v, "writers-lb3", controllers.ConditionDualMaster, controllers.ReasonDualMaster)
		})
	})

	t.Run("no master: the first by name writes", func(t *testing.T) {
		applyEntry(t, admin, "writers", v1alpha1.NodeStatus{Name: "writers-lb2", State: "Backup"})
		applyEntry(t, admin, "writers", v1alpha1.NodeStatus{Name: "writers-lb3", State: "Backup"})
		for _, a := range []*controllers.Aggregator{lb3, lb2} {
			if wrote, _ := reconcileOnce(t, a); wrote {
				t.Errorf("%s wrote the summary; lb1, the first by name, writes it", a.NodeName)
			}
		}
		if wrote, _ := reconcileOnce(t, lb1); !wrote {
			t.Errorf("lb1, the first by name, did not write the summary")
		}
		waitStatus(t, admin, "writers", "NoMaster", func(v *vipStatus) error {
			return wantConditions(v, "", controllers.ConditionNoMaster, controllers.ReasonNoMaster)
		})
	})

	t.Run("stand-by", func(t *testing.T) {
		// lb3 takes over and writes its member, but not the summary (cut off from the API server
		// right after). lb1, the stand-by, waits for its Takeover, then writes it.
		applyEntry(t, admin, "writers", v1alpha1.NodeStatus{Name: "writers-lb3", State: "Master", LastTransitionTime: at(20)})
		if wrote, _ := reconcileOnce(t, lb2); wrote {
			t.Errorf("lb2, neither writer nor stand-by, wrote the summary")
		}
		wrote, again := reconcileOnce(t, lb1)
		if wrote || again <= 0 || again > lb1.Takeover {
			t.Fatalf("the stand-by at once: wrote %v, again after %v; want no write, again within %v", wrote, again, lb1.Takeover)
		}
		time.Sleep(again)
		if wrote, again := reconcileOnce(t, lb1); !wrote || again != 0 {
			t.Errorf("the stand-by after its Takeover: wrote %v, again after %v; want a write", wrote, again)
		}
		waitStatus(t, admin, "writers", "lb3 MASTER", func(v *vipStatus) error {
			return wantConditions(v, "writers-lb3", controllers.ConditionReady, controllers.ReasonOneMaster)
		})
		if !strings.Contains(logs.String(), "stale too long") {
			t.Errorf("the stand-by's write is not logged:\n%s", logs)
		}
	})
}

// applyEntry writes one node's report as that node's agent does: its member of the VirtualIP
// vip, by server-side apply under the agent's field manager.
func applyEntry(t *testing.T, c client.Client, vip string, e v1alpha1.NodeStatus) {
	t.Helper()
	v, err := getVIP(t.Context(), c, vip)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyMember(t.Context(), c, v.VirtualIP, e.Name, "kube-vrrp-agent/"+e.Name, false, e); err != nil {
		t.Fatal(err)
	}
}

// memberObject is the member of node in vip that reports e, as an agent applies it: named
// after both, owned by vip (unless vip has no UID: not created).
func memberObject(vip *v1alpha1.VirtualIP, node string, e v1alpha1.NodeStatus) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	status := map[string]any{}
	if err := json.Unmarshal(b, &status); err != nil {
		return nil, err
	}
	meta := map[string]any{"name": v1alpha1.MemberName(vip.Name, node)}
	if vip.UID != "" {
		meta["ownerReferences"] = []any{map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIP", "name": vip.Name, "uid": string(vip.UID)}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIPMember",
		"metadata": meta,
		"spec":     map[string]any{"virtualIP": vip.Name, "node": node},
		"status":   status,
	}}, nil
}

// applyMember server-side applies the member of node in vip with the report e as manager;
// dryRun probes without writing.
func applyMember(ctx context.Context, c client.Client, vip *v1alpha1.VirtualIP, node, manager string, dryRun bool, e v1alpha1.NodeStatus) error {
	u, err := memberObject(vip, node, e)
	if err != nil {
		return err
	}
	opts := []client.ApplyOption{client.FieldOwner(manager), client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...)
}

func waitConfig(t *testing.T, n *simNode, name string, want vrrp.Config) {
	t.Helper()
	eventually(t, wait, "config of "+n.name, func() error {
		got, ok := n.agent.config(name)
		if !ok {
			return fmt.Errorf("not applied")
		}
		if d := cmp.Diff(want, got, addrCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
			return fmt.Errorf("(-want +got):\n%s", d)
		}
		return nil
	})
}

func waitStatus(t *testing.T, c client.Client, name, what string, check func(*vipStatus) error) *vipStatus {
	t.Helper()
	var v *vipStatus
	eventually(t, wait, what, func() error {
		var err error
		if v, err = getVIP(t.Context(), c, name); err != nil {
			return err
		}
		if err := check(v); err != nil {
			return fmt.Errorf("%w [%s]", err, describe(v))
		}
		return nil
	})
	return v
}

// wantConditions checks status.master, that the condition typ is the one that is True with
// reason, and that the summary is of the current generation.
func wantConditions(v *vipStatus, master, typ, reason string) error {
	if v.Status.Master != master {
		return fmt.Errorf("master %q, want %q", v.Status.Master, master)
	}
	for _, ct := range []string{controllers.ConditionReady, controllers.ConditionDualMaster, controllers.ConditionNoMaster} {
		c, ok := conditionOf(v, ct)
		if !ok {
			return fmt.Errorf("no %s condition", ct)
		}
		if c.Reason == "" || c.ObservedGeneration != v.Generation {
			return fmt.Errorf("%s: reason %q observedGeneration %d", ct, c.Reason, c.ObservedGeneration)
		}
		if (ct == typ) != (c.Status == metav1.ConditionTrue) {
			return fmt.Errorf("%s is %s", ct, c.Status)
		}
		if ct == typ && c.Reason != reason {
			return fmt.Errorf("%s reason %q, want %q", ct, c.Reason, reason)
		}
	}
	if v.Status.ObservedGeneration != v.Generation {
		return fmt.Errorf("observedGeneration %d, generation %d", v.Status.ObservedGeneration, v.Generation)
	}
	// Every reason is one of the documented CamelCase words.
	for _, c := range v.Status.Conditions {
		if !slices.Contains(controllers.ConditionReasons(), c.Reason) {
			return fmt.Errorf("%s: reason %q is not a documented condition reason", c.Type, c.Reason)
		}
	}
	for _, m := range v.members {
		if r := m.Status.Reason; r != "" && !slices.Contains(controllers.NodeReasons(), r) {
			return fmt.Errorf("member of %s: reason %q is not a documented node reason", m.Spec.Node, r)
		}
	}
	return nil
}

func patchSelector(t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	// A JSON merge patch would merge the label maps; replace the selector instead.
	ops, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/nodeSelector", "value": map[string]any{"matchLabels": labels}}})
	if err != nil {
		t.Fatal(err)
	}
	v := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Patch(t.Context(), v, client.RawPatch(types.JSONPatchType, ops)); err != nil {
		t.Fatal(err)
	}
}

// managedFields returns the fields manager owns in the status of v, as JSON.
func managedFields(t *testing.T, v *v1alpha1.VirtualIP, manager string) string {
	t.Helper()
	for _, m := range v.ManagedFields {
		if m.Manager == manager {
			if m.Operation != metav1.ManagedFieldsOperationApply || m.Subresource != "status" {
				t.Errorf("manager %s: operation %s on %q, want Apply on status", manager, m.Operation, m.Subresource)
			}
			return string(m.FieldsV1.Raw)
		}
	}
	t.Errorf("no managed fields of %s", manager)
	return ""
}

// memberFields returns the fields manager owns in the member m (a whole object: a member has
// no status subresource), as JSON.
func memberFields(t *testing.T, m *v1alpha1.VirtualIPMember, manager string) string {
	t.Helper()
	for _, f := range m.ManagedFields {
		if f.Manager == manager {
			if f.Operation != metav1.ManagedFieldsOperationApply || f.Subresource != "" {
				t.Errorf("%s: manager %s: operation %s on %q, want Apply on the object", m.Name, manager, f.Operation, f.Subresource)
			}
			return string(f.FieldsV1.Raw)
		}
	}
	t.Errorf("%s: no managed fields of %s", m.Name, manager)
	return ""
}

// memberManagers returns the field managers of the member m.
func memberManagers(m *v1alpha1.VirtualIPMember) []string {
	var out []string
	for _, f := range m.ManagedFields {
		out = append(out, f.Manager)
	}
	return out
}

type wantEvent struct{ typ, reason, note string }

// waitEvents waits for an events.k8s.io/v1 Event about the VirtualIP name for each want (note: a
// prefix), recorded by the agent's reporting controller.
func waitEvents(t *testing.T, c client.Client, name string, want []wantEvent) {
	t.Helper()
	eventually(t, wait, "Events", func() error {
		var list eventsv1.EventList
		if err := c.List(t.Context(), &list, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return err
		}
		var got []string
		for _, w := range want {
			found := false
			for _, e := range list.Items {
				r := e.Regarding
				if r.Name != name || r.Kind != "VirtualIP" || r.APIVersion != v1alpha1.GroupVersion.String() {
					continue
				}
				got = append(got, fmt.Sprintf("%s %s %q", e.Type, e.Reason, e.Note))
				if e.Type == w.typ && e.Reason == w.reason && strings.HasPrefix(e.Note, w.note) &&
					e.Action == "Transition" && e.ReportingController == "kube-vrrp-agent" {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("no %s %s %q among %v", w.typ, w.reason, w.note, got)
			}
		}
		return nil
	})
}

// installRBAC creates the generated roles and binds them to the agent's ServiceAccount, as the
// chart does, and waits until the authorizer knows them.
func installRBAC(t *testing.T, admin client.Client) {
	t.Helper()
	ctx := t.Context()
	ensureNamespace(t, admin, agentNamespace)
	var objs []client.Object
	for _, doc := range documents(t, filepath.Join(repoRoot, "config", "rbac", "role.yaml")) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		var obj client.Object
		switch tm.Kind {
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "Role":
			obj = &rbacv1.Role{}
		default:
			t.Fatalf("role.yaml: unexpected %s", tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: agentNamespace, Name: "kube-vrrp-agent"}}
	objs = append(objs,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "kube-vrrp-agent"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kube-vrrp-agent"}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kube-vrrp-agent"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "kube-vrrp-agent"}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "kube-vrrp-agent"}},
	)
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), o) })
	}
	eventually(t, wait, "the role in effect", func() error {
		for _, ra := range []authorizationv1.ResourceAttributes{
			{Verb: "watch", Group: v1alpha1.GroupVersion.Group, Resource: "virtualips"},
			{Verb: "get", Resource: "secrets", Namespace: agentNamespace},
		} {
			if ok, why := allowed(t, admin, ra); !ok {
				return fmt.Errorf("%+v: %s", ra, why)
			}
		}
		return nil
	})
}

// allowed asks the authorizer whether the agent's ServiceAccount may do ra.
func allowed(t *testing.T, admin client.Client, ra authorizationv1.ResourceAttributes) (bool, string) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               agentUser,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNamespace, "system:authenticated"},
		ResourceAttributes: &ra,
	}}
	if err := admin.Create(t.Context(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed, sar.Status.Reason + sar.Status.EvaluationError
}

// checkTight: the role grants what docs/design.md §7.10 lists and nothing else.
func checkTight(t *testing.T, admin client.Client, saCfg *rest.Config) {
	ctx := t.Context()
	group := v1alpha1.GroupVersion.Group
	tests := []struct {
		ra   authorizationv1.ResourceAttributes
		want bool
	}{
		// What the agent needs.
		{authorizationv1.ResourceAttributes{Verb: "list", Group: group, Resource: "virtualips"}, true},
		{authorizationv1.ResourceAttributes{Verb: "watch", Group: group, Resource: "virtualips"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: group, Resource: "virtualips", Subresource: "status"}, true},
		{authorizationv1.ResourceAttributes{Verb: "get", Group: group, Resource: "virtualips", Subresource: "status"}, true},
		// Its node's reports: written by server-side apply (create, patch), withdrawn or pruned
		// by delete; which node's it may write is the admission policy's business.
		{authorizationv1.ResourceAttributes{Verb: "get", Group: group, Resource: "virtualipmembers"}, true},
		{authorizationv1.ResourceAttributes{Verb: "list", Group: group, Resource: "virtualipmembers"}, true},
		{authorizationv1.ResourceAttributes{Verb: "watch", Group: group, Resource: "virtualipmembers"}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: group, Resource: "virtualipmembers"}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: group, Resource: "virtualipmembers"}, true},
		{authorizationv1.ResourceAttributes{Verb: "delete", Group: group, Resource: "virtualipmembers"}, true},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "nodes"}, true},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: agentNamespace}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "default"}, true},
		// The spec is the user's.
		{authorizationv1.ResourceAttributes{Verb: "update", Group: group, Resource: "virtualips"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: group, Resource: "virtualips"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: group, Resource: "virtualips"}, false},
		{authorizationv1.ResourceAttributes{Verb: "delete", Group: group, Resource: "virtualips"}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: group, Resource: "virtualips", Subresource: "status"}, false},
		// Members: no update (apply is a patch), and one at a time, never a whole collection.
		{authorizationv1.ResourceAttributes{Verb: "update", Group: group, Resource: "virtualipmembers"}, false},
		{authorizationv1.ResourceAttributes{Verb: "deletecollection", Group: group, Resource: "virtualipmembers"}, false},
		// Nodes are read-only.
		{authorizationv1.ResourceAttributes{Verb: "delete", Resource: "nodes"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Resource: "nodes"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Resource: "nodes", Subresource: "status"}, false},
		// Secrets: only read, only its own namespace.
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "default"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: "kube-system"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "secrets", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: agentNamespace}, false},
		// Leases: none anywhere, nothing is leader-elected.
		{authorizationv1.ResourceAttributes{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Group: "coordination.k8s.io", Resource: "leases"}, false},
		// Events: write only.
		{authorizationv1.ResourceAttributes{Verb: "delete", Group: "events.k8s.io", Resource: "events", Namespace: "default"}, false},
		// Core Events: none (only leader election wrote those); the agent uses events.k8s.io.
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "events", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Resource: "events", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "events", Namespace: "default"}, false},
		// Nothing else.
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "configmaps", Namespace: agentNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: agentNamespace}, false},
	}
	for _, tt := range tests {
		if got, why := allowed(t, admin, tt.ra); got != tt.want {
			t.Errorf("%s %s/%s/%s in %q: allowed %v, want %v (%s)", tt.ra.Verb, tt.ra.Group, tt.ra.Resource, tt.ra.Subresource, tt.ra.Namespace, got, tt.want, why)
		}
	}

	// The same, by direct calls with the agent's credentials.
	sa, err := client.New(saCfg, client.Options{Scheme: fullScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "rbac-tight"}, Spec: v1alpha1.VirtualIPSpec{VRID: 70, Addresses: []string{"198.18.0.120/24"},
		Nodes: []v1alpha1.NodeOverride{{Name: "rbac-tight"}}}}
	if err := admin.Create(ctx, vip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(ctx, admin, vip) })
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "rbac-tight"}}
	if err := admin.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), node) })
	if err := admin.Get(ctx, client.ObjectKeyFromObject(vip), vip); err != nil {
		t.Fatal(err)
	}
	member, err := memberObject(vip, "rbac-tight", v1alpha1.NodeStatus{State: "Backup"})
	if err != nil {
		t.Fatal(err)
	}
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "rbac-tight"}, StringData: map[string]string{"k": "v"}}
	if err := admin.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(ctx), other) })

	forbidden := []struct {
		what string
		do   func() error
	}{
		{"list Secrets in default", func() error { return sa.List(ctx, &corev1.SecretList{}, client.InNamespace("default")) }},
		{"list Secrets in every namespace", func() error { return sa.List(ctx, &corev1.SecretList{}) }},
		{"get a Secret in default", func() error { return sa.Get(ctx, client.ObjectKeyFromObject(other), &corev1.Secret{}) }},
		{"update a VirtualIP's spec", func() error {
			v := vip.DeepCopy()
			v.Spec.Priority = ptr.To[int32](200)
			return sa.Update(ctx, v)
		}},
		{"patch a VirtualIP's spec", func() error {
			return sa.Patch(ctx, vip.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"priority":200}}`)))
		}},
		{"delete a VirtualIP", func() error { return sa.Delete(ctx, vip.DeepCopy()) }},
		{"update a member", func() error {
			m := &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: member.GetName(), ResourceVersion: "1"},
				Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: vip.Name, Node: "rbac-tight"}}
			return sa.Update(ctx, m)
		}},
		{"delete every member", func() error { return sa.DeleteAllOf(ctx, &v1alpha1.VirtualIPMember{}) }},
		{"delete a Node", func() error { return sa.Delete(ctx, node.DeepCopy()) }},
		{"label a Node", func() error {
			return sa.Patch(ctx, node.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`)))
		}},
		{"create a Lease in default", func() error {
			return sa.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "rbac-tight"}})
		}},
		{"create a Lease in " + agentNamespace, func() error {
			return sa.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "rbac-tight"}})
		}},
		{"create a core Event in " + agentNamespace, func() error {
			return sa.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: "rbac-tight"},
				InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "rbac-tight"}, Reason: "Test", Type: corev1.EventTypeNormal})
		}},
	}
	for _, f := range forbidden {
		if err := f.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as %s: %v, want Forbidden", f.what, agentUser, err)
		}
	}
	// And it can do what it needs with them.
	if err := sa.Get(ctx, client.ObjectKey{Namespace: agentNamespace, Name: "rbac-tight"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("get a Secret in %s by name: %v, want NotFound", agentNamespace, err)
	}
	if err := sa.Status().Patch(ctx, vip.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"master":""}}`))); err != nil {
		t.Errorf("patch a VirtualIP's status: %v", err)
	}
	if err := sa.Apply(ctx, client.ApplyConfigurationFromUnstructured(member.DeepCopy()), client.FieldOwner("kube-vrrp-agent/rbac-tight")); err != nil {
		t.Errorf("apply a member: %v", err)
	}
	var m v1alpha1.VirtualIPMember
	if err := sa.Get(ctx, client.ObjectKey{Name: member.GetName()}, &m); err != nil {
		t.Errorf("get a member: %v", err)
	} else if err := sa.Delete(ctx, &m, client.Preconditions{UID: &m.UID, ResourceVersion: &m.ResourceVersion}); err != nil {
		t.Errorf("delete a member: %v", err)
	}
}

// The scenarios of refusals (VRID and address conflicts between VirtualIPs, addresses that are not
// the agent's to take, refusals that must be retried; docs/design.md §5.8, §7.3) run each simulated
// node with the real agent runtime (pkg/agent, never started: it keeps its instances and refuses
// what the DaemonSet's would, e.g. a second instance with the same VRID on one interface), and
// interfaces and foreign addresses that the test changes as a host would.

// hardNode is one such node.
type hardNode struct {
	name     string
	agent    *agent.Agent
	rejected *controllers.Rejections

	mu      sync.Mutex
	ifs     []desired.Interface
	foreign []netip.Prefix
}

// hardNodeOptions change what startHardNode wires.
type hardNodeOptions struct {
	// secretsByName: the agent may only get Secrets by name (no list, no watch), so it never
	// hears of a Secret's creation; Secrets are read from the API server.
	secretsByName bool
}

// eth is an interface of a simulated node.
func eth(index int, name string, prefixes ...string) desired.Interface {
	ifc := desired.Interface{Name: name, Index: index, Up: true}
	for _, p := range prefixes {
		ifc.Prefixes = append(ifc.Prefixes, netip.MustParsePrefix(p))
	}
	return ifc
}

func (n *hardNode) setInterfaces(ifs ...desired.Interface) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ifs = ifs
}

func (n *hardNode) interfaces() ([]desired.Interface, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.ifs), nil
}

// setForeign sets the addresses another program has on eth0.
func (n *hardNode) setForeign(ps ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.foreign = nil
	for _, p := range ps {
		n.foreign = append(n.foreign, netip.MustParsePrefix(p))
	}
}

func (n *hardNode) foreignAddresses(ifname string) ([]netip.Prefix, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ifname != "eth0" {
		return nil, nil
	}
	return slices.Clone(n.foreign), nil
}

func (n *hardNode) runs(name string) bool { return slices.Contains(n.agent.Names(), name) }

// secretsFromAPI reads Secrets from the API server and everything else from the cache.
type secretsFromAPI struct {
	client.Reader
	api client.Reader
}

func (s secretsFromAPI) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		return s.api.Get(ctx, key, obj, opts...)
	}
	return s.Reader.Get(ctx, key, obj, opts...)
}

// startHardNode creates the Node (InternalIP ip, eth0 with ip/24) and runs the node side of
// the agent for it, as cmd/kube-vrrp/agent.go wires it, with the admin's credentials.
func startHardNode(t *testing.T, log *slog.Logger, name, ip string, labels map[string]string, o hardNodeOptions) *hardNode {
	t.Helper()
	admin := adminClient(t)
	createNode(t, admin, name, ip, labels)
	log = log.With("node", name)
	n := &hardNode{name: name, agent: agent.New(nil, log, agent.Options{})}
	n.setInterfaces(eth(1, "lo", "127.0.0.1/8"), eth(2, "eth0", ip+"/24"))
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	n.rejected = controllers.NewRejections(func(string) { poke() })
	secretNS := agentNamespace
	if o.secretsByName {
		secretNS = "kube-vrrp-nowhere" // the cache never sees the agent's Secrets
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 fullScheme(t),
		Logger:                 logr.FromSlogHandler(log.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Namespaces: map[string]cache.Config{secretNS: {}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var reader client.Reader = mgr.GetClient()
	if o.secretsByName {
		reader = secretsFromAPI{Reader: mgr.GetClient(), api: mgr.GetAPIReader()}
	}
	vr := &controllers.VirtualIPReconciler{Client: reader, NodeName: name, Namespace: agentNamespace, Agent: n.agent,
		Interfaces: n.interfaces, ForeignAddresses: n.foreignAddresses, Rejected: n.rejected, Log: log}
	if err := vr.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	sr := &controllers.StatusReconciler{Client: mgr.GetClient(), Reader: mgr.GetClient(), NodeName: name,
		Agent: n.agent, Rejected: n.rejected, Recorder: mgr.GetEventRecorder("kube-vrrp-agent"), Log: log, Changes: kick}
	if err := sr.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.Aggregator{Client: mgr.GetClient(), NodeName: name, Log: log}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.agent.Changes():
				poke()
			}
		}
	}()
	t.Cleanup(cancel)
	startManager(t, "node "+name, mgr)
	return n
}

// hardLogs returns a logger whose output the test shows when it fails.
func hardLogs(t *testing.T) *slog.Logger {
	t.Helper()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			out := logs.String()
			if len(out) > 20000 {
				out = "...\n" + out[len(out)-20000:]
			}
			t.Logf("logs:\n%s", out)
		}
	})
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// hardVIP creates a VirtualIP for the nodes labelled group and deletes it when the test ends.
func hardVIP(t *testing.T, admin client.Client, name, group string, vrid int32, mut func(*v1alpha1.VirtualIP), addrs ...string) *v1alpha1.VirtualIP {
	t.Helper()
	v := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.VirtualIPSpec{
		VRID: vrid, Addresses: addrs,
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: group}},
	}}
	if mut != nil {
		mut(v)
	}
	if err := admin.Create(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteVIP(t.Context(), admin, v) })
	return v
}

// waitRefused waits until each node reports name refused with reason and a message starting
// with prefix, and checks that no node runs it.
func waitRefused(t *testing.T, admin client.Client, name, reason, prefix string, nodes ...*hardNode) {
	t.Helper()
	waitStatus(t, admin, name, "refused: "+reason+": "+prefix, func(v *vipStatus) error {
		for _, n := range nodes {
			if n.runs(name) {
				return fmt.Errorf("%s runs it", n.name)
			}
			e, ok := entryOf(v, n.name)
			if !ok || e.State != vrrp.Fault.String() || e.Reason != reason || e.Message == "" || !strings.HasPrefix(e.Message, prefix) {
				return fmt.Errorf("member of %s: %+v", n.name, e)
			}
		}
		return nil
	})
}

// waitRuns waits until each node runs name and reports it without a refusal.
func waitRuns(t *testing.T, admin client.Client, name string, nodes ...*hardNode) {
	t.Helper()
	waitStatus(t, admin, name, "running", func(v *vipStatus) error {
		for _, n := range nodes {
			if !n.runs(name) {
				return fmt.Errorf("%s does not run it", n.name)
			}
			if e, ok := entryOf(v, n.name); !ok || e.State == vrrp.Fault.String() {
				return fmt.Errorf("member of %s: %+v", n.name, e)
			}
		}
		return nil
	})
}

// waitRefusalEvent waits for the Warning Event with reason on the VirtualIP name from node,
// whose note is "node <node>: " and the refusal's message, starting with note.
func waitRefusalEvent(t *testing.T, admin client.Client, name, node, reason, note string) {
	t.Helper()
	eventually(t, wait, "Event "+reason+" on "+name, func() error {
		var list eventsv1.EventList
		if err := admin.List(t.Context(), &list, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return err
		}
		var got []string
		for _, e := range list.Items {
			if e.Regarding.Name != name || e.Regarding.Kind != "VirtualIP" {
				continue
			}
			got = append(got, fmt.Sprintf("%s %s %q", e.Type, e.Reason, e.Note))
			if e.Type == corev1.EventTypeWarning && e.Reason == reason && strings.HasPrefix(e.Note, "node "+node+": "+note) &&
				e.ReportingController == "kube-vrrp-agent" {
				return nil
			}
		}
		return fmt.Errorf("none among %v", got)
	})
}

// TestVRIDConflict (docs/design.md §7.3): two VirtualIPs with one VRID on one interface and family.
// Every node runs the older one whatever order it reconciles them in (here: nodes that start after
// both exist, as after a restart), the younger reports VRIDConflict naming the winner, the VRID and
// the interface, with an Event, and starts by itself when the winner is deleted; an older VirtualIP
// that moves onto the interface takes the slot from the younger one running there.
func TestVRIDConflict(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	log := hardLogs(t)
	const group = "vrid"
	labels := map[string]string{groupLabel: group}

	// Created a second apart (creationTimestamp has whole seconds). The names sort the other
	// way round, so that a node reconciling in name order meets the younger one first.
	hardVIP(t, admin, "vrid-zz-first", group, 80, nil, "198.18.0.150/24")
	time.Sleep(1100 * time.Millisecond)
	// yy is older than aa but starts on another interface, which the nodes do not have.
	hardVIP(t, admin, "vrid-yy-second", group, 80, func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth1" }, "198.18.0.151/24")
	time.Sleep(1100 * time.Millisecond)
	hardVIP(t, admin, "vrid-aa-third", group, 80, nil, "198.18.0.152/24")

	n1 := startHardNode(t, log, "vrid-n1", "198.18.0.11", labels, hardNodeOptions{})
	n2 := startHardNode(t, log, "vrid-n2", "198.18.0.12", labels, hardNodeOptions{})

	waitRuns(t, admin, "vrid-zz-first", n1, n2)
	waitRefused(t, admin, "vrid-aa-third", controllers.ReasonVRIDConflict, `VRID 80 on eth0 (IPv4) is taken by VirtualIP "vrid-zz-first"`, n1, n2)
	waitRefusalEvent(t, admin, "vrid-aa-third", n1.name, controllers.ReasonVRIDConflict,
		`VRID 80 on eth0 (IPv4) is taken by VirtualIP "vrid-zz-first"`)
	waitRefused(t, admin, "vrid-yy-second", controllers.ReasonCannotResolve, "", n1, n2)

	// The winner goes: the loser starts, with no other change.
	if err := admin.Delete(t.Context(), &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "vrid-zz-first"}}); err != nil {
		t.Fatal(err)
	}
	waitRuns(t, admin, "vrid-aa-third", n1, n2)

	// The older yy moves onto eth0: it wins the slot, aa stops on both nodes.
	ops := []byte(`[{"op":"remove","path":"/spec/interface"}]`)
	if err := admin.Patch(t.Context(), &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "vrid-yy-second"}},
		client.RawPatch(types.JSONPatchType, ops)); err != nil {
		t.Fatal(err)
	}
	waitRuns(t, admin, "vrid-yy-second", n1, n2)
	waitRefused(t, admin, "vrid-aa-third", controllers.ReasonVRIDConflict, `VRID 80 on eth0 (IPv4) is taken by VirtualIP "vrid-yy-second"`, n1, n2)
}

// TestAddressConflict (docs/design.md §7.3): two VirtualIPs claiming one address, with different
// VRIDs: the younger one reports AddressConflict on every node and starts once the older one drops
// the address.
func TestAddressConflict(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	log := hardLogs(t)
	const group = "addr"
	labels := map[string]string{groupLabel: group}
	hardVIP(t, admin, "addr-zz-first", group, 81, nil, "198.18.0.160/24")
	time.Sleep(1100 * time.Millisecond)
	hardVIP(t, admin, "addr-aa-second", group, 82, nil, "198.18.0.161/24", "198.18.0.160/24")
	n1 := startHardNode(t, log, "addr-n1", "198.18.0.11", labels, hardNodeOptions{})
	n2 := startHardNode(t, log, "addr-n2", "198.18.0.12", labels, hardNodeOptions{})

	waitRuns(t, admin, "addr-zz-first", n1, n2)
	want := `address 198.18.0.160 is also claimed by VirtualIP "addr-zz-first"`
	waitRefused(t, admin, "addr-aa-second", controllers.ReasonAddressConflict, want, n1, n2)
	waitRefusalEvent(t, admin, "addr-aa-second", n2.name, controllers.ReasonAddressConflict, want)

	ops := []byte(`[{"op":"replace","path":"/spec/addresses","value":["198.18.0.162/24"]}]`)
	if err := admin.Patch(t.Context(), &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "addr-zz-first"}},
		client.RawPatch(types.JSONPatchType, ops)); err != nil {
		t.Fatal(err)
	}
	waitRuns(t, admin, "addr-aa-second", n1, n2)
	waitRuns(t, admin, "addr-zz-first", n1, n2)
}

// TestAddressInUse (docs/design.md §5.8): a VirtualIP may not claim an address that a Node reports,
// nor one that is on its interface without kube-vrrp having added it. The nodes refuse it (Fault,
// AddressInUse, a message naming the conflict, an Event) and take it up once the conflict is gone.
func TestAddressInUse(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	log := hardLogs(t)
	const group = "inuse"
	labels := map[string]string{groupLabel: group}
	n1 := startHardNode(t, log, "inuse-n1", "198.18.0.11", labels, hardNodeOptions{})
	n2 := startHardNode(t, log, "inuse-n2", "198.18.0.12", labels, hardNodeOptions{})

	t.Run("a Node's address", func(t *testing.T) {
		hardVIP(t, admin, "inuse-node", group, 83, nil, "198.18.0.12/24")
		waitRefused(t, admin, "inuse-node", controllers.ReasonAddressInUse, "address 198.18.0.12 is ", n1, n2)
		v, err := getVIP(t.Context(), admin, "inuse-node")
		if err != nil {
			t.Fatal(err)
		}
		for node, want := range map[string]string{
			n1.name: "address 198.18.0.12 is node inuse-n2's InternalIP: ",
			n2.name: "address 198.18.0.12 is this node's (inuse-n2) InternalIP: ",
		} {
			if e, _ := entryOf(v, node); e.Reason != "AddressInUse" || !strings.HasPrefix(e.Message, want) {
				t.Errorf("reason of %s %q, message %q, want AddressInUse, %q...", node, e.Reason, e.Message, want)
			}
		}
		waitRefusalEvent(t, admin, "inuse-node", n1.name, controllers.ReasonAddressInUse,
			"address 198.18.0.12 is node inuse-n2's InternalIP")

		ops := []byte(`[{"op":"replace","path":"/spec/addresses","value":["198.18.0.170/24"]}]`)
		if err := admin.Patch(t.Context(), &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "inuse-node"}},
			client.RawPatch(types.JSONPatchType, ops)); err != nil {
			t.Fatal(err)
		}
		waitRuns(t, admin, "inuse-node", n1, n2)
	})

	t.Run("an address on the interface", func(t *testing.T) {
		n1.setForeign("198.18.0.11/24", "198.18.0.171/32") // another program added .171 on n1
		t.Cleanup(func() { n1.setForeign() })
		hardVIP(t, admin, "inuse-host", group, 84, nil, "198.18.0.171/24")
		waitRuns(t, admin, "inuse-host", n2)
		want := `VirtualIP "inuse-host": address 198.18.0.171 is already on eth0 and kube-vrrp did not add it`
		waitRefused(t, admin, "inuse-host", controllers.ReasonAddressInUse, want, n1)
		waitRefusalEvent(t, admin, "inuse-host", n1.name, controllers.ReasonAddressInUse, want)

		// The other program removes it: no Kubernetes object changes, the retry notices.
		n1.setForeign("198.18.0.11/24")
		waitRunsWithin(t, admin, "inuse-host", 8*time.Second, n1, n2)
	})
}

// waitRunsWithin is waitRuns with a bound of its own: a refusal's cause went away without any
// event the agent watches, and only its retries can notice.
func waitRunsWithin(t *testing.T, admin client.Client, name string, timeout time.Duration, nodes ...*hardNode) {
	t.Helper()
	start := time.Now()
	eventually(t, timeout, name+" running", func() error {
		for _, n := range nodes {
			if !n.runs(name) {
				return fmt.Errorf("%s does not run it", n.name)
			}
		}
		return nil
	})
	t.Logf("%s running %s after the fix", name, time.Since(start).Round(10*time.Millisecond))
	waitRuns(t, admin, name, nodes...)
}

// TestRefusalRetried (docs/design.md §7.3): a VirtualIP refused for a cause outside the cluster's
// objects, or for a Secret the agent cannot watch, comes back within seconds of the fix, though
// nothing the agent watches changes.
func TestRefusalRetried(t *testing.T) {
	requireAPIServer(t)
	admin := adminClient(t)
	ensureNamespace(t, admin, agentNamespace)
	log := hardLogs(t)
	const group = "retry"
	// The agent may only get Secrets by name: it never hears of one being created.
	n1 := startHardNode(t, log, "retry-n1", "198.18.0.11", map[string]string{groupLabel: group}, hardNodeOptions{secretsByName: true})
	// settle lets the writes that follow a refusal (status, summary) and the reconciles they
	// trigger die down, so that only a retry can bring the VirtualIP back.
	settle := func() { time.Sleep(2 * time.Second) }

	t.Run("the interface appears", func(t *testing.T) {
		hardVIP(t, admin, "retry-eth1", group, 85, func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth1" }, "198.18.1.100/24")
		waitRefused(t, admin, "retry-eth1", controllers.ReasonCannotResolve, `VirtualIP "retry-eth1" on node "retry-n1": interface "eth1"`, n1)
		settle()
		n1.setInterfaces(eth(1, "lo", "127.0.0.1/8"), eth(2, "eth0", "198.18.0.11/24"), eth(3, "eth1", "198.18.1.11/24"))
		waitRunsWithin(t, admin, "retry-eth1", 8*time.Second, n1)
	})

	t.Run("the Secret is created", func(t *testing.T) {
		name := "retry-pass"
		hardVIP(t, admin, name, group, 86, func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = &v1alpha1.Duration{Duration: time.Second}
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: name, Key: "password"}}
		}, "198.18.0.180/24")
		waitRefused(t, admin, name, controllers.ReasonSecretMissing, "spec.authentication.secretRef: Secret "+agentNamespace+"/"+name+" not found", n1)
		settle()
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: agentNamespace, Name: name},
			Data: map[string][]byte{"password": []byte(goodPassword)}}
		if err := admin.Create(t.Context(), secret); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.WithoutCancel(t.Context()), secret) })
		waitRunsWithin(t, admin, name, 8*time.Second, n1)
	})
}
