//! `cache-redis`'s `RedisStore`, bytes in and out, against a real, private
//! `redis-server`: commands and TTLs, batched pattern deletes, pub/sub across
//! a restart, timeouts on a hung server, URL errors and eviction settings.

use std::time::Duration;

use cache_redis::{Event, KeyTtl, RedisConfig, RedisStore, StoreError};
use tests::redis_server::RedisServer;

/// A store on `server` whose commands may take 2 s: these tests are about
/// what the commands do, and a busy machine must not make a healthy Redis
/// look failed (the timeout test sets its own).
fn patient(config: RedisConfig) -> RedisStore {
    RedisStore::new(config.op_timeout(Duration::from_secs(2))).unwrap()
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn commands_round_trip() {
    let server = RedisServer::start();
    let store = patient(RedisConfig::new(server.url()));
    assert!(store.ping().await.is_ok());
    store.set("a", b"1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), Some(b"1".to_vec()));
    let (v, ttl) = store.get_with_ttl("a").await.unwrap().unwrap();
    assert_eq!(v, b"1");
    assert!(
        matches!(ttl, KeyTtl::Expires(d) if d > Duration::from_secs(59) && d <= Duration::from_secs(60))
    );
    assert!(store.exists("a").await.unwrap());
    assert!(store.expire("a", Duration::from_secs(5)).await.unwrap());
    assert!(
        matches!(store.ttl("a").await.unwrap(), KeyTtl::Expires(d) if d <= Duration::from_secs(5))
    );
    assert_eq!(store.ttl("missing").await.unwrap(), KeyTtl::Missing);
    assert_eq!(store.unlink(&["a", "missing"]).await.unwrap(), 1);
    assert_eq!(store.get_with_ttl("a").await.unwrap(), None);
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn delete_matching_scans_in_batches() {
    let server = RedisServer::start();
    let store = patient(RedisConfig::new(server.url()).scan_count(7));
    for i in 0..100 {
        store
            .set(&format!("user:1:{i}"), b"x", Duration::from_secs(60))
            .await
            .unwrap();
        store
            .set(&format!("user:10:{i}"), b"x", Duration::from_secs(60))
            .await
            .unwrap();
    }
    assert_eq!(store.delete_matching("user:1:*").await.unwrap(), 100);
    assert_eq!(store.info().await.unwrap().keys, 100);
    assert!(store.info().await.unwrap().used_memory > 0);
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn subscription_reports_messages_and_resumes_after_restart() {
    let mut server = RedisServer::start();
    let store = patient(RedisConfig::new(server.url()));
    let mut sub = store.subscribe("events");
    assert_eq!(sub.next().await, Some(Event::Subscribed { resumed: false }));
    store.publish("events", b"hello").await.unwrap();
    assert_eq!(sub.next().await, Some(Event::Message(b"hello".to_vec())));
    server.restart();
    assert_eq!(sub.next().await, Some(Event::Disconnected));
    assert_eq!(sub.next().await, Some(Event::Subscribed { resumed: true }));
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_hung_server_costs_one_timeout_not_a_hang() {
    let server = RedisServer::start();
    let store =
        RedisStore::new(RedisConfig::new(server.url()).op_timeout(Duration::from_millis(50)))
            .unwrap();
    store.ping().await.unwrap();
    server.pause();
    let err = store.get("a").await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout(_)), "{err}");
    assert!(err.is_unavailable());
    server.resume();
}

#[tokio::test]
async fn starting_without_redis_is_not_an_error() {
    // Nothing listens on this port: construction succeeds, commands fail fast.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = RedisStore::new(RedisConfig::new(format!("redis://127.0.0.1:{port}/0"))).unwrap();
    let err = store.get("a").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[test]
fn bad_urls_are_refused_without_leaking_the_password() {
    let err = RedisStore::new(RedisConfig::new("redis://u:hunter2@/x")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("invalid Redis URL"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let err = RedisStore::new(RedisConfig::new("redis://127.0.0.1:1/0")).unwrap_err();
    assert!(matches!(err, StoreError::NoRuntime), "{err}");
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn info_tells_whether_redis_may_evict_keys() {
    let redis = RedisServer::start();
    let store = patient(RedisConfig::new(redis.url()));
    assert!(!store.info().await.unwrap().may_evict(), "no memory limit");
    let mut con = store.connection();
    for (name, value) in [("maxmemory", "100mb"), ("maxmemory-policy", "allkeys-lru")] {
        let () = cache_redis::redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let info = store.info().await.unwrap();
    assert_eq!(info.eviction_policy.as_deref(), Some("allkeys-lru"));
    assert_eq!(info.max_memory, 100 * 1024 * 1024);
    assert!(info.may_evict());
}

/// An entry in `cache-core`'s envelope layout as far as the store looks:
/// magic, three bytes, then the 8-byte variant.
fn entry(variant: u64, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xCA, 0xC4, 1, 1, 0];
    out.extend_from_slice(&variant.to_le_bytes());
    out.extend_from_slice(body);
    out
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn writes_of_another_variant_keep_the_live_entries_beside_theirs() {
    use cache_redis::WriteGuard;
    use cache_redis::variants::{Stored, select};
    let server = RedisServer::start();
    let store = patient(RedisConfig::new(server.url()));
    let write = |value: Vec<u8>, ttl: Duration| {
        let store = store.clone();
        async move {
            let guard = WriteGuard::Unchanged {
                markers: &[],
                observed: 0,
            };
            assert!(
                store
                    .write("k", &value, ttl, &[], "reg", guard)
                    .await
                    .unwrap()
            );
        }
    };
    let read = || async { store.get("k").await.unwrap().unwrap() };
    let (one, two, three) = (entry(1, b"one"), entry(2, b"two"), entry(3, b"three"));

    // One variant: the key holds the value, byte for byte.
    write(one.clone(), Duration::from_secs(60)).await;
    assert_eq!(read().await, one);
    write(one.clone(), Duration::from_secs(60)).await;
    assert_eq!(read().await, one, "the same variant replaces its own");

    // Another variant with a shorter life: both kept, the key lives as long as the longest.
    write(two.clone(), Duration::from_millis(1500)).await;
    let both = read().await;
    assert_eq!(
        select(&both, 1),
        Stored::Shared {
            value: &one,
            ends_before: Duration::ZERO
        }
    );
    let Stored::Shared { value, ends_before } = select(&both, 2) else {
        panic!("variant 2 kept: {both:?}");
    };
    assert_eq!(value, two);
    assert!(ends_before > Duration::from_secs(58), "{ends_before:?}");
    assert_eq!(select(&both, 3), Stored::Absent);
    assert!(
        matches!(store.ttl("k").await.unwrap(), KeyTtl::Expires(d) if d > Duration::from_secs(58))
    );

    // A rewrite of variant 1 keeps variant 2 and its end.
    write(one.clone(), Duration::from_secs(60)).await;
    let again = read().await;
    assert!(matches!(select(&again, 2), Stored::Shared { value, .. } if value == two));

    // Once variant 2's entry has expired, the next write leaves it out.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let KeyTtl::Expires(left) = store.ttl("k").await.unwrap() else {
            panic!("the key lives");
        };
        let Stored::Shared { ends_before, .. } = select(&read().await, 2) else {
            panic!("still two entries");
        };
        if left <= ends_before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "variant 2 never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write(three.clone(), Duration::from_secs(10)).await;
    let now = read().await;
    assert_eq!(
        select(&now, 2),
        Stored::Absent,
        "expired entries are dropped"
    );
    assert!(matches!(select(&now, 1), Stored::Shared { value, .. } if value == one));
    assert!(
        matches!(select(&now, 3), Stored::Shared { value, ends_before } if value == three && ends_before > Duration::from_secs(45))
    );

    // At most four variants, the longest-lived kept.
    for v in 4..=8u64 {
        write(entry(v, b"v"), Duration::from_secs(100 + v)).await;
    }
    let many = read().await;
    let kept: Vec<u64> = (1..=8)
        .filter(|v| !matches!(select(&many, *v), Stored::Absent))
        .collect();
    assert_eq!(kept, vec![5, 6, 7, 8]);

    // An explicit write (a `set`) replaces every variant.
    let bump = WriteGuard::Bump {
        marker: "marker",
        sequence: "sequence",
        ttl: Duration::from_secs(60),
    };
    assert!(
        store
            .write("k", &one, Duration::from_secs(60), &[], "reg", bump)
            .await
            .unwrap()
    );
    assert_eq!(read().await, one);
    write(two.clone(), Duration::from_secs(60)).await;
    assert!(matches!(select(&read().await, 1), Stored::Shared { .. }));

    // Something that is not an entry is replaced, never kept.
    store
        .set("k", b"garbage", Duration::from_secs(60))
        .await
        .unwrap();
    write(one.clone(), Duration::from_secs(60)).await;
    assert_eq!(read().await, one);
    // A container that does not parse is dropped by the next write.
    let mut broken = cache_redis::variants::shared(&[(2, 0, b"two"), (4, 0, b"four")]);
    broken.truncate(broken.len() - 2);
    store
        .set("k", &broken, Duration::from_secs(60))
        .await
        .unwrap();
    write(one.clone(), Duration::from_secs(60)).await;
    assert_eq!(read().await, one);
    // A key of another type is overwritten, as a plain `SET` would.
    store.unlink(&["k"]).await.unwrap();
    let mut raw = store.connection();
    let _: () = cache_redis::redis::cmd("RPUSH")
        .arg("k")
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    write(two.clone(), Duration::from_secs(60)).await;
    assert_eq!(read().await, two);
}
