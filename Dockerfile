# Static kube-vrrp image, non-root with exactly NET_ADMIN and NET_RAW.
# Build: docker build --build-arg VERSION=... --build-arg COMMIT=... -t REGISTRY/kube-vrrp:TAG .
# (the chart's image.repository/tag, config/default's images). Without Docker, `make image`
# (hack/image) builds the same image as an archive; its test holds it to this file: change both.
FROM golang:1.26 AS build
# setcap (libcap2-bin) gives the binary its file capabilities below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/kube-vrrp ./cmd/kube-vrrp
# A non-root process gets no capability from the pod's capabilities.add alone: Kubernetes sets
# no ambient capabilities, and exec clears the permitted and effective sets of a non-root
# user. File capabilities with the effective bit grant NET_ADMIN and NET_RAW at exec instead,
# limited by the bounding set (drop ALL + add NET_ADMIN, NET_RAW in the DaemonSet). They also
# work with allowPrivilegeEscalation: false (no_new_privs): containerd and CRI-O put the added
# capabilities in the permitted set before the exec, so the exec gains nothing new and the
# kernel keeps them. (Docker before 24.0.6 / cri-dockerd cleared that set for non-root users,
# moby#45491: there the agent would start without them.) If the bounding set lacks one of them
# the exec fails with EPERM instead of starting a powerless agent.
# internal/filecaps checks these kernel rules as the runtime applies them.
RUN setcap cap_net_admin,cap_net_raw=ep /out/kube-vrrp \
 && getcap /out/kube-vrrp | grep -q 'cap_net_admin,cap_net_raw=ep'

# distroless/static: no shell, no package manager; the agent needs none. The layer keeps the
# security.capability extended attribute set above.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.source="https://github.com/kube-vrrp/kube-vrrp" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/kube-vrrp /kube-vrrp
USER 65532:65532
ENTRYPOINT ["/kube-vrrp"]
CMD ["agent"]
