//! Starts the real `caskade` binary for end-to-end tests: a free port, a fresh data
//! directory, readiness read from its stdout, SIGTERM on request and SIGKILL on drop.
#![allow(dead_code)]

pub mod plugin_files;
pub mod resp;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Run from this directory with the default (relative) data directory.
    cwd: Option<PathBuf>,
}

/// Runs the binary with `args` and `env` to completion.
pub fn caskade(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_caskade"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run caskade")
}

/// `caskade --check-config CFG` run from `/`, so relative paths can only resolve
/// against the configuration file: (succeeded, stdout, stderr).
pub fn check_config_elsewhere(cfg: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_caskade"))
        .current_dir("/")
        .arg("--check-config")
        .arg(cfg)
        .output()
        .expect("run caskade");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Two distinct free ports: both listeners are held until both are known, since the
/// kernel may hand the same port out again once the first one is closed.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("free port");
    let port = |l: &TcpListener| l.local_addr().expect("local addr").port();
    (port(&a), port(&b))
}

/// How often a first start is retried on fresh ports when the process exits before it
/// is ready: another test may take a port between the pick and the bind.
const START_ATTEMPTS: usize = 4;

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Self::start_with_env(args, &[])
    }

    /// Starts the binary from `cwd` without `--dir`, so it uses its default data
    /// directory, `caskade-data`, a relative path.
    pub fn start_in(cwd: &Path, args: &[&str]) -> Server {
        let (port, admin_port) = free_ports();
        let mut s = Server {
            child: None,
            port,
            admin_port,
            dir: cwd.join("caskade-data"),
            _tmp: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            cwd: Some(cwd.to_path_buf()),
        };
        s.spawn_fresh();
        s
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let (port, admin_port) = free_ports();
        let mut s = Server {
            child: None,
            port,
            admin_port,
            dir,
            _tmp: Some(tmp),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: None,
        };
        s.spawn_fresh();
        s
    }

    /// Spawns on the chosen ports, moving to fresh ones if the process exits before
    /// it is ready (a port taken meanwhile); the last attempt's failure is the panic.
    fn spawn_fresh(&mut self) {
        for _ in 1..START_ATTEMPTS {
            if self.try_spawn().is_ok() {
                return;
            }
            (self.port, self.admin_port) = free_ports();
        }
        self.spawn();
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("caskade did not report ready within 30 s: {e}");
        }
    }

    /// Starts the process and waits for "caskade ready"; `Err` if it exited first or
    /// took longer than 30 s (then it is killed).
    fn try_spawn(&mut self) -> Result<(), std::sync::mpsc::RecvTimeoutError> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caskade"));
        match &self.cwd {
            Some(cwd) => cmd.current_dir(cwd),
            None => cmd.arg("--dir").arg(&self.dir),
        };
        let mut child = cmd
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--admin-port")
            .arg(self.admin_port.to_string())
            .args(&self.args)
            .env("CASKADE_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn caskade");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("caskade ready") {
                    let _ = tx.send(());
                }
            }
        });
        if let Err(e) = rx.recv_timeout(Duration::from_secs(30)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("client")
            .get_connection()
            .expect("connect")
    }

    pub fn client_resp3(&self) -> redis::Connection {
        redis::Client::open(format!("{}?protocol=resp3", self.url()))
            .expect("client")
            .get_connection()
            .expect("connect")
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sigterm");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "caskade did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 30 s) for the process to exit by itself (SHUTDOWN).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "caskade did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGHUP (reloads plugins).
    pub fn signal_hup(&self) {
        let child = self.child.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("sighup");
    }

    /// SIGKILL, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the binary again on the same port and directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        self.spawn();
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// GET `path` on the admin port: (status code, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut t =
            std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).expect("admin connect");
        write!(t, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
        let mut resp = String::new();
        t.read_to_string(&mut resp).expect("read");
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs one command (`args[0]` is its name), failing the test on an error reply.
/// A numeric field of INFO `sections` (e.g. `["caskade", "plugins"]`).
pub fn info_u64(c: &mut redis::Connection, sections: &[&str], field: &str) -> u64 {
    let args: Vec<&str> = std::iter::once("INFO")
        .chain(sections.iter().copied())
        .collect();
    let info: String = q(c, &args);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO lacks {field}:\n{info}"))
}

pub fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}
