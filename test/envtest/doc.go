// Package envtest checks the VirtualIP CRD against a real kube-apiserver and etcd
// (sigs.k8s.io/controller-runtime/pkg/envtest): every invalid object is rejected by the API
// server with a message that says what to change, the samples are accepted, the printer
// columns render, and the CRD agrees with desired.Validate.
//
// The assets come from KUBEBUILDER_ASSETS or else bin/k8s/<version>/, where `make
// envtest-assets` (hack/envtest.sh) builds kube-apiserver and links Debian's etcd. Without
// them the tests skip, unless CI is set: then they fail.
package envtest
