package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// What the chart names, for release kube-vrrp in namespace kube-vrrp (templates/_helpers.tpl:
// the full name is the release's, and cluster-scoped objects get no namespace prefix since the
// namespace is the full name).
const (
	secServiceAccount = "kube-vrrp"
	secAgentUser      = "system:serviceaccount:" + namespace + ":" + secServiceAccount
	secMetricsReader  = release + "-metrics-reader" // templates/metrics-reader.yaml
	secMemberPolicy   = release + "-members"        // templates/statuspolicy.yaml
	secStateDir       = "run/kube-vrrp"             // values.yaml stateDir, under KubeNode.Dir
	secAgentUID       = 65532                       // the agent's runAsUser and runAsGroup
	secHealthPort     = 9403                        // values.yaml health.port
	secMetricsPort    = 9402                        // values.yaml metrics.port
	secNodeNameExtra  = "authentication.kubernetes.io/node-name"
	secCapNetAdmin    = 12 // linux/capability.h
	secCapNetRaw      = 13
	secWantCaps       = 1<<secCapNetAdmin | 1<<secCapNetRaw // 0x3000
)

// testSecurity checks each agent as the kernel runs it, from the host: the process's
// capabilities, user, no_new_privs and seccomp (/proc/<pid>/status), its read-only root
// filesystem (/proc/<pid>/mountinfo), and the state directory the init container made for it
// on the node.
func testSecurity(t *testing.T, e *env) {
	pods := e.agentPods(t)
	if len(pods) != 3 {
		t.Fatalf("%d agent pods, want 3", len(pods))
	}
	for _, p := range pods {
		t.Run(p.Spec.NodeName, func(t *testing.T) {
			pid := e.containerPid(t, p, "agent")
			st := secProcStatus(t, pid)
			t.Logf("pod %s: agent pid %d: CapEff %s CapPrm %s CapBnd %s CapInh %s CapAmb %s NoNewPrivs %s Seccomp %s Uid %q Gid %q Groups %q",
				p.Name, pid, st["CapEff"], st["CapPrm"], st["CapBnd"], st["CapInh"], st["CapAmb"], st["NoNewPrivs"], st["Seccomp"], st["Uid"], st["Gid"], st["Groups"])
			for _, c := range []struct {
				key  string
				want uint64
			}{
				{"CapEff", secWantCaps}, {"CapPrm", secWantCaps}, {"CapBnd", secWantCaps},
				{"CapInh", 0}, {"CapAmb", 0},
			} {
				if got := secCapSet(t, st, c.key); got != c.want {
					t.Errorf("%s = %#x (%s), want %#x (%s)", c.key, got, secCapNames(got), c.want, secCapNames(c.want))
				}
			}
			if st["NoNewPrivs"] != "1" {
				t.Errorf("NoNewPrivs = %q, want 1 (allowPrivilegeEscalation: false)", st["NoNewPrivs"])
			}
			// 2: SECCOMP_MODE_FILTER (the runtime's default profile).
			if st["Seccomp"] != "2" {
				t.Errorf("Seccomp = %q, want 2 (a filter: seccompProfile RuntimeDefault)", st["Seccomp"])
			}
			// Real, effective, saved and filesystem ids.
			want := strings.Repeat(strconv.Itoa(secAgentUID)+" ", 4)
			for _, k := range []string{"Uid", "Gid"} {
				if got := strings.Join(strings.Fields(st[k]), " ") + " "; got != want {
					t.Errorf("%s = %q, want %d four times", k, st[k], secAgentUID)
				}
			}
			for _, g := range strings.Fields(st["Groups"]) {
				if g != strconv.Itoa(secAgentUID) {
					t.Errorf("supplementary groups %q: %s is not the agent's group", st["Groups"], g)
				}
			}

			root, ok := secRootMount(t, pid)
			if !ok {
				t.Fatalf("pid %d: no mount at / in mountinfo", pid)
			}
			if !slices.Contains(strings.Split(root, ","), "ro") {
				t.Errorf("the root filesystem is mounted %q, want ro (readOnlyRootFilesystem)", root)
			}

			var init *corev1.ContainerStatus
			for i, cs := range p.Status.InitContainerStatuses {
				if cs.Name == "state-dir" {
					init = &p.Status.InitContainerStatuses[i]
				}
			}
			switch {
			case init == nil:
				t.Errorf("pod %s has no init container state-dir", p.Name)
			case init.State.Terminated == nil:
				t.Errorf("init container state-dir: %+v, want terminated", init.State)
			case init.State.Terminated.ExitCode != 0 || init.State.Terminated.Reason != "Completed":
				t.Errorf("init container state-dir: exit %d (%s): %s, want 0 (Completed)",
					init.State.Terminated.ExitCode, init.State.Terminated.Reason, init.State.Terminated.Message)
			}

			// /run inside the node is KubeNode.Dir/run (cluster.StartNodes).
			dir := filepath.Join(e.node(p.Spec.NodeName).Dir, secStateDir)
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			sys := fi.Sys().(*syscall.Stat_t)
			if !fi.IsDir() || fi.Mode().Perm() != 0o700 || sys.Uid != secAgentUID || sys.Gid != secAgentUID {
				t.Errorf("state directory %s: %v, owner %d:%d, want a directory, mode 0700, owner %d:%d",
					dir, fi.Mode(), sys.Uid, sys.Gid, secAgentUID, secAgentUID)
			}
		})
	}
}

