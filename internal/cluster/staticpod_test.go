package cluster_test

import (
	"slices"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/internal/cluster"
)

// StaticPodArgs takes the named container's arguments (not an init container's), after the
// command's first word, and rewrites paths under hostPath mounts, alone or as --flag=path, to
// the host's: the deepest mount wins; other paths and other arguments stay as they are.
func TestStaticPodArgs(t *testing.T) {
	manifest := []byte(`apiVersion: v1
kind: Pod
metadata: {name: kube-vrrp, namespace: kube-system}
spec:
  hostNetwork: true
  initContainers:
  - {name: state-dir, image: x, args: [state-dir, /var/run/kube-vrrp]}
  containers:
  - name: sidecar
    image: x
    args: [sleep]
  - name: kube-vrrp
    image: x
    command: [/kube-vrrp, run]
    args: [-f, /etc/kube-vrrp/vip.yaml, -f, /etc/kube-vrrp/tls/ca.crt, --node, cp1, --state-dir=/var/run/kube-vrrp, /etc/kube-vrrpx, /usr/bin/true, --x=relative/path]
    volumeMounts:
    - {name: config, mountPath: /etc/kube-vrrp, readOnly: true}
    - {name: tls, mountPath: /etc/kube-vrrp/tls/}
    - {name: state, mountPath: /var/run/kube-vrrp}
    - {name: scratch, mountPath: /usr/bin}
  volumes:
  - {name: config, hostPath: {path: /tmp/lab/n1/config, type: Directory}}
  - {name: tls, hostPath: {path: /tmp/lab/pki}}
  - {name: state, hostPath: {path: /run/kube-vrrp, type: DirectoryOrCreate}}
  - {name: scratch, emptyDir: {}}
`)
	got, err := cluster.StaticPodArgs(manifest, "kube-vrrp")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"run", "-f", "/tmp/lab/n1/config/vip.yaml", "-f", "/tmp/lab/pki/ca.crt", "--node", "cp1",
		"--state-dir=/run/kube-vrrp", "/etc/kube-vrrpx", "/usr/bin/true", "--x=relative/path"}
	if !slices.Equal(got, want) {
		t.Errorf("args\n got %q\nwant %q", got, want)
	}
	if got, err := cluster.StaticPodArgs(manifest, ""); err != nil || !slices.Equal(got, []string{"sleep"}) {
		t.Errorf("first container: %q, %v; want [sleep]", got, err)
	}
	for _, bad := range []struct{ name, manifest, container string }{
		{"no such container", string(manifest), "nope"},
		{"not a Pod", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", ""},
		{"unknown field", "apiVersion: v1\nkind: Pod\nspec: {containerz: []}\n", ""},
		{"no arguments", "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a, image: x}]}\n", ""},
	} {
		if _, err := cluster.StaticPodArgs([]byte(bad.manifest), bad.container); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
	}
}
