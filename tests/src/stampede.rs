//! The stampede worker: one "service instance" whose tasks all call one cold
//! key at once, through `#[cached]` (with or without the Redis lock) or a
//! hand-written cache-aside. Its origin takes a set time and counts its calls
//! in Redis (`INCR origin_calls:<key>`), so the count covers every process.
//!
//! One implementation for the multi-process suite (`tests/multi_process.rs`
//! spawns the `stampede_worker` binary) and the `stampede` bench (which
//! re-runs itself as workers, and runs [`wave`] in its own process for the
//! one-process case).
//!
//! A worker process ([`serve`]) prints `ready` once its cache is subscribed
//! to the backplane, waits for a line on stdin, runs the wave, and prints one
//! JSON [`Report`]. Meanwhile it prints `computing` when its origin starts
//! and, in [`Mode::Locked`], `waiting` once one of its calls waits on another
//! process's lock. The parent side is [`Worker`].

use std::collections::BTreeSet;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cache_core::{Cache, Preset, cached};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

/// How the worker's tasks reach the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `#[cached]` with the Redis stampede lock (the default).
    Locked,
    /// `#[cached(lock = false)]`: the in-process single flight only.
    Unlocked,
    /// Hand-written cache-aside: `GET`, on a miss the origin, then `SET`; no
    /// coalescing at all.
    CacheAside,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Locked => "locked",
            Mode::Unlocked => "unlocked",
            Mode::CacheAside => "aside",
        }
    }
}

/// What one worker does; also its command line ([`to_args`](Self::to_args),
/// [`parse`](Self::parse)).
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The Redis every worker shares.
    pub url: String,
    /// The cache's key prefix.
    pub prefix: String,
    /// The cold key (`<prefix>:stampede:<key>` for [`Mode::Locked`]).
    pub key: String,
    /// Concurrent calls, all released together.
    pub tasks: usize,
    /// How long the origin takes.
    pub origin: Duration,
    /// The stampede lock's TTL (renewed while its holder lives).
    pub lock_ttl: Duration,
    /// The value's TTL.
    pub ttl: Duration,
    /// How the tasks reach the value.
    pub mode: Mode,
    /// The origin never returns (the test kills the process).
    pub hold: bool,
}

impl WorkerArgs {
    /// The command line's shape.
    pub const USAGE: &str = "<redis-url> <prefix> <key> <tasks> <origin-ms> <lock-ttl-ms> <ttl-ms> [locked|unlocked|aside] [hold]";

    /// `tasks` calls of `key` through `#[cached]` with the lock; an instant
    /// origin, the default lock TTL (5 s), a TTL of a minute.
    pub fn new(url: String, prefix: &str, key: &str, tasks: usize) -> WorkerArgs {
        WorkerArgs {
            url,
            prefix: prefix.to_owned(),
            key: key.to_owned(),
            tasks,
            origin: Duration::ZERO,
            lock_ttl: Duration::from_secs(5),
            ttl: Duration::from_secs(60),
            mode: Mode::Locked,
            hold: false,
        }
    }

    /// The command line [`parse`](Self::parse) reads.
    pub fn to_args(&self) -> Vec<String> {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut args = vec![
            self.url.clone(),
            self.prefix.clone(),
            self.key.clone(),
            self.tasks.to_string(),
            ms(self.origin),
            ms(self.lock_ttl),
            ms(self.ttl),
            self.mode.name().to_owned(),
        ];
        if self.hold {
            args.push("hold".to_owned());
        }
        args
    }

