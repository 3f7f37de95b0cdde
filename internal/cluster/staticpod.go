package cluster

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// StaticPodArgs reads a static Pod manifest (what the kubelet runs from
// /etc/kubernetes/manifests) and returns the arguments its container named container (the
// first if "") passes to its program: the command after its first word, then args, or args
// alone when the image's entrypoint is the program. Each argument that is a path under a
// hostPath volume's mount, or a --flag=path, is rewritten to the host's path, as the
// kubelet's mount makes the container see it; so a lab runs the container's command line as a
// process of a node namespace on the files the manifest names.
func StaticPodArgs(manifest []byte, container string) ([]string, error) {
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(manifest, &pod); err != nil {
		return nil, fmt.Errorf("static pod: %w", err)
	}
	if pod.Kind != "Pod" {
		return nil, fmt.Errorf("static pod: kind %q, want Pod", pod.Kind)
	}
	var c *corev1.Container
	for i := range pod.Spec.Containers {
		if container == "" || pod.Spec.Containers[i].Name == container {
			c = &pod.Spec.Containers[i]
			break
		}
	}
	if c == nil {
		return nil, fmt.Errorf("static pod %s: no container %q", pod.Name, container)
	}
	var args []string
	if len(c.Command) > 0 {
		args = append(args, c.Command[1:]...)
	}
	args = append(args, c.Args...)
	if len(args) == 0 {
		return nil, fmt.Errorf("static pod %s: container %s passes no arguments", pod.Name, c.Name)
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	type mount struct{ in, host string }
	var mounts []mount
	for _, m := range c.VolumeMounts {
		host, ok := hostPaths[m.Name]
		if !ok {
			continue
		}
		if m.SubPath != "" {
			host = path.Join(host, m.SubPath)
		}
		mounts = append(mounts, mount{path.Clean(m.MountPath), host})
	}
	toHost := func(p string) string {
		if !path.IsAbs(p) {
			return p
		}
		p = path.Clean(p)
		best := -1
		for i, m := range mounts {
			if (p == m.in || strings.HasPrefix(p, strings.TrimSuffix(m.in, "/")+"/")) && (best < 0 || len(m.in) > len(mounts[best].in)) {
				best = i
			}
		}
		if best < 0 {
			return p
		}
		return path.Join(mounts[best].host, strings.TrimPrefix(p, mounts[best].in))
	}
	for i, a := range args {
		if flag, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(flag, "-") {
			args[i] = flag + "=" + toHost(val)
			continue
		}
		args[i] = toHost(a)
	}
	return args, nil
}
