// Package envtestassets finds kube-apiserver and etcd for the tests that start them
// (test/envtest, test/chart, internal/cluster and the labs built on it), and holds the rule they
// share: a missing asset skips the test, except under CI (CI set), where it fails.
//
// The assets are in $KUBEBUILDER_ASSETS, else in bin/k8s/<the kubernetes version of
// hack/tools/go.mod>, where `make envtest-assets` (hack/envtest.sh) puts them.
//
//	func TestX(t *testing.T) {
//		dir := envtestassets.Require(t)
//		...
//	}
//
// A TestMain, which has no t, uses [ForTestMain].
package envtestassets