// testHealth checks the agents as the kubelet and a scraper see them: every pod Ready, never
// restarted; /healthz and /readyz answering on the node's loopback (and only there); /metrics
// on the node's IP refusing whoever the API server does not allow to get it.
func testHealth(t *testing.T, e *env) {
	pods := e.agentPods(t)
	if len(pods) != 3 {
		t.Fatalf("%d agent pods, want 3", len(pods))
	}
	for _, p := range pods {
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		if !ready {
			t.Errorf("pod %s on %s is not Ready: %+v", p.Name, p.Spec.NodeName, p.Status.Conditions)
		}
		for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			if cs.RestartCount == 0 {
				continue
			}
			// A container the runtime failed to start (runc's "read init-p: connection reset
			// by peer" on a machine loaded by parallel tests) is the lab's, not the agent's: the
			// kubelet retried it. Anything else (a crash, a failed liveness probe) is the agent's.
			if last := cs.LastTerminationState.Terminated; last != nil && last.Reason == "StartError" {
				t.Logf("pod %s: container %s was restarted %d times after the runtime failed to start it: %s", p.Name, cs.Name, cs.RestartCount, last.Message)
				continue
			}
			t.Errorf("pod %s: container %s restarted %d times (last: %+v)", p.Name, cs.Name, cs.RestartCount, cs.LastTerminationState)
		}
	}

	t.Run("probes", func(t *testing.T) {
		for _, k := range e.nodes {
			hc := secNodeHTTPClient(k.Node)
			for _, path := range []string{"/healthz", "/readyz"} {
				code, body, err := secGet(e.ctx, hc, fmt.Sprintf("http://127.0.0.1:%d%s", secHealthPort, path), "")
				if err != nil || code != http.StatusOK {
					t.Errorf("%s: GET %s: %d %q, %v; want 200", k.Node.Name, path, code, body, err)
				}
			}
			// Loopback only: not on the node's address.
			addr := netip.AddrPortFrom(k.Node.IPv4, secHealthPort)
			if code, _, err := secGet(e.ctx, hc, fmt.Sprintf("http://%s/healthz", addr), ""); err == nil {
				t.Errorf("%s: GET http://%s/healthz answered %d: the health port must listen on 127.0.0.1 only", k.Node.Name, addr, code)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		cs, err := kubernetes.NewForConfig(e.cp.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		// A scraper bound to the chart's ClusterRole, and one that is not.
		reader := secServiceAccountToken(t, e, cs, "default", "e2e-metrics-reader", secMetricsReader)
		other := secServiceAccountToken(t, e, cs, "default", "e2e-not-a-reader", "")
		// The agent caches a deny for 30 s: ask the API server first that the binding is in
		// effect, so that the first scrape is already allowed.
		secEventually(t, 30*time.Second, "the metrics reader's binding in effect", func() error {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: "system:serviceaccount:default:e2e-metrics-reader", Groups: []string{"system:serviceaccounts", "system:authenticated"},
				NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}}}
			if err := e.admin.Create(e.ctx, sar); err != nil {
				return err
			}
			if !sar.Status.Allowed {
				return fmt.Errorf("not allowed: %s", sar.Status.Reason)
			}
			return nil
		})

		for _, k := range e.nodes {
			hc := secNodeHTTPClient(k.Node)
			url := fmt.Sprintf("https://%s/metrics", netip.AddrPortFrom(k.Node.IPv4, secMetricsPort))
			for _, c := range []struct {
				who, token string
				want       []int
			}{
				{"no token", "", []int{http.StatusUnauthorized}},
				// 401, not 500: the API server answered the TokenReview (docs/design.md §7.9).
				{"a token the API server does not know", "not-a-token", []int{http.StatusUnauthorized}},
				{"a ServiceAccount not allowed to get /metrics", other, []int{http.StatusForbidden}},
			} {
				code, body, err := secGet(e.ctx, hc, url, c.token)
				if err != nil || !slices.Contains(c.want, code) {
					t.Errorf("%s: GET %s with %s: %d %.200q, %v; want %v", k.Node.Name, url, c.who, code, body, err, c.want)
				}
				if strings.Contains(body, "kube_vrrp_") {
					t.Errorf("%s: GET %s with %s served metrics", k.Node.Name, url, c.who)
				}
			}
			code, body, err := secGet(e.ctx, hc, url, reader)
			if err != nil || code != http.StatusOK || !strings.Contains(body, "kube_vrrp_") {
				t.Errorf("%s: GET %s as %s: %d %.300q, %v; want 200 with kube_vrrp_ metrics", k.Node.Name, url, secMetricsReader, code, body, err)
			}
			// HTTPS only.
			plain := strings.Replace(url, "https://", "http://", 1)
			if code, _, err := secGet(e.ctx, hc, plain, reader); err == nil && code == http.StatusOK {
				t.Errorf("%s: GET %s (plain HTTP) answered 200", k.Node.Name, plain)
			}
			// Refused scrapes are not errors of the agent's, and no token is logged.
			p := e.agentPod(t, k.Node.Name)
			logs, err := e.cp.Kubectl(e.ctx, "", "logs", "--namespace", namespace, p.Name, "-c", "agent")
			if err != nil {
				t.Errorf("kubectl logs %s: %v", p.Name, err)
			}
			for line := range strings.Lines(logs) {
				if strings.Contains(line, "controller-runtime/metrics") && strings.Contains(line, `"level":"ERROR"`) {
					t.Errorf("%s: the agent logged an error for a scrape: %s", k.Node.Name, line)
				}
				for _, tok := range []string{"not-a-token", other, reader} {
					if strings.Contains(line, tok) {
						t.Errorf("%s: a scraper's token is in the agent's log", k.Node.Name)
					}
				}
			}
		}
	})
}

