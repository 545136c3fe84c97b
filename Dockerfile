# syntax=docker/dockerfile:1
# The Storefleet control plane image: the `storefleet` binary, a pinned helm and the store chart, on
# distroless (no shell, no package manager), as uid 65532, with a read-only root filesystem in mind
# (helm's homes and temporary files go to /tmp, an emptyDir in charts/storefleet).
#
#   docker build -t storefleet:dev .
#
# No Docker engine exists on the project's build machines; tests/platform_chart.rs checks what can be
# checked without one (every COPY source exists, the pinned helm is the one the tests use, the binary
# starts with the paths below).

ARG RUST_VERSION=1.89

# --- build: the release binary ------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole workspace: cargo resolves every member (crates/*, tests) before building one.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p storefleet \
 && install -D -m 0755 target/release/storefleet /out/storefleet

# --- helm: the pinned official binary, checked by sha256 -------------------------------------------
FROM debian:bookworm-slim AS helm
ARG TARGETARCH=amd64
ARG HELM_VERSION=4.1.4
# sha256 of the helm binary itself (not of the tarball): the same binary, and the same pin, as the
# test cluster's (scripts/testcluster, which takes it from an npm package), so the image runs the helm
# the tests ran. Helm 4.1.4: GitCommit 05fa37973dc9e42b76e1d2883494c87174b6074f, go1.25.9.
ARG HELM_SHA256_amd64=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
# Not pinned yet: build for arm64 with --build-arg HELM_SHA256_arm64=<sha256 of linux-arm64/helm>.
ARG HELM_SHA256_arm64=
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) sum="$HELM_SHA256_amd64" ;; \
      arm64) sum="$HELM_SHA256_arm64" ;; \
      *) sum="" ;; \
    esac; \
    [ -n "$sum" ] || { echo "no helm sha256 pinned for $TARGETARCH: pass --build-arg HELM_SHA256_$TARGETARCH=..." >&2; exit 1; }; \
    curl -fsSL "https://get.helm.sh/helm-v${HELM_VERSION}-linux-${TARGETARCH}.tar.gz" -o /tmp/helm.tgz; \
    tar -xzf /tmp/helm.tgz -C /tmp "linux-${TARGETARCH}/helm"; \
    echo "$sum  /tmp/linux-${TARGETARCH}/helm" | sha256sum -c -; \
    install -D -m 0755 "/tmp/linux-${TARGETARCH}/helm" /out/helm; \
    install -d /out/data

# --- the image ----------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/storefleet /usr/local/bin/storefleet
COPY --from=helm /out/helm /usr/local/bin/helm
COPY charts/store /opt/storefleet/charts/store
# Where the SQLite file lives (a volume in the chart); owned by the runtime user for a plain `docker run`.
COPY --from=helm --chown=65532:65532 /out/data /data
ENV STOREFLEET_LISTEN=0.0.0.0:8080 \
    STOREFLEET_CHART=/opt/storefleet/charts/store \
    STOREFLEET_HELM=/usr/local/bin/helm \
    STOREFLEET_DATABASE_URL=sqlite:///data/storefleet.db \
    HOME=/tmp \
    HELM_CACHE_HOME=/tmp/helm/cache \
    HELM_CONFIG_HOME=/tmp/helm/config \
    HELM_DATA_HOME=/tmp/helm/data
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/storefleet"]
CMD ["serve"]
