# The Portcullis image, for machines with a registry:
#   docker build -t portcullis .
# Builds the release binary in rust:1-bookworm, then assembles the image from
# scratch with deploy/rootfs.sh. deploy/build-image.sh builds the same final
# stage without pulling anything (deploy/Dockerfile.local); the test
# tests/containers/dockerfiles.rs keeps the two final stages identical.

# A mirror or a pinned toolchain: --build-arg RUST_IMAGE=registry.example/rust:1.85-bookworm
# (any glibc-based image with ldd and strip: the final stage copies its libraries).
ARG RUST_IMAGE=rust:1-bookworm
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# xsl-transform links libxslt (rust:1-bookworm usually has it; install if not).
RUN (dpkg -s libxslt1-dev >/dev/null 2>&1 \
        || (apt-get update && apt-get install -y --no-install-recommends libxslt1-dev)) \
    && cargo build --release --locked -p portcullis \
    && sh deploy/rootfs.sh target/release/portcullis /rootfs

# ---- final stage (identical in deploy/Dockerfile.local) ----
FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="Portcullis" \
      org.opencontainers.image.description="Self-hosted API gateway (APIM-compatible): gateway, management plane, sample backend" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="scratch"
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/var/lib/portcullis/ /var/lib/portcullis/
ENV PORTCULLIS_DATA=/var/lib/portcullis/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /var/lib/portcullis
# 8080 API (HTTP), 8081 API (HTTPS), 9090 /healthz /readyz /metrics,
# 8090 the management plane (`management` command).
EXPOSE 8080 8081 9090 8090
# Volumes to mount (owned by 65532, so a fresh named volume is writable):
#   /var/lib/portcullis/backup  the gateway's configuration backup, with
#                               PORTCULLIS_BACKUP_DIR=/var/lib/portcullis/backup
#                               and PORTCULLIS_BACKUP_KEY (APIM: /apim/config)
#   /var/lib/portcullis/data    the management plane's database
# No VOLUME line: it would leave an anonymous volume behind every container,
# including the management plane and gateways that keep no backup.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/portcullis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["gateway"]
