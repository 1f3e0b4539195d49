# The host application of examples/k8s/sharing-app.yaml (examples/sharing_app) in a small
# image that runs as a non-root user, with no writable file system needed: its database is
# PostgreSQL, `DATABASE_URL` from a Secret (the manifest's `sharing-app-db`), whose tables it
# creates or brings up to date on start (the migrator holds PostgreSQL's advisory lock, so
# replicas starting together migrate once).
#
#   docker build -f examples/k8s/sharing-app.Dockerfile -t registry.example.com/sharing-app:1.0.0 .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://sharing:…@db/sharing \
#       registry.example.com/sharing-app:1.0.0 0.0.0.0:8080 http://gatehouse:8180

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY entities entities
COPY src src
COPY benches benches
COPY examples examples
RUN CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --release --locked --example sharing_app

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --no-create-home nonroot
COPY --from=build /src/target/release/examples/sharing_app /usr/local/bin/sharing-app
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sharing-app"]
CMD ["0.0.0.0:8080", "http://127.0.0.1:8180"]