    /// Reads a command line of the shape [`USAGE`](Self::USAGE) (without
    /// the program name).
    ///
    /// # Errors
    ///
    /// Missing or malformed arguments, with the usage.
    pub fn parse(args: &[String]) -> Result<WorkerArgs, String> {
        let bad = |what: &str| format!("{what}; usage: {}", WorkerArgs::USAGE);
        let [url, prefix, key, tasks, origin, lock_ttl, ttl, rest @ ..] = args else {
            return Err(bad("missing arguments"));
        };
        let ms = |s: &str, what: &str| {
            s.parse()
                .map(Duration::from_millis)
                .map_err(|_| bad(&format!("bad {what} {s:?}")))
        };
        let mut parsed = WorkerArgs {
            url: url.clone(),
            prefix: prefix.clone(),
            key: key.clone(),
            tasks: tasks
                .parse()
                .map_err(|_| bad(&format!("bad tasks {tasks:?}")))?,
            origin: ms(origin, "origin-ms")?,
            lock_ttl: ms(lock_ttl, "lock-ttl-ms")?,
            ttl: ms(ttl, "ttl-ms")?,
            mode: Mode::Locked,
            hold: false,
        };
        for word in rest {
            match word.as_str() {
                "locked" => parsed.mode = Mode::Locked,
                "unlocked" => parsed.mode = Mode::Unlocked,
                "aside" => parsed.mode = Mode::CacheAside,
                "hold" => parsed.hold = true,
                other => return Err(bad(&format!("unknown option {other:?}"))),
            }
        }
        Ok(parsed)
    }
}

// ----- the origin and the three ways to it ------------------------------------

/// The origin's settings, once per process.
struct Origin {
    redis: redis::Client,
    takes: Duration,
    hold: bool,
    /// Print `computing` (a worker process, whose stdout is the protocol).
    announce: bool,
    ttl: Duration,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();
static ORIGIN_CON: tokio::sync::OnceCell<redis::aio::MultiplexedConnection> =
    tokio::sync::OnceCell::const_new();
/// Each origin call's own duration (its `takes` of work), to compare callers with.
static ORIGIN_TIMES: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

/// Sets up this process's origin from `args`: the Redis it counts its calls
/// in, how long it takes, whether it hangs. `announce`: print `computing`
/// when it starts (for a worker process, whose stdout the parent reads). The
/// first call wins; later ones change nothing.
///
/// # Errors
///
/// A malformed Redis URL.
pub fn init_origin(args: &WorkerArgs, announce: bool) -> Result<(), redis::RedisError> {
    let redis = redis::Client::open(args.url.as_str())?;
    let _ = ORIGIN.set(Origin {
        redis,
        takes: args.origin,
        hold: args.hold,
        announce,
        ttl: args.ttl,
    });
    Ok(())
}

async fn origin(key: &str) -> Result<String, String> {
    let o = ORIGIN.get().ok_or("init_origin was not called")?;
    let mut con = ORIGIN_CON
        .get_or_try_init(|| o.redis.get_multiplexed_async_connection())
        .await
        .map_err(|e| e.to_string())?
        .clone();
    let n: u64 = redis::cmd("INCR")
        .arg(format!("origin_calls:{key}"))
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    if o.announce {
        println!("computing");
    }
    if o.hold {
        std::future::pending::<()>().await;
    }
    let t = Instant::now();
    tokio::time::sleep(o.takes).await;
    if let Ok(mut times) = ORIGIN_TIMES.lock() {
        times.push(t.elapsed());
    }
    Ok(format!("{key} #{n} from pid {}", std::process::id()))
}

/// The origin calls' own durations since the last call (and forgets them).
pub fn take_origin_times() -> Vec<Duration> {
    ORIGIN_TIMES
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}

// `short`, set per cache from the worker's TTL.
#[cached(ttl = "short", key = "stampede:<key>")]
async fn locked(key: String) -> Result<String, String> {
    origin(&key).await
}

#[cached(ttl = "short", key = "unlocked:<key>", lock = false)]
async fn unlocked(key: String) -> Result<String, String> {
    origin(&key).await
}

/// The hand-written cache-aside our users replace.
async fn cache_aside(
    con: &mut redis::aio::MultiplexedConnection,
    key: String,
) -> Result<String, String> {
    let k = format!("aside:{key}");
    let hit: Option<String> = redis::cmd("GET")
        .arg(&k)
        .query_async(con)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(v) = hit {
        return Ok(v);
    }
    let v = origin(&key).await?;
    let ttl = ORIGIN.get().map_or(Duration::from_secs(60), |o| o.ttl);
    let () = redis::cmd("SET")
        .arg(&k)
        .arg(&v)
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64)
        .query_async(con)
        .await
        .map_err(|e| e.to_string())?;
    Ok(v)
}

