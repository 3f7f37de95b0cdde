package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kube-vrrp/kube-vrrp/internal/chart"
	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// podSpec is what the demo takes from the chart's DaemonSet to run its pod by hand.
type podSpec struct {
	release *chart.Release
	// daemonSet and container name the DaemonSet and its agent container.
	daemonSet, container string
	// serviceAccount is the pod's ServiceAccount (in releaseNamespace).
	serviceAccount string
	// args are the container's arguments (the image's entrypoint is the binary).
	args []string
	// env are the container's variables; a downward-API one has fieldPath set.
	env []envVar
}

type envVar struct{ name, value, fieldPath string }

// value returns the variable's value in the pod on node, whose address is hostIP.
func (e envVar) valueOn(node, hostIP string) (string, error) {
	switch e.fieldPath {
	case "":
		return e.value, nil
	case "spec.nodeName":
		return node, nil
	case "metadata.namespace":
		return releaseNamespace, nil
	case "status.hostIP":
		return hostIP, nil
	}
	return "", fmt.Errorf("env %s: fieldRef %s: the demo knows spec.nodeName, metadata.namespace and status.hostIP", e.name, e.fieldPath)
}

// expandVars replaces $(NAME) in s with the variable's value, as the kubelet does in a
// container's args; a reference to an unknown variable stays as it is.
func expandVars(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := vars[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

var varRef = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_]*\)`)

// podFromRelease finds the agent's DaemonSet in the rendered chart, takes its command and
// environment, and checks that it asks for what the demo reproduces: host network and PID
// namespace, uid 65532 without privilege escalation, capabilities NET_ADMIN and NET_RAW only
// (filecaps.Command's setup).
func podFromRelease(rel *chart.Release) (*podSpec, error) {
	var ds *unstructured.Unstructured
	for _, u := range rel.Objects {
		if u.GetKind() == "DaemonSet" {
			if ds != nil {
				return nil, errors.New("the chart renders two DaemonSets")
			}
			ds = u
		}
	}
	if ds == nil {
		return nil, errors.New("the chart renders no DaemonSet")
	}
	spec, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	containers, _, _ := unstructured.NestedSlice(spec, "containers")
	if len(containers) != 1 {
		return nil, fmt.Errorf("DaemonSet %s: %d containers, want the agent only", ds.GetName(), len(containers))
	}
	c, _ := containers[0].(map[string]any)
	p := &podSpec{release: rel, daemonSet: ds.GetName()}
	p.container, _, _ = unstructured.NestedString(c, "name")
	p.serviceAccount, _, _ = unstructured.NestedString(spec, "serviceAccountName")
	p.args, _, _ = unstructured.NestedStringSlice(c, "args")
	if cmd, _, _ := unstructured.NestedStringSlice(c, "command"); len(cmd) > 0 {
		return nil, fmt.Errorf("DaemonSet %s: the demo runs the image's entrypoint (the binary), but the container sets command %v", ds.GetName(), cmd)
	}
	if len(p.args) == 0 || p.args[0] != "agent" || p.serviceAccount == "" {
		return nil, fmt.Errorf("DaemonSet %s: args %v, serviceAccountName %q: want `agent ...` and a ServiceAccount", ds.GetName(), p.args, p.serviceAccount)
	}
	env, _, _ := unstructured.NestedSlice(c, "env")
	for _, x := range env {
		m, _ := x.(map[string]any)
		e := envVar{}
		e.name, _, _ = unstructured.NestedString(m, "name")
		e.value, _, _ = unstructured.NestedString(m, "value")
		e.fieldPath, _, _ = unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath")
		if _, err := e.valueOn("n1", "198.18.0.1"); err != nil {
			return nil, err
		}
		p.env = append(p.env, e)
	}

	// What the demo reproduces; a chart that asks for something else needs a new demo.
	var problems []string
	want := func(ok bool, what string) {
		if !ok {
			problems = append(problems, what)
		}
	}
	hostNetwork, _, _ := unstructured.NestedBool(spec, "hostNetwork")
	hostPID, _, _ := unstructured.NestedBool(spec, "hostPID")
	want(hostNetwork, "hostNetwork: true")
	want(hostPID, "hostPID: true (the process probe looks for the node's HAProxy)")
	sc, _, _ := unstructured.NestedMap(c, "securityContext")
	uid, gid := number(sc, "runAsUser"), number(sc, "runAsGroup")
	want(uid == filecaps.AgentID && gid == filecaps.AgentID, fmt.Sprintf("runAsUser and runAsGroup %d", filecaps.AgentID))
	ape, found, _ := unstructured.NestedBool(sc, "allowPrivilegeEscalation")
	want(found && !ape, "allowPrivilegeEscalation: false")
	priv, _, _ := unstructured.NestedBool(sc, "privileged")
	want(!priv, "privileged: false")
	drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
	add, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "add")
	slices.Sort(add)
	want(slices.Equal(drop, []string{"ALL"}) && slices.Equal(add, []string{"NET_ADMIN", "NET_RAW"}), "capabilities: drop [ALL], add [NET_ADMIN, NET_RAW]")
	if len(problems) > 0 {
		return nil, fmt.Errorf("DaemonSet %s no longer asks for what the demo reproduces (%s); update hack/demo", ds.GetName(), strings.Join(problems, "; "))
	}
	return p, nil
}

// agentDirPrefix starts the name of the directory of the agent's "image": the binary with
// the image's file capabilities and the kubeconfig. The pid follows, so that a later run
// removes the directory of a run that was killed.
const agentDirPrefix = "kvldemo"

var agentDirName = regexp.MustCompile(`^` + agentDirPrefix + `([0-9]+)-`)

// agentDirBases are where the agent's directory may go: a file system that honours file
// capabilities (mounted without nosuid or noexec) and that uid 65532 can traverse.
func agentDirBases() []string { return []string{os.TempDir(), "/var/tmp"} }

// makeAgentDir creates the agent's directory (mode 0755: uid 65532 executes the binary in it)
// and removes those of dead runs.
func makeAgentDir() (string, error) {
	var tried []string
	for _, base := range agentDirBases() {
		sweepAgentDirs(base)
		var st unix.Statfs_t
		if err := unix.Statfs(base, &st); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", base, err))
			continue
		}
		if st.Flags&(unix.ST_NOSUID|unix.ST_NOEXEC) != 0 {
			tried = append(tried, base+": mounted nosuid or noexec (no file capabilities)")
			continue
		}
		if fi, err := os.Stat(base); err != nil || fi.Mode().Perm()&0o001 == 0 {
			tried = append(tried, base+": not searchable by other users")
			continue
		}
		dir, err := os.MkdirTemp(base, fmt.Sprintf("%s%d-", agentDirPrefix, os.Getpid()))
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		return dir, os.Chmod(dir, 0o755)
	}
	return "", fmt.Errorf("no directory for the agent's binary with file capabilities: %s", strings.Join(tried, "; "))
}

func sweepAgentDirs(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		m := agentDirName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

// startAgents runs the DaemonSet's pod command on every node, as the pod would run it.
func (d *demo) startAgents(ctx context.Context) error {
	p := d.pod
	user := "system:serviceaccount:" + releaseNamespace + ":" + p.serviceAccount
	d.step("DaemonSet %s: running its pod on each node by hand (no kubelet here), as the pod would run", p.daemonSet)
	dir, err := makeAgentDir()
	if err != nil {
		return err
	}
	d.dir = dir
	d.res.Dirs = append(d.res.Dirs, dir)
	// The image: the binary with file capabilities cap_net_admin,cap_net_raw=ep (Dockerfile).
	bin := filepath.Join(dir, "kube-vrrp")
	if err := copyFile(d.o.Bin, bin, 0o755); err != nil {
		return err
	}
	if err := filecaps.SetFileCaps(bin); err != nil {
		return err
	}
	// In-cluster credentials: the lab has no token controller; the admin certificate
	// impersonating the chart's ServiceAccount gets exactly the chart's RBAC, and with the
	// node-name claim of a pod-bound token, exactly what the chart's status policy allows.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := d.cp.WriteKubeconfig(kubeconfig, user); err != nil {
		return err
	}
	args := append(slices.Clone(p.args), "--kubeconfig="+kubeconfig+"-<node>")
	var envs []string
	for _, e := range p.env {
		if e.fieldPath != "" {
			envs = append(envs, e.name+"=<"+e.fieldPath+">")
		} else {
			envs = append(envs, e.name+"="+e.value)
		}
	}
	d.printf("container %s: kube-vrrp %s\n", p.container, strings.Join(args, " "))
	d.printf("  env:             %s (downward API)\n", strings.Join(envs, " "))
	d.printf("  hostNetwork:     the node's network namespace; hostPID: the node's PID namespace\n")
	d.printf("  securityContext: uid/gid %d, capabilities drop ALL add NET_ADMIN NET_RAW, no privilege escalation:\n", filecaps.AgentID)
	d.printf("                   setpriv with that bounding set and no_new_privs, the binary with the image's\n")
	d.printf("                   file capabilities cap_net_admin,cap_net_raw=ep (%s)\n", bin)
	d.printf("  credentials:     --kubeconfig impersonating %s with the node-name claim of\n", user)
	d.printf("                   the pod's token (no in-cluster token here), so the chart's ClusterRole,\n")
	d.printf("                   Role and status admission policy decide every request\n")

	for _, n := range d.nodes {
		// The chart's hostPath /run/kube-vrrp, made the agent's by its init container: here
		// a directory of the node's own (the lab's nodes share the host's /run), in the
		// agent's directory, which uid 65532 can reach.
		state := filepath.Join(d.dir, "state-"+n.Name)
		if err := os.Mkdir(state, 0o700); err != nil {
			return err
		}
		if err := os.Chown(state, filecaps.AgentID, filecaps.AgentID); err != nil {
			return err
		}
		kc, err := nodeKubeconfig(kubeconfig, n.Name)
		if err != nil {
			return err
		}
		nodeArgs := slices.Clone(args)
		nodeArgs[len(nodeArgs)-1] = "--kubeconfig=" + kc
		argv, err := d.agentArgv(n.Name, n.IPv4.String(), bin, append(nodeArgs, "--state-dir="+state))
		if err != nil {
			return err
		}
		// Not the demo's context: cleanup stops the agents (SIGTERM, a handover) in order.
		if n.agent, err = n.pidns.Exec(context.Background(), "kube-vrrp-agent", argv...); err != nil {
			return err
		}
		if err := n.agent.WaitLog("kube-vrrp agent running", 0, settle); err != nil {
			return fmt.Errorf("%w:\n%s", err, n.agent.Tail(20))
		}
		if err := waitWatching(ctx, n.agent.Proc); err != nil {
			return err
		}
		c, err := readCreds(n.agent.HostPid())
		if err != nil {
			return err
		}
		d.res.AgentCreds[n.Name] = c
		d.printf("%s: agent pid %d, uid %s, CapEff %016x (%s), CapBnd %016x, NoNewPrivs %v\n",
			n.Name, n.agent.HostPid(), c.UID, c.CapEff, capNames(c.CapEff), c.CapBnd, c.NoNewPrivs)
	}
	return nil
}

// nodeKubeconfig writes a copy of the kubeconfig base for the agent on node: its impersonation
// also carries the claim authentication.kubernetes.io/node-name, as the pod's bound
// ServiceAccount token would, which the chart's status admission policy keys on.
func nodeKubeconfig(base, node string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(base)
	if err != nil {
		return "", err
	}
	for _, ai := range cfg.AuthInfos {
		ai.ImpersonateUserExtra = map[string][]string{"authentication.kubernetes.io/node-name": {node}}
	}
	path := base + "-" + node
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return "", err
	}
	return path, os.Chown(path, filecaps.AgentID, filecaps.AgentID)
}

// waitWatching waits until the agent's VirtualIP controller has started: its cache of
// VirtualIPs and Nodes is synced, so the VirtualIP applied next reaches it at once.
func waitWatching(ctx context.Context, p *lab.Proc) error {
	err := poll(ctx, settle, func() error {
		for _, rec := range lab.KubeVRRPLog(p, "Starting workers") {
			if rec["controller"] == "virtualip" {
				return nil
			}
		}
		if p.Exited() {
			return fmt.Errorf("exited: %v", p.Wait(0))
		}
		return errors.New("the virtualip controller has not started")
	})
	if err != nil {
		return fmt.Errorf("%s: the agent does not watch VirtualIPs: %w:\n%s", p.Node.Name, err, p.Tail(20))
	}
	return nil
}

// agentArgv is the command that runs the agent on node as its pod would: a clean environment
// with the pod's variables, then filecaps.Command (setpriv), at the demo's niceness.
func (d *demo) agentArgv(node, hostIP, bin string, args []string) ([]string, error) {
	var argv []string
	if d.o.Nice != 0 {
		argv = append(argv, "nice", "-n", strconv.Itoa(d.o.Nice))
	}
	argv = append(argv, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/nonroot")
	vars := map[string]string{}
	for _, e := range d.pod.env {
		v, err := e.valueOn(node, hostIP)
		if err != nil {
			return nil, err
		}
		vars[e.name] = v
		argv = append(argv, e.name+"="+v)
	}
	expanded := make([]string, len(args))
	for i, a := range args {
		expanded[i] = expandVars(a, vars)
	}
	cmd := filecaps.Command(context.Background(), bin, expanded...)
	if cmd.Err != nil {
		return nil, fmt.Errorf("setpriv (util-linux): %w", cmd.Err)
	}
	return append(append(argv, cmd.Path), cmd.Args[1:]...), nil
}

// readCreds reads a process's uid and capability sets.
func readCreds(pid int) (Creds, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Creds{}, err
	}
	return filecaps.ParseStatus(b), nil
}

// agentCaps are NET_ADMIN and NET_RAW, all the agent may hold.
const agentCaps = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW

func capNames(set uint64) string {
	var out []string
	for c, name := range map[int]string{unix.CAP_NET_ADMIN: "cap_net_admin", unix.CAP_NET_RAW: "cap_net_raw"} {
		if set&(1<<c) != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	if rest := set &^ agentCaps; rest != 0 {
		out = append(out, fmt.Sprintf("others %#x", rest))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// number returns a numeric field of a decoded manifest (an int64 or, from JSON, a float64), or
// -1.
func number(m map[string]any, field string) int64 {
	switch v := m[field].(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	case int:
		return int64(v)
	}
	return -1
}
