#!/usr/bin/env bash
# Builds the example plugins (plugins/examples) to target/plugins/*.wasm.
#
# Plugin authors elsewhere use `rustup target add wasm32-unknown-unknown` and a plain
# `cargo build --target wasm32-unknown-unknown --release`. Machines without a rustup
# wasm32 target (this project's CI among them) build with Debian's Rust, which can
# build the standard library for wasm32 from source; this script installs it if needed.
# The output is a core module carrying its WIT world; caskade turns it into a component
# when it loads it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/plugins
TARGET=wasm32-unknown-unknown
mkdir -p "$OUT"

# One build per plugin: each enables a different plugin kind of the SDK, and cargo
# would unify the features of plugins built together.
PLUGINS="ttl-cap prefix-priority misbehave"
if rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  for p in $PLUGINS; do
    cargo build --release --target "$TARGET" --manifest-path plugins/examples/Cargo.toml -p "$p"
  done
else
  if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
    echo "== installing Debian's Rust to build std for $TARGET"
    sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  fi
  for p in $PLUGINS; do
    env -u RUSTUP_TOOLCHAIN -u CARGO -u RUSTC_WRAPPER \
      RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_DIR=target/plugins-build \
      /usr/bin/cargo build --release -Zbuild-std=std,panic_abort --target "$TARGET" \
      --manifest-path plugins/examples/Cargo.toml -p "$p"
  done
fi
for f in target/plugins-build/$TARGET/release/*.wasm plugins/examples/target/$TARGET/release/*.wasm; do
  [ -f "$f" ] && cp "$f" "$OUT/"
done
ls -l "$OUT"/*.wasm