/// The cache a worker uses: over `args.url` under `args.prefix`, `args.ttl`
/// for its values, `args.lock_ttl` for its locks, and waits long enough that
/// no caller gives up while things work: 30 s for a lock, 60 s for a
/// concurrent call, 2 s for a Redis command. (With the default 100 ms, a
/// busy machine makes a healthy Redis look failed: the caller then computes
/// without the lock, by design, and the origin-call counts are off.)
///
/// # Errors
///
/// As [`CacheBuilder::build`](cache_core::CacheBuilder::build).
pub fn cache(args: &WorkerArgs) -> Result<Cache, cache_core::Error> {
    Cache::builder()
        .redis_url(args.url.as_str())
        .key_prefix(args.prefix.as_str())
        .lock_ttl(args.lock_ttl)
        .preset_ttl(Preset::Short, args.ttl)
        .lock_wait(Duration::from_secs(30))
        .single_flight_wait(Duration::from_secs(60))
        .redis_op_timeout(Duration::from_secs(2))
        .build_blocking()
}

/// What the callers of one wave got.
#[derive(Debug, Default)]
pub struct Wave {
    /// The distinct values callers got.
    pub values: BTreeSet<String>,
    /// Callers that got an error.
    pub failures: u64,
    /// Every caller's time, ascending.
    pub latencies: Vec<Duration>,
}

/// `tasks` concurrent calls of `key` in `mode` on `cache`, each in its own
/// task (scoped to `cache`). Needs [`init_origin`].
///
/// # Panics
///
/// If Redis refuses the connection the cache-aside calls use, or a task
/// panics.
pub async fn wave(cache: &Cache, mode: Mode, key: &str, tasks: usize) -> Wave {
    let con = match mode {
        Mode::CacheAside => Some(
            ORIGIN
                .get()
                .expect("init_origin was called")
                .redis
                .get_multiplexed_async_connection()
                .await
                .expect("connect"),
        ),
        Mode::Locked | Mode::Unlocked => None,
    };
    let calls: Vec<_> = (0..tasks)
        .map(|_| {
            let (key, con) = (key.to_owned(), con.clone());
            tokio::spawn(cache.scope(async move {
                let t = Instant::now();
                let r = match mode {
                    Mode::Locked => locked(key).await,
                    Mode::Unlocked => unlocked(key).await,
                    Mode::CacheAside => {
                        let mut con = con.expect("a connection for cache-aside");
                        cache_aside(&mut con, key).await
                    }
                };
                (t.elapsed(), r)
            }))
        })
        .collect();
    let mut wave = Wave::default();
    for call in calls {
        let (took, r) = call.await.expect("caller task");
        wave.latencies.push(took);
        match r {
            Ok(v) => {
                wave.values.insert(v);
            }
            Err(_) => wave.failures += 1,
        }
    }
    wave.latencies.sort_unstable();
    wave
}

// ----- the worker process --------------------------------------------------------

/// A worker's final line: what its callers got, and its cache's counters.
#[derive(Clone, Serialize, Deserialize)]
pub struct Report {
    /// The distinct values its callers got.
    pub values: BTreeSet<String>,
    /// Callers that got an error.
    pub failures: u64,
    /// Origin calls it made (`Stats::misses`).
    pub misses: u64,
    /// Reads of a value another process stored.
    pub l2_hits: u64,
    /// Callers that waited on this process's own call.
    pub coalesced: u64,
    /// Calls that waited on another process's lock.
    pub lock_waits: u64,
    /// Locks taken over from a holder that stopped renewing.
    pub lock_takeovers: u64,
    /// Lock waits that ran out.
    pub lock_timeouts: u64,
    /// Redis commands that failed (`Stats::errors`).
    pub errors: u64,
    /// Redis commands not tried: breaker open, or a replay pending.
    pub redis_skipped: u64,
    /// Every caller's time, ascending.
    pub latencies: Vec<Duration>,
    /// Each of its origin calls' own duration.
    pub origin_times: Vec<Duration>,
}

impl std::fmt::Debug for Report {
    // The counters and values; the timings only as counts, so that a failed
    // assertion printing the reports stays readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("values", &self.values)
            .field("failures", &self.failures)
            .field("misses", &self.misses)
            .field("l2_hits", &self.l2_hits)
            .field("coalesced", &self.coalesced)
            .field("lock_waits", &self.lock_waits)
            .field("lock_takeovers", &self.lock_takeovers)
            .field("lock_timeouts", &self.lock_timeouts)
            .field("errors", &self.errors)
            .field("redis_skipped", &self.redis_skipped)
            .field("latencies", &self.latencies.len())
            .field("origin_times", &self.origin_times.len())
            .finish()
    }
}