// testToken checks the agent's credentials: the ServiceAccount token the kubelet projected into
// its pod (not an impersonation, not a kubeconfig), bound to the pod and its node; what RBAC
// lets it do; and the chart's member policy, which lets it create and change its own node's
// VirtualIPMembers and no other node's, and delete any (the prune).
func testToken(t *testing.T, e *env) {
	cfgs := map[string]*rest.Config{}
	for _, k := range e.nodes {
		pod := e.agentPod(t, k.Node.Name)
		if pod.Spec.ServiceAccountName != secServiceAccount {
			t.Errorf("pod %s: serviceAccountName %q, want %q", pod.Name, pod.Spec.ServiceAccountName, secServiceAccount)
		}
		token := secPodToken(t, e, k, pod)
		cfg := rest.AnonymousClientConfig(e.cp.RESTConfig()) // the CA and the lab's dialer, no client certificate
		cfg.BearerToken = token
		cfgs[k.Node.Name] = cfg

		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(e.ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: SelfSubjectReview with the pod's token: %v", k.Node.Name, err)
		}
		u := r.Status.UserInfo
		t.Logf("%s: pod %s's token is %s, groups %v, extra %v", k.Node.Name, pod.Name, u.Username, u.Groups, u.Extra)
		if u.Username != secAgentUser {
			t.Errorf("%s: the token is %q, want %q", k.Node.Name, u.Username, secAgentUser)
		}
		for _, g := range []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"} {
			if !slices.Contains(u.Groups, g) {
				t.Errorf("%s: groups %v lack %s", k.Node.Name, u.Groups, g)
			}
		}
		for key, want := range map[string]string{
			secNodeNameExtra:                        k.Node.Name,
			"authentication.kubernetes.io/pod-name": pod.Name,
			"authentication.kubernetes.io/pod-uid":  string(pod.UID),
		} {
			if got := u.Extra[key]; !slices.Equal(got, []string{want}) {
				t.Errorf("%s: extra %s = %v, want [%s]", k.Node.Name, key, got, want)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	scheme, err := cluster.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	n1, err := client.New(cfgs["n1"], client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// The chart's ClusterRole and Role (files/rbac/role.yaml): read VirtualIPs and Nodes, patch
	// VirtualIP status, read and write VirtualIPMembers; get (never list) Secrets of the release
	// namespace. Writes are dry runs: authorization comes first, and should one be allowed by
	// mistake it changes nothing.
	t.Run("rbac", func(t *testing.T) {
		dry := client.DryRunAll
		for _, c := range []struct {
			what    string
			allowed bool
			do      func() error
		}{
			{"list VirtualIPs", true, func() error { return n1.List(e.ctx, &v1alpha1.VirtualIPList{}) }},
			{"list VirtualIPMembers", true, func() error { return n1.List(e.ctx, &v1alpha1.VirtualIPMemberList{}) }},
			{"get Node n2", true, func() error { return n1.Get(e.ctx, client.ObjectKey{Name: "n2"}, &corev1.Node{}) }},
			{"get a Secret of namespace " + namespace, true, func() error {
				err := n1.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: "e2e-no-such-secret"}, &corev1.Secret{})
				if apierrors.IsNotFound(err) {
					return nil // allowed, and there is none
				}
				return err
			}},
			{"list Secrets cluster-wide", false, func() error { return n1.List(e.ctx, &corev1.SecretList{}) }},
			{"list Secrets of namespace " + namespace, false, func() error {
				return n1.List(e.ctx, &corev1.SecretList{}, client.InNamespace(namespace))
			}},
			{"get a Secret of namespace default", false, func() error {
				return n1.Get(e.ctx, client.ObjectKey{Namespace: "default", Name: "e2e-no-such-secret"}, &corev1.Secret{})
			}},
			{"patch Node n2 (dry run)", false, func() error {
				return n1.Patch(e.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}},
					client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"e2e":"x"}}}`)), dry)
			}},
			{"create a VirtualIP (dry run)", false, func() error {
				return n1.Create(e.ctx, &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "e2e-rbac"},
					Spec: v1alpha1.VirtualIPSpec{VRID: 99, Addresses: []string{"198.18.0.199/24"}}}, dry)
			}},
			{"delete every VirtualIPMember at once (dry run)", false, func() error {
				return n1.DeleteAllOf(e.ctx, &v1alpha1.VirtualIPMember{}, dry)
			}},
			{"list Pods cluster-wide", false, func() error { return n1.List(e.ctx, &corev1.PodList{}) }},
		} {
			err := c.do()
			switch {
			case c.allowed && err != nil:
				t.Errorf("%s: %v, want allowed", c.what, err)
			case !c.allowed && !apierrors.IsForbidden(err):
				t.Errorf("%s: %v, want Forbidden", c.what, err)
			case !c.allowed && !strings.Contains(err.Error(), secAgentUser):
				t.Errorf("%s: %v does not name %s", c.what, err, secAgentUser)
			}
		}
	})

	// The member policy: n1's token creates and changes n1's members, not n2's; it may delete
	// n2's (the summary's writer prunes the members of nodes gone).
	t.Run("member-policy", func(t *testing.T) {
		e.applyVirtualIP(t)
		const vipName = "haproxy"
		members := map[string]*v1alpha1.VirtualIPMember{}
		secEventually(t, 60*time.Second, "the agents' members of VirtualIP haproxy", func() error {
			for _, n := range []string{"n1", "n2", "n3"} {
				m := &v1alpha1.VirtualIPMember{}
				if err := e.admin.Get(e.ctx, client.ObjectKey{Name: v1alpha1.MemberName(vipName, n)}, m); err != nil {
					return err
				}
				if m.Spec.VirtualIP != vipName || m.Spec.Node != n || m.Status.State == "" {
					return fmt.Errorf("member %s: spec %+v, state %q", m.Name, m.Spec, m.Status.State)
				}
				// Written by that node's agent (its field manager, by server-side apply).
				if !slices.ContainsFunc(m.ManagedFields, func(f metav1.ManagedFieldsEntry) bool {
					return f.Manager == "kube-vrrp-agent/"+n && f.Operation == metav1.ManagedFieldsOperationApply
				}) {
					return fmt.Errorf("member %s: no apply by kube-vrrp-agent/%s", m.Name, n)
				}
				members[n] = m
			}
			return nil
		})
		const forged = "forged by n1's token (e2e)"
		var owner v1alpha1.VirtualIP
		if err := e.admin.Get(e.ctx, types.NamespacedName{Name: vipName}, &owner); err != nil {
			t.Fatal(err)
		}
		// member is what n1's token writes: a member of VirtualIP vip named name, of node,
		// owned by the VirtualIP (the policy wants it).
		member := func(vip, name, node string) *unstructured.Unstructured {
			return &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIPMember",
				"metadata": map[string]any{"name": name, "ownerReferences": []any{map[string]any{
					"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VirtualIP", "name": vip, "uid": string(owner.UID)}}},
				"spec":   map[string]any{"virtualIP": vip, "node": node},
				"status": map[string]any{"state": "Fault", "priority": int64(1), "interface": "eth0", "reason": "ProbeFailed", "message": forged},
			}}
		}
		apply := func(c client.Client, u *unstructured.Unstructured, dryRun bool) error {
			opts := []client.ApplyOption{client.FieldOwner("kube-vrrp-agent/n1"), client.ForceOwnership}
			if dryRun {
				opts = append(opts, client.DryRunAll)
			}
			return c.Apply(e.ctx, client.ApplyConfigurationFromUnstructured(u), opts...)
		}
		denied := func(what string, err error, want ...string) {
			t.Helper()
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s: %v, want Forbidden", what, err)
				return
			}
			for _, w := range append([]string{secMemberPolicy}, want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: %q does not say %q", what, err, w)
				}
			}
		}
		const notN2 = "the agent on node n1 may write only its own VirtualIPMembers (spec.node n1), not one of node n2"

		// Its own member: allowed (a dry run, not to disturb the agent's own reporting).
		if err := apply(n1, member(vipName, v1alpha1.MemberName(vipName, "n1"), "n1"), true); err != nil {
			t.Errorf("n1's token applying n1's member (dry run): %v", err)
		}
		// Another node's member, written for real: server-side apply, a merge patch and a JSON
		// patch of one field (UPDATE), and a new member of n2 (CREATE). The refusal is the
		// check: what was written cannot be told afterwards, since each agent re-applies its
		// own member when it changes.
		denied("n1's token applying n2's member", apply(n1, member(vipName, v1alpha1.MemberName(vipName, "n2"), "n2"), false), notN2)
		merge, _ := json.Marshal(map[string]any{"status": map[string]any{"state": "Fault", "message": forged}})
		denied("n1's token merge-patching n2's member", n1.Patch(e.ctx, members["n2"].DeepCopy(), client.RawPatch(types.MergePatchType, merge)), notN2)
		jp := fmt.Sprintf(`[{"op":"test","path":"/spec/node","value":"n2"},{"op":"replace","path":"/status/message","value":%q}]`, forged)
		denied("n1's token JSON-patching n2's message", n1.Patch(e.ctx, members["n2"].DeepCopy(), client.RawPatch(types.JSONPatchType, []byte(jp))), notN2)
		t.Cleanup(func() { // should the create be let through
			_ = e.admin.Delete(context.WithoutCancel(e.ctx), &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MemberName(vipName, "n9")}})
		})
		denied("n1's token creating a member of n9", n1.Create(e.ctx, member(vipName, v1alpha1.MemberName(vipName, "n9"), "n9")),
			"the agent on node n1 may write only its own VirtualIPMembers (spec.node n1), not one of node n9")
		// Under a name that is not its spec's, the CRD refuses it first (TestMemberSquat in
		// test/envtest covers the rest).
		if err := n1.Create(e.ctx, member(vipName, "e2e-forged.n1", "n1")); !apierrors.IsInvalid(err) {
			t.Errorf("n1's token creating its member under another name: %v, want Invalid (the CRD's name rule)", err)
			_ = e.admin.Delete(context.WithoutCancel(e.ctx), &v1alpha1.VirtualIPMember{ObjectMeta: metav1.ObjectMeta{Name: "e2e-forged.n1"}})
		}
		// n2's member taken over under n1's name: spec cannot change (the CRD's rule), whoever asks.
		if err := apply(n1, member(vipName, v1alpha1.MemberName(vipName, "n2"), "n1"), false); !apierrors.IsInvalid(err) {
			t.Errorf("n1's token applying n2's member as n1's: %v, want Invalid (spec cannot change)", err)
		}
		// Deletes are not the policy's: n1's agent, writing the summary, prunes the members
		// of nodes gone. A dry run: n2's agent is alive.
		if err := n1.Delete(e.ctx, members["n2"].DeepCopy(), client.DryRunAll); err != nil {
			t.Errorf("n1's token deleting n2's member (dry run): %v, want allowed", err)
		}
		// n2's member is as n2's agent wrote it: the refusals above changed nothing.
		var after v1alpha1.VirtualIPMember
		if err := e.admin.Get(e.ctx, client.ObjectKeyFromObject(members["n2"]), &after); err != nil {
			t.Fatal(err)
		}
		if after.Status.Message == forged || after.Spec != members["n2"].Spec {
			t.Errorf("n2's member after the refusals: spec %+v, status %s", after.Spec, secJSON(after.Status))
		}

		// The agent's ServiceAccount without a pod-bound token (TokenRequest, no node-name
		// claim) writes no member at all.
		cs, err := kubernetes.NewForConfig(e.cp.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(e.ctx, secServiceAccount, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		unbound := rest.AnonymousClientConfig(e.cp.RESTConfig())
		unbound.BearerToken = tr.Status.Token
		nc, err := client.New(unbound, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		denied("an unbound token of the agent's ServiceAccount applying n1's member (dry run)",
			apply(nc, member(vipName, v1alpha1.MemberName(vipName, "n1"), "n1"), true), "carry no node name")
	})
}

// secPodToken returns the ServiceAccount token the kubelet projected into pod (volume
// kube-api-access-*), read from the kubelet's directory on the node, and checks that the agent
// container sees the same token where in-cluster clients read it.
func secPodToken(t *testing.T, e *env, k *cluster.KubeNode, pod corev1.Pod) string {
	t.Helper()
	var vol string
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil {
			vol = v.Name
		}
	}
	if vol == "" {
		t.Fatalf("pod %s has no projected kube-api-access volume: %s", pod.Name, secJSON(pod.Spec.Volumes))
	}
	rel := filepath.Join("kubelet", "pods", string(pod.UID), "volumes", "kubernetes.io~projected", vol, "token")
	// /var/lib inside the node is KubeNode.Dir/var-lib; the kubelet mounts a tmpfs on the
	// volume's directory in the node's mount namespace, whose view /proc/<pid>/root of the
	// node's init gives.
	var token []byte
	var err error
	for _, p := range []string{
		filepath.Join(k.Dir, "var-lib", rel),
		filepath.Join(fmt.Sprintf("/proc/%d/root/var/lib", k.HolderPid()), rel),
	} {
		if token, err = os.ReadFile(p); err == nil {
			t.Logf("%s: pod %s's token read from %s", k.Node.Name, pod.Name, p)
			break
		}
	}
	if err != nil {
		t.Fatalf("pod %s: the projected token: %v", pod.Name, err)
	}
	// What the agent itself reads (rest.InClusterConfig): the mount's real path inside the
	// container (/var/run may be a symlink to /run).
	pid := e.containerPid(t, pod, "agent")
	mnt, ok := secMountPoint(t, pid, func(mp string) bool { return strings.HasSuffix(mp, "/secrets/kubernetes.io/serviceaccount") })
	if !ok {
		t.Fatalf("pod %s: no ServiceAccount mount in the agent's mountinfo", pod.Name)
	}
	seen, err := os.ReadFile(filepath.Join(fmt.Sprintf("/proc/%d/root", pid), mnt, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(seen), bytes.TrimSpace(token)) {
		t.Errorf("pod %s: the agent's %s/token is not the kubelet's projected token", pod.Name, mnt)
	}
	return string(bytes.TrimSpace(token))
}

// secServiceAccountToken creates ServiceAccount ns/name, bound to ClusterRole role if not
// empty, and returns a token of it (TokenRequest, as the admin); both go when t ends.
func secServiceAccountToken(t *testing.T, e *env, cs kubernetes.Interface, ns, name, role string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := e.admin.Create(e.ctx, sa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.admin.Delete(context.WithoutCancel(e.ctx), sa) })
	if role != "" {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		if err := e.admin.Create(e.ctx, crb); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.admin.Delete(context.WithoutCancel(e.ctx), crb) })
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(e.ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// secNodeHTTPClient is an HTTP client whose connections are made in node's network namespace;
// it skips certificate verification (the agent's /metrics certificate is self-signed).
func secNodeHTTPClient(node *lab.Node) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
		DialContext:       node.DialContext}}
}

// secGet gets url with hc, with a bearer token if not empty, and returns the status and the
// body (the first MiB).
func secGet(ctx context.Context, hc *http.Client, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// secProcStatus returns the fields of /proc/<pid>/status.
func secProcStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func secCapSet(t *testing.T, st map[string]string, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(st[key], 16, 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", key, st[key], err)
	}
	return v
}

// secCapNames names the capabilities of a set, by number except the two the agent has.
func secCapNames(set uint64) string {
	var names []string
	for i := range 64 {
		if set&(1<<i) == 0 {
			continue
		}
		switch i {
		case secCapNetAdmin:
			names = append(names, "NET_ADMIN")
		case secCapNetRaw:
			names = append(names, "NET_RAW")
		default:
			names = append(names, fmt.Sprintf("cap%d", i))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// secRootMount returns the mount options of the filesystem pid sees at / (the last mount there
// in its mountinfo: the one on top).
func secRootMount(t *testing.T, pid int) (opts string, ok bool) {
	t.Helper()
	secMountInfo(t, pid, func(mountPoint, mountOpts string) {
		if mountPoint == "/" {
			opts, ok = mountOpts, true
		}
	})
	return opts, ok
}

// secMountPoint returns the last mount point in pid's mountinfo that match accepts.
func secMountPoint(t *testing.T, pid int, match func(string) bool) (mp string, ok bool) {
	t.Helper()
	secMountInfo(t, pid, func(mountPoint, _ string) {
		if match(mountPoint) {
			mp, ok = mountPoint, true
		}
	})
	return mp, ok
}

// secMountInfo calls fn with the mount point and per-mount options of each line of
// /proc/<pid>/mountinfo (proc(5): id, parent, major:minor, root, mount point, options, ...).
func secMountInfo(t *testing.T, pid int, fn func(mountPoint, opts string)) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		fn(secUnescapeMount(fields[4]), fields[5])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// secUnescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func secUnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// secEventually retries check every 200 ms until it succeeds, failing t after timeout.
func secEventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, err)
		}
	}
}

func secJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
