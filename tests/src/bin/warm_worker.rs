//! An instance that starts with an `on_start` warmer, for the warming
//! suite (`tests/warming.rs`): it waits for a common start instant, builds
//! its cache, registers the warmer, waits until the warmer has run here or
//! been left to another instance, and prints `ran` or `skipped`. The
//! warmer's origin counts its passes in Redis (`INCR <prefix>:origin`), as
//! a database would see them.
//!
//! ```text
//! warm_worker <redis-url> <prefix> <start-at, ms since the Unix epoch>
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{Cache, Preset, Warmer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, start_at] = args.as_slice() else {
        return Err("usage: warm_worker <redis-url> <prefix> <start-at-ms>".into());
    };
    let start_at: u64 = start_at.parse()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(now))).await;

    let client = redis::Client::open(url.as_str())?;
    let origin = client.get_multiplexed_async_connection().await?;
    let cache = Cache::builder()
        .redis_url(url)
        .key_prefix(prefix)
        .build()
        .await?;
    let counter = format!("{prefix}:origin");
    cache.add_warmer(
        Warmer::new("catalog", move |w| {
            let mut origin = origin.clone();
            let counter = counter.clone();
            async move {
                let _: u64 = redis::cmd("INCR")
                    .arg(&counter)
                    .query_async(&mut origin)
                    .await?;
                w.set("catalog:all", &7u32, Preset::Long).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .on_start(),
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = cache.stats().await;
        if s.warm_runs + s.warm_skipped > 0 {
            println!("{}", if s.warm_runs > 0 { "ran" } else { "skipped" });
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the start run neither ran nor was skipped within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
