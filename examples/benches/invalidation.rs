//! Invalidation cost against the total number of keys: removing the 1,000
//! keys of one prefix (`user:42:*`) among 100,000, 1,000,000 and (full mode)
//! 10,000,000 keys, through the index (ours), the 1,000 entries of one tag
//! (`tenant:42`) beside it, and through `SCAN` + `UNLINK`
//! (the fallback, and what a hand-written cache does) on the same data; the
//! in-process tier's prefix removal against a visit of every entry; and what
//! the mechanism costs each write, against a plain `SET`.
//!
//! `cargo bench -p examples --bench invalidation` (`BENCH_QUICK=1`: 10,000
//! and 100,000 keys only). Starts its own `redis-server`.

use std::time::{Duration, Instant};

use cache_core::{Cache, Preset, cached};
use cache_redis::{RedisConfig, RedisStore, WriteGuard};
use examples::median;
use tests::redis_server::RedisServer;

const MATCHING: usize = 1_000;

fn ms(s: f64) -> f64 {
    s * 1e3
}

/// The 1,000 keys of user 42, written through the cache (so indexed).
async fn matching(cache: &Cache) {
    let writes = (0..MATCHING).map(|i| {
        let cache = cache.clone();
        async move {
            cache
                .set(&format!("user:42:item:{i}"), &i, Preset::Long)
                .await
                .expect("set");
        }
    });
    let tasks: Vec<_> = writes.map(tokio::spawn).collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// An entry of tenant 42, spread over its own namespace.
#[cached(ttl = "long", key = "report:<i>", tags = ["tenant:42"])]
async fn tagged(i: usize) -> usize {
    i
}

/// The 1,000 entries of tenant 42, computed through the cache (so tagged).
async fn tagged_entries(cache: &Cache) {
    let reads = (0..MATCHING).map(|i| {
        let cache = cache.clone();
        async move { cache.scope(tagged(i)).await }
    });
    let tasks: Vec<_> = reads.map(tokio::spawn).collect();
    for t in tasks {
        t.await.expect("task");
    }
}

fn main() {
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[100_000, 1_000_000, 10_000_000]
    };
    let rounds = if quick { 3 } else { 5 };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let cache = Cache::builder()
            .redis_url(server.url())
            .key_prefix("bench")
            .redis_op_timeout(Duration::from_secs(30))
            .build()
            .await
            .expect("cache");
        // The same, without the in-process tier: the Redis side alone.
        let redis_only = Cache::builder()
            .redis_url(server.url())
            .key_prefix("bench")
            .l1_enabled(false)
            .redis_op_timeout(Duration::from_secs(30))
            .build()
            .await
            .expect("cache");
        let store = RedisStore::new(
            RedisConfig::new(server.url()).op_timeout(Duration::from_secs(30)),
        )
        .expect("store");
        let mut con = store.connection();

        // Computed values are stored once the backplane listens.
        let mut bp = redis_only.backplane().expect("backplane");
        bp.wait_for(|s| s.connected).await.expect("backplane");

        println!(
            "invalidating {MATCHING} keys of one prefix (user:42:*), or the {MATCHING} entries of one tag (tenant:42), median of {rounds} rounds"
        );
        println!(
            "  {:>12} {:>16} {:>20} {:>16} {:>16} {:>8}",
            "total keys",
            "ours, Redis only",
            "ours, with L1 copies",
            "tag, Redis only",
            "SCAN + UNLINK",
            "ratio"
        );
        let mut filled = 0;
        let mut ours_at = Vec::new();
        for &total in sizes {
            tests::redis_server::fill_plain_keys(&mut con, filled, total - MATCHING)
                .await
                .expect("fill");
            filled = total - MATCHING;
            let mut ours = Vec::new();
            let mut only = Vec::new();
            let mut scan = Vec::new();
            let mut tag = Vec::new();
            for r in 0..rounds {
                tagged_entries(&redis_only).await;
                let t = Instant::now();
                let n = redis_only.invalidate_tag("tenant:42").await.expect("tag").removed;
                tag.push(t.elapsed().as_secs_f64());
                assert_eq!(n as usize, MATCHING);
                matching(&redis_only).await;
                let t = Instant::now();
                let n = redis_only.invalidate("user:42:*").await.expect("invalidate").removed;
                only.push(t.elapsed().as_secs_f64());
                assert_eq!(n as usize, MATCHING);
                matching(&cache).await;
                let t = Instant::now();
                let n = cache.invalidate("user:42:*").await.expect("invalidate").removed;
                ours.push(t.elapsed().as_secs_f64());
                assert_eq!(n as usize, MATCHING);
                // The scan is slow at scale: fewer rounds of it.
                if r < 2 || total <= 1_000_000 {
                    matching(&cache).await;
                    let t = Instant::now();
                    let n = store.delete_matching("bench:user:42:*").await.expect("scan");
                    scan.push(t.elapsed().as_secs_f64());
                    assert_eq!(n as usize, MATCHING);
                }
            }
            let (r, o, g, s) = (median(only), median(ours), median(tag), median(scan));
            ours_at.push(r);
            println!(
                "  {total:>12} {:>13.2} ms {:>17.2} ms {:>13.2} ms {:>13.1} ms {:>7.0}x",
                ms(r),
                ms(o),
                ms(g),
                ms(s),
                s / r
            );
        }
        if let (Some(first), Some(last)) = (ours_at.first(), ours_at.last()) {
            println!(
                "  ours (Redis only) at {} keys / at {} keys: {:.2}x",
                sizes[sizes.len() - 1],
                sizes[0],
                last / first
            );
        }

        // What the mechanism adds to a write: our write script (SET, index
        // entries, marker) against a plain SET of the same bytes.
        let value = vec![7u8; 954];
        let layout = cache_redis::Layout::new("bench");
        let n = if quick { 2_000 } else { 10_000 };
        let mut ratios = Vec::new();
        let (mut ours_us, mut raw_us) = (Vec::new(), Vec::new());
        for round in 0..rounds * 2 {
            let t = Instant::now();
            for i in 0..n {
                // Exactly what the tier writes: the layout's index sets,
                // registry and marker for this key.
                let key = format!("bench:user:{}:item:{i}", round % 7);
                let indexes = layout.indexes(&key);
                let registry = layout.registry(&key);
                let marker = layout.key_marker(&key);
                let guard = WriteGuard::Bump {
                    marker: &marker,
                    sequence: layout.sequence(),
                    ttl: Duration::from_secs(3600),
                };
                store
                    .write(&key, &value, Duration::from_secs(600), &indexes, &registry, guard)
                    .await
                    .expect("write");
            }
            let o = t.elapsed().as_secs_f64() / n as f64;
            let t = Instant::now();
            for i in 0..n {
                let key = format!("bench:plain:{}:item:{i}", round % 7);
                store.set(&key, &value, Duration::from_secs(600)).await.expect("set");
            }
            let r = t.elapsed().as_secs_f64() / n as f64;
            ours_us.push(o * 1e6);
            raw_us.push(r * 1e6);
            ratios.push(o / r);
        }
        println!(
            "write of a ~1 KB value, sequential: ours (SET + 3 index entries + the namespace registry + marker, one script) {:.1} µs, plain SET {:.1} µs: {:.2}x",
            median(ours_us),
            median(raw_us),
            median(ratios)
        );
    });

    // The in-process tier: 1,000 of 1,000,000 entries by prefix (the index)
    // and the same 1,000 by a pattern that is not a prefix (every entry visited).
    let n = if quick { 100_000 } else { 1_000_000 };
    rt.block_on(async {
        let l1 = Cache::builder()
            .max_entries(n as u64 + 10_000)
            .build()
            .await
            .expect("cache");
        for i in 0..n - MATCHING {
            l1.set(&format!("other:{i}"), &1u8, Preset::Long).await.expect("set");
        }
        let (mut idx, mut all) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for i in 0..MATCHING {
                l1.set(&format!("user:42:item:{i}"), &1u8, Preset::Long).await.expect("set");
            }
            let t = Instant::now();
            assert_eq!(l1.invalidate("user:42:*").await.expect("inv").removed as usize, MATCHING);
            idx.push(t.elapsed().as_secs_f64());
            for i in 0..MATCHING {
                l1.set(&format!("user:42:item:{i}"), &1u8, Preset::Long).await.expect("set");
            }
            let t = Instant::now();
            assert_eq!(l1.invalidate("user:42:item:?*").await.expect("inv").removed as usize, MATCHING);
            all.push(t.elapsed().as_secs_f64());
        }
        let (i, a) = (median(idx), median(all));
        println!(
            "in-process tier, {MATCHING} of {n} entries: by prefix (index) {:.2} ms, by a non-prefix pattern (every entry) {:.1} ms: {:.0}x",
            ms(i),
            ms(a),
            a / i
        );
    });
}
