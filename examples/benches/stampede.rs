//! Stampede figures: origin calls for cold callers in one process and across
//! processes, and what waiting costs a caller compared with the origin's own
//! latency. Starts its own `redis-server`; the processes are this binary
//! re-run as workers. The origin takes 50 ms and counts its calls in Redis.
//!
//! `cargo bench -p examples --bench stampede` (`BENCH_QUICK=1` for a short run).

use std::process::Command;
use std::time::Duration;

use examples::{median, quantile};
use tests::redis_server::RedisServer;
use tests::stampede::{Mode, Worker, WorkerArgs, init_origin, origin_calls, take_origin_times};

const ORIGIN: Duration = Duration::from_millis(50);

/// Every wave's settings: `tasks` calls of `key` in `mode` under the prefix
/// `bench`, the 50 ms origin, values kept for an hour.
fn wave_args(url: &str, mode: Mode, key: &str, tasks: usize) -> WorkerArgs {
    WorkerArgs {
        origin: ORIGIN,
        ttl: Duration::from_secs(3600),
        mode,
        ..WorkerArgs::new(url.to_owned(), "bench", key, tasks)
    }
}

/// Worker mode: `stampede worker <worker args>` (the shared stampede worker,
/// as the multi-process suite runs it).
fn worker(args: &[String]) {
    let args = WorkerArgs::parse(args).expect("worker arguments");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(tests::stampede::serve(args))
        .expect("stampede worker");
}

/// `processes` workers × `tasks` calls in `mode` on a fresh key: origin
/// calls and every call's latency.
fn across_processes(url: &str, mode: Mode, key: &str, processes: usize, tasks: usize) -> Run {
    let exe = std::env::current_exe().expect("current exe");
    let args = wave_args(url, mode, key, tasks);
    let mut workers: Vec<Worker> = (0..processes)
        .map(|_| {
            let mut program = Command::new(&exe);
            program.arg("worker");
            Worker::spawn(program, &args)
        })
        .collect();
    for w in &workers {
        w.expect("ready");
    }
    for w in &mut workers {
        w.go();
    }
    let mut lat = Vec::new();
    let mut origin = Vec::new();
    for w in &workers {
        let report = w.report();
        assert_eq!(report.failures, 0, "{report:?}");
        lat.extend(report.latencies);
        origin.extend(report.origin_times);
    }
    lat.sort_unstable();
    Run {
        calls: origin_calls(url, key),
        lat,
        origin,
    }
}

/// One wave: origin calls made, every caller's latency, each origin call's duration.
struct Run {
    calls: u64,
    lat: Vec<Duration>,
    origin: Vec<Duration>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2..]);
    }
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    let url = server.url();
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let rounds = if quick { 2 } else { 5 };
    // This process's own origin, for the one-process case.
    init_origin(&wave_args(&url, Mode::Locked, "", 0), false).expect("redis url");
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    println!(
        "stampede: origin {} ms, {rounds} rounds of cold keys, medians",
        ORIGIN.as_millis()
    );
    println!(
        "  {:<44} {:>12} {:>9} {:>9} {:>10}",
        "case", "origin calls", "p50 ms", "p99 ms", "origin ms"
    );
    let ms = |d: f64| d * 1e3;
    let report = |label: &str, runs: Vec<Run>| {
        let calls = median(runs.iter().map(|r| r.calls as f64).collect());
        let p50 = median(
            runs.iter()
                .map(|r| quantile(&r.lat, 0.5).as_secs_f64())
                .collect(),
        );
        let p99 = median(
            runs.iter()
                .map(|r| quantile(&r.lat, 0.99).as_secs_f64())
                .collect(),
        );
        // Each origin call's own duration in these rounds: what callers are compared with.
        let origin = median(
            runs.iter()
                .flat_map(|r| r.origin.iter().map(Duration::as_secs_f64))
                .collect(),
        );
        println!(
            "  {label:<44} {calls:>12} {:>9.2} {:>9.2} {:>10.2}",
            ms(p50),
            ms(p99),
            ms(origin)
        );
        (calls, p50, p99, origin)
    };

    // One process, 1,000 concurrent callers, each task scoped to a cache on
    // this Redis.
    let one_process = |mode: Mode| {
        (0..rounds)
            .map(|r| {
                let key = format!("one-{mode:?}-{r}");
                rt.block_on(async {
                    let cache =
                        tests::stampede::cache(&wave_args(&url, mode, &key, 1000)).expect("cache");
                    tests::support::connected(&cache).await;
                    let wave = tests::stampede::wave(&cache, mode, &key, 1000).await;
                    assert_eq!(wave.failures, 0);
                    Run {
                        calls: origin_calls(&url, &key),
                        lat: wave.latencies,
                        origin: take_origin_times(),
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let aside1 = report(
        "1 process x 1000: hand-written cache-aside",
        one_process(Mode::CacheAside),
    );
    let ours1 = report("1 process x 1000: #[cached]", one_process(Mode::Locked));

    // Four processes, 250 callers each.
    let many = |mode: Mode| {
        (0..rounds)
            .map(|r| across_processes(&url, mode, &format!("four-{mode:?}-{r}"), 4, 250))
            .collect::<Vec<_>>()
    };
    let aside4 = report(
        "4 processes x 250: hand-written cache-aside",
        many(Mode::CacheAside),
    );
    let unlocked4 = report(
        "4 processes x 250: #[cached(lock = false)]",
        many(Mode::Unlocked),
    );
    let ours4 = report(
        "4 processes x 250: #[cached] (lock, default)",
        many(Mode::Locked),
    );

    println!();
    println!(
        "origin calls: 1 process {:.0} vs {:.0} hand-written ({:.0}x fewer); 4 processes {:.0} vs {:.0} hand-written, {:.0} without the lock",
        ours1.0,
        aside1.0,
        aside1.0 / ours1.0.max(1.0),
        ours4.0,
        aside4.0,
        unlocked4.0
    );
    println!(
        "callers' latency over the origin call's own (same rounds): 1 process p50 {:+.2} ms p99 {:+.2} ms; \
         4 processes p50 {:+.2} ms p99 {:+.2} ms (p99 {:.2}x the origin)",
        ms(ours1.1 - ours1.3),
        ms(ours1.2 - ours1.3),
        ms(ours4.1 - ours4.3),
        ms(ours4.2 - ours4.3),
        ours4.2 / ours4.3
    );
}
