# syntax=docker/dockerfile:1
#
# portcullis container image: build with the Rust toolchain, ship only the
# binary on distroless (glibc, CA certificates, no shell), as a non-root user.
#
#   docker build -t portcullis:0.1.0 .
#   docker run --rm -p 4180:4180 \
#     -v "$PWD/portcullis.toml:/etc/portcullis/portcullis.toml:ro" \
#     -v "$PWD/secrets:/run/secrets/portcullis:ro" portcullis:0.1.0
#
# Health: the image has no shell and no curl, so a Docker HEALTHCHECK command
# cannot run in it. Probe the admin listener from outside instead: Kubernetes
# httpGet probes on /healthz (liveness) and /readyz (readiness) at port 9180
# (deploy/kubernetes/), or your load balancer's HTTP health check. The admin
# listener must then listen beyond loopback: admin.listen = "0.0.0.0:9180".

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit caches: the crates.io registry and the target directory survive
# between builds, so a source edit recompiles portcullis, not its dependencies.
# The binary is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin portcullis \
 && mkdir -p /out \
 && cp target/release/portcullis /out/portcullis \
 && strip /out/portcullis \
 && /out/portcullis version

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="Authenticating reverse proxy: OpenID Connect login, server-side sessions, per-route role rules, verified identity headers" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/portcullis /usr/local/bin/portcullis
# Numeric, so Kubernetes runAsNonRoot can verify it: 65532 is distroless's "nonroot".
USER 65532:65532
# 4180: the public listener. 9180: the admin listener (/healthz, /readyz, /metrics).
EXPOSE 4180 9180
ENV PORTCULLIS_CONFIG=/etc/portcullis/portcullis.toml
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run"]
