//! Redis failures under concurrent load, on real `redis-server` processes:
//! killed (-9), hung (SIGSTOP) and resumed, restarted on the same port, and
//! started after the application. Callers never see an error, values stay
//! correct, and an invalidation made while Redis was away is not lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::cache_redis::RedisStore;
use cache_core::{BreakerConfig, BreakerState, Cache, cached, invalidates};
use serde::{Deserialize, Serialize};
use tests::redis_server::{RedisServer, ServerConfig};
use tests::support::{Instance, connected, eventually, redis_store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    version: u64,
}

#[derive(Debug)]
struct DbError;

/// A database whose rows carry the version of the last update.
#[derive(Default)]
struct Db {
    version: AtomicU64,
    reads: AtomicUsize,
}

impl Db {
    #[cached(key = "row:<id>")]
    async fn row(&self, id: u64) -> Result<Row, DbError> {
        self.reads.fetch_add(1, SeqCst);
        Ok(Row {
            id,
            version: self.version.load(SeqCst),
        })
    }

    #[invalidates("row:<id>")]
    async fn update(&self, id: u64) -> Result<(), DbError> {
        let _ = id;
        self.version.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// Command timeout where the test hangs Redis (SIGSTOP): every hung command
/// costs this long.
const HUNG: Duration = Duration::from_millis(50);

/// Command timeout where Redis is healthy, killed or not started yet: a
/// killed Redis refuses at once, so this costs nothing, and it is long
/// enough that a busy machine never makes a healthy Redis look failed (which
/// would open the breaker, or leave values only in-process, before the
/// fault the test is about).
const REFUSED: Duration = Duration::from_secs(2);

/// An instance whose breaker probes Redis again 200 ms after opening, with
/// `op_timeout` per command (and four times that to connect). It builds
/// whatever Redis is doing.
fn fast_failover(server: &RedisServer, op_timeout: Duration) -> Cache {
    Instance::on(server)
        .configure(|b| {
            b.redis_op_timeout(op_timeout)
                .redis_connect_timeout(op_timeout * 4)
                .breaker(BreakerConfig::default().cool_down(Duration::from_millis(200)))
        })
        .build()
}

/// Tasks calling `row` in a loop until stopped; counts calls and wrong answers.
struct Load {
    stop: Arc<AtomicBool>,
    /// Calls made so far, across tasks.
    calls: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<(usize, usize)>>,
}

impl Load {
    fn start(cache: &Cache, db: &Arc<Db>, tasks: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicUsize::new(0));
        let tasks = (0..tasks)
            .map(|t| {
                let (db, stop, counter) = (Arc::clone(db), Arc::clone(&stop), Arc::clone(&counter));
                tokio::spawn(cache.scope(async move {
                    let (mut calls, mut wrong) = (0, 0);
                    while !stop.load(SeqCst) {
                        let id = (calls + t) as u64 % 16;
                        match db.row(id).await {
                            Ok(row) if row.id == id => {}
                            _ => wrong += 1,
                        }
                        calls += 1;
                        counter.fetch_add(1, SeqCst);
                        tokio::task::yield_now().await;
                    }
                    (calls, wrong)
                }))
            })
            .collect();
        Load {
            stop,
            calls: counter,
            tasks,
        }
    }

    /// Stops the load; returns (calls, errors or wrong values).
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, SeqCst);
        let mut totals = (0, 0);
        for t in self.tasks {
            let (c, w) = t.await.expect("load task");
            totals = (totals.0 + c, totals.1 + w);
        }
        totals
    }
}

/// Whether Redis itself holds `key` (under the default prefix); false while it is down.
async fn stored_in_redis(server: &RedisServer, key: &str) -> bool {
    redis_store(server)
        .exists(&format!("cache:{key}"))
        .await
        .unwrap_or(false)
}

