#!/usr/bin/env python3
"""caskade against redis-server in one run: throughput with every key of the range
prefilled (so GETs hit), and unpipelined latency over TCP and the Unix socket.

Usage: python3 bench/throughput.py [--bin PATH] [-n REQUESTS] [--rounds R] [--svg DIR]
  --bin     the caskade binary (default: $CASKADE_BIN, else target/release/caskade)
  -n        requests per measurement (default 300000)
  --rounds  interleaved rounds, best kept (default 3)
  --only    workloads by index, comma-separated (0: -P 16 -d 100, 1: -P 1 -d 100,
            2: -P 16 -d 4096; default all)
  --extra   another caskade configuration to run beside, as flags in one string
            (e.g. "--hot-bytes 0"), shown as its own columns; may be repeated
  --svg     write throughput.svg and latency.svg into this directory (matplotlib,
            installed with pip if missing)

Servers: Redis 7 without persistence, Redis with `appendonly yes, appendfsync everysec`,
caskade with `fsync everysec` (and the --extra caskade). Each round runs every workload
against each server in turn (A B C, B C A, C A B, ...; a server rewriting its AOF
is waited for before the next one runs): `redis-benchmark -c 50 -t set,get`, after
a prefill of every key `key:000000000000` .. `key:<r-1>` with a value of the workload's
size through `redis-cli --pipe`. The best of the rounds is kept, and ratios are taken
within this one run.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port  # noqa: E402
from charts import pyplot  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (label, pipeline, value size, key range)
WORKLOADS = [
    ("-P 16 -d 100 -r 1000000", 16, 100, 1_000_000),
    ("-P 1 -d 100 -r 1000000", 1, 100, 1_000_000),
    ("-P 16 -d 4096 -r 100000", 16, 4096, 100_000),
]


def wait_ping(args):
    for _ in range(600):
        r = subprocess.run(["redis-cli", *args, "ping"], capture_output=True, text=True)
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers: {args}")


def prefill_file(work, size, keys):
    """RESP SETs of every key of the range, written once per workload."""
    path = os.path.join(work, f"prefill-{size}-{keys}.resp")
    if os.path.exists(path):
        return path
    value = b"x" * size
    with open(path, "wb") as f:
        head = b"*3\r\n$3\r\nSET\r\n$16\r\n"
        tail = b"\r\n$%d\r\n%s\r\n" % (size, value)
        for i in range(keys):
            f.write(head + b"key:%012d" % i + tail)
    return path


def prefill(cli, path):
    subprocess.run(["redis-cli", *cli, "flushall"], capture_output=True, check=True)
    with open(path, "rb") as f:
        subprocess.run(["redis-cli", *cli, "--pipe"], stdin=f, capture_output=True, check=True)


def settle(cli):
    """Waits while a server rewrites its AOF or saves in the background, so that its
    work does not slow down the next server's measurement."""
    for _ in range(1200):
        info = subprocess.run(["redis-cli", *cli, "info", "persistence"], capture_output=True, text=True).stdout
        busy = any(line in info for line in ("aof_rewrite_in_progress:1", "rdb_bgsave_in_progress:1"))
        if not busy:
            return
        time.sleep(0.1)


