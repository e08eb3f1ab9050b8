#!/usr/bin/env python3
"""Atomic units beside Redis, in one run: EVALSHA of a small script, MULTI/EXEC of 4
commands, SETBIT/BITCOUNT when caskade has them, each as caskade/redis throughput.

C client threads each pipeline P units at a time over raw sockets (so the client is
not what is measured); runs are interleaved (caskade, redis, caskade, redis) and the
best of each is kept. Needs a release build (cargo build --release -p caskade) and
redis-server. Usage: python3 bench/units.py [seconds per run, default 3]
"""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port  # noqa: E402


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CASKADE_BIN", os.path.join(ROOT, "target/release/caskade"))
SECS = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
CLIENTS, PIPELINE = 8, 16




def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_replies(f, n):
    """Reads n replies (any RESP2 type, nested arrays included)."""
    def one():
        line = f.readline()
        t = line[:1]
        if t in b"+-:":
            return
        if t == b"$":
            ln = int(line[1:])
            if ln >= 0:
                f.read(ln + 2)
            return
        if t == b"*":
            for _ in range(max(int(line[1:]), 0)):
                one()
            return
        raise RuntimeError(f"bad reply {line!r}")
    for _ in range(n):
        one()


def wait_ready(port):
    for _ in range(500):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(encode("PING"))
            if s.recv(16).startswith(b"+PONG"):
                s.close()
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("server did not start")


def cpu_seconds(pid):
    """User + system CPU time the process has used, every thread included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(port, unit, replies_per_unit, pid):
    """Units per second over CLIENTS connections for SECS, and the server's CPU
    microseconds per unit."""
    cpu0 = cpu_seconds(pid)
    done = [0] * CLIENTS
    stop = time.time() + SECS
    batch = unit * PIPELINE

    def client(i):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        while time.time() < stop:
            s.sendall(batch)
            read_replies(f, replies_per_unit * PIPELINE)
            done[i] += PIPELINE
        s.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    units = sum(done)
    return units / (time.time() - t0), (cpu_seconds(pid) - cpu0) * 1e6 / max(units, 1)


def main():
    work = tempfile.mkdtemp(prefix="caskade-units-")
    cport, rport = free_port(), free_port()
    caskade = subprocess.Popen([BIN, "--port", str(cport), "--admin-port", "0", "--dir",
                                os.path.join(work, "data"), "--log", "warn"], stdout=subprocess.DEVNULL)
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    try:
        wait_ready(cport)
        wait_ready(rport)
        body = "local v = redis.call('incr', KEYS[1]) if v % 2 == 0 then redis.call('set', KEYS[2], v) end return v"
        sha = hashlib.sha1(body.encode()).hexdigest()
        for port in (cport, rport):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(encode("SCRIPT", "LOAD", body))
            f = s.makefile("rb")
            f.readline()
            got = f.readline().strip().decode()
            assert got == sha, f"SCRIPT LOAD answered {got}"
            s.close()
        workloads = [
            ("EVALSHA (incr + set)", encode("EVALSHA", sha, 2, "u:n", "u:even"), 1),
            ("MULTI/EXEC of 4", encode("MULTI") + encode("INCR", "t:a") + encode("SET", "t:b", "x")
             + encode("GET", "t:a") + encode("EXPIRE", "t:b", 100) + encode("EXEC"), 6),
            ("SET + GET (reference)", encode("SET", "p:k", "v") + encode("GET", "p:k"), 2),
        ]
        probe = socket.create_connection(("127.0.0.1", cport))
        probe.sendall(encode("SETBIT", "b:k", 7, 1))
        if probe.recv(64).startswith(b":"):
            workloads.append(("SETBIT + BITCOUNT", encode("SETBIT", "b:k", 12345, 1) + encode("BITCOUNT", "b:k"), 2))
        probe.close()
        print(f"{CLIENTS} clients x pipeline {PIPELINE}, {SECS:.0f} s per run, best of 2 interleaved;")
        print("CPU: the server process' CPU time per unit, all threads, in the best run")
        print("| unit | redis units/s | caskade units/s | caskade/redis | redis CPU µs/unit | caskade CPU µs/unit |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, unit, n in workloads:
            best = {"c": (0.0, 0.0), "r": (0.0, 0.0)}
            for _ in range(2):
                best["c"] = max(best["c"], run(cport, unit, n, caskade.pid))
                best["r"] = max(best["r"], run(rport, unit, n, redis.pid))
            (c, c_cpu), (r, r_cpu) = best["c"], best["r"]
            print(f"| {name} | {r:.0f} | {c:.0f} | {c / r:.2f}x | {r_cpu:.2f} | {c_cpu:.2f} |", flush=True)
    finally:
        caskade.terminate()
        redis.terminate()
        caskade.wait()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
