#!/usr/bin/env bash
# DRAM per key, measured from outside on the real binary: the RSS growth per key while
# N keys `key:%012d` (16 bytes) with 100-byte values are written through
# `redis-cli --pipe`, for every built-in eviction policy, beside `redis-server` (no
# persistence) in the same run; then the restart times (start to first PONG) after
# kill -9 and after SIGTERM, and the RSS after the clean restart. Prints one table.
#
# Usage: bench/memory.sh [N ...]   (default: 1000000 10000000)
# CHARTS=DIR also draws DIR/rss-per-key.svg from the table (bench/charts.py).
# Needs a release build (cargo build --release -p caskade), redis-server, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CASKADE_BIN:-target/release/caskade}
COUNTS=${*:-1000000 10000000}
POLICIES=${POLICIES:-fifo lru sieve s3-fifo}
WORK=$(mktemp -d /tmp/caskade-memory.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
calc() { python3 -c "print(f'{$1:.1f}')"; }
# A line of the table: printed, and kept for the chart.
row() { echo "$1" | tee -a "$WORK/table.md"; }

# The SET commands for keys 0..N-1, in RESP, on stdout.
commands() {
  python3 - "$1" <<'EOF'
import sys
n = int(sys.argv[1])
value = b"v" * 100
head = b"*3\r\n$3\r\nSET\r\n$16\r\n"
tail = b"\r\n$100\r\n" + value + b"\r\n"
out = sys.stdout.buffer
batch = 100_000
for start in range(0, n, batch):
    out.write(b"".join(head + b"key:%012d" % i + tail for i in range(start, min(n, start + batch))))
EOF
}

wait_pong() {
  local deadline=$((SECONDS + 300))
  until [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ]; do
    [ $SECONDS -lt $deadline ] || { echo "no PONG on port $PORT" >&2; exit 1; }
    sleep 0.01
  done
}

# Starts a server; PID is its process, ELAPSED the seconds until it answered PING.
start_timed() {
  local t0; t0=$(date +%s.%N)
  "$@" >/dev/null 2>>"$WORK/log" &
  PID=$!
  wait_pong
  ELAPSED=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
}

fill() {
  commands "$1" | redis-cli -p "$PORT" --pipe >/dev/null
  # Let background work settle before reading RSS (flushes, hint writes, and caskade's
  # hand-back of free heap memory, every 5 s).
  sleep 6
}

caskade() {
  exec "$BIN" --port "$PORT" --admin-port 0 --dir "$WORK/data" --log warn \
    --eviction-policy "$1" --fsync everysec
}

row "| keys | server | RSS before MiB | RSS full MiB | growth B/key | RSS after restart B/key | restart after SIGTERM | restart after kill -9 |"
row "|---:|---|---:|---:|---:|---:|---:|---:|"
for n in $COUNTS; do
  # The reference: Redis holds the values in RAM.
  redis-server --port "$PORT" --save "" --appendonly no --dir "$WORK" >/dev/null &
  PID=$!
  wait_pong
  before=$(rss_kib $PID)
  fill "$n"
  full=$(rss_kib $PID)
  kill $PID; wait $PID 2>/dev/null || true; PID=
  row "| $n | redis-server | $(calc "$before/1024") | $(calc "$full/1024") | $(calc "($full-$before)*1024/$n") | - | - | - |"
  for policy in $POLICIES; do
    rm -rf "$WORK/data"
    start_timed caskade "$policy"
    before=$(rss_kib $PID)
    fill "$n"
    full=$(rss_kib $PID)
    # A crash first (the last segment has no hint file), then a clean stop.
    kill -9 $PID; wait $PID 2>/dev/null || true
    start_timed caskade "$policy"
    crash=$ELAPSED
    kill -TERM $PID; wait $PID 2>/dev/null || true
    start_timed caskade "$policy"
    term=$ELAPSED
    sleep 2
    after=$(rss_kib $PID)
    kill -TERM $PID; wait $PID 2>/dev/null || true; PID=
    row "| $n | caskade $policy | $(calc "$before/1024") | $(calc "$full/1024") | $(calc "($full-$before)*1024/$n") | $(calc "($after-$before)*1024/$n") | $term s | $crash s |"
  done
done
if [ -n "${CHARTS:-}" ]; then
  python3 bench/charts.py memory "$WORK/table.md" "$CHARTS/rss-per-key.svg"
fi
