//! A Redis that evicts (`maxmemory` small, `allkeys-lru`) under a write
//! load that makes it evict: index sets go with the values, leaving keys
//! that the index no longer names. After each prefix invalidation, no key
//! under the prefix is left in Redis or read back. And when the record of
//! an invalidation is lost (its marker, the sequence, or both), a value
//! computed before it is still not stored.

use std::collections::HashSet;
use std::time::Duration;

use cache_core::{Cache, Preset};
use cache_redis::Layout;
use tests::redis_server::{RedisServer, ServerConfig};
use tests::support::{eventually, redis_connection, redis_store};

const USERS: usize = 400;
const ITEMS: usize = 12;

async fn keys_under(con: &mut redis::aio::MultiplexedConnection, pattern: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .unwrap();
        out.extend(page);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn with_evictions_a_prefix_invalidation_leaves_nothing_behind() {
    let server = RedisServer::start_with(ServerConfig {
        args: ["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    // Reads go to Redis: no in-process copies.
    let cache: Cache = Cache::builder()
        .redis_url(server.url())
        .key_prefix("ev")
        .redis_op_timeout(Duration::from_secs(2))
        .l1_enabled(false)
        .build_blocking()
        .unwrap();
    let store = redis_store(&server);
    let value = vec![7u8; 1500];
    // About 7 MB written into 3 MB: Redis evicts values and index sets alike.
    for u in 0..USERS {
        for i in 0..ITEMS {
            cache
                .set(&format!("user:{u}:item:{i}"), &value, Preset::Long)
                .await
                .unwrap();
        }
    }
    let info = store.info().await.unwrap();
    assert!(info.evicted_keys > 0, "the load made Redis evict: {info:?}");

    // Keys whose index set is gone: only a scan finds them.
    let layout = Layout::new("ev");
    let mut con = redis_connection(&server).await;
    let mut orphans = 0;
    for u in 0..USERS {
        let present = keys_under(&mut con, &format!("ev:user:{u}:*")).await;
        let indexed: HashSet<String> = redis::cmd("SMEMBERS")
            .arg(layout.index_key(&format!("user:{u}:")))
            .query_async(&mut con)
            .await
            .unwrap();
        orphans += present.difference(&indexed).count();
    }
    eprintln!(
        "{} keys evicted; {orphans} keys left outside their index set",
        info.evicted_keys
    );

    for u in 0..USERS {
        cache.invalidate(&format!("user:{u}:*")).await.unwrap();
        let left = keys_under(&mut con, &format!("ev:user:{u}:*")).await;
        assert!(
            left.is_empty(),
            "user {u}: {left:?} survived its invalidation"
        );
        for i in (0..ITEMS).step_by(5) {
            assert_eq!(
                cache
                    .get::<Vec<u8>>(&format!("user:{u}:item:{i}"))
                    .await
                    .unwrap(),
                None
            );
        }
    }
}

/// An origin held at a gate.
struct Gated {
    gate: tokio::sync::watch::Sender<bool>,
    started: tokio::sync::Notify,
}

impl Gated {
    #[cache_core::cached(ttl = "long", key = "profile:<id>")]
    async fn profile(&self, id: u32) -> String {
        self.started.notify_one();
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        format!("old profile {id}")
    }
}

/// Two instances without the in-process tier; A hears nothing from B, so
/// only Redis can refuse A's stale writes.
fn pair(server: &RedisServer) -> (Cache, Cache) {
    let instance = || {
        Cache::builder()
            .redis_url(server.url())
            .key_prefix("em")
            .redis_op_timeout(Duration::from_secs(2))
            .l1_enabled(false)
    };
    (
        instance().backplane(false).build_blocking().unwrap(),
        instance().build_blocking().unwrap(),
    )
}

/// Two instances on a Redis that evicts, A knowing it does (from a read of
/// Redis's figures, as from any prefix invalidation), with room again
/// (flushed), so that from here only the keys a test removes are missing.
async fn evicting_pair() -> (RedisServer, Cache, Cache, redis::aio::MultiplexedConnection) {
    let server = RedisServer::start_with(ServerConfig {
        args: ["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let (a, b) = pair(&server);
    let value = vec![1u8; 2000];
    for i in 0..3000 {
        b.set(&format!("filler:{i}"), &value, Preset::Long)
            .await
            .unwrap();
    }
    let mut con = redis_connection(&server).await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        info.lines().any(|l| l
            .strip_prefix("evicted_keys:")
            .is_some_and(|n| n.trim() != "0")),
        "the fillers made Redis evict: {info}"
    );
    eventually("A has read Redis's figures", async || {
        a.stats().await.redis.is_some_and(|r| r.reachable)
    })
    .await;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut con).await.unwrap();
    (server, a, b, con)
}

/// A computes profile 1 from the old row; meanwhile the keys in `before`
/// go (as Redis would evict them), B invalidates the profile, and the keys
/// in `after` go. What A computed.
async fn compute_across_an_invalidation(
    a: &Cache,
    b: &Cache,
    con: &mut redis::aio::MultiplexedConnection,
    before: &[String],
    after: &[String],
) -> String {
    let gated = std::sync::Arc::new(Gated {
        gate: tokio::sync::watch::channel(false).0,
        started: tokio::sync::Notify::new(),
    });
    let started = gated.started.notified();
    let computing = {
        let (a, gated) = (a.clone(), std::sync::Arc::clone(&gated));
        tokio::spawn(async move { a.scope(gated.profile(1)).await })
    };
    started.await;
    let mut lose = async |keys: &[String]| {
        for key in keys {
            let removed: u64 = redis::cmd("DEL").arg(key).query_async(con).await.unwrap();
            assert_eq!(removed, 1, "{key} was there");
        }
    };
    lose(before).await;
    b.delete("profile:1").await.unwrap();
    lose(after).await;
    gated.gate.send_replace(true);
    computing.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn with_evictions_an_evicted_marker_does_not_let_a_stale_value_in() {
    let (_server, a, b, mut con) = evicting_pair().await;
    let marker = Layout::new("em").key_marker("em:profile:1");
    let computed = compute_across_an_invalidation(&a, &b, &mut con, &[], &[marker]).await;
    assert_eq!(computed, "old profile 1");
    // The value computed before the invalidation was not stored.
    assert_eq!(b.get::<String>("profile:1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn with_evictions_an_evicted_marker_and_sequence_do_not_let_a_stale_value_in() {
    let (_server, a, b, mut con) = evicting_pair().await;
    let layout = Layout::new("em");
    let lost = [
        layout.key_marker("em:profile:1"),
        layout.sequence().to_owned(),
    ];
    let computed = compute_across_an_invalidation(&a, &b, &mut con, &[], &lost).await;
    assert_eq!(computed, "old profile 1");
    // Nothing tells that the invalidation happened, except that the
    // sequence is gone: the value is not stored.
    assert_eq!(b.get::<String>("profile:1").await.unwrap(), None);
    // The refused write put the sequence back: the next computation writes.
    let gated = Gated {
        gate: tokio::sync::watch::channel(true).0,
        started: tokio::sync::Notify::new(),
    };
    assert_eq!(a.scope(gated.profile(1)).await, "old profile 1");
    assert_eq!(
        b.get::<String>("profile:1").await.unwrap().as_deref(),
        Some("old profile 1")
    );
}

/// A sequence lost without evictions (flushed, or not yet replicated when a
/// failover promoted a replica) starts again above every number it handed
/// out: the next invalidation's marker still stops a computation that
/// observed the sequence before the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_lost_sequence_starts_again_above_what_was_observed() {
    let server = RedisServer::start();
    let (a, b) = pair(&server);
    // The sequence has moved a few times before A observes it.
    for i in 0..5 {
        b.delete(&format!("other:{i}")).await.unwrap();
    }
    let mut con = redis_connection(&server).await;
    let sequence = Layout::new("em").sequence().to_owned();
    let computed = compute_across_an_invalidation(&a, &b, &mut con, &[sequence], &[]).await;
    assert_eq!(computed, "old profile 1");
    assert_eq!(b.get::<String>("profile:1").await.unwrap(), None);
}
