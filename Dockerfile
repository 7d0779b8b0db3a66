# syntax=docker/dockerfile:1
#
# tollgate's container image: the Rust binary (linked against glibc) on a distroless base.
#
#   docker build -t tollgate .
#
# That is the only build command (CI lints this file with hadolint through
# scripts/lint-deploy; this machine has no container engine to build it). It needs
# BuildKit, the default builder since Docker 23, for the cache mounts below.
#
# Two stages:
#   build    Rust toolchain + the C toolchain aws-lc-sys (the crypto library under
#            rustls and jsonwebtoken) compiles with; runs `cargo build --locked`.
#   runtime  distroless "cc": glibc, libgcc, CA certificates, /etc/passwd with the
#            `nonroot` user (uid 65532), and nothing else: no shell, no package
#            manager. Kubernetes probes /healthz and /readyz, so there is no
#            HEALTHCHECK (it would need a shell or curl in the image).

# Debian 12 (bookworm) on both sides, so the binary links against the glibc it runs
# with. Images are named literally, not through ARGs, so hadolint can check them.
FROM docker.io/library/rust:1.95-slim-bookworm AS build

# aws-lc-sys compiles C (and assembly) with cc; cmake and perl are its fallback
# build path. Versions come from the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ make cmake perl libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# The whole workspace (.dockerignore drops target/, .tooling/, .git/): Cargo must see
# every member's manifest (., dev-idp, testkit) to load the workspace, even though only
# the tollgate binary is built.
COPY . .

# --locked: build exactly the versions in Cargo.lock, fail if it is out of date.
# The cache mounts keep the crate downloads and compiled dependencies between builds
# on one machine; they never end up in the image. target/ is a cache mount, so the
# binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tollgate \
    && install -D -m 0755 target/release/tollgate /out/tollgate

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Envoy external authorization: OAuth2/OIDC access tokens checked per route" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /out/tollgate /tollgate

# The distroless `nonroot` user, by number so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

# 9191: gRPC Check (Envoy's ext_authz cluster). 9090: admin HTTP (/healthz, /readyz).
EXPOSE 9191 9090

# The config is not baked in: mount it at /etc/tollgate/tollgate.yaml (the Kubernetes
# manifests in deploy/kubernetes do that from a ConfigMap). It must listen on 0.0.0.0,
# not on the 127.0.0.1 default, to be reachable from outside the container.
ENTRYPOINT ["/tollgate"]
CMD ["serve", "--config", "/etc/tollgate/tollgate.yaml"]
