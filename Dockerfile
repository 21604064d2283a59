# The connector as a small non-root image: `thena-sf serve` by default.
#   docker build --build-arg THENA_SF_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t thena-sf .
#   docker run -p 8080:8080 -v thena-sf-data:/data thena-sf
# Ports: 8080 webhooks, admin page and /metrics; 9090 for /metrics alone when
# `metrics_listen = "0.0.0.0:9090"` is set. Data (SQLite store, key file):
# the /data volume. See docs/operations.md ("The container image").

FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
# The build has no .git: the commit `thena-sf --version` names comes from here.
ARG THENA_SF_GIT_COMMIT=unknown
ENV THENA_SF_GIT_COMMIT=${THENA_SF_GIT_COMMIT} \
    CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
COPY . .
RUN cargo build --release --locked -p thena-sf --bin thena-sf \
 && mkdir -p /out/data \
 && cp target/release/thena-sf /out/thena-sf

# distroless/cc: glibc, libgcc, CA certificates, no shell; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/thena-sf /usr/local/bin/thena-sf
COPY --from=build --chown=65532:65532 /out/data /data
ENV THENA_SF_DATA_DIR=/data \
    THENA_SF_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080 9090
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/thena-sf"]
CMD ["serve"]
