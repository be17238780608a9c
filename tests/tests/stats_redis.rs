//! Stats that mean what they say on a private `redis-server`: entries apart
//! from the bookkeeping keys, counted from the index sets (with pruning of
//! what expired or was removed behind their back), entries per namespace,
//! and every live instance's snapshot with their sum.

use std::time::Duration;

use cache_core::{Cache, Preset};
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually, redis_connection};

async fn fill(cache: &Cache) {
    for id in 0..5u64 {
        for part in ["profile", "roles"] {
            cache
                .set(&format!("user:{id}:{part}"), &id, Preset::Medium)
                .await
                .unwrap();
        }
    }
    cache
        .set("report:daily", &1u8, Preset::Medium)
        .await
        .unwrap();
    cache.set("answer", &42u8, Preset::Medium).await.unwrap();
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn entries_leave_out_the_bookkeeping_and_follow_clear_and_invalidation() {
    let server = RedisServer::start();
    let cache = Instance::on(&server).prefix("st").connected().await;
    fill(&cache).await;

    let redis = cache.stats().await.redis.expect("a shared tier");
    assert!(redis.reachable);
    assert_eq!((redis.entries, redis.entries_exact), (12, true));
    assert!(
        redis.db_keys > redis.entries,
        "the database also holds index sets and markers: {redis:?}"
    );

    let ns = cache.namespaces().await.unwrap();
    let counts: Vec<(&str, u64, bool)> = ns
        .iter()
        .map(|n| (n.prefix.as_str(), n.entries, n.exact))
        .collect();
    assert_eq!(
        counts,
        [("user:", 10, true), ("", 1, true), ("report:", 1, true)]
    );

    assert_eq!(cache.invalidate("user:3:*").await.unwrap().removed, 2);
    assert_eq!(cache.delete("answer").await.unwrap().removed, 1);
    assert_eq!(cache.stats().await.redis.unwrap().entries, 9);

    cache.clear().await.unwrap();
    let redis = cache.stats().await.redis.unwrap();
    assert_eq!((redis.entries, redis.entries_exact), (0, true));
    assert!(cache.namespaces().await.unwrap().is_empty());
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_large_namespace_is_sampled_and_the_count_converges_as_dead_members_are_pruned() {
    let server = RedisServer::start();
    let cache = Instance::on(&server).prefix("big").connected().await;
    for i in 0..1000u32 {
        cache
            .set(&format!("item:{i}"), &i, Preset::Medium)
            .await
            .unwrap();
    }
    let ns = cache.namespaces().await.unwrap();
    assert_eq!(
        (ns[0].prefix.as_str(), ns[0].entries, ns[0].exact),
        ("item:", 1000, false)
    );

    // Half of them removed behind the index's back (expired, or deleted by
    // another tool): each count prunes the dead members it samples, so
    // repeated counts converge on the truth (a dead member escapes 100
    // samples of 200 with a probability below 0.8^100).
    let mut con = redis_connection(&server).await;
    for i in (0..1000u32).step_by(2) {
        let _: () = redis::cmd("DEL")
            .arg(format!("big:item:{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let mut last = 0;
    for _ in 0..100 {
        last = cache.namespaces().await.unwrap()[0].entries;
    }
    assert_eq!(last, 500);
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn every_live_instance_is_listed_with_their_sum_and_a_stopped_one_drops_out() {
    let server = RedisServer::start();
    let instance = Instance::on(&server)
        .prefix("all")
        .configure(|b| b.stats_interval(Duration::from_millis(100)));
    let (a, b) = instance.connected_pair().await;
    a.set("k:1", &1u8, Preset::Medium).await.unwrap();
    assert_eq!(b.get::<u8>("k:1").await.unwrap(), Some(1), "an L2 hit on b");
    assert_eq!(b.get::<u8>("k:2").await.unwrap(), None, "a miss on b");

    // Each instance reports on its own schedule: wait until b's snapshot
    // carries its lookups.
    eventually("b's snapshot with its two lookups", async || {
        let all = a.stats_all().await.unwrap();
        all.instances.len() == 2 && all.total.l2_hits == 1 && all.total.misses == 1
    })
    .await;
    let all = a.stats_all().await.unwrap();
    assert_eq!(all.total.sets, 1, "a's set, counted once");
    assert_eq!(all.instances[0].stats.sets, 1, "a itself comes first");
    assert_eq!(all.total.hits, 1);
    assert_eq!(all.total.hit_rate, 0.5);
    let redis = all.total.redis.expect("Redis figures in the total");
    assert_eq!(redis.entries, 1);
    assert!(all.instances.iter().all(|i| i.stats.redis.is_none()));

    // From b, the same instances.
    let from_b = b.stats_all().await.unwrap();
    assert_eq!(from_b.instances.len(), 2);
    assert_eq!(from_b.instances[0].instance, all.instances[1].instance);

    drop(b);
    eventually("b's snapshot to expire", async || {
        a.stats_all().await.unwrap().instances.len() == 1
    })
    .await;
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn with_redis_down_stats_all_is_an_error_and_stats_still_answers() {
    let mut server = RedisServer::start();
    let cache = Instance::on(&server).prefix("down").connected().await;
    cache.set("k:1", &1u8, Preset::Medium).await.unwrap();
    server.kill();
    assert!(cache.stats_all().await.is_err());
    assert!(cache.namespaces().await.is_err());
    let stats = cache.stats().await;
    assert_eq!(stats.sets, 1);
    assert!(!stats.redis.expect("a shared tier").reachable);
}

#[tokio::test]
async fn without_redis_stats_all_is_this_instance_and_namespaces_count_in_process() {
    let cache = Cache::builder().key_prefix("mem").build().await.unwrap();
    cache.set("user:1:a", &1u8, Preset::Short).await.unwrap();
    cache.set("user:2:a", &1u8, Preset::Short).await.unwrap();
    cache.set("flat", &1u8, Preset::Short).await.unwrap();
    let all = cache.stats_all().await.unwrap();
    assert_eq!(all.instances.len(), 1);
    assert_eq!((all.total.sets, all.total.backend.as_str()), (3, "memory"));
    let ns = cache.namespaces().await.unwrap();
    let counts: Vec<(&str, u64)> = ns.iter().map(|n| (n.prefix.as_str(), n.entries)).collect();
    assert_eq!(counts, [("user:", 2), ("", 1)]);
}
