//! Automatic batching of concurrent Redis reads, against real servers: reads
//! that wait while the connection is busy go out as one `MGET`, each caller
//! gets its own answer (a corrupt entry or a missing key is a miss for that
//! key only, a caller that gave up is left out), an open breaker sends
//! nothing, and batched reads racing writes never leave a stale value in
//! the in-process tier.

use std::collections::HashMap;
use std::time::Duration;

use cache_core::{BreakerConfig, Cache, Preset};
use tests::redis_server::RedisServer;
use tests::support::{Instance, redis_connection};

/// `calls` of each command since the last `CONFIG RESETSTAT`.
async fn command_calls(con: &mut redis::aio::MultiplexedConnection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

async fn reset_stats(con: &mut redis::aio::MultiplexedConnection) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(con)
        .await
        .unwrap();
}

fn read(cache: &Cache, key: &'static str) -> tokio::task::JoinHandle<Option<u32>> {
    let cache = cache.clone();
    tokio::spawn(async move { cache.get::<u32>(key).await.unwrap() })
}

// One thread: the tasks below run in the order they were spawned, so which
// reads are in flight and which wait is known.
#[tokio::test(flavor = "current_thread")]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn reads_that_wait_go_out_together_and_each_gets_its_own_answer() {
    let server = RedisServer::start();
    let cache = Instance::on(&server)
        .prefix("bt")
        .backplane(false)
        .configure(|b| b.l1_enabled(false).redis_op_timeout(Duration::from_secs(5)))
        .build();
    cache.set("good", &7u32, Preset::Medium).await.unwrap();
    let mut raw = redis_connection(&server).await;
    redis::cmd("SET")
        .arg("bt:corrupt")
        .arg("not a cache entry")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    assert_eq!(cache.get::<u32>("good").await.unwrap(), Some(7));
    reset_stats(&mut raw).await;

    server.pause();
    // Two reads in flight, the most a connection has before reads wait...
    let first = read(&cache, "first");
    let second = read(&cache, "second");
    tokio::task::yield_now().await;
    // ...so these wait, and go out together when one of the two lands.
    let good = read(&cache, "good");
    let corrupt = read(&cache, "corrupt");
    let missing = read(&cache, "missing");
    let impatient = {
        let cache = cache.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(50), cache.get::<u32>("gave-up")).await
        })
    };
    assert!(
        impatient.await.unwrap().is_err(),
        "a caller gives up while Redis is paused"
    );
    server.resume();

    assert_eq!(good.await.unwrap(), Some(7));
    assert_eq!(corrupt.await.unwrap(), None, "a corrupt entry: a miss");
    assert_eq!(missing.await.unwrap(), None);
    assert_eq!(first.await.unwrap(), None);
    assert_eq!(second.await.unwrap(), None);
    let calls = command_calls(&mut raw).await;
    assert_eq!(
        (calls.get("get").copied(), calls.get("mget").copied()),
        (Some(2), Some(1)),
        "two lone reads, then one batch: {calls:?}"
    );
    // The good entry is still there and still a hit.
    assert_eq!(cache.get::<u32>("good").await.unwrap(), Some(7));
}

#[tokio::test(flavor = "current_thread")]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn without_batching_every_read_is_its_own_get() {
    let server = RedisServer::start();
    let cache = Instance::on(&server)
        .prefix("nb")
        .backplane(false)
        .configure(|b| {
            b.l1_enabled(false)
                .redis_op_timeout(Duration::from_secs(5))
                .redis_batch_reads(false)
        })
        .build();
    cache.set("good", &7u32, Preset::Medium).await.unwrap();
    let mut raw = redis_connection(&server).await;
    assert_eq!(cache.get::<u32>("good").await.unwrap(), Some(7));
    reset_stats(&mut raw).await;
    server.pause();
    let reads: Vec<_> = ["good", "a", "b", "c"]
        .into_iter()
        .map(|k| read(&cache, k))
        .collect();
    tokio::task::yield_now().await;
    server.resume();
    let mut got = Vec::new();
    for r in reads {
        got.push(r.await.unwrap());
    }
    assert_eq!(got, [Some(7), None, None, None]);
    let calls = command_calls(&mut raw).await;
    assert_eq!(
        (calls.get("get").copied(), calls.get("mget").copied()),
        (Some(4), None),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn an_open_breaker_sends_nothing_and_every_read_is_a_miss() {
    let server = RedisServer::start();
    let cache = Instance::on(&server)
        .prefix("bo")
        .backplane(false)
        .configure(|b| {
            b.l1_enabled(false)
                .redis_op_timeout(Duration::from_millis(200))
                .breaker(
                    BreakerConfig::default()
                        .consecutive_failures(2)
                        .cool_down(Duration::from_secs(600)),
                )
        })
        .build();
    cache.set("k0", &1u32, Preset::Medium).await.unwrap();
    server.pause();
    for _ in 0..2 {
        assert_eq!(cache.get::<u32>("k0").await.unwrap(), None);
    }
    server.resume();
    let mut raw = redis_connection(&server).await;
    reset_stats(&mut raw).await;
    let before = cache.stats().await.redis_skipped;
    let reads: Vec<_> = (0..64)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get::<u32>(&format!("k{}", i % 8)).await.unwrap() })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.unwrap(), None);
    }
    assert!(cache.stats().await.redis_skipped >= before + 64);
    let calls = command_calls(&mut raw).await;
    assert_eq!(
        (calls.get("get"), calls.get("mget")),
        (None, None),
        "{calls:?}"
    );
}

