//! An instance that is killed during a Redis outage, for the shutdown
//! suite (`tests/shutdown.rs`): builds a cache over a Redis that is down,
//! with an outage journal, deletes a key (which is queued), prints
//! `queued`, and waits to be killed.
//!
//! ```text
//! journal_worker <redis-url> <journal-dir> <prefix> <key>
//! ```

use std::io::Write;
use std::time::Duration;

use cache_core::Cache;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, dir, prefix, key] = args.as_slice() else {
        return Err("usage: journal_worker <redis-url> <journal-dir> <prefix> <key>".into());
    };
    let cache = Cache::builder()
        .redis_url(url)
        .key_prefix(prefix)
        .redis_op_timeout(Duration::from_secs(2))
        .outage_journal(dir)
        .build()
        .await?;
    let done = cache.delete(key).await?;
    if !done.queued {
        return Err(format!("Redis answered: {done:?}").into());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "queued")?;
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
