//! cache-rs beside the raw building blocks (moka, redis-rs) and the Rust
//! peers (`cached`, hitbox, multi-tier-cache), every case in one process on
//! one private `redis-server`, with the same ~1 KB struct everywhere.
//!
//! ```sh
//! cargo run --release -p cache-bench --features peers            # full run
//! cargo run --release -p cache-bench --features peers -- --quick # under a minute
//! ```
//!
//! Without `--features peers` only cache-rs and the raw blocks run. Prints a
//! table and writes `peers.json`, `peers.svg` and `peers.md` to
//! `target/cache-bench/` (or `--out DIR`).
//!
//! Cases, in order (Redis is killed for the last one):
//! 1. L1 hit; 2. L1 hits from 2 threads x 64 tasks; 3. L2 hit with L1 off;
//! 4. L2 throughput of 64 and of 256 tasks on independent keys (ours with
//!    reads batched and not, and our Redis tier alone, vs raw `GET` and raw
//!    `MGET`: in batches of 32 for 64 tasks, of 64 for 256);
//! 5. a mix of 90% in-process and 10% Redis hits from 64 tasks;
//! 6. origin calls for 1,000 concurrent cold callers; 7. invalidating 1,000
//!    of 1,000,000 keys (100,000 in quick mode); 8. an L1-miss call with Redis
//!    killed, each call abandoned after a bound (30 s; 2 s in quick mode).

mod data;
mod measure;
mod ours;
#[cfg(feature = "peers")]
mod peers;
mod raw;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cache_core::Cache;
use cache_redis::{RedisConfig, RedisStore};
use examples::median;
use redis::aio::MultiplexedConnection;
use tests::redis_server::RedisServer;

use crate::data::set_origin_delay;
use crate::measure::{Call, Entrant, Spec, interleaved};
use crate::report::{Case, Report, Row, Unit};

/// Records per hit case (each library fills the same ids).
const KEYS: u64 = 256;
/// Concurrent callers of one cold key.
const CALLERS: usize = 1_000;
/// The stampede case's origin time.
const ORIGIN: Duration = Duration::from_millis(50);
/// Tasks in the throughput case.
const TASKS: usize = 64;
/// Tasks in the wide throughput case (one key each).
const WIDE_TASKS: usize = 256;
/// Keys of the invalidated prefix.
const MATCHING: usize = 1_000;

#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    l1: (usize, u32),
    /// Rounds, and calls per task, of the two-thread in-process case.
    l1_threads: (usize, usize),
    /// Rounds, and calls per task, of the mixed case.
    mixed: (usize, usize),
    l2: (usize, u32),
    throughput: (usize, usize),
    stampede_rounds: usize,
    total_keys: usize,
    invalidation_rounds: usize,
    outage: (usize, Duration),
    out: PathBuf,
    /// The cases to run (numbers as listed in the module docs); all if empty.
    only: Vec<usize>,
}

impl Plan {
    fn runs(&self, case: usize) -> bool {
        self.only.is_empty() || self.only.contains(&case)
    }
}

impl Plan {
    fn new(quick: bool, out: PathBuf) -> Plan {
        if quick {
            Plan {
                quick,
                l1: (5, 20_000),
                l1_threads: (3, 2_000),
                mixed: (3, 200),
                l2: (5, 400),
                throughput: (3, 100),
                stampede_rounds: 1,
                total_keys: 100_000,
                invalidation_rounds: 3,
                outage: (3, Duration::from_secs(2)),
                out,
                only: Vec::new(),
            }
        } else {
            Plan {
                quick,
                l1: (21, 100_000),
                l1_threads: (11, 20_000),
                mixed: (11, 1_000),
                l2: (21, 2_000),
                throughput: (11, 400),
                stampede_rounds: 3,
                total_keys: 1_000_000,
                invalidation_rounds: 5,
                outage: (5, Duration::from_secs(30)),
                out,
                only: Vec::new(),
            }
        }
    }
}

fn usage() -> &'static str {
    "usage: cache-bench [--quick] [--out DIR] [--only N,N...]\n\
     Starts its own redis-server. Build with `--features peers` to include cached, hitbox and multi-tier-cache.\n\
     --only runs these cases: 1 L1 hit, 2 L1 hits from 2 threads, 3 L2 hit, 4 L2 throughput\n\
     (64 and 256 tasks), 5 90/10 mix, 6 cold callers, 7 invalidation, 8 Redis killed.\n\
     BENCH_QUICK=1 is the same as --quick."
}

