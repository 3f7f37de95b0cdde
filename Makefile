# kube-vrrp — see README.md. Every target works as root on a fresh Debian machine.

SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
CONTROLLER_GEN := $(BIN)/controller-gen
CONTROLLER_TOOLS_VERSION := v0.20.0
# Go test timeout of each package; the longest, test/agentlab, takes about 15 minutes (its
# TestChaosK8s keeps the API server down for KUBE_VRRP_CHAOS_API_DOWN, default 10m).
TEST_TIMEOUT ?= 25m

.PHONY: all demo test test-unit test-envtest envtest-assets k8s-binaries deps build image verify generate manifests bench fmt vet clean

all: build

## demo: a real cluster in a lab of node namespaces (etcd, kube-apiserver, controllers; containerd
## and a kubelet per node), the image from make image, helm install as the README says, then
## HAProxy killed on the MASTER and the client's measured outage, helm uninstall (see README).
## KEEP=1 keeps the cluster up afterwards (kubectl and helm command lines printed) until Ctrl-C
## (built, then run: `go run` would exit 1 after any Ctrl-C, even the one that ends KEEP=1)
demo: deps envtest-assets
	$(GO) build -o $(BIN)/demo ./hack/demo
	$(BIN)/demo $(if $(KEEP),--keep)

## test: install what the tests need, then run every test (unit, fuzz seeds, envtest, privileged netns, interop)
test: deps envtest-assets
	$(GO) vet ./...
	@mkdir -p $(BIN); rm -f $(BIN)/chaos-table.txt $(BIN)/chaos-table.txt.k8s
	KUBE_VRRP_CHAOS_TABLE=$(BIN)/chaos-table.txt $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./... ; \
		status=$$?; cat $(BIN)/chaos-table.txt $(BIN)/chaos-table.txt.k8s 2>/dev/null; exit $$status
	$(GO) test -count=1 -race ./pkg/vrrp/... ./pkg/agent/...

## test-unit: the tests that need neither root nor extra packages
test-unit:
	$(GO) test -count=1 -short ./...

## envtest-assets: kube-apiserver (built once from k8s.io/kubernetes by hack/tools, ~8 min on 2 cores)
## and etcd (Debian's etcd-server) in bin/k8s/<version>/, the KUBEBUILDER_ASSETS of test/envtest,
## and the k8s-binaries beside them (the real cluster of test/e2e and make demo)
envtest-assets: deps
	bash hack/envtest.sh -q
	bash hack/k8s-binaries.sh -q

## k8s-binaries: kubelet, kube-controller-manager, kube-scheduler and kubectl (built once from
## k8s.io/kubernetes by hack/tools, ~3 min on 2 cores with kube-apiserver's build cache) and helm (from
## helm.sh/helm/v3) in bin/k8s/<version>/, for the lab's real cluster (internal/cluster: test/e2e,
## make demo); make envtest-assets builds them too
k8s-binaries:
	bash hack/k8s-binaries.sh -q

## test-envtest: the CRD tests against a real kube-apiserver and etcd
test-envtest: envtest-assets
	KUBEBUILDER_ASSETS="$$(bash hack/envtest.sh)" $(GO) test -count=1 ./test/envtest/

## deps: Debian packages and Go modules the build and tests need (idempotent)
deps:
	bash hack/install-deps.sh
	$(GO) mod download

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/kube-vrrp ./cmd/kube-vrrp

# The image's name, platforms (the first is the one `docker load` takes), archive, and the time
# of its files (the commit's: the same commit gives the same digests).
IMAGE ?= ghcr.io/kube-vrrp/kube-vrrp:$(VERSION)
GOHOSTARCH = $(shell $(GO) env GOHOSTARCH)
IMAGE_PLATFORMS ?= linux/$(GOHOSTARCH) $(filter-out linux/$(GOHOSTARCH),linux/amd64)
IMAGE_ARCHIVE ?= $(BIN)/kube-vrrp-image.tar
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

## image: the Dockerfile's image without a container engine (hack/image): a static binary per
## platform (CGO_ENABLED=0, -trimpath, LDFLAGS), then $(IMAGE_ARCHIVE), an OCI image layout with
## a Docker manifest.json: ctr -n k8s.io images import, docker load, skopeo oci-archive:
image:
	@set -e; bins=; for p in $(IMAGE_PLATFORMS); do \
	  os=$${p%%/*}; arch=$${p#*/}; out=$(BIN)/image/$$os-$$arch/kube-vrrp; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/kube-vrrp; \
	  bins="$$bins --binary $$p=$$out"; \
	done; \
	$(GO) run ./hack/image --ref '$(IMAGE)' --version '$(VERSION)' --commit '$(COMMIT)' \
	  --source-date-epoch '$(SOURCE_DATE_EPOCH)' $$bins -o '$(IMAGE_ARCHIVE)'

$(CONTROLLER_GEN):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

## generate: deepcopy code and CRD manifests from api/, RBAC from the controllers' markers: the
## agent's role from ./controllers alone, the Service controller's (kube-vrrp controller) from
## ./controllers/loadbalancer alone, so that neither gains the other's rights
generate: $(CONTROLLER_GEN)
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=kube-vrrp-agent paths=./controllers output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=kube-vrrp-lb-controller,fileName=lb_controller_role.yaml paths=./controllers/loadbalancer output:rbac:artifacts:config=config/rbac
	bash hack/chart-sync.sh

## verify: generated files (and the chart's copies of them) up to date, helm lint, formatting, vet, dependency rule,
## and the command's build and vet for macOS and Windows (hack/cross-check.sh)
verify: generate
	@git diff --exit-code -- api config || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- charts)" || { git status --short -- charts; echo "charts/ was stale: make generate copied the generated CRD and RBAC into it; commit charts/"; exit 1; }
	$(GO) test -count=1 -short ./test/chart/
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	bash hack/check-deps.sh
	bash hack/cross-check.sh

.PHONY: chart test-chart

## chart: copy the generated CRD and RBAC into charts/kube-vrrp (make generate does it too);
## make verify, make test and hack/chart-sync.sh --check fail while they differ
chart:
	bash hack/chart-sync.sh

## test-chart: helm lint and template of charts/kube-vrrp (default and non-default values), its
## least privilege, CRD and RBAC against the generated ones, config/ against the chart, and a
## server-side dry run of every rendered object on a real kube-apiserver (also run by make test)
test-chart: envtest-assets
	$(GO) test -count=1 ./test/chart/... ./internal/filecaps/

## bench: failover and footprint benchmarks, side by side with keepalived, of the binary
## `make build` makes, and the API server's side at scale (a real kube-apiserver: writes per
## failover with N agents and V VirtualIPs, one agent's memory with 5000 Nodes); Services of
## type LoadBalancer beside MetalLB's layer 2 mode (BenchmarkLoadBalancer: MetalLB built from its
## Go module by hack/metallb.sh into $(BIN)/metallb, once, a few minutes); tables (.txt)
## and distribution plots (.png) in $(BIN)/bench. BENCH selects benchmarks (a -bench regexp),
## BENCHFLAGS adds flags (e.g. -apiscale.sizes 10x1,500x1)
BENCH ?= .
bench: deps build envtest-assets
	KUBE_VRRP_METALLB="$$(bash hack/metallb.sh)" KUBE_VRRP_BIN=$(BIN)/kube-vrrp $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 240m ./test/bench/ -args -out=$(BIN)/bench $(BENCHFLAGS)

clean:
	rm -rf $(BIN)