/// Whether a [`Load`] is done with Redis: its 16 rows stored and their
/// stampede locks released. From then on it is served in-process only, so
/// it sends Redis nothing that a fault could interrupt.
async fn load_settled(store: &RedisStore) -> bool {
    for id in 0..16 {
        let stored = store.exists(&format!("cache:row:{id}")).await;
        let locked = store.exists(&format!("cache:~lock:row:{id}")).await;
        if stored.ok() != Some(true) || locked.ok() != Some(false) {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn killed_redis_costs_callers_nothing() {
    let mut server = RedisServer::start();
    // Subscribed first: the subscription clears the in-process tier, and
    // would make computations under way store nothing and be undone.
    let c = fast_failover(&server, REFUSED);
    connected(&c).await;
    let db = Arc::new(Db::default());
    let load = Load::start(&c, &db, 8);
    // Killed once the load is done with Redis, so that the misses below are
    // the first commands to fail: a lock release the kill cut off would fail
    // too, uncounted in `errors`, and five of those open the breaker first.
    let store = redis_store(&server);
    eventually(
        "the load's values in Redis and its locks released",
        async || load_settled(&store).await,
    )
    .await;
    server.kill();
    // Misses now need Redis: they are answered by the origin, and counted.
    for id in 100..120 {
        assert_eq!(c.scope(db.row(id)).await.unwrap().id, id);
    }
    eventually("the breaker to open", async || {
        c.stats().await.breaker == Some(BreakerState::Open)
    })
    .await;
    // With the breaker open, misses skip Redis without trying it.
    for id in 200..210 {
        assert_eq!(c.scope(db.row(id)).await.unwrap().id, id);
    }
    let during = c.stats().await;
    assert!(
        during.redis_skipped >= 10,
        "skipped: {}",
        during.redis_skipped
    );
    let at = load.calls.load(SeqCst);
    eventually("200 calls with Redis dead", async || {
        load.calls.load(SeqCst) > at + 200
    })
    .await;
    let (calls, wrong) = load.finish().await;
    assert_eq!(wrong, 0, "{calls} calls");
    assert!(during.errors > 0, "the failures were counted: {during}");
    // With Redis gone the in-process tier still serves (no origin call per request).
    let reads = db.reads.load(SeqCst);
    for id in 0..16 {
        c.scope(db.row(id)).await.unwrap();
    }
    assert!(db.reads.load(SeqCst) <= reads + 16);
    assert_eq!(c.health().await.status, cache_core::HealthStatus::Degraded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn an_update_while_redis_hangs_is_not_lost() {
    let server = RedisServer::start();
    let (a, b) = (fast_failover(&server, HUNG), fast_failover(&server, HUNG));
    for c in [&a, &b] {
        connected(c).await;
    }
    let db = Arc::new(Db::default());
    // v0 cached in Redis, in A's and in B's in-process tier.
    assert_eq!(a.scope(db.row(1)).await.unwrap().version, 0);
    assert_eq!(b.scope(db.row(1)).await.unwrap().version, 0);
    let load = Load::start(&a, &db, 4);

    server.pause(); // hung: connections open, nothing answers
    a.scope(db.update(1)).await.unwrap(); // v1; the Redis UNLINK times out and is kept
    assert_eq!(a.stats().await.pending_invalidations, 1);
    assert_eq!(
        a.scope(db.row(1)).await.unwrap().version,
        1,
        "A's own copy went at once"
    );
    server.resume();

    // The next read through A replays the invalidation before reading Redis.
    assert_eq!(a.scope(db.row(1)).await.unwrap().version, 1);
    eventually("the replay", async || {
        a.stats().await.pending_invalidations == 0
    })
    .await;
    // The replay was announced: B drops its v0.
    let mut bp = b.backplane().unwrap();
    bp.wait_for(|s| s.applied >= 1).await.unwrap();
    assert_eq!(
        b.scope(db.row(1)).await.unwrap().version,
        1,
        "B no longer serves v0"
    );
    // And Redis itself holds no v0.
    let fresh = fast_failover(&server, HUNG);
    let from_redis: Option<Row> = fresh.get("row:1").await.unwrap();
    assert!(
        from_redis.as_ref().is_none_or(|r| r.version == 1),
        "{from_redis:?}"
    );

    let (calls, wrong) = load.finish().await;
    assert_eq!(wrong, 0, "{calls} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn redis_restarted_on_the_same_port_is_used_again() {
    let mut server = RedisServer::start();
    let c = fast_failover(&server, REFUSED);
    connected(&c).await;
    let db = Arc::new(Db::default());
    let load = Load::start(&c, &db, 8);
    eventually("values in Redis", async || {
        stored_in_redis(&server, "row:3").await
    })
    .await;
    server.restart(); // empty: nothing persisted
    eventually("Redis used again", async || {
        c.invalidate("row:*").await.is_ok() && {
            let _ = c.scope(db.row(5)).await;
            stored_in_redis(&server, "row:5").await
        }
    })
    .await;
    let (calls, wrong) = load.finish().await;
    assert_eq!(wrong, 0, "{calls} calls");
    assert_eq!(c.stats().await.breaker, Some(BreakerState::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn redis_started_after_the_app() {
    let mut server = RedisServer::reserve();
    let c = fast_failover(&server, REFUSED); // nothing listens yet
    let db = Arc::new(Db::default());
    let load = Load::start(&c, &db, 4);
    // Works from memory meanwhile.
    assert_eq!(c.scope(db.row(2)).await.unwrap().id, 2);
    assert!(!stored_in_redis(&server, "row:2").await);
    server.restart();
    eventually("Redis used once it is up", async || {
        c.scope(db.row(7)).await.is_ok() && {
            let _ = c.invalidate("row:7").await;
            let _ = c.scope(db.row(7)).await;
            stored_in_redis(&server, "row:7").await
        }
    })
    .await;
    let (calls, wrong) = load.finish().await;
    assert_eq!(wrong, 0, "{calls} calls");
    connected(&c).await;
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn strict_mode_reports_what_default_mode_absorbs() {
    let mut server = RedisServer::start();
    let strict = Instance::on(&server)
        .configure(|b| b.redis_op_timeout(REFUSED).strict(true))
        .build();
    let lenient = fast_failover(&server, REFUSED);
    strict
        .set("k", &1u8, cache_core::Preset::Short)
        .await
        .unwrap();
    server.kill();
    let err = strict.get::<u8>("other").await.unwrap_err();
    assert!(
        matches!(err, cache_core::Error::Unavailable { op: "get", .. }),
        "{err}"
    );
    assert!(
        strict
            .set("k", &2u8, cache_core::Preset::Short)
            .await
            .is_err()
    );
    assert!(strict.invalidate("k").await.is_err());
    // Both kept for replay all the same: the failed overwrite (the old value
    // must not survive in Redis) and the invalidation.
    assert_eq!(strict.stats().await.pending_invalidations, 2);
    assert_eq!(lenient.get::<u8>("other").await.unwrap(), None);
    assert!(
        lenient
            .set("k", &2u8, cache_core::Preset::Short)
            .await
            .is_ok()
    );
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_miss_waits_on_a_failing_redis_once() {
    let server = RedisServer::start();
    // A breaker that stays closed, so every command is tried.
    let c = Instance::on(&server)
        .configure(|b| {
            b.redis_op_timeout(Duration::from_millis(50)).breaker(
                BreakerConfig::default()
                    .consecutive_failures(1000)
                    .window(1000),
            )
        })
        .build();
    let db = Db::default();
    server.pause();
    assert_eq!(c.scope(db.row(1)).await.unwrap().id, 1);
    // The read timed out; the computed value was not written to Redis in
    // the same call, so only one command failed.
    assert_eq!(c.stats().await.errors, 1);
    server.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn an_invalidation_queued_during_an_outage_is_replayed_soon_after_redis_returns_with_its_data()
 {
    // Redis keeps its data across the restart (AOF, fsynced per write).
    let mut server = RedisServer::start_with(ServerConfig::durable());
    // A's breaker opens at the first failure and would not probe Redis
    // again for a minute: only the early probe of the replay can bring the
    // invalidation back within the test.
    let a = Instance::on(&server)
        .configure(|b| {
            b.redis_op_timeout(REFUSED).breaker(
                BreakerConfig::default()
                    .consecutive_failures(1)
                    .cool_down(Duration::from_secs(60)),
            )
        })
        .build();
    let b = fast_failover(&server, REFUSED);
    for c in [&a, &b] {
        connected(c).await;
    }
    let db = Arc::new(Db::default());
    assert_eq!(a.scope(db.row(1)).await.unwrap().version, 0);
    let store = redis_store(&server);
    assert!(stored_in_redis(&server, "row:1").await, "v0 in Redis");

    store
        .set("control", b"kept", Duration::from_secs(600))
        .await
        .unwrap();

    server.kill();
    a.scope(db.update(1)).await.unwrap(); // v1: the UNLINK fails and is queued
    assert_eq!(a.stats().await.pending_invalidations, 1);
    assert_eq!(a.stats().await.breaker, Some(BreakerState::Open));
    // The manual API says what it could not do yet.
    for done in [
        a.delete("row:2").await.unwrap(),
        a.invalidate("row:3*").await.unwrap(),
    ] {
        assert!(done.queued && !done.is_done(), "{done:?}");
    }
    assert_eq!(a.stats().await.pending_invalidations, 3);
    server.restart();

    // The window: from the first answer of the restarted Redis (with its
    // data back) until the invalidated value is gone from it, as a reader
    // polling it sees it. A replays long before its breaker's cool-down ends.
    let key = "cache:row:1";
    let (first_answer, stale_then) = loop {
        if let Ok(stale) = store.exists(key).await {
            break (std::time::Instant::now(), stale);
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(
        store.get("control").await.unwrap().as_deref(),
        Some(&b"kept"[..]),
        "Redis came back with its data"
    );
    eventually("the invalidated value gone from Redis", async || {
        !store.exists(key).await.unwrap_or(true)
    })
    .await;
    let window = first_answer.elapsed();
    eventually("A's queue replayed", async || {
        a.stats().await.pending_invalidations == 0
    })
    .await;
    assert_eq!(a.stats().await.breaker, Some(BreakerState::Closed));
    // B, which never read row 1, reads v1.
    assert_eq!(b.scope(db.row(1)).await.unwrap().version, 1);
    eprintln!(
        "the invalidated value was {} in Redis when it first answered, and gone {} ms later",
        if stale_then { "still" } else { "no longer" },
        window.as_millis()
    );
}

/// An origin held at a gate.
struct Gated {
    gate: tokio::sync::watch::Sender<bool>,
    calls: AtomicUsize,
}

impl Gated {
    #[cached(ttl = "long", key = "gated:<id>")]
    async fn value(&self, id: u64) -> u64 {
        self.calls.fetch_add(1, SeqCst);
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_lock_whose_release_failed_during_an_outage_is_released_once_redis_answers() {
    // Redis comes back with its data, A's lock included.
    let mut server = RedisServer::start_with(ServerConfig::durable());
    // Locks that would hold another process for a minute, and a wait of 30 s.
    let instance = || {
        Instance::on(&server)
            .configure(|b| {
                b.redis_op_timeout(Duration::from_millis(200))
                    .breaker(BreakerConfig::default().cool_down(Duration::from_millis(200)))
                    .lock_ttl(Duration::from_secs(60))
                    .lock_wait(Duration::from_secs(30))
                    .single_flight_wait(Duration::from_secs(60))
            })
            .build()
    };
    let (a, c) = (instance(), instance());
    for cache in [&a, &c] {
        connected(cache).await;
    }
    let gated = Arc::new(Gated {
        gate: tokio::sync::watch::channel(false).0,
        calls: AtomicUsize::new(0),
    });
    let holder = {
        let (a, gated) = (a.clone(), Arc::clone(&gated));
        tokio::spawn(async move { a.scope(gated.value(1)).await })
    };
    eventually("A computes, holding the lock", async || {
        gated.calls.load(SeqCst) == 1
    })
    .await;
    server.kill();
    gated.gate.send_replace(true); // A finishes: its write and its release fail
    assert_eq!(holder.await.unwrap(), 1);
    server.restart();
    eventually("C reaches Redis again", async || {
        c.health().await.status == cache_core::HealthStatus::Healthy
    })
    .await;
    // C finds no value and A's lock: it goes on once A's release lands,
    // not after the 30 s wait or the 60 s lock.
    let call = c.scope(gated.value(1));
    let answered = tokio::time::timeout(Duration::from_secs(15), call).await;
    assert_eq!(answered.ok(), Some(1), "C waited on a lock nobody holds");
}
