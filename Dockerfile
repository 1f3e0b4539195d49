# gatehouse in a small image that runs as a non-root user, with its reload gates on.
#
#   docker build -t gatehouse .
#   openssl rand -hex 32 > token                      # the admin routes' token
#   docker run --rm -p 8180:8180 -v "$PWD/token:/etc/gatehouse/admin/token:ro" gatehouse
#   docker run --rm -p 8180:8180 -v "$PWD/token:/etc/gatehouse/admin/token:ro" \
#       -v "$PWD/policies:/etc/gatehouse/policies:ro" gatehouse
#
# It listens on all interfaces, so it needs the admin token (a file, mounted): without one
# `serve` refuses to start rather than leave /v1/reload open to whoever reaches the port
# (`-e GATEHOUSE_OPEN_ADMIN=1` says they may be open).
#
# Stage 1 builds the binary with the project's locked dependencies. Stage 2 is Debian slim
# with Debian's cvc5, the SMT solver the reload gate `--require-properties` proves the safety
# properties with: a changed policy set goes live only when every property of
# /etc/gatehouse/properties is proven and every case of /etc/gatehouse/suites passes (mount
# your own over them with your policies). User `nonroot` (65532), no shell needed.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY entities entities
COPY src src
COPY benches benches
COPY examples examples
# No debug info in the image: a stripped binary is a fraction of the size.
RUN CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --release --locked --bin gatehouse

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cvc5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --no-create-home nonroot
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
COPY policies /etc/gatehouse/policies
COPY schemas /etc/gatehouse/schemas
COPY tests/properties /etc/gatehouse/properties
COPY tests/policies /etc/gatehouse/suites
USER nonroot:nonroot
ENV GATEHOUSE_LISTEN=0.0.0.0:8180 \
    GATEHOUSE_POLICIES=/etc/gatehouse/policies \
    GATEHOUSE_SCHEMA=/etc/gatehouse/schemas/project_sharing.cedarschema \
    GATEHOUSE_REQUIRE_PROPERTIES=/etc/gatehouse/properties \
    GATEHOUSE_REQUIRE_SUITES=/etc/gatehouse/suites \
    GATEHOUSE_ADMIN_TOKEN_FILE=/etc/gatehouse/admin/token \
    CVC5=/usr/bin/cvc5
EXPOSE 8180
ENTRYPOINT ["/usr/local/bin/gatehouse", "serve"]
