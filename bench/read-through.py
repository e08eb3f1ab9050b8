#!/usr/bin/env python3
"""Read-through figures, each against a reference measured in the same run.

1. Fill: N sequential GETs of cold routed keys (each one fetched from a local HTTP
   origin through the example HTTP fetcher) against N direct HTTP GETs of the same
   paths from this script: the cost caskade adds to a miss.
2. Hit: redis-benchmark GET of a filled routed key against GET of a plain key: what a
   route costs on the hit path.
3. Coalescing: C clients GET one cold key of a slow origin at once; origin requests.

Needs: a release build (cargo build --release -p caskade), bash plugins/build.sh,
python3 with `redis`, and redis-benchmark. Usage: python3 bench/read-through.py [N]
"""

import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import redis
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port  # noqa: E402


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
COUNTS = {"requests": 0}
LOCK = threading.Lock()


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with LOCK:
            COUNTS["requests"] += 1
        if self.path.startswith("/slow/"):
            time.sleep(0.5)
        body = ('{"id":"%s","payload":"%s"}' % (self.path, "x" * 200)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("etag", '"v1"')
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass




def main():
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    oport = origin.server_address[1]
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    port = free_port()
    tmp = tempfile.mkdtemp()
    fetcher = os.path.join(ROOT, "target/plugins/http_fetcher.wasm")
    cfg = os.path.join(tmp, "caskade.yaml")
    route = """    - prefix: '{p}'
      fetcher: {f}
      settings: {{ base_url: 'http://127.0.0.1:{o}{path}', strip_prefix: '{p}' }}
      allowed_hosts: ['127.0.0.1:{o}']
      ttl: 1h
      timeout: 10s
      max_concurrent_fetches: 64
"""
    with open(cfg, "w") as f:
        f.write("read_through:\n  routes:\n")
        f.write(route.format(p="item:", f=fetcher, o=oport, path="/items/"))
        f.write(route.format(p="slow:", f=fetcher, o=oport, path="/slow/"))
    proc = subprocess.Popen(
        [os.path.join(ROOT, "target/release/caskade"), "--config", cfg, "--port", str(port),
         "--dir", os.path.join(tmp, "data"), "--admin-port", "0", "--log", "warn"],
        stdout=subprocess.PIPE,
    )
    try:
        for line in proc.stdout:
            if b"caskade ready" in line:
                break
        r = redis.Redis(port=port)
        # Warm both paths once (instance start, connection setup).
        r.get("item:warm")
        urllib.request.urlopen("http://127.0.0.1:%d/items/warm" % oport).read()

        t = time.perf_counter()
        for i in range(N):
            urllib.request.urlopen("http://127.0.0.1:%d/items/direct%d" % (oport, i)).read()
        direct = (time.perf_counter() - t) / N
        t = time.perf_counter()
        for i in range(N):
            assert r.get("item:cold%d" % i) is not None
        fill = (time.perf_counter() - t) / N
        print("fill: direct HTTP GET %.3f ms, caskade GET of a cold routed key %.3f ms"
              " (ratio %.2f; includes the store and the RESP round trip)"
              % (direct * 1e3, fill * 1e3, fill / direct))

        r.set("plain:1", r.get("item:cold1"))

        def bench(key):
            out = subprocess.run(
                ["redis-benchmark", "-p", str(port), "-n", "200000", "-c", "50", "-q",
                 "GET", key], capture_output=True, text=True, check=True).stdout
            # "GET item:cold1: 123456.79 requests per second, p50=0.199 msec"
            return float(out.split("requests per second")[0].split()[-1])

        plain = bench("plain:1")
        routed = bench("item:cold1")
        print("hit: GET plain key %.0f req/s, GET routed key %.0f req/s (ratio %.2f)"
              % (plain, routed, routed / plain))

        before = COUNTS["requests"]
        c = 200
        barrier = threading.Barrier(c)
        results = []

        def one():
            cl = redis.Redis(port=port)
            cl.ping()
            barrier.wait()
            results.append(cl.get("slow:one"))

        ts = [threading.Thread(target=one) for _ in range(c)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        assert all(v is not None for v in results)
        print("coalescing: %d concurrent GETs of one cold key -> %d origin request(s)"
              % (c, COUNTS["requests"] - before))
    finally:
        proc.terminate()
        proc.wait()
        origin.shutdown()


if __name__ == "__main__":
    main()
