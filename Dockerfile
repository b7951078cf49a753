# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, ship only the binary on a
# distroless base with CA certificates, running as a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY crates/devidp/Cargo.toml crates/devidp/Cargo.toml
RUN mkdir -p src crates/devidp/src \
 && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
 && echo '' > crates/devidp/src/lib.rs \
 && cargo build --release --locked --bin portcullis || true
COPY . .
RUN touch src/main.rs src/lib.rs crates/devidp/src/lib.rs \
 && cargo build --release --locked --bin portcullis \
 && strip target/release/portcullis

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER nonroot:nonroot
# 4180: the public listener; 9180: the admin listener (/healthz, /readyz, /metrics).
# Set admin.listen = "0.0.0.0:9180" for kubelet probes to reach it.
EXPOSE 4180 9180
ENV PORTCULLIS_CONFIG=/etc/portcullis/portcullis.toml
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run"]
