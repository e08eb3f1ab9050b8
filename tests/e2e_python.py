"""End-to-end checks with redis-py against a running caskade, over RESP2 and RESP3.

Run by tests/e2e_python.rs as: python3 tests/e2e_python.py PORT
"""
import sys
import threading

import redis


def check(client: redis.Redis) -> None:
    client.flushdb()
    assert client.ping() is True
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"
    assert client.get("missing") is None
    assert client.set("k", "w", nx=True) is None
    assert client.set("k", "w", xx=True, get=True) == b"v"
    assert client.set("t", "v", ex=100) is True
    assert 99 <= client.ttl("t") <= 100
    assert client.pttl("missing") == -2
    assert client.expire("t", 200, gt=True) is True
    assert client.persist("t") is True
    assert client.incr("n") == 1
    assert client.incrby("n", 9) == 10
    assert client.incrbyfloat("f", 1.5) == 1.5
    assert client.mset({"a": "1", "b": "2"}) is True
    assert client.mget(["a", "b", "nope"]) == [b"1", b"2", None]
    assert client.delete("a", "b", "nope") == 2
    assert client.exists("k", "k") == 2
    assert client.type("k") in (b"string", "string")
    assert client.getrange("k", 0, 0) == b"w"
    assert client.append("k", "xyz") == 4
    assert client.strlen("k") == 4
    assert client.rename("k", "k2") is True
    assert client.copy("k2", "k3") is True
    for i in range(120):
        client.set(f"scan:{i}", i)
    assert len(set(client.scan_iter(match="scan:*", count=17))) == 120
    assert sorted(client.keys("scan:1?")) == sorted(f"scan:1{i}".encode() for i in range(10))
    assert client.dbsize() == 125  # t, n, f, k2, k3 and 120 scan keys
    info = client.info()
    assert info["redis_version"].startswith("7.")
    assert info["cluster_enabled"] == 0
    assert "db0" in client.info("keyspace")
    assert client.client_setname("py") is True
    assert client.client_getname() in (b"py", "py")
    port = client.connection_pool.connection_kwargs["port"]
    assert client.config_get("port")["port"] in (str(port), str(port).encode())
    # Pipelining without MULTI.
    pipe = client.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"p:{i}", i)
        pipe.get(f"p:{i}")
    out = pipe.execute()
    assert out[1] == b"0" and out[-1] == b"499" and out.count(True) == 500
    try:
        client.execute_command("NOSUCHCOMMAND")
        raise AssertionError("unknown command accepted")
    except redis.ResponseError as e:
        assert "unknown command" in str(e)
    try:
        client.incr("k2")
        raise AssertionError("INCR of a non-integer accepted")
    except redis.ResponseError as e:
        assert "not an integer" in str(e)
    # Binary-safe keys and values.
    blob = bytes(range(256))
    client.set(blob, blob)
    assert client.get(blob) == blob


def data_types(client: redis.Redis) -> None:
    """Sorted sets, GEO, HyperLogLog and blocking pops as redis-py uses them (its
    parsers turn scores and distances into floats, in RESP2 and RESP3 alike)."""
    client.delete("board", "places", "visitors", "queue", "zq")
    assert client.zadd("board", {"ann": 10, "bob": 7.5, "cy": 12}) == 3
    assert client.zincrby("board", 5, "bob") == 12.5
    pairs = lambda r: [tuple(x) for x in r]  # noqa: E731 (RESP3 gives lists)
    assert pairs(client.zrange("board", 0, -1, withscores=True)) == [
        (b"ann", 10.0), (b"cy", 12.0), (b"bob", 12.5)]
    assert client.zrevrange("board", 0, 0) == [b"bob"]
    assert client.zrangebyscore("board", "(10", "+inf") == [b"cy", b"bob"]
    assert client.zrank("board", "cy") == 1
    assert client.zscore("board", "ann") == 10.0
    assert client.zmscore("board", ["ann", "nobody"]) == [10.0, None]
    assert client.zpopmin("board") in ([(b"ann", 10.0)], [b"ann", 10.0])
    assert client.zcard("board") == 2
    # A big board: chunked on disk, ranks and ranges still exact.
    client.zadd("board", {f"p{i:05}": i % 1000 for i in range(20_000)})
    assert client.zcard("board") == 20_002
    assert client.zrange("board", 0, 2) == [b"p00000", b"p01000", b"p02000"]
    assert client.zcount("board", 0, 9) == 200
    assert client.geoadd("places", [13.361389, 38.115556, "Palermo",
                                    15.087269, 37.502669, "Catania"]) == 2
    assert round(client.geodist("places", "Palermo", "Catania", unit="km"), 2) == 166.27
    near = client.geosearch("places", longitude=15, latitude=37, radius=200, unit="km",
                            withdist=True, sort="ASC")
    assert [m for m, _ in near] == [b"Catania", b"Palermo"]
    assert client.geohash("places", "Palermo") in ([b"sqc8b49rny0"], ["sqc8b49rny0"])
    assert client.pfadd("visitors", *[f"v{i}" for i in range(1000)]) == 1
    assert 980 <= client.pfcount("visitors") <= 1020
    # A blocking pop served by another connection's push.
    other = redis.Redis(port=client.connection_pool.connection_kwargs["port"])
    timer = threading.Timer(0.2, lambda: other.rpush("queue", "job"))
    timer.start()
    assert tuple(client.blpop(["queue"], timeout=5)) == (b"queue", b"job")
    timer.join()
    assert client.blpop(["queue"], timeout=0.1) is None
    client.zadd("zq", {"low": 1, "high": 2})
    assert tuple(client.bzpopmax(["zq"], timeout=1)) == (b"zq", b"high", 2.0)


