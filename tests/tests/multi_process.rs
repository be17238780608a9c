//! Stampede protection across OS processes: several `stampede_worker`
//! processes, many tasks each, one cold key, one private `redis-server`. The
//! origin counts its calls in Redis, so the count covers every process.

use std::process::Command;
use std::time::Duration;

use tests::redis_server::RedisServer;
use tests::stampede::{Report, Worker, WorkerArgs};

/// A `stampede_worker` process: `tasks` calls of `key` (prefix `mp`), an
/// origin taking `origin_ms`, locks of `lock_ttl_ms`, values of `ttl_ms`;
/// with `hold`, the origin never returns.
fn spawn_worker(
    redis: &RedisServer,
    key: &str,
    tasks: usize,
    origin_ms: u64,
    lock_ttl_ms: u64,
    ttl_ms: u64,
    hold: bool,
) -> Worker {
    let args = WorkerArgs {
        origin: Duration::from_millis(origin_ms),
        lock_ttl: Duration::from_millis(lock_ttl_ms),
        ttl: Duration::from_millis(ttl_ms),
        hold,
        ..WorkerArgs::new(redis.url(), "mp", key, tasks)
    };
    Worker::spawn(Command::new(env!("CARGO_BIN_EXE_stampede_worker")), &args)
}

fn origin_calls(redis: &RedisServer, key: &str) -> u64 {
    tests::stampede::origin_calls(&redis.url(), key)
}

fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut con = client.get_connection().expect("connect");
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let v: redis::Value = cmd.query(&mut con).expect("command");
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// Runs `n` workers × `tasks` on `key` together; returns their reports.
fn stampede(redis: &RedisServer, key: &str, n: usize, tasks: usize, ttl_ms: u64) -> Vec<Report> {
    let mut workers: Vec<Worker> = (0..n)
        .map(|_| spawn_worker(redis, key, tasks, 200, 5_000, ttl_ms, false))
        .collect();
    for w in &workers {
        w.expect("ready");
    }
    for w in &mut workers {
        w.go();
    }
    workers.iter().map(Worker::report).collect()
}

/// `field` summed over the reports.
fn sum(reports: &[Report], field: impl Fn(&Report) -> u64) -> u64 {
    reports.iter().map(field).sum()
}

fn one_value(reports: &[Report]) -> String {
    let mut all: Vec<String> = reports.iter().flat_map(|r| r.values.clone()).collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        1,
        "every caller in every process got the same value: {all:?}"
    );
    all.remove(0)
}

#[test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
fn four_processes_make_one_origin_call_then_one_more_after_expiry() {
    let redis = RedisServer::start();
    let reports = stampede(&redis, "cold", 4, 250, 2_000);
    assert_eq!(origin_calls(&redis, "cold"), 1, "{reports:#?}");
    assert_eq!(sum(&reports, |r| r.failures), 0);
    assert_eq!(
        sum(&reports, |r| r.misses),
        1,
        "one origin call in all: {reports:#?}"
    );
    let first = one_value(&reports);
    // Each process's callers shared one Redis read: its other 249 were coalesced.
    assert_eq!(sum(&reports, |r| r.coalesced), 4 * 249, "{reports:#?}");
    for r in &reports {
        let leader_got_it = r.misses == 1 || r.lock_waits >= 1 || r.l2_hits >= 1;
        assert!(leader_got_it, "{r:?}");
    }
    assert!(
        sum(&reports, |r| r.lock_waits) >= 1,
        "the processes overlapped: {reports:#?}"
    );

    // Once the value has expired in Redis, the next wave makes exactly one more call.
    let key = "mp:stampede:cold";
    for _ in 0..1000 {
        if redis_cli(&redis, &["EXISTS", key]) == "0" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10)); // waiting for Redis to expire the key
    }
    assert_eq!(redis_cli(&redis, &["EXISTS", key]), "0");
    let reports = stampede(&redis, "cold", 4, 250, 2_000);
    assert_eq!(origin_calls(&redis, "cold"), 2, "{reports:#?}");
    assert_eq!(sum(&reports, |r| r.misses), 1);
    assert_ne!(one_value(&reports), first, "recomputed after expiry");
}

#[test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
fn a_killed_lock_holder_is_taken_over_by_exactly_one_process() {
    let redis = RedisServer::start();
    // The holder takes the lock (TTL 1 s, renewed while it lives) and hangs.
    let mut holder = spawn_worker(&redis, "held", 1, 0, 1_000, 60_000, true);
    holder.expect("ready");
    holder.go();
    holder.expect("computing");
    assert_eq!(origin_calls(&redis, "held"), 1);

    let mut waiters: Vec<Worker> = (0..3)
        .map(|_| spawn_worker(&redis, "held", 250, 50, 1_000, 60_000, false))
        .collect();
    for w in &waiters {
        w.expect("ready");
    }
    for w in &mut waiters {
        w.go();
    }
    for w in &waiters {
        w.expect("waiting");
    }
    // Every process now waits on the holder's lock. Kill it mid-compute: its
    // lock is no longer renewed and expires; one waiter takes over.
    holder.kill();

    let reports: Vec<Report> = waiters.iter().map(Worker::report).collect();
    assert_eq!(sum(&reports, |r| r.failures), 0);
    assert_eq!(
        origin_calls(&redis, "held"),
        2,
        "the holder's call and one takeover: {reports:#?}"
    );
    assert_eq!(sum(&reports, |r| r.lock_takeovers), 1, "{reports:#?}");
    assert_eq!(sum(&reports, |r| r.misses), 1, "{reports:#?}");
    assert_eq!(sum(&reports, |r| r.lock_timeouts), 0, "{reports:#?}");
    one_value(&reports);
}
