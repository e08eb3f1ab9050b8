#!/usr/bin/env bash
# Builds the example plugins (plugins/examples) to target/plugins/*.wasm.
#   bash plugins/build.sh                     the examples
#   bash plugins/build.sh --crate DIR TARGET  one plugin crate of its own (a scaffold)
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

# cargo_build TARGET MANIFEST [PACKAGE]: one build, with rustup's target if installed,
# else Debian's Rust (building std from source; wasip2 links against Debian's
# wasi-libc). Every build shares one target directory, so std is built once. Prints the
# directory the .wasm files land in.
cargo_build() {
  local target=$1 manifest=$2 pkg=${3:-}
  local select=()
  if [ -n "$pkg" ]; then select=(-p "$pkg"); fi
  if have_rustup_target "$target"; then
    CARGO_TARGET_DIR=target/plugins-build \
      cargo build --release --target "$target" --manifest-path "$manifest" "${select[@]}" >&2
    echo target/plugins-build/"$target"/release
    return
  fi
  debian_rust >&2
  local flags=""
  if [ "$target" = wasm32-wasip2 ]; then
    flags="-C link-self-contained=no -L native=/usr/lib/wasm32-wasi"
  fi
  env -u RUSTUP_TOOLCHAIN -u CARGO -u RUSTC_WRAPPER \
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" \
    CARGO_TARGET_DIR=target/plugins-build \
    /usr/bin/cargo build --release -Zbuild-std=std,panic_abort --target "$target" \
    --manifest-path "$manifest" "${select[@]}" >&2
  echo target/plugins-build/"$target"/release
}

# build TARGET PLUGIN...: example plugins, each built alone (see above).
build() {
  local target=$1 out=""
  shift
  for p in "$@"; do
    out=$(cargo_build "$target" plugins/examples/Cargo.toml "$p")
  done
  cp "$out"/*.wasm "$OUT/"
}

if [ "${1:-}" = "--crate" ]; then
  dir=${2:?usage: build.sh --crate DIR TARGET}
  target=${3:?usage: build.sh --crate DIR TARGET}
  lib=$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1 | tr - _)
  out=$(cargo_build "$target" "$dir/Cargo.toml")
  cp "$out/$lib.wasm" "$OUT/"
  ls -l "$OUT/$lib.wasm"
  exit 0
fi

build wasm32-unknown-unknown $CORE_PLUGINS
build wasm32-wasip2 $WASI_PLUGINS
ls -l "$OUT"/*.wasm