tests::on_every_deployment! { multi_thread;
/// Batched reads racing writes from another instance: once the reader has
/// heard every write, each key reads the last value written, from its
/// in-process tier too (a value read before a write is never kept after
/// the write's announcement).
async fn batched_reads_racing_writes_keep_no_stale_value(redis) {
    let (writer, reader) = redis.instance().prefix("race").connected_pair().await;
    const KEYS: u32 = 8;
    const WRITES: u32 = 40;
    let mut heard = reader.backplane().unwrap();
    let applied = heard.borrow().applied;
    for k in 0..KEYS {
        writer.set(&format!("k{k}"), &0u32, Preset::Medium).await.unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..64u32)
        .map(|t| {
            let reader = reader.clone();
            let stop = std::sync::Arc::clone(&stop);
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("k{}", (t + n) % KEYS);
                    // Each write's announcement drops the key from the
                    // in-process tier: most reads go to Redis, batched.
                    reader.get::<u32>(&key).await.unwrap();
                    n += 1;
                    // An in-process hit does not yield: let the writer run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for v in 1..=WRITES {
        for k in 0..KEYS {
            writer.set(&format!("k{k}"), &v, Preset::Medium).await.unwrap();
        }
    }
    tokio::time::timeout(
        Duration::from_secs(30),
        heard.wait_for(|s| s.applied >= applied + u64::from(KEYS * (WRITES + 1))),
    )
    .await
    .expect("the reader heard every write")
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    for k in 0..KEYS {
        assert_eq!(
            reader.get::<u32>(&format!("k{k}")).await.unwrap(),
            Some(WRITES),
            "k{k}"
        );
    }
}
}

/// On a cluster each master has batches of its own: while one master
/// hangs, reads of its keys time out (misses, never errors) and reads of
/// the others' keys, sent at the same moment, are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_hung_master_holds_up_only_its_own_keys_reads() {
    let cluster = tests::redis_cluster::RedisCluster::start(3, 0);
    let cache = Instance::on_cluster(&cluster)
        .prefix("bc")
        .backplane(false)
        .configure(|b| b.l1_enabled(false))
        .build();
    let master = |id: u32| {
        let name = cache_core::cache_redis::Layout::cluster("bc")
            .physical(&format!("bc:user:{id}:profile"))
            .into_owned();
        cluster.master_for_key(&name)
    };
    for id in 0..60u32 {
        cache
            .set(&format!("user:{id}:profile"), &id, Preset::Medium)
            .await
            .unwrap();
    }
    let hung = master(0);
    let (on_hung, live): (Vec<u32>, Vec<u32>) = (0..60u32).partition(|&id| master(id) == hung);
    assert!(on_hung.len() >= 3 && live.len() >= 10);
    cluster.pause(hung);
    let spawn = |id: u32| {
        let cache = cache.clone();
        tokio::spawn(async move {
            (
                id,
                cache
                    .get::<u32>(&format!("user:{id}:profile"))
                    .await
                    .unwrap(),
            )
        })
    };
    let hung_reads: Vec<_> = on_hung.iter().map(|&id| spawn(id)).collect();
    let live_reads: Vec<_> = live.iter().map(|&id| spawn(id)).collect();
    for r in live_reads {
        let (id, got) = r.await.unwrap();
        assert_eq!(got, Some(id), "a live master's key is answered");
    }
    for r in hung_reads {
        let (id, got) = r.await.unwrap();
        assert_eq!(got, None, "key {id} on the hung master: a miss");
    }
    cluster.resume(hung);
}