def transactions(client: redis.Redis) -> None:
    """pipeline() is a MULTI/EXEC transaction by default; transaction() retries a
    WATCH loop until EXEC succeeds."""
    client.delete("tx:a", "tx:b")
    with client.pipeline() as p:
        p.set("tx:a", 1).incr("tx:a").get("tx:a")
        assert p.execute() == [True, 2, b"2"]
    with client.pipeline(transaction=False) as p:
        p.set("tx:b", "x").get("tx:b")
        assert p.execute() == [True, b"x"]
    # A runtime error inside EXEC is raised, and the other commands took effect.
    with client.pipeline() as p:
        p.incr("tx:b").set("tx:c", "y")
        try:
            p.execute()
            raise AssertionError("the INCR of a non-integer was not reported")
        except redis.ResponseError:
            pass
    assert client.get("tx:c") == b"y"

    def double(pipe):
        v = int(pipe.get("tx:a"))
        pipe.multi()
        pipe.set("tx:a", v * 2)

    client.transaction(double, "tx:a")
    assert client.get("tx:a") == b"4"
    # A WATCHed key changed by someone else: WatchError, as from Redis.
    other = redis.Redis(connection_pool=client.connection_pool)
    with client.pipeline() as p:
        p.watch("tx:a")
        other.set("tx:a", 100)
        p.multi()
        p.set("tx:a", 0)
        try:
            p.execute()
            raise AssertionError("EXEC ran although a watched key changed")
        except redis.WatchError:
            pass
    assert client.get("tx:a") == b"100"


def scripts_and_locks(client: redis.Redis) -> None:
    """register_script (EVALSHA, falling back to EVAL on NOSCRIPT) and redis-py's Lock,
    whose release and extend are scripts."""
    client.script_flush()
    add = client.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    client.delete("lua:n")
    assert add(keys=["lua:n"], args=[5]) == 5
    assert add(keys=["lua:n"], args=[2]) == 7
    lock = client.lock("lua:lock", timeout=10)
    assert lock.acquire(blocking=False)
    other = redis.Redis(connection_pool=client.connection_pool).lock("lua:lock", timeout=10)
    assert not other.acquire(blocking=False), "a held lock was taken twice"
    assert lock.extend(5)
    assert client.pttl("lua:lock") > 10_000
    lock.release()
    assert other.acquire(blocking=False), "a released lock could not be taken"
    impostor = client.lock("lua:lock", timeout=10)
    impostor.local.token = b"not-the-owner"
    try:
        impostor.release()
        raise AssertionError("releasing a lock held by someone else succeeded")
    except redis.exceptions.LockNotOwnedError:
        pass
    other.release()


def script_increments(port: int, n: int) -> None:
    c = redis.Redis(port=port)
    incr = c.register_script(
        "local v = tonumber(redis.call('get', KEYS[1]) or '0') redis.call('set', KEYS[1], v + 1) return v + 1"
    )
    for _ in range(n):
        incr(keys=["lua:counter"])


def watch_increments(port: int, n: int) -> None:
    c = redis.Redis(port=port)

    def incr(pipe):
        v = int(pipe.get("tx:counter") or 0)
        pipe.multi()
        pipe.set("tx:counter", v + 1)

    for _ in range(n):
        c.transaction(incr, "tx:counter")


def hammer(port: int, n: int) -> None:
    c = redis.Redis(port=port, protocol=3)
    for _ in range(n):
        c.incr("shared-counter")


def in_threads(target, port: int, n: int) -> None:
    threads = [threading.Thread(target=target, args=(port, n)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    port = int(sys.argv[1])
    check(redis.Redis(port=port))
    check(redis.Redis(port=port, protocol=3))
    data_types(redis.Redis(port=port))
    data_types(redis.Redis(port=port, protocol=3))
    c = redis.Redis(port=port)
    c.delete("shared-counter")
    in_threads(hammer, port, 200)
    assert int(c.get("shared-counter")) == 800
    transactions(redis.Redis(port=port))
    transactions(redis.Redis(port=port, protocol=3))
    c.delete("tx:counter")
    in_threads(watch_increments, port, 100)
    assert int(c.get("tx:counter")) == 400, c.get("tx:counter")
    scripts_and_locks(redis.Redis(port=port))
    scripts_and_locks(redis.Redis(port=port, protocol=3))
    c.delete("lua:counter")
    in_threads(script_increments, port, 300)
    assert int(c.get("lua:counter")) == 1200, c.get("lua:counter")
    print("python redis: all checks passed")


if __name__ == "__main__":
    main()
