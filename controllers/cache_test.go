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

// The cache keeps of a Node exactly its name, UID, resourceVersion, labels and addresses.
func TestTrimNode(t *testing.T) {
	fat := fatNode("lb1")
	got, err := TrimNode(fat.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{
		TypeMeta: fat.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: "lb1", UID: fat.UID, ResourceVersion: "4711",
			Labels: map[string]string{"kubernetes.io/hostname": "lb1", "node-role.kubernetes.io/lb": "", "topology.kubernetes.io/zone": "rack-7"}},
		Status: corev1.NodeStatus{Addresses: fat.Status.Addresses},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("TrimNode (-want +got):\n%s", d)
	}
	again, _ := TrimNode(got)
	if d := cmp.Diff(got, again); d != "" {
		t.Errorf("TrimNode is not idempotent (-once +twice):\n%s", d)
	}
	// What the controllers read of a Node is still there: its addresses and its selection.
	if a := nodeAddrs(got.(*corev1.Node)); fmt.Sprint(a) != "[198.18.0.11 198.19.0.11]" {
		t.Errorf("nodeAddrs of the trimmed Node = %v", a)
	}
	vip := &v1alpha1.VirtualIP{ObjectMeta: metav1.ObjectMeta{Name: "v"}, Spec: v1alpha1.VirtualIPSpec{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/lb": ""}}}}
	if p := (&VirtualIPReconciler{NodeName: "lb2"}).peers(vip, []corev1.Node{*got.(*corev1.Node)}); len(p) != 1 || len(p[0].Addrs) != 2 {
		t.Errorf("peers from the trimmed Node = %+v, want lb1 with its two addresses", p)
	}
	// Anything else passes unchanged.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	if out, err := TrimNode(sec); err != nil || out != any(sec) {
		t.Errorf("TrimNode(Secret) = %v, %v; want it unchanged", out, err)
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
