#!/usr/bin/env python3
"""Collections beside redis-server in one run: throughput of point changes and reads on
a 10-element and a 100,000-element collection of each type, the bytes caskade writes
per change, and the DRAM (process RSS) per element against Redis'.

Usage: python3 bench/collections.py [--bin PATH] [-n REQUESTS] [--rounds R]
  --bin     the caskade binary (default: $CASKADE_BIN, else target/release/caskade)
  -n        requests per measurement (default 200000)
  --rounds  interleaved rounds, best kept (default 3)
  --only    types to run, comma-separated (hash,set,list,zset; default all)

Each workload runs redis-benchmark (-c 50 -P 16) against both servers, Redis first
then caskade, round after round; the collection is prefilled before the round so a
change lands on a collection of that size (HSET and SADD pick one of `size` fields or
members, so the size stays; LMOVE of a list onto itself is an RPOP and an LPUSH in one
change). Printed as a table of
requests/s, caskade/Redis, and caskade's large/small cost ratio (the goal: a change
of a 100,000-element collection costs at most 2x one of 10).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, rss_kib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (10, 100_000)
KINDS = ("hash", "set", "list", "zset")


def wait_ping(port):
    for _ in range(300):
        try:
            if redis.Redis(port=port).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def prefill(r, kind, key, size):
    """`key` as a collection of `size` elements, in batches of 1000."""
    r.delete(key)
    for start in range(0, size, 1000):
        items = range(start, min(size, start + 1000))
        if kind == "hash":
            r.hset(key, mapping={f"field:{i:012d}": "v" * 16 for i in items})
        elif kind == "set":
            r.sadd(key, *(f"member:{i:012d}" for i in items))
        elif kind == "zset":
            r.zadd(key, {f"member:{i:012d}": i for i in items})
        else:
            r.rpush(key, *(f"element:{i:012d}" for i in items))


# (name, type, command template for redis-benchmark; `__rand_int__` picks one of size)
WORKLOADS = [
    ("HSET", "hash", ["HSET", "{key}", "field:__rand_int__", "vvvvvvvvvvvvvvvv"]),
    ("HGET", "hash", ["HGET", "{key}", "field:__rand_int__"]),
    ("SADD", "set", ["SADD", "{key}", "member:__rand_int__"]),
    ("SISMEMBER", "set", ["SISMEMBER", "{key}", "member:__rand_int__"]),
    # A rotation: an RPOP and an LPUSH in one change, so the list keeps its size.
    ("LMOVE k k RIGHT LEFT", "list", ["LMOVE", "{key}", "{key}", "RIGHT", "LEFT"]),
    ("LINDEX -1", "list", ["LINDEX", "{key}", "-1"]),
    ("LRANGE 0 9", "list", ["LRANGE", "{key}", "0", "9"]),
    ("ZADD", "zset", ["ZADD", "{key}", "__rand_int__", "member:__rand_int__"]),
    ("ZINCRBY", "zset", ["ZINCRBY", "{key}", "1", "member:__rand_int__"]),
    ("ZSCORE", "zset", ["ZSCORE", "{key}", "member:__rand_int__"]),
    ("ZRANGE 0 9", "zset", ["ZRANGE", "{key}", "0", "9"]),
    ("ZRANK", "zset", ["ZRANK", "{key}", "member:__rand_int__"]),
]


def bench(port, args, n, size, pipeline=16):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-n", str(n), "-r", str(size), "-c", "50",
         "-P", str(pipeline), "--csv", *args],
        capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith('"') and "rps" not in line]
    return float(rows[-1].split('"')[3])


def run_workload(port, template, key, n, size):
    return bench(port, [a.replace("{key}", key) for a in template], n, size)


def bytes_written(r):
    """caskade's log bytes written so far (0 for Redis, which has no such field)."""
    return int(r.info("all").get("engine_bytes_written", 0))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("CASKADE_BIN", os.path.join(ROOT, "target/release/caskade")))
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated types to run (hash,set,list,zset)")
    a = ap.parse_args()
    kinds = a.only.split(",") if a.only else KINDS
    workloads = [w for w in WORKLOADS if w[1] in kinds]
    work = tempfile.mkdtemp(prefix="caskade-collections-")
    rport, cport = free_port(), free_port()
    redis_p = subprocess.Popen(
        ["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cask_p = subprocess.Popen(
        [a.bin, "--port", str(cport), "--admin-port", "0", "--dir", os.path.join(work, "c"),
         "--fsync", "everysec", "--log", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ping(rport)
        wait_ping(cport)
        servers = {"redis": (rport, redis_p.pid), "caskade": (cport, cask_p.pid)}
        conns = {s: redis.Redis(port=p) for s, (p, _) in servers.items()}

        # DRAM per element: RSS growth while three 100,000-element collections fill.
        mem = {}
        for s, (port, pid) in servers.items():
            before = rss_kib(pid)
            for kind in kinds:
                prefill(conns[s], kind, f"mem:{kind}", SIZES[1])
            time.sleep(0.5)
            mem[s] = (rss_kib(pid) - before) * 1024 / (len(kinds) * SIZES[1])
            conns[s].flushall()

        best = {}
        written = {}
        for rnd in range(a.rounds):
            for name, kind, template in workloads:
                for size in SIZES:
                    key = f"{kind}:{size}"
                    for s, (port, _) in servers.items():
                        prefill(conns[s], kind, key, size)
                        w0 = bytes_written(conns[s])
                        rps = run_workload(port, template, key, a.n, size)
                        changes = template[0] in ("HSET", "SADD", "LMOVE", "ZADD", "ZINCRBY")
                        if s == "caskade" and changes:
                            written[(name, size)] = (bytes_written(conns[s]) - w0) / a.n
                        k = (name, size, s)
                        best[k] = max(best.get(k, 0), rps)
            print(f"round {rnd + 1} of {a.rounds} done", file=sys.stderr, flush=True)

        print(f"\nredis-benchmark -c 50 -P 16 -n {a.n}, best of {a.rounds} interleaved rounds "
              "(caskade fsync everysec; Redis without persistence)\n")
        print("| op | elements | Redis req/s | caskade req/s | caskade/Redis | caskade 100k/10 cost | caskade bytes written per change |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, _, _ in workloads:
            for size in SIZES:
                rr, cc = best[(name, size, "redis")], best[(name, size, "caskade")]
                cost = ""
                if size == SIZES[1]:
                    cost = f"{best[(name, SIZES[0], 'caskade')] / cc:.2f}x"
                w = written.get((name, size))
                w = f"{w:,.0f}" if w else ""
                print(f"| {name} | {size:,} | {rr:,.0f} | {cc:,.0f} | {cc / rr:.2f}x | {cost} | {w} |")
        print(f"\nDRAM per element (RSS growth filling a 100,000-element {', '.join(kinds)}): "
              f"Redis {mem['redis']:.1f} B, caskade {mem['caskade']:.1f} B "
              f"({mem['caskade'] / mem['redis']:.2f}x)")
    finally:
        for p in (redis_p, cask_p):
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
