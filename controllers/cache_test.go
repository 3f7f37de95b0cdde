package controllers

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// fatNode is a Node as a kubelet of a big cluster writes it: what the agent reads (labels,
// addresses) is a small part of it.
func fatNode(name string) *corev1.Node {
	n := &corev1.Node{
		TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, UID: "0b6e4d8c-4f0e-4c55-9d1e-7d1f5d2c9a10", ResourceVersion: "4711", Generation: 3,
			CreationTimestamp: metav1.Now(),
			Labels:            map[string]string{"kubernetes.io/hostname": name, "node-role.kubernetes.io/lb": "", "topology.kubernetes.io/zone": "rack-7"},
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl":       "0",
				"csi.volume.kubernetes.io/nodeid":    `{"ebs.csi.aws.com":"i-0123456789abcdef0"}`,
				"kubeadm.alpha.kubernetes.io/socket": "unix:///run/containerd/containerd.sock",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate,
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:images":{}}}`)}}},
		},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.7.0/24", ProviderID: "aws:///eu-west-1a/i-0123456789abcdef0",
			Taints: []corev1.Taint{{Key: "node-role.kubernetes.io/lb", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"},
				{Type: corev1.NodeExternalIP, Address: "198.19.0.11"}, {Type: corev1.NodeHostName, Address: name}},
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("63"), corev1.ResourceMemory: resource.MustParse("250Gi")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "kubelet is posting ready status"}},
			NodeInfo: corev1.NodeSystemInfo{MachineID: "ec2a", KernelVersion: "6.12.0", OSImage: "Debian GNU/Linux 13",
				ContainerRuntimeVersion: "containerd://2.1.0", KubeletVersion: "v1.35.0"},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		},
	}
	for i := range 40 {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{SizeBytes: 1 << 26, Names: []string{
			fmt.Sprintf("registry.example.com/team/image-%d@sha256:%064d", i, i), fmt.Sprintf("registry.example.com/team/image-%d:v1.%d", i, i)}})
	}
	return n
}

// The cache keeps of a Node exactly its name, UID, resourceVersion, labels and its InternalIP
// and ExternalIP addresses.
func TestTrimNode(t *testing.T) {
	fat := fatNode("lb1")
	fat.Status.Addresses = append(fat.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "lb1.example.internal"},
		corev1.NodeAddress{Type: corev1.NodeExternalDNS, Address: "lb1.example.com"}, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "2001:db8::11"})
	got, err := TrimNode(fat.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{
		TypeMeta: fat.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: "lb1", UID: fat.UID, ResourceVersion: "4711",
			Labels: map[string]string{"kubernetes.io/hostname": "lb1", "node-role.kubernetes.io/lb": "", "topology.kubernetes.io/zone": "rack-7"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"},
			{Type: corev1.NodeExternalIP, Address: "198.19.0.11"}, {Type: corev1.NodeInternalIP, Address: "2001:db8::11"}}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("TrimNode (-want +got):\n%s", d)
	}
	again, _ := TrimNode(got)
	if d := cmp.Diff(got, again); d != "" {
		t.Errorf("TrimNode is not idempotent (-once +twice):\n%s", d)
	}
	// What the controllers read of a Node is still there: its addresses and its selection.
	if a := nodeAddrs(got.(*corev1.Node)); fmt.Sprint(a) != "[198.18.0.11 2001:db8::11 198.19.0.11]" {
		t.Errorf("nodeAddrs of the trimmed Node = %v", a)
	}
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "v"}, Spec: v1alpha1.VirtualIPSpec{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}}}}
	if p := (&VirtualIPReconciler{NodeName: "lb2"}).peers(vip, []corev1.Node{*got.(*corev1.Node)}); len(p) != 1 || len(p[0].Addrs) != 3 {
		t.Errorf("peers from the trimmed Node = %+v, want lb1 with its three addresses", p)
	}
	// Anything else passes unchanged.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	if out, err := TrimNode(sec); err != nil || out != any(sec) {
		t.Errorf("TrimNode(Secret) = %v, %v; want it unchanged", out, err)
	}
}