/// Runs a worker process on stdin/stdout (see the module's docs): builds the
/// cache, prints `ready`, waits for a line, runs the wave, prints the
/// [`Report`] as one JSON line.
///
/// # Errors
///
/// A cache that does not build, a malformed Redis URL, or broken stdio.
pub async fn serve(args: WorkerArgs) -> Result<(), Box<dyn Error>> {
    init_origin(&args, true)?;
    let cache = cache(&args)?;
    // Subscribed to the backplane, so release messages reach us.
    let mut status = cache.backplane().ok_or("no backplane")?;
    status.wait_for(|s| s.connected).await?;
    println!("ready");

    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;

    // No event tells that a call waits on another process's lock: poll the
    // counter (only where there is a lock to wait on).
    let watcher = (args.mode == Mode::Locked).then(|| {
        let cache = cache.clone();
        tokio::spawn(async move {
            loop {
                if cache.stats().await.lock_waits > 0 {
                    println!("waiting");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    });
    let wave = wave(&cache, args.mode, &args.key, args.tasks).await;
    if let Some(w) = watcher {
        w.abort();
    }
    let s = cache.stats().await;
    let report = Report {
        values: wave.values,
        failures: wave.failures,
        misses: s.misses,
        l2_hits: s.l2_hits,
        coalesced: s.coalesced,
        lock_waits: s.lock_waits,
        lock_takeovers: s.lock_takeovers,
        lock_timeouts: s.lock_timeouts,
        errors: s.errors,
        redis_skipped: s.redis_skipped,
        latencies: wave.latencies,
        origin_times: take_origin_times(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

// ----- the parent's side ---------------------------------------------------------

/// Generous bound on any one line from a worker; never reached when things work.
const EVENT: Duration = Duration::from_secs(30);

/// A worker process, seen from the test or bench that started it. Killed on
/// drop.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Worker {
    /// Starts `program` (a worker: the `stampede_worker` binary, or a bench
    /// re-run in worker mode, with any leading arguments it needs) with
    /// `args` appended.
    ///
    /// # Panics
    ///
    /// If the process does not start.
    pub fn spawn(mut program: Command, args: &WorkerArgs) -> Worker {
        let mut child = program
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a stampede worker");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Worker {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for a line equal to `what` (`ready`, `computing`, `waiting`),
    /// skipping others.
    ///
    /// # Panics
    ///
    /// If it does not come within 30 s.
    pub fn expect(&self, what: &str) {
        loop {
            let line = self
                .lines
                .recv_timeout(EVENT)
                .unwrap_or_else(|_| panic!("worker did not print {what:?}"));
            if line == what {
                return;
            }
        }
    }

    /// Releases the worker's calls.
    ///
    /// # Panics
    ///
    /// If the worker's stdin is closed.
    pub fn go(&mut self) {
        writeln!(self.stdin, "go").expect("write go");
        self.stdin.flush().expect("flush");
    }

    /// The final report, skipping other lines.
    ///
    /// # Panics
    ///
    /// If none comes within 60 s, or it is not a report.
    pub fn report(&self) -> Report {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("worker report");
            if line.starts_with('{') {
                return serde_json::from_str(&line).expect("report is JSON");
            }
        }
    }

    /// SIGKILL, and reaps the process.
    ///
    /// # Panics
    ///
    /// If the process cannot be killed or reaped.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9 the worker");
        self.child.wait().expect("reap");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The origin calls made for `key` so far, all processes together.
///
/// # Panics
///
/// If Redis cannot be reached.
pub fn origin_calls(url: &str, key: &str) -> u64 {
    let client = redis::Client::open(url).expect("redis url");
    let mut con = client.get_connection().expect("connect");
    redis::cmd("GET")
        .arg(format!("origin_calls:{key}"))
        .query::<Option<u64>>(&mut con)
        .expect("GET")
        .unwrap_or(0)
}