fn main() -> ExitCode {
    let mut quick = std::env::var_os("BENCH_QUICK").is_some();
    let mut out = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/cache-bench"
    ));
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--full" => quick = false,
            "--out" => match args.next() {
                Some(dir) => out = PathBuf::from(dir),
                None => {
                    eprintln!("--out needs a directory\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--only" => {
                let parsed: Option<Vec<usize>> = args.next().and_then(|list| {
                    list.split(',')
                        .map(|n| n.trim().parse().ok().filter(|n| (1..=8).contains(n)))
                        .collect()
                });
                match parsed {
                    Some(cases) => only = cases,
                    None => {
                        eprintln!(
                            "--only needs case numbers 1-8, e.g. --only 4,5\n{}",
                            usage()
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => {
                eprintln!("unknown argument {other}\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build measures unoptimised code; run with --release for figures");
    }
    let Some(mut server) = RedisServer::start_or_skip() else {
        eprintln!("cache-bench needs redis-server (see above)");
        return ExitCode::FAILURE;
    };
    let plan = Plan {
        only,
        ..Plan::new(quick, out)
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match rt.block_on(run(&mut server, &plan)) {
        Ok(report) => {
            print!("{}", report.table());
            match write(&report, &plan) {
                Ok(files) => {
                    println!(
                        "\nwrote {files} in {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("writing results to {}: {e}", plan.out.display());
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!(
                "cache-bench failed: {e}\nredis-server log:\n{}",
                server.log()
            );
            ExitCode::FAILURE
        }
    }
}

fn write(report: &Report, plan: &Plan) -> std::io::Result<String> {
    std::fs::create_dir_all(&plan.out)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    let files = [
        ("peers.json", json),
        ("peers.svg", report.svg()),
        ("peers.md", report.markdown()),
    ];
    let mut names = Vec::new();
    for (name, body) in files {
        let path = plan.out.join(name);
        std::fs::write(&path, body)?;
        names.push(path.display().to_string());
    }
    Ok(names.join(", "))
}

/// Contenders of every library for one kind of case.
struct Field {
    ours: ours::Ours,
    raw: raw::Raw,
    #[cfg(feature = "peers")]
    peers: peers::Peers,
}

impl Field {
    fn l1(&self) -> Vec<Entrant> {
        let mut v = self.ours.l1(KEYS);
        v.extend(self.raw.l1(KEYS));
        #[cfg(feature = "peers")]
        v.extend(self.peers.l1(KEYS));
        v
    }

    fn l2(&self) -> Vec<Entrant> {
        let mut v = self.ours.l2(KEYS);
        v.extend(self.raw.l2(KEYS));
        #[cfg(feature = "peers")]
        v.extend(self.peers.l2(KEYS));
        v
    }

    #[cfg_attr(not(feature = "peers"), allow(unused_mut))]
    fn stampede(&self) -> Vec<(Spec, Call)> {
        let mut v = self.ours.calls();
        #[cfg(feature = "peers")]
        v.extend(self.peers.stampede());
        v
    }

    #[cfg_attr(not(feature = "peers"), allow(unused_mut))]
    fn outage(&self) -> Vec<(Spec, Call)> {
        let mut v = self.ours.calls();
        #[cfg(feature = "peers")]
        v.extend(self.peers.outage());
        v
    }
}

/// A progress line: the case starting, and the time since the run began.
fn step(n: usize, what: &str, started: &Instant) {
    eprintln!(
        "[{n}/8] {what} (at {:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

async fn run(server: &mut RedisServer, plan: &Plan) -> Result<Report, String> {
    let started = Instant::now();
    let url = server.url();
    let field = Field {
        ours: ours::Ours::setup(&url)
            .await
            .map_err(|e| format!("cache-rs: {e}"))?,
        raw: raw::Raw::setup(&url, KEYS)
            .await
            .map_err(|e| format!("raw redis: {e}"))?,
        #[cfg(feature = "peers")]
        peers: peers::Peers::setup(&url).await?,
    };
    if raw::get_postcard(field.raw.con.clone(), 1).await.is_none() {
        return Err("the raw baseline cannot read its own keys".into());
    }
    let mut report = Report {
        mode: if plan.quick { "quick" } else { "full" },
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(&field.raw.con).await,
        versions: versions(),
        cases: Vec::new(),
    };
    set_origin_delay(Duration::ZERO);

    if plan.runs(1) {
        step(1, "L1 hit", &started);
        report.cases.push(
            hits(
                "l1_hit",
                "L1 hit (in-process), ~1 KB struct",
                plan.l1,
                field.l1(),
                "moka: future",
            )
            .await,
        );
    }

    if plan.runs(2) {
        step(2, "L1 hit, 2 threads x 64 tasks", &started);
        report.cases.push(l1_two_threads(&field, plan).await);
    }

    if plan.runs(3) {
        step(3, "L2 hit, L1 off", &started);
        report.cases.push(
            hits(
                "l2_hit",
                "L2 hit (Redis), in-process tier off, ~1 KB struct",
                plan.l2,
                field.l2(),
                "redis-rs: GET + postcard",
            )
            .await,
        );
    }

    if plan.runs(4) {
        step(4, "L2 throughput, 64 and 256 tasks", &started);
        report.cases.push(
            throughput(
                &field,
                plan,
                TASKS,
                &[
                    Reader::Batched,
                    Reader::Unbatched,
                    Reader::Store,
                    Reader::RawGet,
                    Reader::RawMget(TASKS / 2),
                ],
                Reader::RawGet,
            )
            .await,
        );
        report.cases.push(
            throughput(
                &field,
                plan,
                WIDE_TASKS,
                &[
                    Reader::Batched,
                    Reader::Unbatched,
                    Reader::Store,
                    Reader::RawGet,
                    Reader::RawMget(TASKS),
                ],
                Reader::RawMget(TASKS),
            )
            .await,
        );
    }

    if plan.runs(5) {
        step(5, "mixed: 90% in-process, 10% Redis", &started);
        report.cases.push(mixed(&field, plan).await);
    }

    if plan.runs(6) {
        step(6, "1,000 concurrent cold callers", &started);
        report.cases.push(stampede(&field, plan).await);
    }

    if plan.runs(7) {
        step(7, "invalidation", &started);
        report.cases.push(invalidation(&field, &url, plan).await?);
    }

    if plan.runs(8) {
        step(8, "Redis killed", &started);
        server.kill();
        report.cases.push(outage(&field, plan).await);
    }
    Ok(report)
}

async fn hits(
    id: &'static str,
    title: &str,
    (rounds, iters): (usize, u32),
    mut entrants: Vec<Entrant>,
    baseline: &str,
) -> Case {
    let figures = interleaved(rounds, iters, &mut entrants).await;
    let rows = entrants
        .iter()
        .zip(figures.per_op.iter().zip(&figures.origin_calls))
        .map(|(e, (t, calls))| {
            let row = Row::new(&e.spec, t.as_secs_f64());
            if *calls > 0 {
                let share = *calls as f64 / (rounds as f64 * f64::from(iters));
                row.note(format!(
                    "not all hits: origin called on {:.1}% of calls",
                    share * 100.0
                ))
            } else {
                row
            }
        })
        .collect();
    Case {
        id,
        title: title.into(),
        how: format!("median per call, {rounds} rounds x {iters} calls over {KEYS} keys, libraries alternating"),
        unit: Unit::Seconds,
        baseline: None,
        rows,
    }
    .with_ratios(baseline)
}

/// Calls per second of `call` from 2 worker threads x [`TASKS`] tasks,
/// each task cycling over the [`KEYS`] hot keys from its own offset. Runs
/// on a runtime of its own, on a blocking thread, so that this one keeps
/// driving the Redis connections.
async fn on_two_threads<F, Fut>(call: F, per_task: usize) -> f64
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send,
{
    let measured = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .ok()?;
        Some(rt.block_on(async move {
            let t = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for task in 0..TASKS {
                let call = call.clone();
                set.spawn(async move {
                    for i in 0..per_task {
                        let id = ((task * 7 + i) as u64) % KEYS;
                        std::hint::black_box(call(id).await);
                    }
                });
            }
            set.join_all().await;
            (TASKS * per_task) as f64 / t.elapsed().as_secs_f64()
        }))
    });
    measured.await.ok().flatten().unwrap_or(0.0)
}

/// In-process hits from 2 threads x 64 tasks on a hot working set: where
/// a cache behind one lock should lose.
#[cfg_attr(not(feature = "peers"), allow(unused_mut, clippy::useless_vec))]
async fn l1_two_threads(field: &Field, plan: &Plan) -> Case {
    let (rounds, per_task) = plan.l1_threads;
    let future = field.raw.future.clone();
    let moka_future = move |id: u64| {
        let future = future.clone();
        async move { future.get(&format!("employee:{id}")).await }
    };
    let sync = field.raw.sync.clone();
    let moka_sync = move |id: u64| {
        let v = sync.get(&format!("employee:{id}"));
        async move { v }
    };
    let mut specs = vec![
        Spec::new(
            "cache-rs",
            "#[cached], L1 + Redis",
            "none (typed)",
            measure::Kind::Ours,
        ),
        Spec::new(
            "moka",
            "future::Cache get + clone",
            "none (typed)",
            measure::Kind::Raw,
        ),
        Spec::new(
            "moka",
            "sync::Cache get + clone",
            "none (typed)",
            measure::Kind::Raw,
        ),
    ];
    #[cfg(feature = "peers")]
    specs.push(Spec::new(
        "cached",
        "#[cached(max_size, ttl_secs)]",
        "none (typed)",
        measure::Kind::Peer,
    ));
    let mut figures = vec![Vec::new(); specs.len()];
    for _ in 0..rounds {
        figures[0].push(on_two_threads(ours::two_tier, per_task).await);
        figures[1].push(on_two_threads(moka_future.clone(), per_task).await);
        figures[2].push(on_two_threads(moka_sync.clone(), per_task).await);
        #[cfg(feature = "peers")]
        figures[3].push(on_two_threads(peers::cached_memory, per_task).await);
    }
    Case {
        id: "l1_hit_threads",
        title: format!("L1 hits from 2 threads x {TASKS} tasks, ~1 KB struct"),
        how: format!(
            "calls/s, median of {rounds} rounds x {} calls over {KEYS} hot keys",
            TASKS * per_task
        ),
        unit: Unit::PerSecond,
        baseline: None,
        rows: specs
            .iter()
            .zip(figures)
            .map(|(s, f)| Row::new(s, median(f)))
            .collect(),
    }
    .with_ratios("moka: future")
}

/// What a service sees: 64 tasks, 9 calls in 10 answered in-process and 1
/// through Redis, against moka + raw `GET` + decode in the same proportion.
async fn mixed(field: &Field, plan: &Plan) -> Case {
    let (rounds, per_task) = plan.mixed;
    let run = |ours: bool| {
        let con = field.raw.con.clone();
        let future = field.raw.future.clone();
        async move {
            let t = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for task in 0..TASKS {
                let con = con.clone();
                let future = future.clone();
                set.spawn(async move {
                    for i in 0..per_task {
                        let id = ((task * 4 + i % 4) as u64) % KEYS;
                        let redis = i % 10 == 9;
                        match (ours, redis) {
                            (true, false) => {
                                std::hint::black_box(ours::two_tier(id).await.ok());
                            }
                            (true, true) => {
                                std::hint::black_box(ours::l2_postcard(id).await.ok());
                            }
                            (false, false) => {
                                std::hint::black_box(future.get(&format!("employee:{id}")).await);
                            }
                            (false, true) => {
                                std::hint::black_box(raw::get_postcard(con.clone(), id).await);
                            }
                        }
                    }
                });
            }
            set.join_all().await;
            (TASKS * per_task) as f64 / t.elapsed().as_secs_f64()
        }
    };
    run(true).await;
    run(false).await;
    let (mut ours_tp, mut raw_tp) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            ours_tp.push(run(true).await);
            raw_tp.push(run(false).await);
        } else {
            raw_tp.push(run(false).await);
            ours_tp.push(run(true).await);
        }
    }
    let ours_spec = Spec::new(
        "cache-rs",
        "#[cached]: L1 + Redis hits, and Redis-only hits",
        "postcard",
        measure::Kind::Ours,
    );
    let raw_spec = Spec::new(
        "moka + redis-rs",
        "future::Cache get, and GET + postcard decode",
        "postcard",
        measure::Kind::Raw,
    );
    Case {
        id: "mixed",
        title: format!("{TASKS} tasks, 90% in-process hits and 10% Redis hits"),
        how: format!(
            "calls/s, median of {rounds} rounds x {} calls, each task on its own 4 keys",
            TASKS * per_task
        ),
        unit: Unit::PerSecond,
        baseline: None,
        rows: vec![
            Row::new(&ours_spec, median(ours_tp)),
            Row::new(&raw_spec, median(raw_tp)),
        ],
    }
    .with_ratios("moka + redis-rs")
}

/// Who reads in a throughput case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// `#[cached]`, Redis only, reads batched (the default).
    Batched,
    /// The same with batching off.
    Unbatched,
    /// Our Redis tier alone (`RedisStore::get`, batched) + decode: the
    /// engine's share is the gap between this and `Batched`.
    Store,
    /// redis-rs `GET` + decode on one multiplexed connection.
    RawGet,
    /// redis-rs `MGET` of this many keys + decode, one task per batch.
    RawMget(usize),
}

impl Reader {
    fn spec(self) -> Spec {
        match self {
            Reader::Batched => Spec::new(
                "cache-rs",
                "#[cached], Redis only, reads batched",
                "postcard",
                measure::Kind::Ours,
            ),
            Reader::Unbatched => Spec::new(
                "cache-rs",
                "#[cached], Redis only, batching off",
                "postcard",
                measure::Kind::Ours,
            ),
            Reader::Store => Spec::new(
                "cache-redis",
                "RedisStore::get (reads batched) + postcard decode, no engine",
                "postcard",
                measure::Kind::Raw,
            ),
            Reader::RawGet => Spec::new(
                "redis-rs",
                "GET + postcard decode, one multiplexed connection",
                "postcard",
                measure::Kind::Raw,
            ),
            Reader::RawMget(n) => Spec::new(
                "redis-rs",
                &format!("MGET of {n} keys + postcard decode, a task per batch"),
                "postcard",
                measure::Kind::Raw,
            ),
        }
    }
}

/// Keys read per second by `tasks` tasks, each reading its own keys
/// (`KEYS / tasks` of them) `per_task` times.
async fn keys_per_second(reader: Reader, raw: &raw::Raw, tasks: usize, per_task: usize) -> f64 {
    let (con, store) = (&raw.con, &raw.store);
    let own = (KEYS as usize / tasks).max(1);
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    match reader {
        Reader::RawMget(batch) => {
            for group in 0..tasks.div_ceil(batch) {
                let con = con.clone();
                let ids: Vec<u64> = (group * batch..((group + 1) * batch).min(tasks))
                    .map(|task| (task * own) as u64 % KEYS)
                    .collect();
                set.spawn(async move {
                    for i in 0..per_task {
                        let ids: Vec<u64> = ids.iter().map(|id| id + (i % own) as u64).collect();
                        std::hint::black_box(raw::mget_postcard(con.clone(), &ids).await);
                    }
                });
            }
        }
        _ => {
            for task in 0..tasks {
                let con = con.clone();
                let store = store.clone();
                set.spawn(async move {
                    for i in 0..per_task {
                        let id = ((task * own + i % own) as u64) % KEYS;
                        match reader {
                            Reader::Batched => {
                                std::hint::black_box(ours::l2_postcard(id).await.ok());
                            }
                            Reader::Unbatched => {
                                std::hint::black_box(ours::l2_unbatched(id).await.ok());
                            }
                            Reader::Store => {
                                std::hint::black_box(raw::store_get_postcard(&store, id).await);
                            }
                            _ => {
                                std::hint::black_box(raw::get_postcard(con.clone(), id).await);
                            }
                        }
                    }
                });
            }
        }
    }
    set.join_all().await;
    (tasks * per_task) as f64 / t.elapsed().as_secs_f64()
}

/// Concurrent reads of independent keys through Redis, in-process tier
/// off: each reader in `readers` in turn, rounds alternating their order.
async fn throughput(
    field: &Field,
    plan: &Plan,
    tasks: usize,
    readers: &[Reader],
    baseline: Reader,
) -> Case {
    let (rounds, per_task) = plan.throughput;
    // Warm: every key in Redis for every reader.
    for &r in readers {
        keys_per_second(r, &field.raw, tasks, per_task.min(8)).await;
    }
    let mut figures = vec![Vec::new(); readers.len()];
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..readers.len()).collect()
        } else {
            (0..readers.len()).rev().collect()
        };
        for i in order {
            figures[i].push(keys_per_second(readers[i], &field.raw, tasks, per_task).await);
        }
    }
    let rows = readers
        .iter()
        .zip(figures)
        .map(|(r, f)| Row::new(&r.spec(), median(f)))
        .collect();
    let base = baseline.spec();
    Case {
        id: if tasks == TASKS { "l2_throughput" } else { "l2_throughput_256" },
        title: format!("L2 reads of independent keys from {tasks} concurrent tasks, in-process tier off"),
        how: format!(
            "keys/s, median of {rounds} rounds x {} reads, each task on its own keys, readers alternating",
            tasks * per_task
        ),
        unit: Unit::PerSecond,
        baseline: None,
        rows,
    }
    .with_ratios(&format!("{}: {}", base.library, base.setup))
}

async fn stampede(field: &Field, plan: &Plan) -> Case {
    set_origin_delay(ORIGIN);
    let mut rows = Vec::new();
    for (n, (spec, call)) in field.stampede().iter().enumerate() {
        let mut figures = Vec::new();
        for round in 0..plan.stampede_rounds {
            // A cold key per library and round.
            let id = 1_000_000 + (n * 100 + round) as u64;
            figures.push(measure::stampede(call, id, CALLERS).await);
        }
        let calls = median(figures.iter().map(|f| f.origin_calls).collect());
        let p50 = median(figures.iter().map(|f| f.p50).collect());
        let p99 = median(figures.iter().map(|f| f.p99).collect());
        let failed: usize = figures.iter().map(|f| f.failed).sum();
        let mut note = format!(
            "callers p50 {}, p99 {}",
            report::duration(p50.as_secs_f64()),
            report::duration(p99.as_secs_f64())
        );
        if failed > 0 {
            note.push_str(&format!("; {failed} calls failed"));
        }
        rows.push(Row::new(spec, calls as f64).note(note));
    }
    set_origin_delay(Duration::ZERO);
    Case {
        id: "stampede",
        title: format!(
            "Origin calls for {} concurrent cold callers of one key",
            report::thousands(CALLERS as u64)
        ),
        how: format!(
            "origin takes {} ms; median of {} round(s), a fresh key each",
            ORIGIN.as_millis(),
            plan.stampede_rounds
        ),
        unit: Unit::OriginCalls,
        baseline: None,
        rows,
    }
}

#[cfg_attr(not(feature = "peers"), allow(unused_mut))]
async fn invalidation(field: &Field, url: &str, plan: &Plan) -> Result<Case, String> {
    let total = plan.total_keys;
    let cache = Cache::builder()
        .redis_url(url)
        .key_prefix("inv")
        .redis_op_timeout(Duration::from_secs(30))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let store = RedisStore::new(RedisConfig::new(url).op_timeout(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut con = field.raw.con.clone();
    let mut dbsize: usize = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    dbsize += MATCHING;
    if dbsize < total {
        tests::redis_server::fill_plain_keys(&mut con, 0, total - dbsize)
            .await
            .map_err(|e| format!("fill: {e}"))?;
    }
    let write = |cache: Cache| async move {
        for i in 0..MATCHING {
            cache
                .set(
                    &format!("user:42:item:{i}"),
                    &(i as u64),
                    cache_core::Preset::Long,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    };
    let (mut ours, mut scan) = (Vec::new(), Vec::new());
    for r in 0..plan.invalidation_rounds {
        write(cache.clone()).await?;
        let t = Instant::now();
        let n = cache
            .invalidate("user:42:*")
            .await
            .map_err(|e| e.to_string())?
            .removed;
        ours.push(t.elapsed().as_secs_f64());
        if n as usize != MATCHING {
            return Err(format!("invalidate removed {n} keys, not {MATCHING}"));
        }
        if r < 2 {
            write(cache.clone()).await?;
            let t = Instant::now();
            let n = store
                .delete_matching("inv:user:42:*")
                .await
                .map_err(|e| e.to_string())?;
            scan.push(t.elapsed().as_secs_f64());
            if n as usize != MATCHING {
                return Err(format!("SCAN removed {n} keys, not {MATCHING}"));
            }
            // Leave the index clean for the next round.
            cache
                .invalidate("user:42:*")
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let dbsize: usize = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = vec![
        Row::new(
            &Spec::new(
                "cache-rs",
                "invalidate(\"user:42:*\"), index sets",
                "",
                measure::Kind::Ours,
            ),
            median(ours),
        )
        .note("also drops the in-process copies and tells other instances"),
        Row::new(
            &Spec::new(
                "redis-rs",
                "SCAN MATCH + UNLINK (hand-written, our fallback)",
                "",
                measure::Kind::Raw,
            ),
            median(scan),
        ),
    ];
    #[cfg(feature = "peers")]
    {
        let mtc = &field.peers.mtc;
        let mut times = Vec::new();
        for _ in 0..plan.invalidation_rounds.min(2) {
            mtc.fill(MATCHING).await?;
            let t = Instant::now();
            mtc.two
                .invalidate_pattern("mtc:user:42:*")
                .await
                .map_err(|e| format!("multi-tier-cache: {e}"))?;
            times.push(t.elapsed().as_secs_f64());
        }
        rows.push(Row::new(
            &Spec::new(
                "multi-tier-cache",
                "invalidate_pattern, Moka + Redis tiers",
                "",
                measure::Kind::Peer,
            ),
            median(times),
        ));
    }
    Ok(Case {
        id: "invalidation",
        title: format!(
            "Invalidating {} keys of one prefix among {} keys",
            report::thousands(MATCHING as u64),
            report::thousands(total as u64)
        ),
        how: format!(
            "median of {} rounds (SCAN, multi-tier-cache: 2); DBSIZE {}",
            plan.invalidation_rounds,
            report::thousands(dbsize as u64)
        ),
        unit: Unit::Seconds,
        baseline: None,
        rows,
    }
    .with_ratios("cache-rs"))
}

async fn outage(field: &Field, plan: &Plan) -> Case {
    let (calls, bound) = plan.outage;
    let mut rows = Vec::new();
    for (n, (spec, call)) in field.outage().iter().enumerate() {
        let o = measure::outage(call, 2_000_000 + (n * 100) as u64, calls, bound).await;
        let mut times = o.times.clone();
        times.sort_unstable();
        let med = examples::quantile(&times, 0.5);
        let mut parts = Vec::new();
        if o.values > 0 {
            parts.push(format!("{} of {} got the value", o.values, o.times.len()));
        }
        if !o.errors.is_empty() {
            let first: String = o.errors[0].chars().take(60).collect();
            parts.push(format!("{} failed ({first})", o.errors.len()));
        }
        if o.timed_out > 0 {
            parts.push(format!(
                "{} abandoned at {} s",
                o.timed_out,
                bound.as_secs()
            ));
        }
        let max = times.last().copied().unwrap_or_default();
        parts.push(format!("max {}", report::duration(max.as_secs_f64())));
        let mark = if o.timed_out > 0 {
            "call abandoned"
        } else if o.errors.is_empty() {
            "caller gets the value"
        } else {
            "caller gets an error"
        };
        rows.push(
            Row::new(spec, med.as_secs_f64())
                .bounded(med >= bound)
                .note(parts.join("; "))
                .mark(mark),
        );
    }
    Case {
        id: "redis_killed",
        title: "An L1-miss call with Redis killed (SIGKILL)".into(),
        how: format!(
            "median of up to {calls} calls on fresh keys, fast origin, each abandoned after {} s",
            bound.as_secs()
        ),
        unit: Unit::Seconds,
        baseline: None,
        rows,
    }
}

async fn machine(con: &MultiplexedConnection) -> report::Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
    let mut con = con.clone();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut con)
        .await
        .unwrap_or_default();
    let redis = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    report::Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        rustc,
        redis,
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// The versions measured, from the workspace's lock file.
fn versions() -> Vec<(String, String)> {
    const LOCK: &str = include_str!("../../Cargo.lock");
    let wanted = [
        "cache-core",
        "moka",
        "redis",
        "tokio",
        #[cfg(feature = "peers")]
        "cached",
        #[cfg(feature = "peers")]
        "hitbox",
        #[cfg(feature = "peers")]
        "hitbox-redis",
        #[cfg(feature = "peers")]
        "multi-tier-cache",
    ];
    let mut out = Vec::new();
    let mut lines = LOCK.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|r| r.strip_suffix('"'))
            && wanted.contains(&name)
            && let Some(v) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|r| r.strip_suffix('"'))
        {
            out.push((name.to_owned(), v.to_owned()));
        }
    }
    out
}