// A Node that TrimNode made is returned as it is, without an allocation: the Nodes of the first
// list (decodeTrimmedNodes) and the cache's transform. Anything more than TrimNode keeps, or
// strings that are not the shared copies, and it is trimmed anew.
func TestTrimNodeTakesTrimmedAsIs(t *testing.T) {
	once, _ := TrimNode(fatNode("lb1"))
	trimmed := once.(*corev1.Node)
	if again, _ := TrimNode(trimmed); again != any(trimmed) {
		t.Error("TrimNode copied a trimmed Node")
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = TrimNode(trimmed) }); a != 0 {
		t.Errorf("TrimNode of a trimmed Node: %v allocations, want 0", a)
	}
	bare := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}
	if again, _ := TrimNode(bare); again != any(bare) {
		t.Error("TrimNode copied a Node that has nothing to trim")
	}
	for name, change := range map[string]func(n *corev1.Node){
		"an annotation":   func(n *corev1.Node) { n.Annotations = map[string]string{"a": "b"} },
		"a creation time": func(n *corev1.Node) { n.CreationTimestamp = metav1.Now() },
		"a spec field":    func(n *corev1.Node) { n.Spec.Unschedulable = true },
		"a status field":  func(n *corev1.Node) { n.Status.Phase = corev1.NodeRunning },
		"a hostname address": func(n *corev1.Node) {
			n.Status.Addresses = append(n.Status.Addresses[:len(n.Status.Addresses):len(n.Status.Addresses)], corev1.NodeAddress{Type: corev1.NodeHostName, Address: "lb1"})
		},
		"addresses with room": func(n *corev1.Node) {
			n.Status.Addresses = append(make([]corev1.NodeAddress, 0, 8), n.Status.Addresses...)
		},
		"a label key copied": func(n *corev1.Node) {
			n.Labels = map[string]string{string([]byte("topology.kubernetes.io/zone")): "rack-7"}
		},
		"a label value copied": func(n *corev1.Node) {
			n.Labels = map[string]string{"topology.kubernetes.io/zone": string([]byte("rack-7"))}
		},
		"the hostname label a copy of the name": func(n *corev1.Node) {
			n.Labels = map[string]string{"kubernetes.io/hostname": string([]byte(n.Name))}
		},
	} {
		n := trimmed.DeepCopy()
		n.Labels = trimmed.Labels // the shared copies, as TrimNode left them
		change(n)
		out, _ := TrimNode(n)
		if out == any(n) {
			t.Errorf("with %s: the Node returned as it is", name)
			continue
		}
		if again, _ := TrimNode(out); again != out {
			t.Errorf("with %s: the Node TrimNode made is not taken as it is", name)
		}
	}
}

// Cached VirtualIPs lose their managedFields and keep everything else; Secrets are never cached.
func TestCacheOptions(t *testing.T) {
	o := CacheOptions()
	vip := &v1alpha1.VirtualIP{
		ObjectMeta: metav1.ObjectMeta{Name: "v", ResourceVersion: "7", Annotations: map[string]string{"a": "b"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}},
		Spec:   v1alpha1.VirtualIPSpec{VRID: 51, Addresses: []string{"198.18.0.100/24"}, Nodes: []v1alpha1.NodeOverride{{Name: "lb1"}}},
		Status: v1alpha1.VirtualIPStatus{Master: "lb1"},
	}
	want := vip.DeepCopy()
	want.ManagedFields = nil
	got, err := o.DefaultTransform(vip)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("cached VirtualIP (-want +got):\n%s", d)
	}
	var nodeTransform bool
	for obj, by := range o.ByObject {
		if _, ok := obj.(*corev1.Node); ok && by.Transform != nil {
			out, _ := by.Transform(fatNode("lb1"))
			nodeTransform = len(out.(*corev1.Node).Status.Images) == 0
		}
	}
	if !nodeTransform {
		t.Error("the cache does not trim Nodes")
	}
	c := ClientOptions()
	if c.Cache == nil || len(c.Cache.DisableFor) != 1 {
		t.Fatalf("client cache options %+v: want Secrets uncached", c.Cache)
	}
	if _, ok := c.Cache.DisableFor[0].(*corev1.Secret); !ok {
		t.Errorf("DisableFor = %T, want *corev1.Secret", c.Cache.DisableFor[0])
	}
}
