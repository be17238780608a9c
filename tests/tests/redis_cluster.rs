//! The shared tier on a real Redis Cluster the test starts (3 masters, or 3
//! masters with a replica each): keys spread over the masters, every kind
//! of invalidation reaching every instance, Redis refusing a value computed
//! before an invalidation, the stampede lock across instances, stats, a
//! killed master (its keys misses, the others hits, no caller error), a
//! paused one, and a failover after which the cache recovers by itself and
//! an invalidation made during it is not lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, HealthStatus, Preset};
use tests::redis_cluster::RedisCluster;
use tests::redis_server::RedisServer;
use tests::support::{Instance, connected, eventually};

/// An instance on `cluster` with 2 s per command (a busy machine must not
/// make a healthy node look failed) unless the test is about timeouts.
fn instance(cluster: &RedisCluster, prefix: &str) -> Cache {
    Cache::builder()
        .redis_cluster(cluster.seed_urls())
        .key_prefix(prefix)
        .redis_op_timeout(Duration::from_secs(2))
        .build_blocking()
        .expect("a cluster instance builds")
}

async fn pair(cluster: &RedisCluster, prefix: &str) -> (Cache, Cache) {
    let a = instance(cluster, prefix);
    let b = instance(cluster, prefix);
    connected(&a).await;
    connected(&b).await;
    (a, b)
}

/// Keys on one node: `DBSIZE`.
async fn dbsize(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DBSIZE").query_async(&mut con).await.unwrap()
}

/// The cache key (under `prefix`) as a user of redis-cli would look it up:
/// its bucket-tagged name on the cluster.
fn physical(prefix: &str, key: &str) -> String {
    cache_redis::Layout::cluster(prefix)
        .physical(&format!("{prefix}:{key}"))
        .into_owned()
}

/// Retries `check` for each of `ids` until it has held for every one (each
/// id is checked again only while it fails): on a busy machine a live
/// master can miss a deadline too, and what a test asserts is that nothing
/// holds these keys back for good.
async fn until_all(what: &str, ids: &[u32], mut check: impl AsyncFnMut(u32) -> bool) {
    let mut waiting = ids.to_vec();
    eventually(what, async || {
        let mut still = Vec::new();
        for &id in &waiting {
            if !check(id).await {
                still.push(id);
            }
        }
        waiting = still;
        waiting.is_empty()
    })
    .await;
}

