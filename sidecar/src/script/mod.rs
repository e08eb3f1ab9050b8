//! Lua scripts: the script cache (by SHA1), script flags from `#!lua` shebangs, the
//! scripts running now (for `-BUSY` and SCRIPT KILL), and the shas found touching keys
//! they did not declare (run holding every key). The Lua VM itself is in [`vm`].

pub mod functions;
mod libs;
mod msgpack;
mod structlib;
pub mod vm;

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// A script's flags (`#!lua flags=...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `no-writes`: write commands are refused.
    pub no_writes: bool,
    /// A shebang was given (Redis then applies the flags strictly).
    pub shebang: bool,
}

/// What earlier runs of a script or function showed, which decides how the next
/// one runs.
#[derive(Debug, Default)]
pub struct Habits {
    /// Its last run was quick (it runs without handing its worker's other
    /// connections to another thread first).
    quick: AtomicBool,
    /// It touched keys it did not declare (it runs holding every key).
    exclusive: AtomicBool,
}

impl Habits {
    /// Whether the last run was quick.
    pub fn is_quick(&self) -> bool {
        self.quick.load(Ordering::Relaxed)
    }

    /// A run ended; `quick` says whether it was.
    pub fn note_duration(&self, quick: bool) {
        self.quick.store(quick, Ordering::Relaxed);
    }

    /// Whether it touched undeclared keys before.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive.load(Ordering::Relaxed)
    }

    /// It touched an undeclared key.
    pub fn mark_exclusive(&self) {
        self.exclusive.store(true, Ordering::Relaxed);
    }
}

/// Gives each [`Script`] its own number (the key of its compiled form in each VM).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A script, compiled per VM on first use.
#[derive(Debug)]
pub struct Script {
    /// This script object's number, unique in the process.
    pub id: u64,
    /// Lower-case hex SHA1 of the body.
    pub sha: String,
    /// The body as Lua sees it (a shebang line turned into a comment, so line numbers
    /// stay those of the body).
    pub code: Bytes,
    /// Its flags.
    pub flags: Flags,
    /// What its runs showed.
    pub habits: Habits,
}

/// Lower-case hex SHA1 (`redis.sha1hex`, script names).
pub fn sha1_hex(b: &[u8]) -> String {
    sha1_smol::Sha1::from(b).digest().to_string()
}

impl Script {
    /// Reads the shebang, if any; the error is Redis' text.
    pub fn new(body: &Bytes) -> Result<Script, String> {
        let (code, flags) = if body.starts_with(b"#!") {
            let mut code = b"--".to_vec();
            code.extend_from_slice(body);
            (code.into(), shebang_flags(body)?)
        } else {
            (body.clone(), Flags::default())
        };
        Ok(Script {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sha: sha1_hex(body),
            code,
            flags,
            habits: Habits::default(),
        })
    }
}

