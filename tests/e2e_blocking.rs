//! Blocking pops against the real binary and, side by side, a real `redis-server`:
//! clients served in the order they blocked, a push waking the first waiter, several
//! keys, timeouts, CLIENT UNBLOCK, a waiter that disconnects leaving nothing behind,
//! pushes inside MULTI/EXEC, and commands pipelined behind a blocked one. Each
//! scenario runs on both servers and must end the same way on each.

mod common;

use common::Server;
use common::resp::{Conn, RedisServer, Value};
use std::time::{Duration, Instant};

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn arr(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| bulk(s)).collect())
}

/// Waits until the server counts `n` blocked clients (INFO clients).
fn await_blocked(c: &mut Conn, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Value::Bulk(info) = c.cmd("INFO clients") else {
            panic!("INFO clients")
        };
        let info = String::from_utf8_lossy(&info).into_owned();
        if info.contains(&format!("blocked_clients:{n}\r\n")) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} blocked:\n{info}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every scenario against the server at `port`.
fn scenarios(port: u16) {
    let mut ctl = Conn::connect(port);
    assert_eq!(ctl.cmd("FLUSHALL"), Value::Status("OK".into()));

    // Served in the order they blocked; one push of two wakes the first two.
    let mut waiters: Vec<Conn> = (0..3).map(|_| Conn::connect(port)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        w.send(&common::resp::split("BLPOP q 0").expect("line"));
        await_blocked(&mut ctl, i + 1);
    }
    assert_eq!(ctl.cmd("RPUSH q 1 2"), Value::Int(2));
    assert_eq!(waiters[0].read(), arr(&["q", "1"]));
    assert_eq!(waiters[1].read(), arr(&["q", "2"]));
    await_blocked(&mut ctl, 1);
    assert_eq!(ctl.cmd("LPUSH q 3"), Value::Int(1));
    assert_eq!(waiters[2].read(), arr(&["q", "3"]));
    assert_eq!(ctl.cmd("EXISTS q"), Value::Int(0));

    // Several keys: the first that gets an element answers, with its name.
    let mut w = Conn::connect(port);
    w.send(&common::resp::split("BRPOP a b c 0").expect("line"));
    await_blocked(&mut ctl, 1);
    ctl.cmd("RPUSH c x y");
    assert_eq!(w.read(), arr(&["c", "y"]));
    assert_eq!(ctl.cmd("LRANGE c 0 -1"), arr(&["x"]));

    // A timeout answers a nil array after at least its time.
    let started = Instant::now();
    assert_eq!(w.cmd("BLPOP nothing 0.2"), Value::NilArray);
    assert!(started.elapsed() >= Duration::from_millis(190));

    // CLIENT UNBLOCK: as a timeout, or with an error.
    let Value::Int(id) = w.cmd("CLIENT ID") else {
        panic!("CLIENT ID")
    };
    w.send(&common::resp::split("BZPOPMIN z1 0").expect("line"));
    await_blocked(&mut ctl, 1);
    assert_eq!(ctl.cmd(&format!("CLIENT UNBLOCK {id}")), Value::Int(1));
    assert_eq!(w.read(), Value::NilArray);
    w.send(&common::resp::split("BLMOVE s d LEFT RIGHT 0").expect("line"));
    await_blocked(&mut ctl, 1);
    assert_eq!(
        ctl.cmd(&format!("CLIENT UNBLOCK {id} ERROR")),
        Value::Int(1)
    );
    assert_eq!(
        w.read(),
        Value::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())
    );
    assert_eq!(ctl.cmd(&format!("CLIENT UNBLOCK {id}")), Value::Int(0));

    // A waiter that disconnects leaves nothing behind: the next push stays.
    let mut gone = Conn::connect(port);
    gone.send(&common::resp::split("BLPOP left 0").expect("line"));
    await_blocked(&mut ctl, 1);
    drop(gone);
    await_blocked(&mut ctl, 0);
    ctl.cmd("RPUSH left v");
    assert_eq!(ctl.cmd("LRANGE left 0 -1"), arr(&["v"]));

    // BLMOVE and BZPOPMAX wake on pushes and adds; pipelined commands behind a
    // blocked one wait for it.
    w.send(&common::resp::split("BLMOVE src dst RIGHT LEFT 0").expect("line"));
    w.send(&common::resp::split("LLEN dst").expect("line"));
    await_blocked(&mut ctl, 1);
    ctl.cmd("RPUSH src m n");
    assert_eq!(w.read(), bulk("n"));
    assert_eq!(w.read(), Value::Int(1));
    w.send(&common::resp::split("BZPOPMAX zz 0").expect("line"));
    await_blocked(&mut ctl, 1);
    ctl.cmd("ZADD zz 1 low 2 high");
    let Value::Array(got) = w.read() else {
        panic!("BZPOPMAX answers an array")
    };
    assert_eq!(got[..2], [bulk("zz"), bulk("high")]);

    // A push inside MULTI/EXEC wakes the waiter only after EXEC, and a transaction
    // that pushes and pops again leaves it waiting.
    w.send(&common::resp::split("BLMPOP 0 1 tx LEFT COUNT 5").expect("line"));
    await_blocked(&mut ctl, 1);
    ctl.cmd("MULTI");
    ctl.cmd("RPUSH tx 1");
    ctl.cmd("LPOP tx");
    ctl.cmd("EXEC");
    std::thread::sleep(Duration::from_millis(100));
    await_blocked(&mut ctl, 1);
    ctl.cmd("MULTI");
    ctl.cmd("RPUSH tx 1 2");
    ctl.cmd("RPUSH tx 3");
    ctl.cmd("EXEC");
    assert_eq!(
        w.read(),
        Value::Array(vec![bulk("tx"), arr(&["1", "2", "3"])])
    );
    await_blocked(&mut ctl, 0);
}

#[test]
fn blocking_pops_behave_as_in_redis() {
    let redis = RedisServer::start();
    scenarios(redis.port);
    let caskade = Server::start(&[]);
    scenarios(caskade.port);
}
