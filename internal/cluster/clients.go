package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Client programs: kubectl and helm as a user runs them (hack/k8s-binaries.sh builds both into
// the assets' directory), against the control plane.

// ClientEnv is the environment of Kubectl and Helm: the admin kubeconfig, and every cache and
// configuration directory of both under the control plane's directory, so that nothing is
// written to $HOME.
func (c *ControlPlane) ClientEnv() ([]string, error) {
	kubeconfig, err := c.AdminKubeconfig()
	if err != nil {
		return nil, err
	}
	home := filepath.Join(c.dir, "home")
	for _, d := range []string{"", "helm-cache", "helm-config", "helm-data"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			return nil, err
		}
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"KUBECONFIG=" + kubeconfig,
		"KUBECACHEDIR=" + filepath.Join(home, "kube-cache"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "helm-cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "helm-config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "helm-data"),
	}, nil
}

// ClientCommand is the command line that runs a client program (kubectl or helm) from a shell
// of the test machine with ClientEnv's settings (the kubeconfig, and caches and configuration
// in the control plane's directory): inside the control plane's lab namespace, the only one
// from which the API server is reachable.
func (c *ControlPlane) ClientCommand(program string) (string, error) {
	env, err := c.ClientEnv()
	if err != nil {
		return "", err
	}
	var vars []string
	for _, e := range env {
		if !strings.HasPrefix(e, "PATH=") && !strings.HasPrefix(e, "HOME=") {
			vars = append(vars, e)
		}
	}
	return fmt.Sprintf("ip netns exec %s env %s %s", c.Host.NetNS, strings.Join(vars, " "), filepath.Join(c.assets, program)), nil
}

// Kubectl runs kubectl with args (and stdin, if not empty) and returns its standard output;
// the error carries its standard error.
func (c *ControlPlane) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	return c.runClient(ctx, "kubectl", stdin, args)
}

// Helm runs helm with args and returns its standard output; the error carries its standard
// error.
func (c *ControlPlane) Helm(ctx context.Context, args ...string) (string, error) {
	return c.runClient(ctx, "helm", "", args)
}

func (c *ControlPlane) runClient(ctx context.Context, program, stdin string, args []string) (string, error) {
	bin := filepath.Join(c.assets, program)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s (make k8s-binaries): %w", program, err)
	}
	env, err := c.ClientEnv()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.Host.NetNS, bin}, args...)...)
	cmd.Env = env
	cmd.Dir = c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", program, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