/// The flags of a body that starts with a shebang line; the error is Redis' text.
fn shebang_flags(body: &[u8]) -> Result<Flags, String> {
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some("#!lua") {
        return Err(format!("ERR Unexpected engine in script shebang: {line}"));
    }
    let mut flags = Flags {
        shebang: true,
        ..Flags::default()
    };
    for w in words {
        let Some(list) = w.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {w}"));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            match f {
                "no-writes" => flags.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => return Err(format!("ERR Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok(flags)
}

/// One script running now.
#[derive(Debug)]
pub struct Running {
    /// When it started.
    pub started: Instant,
    /// Set by SCRIPT KILL.
    pub kill: AtomicBool,
    /// It ran a write command (then it cannot be killed).
    pub wrote: AtomicBool,
    /// It ran past `scripting.busy_timeout`.
    pub busy: AtomicBool,
}

/// The script cache and the scripts running now.
#[derive(Default)]
pub struct Scripts {
    cache: Mutex<HashMap<String, Arc<Script>, Xxh3DefaultBuilder>>,
    /// Functions' habits, by name.
    functions: Mutex<HashMap<String, Arc<Habits>>>,
    running: Mutex<Vec<Arc<Running>>>,
    busy: AtomicUsize,
}

/// What SCRIPT KILL found.
#[derive(Debug, PartialEq, Eq)]
pub enum Kill {
    /// Told to stop.
    Killed,
    /// Nothing runs.
    NotBusy,
    /// The running script has written.
    Unkillable,
}

impl Scripts {
    /// Caches `body` (EVAL and SCRIPT LOAD); the error is Redis' text.
    pub fn load(&self, body: &Bytes) -> Result<Arc<Script>, String> {
        let sha = sha1_hex(body);
        if let Some(s) = self.cache.lock().get(&sha) {
            return Ok(s.clone());
        }
        let script = Arc::new(Script::new(body)?);
        vm::compile_check(&script)?;
        self.cache.lock().insert(sha, script.clone());
        Ok(script)
    }

    /// The cached script with this sha (any case).
    pub fn get(&self, sha: &[u8]) -> Option<Arc<Script>> {
        let mut buf = [0u8; 40];
        if sha.len() != buf.len() {
            return None;
        }
        buf.copy_from_slice(sha);
        buf.make_ascii_lowercase();
        let sha = std::str::from_utf8(&buf).ok()?;
        self.cache.lock().get(sha).cloned()
    }

    /// SCRIPT FLUSH.
    pub fn flush(&self) {
        self.cache.lock().clear();
        self.functions.lock().clear();
        vm::forget_all();
    }

    /// The habits of function `name`.
    pub fn function_habits(&self, name: &str) -> Arc<Habits> {
        let mut f = self.functions.lock();
        if let Some(h) = f.get(name) {
            return h.clone();
        }
        let h = Arc::new(Habits::default());
        f.insert(name.to_string(), h.clone());
        h
    }

    /// A script starts; it is tracked until the guard drops.
    pub fn start(self: &Arc<Self>) -> RunningGuard {
        let r = Arc::new(Running {
            started: Instant::now(),
            kill: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        });
        self.running.lock().push(r.clone());
        RunningGuard {
            scripts: self.clone(),
            running: r,
        }
    }

    /// A running script passed the busy timeout.
    pub fn mark_busy(&self, r: &Running) {
        if !r.busy.swap(true, Ordering::AcqRel) {
            self.busy.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                ms = r.started.elapsed().as_millis() as u64,
                "a script is still running; other clients get -BUSY until it ends or SCRIPT KILL stops it"
            );
        }
    }

    /// Whether a script is past the busy timeout (other clients then get `-BUSY`).
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// SCRIPT KILL: stops every running script that has not written.
    pub fn kill(&self) -> Kill {
        let running = self.running.lock();
        if running.is_empty() {
            return Kill::NotBusy;
        }
        if running.iter().any(|r| r.wrote.load(Ordering::Acquire)) {
            return Kill::Unkillable;
        }
        for r in running.iter() {
            r.kill.store(true, Ordering::Release);
        }
        Kill::Killed
    }
}

/// A running script's registration; dropping it ends the run.
pub struct RunningGuard {
    scripts: Arc<Scripts>,
    /// The run's state, shared with SCRIPT KILL.
    pub running: Arc<Running>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut all = self.scripts.running.lock();
        all.retain(|r| !Arc::ptr_eq(r, &self.running));
        if self.running.busy.load(Ordering::Acquire) {
            self.scripts.busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_give_flags_or_redis_errors() {
        let s = Script::new(&Bytes::from_static(b"#!lua flags=no-writes\nreturn 1")).expect("ok");
        assert!(s.flags.no_writes && s.flags.shebang);
        assert!(
            s.code.starts_with(b"--#!lua"),
            "the shebang line stays line 1"
        );
        assert_eq!(
            Script::new(&Bytes::from_static(b"#!lua flags=bogus\nreturn 1")).err(),
            Some("ERR Unexpected flag in script shebang: bogus".into())
        );
        assert_eq!(
            Script::new(&Bytes::from_static(b"#!py\nreturn 1")).err(),
            Some("ERR Unexpected engine in script shebang: #!py".into())
        );
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn kill_stops_only_scripts_that_have_not_written() {
        let scripts = Arc::new(Scripts::default());
        assert_eq!(scripts.kill(), Kill::NotBusy);
        let g = scripts.start();
        assert_eq!(scripts.kill(), Kill::Killed);
        assert!(g.running.kill.load(Ordering::Acquire));
        g.running.wrote.store(true, Ordering::Release);
        assert_eq!(scripts.kill(), Kill::Unkillable);
        scripts.mark_busy(&g.running);
        assert!(scripts.is_busy());
        drop(g);
        assert!(!scripts.is_busy(), "the end of a run ends the busy state");
        assert_eq!(scripts.kill(), Kill::NotBusy);
    }
}
