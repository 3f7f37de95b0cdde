package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/kube-vrrp/kube-vrrp/pkg/staticpod"
)

// maxPasswordFile bounds what --password-file reads: a PASS password has at most 8 bytes.
const maxPasswordFile = 1024

// peerList is the repeatable --peer flag (a comma-separated list works too).
type peerList []netip.Addr

func (p *peerList) String() string {
	s := make([]string, len(*p))
	for i, a := range *p {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (p *peerList) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not an IP address: give another control-plane node's address, e.g. 198.18.0.12", s)
		}
		*p = append(*p, a)
	}
	return nil
}

// cmdStaticPod writes (or prints) the static pod manifest, the VirtualIP and, with a password,
// the Secret file that run kube-vrrp in front of a kubeadm control plane's API servers
// (pkg/staticpod). The password is read from a file and only ever written to a file of mode
// 0600: never to standard output, never into the manifest or a command line.
func cmdStaticPod(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("static-pod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o            staticpod.Options
		address      string
		peers        peerList
		passwordFile string
		out          string
	)
	fs.StringVar(&o.Node, "node", "", "`NAME` of this control-plane node, as the kubelet registers it (required)")
	fs.StringVar(&address, "address", "", "the VIP with its subnet's prefix length, `CIDR` such as 198.18.0.100/24 (required)")
	fs.IntVar(&o.VRID, "vrid", 0, "virtual router `ID`, 1..255, the same on every control-plane node (required)")
	fs.IntVar(&o.Priority, "priority", 0, fmt.Sprintf("this node's `PRIORITY`, %d..%d, a different one on each node, the highest where kubeadm init runs (required)",
		staticpod.MinPriority, staticpod.MaxPriority))
	fs.StringVar(&o.Interface, "interface", "", "`INTERFACE` for adverts and the VIP (default: the one holding a node address in the VIP's subnet)")
	fs.Var(&peers, "peer", "`IP` of another control-plane node: unicast adverts (repeatable; none: multicast)")
	fs.StringVar(&passwordFile, "password-file", "", "`FILE` holding a PASS password (1..8 bytes; VRRPv2 with 1s adverts, as keepalived's auth_type PASS); needs --out")
	fs.StringVar(&o.APIServer, "apiserver", staticpod.DefaultAPIServer, "`HOST:PORT` of this node's kube-apiserver, whose /readyz decides")
	fs.StringVar(&o.CAFile, "ca-file", staticpod.DefaultCAFile, "`FILE` of the CA the API server's certificate is verified against")
	fs.StringVar(&o.ServerName, "server-name", staticpod.DefaultServerName, "`NAME` verified in the API server's certificate")
	fs.StringVar(&o.Image, "image", staticpod.DefaultImage(version), "kube-vrrp `IMAGE`")
	fs.StringVar(&o.ConfigDir, "config-dir", staticpod.DefaultConfigDir, "host `DIR` of the VirtualIP and Secret files")
	fs.StringVar(&o.Name, "name", staticpod.DefaultName, "`NAME` of the VirtualIP")
	fs.DurationVar(&o.Interval, "interval", 0, "advertisement `DURATION` (default 100ms, 1s with a password)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "`FILE` in the config dir (e.g. "+staticpod.DefaultConfigDir+"/"+staticpod.KubeconfigFile+
		") with a client certificate of kube-vrrp:node:NAME in group kube-vrrp:control-plane: the pod mirrors the VIP's status to the cluster once the API server answers (default: no API server at all)")
	fs.StringVar(&out, "out", "", "write "+staticpod.ManifestFile+", "+staticpod.VirtualIPFile+" (and "+staticpod.SecretFile+", mode 0600) into `DIR` instead of printing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kube-vrrp static-pod --node NAME --address CIDR --vrid N --priority N [--peer IP]... [--password-file FILE] [--out DIR]")
		fmt.Fprintln(stderr, "Generates kube-vrrp as a kubeadm static pod holding the control-plane endpoint (the VIP of")
		fmt.Fprintln(stderr, "kubeadm init --control-plane-endpoint VIP:6443) on the node whose own API server is ready:")
		fmt.Fprintf(stderr, "the manifest goes to %s/%s, the VirtualIP (and Secret) to the config dir.\n", staticpod.ManifestDir, staticpod.ManifestFile)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kube-vrrp static-pod: unexpected argument %q: every input is a flag\n", fs.Arg(0))
		return exitUsage
	}
	fail := func(code int, format string, a ...any) int {
		for line := range strings.SplitSeq(fmt.Sprintf(format, a...), "\n") {
			fmt.Fprintln(stderr, "kube-vrrp static-pod:", line)
		}
		return code
	}
	if address != "" {
		if !strings.Contains(address, "/") {
			return fail(exitUsage, "--address %s: give the VIP with its subnet's prefix length, e.g. %s/24", address, address)
		}
		p, err := netip.ParsePrefix(address)
		if err != nil {
			return fail(exitUsage, "--address %q is not a CIDR: give the VIP with its subnet's prefix length, e.g. 198.18.0.100/24", address)
		}
		o.Address = p
	}
	o.Peers = peers
	if passwordFile != "" {
		if out == "" {
			return fail(exitUsage, "--password-file needs --out DIR: the password goes into %s, mode 0600, and never to standard output", staticpod.SecretFile)
		}
		pw, err := readPasswordFile(passwordFile)
		if err != nil {
			return fail(exitUsage, "--password-file: %v", err)
		}
		o.Password = pw
	}
	files, err := staticpod.Generate(o)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if version == "dev" && o.Image == staticpod.DefaultImage(version) {
		fmt.Fprintf(stderr, "kube-vrrp static-pod: warning: this binary was built without a version, and no registry holds %s: give --image (make build and make image name the same version)\n", o.Image)
	}
	if out == "" {
		var b bytes.Buffer
		b.Write(files.Manifest)
		b.WriteString("---\n")
		b.Write(files.VirtualIP)
		if _, err := stdout.Write(b.Bytes()); err != nil {
			return exitError
		}
		return exitOK
	}

	configDir := o.ConfigDir
	if configDir == "" {
		configDir = staticpod.DefaultConfigDir
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return fail(exitError, "--out: %v", err)
	}
	type file struct {
		name, dest string
		data       []byte
		mode       os.FileMode
		install    string
	}
	list := []file{
		{staticpod.VirtualIPFile, filepath.Join(configDir, staticpod.VirtualIPFile), files.VirtualIP, 0o644, "-m 0644"},
	}
	if files.Secret != nil {
		list = append(list, file{staticpod.SecretFile, filepath.Join(configDir, staticpod.SecretFile), files.Secret, 0o600,
			fmt.Sprintf("-o %d -g %d -m 0600", staticpod.AgentUID, staticpod.AgentUID)})
	}
	// The manifest last: the kubelet starts the pod as soon as it sees it.
	list = append(list, file{staticpod.ManifestFile, filepath.Join(staticpod.ManifestDir, staticpod.ManifestFile), files.Manifest, 0o600, "-m 0600"})
	for _, f := range list {
		if err := writeFileAtomic(filepath.Join(out, f.name), f.data, f.mode); err != nil {
			return fail(exitError, "%v", err)
		}
	}
	written := make([]string, len(list))
	for i, f := range list {
		written[i] = filepath.Join(out, f.name)
	}
	fmt.Fprintf(stdout, "Wrote %s. On %s, as root:\n", strings.Join(written, ", "), o.Node)
	fmt.Fprintf(stdout, "  install -d -m 0755 %s\n", configDir)
	for _, f := range list {
		fmt.Fprintf(stdout, "  install %s %s %s\n", f.install, filepath.Join(out, f.name), f.dest)
	}
	if o.Kubeconfig != "" {
		// After kubeadm init or join (the CA, admin.conf); the pod reads the kubeconfig when it
		// appears. The VirtualIP in the cluster names every node: each applies its own entry.
		kc := filepath.Join(out, staticpod.KubeconfigFile)
		fmt.Fprintf(stdout, "Status in the cluster, after kubeadm init or join (the pod reads the kubeconfig when it appears):\n")
		fmt.Fprintf(stdout, "  (umask 077; kubeadm kubeconfig user --client-name kube-vrrp:node:%s --org kube-vrrp:control-plane > %s)\n", o.Node, kc)
		fmt.Fprintf(stdout, "  install -o %d -g %d -m 0600 %s %s\n", staticpod.AgentUID, staticpod.AgentUID, kc, o.Kubeconfig)
		fmt.Fprintf(stdout, "  kubectl --kubeconfig /etc/kubernetes/admin.conf apply --server-side --field-manager kube-vrrp-static-pod/%s -f %s\n",
			o.Node, filepath.Join(configDir, staticpod.VirtualIPFile))
	}
	return exitOK
}

// readPasswordFile reads a PASS password: the file's content without one trailing line break.
// Errors never show the content.
func readPasswordFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("%s is larger than %d bytes: it must hold only the password (1..8 bytes)", name, maxPasswordFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("%s is empty: write the password (1..8 bytes) into it", name)
	}
	if bytes.ContainsAny(b, "\n") {
		return "", fmt.Errorf("%s has more than one line: it must hold only the password (1..8 bytes)", name)
	}
	return string(b), nil
}

// writeFileAtomic writes data to name with mode: a temporary file of mode 0600 in the same
// directory, renamed into place, so that a password is never readable by others, not even for
// a moment or through an older file's broader mode.
func writeFileAtomic(name string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, werr := tmp.Write(data)
	cerr := tmp.Chmod(mode)
	if err := errors.Join(werr, cerr, tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
