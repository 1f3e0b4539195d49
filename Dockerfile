# gatehouse in a small image that runs as a non-root user.
#
#   docker build -t gatehouse .
#   docker run --rm -p 8180:8180 gatehouse            # serves the bundled policies
#   docker run --rm -p 8180:8180 -v "$PWD/policies:/etc/gatehouse/policies:ro" gatehouse
#
# Stage 1 builds the binary with the project's locked dependencies; stage 2 is distroless
# (glibc, CA certificates, no shell, no package manager), user `nonroot` (65532).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY examples examples
# No debug info in the image: a stripped binary is a fraction of the size.
RUN CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --release --locked --bin gatehouse

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
COPY policies /etc/gatehouse/policies
COPY schemas /etc/gatehouse/schemas
USER nonroot:nonroot
ENV GATEHOUSE_LISTEN=0.0.0.0:8180 \
    GATEHOUSE_POLICIES=/etc/gatehouse/policies \
    GATEHOUSE_SCHEMA=/etc/gatehouse/schemas/project_sharing.cedarschema
EXPOSE 8180
ENTRYPOINT ["/usr/local/bin/gatehouse", "serve"]
