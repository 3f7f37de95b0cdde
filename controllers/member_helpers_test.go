package controllers

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// fakeClient is a fake client builder with the scheme and the member indexes of the agent's
// cache (memberIndexes), so that membersOf and memberRequests read it as they read the cache.
func fakeClient(t *testing.T) *fake.ClientBuilder {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(testScheme(t))
	for field, extract := range memberIndexes {
		b = b.WithIndex(&v1alpha1.VirtualIPMember{}, field, extract)
	}
	return b
}

// testMember is the member of node in the VirtualIP vip with entry as its status.
func testMember(vip *v1alpha1.VirtualIP, entry v1alpha1.NodeStatus) *v1alpha1.VirtualIPMember {
	m := &v1alpha1.VirtualIPMember{Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: vip.Name, Node: entry.Name}, Status: entry}
	m.Name = v1alpha1.MemberName(vip.Name, entry.Name)
	m.Status.Name = ""
	return m
}

// testMembers are the members of vip with entries as their status.
func testMembers(vip *v1alpha1.VirtualIP, entries ...v1alpha1.NodeStatus) []client.Object {
	out := make([]client.Object, 0, len(entries))
	for _, e := range entries {
		out = append(out, testMember(vip, e))
	}
	return out
}
