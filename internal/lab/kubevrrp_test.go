package lab_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

func TestVirtualIPString(t *testing.T) {
	n1 := &lab.Node{Name: "n1", IPv4: lab.Addr4(11), IPv6: lab.Addr6(11)}
	n2 := &lab.Node{Name: "n2", IPv4: lab.Addr4(12), IPv6: lab.Addr6(12)}
	got := lab.VirtualIP{
		VRID: 51, Version: 2, AdvertInt: time.Second, Addresses: []netip.Prefix{vip4},
		NodePriorities: map[string]int{"n2": 100, "n1": 110}, NoPreempt: true, PreemptDelay: 1500 * time.Millisecond,
		AuthPass: "s3cret", Extra: []string{"accept: false"},
	}.WithPeers(n1, n2).String()
	want := `apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: lab
spec:
  vrid: 51
  version: 2
  addresses: ["198.18.0.200/24"]
  advertisementInterval: 1s
  nodes:
  - {name: n1, priority: 110}
  - {name: n2, priority: 100}
  nodeSelector: {}
  preempt: false
  preemptDelay: 1.5s
  unicast:
    peers: ["198.18.0.11", "198.18.0.12"]
  authentication:
    type: PASS
    secretRef: {name: lab-auth, key: password}
  accept: false
---
apiVersion: v1
kind: Secret
metadata:
  name: lab-auth
stringData:
  password: "s3cret"
`
	if got != want {
		t.Errorf("manifest mismatch:\n%s", diffLines(want, got))
	}
}

// TestVirtualIPValidates checks that kube-vrrp accepts what VirtualIP renders.
func TestVirtualIPValidates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ./cmd/kube-vrrp")
	}
	n1 := &lab.Node{Name: "n1", IPv4: lab.Addr4(11), IPv6: lab.Addr6(11)}
	n2 := &lab.Node{Name: "n2", IPv4: lab.Addr4(12), IPv6: lab.Addr6(12)}
	vips := map[string]lab.VirtualIP{
		"v3-multicast": {VRID: 51, Addresses: []netip.Prefix{vip4}, AdvertInt: 10 * time.Millisecond,
			NodePriorities: map[string]int{"n1": 110}},
		"v2-pass-unicast": lab.VirtualIP{Name: "legacy", VRID: 52, Version: 2, Addresses: []netip.Prefix{vip4},
			AdvertInt: time.Second, NoPreempt: true, AuthPass: "k33p4l1v"}.WithPeers(n1, n2),
		"v6-unicast": lab.VirtualIP{Name: "v6", VRID: 61, Version: 3, Addresses: []netip.Prefix{vip6},
			PreemptDelay: time.Second, Priority: 90}.WithPeers(n1, n2),
	}
	bin := lab.KubeVRRPBinary(t)
	for name, v := range vips {
		path := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(path, []byte(v.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "validate", "-f", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok "+v.VIPName()) {
			t.Errorf("%s: validate: %v\n%s\n%s", name, err, out, v)
		}
	}
}
