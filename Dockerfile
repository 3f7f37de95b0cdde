# Static kube-vrrp image. Build: docker build -t kube-vrrp .
FROM golang:1.26 AS build
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

# distroless/static: no shell, no package manager; the agent needs none.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kube-vrrp /kube-vrrp
# Non-root; the DaemonSet grants exactly NET_ADMIN and NET_RAW (ambient for a non-root user
# needs them in the bounding set, which securityContext.capabilities.add provides).
USER 65532:65532
ENTRYPOINT ["/kube-vrrp"]
CMD ["agent"]
