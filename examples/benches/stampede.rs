//! Stampede figures: origin calls for cold callers in one process and across
//! processes, and what waiting costs a caller compared with the origin's own
//! latency. Starts its own `redis-server`; the processes are this binary
//! re-run as workers. The origin takes 50 ms and counts its calls in Redis.
//!
//! `cargo bench -p examples --bench stampede` (`BENCH_QUICK=1` for a short run).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_core::{Cache, cached};
use tests::redis_server::RedisServer;

const ORIGIN: Duration = Duration::from_millis(50);
static REDIS: OnceLock<redis::Client> = OnceLock::new();
/// How long each origin call took (its 50 ms of work), to compare callers with.
static ORIGIN_TIMES: std::sync::Mutex<Vec<Duration>> = std::sync::Mutex::new(Vec::new());

fn take_origin_times() -> Vec<Duration> {
    ORIGIN_TIMES
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}

static CON: tokio::sync::OnceCell<redis::aio::MultiplexedConnection> =
    tokio::sync::OnceCell::const_new();

async fn origin(key: &str) -> Result<String, String> {
    let client = REDIS.get().ok_or("no client")?;
    let mut con = CON
        .get_or_try_init(|| client.get_multiplexed_async_connection())
        .await
        .map_err(|e| e.to_string())?
        .clone();
    let _: u64 = redis::cmd("INCR")
        .arg(format!("origin_calls:{key}"))
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    tokio::time::sleep(ORIGIN).await;
    if let Ok(mut v) = ORIGIN_TIMES.lock() {
        v.push(t.elapsed());
    }
    Ok(format!("value of {key}"))
}

#[cached(ttl = "long", key = "locked:<key>")]
async fn locked(key: String) -> Result<String, String> {
    origin(&key).await
}

#[cached(ttl = "long", key = "unlocked:<key>", lock = false)]
async fn unlocked(key: String) -> Result<String, String> {
    origin(&key).await
}

/// The hand-written cache-aside our users replace: GET, on a miss call the
/// origin and SET. No coalescing at all.
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
    let _: () = redis::cmd("SET")
        .arg(&k)
        .arg(&v)
        .arg("EX")
        .arg(3600)
        .query_async(con)
        .await
        .map_err(|e| e.to_string())?;
    Ok(v)
}

/// `tasks` concurrent calls of `which` on `key`; per-call latencies, sorted.
async fn wave(url: &str, which: &str, key: &str, tasks: usize) -> Vec<Duration> {
    let client = redis::Client::open(url).expect("redis url");
    let con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let calls: Vec<_> = (0..tasks)
        .map(|_| {
            let (which, key, mut con) = (which.to_owned(), key.to_owned(), con.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = match which.as_str() {
                    "locked" => locked(key).await,
                    "unlocked" => unlocked(key).await,
                    _ => cache_aside(&mut con, key).await,
                };
                assert!(r.is_ok(), "{r:?}");
                t.elapsed()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks);
    for c in calls {
        out.push(c.await.expect("task"));
    }
    out.sort_unstable();
    out
}

fn build(url: &str) -> Cache {
    Cache::builder()
        .redis_url(url)
        .key_prefix("bench")
        .build_blocking()
        .expect("cache")
}

async fn connected(cache: &Cache) {
    if let Some(mut s) = cache.backplane() {
        let _ = s.wait_for(|s| s.connected).await;
    }
}

/// Worker mode: `stampede worker <url> <which> <key> <tasks>`; prints
/// `ready`, waits for a line, runs the wave, prints latencies in µs.
fn worker(args: &[String]) {
    let (url, which, key) = (&args[2], &args[3], &args[4]);
    let tasks: usize = args[5].parse().expect("tasks");
    let _ = REDIS.set(redis::Client::open(url.as_str()).expect("url"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let cache = build(url);
        cache.clone().install().expect("install");
        connected(&cache).await;
        println!("ready");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let lat = wave(url, which, key, tasks).await;
        let us = |v: &[Duration]| {
            v.iter()
                .map(|d| d.as_micros().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!("{}|{}", us(&lat), us(&take_origin_times()));
    });
}

fn origin_calls(url: &str, key: &str) -> u64 {
    let client = redis::Client::open(url).expect("url");
    let mut con = client.get_connection().expect("connect");
    redis::cmd("GET")
        .arg(format!("origin_calls:{key}"))
        .query::<Option<u64>>(&mut con)
        .expect("GET")
        .unwrap_or(0)
}

/// `processes` workers × `tasks` calls of `which` on a fresh key: origin
/// calls and every call's latency.
fn across_processes(url: &str, which: &str, key: &str, processes: usize, tasks: usize) -> Run {
    let exe = std::env::current_exe().expect("current exe");
    let mut children: Vec<_> = (0..processes)
        .map(|_| {
            let mut child = Command::new(&exe)
                .args(["worker", url, which, key, &tasks.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker");
            let mut out = BufReader::new(child.stdout.take().expect("stdout"));
            let mut line = String::new();
            out.read_line(&mut line).expect("ready");
            assert_eq!(line.trim(), "ready");
            (child, out)
        })
        .collect();
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "go").expect("go");
        stdin.flush().expect("flush");
    }
    let mut lat = Vec::new();
    let mut origin = Vec::new();
    for (mut child, mut out) in children {
        let mut line = String::new();
        out.read_line(&mut line).expect("latencies");
        let (calls, origins) = line.trim().split_once('|').expect("two lists");
        let parse = |s: &str| {
            s.split(',')
                .filter_map(|x| x.parse().ok())
                .map(Duration::from_micros)
                .collect::<Vec<_>>()
        };
        lat.extend(parse(calls));
        origin.extend(parse(origins));
        let _ = child.wait();
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

fn pct(v: &[Duration], q: f64) -> Duration {
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args);
    }
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let rounds = if quick { 2 } else { 5 };
    let _ = REDIS.set(redis::Client::open(url.as_str()).expect("url"));
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
                .map(|r| pct(&r.lat, 0.5).as_secs_f64())
                .collect(),
        );
        let p99 = median(
            runs.iter()
                .map(|r| pct(&r.lat, 0.99).as_secs_f64())
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

    // One process, 1,000 concurrent callers.
    let one_process = |which: &'static str| {
        (0..rounds)
            .map(|r| {
                let key = format!("one-{which}-{r}");
                rt.block_on(async {
                    let cache = build(&url);
                    connected(&cache).await;
                    let lat = cache.scope(wave(&url, which, &key, 1000)).await;
                    Run {
                        calls: origin_calls(&url, &key),
                        lat,
                        origin: take_origin_times(),
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let aside1 = report(
        "1 process x 1000: hand-written cache-aside",
        one_process("aside"),
    );
    let ours1 = report("1 process x 1000: #[cached]", one_process("locked"));

    // Four processes, 250 callers each.
    let many = |which: &'static str| {
        (0..rounds)
            .map(|r| across_processes(&url, which, &format!("four-{which}-{r}"), 4, 250))
            .collect::<Vec<_>>()
    };
    let aside4 = report("4 processes x 250: hand-written cache-aside", many("aside"));
    let unlocked4 = report(
        "4 processes x 250: #[cached(lock = false)]",
        many("unlocked"),
    );
    let ours4 = report(
        "4 processes x 250: #[cached] (lock, default)",
        many("locked"),
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
