package cluster

import "net/netip"

// SampleVIP is SampleVirtualIP's address, on the lab LAN (198.18.0.0/24), not the client's .250.
var SampleVIP = netip.MustParsePrefix("198.18.0.100/24")

// SampleVirtualIP is config/samples/haproxy-pair.yaml adapted to a three-node lab, as `make
// demo` and test/e2e apply it with kubectl: the lab's subnet, nodes n1, n2 and n3 with explicit
// priorities (110, 100, 90) among those labelled node-role.kubernetes.io/lb, and the process
// probe that moves the address when HAProxy dies (weight 0: the node goes to Fault while
// HAProxy is not running).
const SampleVirtualIP = `# config/samples/haproxy-pair.yaml, adapted to the lab
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: haproxy
spec:
  vrid: 51
  addresses: ["198.18.0.100/24"]
  advertisementInterval: 100ms
  priority: 100
  nodes:
  - name: n1
    priority: 110
  - name: n2
    priority: 100
  - name: n3
    priority: 90
  nodeSelector:
    matchLabels:
      node-role.kubernetes.io/lb: ""
  probes:
  - name: haproxy
    process: {name: haproxy}
    weight: 0
`
