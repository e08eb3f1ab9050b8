//! MONITOR: the clients watching every command the server runs, and the line each
//! command becomes for them (Redis' format: time, database, client, quoted
//! arguments). Nothing is formatted while no client monitors.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Lines a slow monitor may fall behind by before it misses some.
const BACKLOG: usize = 4096;

/// The monitoring clients.
pub struct Monitors {
    tx: broadcast::Sender<Bytes>,
    count: Arc<AtomicUsize>,
}

impl Default for Monitors {
    fn default() -> Self {
        Monitors {
            tx: broadcast::channel(BACKLOG).0,
            count: Arc::default(),
        }
    }
}

/// One monitoring client's feed; it stops counting as a monitor when dropped.
pub struct Feed {
    /// The lines, each a RESP status line.
    pub rx: broadcast::Receiver<Bytes>,
    count: Arc<AtomicUsize>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Monitors {
    /// A client starts monitoring.
    pub fn subscribe(&self) -> Feed {
        self.count.fetch_add(1, Ordering::AcqRel);
        Feed {
            rx: self.tx.subscribe(),
            count: self.count.clone(),
        }
    }

    /// Whether anyone monitors (callers skip the work otherwise).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Shows command `args`, run in database `db` by `client` (an address, or `lua`).
    pub fn feed(&self, db: u8, client: &str, args: &[Bytes]) {
        if !self.active() {
            return;
        }
        let _ = self
            .tx
            .send(line(db, client, args, SystemTime::now()).into());
    }
}

/// `+1339518083.107412 [0 127.0.0.1:60866] "set" "k" "v"\r\n`; the arguments of AUTH
/// (and HELLO's AUTH) are not shown.
fn line(db: u8, client: &str, args: &[Bytes], now: SystemTime) -> Vec<u8> {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = format!("+{}.{:06} [{db} {client}]", t.as_secs(), t.subsec_micros()).into_bytes();
    let name = args.first().map(|a| a.to_ascii_lowercase());
    let redact_from = match name.as_deref() {
        Some(b"auth") => 1,
        Some(b"hello") => args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"auth"))
            .map_or(args.len(), |i| i + 1),
        _ => args.len(),
    };
    for (i, a) in args.iter().enumerate() {
        out.push(b' ');
        if i >= redact_from {
            out.extend_from_slice(b"\"(redacted)\"");
        } else {
            quote(a, &mut out);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// An argument in double quotes with Redis' escapes (`sdscatrepr`).
fn quote(a: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in a {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args(items: &[&[u8]]) -> Vec<Bytes> {
        items.iter().map(|a| Bytes::copy_from_slice(a)).collect()
    }

    #[test]
    fn lines_quote_as_redis_and_hide_passwords() {
        let at = UNIX_EPOCH + Duration::from_micros(1_339_518_083_107_412);
        assert_eq!(
            line(
                0,
                "127.0.0.1:60866",
                &args(&[b"set", b"k\"\n", b"\x01v"]),
                at
            ),
            b"+1339518083.107412 [0 127.0.0.1:60866] \"set\" \"k\\\"\\n\" \"\\x01v\"\r\n"
        );
        assert_eq!(
            line(2, "lua", &args(&[b"AUTH", b"user", b"secret"]), at),
            b"+1339518083.107412 [2 lua] \"AUTH\" \"(redacted)\" \"(redacted)\"\r\n"
        );
        assert_eq!(
            line(0, "x", &args(&[b"hello", b"3", b"auth", b"u", b"p"]), at),
            b"+1339518083.107412 [0 x] \"hello\" \"3\" \"auth\" \"(redacted)\" \"(redacted)\"\r\n"
        );
    }

    #[tokio::test]
    async fn monitors_get_every_line_and_none_are_made_without_them() {
        let m = Monitors::default();
        assert!(!m.active());
        m.feed(0, "a", &args(&[b"get", b"k"]));
        let mut feed = m.subscribe();
        assert!(m.active());
        m.feed(0, "a", &args(&[b"set", b"k", b"v"]));
        let got = feed.rx.recv().await.expect("a line");
        assert!(got.ends_with(b"[0 a] \"set\" \"k\" \"v\"\r\n"), "{got:?}");
        drop(feed);
        assert!(!m.active());
    }
}
