# gatehouse image: a static Go binary on distroless, running as non-root.
#
#   docker build -t gatehouse .
#   docker run --rm -p 8080:8080 -v gatehouse-data:/data \
#     -e GATEHOUSE_ISSUER=http://localhost:8080 \
#     -e GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD='change me now' gatehouse
#
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1
# before): the build step caches Go's build cache with RUN --mount.
#
# No HEALTHCHECK: the image has no shell or curl. Probes belong to the
# orchestrator: GET /healthz (alive) and GET /readyz (store reachable); see
# deploy/kubernetes/.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so editing the source does not download them again.
COPY go.mod go.sum ./
RUN go mod download
# .git comes along (see .dockerignore): the toolchain stamps the version
# and revision that `gatehouse version` prints.
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/gatehouse ./cmd/server
# The SQLite volume's mount point: distroless has no mkdir, and the
# non-root user could not create it under / anyway.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /gatehouse
# Owned by nonroot (65532); a new named volume mounted here inherits it.
COPY --from=build --chown=65532:65532 /out/data /data
ENV GATEHOUSE_ADDR=0.0.0.0:8080 \
    GATEHOUSE_DATABASE_URL=sqlite:///data/gatehouse.db
VOLUME /data
EXPOSE 8080
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/gatehouse"]
