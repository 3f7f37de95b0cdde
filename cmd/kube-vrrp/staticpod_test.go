package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/pkg/hostnet"
	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
)

const spImage = "registry.example/kube-vrrp:v1.2.3"

func spArgs(extra ...string) []string {
	return append([]string{"static-pod", "--node", "cp1", "--address", "198.18.0.100/24", "--vrid", "51",
		"--priority", "150", "--image", spImage}, extra...)
}

func writePassword(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vrrp-password")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func modeOf(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// cp1 is the node as `kube-vrrp run` sees it: eth0 in the VIP's subnet.
func cp1() []hostnet.Interface {
	return []hostnet.Interface{
		{Name: "lo", Index: 1, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}},
	}
}

// With --out the three files are written with their modes, validate accepts the VirtualIP and
// Secret, run's own flag parser accepts the pod's command line, and the run it describes
// selects the node with the password; the password is nowhere else.
func TestStaticPodOut(t *testing.T) {
	const pass = "s3cr3tpw"
	out := filepath.Join(t.TempDir(), "out")
	pwFile := writePassword(t, pass+"\n")
	code, stdout, stderr := runCLI(t, spArgs("--peer", "198.18.0.12", "--peer", "198.18.0.13", "--password-file", pwFile, "--out", out)...)
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	for _, s := range []string{stdout, stderr} {
		if strings.Contains(s, pass) {
			t.Errorf("the password is printed:\n%s", s)
		}
	}
	for _, want := range []string{
		"install -d -m 0755 /etc/kube-vrrp",
		"install -m 0644 " + filepath.Join(out, "vip.yaml") + " /etc/kube-vrrp/vip.yaml",
		"install -o 65532 -g 65532 -m 0600 " + filepath.Join(out, "secret.yaml") + " /etc/kube-vrrp/secret.yaml",
		"install -m 0600 " + filepath.Join(out, "kube-vrrp.yaml") + " /etc/kubernetes/manifests/kube-vrrp.yaml",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	for name, mode := range map[string]os.FileMode{"kube-vrrp.yaml": 0o600, "vip.yaml": 0o644, "secret.yaml": 0o600} {
		if got := modeOf(t, filepath.Join(out, name)); got != mode {
			t.Errorf("%s: mode %o, want %o", name, got, mode)
		}
	}
	if got := modeOf(t, out); got != 0o700 {
		t.Errorf("--out directory: mode %o, want 700", got)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 3 {
		t.Errorf("--out holds %d entries, want the 3 files (no temporary file left)", len(entries))
	}

	vipFile, secretFile := filepath.Join(out, "vip.yaml"), filepath.Join(out, "secret.yaml")
	if code, vout, verr := runCLI(t, "validate", "-f", vipFile, "-f", secretFile); code != exitOK || !strings.Contains(vout, "ok control-plane") {
		t.Fatalf("validate: exit %d\n%s%s", code, vout, verr)
	}

	data, err := os.ReadFile(filepath.Join(out, "kube-vrrp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), pass) {
		t.Error("the manifest holds the password")
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatal(err)
	}
	args := pod.Spec.Containers[0].Args
	if len(args) == 0 || args[0] != "run" {
		t.Fatalf("container args %q: want kube-vrrp run", args)
	}
	ro, err := parseRunFlags(args[1:], &strings.Builder{})
	if err != nil {
		t.Fatalf("run refuses the pod's command line %q: %v", args, err)
	}
	if ro.node != "cp1" || ro.stateDir != "/var/run/kube-vrrp" ||
		!slices.Equal(ro.files, []string{"/etc/kube-vrrp/vip.yaml", "/etc/kube-vrrp/secret.yaml"}) {
		t.Errorf("run options: node %q state dir %q files %q", ro.node, ro.stateDir, ro.files)
	}
	// The files run reads in the pod are the ones written here, under the config dir.
	local := make([]string, len(ro.files))
	for i, f := range ro.files {
		local[i] = filepath.Join(out, filepath.Base(f))
	}
	set, err := manifest.Load(local...)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, skipped, err := buildConfigs(set, nodeFromHost(ro.node, nil, cp1()))
	if err != nil || len(skipped) != 0 || len(cfgs) != 1 {
		t.Fatalf("buildConfigs: %v, skipped %q, %d configs", err, skipped, len(cfgs))
	}
	c := cfgs[0]
	if string(c.Password) != pass || c.Version != 2 || c.Priority != 150 || c.Interface != "eth0" || len(c.Peers) != 2 {
		t.Errorf("config: password ok %v version %d priority %d interface %s peers %v",
			string(c.Password) == pass, c.Version, c.Priority, c.Interface, c.Peers)
	}
	if _, skipped, _ := buildConfigs(set, nodeFromHost("cp2", nil, cp1())); !slices.Equal(skipped, []string{"control-plane"}) {
		t.Errorf("run --node cp2 with cp1's files: skipped %q, want the VirtualIP skipped", skipped)
	}
}

// A secret.yaml left readable by others is replaced by one of mode 0600, not written into.
func TestStaticPodRewritesSecretPrivately(t *testing.T) {
	out := t.TempDir()
	old := filepath.Join(out, "secret.yaml")
	if err := os.WriteFile(old, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, spArgs("--password-file", writePassword(t, "42"), "--out", out)...); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := modeOf(t, old); got != 0o600 {
		t.Errorf("secret.yaml: mode %o, want 600", got)
	}
}

// Without --out the manifest and the VirtualIP go to standard output, each under a comment that
// says where it goes; validate accepts the VirtualIP.
func TestStaticPodStdout(t *testing.T) {
	code, stdout, stderr := runCLI(t, spArgs("--interface", "eth0")...)
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	docs := strings.Split(stdout, "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2:\n%s", len(docs), stdout)
	}
	if !strings.Contains(docs[0], "# Install as /etc/kubernetes/manifests/kube-vrrp.yaml") ||
		!strings.HasPrefix(docs[1], "# Install as /etc/kube-vrrp/vip.yaml") {
		t.Errorf("the documents do not say where they go:\n%s", stdout)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &pod); err != nil || pod.Kind != "Pod" {
		t.Fatalf("first document: %v", err)
	}
	f := filepath.Join(t.TempDir(), "vip.yaml")
	if err := os.WriteFile(f, []byte(docs[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, vout, verr := runCLI(t, "validate", "-f", f); code != exitOK {
		t.Fatalf("validate: exit %d\n%s%s", code, vout, verr)
	}
}

func TestStaticPodRefuses(t *testing.T) {
	pw := writePassword(t, "42\n")
	empty := writePassword(t, "\n")
	long := writePassword(t, strings.Repeat("x", 2000))
	twoLines := writePassword(t, "hunter2\nsecond\n")
	out := filepath.Join(t.TempDir(), "out")
	drop := func(args []string, flag string) []string {
		i := slices.Index(args, flag)
		return slices.Delete(slices.Clone(args), i, i+2)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"password without --out", spArgs("--password-file", pw), []string{"--password-file needs --out DIR", "mode 0600"}},
		{"password on the command line", spArgs("--password", "42", "--out", out), []string{"flag provided but not defined: -password"}},
		{"no node", drop(spArgs(), "--node"), []string{"node: required", "kubectl get nodes"}},
		{"no address", drop(spArgs(), "--address"), []string{"address: required", "198.18.0.100/24"}},
		{"address without prefix", drop(spArgs("--address", "198.18.0.100"), "--address"), []string{"--address 198.18.0.100:", "198.18.0.100/24"}},
		{"address not a CIDR", drop(spArgs("--address", "198.18.0.300/24"), "--address"), []string{`--address "198.18.0.300/24" is not a CIDR`}},
		{"no vrid", drop(spArgs(), "--vrid"), []string{"vrid 0: give 1..255"}},
		{"priority out of range", drop(spArgs("--priority", "250"), "--priority"), []string{"priority 250: give 101..200"}},
		{"bad peer", spArgs("--peer", "cp2"), []string{`"cp2" is not an IP address`}},
		{"empty password file", spArgs("--password-file", empty, "--out", out), []string{"is empty"}},
		{"long password file", spArgs("--password-file", long, "--out", out), []string{"larger than 1024 bytes"}},
		{"two-line password file", spArgs("--password-file", twoLines, "--out", out), []string{"more than one line"}},
		{"missing password file", spArgs("--password-file", filepath.Join(out, "nope"), "--out", out), []string{"nope"}},
		{"positional argument", spArgs("cp1"), []string{`unexpected argument "cp1"`}},
		{"several at once", drop(drop(spArgs("--vrid", "0", "--priority", "7"), "--vrid"), "--priority"), []string{"vrid 0", "priority 7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			for _, secret := range []string{"hunter2", "xxxxxxxx"} {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr shows the password file's content:\n%s", stderr)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was created for a refused command", out)
			}
		})
	}
}

// The defaults the flags show are the package's.
func TestStaticPodDefaults(t *testing.T) {
	code, _, stderr := runCLI(t, "static-pod", "-h")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{staticpod.DefaultAPIServer, staticpod.DefaultCAFile, staticpod.DefaultConfigDir,
		staticpod.DefaultImage(version), "101..200"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("usage lacks %q:\n%s", want, stderr)
		}
	}
}

// TestStaticPodKubeconfig: --kubeconfig gives the pod's run the kubeconfig in the config dir
// (docs/design.md §7.11), and the commands printed make the node's certificate (never into a
// file others may read), install it for uid 65532 with mode 0600 and apply the node's
// VirtualIP server-side under a field manager of its own. A kubeconfig outside the config dir,
// which the pod does not mount, is refused.
func TestStaticPodKubeconfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runCLI(t, spArgs("--kubeconfig", "/etc/kube-vrrp/kubeconfig", "--out", out)...)
	if code != exitOK {
		t.Fatalf("exit %d\nstderr: %s", code, stderr)
	}
	kc := filepath.Join(out, "kubeconfig")
	for _, want := range []string{
		"(umask 077; kubeadm kubeconfig user --client-name kube-vrrp:node:cp1 --org kube-vrrp:control-plane > " + kc + ")",
		"install -o 65532 -g 65532 -m 0600 " + kc + " /etc/kube-vrrp/kubeconfig",
		"kubectl --kubeconfig /etc/kubernetes/admin.conf apply --server-side --field-manager kube-vrrp-static-pod/cp1 -f /etc/kube-vrrp/vip.yaml",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "kube-vrrp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatal(err)
	}
	ro, err := parseRunFlags(pod.Spec.Containers[0].Args[1:], &strings.Builder{})
	if err != nil || ro.kubeconfig != "/etc/kube-vrrp/kubeconfig" {
		t.Errorf("run's --kubeconfig %q, %v", ro.kubeconfig, err)
	}

	code, stdout, stderr = runCLI(t, spArgs("--kubeconfig", "/etc/kubernetes/kube-vrrp.conf")...)
	if code != exitUsage || !strings.Contains(stderr, `kubeconfig "/etc/kubernetes/kube-vrrp.conf": put it in the config dir /etc/kube-vrrp`) {
		t.Errorf("a kubeconfig outside the config dir: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, _ := runCLI(t, spArgs()...); code != exitOK {
		t.Fatalf("without --kubeconfig: exit %d", code)
	}
	if _, stdout, _ := runCLI(t, spArgs("--out", filepath.Join(t.TempDir(), "plain"))...); strings.Contains(stdout, "kubeconfig") {
		t.Errorf("without --kubeconfig the commands speak of one:\n%s", stdout)
	}
}
