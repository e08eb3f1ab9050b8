# caskade's container image: built from source in a Rust stage, run from a slim Debian
# stage as a non-root user (uid 65532, as the Helm chart expects) with the binary and
# the example plugins (in /usr/share/caskade/plugins). Your own plugins are mounted at
# /plugins (see helm/caskade, values "plugins").
#
#   docker build -t caskade/caskade:0.1.0 .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY engine engine
COPY sidecar sidecar
COPY plugins plugins
COPY wit wit
# The end-to-end tests are declared by the sidecar's manifest; the build needs the files.
COPY tests tests
RUN cargo build --release --locked -p caskade \
 && strip target/release/caskade
RUN rustup target add wasm32-unknown-unknown wasm32-wasip2 && bash plugins/build.sh

FROM debian:bookworm-slim
RUN groupadd --system --gid 65532 caskade \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin caskade \
 && mkdir -p /data /plugins \
 && chown 65532:65532 /data
COPY --from=build /src/target/release/caskade /usr/local/bin/caskade
COPY --from=build /src/target/plugins/ /usr/share/caskade/plugins/
USER 65532:65532
EXPOSE 6379 9736
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/caskade"]
CMD ["--bind", "0.0.0.0", "--admin-bind", "0.0.0.0", "--dir", "/data"]
