//! The manual API: the same engine as the attributes, for hand-written code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, Preset, Ttl};
use tests::support::memory_cache;
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_set_shares_one_init_between_concurrent_callers() {
    let c = memory_cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (c, calls, gate) = (c.clone(), Arc::clone(&calls), Arc::clone(&gate));
            tokio::spawn(async move {
                c.get_or_set("report:1", Preset::Report, async {
                    calls.fetch_add(1, SeqCst);
                    gate.notified().await;
                    vec![1u32, 2, 3]
                })
                .await
                .unwrap()
            })
        })
        .collect();
    while calls.load(SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    for t in tasks {
        assert_eq!(t.await.unwrap(), vec![1, 2, 3]);
    }
    assert_eq!(calls.load(SeqCst), 1);
}

#[tokio::test]
async fn try_get_or_set_never_stores_errors() {
    let c = memory_cache();
    let r: Result<u32, cache_core::Error> = c
        .try_get_or_set("k", Preset::Short, async {
            Err(cache_core::Error::AlreadyInstalled(
                "stand-in origin error".into(),
            ))
        })
        .await;
    assert!(r.is_err());
    assert!(!c.exists("k").await.unwrap());
    let r: Result<u32, cache_core::Error> =
        c.try_get_or_set("k", Preset::Short, async { Ok(5) }).await;
    assert_eq!(r.unwrap(), 5);
    assert_eq!(c.get::<u32>("k").await.unwrap(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_a_computation_wins() {
    let c = memory_cache();
    let (read, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let task = {
        let (c, read, release) = (c.clone(), Arc::clone(&read), Arc::clone(&release));
        tokio::spawn(async move {
            c.get_or_set("k", Preset::Short, async {
                read.notify_one();
                release.notified().await;
                "old".to_string()
            })
            .await
            .unwrap()
        })
    };
    read.notified().await;
    c.delete("k").await.unwrap();
    release.notify_one();
    assert_eq!(task.await.unwrap(), "old");
    assert_eq!(
        c.get::<String>("k").await.unwrap(),
        None,
        "the old value was not stored"
    );
}

#[tokio::test(start_paused = true)]
async fn ttl_and_expire_follow_time() {
    let c = memory_cache();
    c.set("k", &1u8, Duration::from_secs(10)).await.unwrap();
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(c.ttl("k").await.unwrap(), Some(Duration::from_secs(6)));
    assert!(c.expire("k", Duration::from_secs(60)).await.unwrap());
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(c.get::<u8>("k").await.unwrap(), Some(1));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(c.get::<u8>("k").await.unwrap(), None);
    assert!(!c.exists("k").await.unwrap());
    assert!(
        !c.expire("k", Duration::from_secs(60)).await.unwrap(),
        "expired keys cannot be revived"
    );
    c.set("d", &1u8, Ttl::Default).await.unwrap();
    assert_eq!(c.ttl("d").await.unwrap(), Some(Duration::from_secs(300)));
}

#[tokio::test]
async fn clear_and_prefixes() {
    let a = Cache::builder().key_prefix("a").build_blocking().unwrap();
    a.set("x", &1u8, Preset::Short).await.unwrap();
    a.set("y", &1u8, Preset::Short).await.unwrap();
    assert_eq!(
        a.invalidate("*").await.unwrap().removed,
        2,
        "patterns stay within the prefix"
    );
    a.set("x", &1u8, Preset::Short).await.unwrap();
    a.clear().await.unwrap();
    assert!(!a.exists("x").await.unwrap());
    let none = Cache::builder().key_prefix("").build_blocking().unwrap();
    none.set("x", &1u8, Preset::Short).await.unwrap();
    assert!(none.exists("x").await.unwrap());
}

#[tokio::test]
async fn very_long_keys_are_capped_consistently() {
    let c = memory_cache();
    let long = "k".repeat(10_000);
    c.set(&long, &1u8, Preset::Short).await.unwrap();
    assert_eq!(c.get::<u8>(&long).await.unwrap(), Some(1));
    assert_eq!(c.delete(&long).await.unwrap().removed, 1);
}

#[tokio::test]
async fn stats_serialize_for_an_endpoint() {
    let c = memory_cache();
    c.set("k", &1u8, Preset::Short).await.unwrap();
    c.get::<u8>("k").await.unwrap();
    c.get::<u8>("missing").await.unwrap();
    c.delete("k").await.unwrap();
    let json = serde_json::to_value(c.stats().await).unwrap();
    assert_eq!(json["backend"], "memory");
    assert_eq!(json["hits"], 1);
    assert_eq!(json["misses"], 1);
    assert_eq!(json["sets"], 1);
    assert_eq!(json["deletes"], 1);
    assert_eq!(json["hit_rate"], 0.5);
    assert!(json["functions"].is_array());
    let health = serde_json::to_value(c.health().await).unwrap();
    assert_eq!(health["status"], "healthy");
    assert!(health["latency_us"].as_f64().is_some());
}

#[tokio::test(start_paused = true)]
async fn ttl_jitter_spreads_expiry() {
    let c = Cache::builder().ttl_jitter(0.2).build_blocking().unwrap();
    let mut ttls = Vec::new();
    for i in 0..50 {
        let key = format!("k{i}");
        c.set(&key, &i, Duration::from_secs(100)).await.unwrap();
        ttls.push(c.ttl(&key).await.unwrap().unwrap());
    }
    assert!(
        ttls.iter()
            .all(|t| *t >= Duration::from_secs(80) && *t <= Duration::from_secs(120)),
        "{ttls:?}"
    );
    ttls.sort();
    ttls.dedup();
    assert!(ttls.len() > 40, "spread out: {} distinct TTLs", ttls.len());
    assert!(Cache::builder().ttl_jitter(1.5).build_blocking().is_err());
}

#[test]
fn stampede_and_stale_settings_that_cannot_work_are_refused_by_name() {
    let refused = |b: cache_core::CacheBuilder, setting: &str| {
        let err = b.build_blocking().unwrap_err().to_string();
        assert!(err.contains(setting), "{err}");
    };
    refused(
        Cache::builder().lock_ttl(Duration::from_millis(10)),
        "builder.lock_ttl",
    );
    refused(
        Cache::builder().stale_retry_after(Duration::ZERO),
        "builder.stale_retry_after",
    );
    refused(
        Cache::builder()
            .single_flight_wait(Duration::from_secs(2))
            .lock_wait(Duration::from_secs(2)),
        "builder.lock_wait",
    );
    // Unset, the lock wait follows a shorter single-flight wait down.
    assert!(
        Cache::builder()
            .single_flight_wait(Duration::from_secs(2))
            .build_blocking()
            .is_ok()
    );
}

// --- no stale read after an invalidation returned ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_invalidate_never_sees_an_older_value() {
    let c = memory_cache();
    let db = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (c, db, stop) = (c.clone(), Arc::clone(&db), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    let db = Arc::clone(&db);
                    c.get_or_set("row", Preset::Short, async move { db.load(SeqCst) })
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut stale = 0;
    for i in 1..=3000u64 {
        db.store(i, SeqCst);
        c.invalidate("row").await.unwrap();
        let db2 = Arc::clone(&db);
        let seen = c
            .get_or_set("row", Preset::Short, async move { db2.load(SeqCst) })
            .await
            .unwrap();
        if seen < i {
            stale += 1;
        }
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    stop.store(true, SeqCst);
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(stale, 0, "reads after invalidate returned older values");
}

// --- huge durations do not panic ---------------------------------------------

#[tokio::test]
async fn huge_ttls_are_capped_not_a_panic() {
    let c = Cache::builder()
        .preset_ttl(Preset::Long, Duration::MAX)
        .single_flight_wait(Duration::MAX)
        .build_blocking()
        .unwrap();
    c.set("k", &1u8, Duration::MAX).await.unwrap();
    assert!(c.expire("k", Duration::MAX).await.unwrap());
    assert!(c.ttl("k").await.unwrap().unwrap() > Duration::from_secs(9 * 365 * 86_400));
    let v = c
        .get_or_set("p", Preset::Long, async { 2u8 })
        .await
        .unwrap();
    assert_eq!(v, 2);
}
