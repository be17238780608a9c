//! One "service instance" for the multi-process stampede suite
//! (`tests/multi_process.rs`): builds a cache over the given Redis, waits for
//! `go` on stdin, then calls one cold `#[cached]` function from many tasks at
//! once. Its origin counts its calls in Redis (`INCR`), so the test can see
//! how many origin calls all processes made together.
//!
//! ```text
//! stampede_worker <redis-url> <prefix> <key> <tasks> <origin-ms> <lock-ttl-ms> <ttl-ms> [hold]
//! ```
//!
//! Prints `ready` once built, `waiting` once one of its calls waits on
//! another process's lock, `computing` when its origin starts, and at the end
//! one JSON line: the distinct values its callers got, and its counters.
//! With `hold`, the origin never returns (the test kills the process).

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use cache_core::{Cache, cached};
use tokio::io::AsyncBufReadExt;

static REDIS: OnceLock<redis::Client> = OnceLock::new();
static ORIGIN_MS: OnceLock<u64> = OnceLock::new();
static HOLD: OnceLock<bool> = OnceLock::new();

// `short`, set per run from the command line.
#[cached(ttl = "short", key = "stampede:<key>")]
async fn value(key: String) -> Result<String, String> {
    let client = REDIS.get().ok_or("no client")?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let n: u64 = redis::cmd("INCR")
        .arg(format!("origin_calls:{key}"))
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    println!("computing");
    if HOLD.get().copied().unwrap_or(false) {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_millis(ORIGIN_MS.get().copied().unwrap_or(0))).await;
    Ok(format!("{key} #{n} from pid {}", std::process::id()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 8 {
        return Err("usage: stampede_worker <redis-url> <prefix> <key> <tasks> <origin-ms> <lock-ttl-ms> <ttl-ms> [hold]".into());
    }
    let (url, prefix, key) = (&args[1], &args[2], args[3].clone());
    let tasks: usize = args[4].parse()?;
    let _ = ORIGIN_MS.set(args[5].parse()?);
    let lock_ttl = Duration::from_millis(args[6].parse()?);
    let ttl = Duration::from_millis(args[7].parse()?);
    let _ = HOLD.set(args.get(8).is_some_and(|a| a == "hold"));
    let _ = REDIS.set(redis::Client::open(url.as_str())?);

    let cache = Cache::builder()
        .redis_url(url)
        .key_prefix(prefix)
        .lock_ttl(lock_ttl)
        .preset_ttl(cache_core::Preset::Short, ttl)
        .lock_wait(Duration::from_secs(30))
        .single_flight_wait(Duration::from_secs(60))
        .build()
        .await?;
    cache.clone().install()?;
    // Subscribed to the backplane, so release messages reach us.
    let mut status = cache.backplane().ok_or("no backplane")?;
    status.wait_for(|s| s.connected).await?;
    println!("ready");

    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;

    let watcher = {
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
    };
    let calls: Vec<_> = (0..tasks)
        .map(|_| tokio::spawn(value(key.clone())))
        .collect();
    let mut values = BTreeSet::new();
    let mut failures = 0;
    for c in calls {
        match c.await? {
            Ok(v) => {
                values.insert(v);
            }
            Err(_) => failures += 1,
        }
    }
    watcher.abort();
    let s = cache.stats().await;
    println!(
        "{}",
        serde_json::json!({
            "values": values,
            "failures": failures,
            "misses": s.misses,
            "l2_hits": s.l2_hits,
            "coalesced": s.coalesced,
            "lock_waits": s.lock_waits,
            "lock_takeovers": s.lock_takeovers,
            "lock_timeouts": s.lock_timeouts,
        })
    );
    Ok(())
}
