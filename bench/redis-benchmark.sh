#!/usr/bin/env bash
# caskade against real redis-server, side by side on this machine, with redis-benchmark.
# Prints requests/s for both and caskade's ratio to Redis for each workload.
#
#   bash bench/redis-benchmark.sh            # full: 1,000,000 requests per test
#   N=200000 bash bench/redis-benchmark.sh   # quicker
#   CASKADE_BIN=/path/to/caskade bash bench/redis-benchmark.sh   # another build (no cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
R=${R:-1000000}
C=${C:-50}
REDIS_PORT=${REDIS_PORT:-16379}
CASKADE_PORT=${CASKADE_PORT:-16380}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools
fi
if [ -z "${CASKADE_BIN:-}" ]; then
  cargo build --release -p caskade --locked -q
  CASKADE_BIN=./target/release/caskade
fi

work=$(mktemp -d)
cleanup() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  [ -n "${CASKADE_PID:-}" ] && kill "$CASKADE_PID" 2>/dev/null && wait "$CASKADE_PID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
  --dir "$work" --logfile "$work/redis.log" >/dev/null
"$CASKADE_BIN" --port "$CASKADE_PORT" --admin-port 0 --dir "$work/caskade" \
  --fsync everysec --log warn >"$work/caskade.out" 2>&1 &
CASKADE_PID=$!
for _ in $(seq 100); do
  redis-cli -p "$CASKADE_PORT" ping >/dev/null 2>&1 && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

rps() { # port, extra args...; prints "SET GET" requests/s
  local port=$1; shift
  redis-cli -p "$port" flushall >/dev/null
  redis-benchmark -p "$port" -t set,get -n "$N" -r "$R" -c "$C" --csv "$@" 2>/dev/null |
    awk -F'"' '/^"SET"/{s=$4} /^"GET"/{g=$4} END{print s, g}'
}

printf '\nredis-benchmark -n %s -r %s -c %s (caskade fsync=everysec; redis without persistence)\n\n' "$N" "$R" "$C"
printf '| workload        | op  | redis req/s | caskade req/s | caskade/redis |\n'
printf '|-----------------|-----|------------:|--------------:|--------------:|\n'
for w in "-P 16 -d 100" "-P 1 -d 100" "-P 16 -d 4096"; do
  # shellcheck disable=SC2086
  read -r rs rg < <(rps "$REDIS_PORT" $w)
  # shellcheck disable=SC2086
  read -r cs cg < <(rps "$CASKADE_PORT" $w)
  awk -v w="$w" -v rs="$rs" -v rg="$rg" -v cs="$cs" -v cg="$cg" 'BEGIN {
    printf "| %-15s | SET | %11.0f | %13.0f | %12.2fx |\n", w, rs, cs, cs/rs;
    printf "| %-15s | GET | %11.0f | %13.0f | %12.2fx |\n", w, rg, cg, cg/rg }'
done
