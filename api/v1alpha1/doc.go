// Package v1alpha1 holds the kubevrrp.io/v1alpha1 API: the cluster-scoped VirtualIP resource.
//
// +kubebuilder:object:generate=true
// +groupName=kubevrrp.io
package v1alpha1
