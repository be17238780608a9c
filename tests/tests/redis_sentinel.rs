//! The shared tier on a Redis Sentinel deployment the test starts (a
//! master, a replica, three sentinels): the cache finds the master through
//! the sentinels, and after the master dies and a replica is promoted it
//! follows by itself, keeps an invalidation made during the failover, and
//! its backplane reaches the other instance again.

use std::time::Duration;

use cache_core::{Cache, Preset};
use tests::redis_sentinel::RedisSentinelSet;
use tests::support::{connected, eventually};

/// An instance on `set` with 2 s per command (a busy machine must not make
/// a healthy node look failed).
fn instance(set: &RedisSentinelSet, prefix: &str) -> Cache {
    Cache::builder()
        .redis_sentinel(set.sentinel_urls(), set.master_name())
        .key_prefix(prefix)
        .redis_op_timeout(Duration::from_secs(2))
        .build_blocking()
        .expect("a sentinel instance builds")
}

async fn get_on(url: &str, key: &str) -> Option<Vec<u8>> {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn the_cache_finds_the_master_through_the_sentinels_and_follows_a_failover() {
    let mut set = tokio::task::block_in_place(RedisSentinelSet::start);
    let a = instance(&set, "s");
    let b = instance(&set, "s");
    connected(&a).await;
    connected(&b).await;

    a.set("user:1:profile", &1u32, Preset::Medium)
        .await
        .unwrap();
    a.set("user:2:profile", &2u32, Preset::Medium)
        .await
        .unwrap();
    assert!(
        get_on(&set.master_url(), "s:user:1:profile")
            .await
            .is_some(),
        "written on the master the sentinels name"
    );
    assert_eq!(b.get::<u32>("user:1:profile").await.unwrap(), Some(1));
    assert_eq!(b.get::<u32>("user:2:profile").await.unwrap(), Some(2));

    // The replica has every write before the master dies (what asynchronous
    // replication can lose otherwise: see the tier's docs).
    let master = set.master_url();
    let mut con = redis::Client::open(master.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(acked, 1);
    let old = set.kill_master();

    // During the failover calls answer, never an error...
    assert_eq!(
        a.get_or_set("report:x", Preset::Medium, async { 5u32 })
            .await
            .unwrap(),
        5
    );
    // ...and an invalidation made now is not lost.
    a.invalidate("user:1:*").await.unwrap();
    tokio::task::block_in_place(|| set.wait_for_promotion(old));

    eventually(
        "the invalidation replayed on the promoted master",
        async || a.pending_invalidations() == 0,
    )
    .await;
    let fresh = instance(&set, "s");
    assert_eq!(fresh.get::<u32>("user:1:profile").await.unwrap(), None);
    assert_eq!(
        fresh.get::<u32>("user:2:profile").await.unwrap(),
        Some(2),
        "replicated before the failover: kept"
    );
    // b's backplane found the new master: an invalidation by a reaches
    // b's in-process copy.
    eventually("b resubscribed on the promoted master", async || {
        b.backplane().unwrap().borrow().connected
    })
    .await;
    eventually(
        "writes and invalidations through the promoted master",
        async || {
            a.set("user:3:profile", &3u32, Preset::Medium).await.is_ok()
                && b.get::<u32>("user:3:profile").await.ok().flatten() == Some(3)
        },
    )
    .await;
    let mut heard = b.backplane().unwrap();
    let applied = heard.borrow().applied;
    a.invalidate("user:3:*").await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        heard.wait_for(|s| s.applied > applied),
    )
    .await
    .expect("b heard the invalidation within 20 s")
    .unwrap();
    assert_eq!(b.get::<u32>("user:3:profile").await.unwrap(), None);
    assert!(
        get_on(&set.master_url(), "s:user:3:profile")
            .await
            .is_none(),
        "removed on the promoted master"
    );
}

#[tokio::test]
async fn sentinels_that_are_not_there_are_misses_not_errors() {
    // Nothing listens on these ports: every call goes to the origin.
    let cache = Cache::builder()
        .redis_sentinel(["redis://127.0.0.1:1", "redis://127.0.0.1:2"], "mymaster")
        .key_prefix("gone")
        .build()
        .await
        .unwrap();
    assert_eq!(
        cache
            .get_or_set("k", Preset::Medium, async { 7u32 })
            .await
            .unwrap(),
        7
    );
    let health = cache.health().await;
    assert_ne!(health.status, cache_core::HealthStatus::Healthy);
    assert!(health.error.is_some());
}
