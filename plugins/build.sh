#!/usr/bin/env bash
# Builds the example plugins (plugins/examples) to target/plugins/*.wasm.
#
# Plugin authors elsewhere use `rustup target add wasm32-unknown-unknown` and a plain
# `cargo build --target wasm32-unknown-unknown --release`. Machines without a rustup
# wasm32 target (this project's CI among them) build with Debian's Rust, which can
# build the standard library for wasm32 from source; this script installs it if needed.
# Plugins that need no WASI are built for wasm32-unknown-unknown: the output is a core
# module carrying its WIT world, which caskade turns into a component when it loads it.
# Origin fetchers use wasi:http, so they are built for wasm32-wasip2, whose output is
# already a component.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/plugins
mkdir -p "$OUT"

# One build per plugin: each enables a different plugin kind of the SDK, and cargo
# would unify the features of plugins built together.
CORE_PLUGINS="ttl-cap prefix-priority misbehave misbehave-fetcher"
WASI_PLUGINS="http-fetcher"

have_rustup_target() { rustup target list --installed 2>/dev/null | grep -qx "$1"; }

debian_rust() {
  if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -d /usr/lib/wasm32-wasi ]; then
    echo "== installing Debian's Rust to build std for wasm32"
    sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc
  fi
}

# build TARGET PLUGIN...: with rustup's target if installed, else Debian's Rust
# (building std from source; wasip2 links against Debian's wasi-libc).
build() {
  local target=$1
  shift
  if have_rustup_target "$target"; then
    for p in "$@"; do
      cargo build --release --target "$target" --manifest-path plugins/examples/Cargo.toml -p "$p"
    done
    cp plugins/examples/target/"$target"/release/*.wasm "$OUT/"
    return
  fi
  debian_rust
  local flags=""
  if [ "$target" = wasm32-wasip2 ]; then
    flags="-C link-self-contained=no -L native=/usr/lib/wasm32-wasi"
  fi
  for p in "$@"; do
    env -u RUSTUP_TOOLCHAIN -u CARGO -u RUSTC_WRAPPER \
      RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" \
      CARGO_TARGET_DIR=target/plugins-build \
      /usr/bin/cargo build --release -Zbuild-std=std,panic_abort --target "$target" \
      --manifest-path plugins/examples/Cargo.toml -p "$p"
  done
  cp target/plugins-build/"$target"/release/*.wasm "$OUT/"
}

build wasm32-unknown-unknown $CORE_PLUGINS
build wasm32-wasip2 $WASI_PLUGINS
ls -l "$OUT"/*.wasm
