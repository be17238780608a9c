//! Stampede protection across OS processes: several `stampede_worker`
//! processes, many tasks each, one cold key, one private `redis-server`. The
//! origin counts its calls in Redis, so the count covers every process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::Value;
use tests::redis_server::RedisServer;

/// Generous bound on any one event; never reached when things work.
const EVENT: Duration = Duration::from_secs(30);

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Worker {
    fn spawn(
        redis: &RedisServer,
        key: &str,
        tasks: usize,
        origin_ms: u64,
        lock_ttl_ms: u64,
        ttl_ms: u64,
        hold: bool,
    ) -> Worker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stampede_worker"));
        cmd.args([
            redis.url(),
            "mp".to_owned(),
            key.to_owned(),
            tasks.to_string(),
            origin_ms.to_string(),
            lock_ttl_ms.to_string(),
            ttl_ms.to_string(),
        ]);
        if hold {
            cmd.arg("hold");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn stampede_worker");
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

    /// Waits for a line equal to `what`.
    fn expect(&self, what: &str) {
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

    fn go(&mut self) {
        writeln!(self.stdin, "go").expect("write go");
        self.stdin.flush().expect("flush");
    }

    /// The final JSON report.
    fn report(&self) -> Value {
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
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn origin_calls(redis: &RedisServer, key: &str) -> u64 {
    redis_cli(redis, &["GET", &format!("origin_calls:{key}")])
        .trim()
        .parse()
        .unwrap_or(0)
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
fn stampede(redis: &RedisServer, key: &str, n: usize, tasks: usize, ttl_ms: u64) -> Vec<Value> {
    let mut workers: Vec<Worker> = (0..n)
        .map(|_| Worker::spawn(redis, key, tasks, 200, 5_000, ttl_ms, false))
        .collect();
    for w in &workers {
        w.expect("ready");
    }
    for w in &mut workers {
        w.go();
    }
    workers.iter().map(Worker::report).collect()
}

fn sum(reports: &[Value], field: &str) -> u64 {
    reports.iter().map(|r| r[field].as_u64().unwrap_or(0)).sum()
}

fn one_value(reports: &[Value]) -> String {
    let mut all: Vec<String> = reports
        .iter()
        .flat_map(|r| r["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
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
fn four_processes_make_one_origin_call_then_one_more_after_expiry() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let reports = stampede(&redis, "cold", 4, 250, 2_000);
    assert_eq!(origin_calls(&redis, "cold"), 1, "{reports:#?}");
    assert_eq!(sum(&reports, "failures"), 0);
    assert_eq!(
        sum(&reports, "misses"),
        1,
        "one origin call in all: {reports:#?}"
    );
    let first = one_value(&reports);
    // Each process's callers shared one Redis read: its other 249 were coalesced.
    assert_eq!(sum(&reports, "coalesced"), 4 * 249, "{reports:#?}");
    for r in &reports {
        let leader_got_it = r["misses"].as_u64() == Some(1)
            || r["lock_waits"].as_u64() >= Some(1)
            || r["l2_hits"].as_u64() >= Some(1);
        assert!(leader_got_it, "{r}");
    }
    assert!(
        sum(&reports, "lock_waits") >= 1,
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
    assert_eq!(sum(&reports, "misses"), 1);
    assert_ne!(one_value(&reports), first, "recomputed after expiry");
}

#[test]
fn a_killed_lock_holder_is_taken_over_by_exactly_one_process() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // The holder takes the lock (TTL 1 s, renewed while it lives) and hangs.
    let mut holder = Worker::spawn(&redis, "held", 1, 0, 1_000, 60_000, true);
    holder.expect("ready");
    holder.go();
    holder.expect("computing");
    assert_eq!(origin_calls(&redis, "held"), 1);

    let mut waiters: Vec<Worker> = (0..3)
        .map(|_| Worker::spawn(&redis, "held", 250, 50, 1_000, 60_000, false))
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
    holder.child.kill().expect("kill -9 the holder");
    holder.child.wait().expect("reap");

    let reports: Vec<Value> = waiters.iter().map(Worker::report).collect();
    assert_eq!(sum(&reports, "failures"), 0);
    assert_eq!(
        origin_calls(&redis, "held"),
        2,
        "the holder's call and one takeover: {reports:#?}"
    );
    assert_eq!(sum(&reports, "lock_takeovers"), 1, "{reports:#?}");
    assert_eq!(sum(&reports, "misses"), 1, "{reports:#?}");
    assert_eq!(sum(&reports, "lock_timeouts"), 0, "{reports:#?}");
    one_value(&reports);
}
