//! A private `redis-server` for one test: free port, temporary directory, no
//! persistence, killed on drop. Tests use it to kill, pause (SIGSTOP) and
//! restart Redis. Its log is printed when the test fails.
//!
//! When `redis-server` is missing, the tests that need it are reported as
//! ignored (`tests/build.rs` sets the cfg `skip_redis`, and each such test
//! carries `#[cfg_attr(skip_redis, ignore = "...")]`), unless
//! `CACHE_REQUIRE_REDIS=1` (set by `.ci/run`): then they run, and
//! [`RedisServer::start`] fails them with the install hint.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(unix)]
use rustix::process::{Pid, Signal, kill_process};

use crate::redis_binary;

const INSTALL_HINT: &str = "install it to run the Redis suites: `sudo apt-get install redis-server` (Debian/Ubuntu), \
`brew install redis` (macOS), or point REDIS_SERVER_BIN at a binary";

/// A running private Redis.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
    config: ServerConfig,
}

/// What a server runs with beyond the defaults (port, `127.0.0.1`, no
/// persistence, its own directory): extra command-line settings, and a
/// configuration file for the modes that need one (a Sentinel rewrites its
/// file).
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Extra arguments, e.g. `["--cluster-enabled", "yes"]`.
    pub args: Vec<String>,
    /// The contents of a configuration file written into the server's
    /// directory and passed first, with `{port}` replaced by its port.
    pub file: Option<String>,
    /// Start as a Sentinel (`--sentinel`; needs [`file`](Self::file)).
    pub sentinel: bool,
}

impl ServerConfig {
    /// A server that keeps its data across a restart: AOF, fsynced per write.
    pub fn durable() -> ServerConfig {
        ServerConfig {
            args: ["--appendonly", "yes", "--appendfsync", "always"]
                .map(String::from)
                .to_vec(),
            ..ServerConfig::default()
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts a server.
    ///
    /// # Panics
    ///
    /// If `redis-server` is missing (with how to install it: a test that
    /// runs without it was required to, by `CACHE_REQUIRE_REDIS=1` or
    /// `--include-ignored`), or the server does not become ready.
    pub fn start() -> RedisServer {
        RedisServer::start_with(ServerConfig::default())
    }

    /// Starts a server with `config` (a cluster node, a replica, a
    /// Sentinel).
    ///
    /// # Panics
    ///
    /// As for [`start`](Self::start).
    pub fn start_with(config: ServerConfig) -> RedisServer {
        let mut server = RedisServer::reserve_with(config);
        let mut last_error = String::new();
        for _ in 0..5 {
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    // Most likely the port was taken in between: try another.
                    last_error = e;
                    server.port = free_port();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// For programs libtest does not run (the benchmarks), which cannot be
    /// reported as ignored: a started server, or `None` after printing how
    /// to install `redis-server` when it is missing and `CACHE_REQUIRE_REDIS`
    /// is not `1`.
    ///
    /// # Panics
    ///
    /// As for [`start`](Self::start), when the binary is missing under
    /// `CACHE_REQUIRE_REDIS=1`.
    pub fn start_or_skip() -> Option<RedisServer> {
        if redis_binary::find().is_none()
            && std::env::var("CACHE_REQUIRE_REDIS").as_deref() != Ok("1")
        {
            eprintln!(
                "SKIPPED: redis-server not found; {INSTALL_HINT}. Set CACHE_REQUIRE_REDIS=1 to make this a failure."
            );
            return None;
        }
        Some(RedisServer::start())
    }

    /// A server with its port and directory chosen but not started yet (for
    /// "Redis comes up after the app"): start it with [`restart`](Self::restart).
    ///
    /// # Panics
    ///
    /// If `redis-server` is missing, as for [`start`](Self::start).
    pub fn reserve() -> RedisServer {
        RedisServer::reserve_with(ServerConfig::default())
    }

    /// [`reserve`](Self::reserve) with `config`.
    ///
    /// # Panics
    ///
    /// As for [`reserve`](Self::reserve).
    pub fn reserve_with(config: ServerConfig) -> RedisServer {
        let Some(binary) = redis_binary::find() else {
            if std::env::var("CACHE_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("redis-server not found and CACHE_REQUIRE_REDIS=1: {INSTALL_HINT}");
            }
            panic!(
                "redis-server not found: {INSTALL_HINT}. (Tests that need it are reported as \
                 ignored when it is missing at build time; this one ran under --include-ignored, \
                 or it was removed after the build.)"
            );
        };
        let dir = tempfile::Builder::new()
            .prefix("cache-redis-test-")
            .tempdir()
            .expect("temp dir");
        RedisServer {
            child: None,
            port: free_port(),
            binary,
            dir,
            config,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(&self.binary);
        if let Some(file) = &self.config.file {
            let path = self.dir.path().join("redis.conf");
            // Written once: a Sentinel rewrites it with what it learnt, and a
            // restart must find that.
            if !path.exists() {
                std::fs::write(&path, file.replace("{port}", &self.port.to_string()))
                    .map_err(|e| format!("write {}: {e}", path.display()))?;
            }
            command.arg(path);
        }
        if self.config.sentinel {
            command.arg("--sentinel");
        }
        let child = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.config.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            if ping(self.port) {
                return Ok(());
            }
            // Polling an external process for readiness: there is no event to await.
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        Err(format!("not ready after 10 s; log:\n{}", self.log()))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port, kept across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends `signal` to the server process, if it runs.
    #[cfg(unix)]
    fn signal(&self, signal: Signal) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            kill_process(pid, signal).unwrap_or_else(|e| panic!("{signal:?}: {e}"));
        }
    }

    /// SIGSTOP: the server hangs (connections stay open, nothing answers).
    ///
    /// # Panics
    ///
    /// On a system without Unix signals (where no Redis suite runs).
    pub fn pause(&self) {
        #[cfg(unix)]
        self.signal(Signal::STOP);
        #[cfg(not(unix))]
        panic!("pausing redis-server needs Unix signals (SIGSTOP)");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        #[cfg(unix)]
        self.signal(Signal::CONT);
    }

    /// SIGKILL: connections are refused until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    ///
    /// # Panics
    ///
    /// If it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must be continued to die promptly.
            #[cfg(unix)]
            if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, Signal::CONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- redis-server log (port {}) ---\n{}",
                self.port,
                self.log()
            );
        }
        self.stop();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    // A server with `requirepass` answers, but only to say so: it is up.
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
}

/// Plain keys `bench:other:<n>` for `n` in `from..to` (value `x`), by
/// pipelined `SET`s of 10,000: other data in the database, for the
/// invalidation benchmarks (what a `SCAN` has to walk).
///
/// # Errors
///
/// The first failed pipeline's error.
pub async fn fill_plain_keys(
    con: &mut impl redis::aio::ConnectionLike,
    from: usize,
    to: usize,
) -> redis::RedisResult<()> {
    const BATCH: usize = 10_000;
    let mut i = from;
    while i < to {
        let end = (i + BATCH).min(to);
        let mut pipe = redis::pipe();
        for n in i..end {
            pipe.cmd("SET")
                .arg(format!("bench:other:{n}"))
                .arg("x")
                .ignore();
        }
        pipe.query_async::<()>(con).await?;
        i = end;
    }
    Ok(())
}