/// Every `user:<id>:profile` of `live` (on live masters) reads back `id`,
/// retried while it does not (see [`until_all`]).
async fn live_keys_hit(reader: &Cache, live: &[u32]) {
    until_all("the live masters' keys hit", live, async |id| {
        reader
            .get::<u32>(&format!("user:{id}:profile"))
            .await
            .unwrap()
            == Some(id)
    })
    .await;
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn keys_spread_over_the_masters_and_every_invalidation_reaches_every_instance() {
    let cluster = RedisCluster::start(3, 0);
    let (a, b) = pair(&cluster, "cl").await;
    for id in 0..60u32 {
        for part in ["profile", "roles"] {
            a.set(&format!("user:{id}:{part}"), &id, Preset::Medium)
                .await
                .unwrap();
        }
    }
    for url in cluster.master_urls() {
        assert!(dbsize(&url).await > 0, "every master holds keys: {url}");
    }
    let stats = a.stats().await;
    let redis = stats.redis.expect("a shared tier");
    assert_eq!((redis.entries, redis.entries_exact), (120, true));
    // Per master: every one answered, and their keys add up to the total.
    assert_eq!(stats.redis_nodes.len(), 3);
    assert!(
        stats
            .redis_nodes
            .iter()
            .all(|n| n.reachable && n.db_keys > 0)
    );
    assert_eq!(
        stats.redis_nodes.iter().map(|n| n.db_keys).sum::<u64>(),
        redis.db_keys
    );
    let ns = a.namespaces().await.unwrap();
    assert_eq!((ns[0].prefix.as_str(), ns[0].entries), ("user:", 120));

    // b reads from Redis, then holds in-process copies.
    for id in 0..60u32 {
        assert_eq!(
            b.get::<u32>(&format!("user:{id}:profile")).await.unwrap(),
            Some(id)
        );
    }
    let mut heard = b.backplane().unwrap();

    // One key, one bucket's prefix, a namespace over every bucket, a
    // scanned pattern, everything.
    let cases: [(&str, u64); 4] = [
        ("user:1:profile", 1),
        ("user:2:*", 2),
        ("user:1?:roles", 10),
        ("user:*", 120 - 1 - 2 - 10),
    ];
    for (pattern, removed) in cases {
        let applied = heard.borrow().applied;
        assert_eq!(
            a.invalidate(pattern).await.unwrap().removed,
            removed,
            "{pattern}"
        );
        heard.wait_for(|s| s.applied > applied).await.unwrap();
    }
    for id in 0..60u32 {
        assert_eq!(
            b.get::<u32>(&format!("user:{id}:profile")).await.unwrap(),
            None
        );
        assert_eq!(
            a.get::<u32>(&format!("user:{id}:roles")).await.unwrap(),
            None
        );
    }
    a.set("answer", &42u32, Preset::Medium).await.unwrap();
    a.set("report:daily", &1u32, Preset::Medium).await.unwrap();
    a.clear().await.unwrap();
    assert_eq!(b.get::<u32>("answer").await.unwrap(), None);
    assert_eq!(a.stats().await.redis.unwrap().entries, 0);
    let errors = a.stats().await.errors + b.stats().await.errors;
    assert_eq!(errors, 0, "no Redis command failed (no CROSSSLOT, ever)");
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_value_computed_before_an_invalidation_is_refused_by_the_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let (a, b) = pair(&cluster, "race").await;
    for pattern in ["user:5:profile", "user:5:*", "user:*", "*:profile", "*"] {
        let started = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let computing = {
            let (a, started, release) = (a.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                a.get_or_set("user:5:profile", Preset::Medium, async move {
                    started.notify_one();
                    release.notified().await;
                    "old".to_string()
                })
                .await
                .unwrap()
            })
        };
        started.notified().await;
        b.invalidate(pattern).await.unwrap();
        release.notify_one();
        assert_eq!(computing.await.unwrap(), "old", "the caller gets its value");
        assert_eq!(
            b.get::<String>("user:5:profile").await.unwrap(),
            None,
            "{pattern}: the cluster refused the stale write"
        );
        a.delete("user:5:profile").await.unwrap();
    }
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn the_stampede_lock_holds_across_instances_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let (a, b) = pair(&cluster, "lock").await;
    let origin = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::new();
    for i in 0..40 {
        let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
        let origin = origin.clone();
        calls.push(tokio::spawn(async move {
            cache
                .get_or_set("report:q3:total", Preset::Medium, async move {
                    origin.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    7u32
                })
                .await
                .unwrap()
        }));
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), 7);
    }
    assert_eq!(origin.load(SeqCst), 1, "one origin call for both instances");
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_killed_master_makes_only_its_keys_misses() {
    let mut cluster = RedisCluster::start(3, 0);
    let writer = instance(&cluster, "dead");
    for id in 0..90u32 {
        writer
            .set(&format!("user:{id}:profile"), &id, Preset::Medium)
            .await
            .unwrap();
    }
    let victim = cluster.master_for_key(&physical("dead", "user:0:profile"));
    cluster.kill(victim);
    // A fresh instance: nothing in-process, every hit comes from Redis.
    let reader = Cache::builder()
        .redis_cluster(
            cluster
                .seed_urls()
                .into_iter()
                .filter(|u| !u.ends_with(&format!(":{}", cluster.port(victim)))),
        )
        .key_prefix("dead")
        .redis_op_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let (dead, live): (Vec<u32>, Vec<u32>) = (0..90u32).partition(|id| {
        cluster.master_for_key(&physical("dead", &format!("user:{id}:profile"))) == victim
    });
    assert!(!dead.is_empty() && !live.is_empty());
    for &id in &dead {
        let key = format!("user:{id}:profile");
        let got = reader.get::<u32>(&key).await.unwrap(); // never an error
        assert_eq!(got, None, "{key} lives on the dead master: a miss");
    }
    // Every key on a live master is still a hit (retried: with 300 ms per
    // command, a busy machine can make a live master miss a deadline too).
    live_keys_hit(&reader, &live).await;
    assert_eq!(reader.health().await.status, HealthStatus::Degraded);
    // Stats still answer, from the live masters, and name the dead one.
    let stats = reader.stats().await;
    assert!(stats.redis.is_some_and(|r| r.reachable));
    let down: Vec<_> = stats.redis_nodes.iter().filter(|n| !n.reachable).collect();
    assert_eq!(down.len(), 1, "{:?}", stats.redis_nodes);
    assert!(
        down[0]
            .address
            .ends_with(&format!(":{}", cluster.port(victim)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn after_a_failover_the_cache_recovers_and_keeps_an_invalidation_made_during_it() {
    let mut cluster = RedisCluster::start(3, 1);
    let (a, b) = pair(&cluster, "fo").await;
    a.set("user:9:profile", &1u32, Preset::Medium)
        .await
        .unwrap();
    a.set("user:9:roles", &1u32, Preset::Medium).await.unwrap();
    let name = physical("fo", "user:9:profile");
    let master = cluster.master_for_key(&name);
    // Writes reach the replica before the kill (asynchronous replication
    // could otherwise lose them with the master: see the tier's docs).
    tokio::task::block_in_place(|| cluster.wait_for_replication(&name));
    cluster.kill(master);
    // During the failover: calls answer (from the origin), never an error.
    assert_eq!(
        b.get_or_set("user:9:other", Preset::Medium, async { 5u32 })
            .await
            .unwrap(),
        5
    );
    // An invalidation made while the slot has no master is kept...
    a.invalidate("user:9:*").await.unwrap();
    tokio::task::block_in_place(|| cluster.wait_for_failover(master));
    // ...and replayed once the promoted master serves the slot.
    eventually(
        "the invalidation replayed on the promoted master",
        async || a.stats().await.pending_invalidations == 0,
    )
    .await;
    let fresh = instance(&cluster, "fo");
    assert_eq!(
        fresh.get::<u32>("user:9:profile").await.unwrap(),
        None,
        "no stale value"
    );
    assert_eq!(fresh.get::<u32>("user:9:roles").await.unwrap(), None);
    // And the cache works again without a restart.
    eventually("writes and reads through the promoted master", async || {
        a.set("user:9:profile", &2u32, Preset::Medium).await.is_ok()
            && fresh.get::<u32>("user:9:profile").await.ok().flatten() == Some(2)
    })
    .await;
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_node_not_in_cluster_mode_is_named_and_calls_go_to_the_origin() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis_cluster([server.url()])
        .key_prefix("nc")
        .build()
        .await
        .unwrap();
    assert_eq!(
        cache
            .get_or_set("k", Preset::Medium, async { 1u32 })
            .await
            .unwrap(),
        1
    );
    let health = cache.health().await;
    assert_eq!(health.status, HealthStatus::Degraded);
    let error = health.error.expect("the probe's error");
    assert!(error.contains("not in cluster mode"), "{error}");
    assert!(error.contains("REDIS_CLUSTER_URLS"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn an_invalidation_waiting_for_a_dead_master_holds_back_only_its_keys() {
    let mut cluster = RedisCluster::start(3, 0);
    let a = instance(&cluster, "held");
    for id in 0..60u32 {
        a.set(&format!("user:{id}:profile"), &id, Preset::Medium)
            .await
            .unwrap();
    }
    let on = |cluster: &RedisCluster, id: u32| {
        cluster.master_for_key(&physical("held", &format!("user:{id}:profile")))
    };
    let victim = on(&cluster, 0);
    let (healthy, dead): (Vec<u32>, Vec<u32>) = (0..60).partition(|&id| on(&cluster, id) != victim);
    assert!(!dead.is_empty() && !healthy.is_empty());
    cluster.kill(victim);

    // A fresh instance: nothing in-process, every hit comes from Redis.
    let reader = || {
        Cache::builder()
            .redis_cluster(cluster.seed_urls())
            .key_prefix("held")
            // A busy machine must not make a live master look failed.
            .redis_op_timeout(Duration::from_secs(2))
            .build_blocking()
            .unwrap()
    };
    let b = reader();
    // One key's prefix on the dead master: queued, for its bucket only.
    b.invalidate("user:0:*").await.unwrap();
    assert_eq!(b.pending_invalidations(), 1);
    until_all(
        "the live masters' keys hit while one is queued",
        &healthy,
        async |id| b.get::<u32>(&format!("user:{id}:profile")).await.unwrap() == Some(id),
    )
    .await;
    assert!(
        b.pending_invalidations() >= 1,
        "the dead master's share still waits"
    );
    // A namespace: done on the live masters, queued for the dead one's
    // buckets; the live masters' keys are gone, and new ones hit.
    b.invalidate("user:*").await.unwrap();
    assert!(b.pending_invalidations() > 1);
    for &id in &healthy {
        let key = format!("user:{id}:profile");
        assert_eq!(b.get::<u32>(&key).await.unwrap(), None, "invalidated");
    }
    let c = reader();
    until_all(
        "new values on the live masters hit in another instance",
        &healthy,
        async |id| {
            let key = format!("user:{id}:profile");
            b.set(&key, &(id + 100), Preset::Medium).await.unwrap();
            c.get::<u32>(&key).await.unwrap() == Some(id + 100)
        },
    )
    .await;
    assert!(
        b.pending_invalidations() >= 1,
        "the dead master's share still waits"
    );
    for &id in &dead {
        assert_eq!(
            b.get::<u32>(&format!("user:{id}:profile")).await.unwrap(),
            None
        );
    }

    // The master comes back (empty: nothing persisted); the queue drains.
    tokio::task::block_in_place(|| cluster.restart(victim));
    eventually("the dead master's share replayed", async || {
        b.pending_invalidations() == 0
    })
    .await;
    eventually(
        "the returned master's keys written and read again",
        async || {
            for &id in &dead {
                let key = format!("user:{id}:profile");
                if a.set(&key, &id, Preset::Medium).await.is_err()
                    || c.get::<u32>(&key).await.ok().flatten() != Some(id)
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_hung_master_opens_the_breakers_of_all_its_keys_together() {
    let cluster = RedisCluster::start(3, 0);
    let a = instance(&cluster, "hung");
    for id in 0..300u32 {
        a.set(&format!("user:{id}:profile"), &id, Preset::Medium)
            .await
            .unwrap();
    }
    let victim = cluster.master_for_key(&physical("hung", "user:0:profile"));
    let on = |id: u32| cluster.master_for_key(&physical("hung", &format!("user:{id}:profile")));
    let buckets = |id: u32| {
        cache_redis::Layout::cluster("hung").key_bucket(&format!("hung:user:{id}:profile"))
    };
    // Keys of the hung master, one per bucket; and keys elsewhere.
    let mut seen = std::collections::HashSet::new();
    let (mut hung, mut live) = (Vec::new(), Vec::new());
    for id in 0..300u32 {
        if on(id) != victim {
            live.push(id);
        } else if seen.insert(buckets(id)) {
            hung.push(id);
        }
    }
    assert!(hung.len() > 10 && !live.is_empty());
    // A fresh instance; its breakers open after 3 consecutive failures.
    let reader = Cache::builder()
        .redis_cluster(cluster.seed_urls())
        .key_prefix("hung")
        .redis_op_timeout(Duration::from_millis(300))
        .breaker(
            cache_core::BreakerConfig::default()
                .consecutive_failures(3)
                .window(1000)
                // Longer than a `stats()` call that waits on the hung master.
                .cool_down(Duration::from_secs(5)),
        )
        .build()
        .await
        .unwrap();
    cluster.pause(victim);
    // Opens the first bucket's breaker (never an error to the caller).
    let first = format!("user:{}:profile", hung[0]);
    for _ in 0..3 {
        assert_eq!(reader.get::<u32>(&first).await.unwrap(), None);
    }
    // Another bucket of the same master, never read: skipped without a
    // command of its own once the first one opened (the slot map is read
    // in the background; each try uses a bucket not tried before).
    let mut others = hung[1..].iter();
    eventually(
        "a bucket of the hung master skipped before its own failure",
        async || {
            let Some(id) = others.next() else {
                return true; // ran out: the assertion below reports it
            };
            let before = reader.stats().await;
            assert_eq!(
                reader
                    .get::<u32>(&format!("user:{id}:profile"))
                    .await
                    .unwrap(),
                None
            );
            let after = reader.stats().await;
            after.redis_skipped > before.redis_skipped && after.errors == before.errors
        },
    )
    .await;
    assert!(
        others.len() > 0,
        "a bucket of the hung master was skipped before the last one"
    );
    // The other masters' keys still hit.
    live_keys_hit(&reader, &live).await;
    cluster.resume(victim);
    eventually("the hung master's keys hit again", async || {
        reader.get::<u32>(&first).await.unwrap() == Some(hung[0])
    })
    .await;
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_cluster_with_a_password_works_and_a_wrong_one_is_named() {
    let cluster = RedisCluster::start_with_password(3, 0, "s3cret");
    let (a, b) = pair(&cluster, "pw").await;
    for id in 0..30u32 {
        a.set(&format!("user:{id}:profile"), &id, Preset::Medium)
            .await
            .unwrap();
    }
    let mut heard = b.backplane().unwrap();
    assert_eq!(b.get::<u32>("user:7:profile").await.unwrap(), Some(7));
    let applied = heard.borrow().applied;
    assert_eq!(a.invalidate("user:*").await.unwrap().removed, 30);
    heard.wait_for(|s| s.applied > applied).await.unwrap();
    assert_eq!(b.get::<u32>("user:7:profile").await.unwrap(), None);
    assert_eq!(a.stats().await.errors, 0);
    assert_eq!(a.health().await.status, HealthStatus::Healthy);

    // The same nodes with a wrong password: calls answer from the origin,
    // health says why, and the password is never shown.
    let wrong: Vec<String> = cluster
        .seed_urls()
        .iter()
        .map(|u| u.replace("s3cret", "wrong"))
        .collect();
    let c = Cache::builder()
        .redis_cluster(wrong)
        .key_prefix("pw")
        .build()
        .await
        .unwrap();
    assert_eq!(
        c.get_or_set("user:7:profile", Preset::Medium, async { 70u32 })
            .await
            .unwrap(),
        70
    );
    let health = c.health().await;
    assert_eq!(health.status, HealthStatus::Degraded);
    let error = health.error.expect("the probe's error");
    assert!(
        !error.contains("wrong") && !error.contains("s3cret"),
        "{error}"
    );
}

/// The master (index below `masters`) an instance with `prefix` keeps its
/// backplane subscription on: the one whose `PUBSUB NUMSUB` counts it.
async fn subscriber_node(cluster: &RedisCluster, prefix: &str, masters: usize) -> usize {
    let channel = cache_redis::Layout::cluster(prefix).channel().to_owned();
    for i in 0..masters {
        let url = format!("redis://127.0.0.1:{}", cluster.port(i));
        let client = redis::Client::open(url).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut con)
            .await
            .unwrap();
        if counts.first().is_some_and(|(_, n)| *n > 0) {
            return i;
        }
    }
    panic!("the subscription is on one of the masters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_burst_to_a_dead_master_does_not_hold_up_the_live_ones() {
    let mut cluster = RedisCluster::start(3, 0);
    let writer = Instance::on_cluster(&cluster)
        .prefix("burst")
        .backplane(false)
        .build();
    for id in 0..90u32 {
        writer
            .set(&format!("user:{id}:profile"), &id, Preset::Medium)
            .await
            .unwrap();
    }
    // Connected (and subscribed) before the kill; nothing in-process.
    let reader = Instance::on_cluster(&cluster)
        .prefix("burst")
        .configure(|b| b.l1_enabled(false))
        .connected()
        .await;
    for id in 0..90u32 {
        assert_eq!(
            reader
                .get::<u32>(&format!("user:{id}:profile"))
                .await
                .unwrap(),
            Some(id)
        );
    }
    let victim = subscriber_node(&cluster, "burst", 3).await;
    cluster.kill(victim);
    // A burst of commands to every bucket, the dead master's among them.
    let stats = reader.stats().await;
    let live_nodes: Vec<_> = stats.redis_nodes.iter().filter(|n| n.reachable).collect();
    assert_eq!(live_nodes.len(), 2, "{:?}", stats.redis_nodes);
    // Straight after it, a key on a live master is read from it: the
    // dead master's commands do not hold up the others'.
    let live: Vec<u32> = (0..90u32)
        .filter(|id| {
            cluster.master_for_key(&physical("burst", &format!("user:{id}:profile"))) != victim
        })
        .collect();
    let before = reader.stats().await;
    let mut hits = 0;
    for &id in &live[..10] {
        if reader
            .get::<u32>(&format!("user:{id}:profile"))
            .await
            .unwrap()
            == Some(id)
        {
            hits += 1;
        }
    }
    let after = reader.stats().await;
    assert_eq!(
        (hits, after.errors - before.errors),
        (10, 0),
        "live masters' keys hit after a burst to a dead one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn announcements_go_out_while_the_channels_master_is_down() {
    let mut cluster = RedisCluster::start(3, 0);
    // Instances subscribe on the first seed (node 0): a prefix whose
    // channel's slot is served by another master.
    let prefix = (0..)
        .map(|n| format!("pub{n}"))
        .find(|p| cluster.master_for_key(cache_redis::Layout::cluster(p).channel()) != 0)
        .unwrap();
    let channel = cache_redis::Layout::cluster(&prefix).channel().to_owned();
    let (a, b) = Instance::on_cluster(&cluster)
        .prefix(&prefix)
        .connected_pair()
        .await;
    let victim = cluster.master_for_key(&channel);
    assert_ne!(
        subscriber_node(&cluster, &prefix, 3).await,
        victim,
        "the subscriptions are not on the channel's master"
    );
    let id = (0u32..)
        .find(|id| {
            cluster.master_for_key(&physical(&prefix, &format!("user:{id}:profile"))) != victim
        })
        .unwrap();
    let key = format!("user:{id}:profile");
    a.set(&key, &1u32, Preset::Medium).await.unwrap();
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1)); // now in b's memory
    cluster.kill(victim);
    let mut heard = b.backplane().unwrap();
    let applied = heard.borrow().applied;
    // An invalidation of keys on a live master: its announcement (a
    // `PUBLISH`, routed by the channel's slot to the dead master) goes out
    // through another master at once, instead of waiting in the queue.
    a.invalidate(&format!("user:{id}:*")).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        heard.wait_for(|s| s.applied > applied),
    )
    .await
    .expect("b heard the announcement while the channel's master is down")
    .unwrap();
    assert_eq!(b.get::<u32>(&key).await.unwrap(), None);
    assert_eq!(a.stats().await.pending_invalidations, 0);
}
