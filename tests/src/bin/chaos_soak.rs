//! A chaos soak: N instance processes read and invalidate shared keys
//! against a private `redis-server` while a schedule hangs it (SIGSTOP),
//! kills it and restarts it empty, kills it and restarts it with its data
//! (AOF), and pauses it (`CLIENT PAUSE`). It checks what must hold through
//! all of it and prints a report per phase:
//!
//! - no call returns an error (the default mode absorbs Redis failures);
//! - no instance reads a value older than one it invalidated itself, once
//!   its invalidation returned;
//! - after the last fault, once the workload has stopped, every instance
//!   serves the database's current value for every key within a bound
//!   (convergence);
//! - call latency (p50, p99, max) in each phase, as measured, not asserted.
//!
//! ```text
//! cargo run --release -p tests --bin chaos_soak -- [--instances N] [--seconds S]
//! ```
//!
//! Exits non-zero if a check fails. The "database" is a directory of files
//! (one per key, its version), shared by the processes and untouched by
//! the faults; an update writes a new version, then invalidates the key.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_core::{BreakerConfig, Cache, Preset};
use serde::{Deserialize, Serialize};
use tests::redis_server::{RedisServer, ServerConfig};

const KEYS: u64 = 64;
const TASKS: usize = 8;
/// Convergence bound after the last fault.
const CONVERGE: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = if args.first().map(String::as_str) == Some("worker") {
        worker(&args[1..])
    } else {
        coordinator(&args)
    };
    if let Err(e) = outcome {
        eprintln!("chaos_soak: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- database

/// One file per key holding its version; updates take a lock file so that
/// versions only grow.
#[derive(Clone)]
struct Db(PathBuf);

impl Db {
    fn read(&self, k: u64) -> u64 {
        std::fs::read_to_string(self.0.join(k.to_string()))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Writes the next version of `k` and returns it.
    fn bump(&self, k: u64) -> Result<u64, String> {
        let lock =
            std::fs::File::create(self.0.join(format!("{k}.lock"))).map_err(|e| e.to_string())?;
        lock.lock().map_err(|e| e.to_string())?;
        let next = self.read(k) + 1;
        let tmp = self.0.join(format!("{k}.tmp"));
        std::fs::write(&tmp, next.to_string()).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, self.0.join(k.to_string())).map_err(|e| e.to_string())?;
        Ok(next)
    }
}

// ------------------------------------------------------------------ worker

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct PhaseReport {
    calls: u64,
    errors: u64,
    violations: u64,
    /// Latencies in microseconds.
    latencies: Vec<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WorkerReport {
    phases: BTreeMap<String, PhaseReport>,
    /// Time to serve every key's current version once the workload
    /// stopped after the last fault, ms.
    converged_ms: Option<u64>,
    first_violation: Option<String>,
}

fn worker(args: &[String]) -> Result<(), String> {
    let [url, db, seed] = args else {
        return Err("usage: chaos_soak worker <redis-url> <db-dir> <seed>".into());
    };
    let db = Db(PathBuf::from(db));
    let seed: u64 = seed.parse().map_err(|_| "seed")?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let cache = Cache::builder()
            .redis_url(url)
            .key_prefix("chaos")
            .redis_op_timeout(Duration::from_millis(50))
            .breaker(BreakerConfig::default().cool_down(Duration::from_millis(300)))
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let phase = Arc::new(Mutex::new("start".to_owned()));
        let report = Arc::new(Mutex::new(WorkerReport::default()));
        // Per key: the version this instance's last invalidation made.
        let floors: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let (cache, db, phase, report, floors, stopped) = (
                cache.clone(),
                db.clone(),
                Arc::clone(&phase),
                Arc::clone(&report),
                Arc::clone(&floors),
                Arc::clone(&stopped),
            );
            tasks.push(tokio::spawn(async move {
                let mut rng = seed.wrapping_mul(31).wrapping_add(t as u64 + 1);
                while !stopped.load(SeqCst) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let k = rng % KEYS;
                    let key = format!("item:{k}");
                    let started = Instant::now();
                    let (error, violation) = if rng.is_multiple_of(10) {
                        // An update: the database first, then the invalidation.
                        match db.bump(k) {
                            Ok(v) => {
                                let done = cache.delete(&key).await;
                                floors[k as usize].fetch_max(v, SeqCst);
                                (done.is_err(), None)
                            }
                            Err(e) => (true, Some(format!("database: {e}"))),
                        }
                    } else {
                        let floor = floors[k as usize].load(SeqCst);
                        let db2 = db.clone();
                        let read = cache
                            .get_or_set(&key, Preset::Long, async move { db2.read(k) })
                            .await;
                        match read {
                            Ok(v) if v < floor => (
                                false,
                                Some(format!(
                                    "{key}: read version {v} after invalidating version {floor}"
                                )),
                            ),
                            Ok(_) => (false, None),
                            Err(_) => (true, None),
                        }
                    };
                    let micros = started.elapsed().as_micros() as u64;
                    let name = phase.lock().map(|p| p.clone()).unwrap_or_default();
                    if let Ok(mut r) = report.lock() {
                        if violation.is_some() && r.first_violation.is_none() {
                            r.first_violation = violation.clone();
                        }
                        let p = r.phases.entry(name).or_default();
                        p.calls += 1;
                        p.errors += u64::from(error);
                        p.violations += u64::from(violation.is_some());
                        p.latencies.push(micros);
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        println!("ready");
        // Commands from the coordinator: `phase <name>`, `converge`, `stop`.
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
        while let Ok(Some(line)) = lines.next_line().await {
            match line.split_once(' ') {
                Some(("phase", name)) => {
                    if let Ok(mut p) = phase.lock() {
                        *p = name.to_owned();
                    }
                }
                _ if line == "quiesce" => {
                    // The workload stops; the coordinator waits for every
                    // instance before asking them to converge.
                    stopped.store(true, SeqCst);
                    for t in std::mem::take(&mut tasks) {
                        let _ = t.await;
                    }
                    println!("quiet");
                }
                _ if line == "converge" => {
                    let started = Instant::now();
                    let mut converged = None;
                    while started.elapsed() < CONVERGE {
                        let mut all = true;
                        for k in 0..KEYS {
                            let db2 = db.clone();
                            let v = cache
                                .get_or_set(&format!("item:{k}"), Preset::Long, async move {
                                    db2.read(k)
                                })
                                .await;
                            if v.ok() != Some(db.read(k)) {
                                all = false;
                            }
                        }
                        if all {
                            converged = Some(started.elapsed().as_millis() as u64);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if let Ok(mut r) = report.lock() {
                        r.converged_ms = converged;
                    }
                    println!("converged");
                }
                _ if line == "stop" => break,
                _ => {}
            }
        }
        stopped.store(true, SeqCst);
        for t in tasks {
            let _ = t.await;
        }
        let r = report.lock().map_err(|_| "report")?;
        println!("{}", serde_json::to_string(&*r).map_err(|e| e.to_string())?);
        Ok(())
    })
}

// ------------------------------------------------------------- coordinator

struct Instance {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Instance {
    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("stdin")?;
        writeln!(stdin, "{line}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())
    }

    fn expect(&self, what: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(what) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(format!("no `{what}` from a worker")),
            }
        }
    }
}

fn coordinator(args: &[String]) -> Result<(), String> {
    let mut instances = 3usize;
    let mut seconds = 40u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--instances" => instances = value.parse().map_err(|_| "--instances: a number")?,
            "--seconds" => seconds = value.parse().map_err(|_| "--seconds: a number")?,
            other => {
                return Err(format!(
                    "unknown option {other}: use --instances N --seconds S"
                ));
            }
        }
    }
    // Its data back after a restart (AOF), fsynced every second as most
    // deployments that persist do.
    let mut server = RedisServer::start_with(ServerConfig {
        args: ["--appendonly", "yes", "--appendfsync", "everysec"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let db_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    for i in 0..instances {
        let mut child = Command::new(&exe)
            .args([
                "worker",
                &server.url(),
                &db_dir.path().display().to_string(),
                &(i + 1).to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let w = Instance { child, lines: rx };
        w.expect("ready", Duration::from_secs(30))?;
        workers.push(w);
    }

    // Each fault lasts `fault`; the steady phases between them as long.
    let fault = Duration::from_secs((seconds / 12).max(1));
    let started = Instant::now();
    let phase = |name: &str, workers: &mut Vec<Instance>| -> Result<(), String> {
        eprintln!("[{:>5.1}s] {name}", started.elapsed().as_secs_f64());
        for w in workers.iter_mut() {
            w.send(&format!("phase {name}"))?;
        }
        Ok(())
    };
    let mut faults = 0;
    phase("steady", &mut workers)?;
    std::thread::sleep(fault * 2);

    phase("hang (SIGSTOP)", &mut workers)?;
    server.pause();
    std::thread::sleep(fault);
    server.resume();
    faults += 1;
    phase("after hang", &mut workers)?;
    std::thread::sleep(fault);

    phase("killed, restarted empty", &mut workers)?;
    server.kill();
    std::thread::sleep(fault);
    let _ = std::fs::remove_dir_all(server.dir().join("appendonlydir"));
    server.restart();
    faults += 1;
    std::thread::sleep(fault);

    phase("killed, restarted with its data (AOF)", &mut workers)?;
    std::thread::sleep(fault / 2);
    server.kill();
    std::thread::sleep(fault);
    server.restart();
    faults += 1;
    std::thread::sleep(fault);

    phase("CLIENT PAUSE", &mut workers)?;
    let client = redis::Client::open(server.url()).map_err(|e| e.to_string())?;
    let mut con = client.get_connection().map_err(|e| e.to_string())?;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(fault.as_millis() as u64)
        .arg("ALL")
        .query(&mut con)
        .map_err(|e| e.to_string())?;
    faults += 1;
    std::thread::sleep(fault * 2);

    phase("recovered", &mut workers)?;
    std::thread::sleep(fault * 2);
    // Convergence is measured once no instance updates any more: from then
    // on every instance must serve the database's versions.
    for w in &mut workers {
        w.send("quiesce")?;
    }
    for w in &workers {
        w.expect("quiet", Duration::from_secs(30))?;
    }
    for w in &mut workers {
        w.send("converge")?;
    }
    for w in &workers {
        w.expect("converged", CONVERGE + Duration::from_secs(30))?;
    }
    for w in &mut workers {
        w.send("stop")?;
    }
    let mut reports = Vec::new();
    for w in &mut workers {
        let line = w.expect("{", Duration::from_secs(30))?;
        let report: WorkerReport = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        let _ = w.child.wait();
        reports.push(report);
    }
    print_report(&reports, faults, started.elapsed())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn print_report(reports: &[WorkerReport], faults: u32, took: Duration) -> Result<(), String> {
    let order = [
        "steady",
        "hang (SIGSTOP)",
        "after hang",
        "killed, restarted empty",
        "killed, restarted with its data (AOF)",
        "CLIENT PAUSE",
        "recovered",
    ];
    println!(
        "chaos soak: {} instances × {TASKS} tasks, {KEYS} keys, {faults} faults, {:.0} s",
        reports.len(),
        took.as_secs_f64()
    );
    println!(
        "{:<40} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "phase", "calls", "errors", "violations", "p50 µs", "p99 µs", "max µs"
    );
    let (mut errors, mut violations) = (0, 0);
    for name in order {
        let mut all = PhaseReport::default();
        for r in reports {
            if let Some(p) = r.phases.get(name) {
                all.calls += p.calls;
                all.errors += p.errors;
                all.violations += p.violations;
                all.latencies.extend(&p.latencies);
            }
        }
        all.latencies.sort_unstable();
        errors += all.errors;
        violations += all.violations;
        println!(
            "{:<40} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9}",
            name,
            all.calls,
            all.errors,
            all.violations,
            percentile(&all.latencies, 0.5),
            percentile(&all.latencies, 0.99),
            all.latencies.last().copied().unwrap_or(0)
        );
    }
    let converged: Vec<String> = reports
        .iter()
        .map(|r| {
            r.converged_ms
                .map_or("never".to_owned(), |ms| format!("{ms} ms"))
        })
        .collect();
    println!("converged after the last fault: {}", converged.join(", "));
    let mut failures = Vec::new();
    if errors > 0 {
        failures.push(format!("{errors} calls returned an error"));
    }
    if violations > 0 {
        let first = reports
            .iter()
            .find_map(|r| r.first_violation.clone())
            .unwrap_or_default();
        failures.push(format!(
            "{violations} stale reads after the instance's own invalidation (first: {first})"
        ));
    }
    if reports.iter().any(|r| r.converged_ms.is_none()) {
        failures.push(format!("an instance did not converge within {CONVERGE:?}"));
    }
    if failures.is_empty() {
        println!("OK: no error, no stale read after an invalidation, every instance converged");
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