def benchmark(cli, n, keys, size, pipeline, tests="set,get"):
    """{test: (rps, p50 ms, p99 ms)} from redis-benchmark's CSV."""
    out = subprocess.run(
        ["redis-benchmark", *cli, "-n", str(n), "-r", str(keys), "-d", str(size), "-c", "50",
         "-P", str(pipeline), "-t", tests, "--csv"],
        capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        cols = [c.strip('"') for c in line.split('","')]
        if len(cols) >= 7 and cols[0] in ("SET", "GET"):
            res[cols[0]] = (float(cols[1]), float(cols[4]), float(cols[6]))
    return res


class Servers:
    """Redis, Redis with AOF, caskade (and an extra caskade), each on TCP and a socket."""

    def __init__(self, work, binary, extra):
        self.procs = []
        self.cli = {}
        self.sock = {}

        def start(name, argv, port, sock):
            self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.cli[name] = ["-p", str(port)]
            self.sock[name] = ["-s", sock]

        for name, aof in (("redis", "no"), ("redis-aof", "yes")):
            port, d = free_port(), os.path.join(work, name)
            os.makedirs(d)
            sock = os.path.join(work, f"{name}.sock")
            start(name, ["redis-server", "--port", str(port), "--save", "", "--appendonly", aof,
                         "--appendfsync", "everysec", "--dir", d, "--unixsocket", sock,
                         "--unixsocketperm", "700"], port, sock)
        configs = [("caskade", [])]
        for e in extra:
            configs.append((f"caskade {e}", e.split()))
        for i, (name, flags) in enumerate(configs):
            port, sock = free_port(), os.path.join(work, f"caskade{i}.sock")
            start(name, [binary, "--port", str(port), "--admin-port", "0", "--dir",
                         os.path.join(work, f"caskade{i}"), "--fsync", "everysec", "--log", "warn",
                         "--unixsocket", sock, *flags], port, sock)
        for name in self.cli:
            wait_ping(self.cli[name])

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait()


def charts(svg_dir, results, latency, names):
    plt = pyplot()
    os.makedirs(svg_dir, exist_ok=True)
    cask = [n for n in names if n.startswith("caskade")]
    labels = [f"{op} {w}" for w, *_ in results for op in ("SET", "GET")]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / (2 * len(cask))
    bars = []
    for j, c in enumerate(cask):
        for k, ref in enumerate(("redis", "redis-aof")):
            vals = [res[c][op][0] / res[ref][op][0] for _, res in results for op in ("SET", "GET")]
            bars.append((f"{c} / {ref}", vals, (2 * j + k)))
    for label, vals, i in bars:
        xs = [x + (i - (len(bars) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, vals, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("throughput ratio (higher is better)")
    ax.set_title("caskade against Redis, redis-benchmark -c 50, keys prefilled")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(svg_dir, "throughput.svg"))

    fig, ax = plt.subplots(figsize=(8, 4))
    groups = [(t, s) for t in ("tcp", "unix") for s in names]
    xs = range(len(groups))
    for pi, (pname, col) in enumerate((("p50", 1), ("p99", 2))):
        vals = [latency[(t, s)]["GET"][col] for t, s in groups]
        ax.bar([x + (pi - 0.5) * 0.4 for x in xs], vals, 0.4, label=f"GET {pname}")
    ax.set_xticks(list(xs), [f"{s}\n{t}" for t, s in groups], fontsize=8)
    ax.set_ylabel("ms (lower is better)")
    ax.set_title("unpipelined GET latency (-P 1 -c 50 -d 100)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(svg_dir, "latency.svg"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("CASKADE_BIN", os.path.join(ROOT, "target/release/caskade")))
    ap.add_argument("-n", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--extra", action="append", default=[])
    ap.add_argument("--svg", default="")
    a = ap.parse_args()
    workloads = [WORKLOADS[int(i)] for i in a.only.split(",")] if a.only else WORKLOADS
    work = tempfile.mkdtemp(prefix="caskade-throughput-")
    servers = Servers(work, a.bin, a.extra)
    names = list(servers.cli)
    try:
        best = {}
        for rnd in range(a.rounds):
            for label, pipeline, size, keys in workloads:
                path = prefill_file(work, size, keys)
                # Each round starts with another server, so none always follows the same.
                for s in names[rnd % len(names):] + names[:rnd % len(names)]:
                    prefill(servers.cli[s], path)
                    settle(servers.cli[s])
                    for op, v in benchmark(servers.cli[s], a.n, keys, size, pipeline).items():
                        k = (label, s, op)
                        if v[0] > best.get(k, (0,))[0]:
                            best[k] = v
                    settle(servers.cli[s])
            print(f"round {rnd + 1} of {a.rounds} done", file=sys.stderr, flush=True)
        latency = {}
        path = prefill_file(work, 100, 100_000)
        for rnd in range(a.rounds):
            for t in ("tcp", "unix"):
                for s in names[rnd % len(names):] + names[:rnd % len(names)]:
                    prefill(servers.cli[s], path)
                    settle(servers.cli[s])
                    cli = servers.cli[s] if t == "tcp" else servers.sock[s]
                    r = benchmark(cli, a.n // 3, 100_000, 100, 1)
                    k = (t, s)
                    if k not in latency or r["GET"][2] < latency[k]["GET"][2]:
                        latency[k] = r

        print(f"\nredis-benchmark -c 50 -n {a.n}, keys prefilled, best of {a.rounds} interleaved rounds; "
              "caskade fsync everysec, Redis without persistence and with AOF everysec\n")
        cask = [n for n in names if n.startswith("caskade")]
        head = "| workload | op | Redis req/s | Redis AOF req/s |" + "".join(
            f" {c} req/s | {c} / Redis | {c} / Redis AOF |" for c in cask)
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        results = []
        for label, *_ in workloads:
            res = {s: {op: best[(label, s, op)] for op in ("SET", "GET")} for s in names}
            results.append((label, res))
            for op in ("SET", "GET"):
                row = f"| `{label}` | {op} | {res['redis'][op][0]:,.0f} | {res['redis-aof'][op][0]:,.0f} |"
                for c in cask:
                    v = res[c][op][0]
                    row += f" {v:,.0f} | {v / res['redis'][op][0]:.2f}x | {v / res['redis-aof'][op][0]:.2f}x |"
                print(row)
        print(f"\nUnpipelined latency (-P 1 -c 50 -d 100, 100,000 keys prefilled, best p99 of {a.rounds}):\n")
        print("| server | transport | GET p50 ms | GET p99 ms | SET p50 ms | SET p99 ms |")
        print("|---|---|---:|---:|---:|---:|")
        for t in ("tcp", "unix"):
            for s in names:
                r = latency[(t, s)]
                print(f"| {s} | {t} | {r['GET'][1]:.3f} | {r['GET'][2]:.3f} | {r['SET'][1]:.3f} | {r['SET'][2]:.3f} |")
        if a.svg:
            charts(a.svg, results, latency, names)
            print(f"\ncharts: {a.svg}/throughput.svg, {a.svg}/latency.svg")
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
