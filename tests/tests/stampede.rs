//! Fail-safe stale values, early refresh, and the stampede lock between
//! instances (two `Cache`s on one private `redis-server` stand for two
//! processes; the multi-process suite uses real processes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, cached};
use tests::deployment::Redis;
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually, exists, redis_connection};
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq)]
struct Failed;

/// An origin that can fail, hang, or be held at a gate.
struct Source {
    calls: AtomicUsize,
    version: AtomicU64,
    failing: AtomicBool,
    /// Fail the first call only.
    fail_first: AtomicBool,
    hanging: AtomicBool,
    slow: AtomicU64,
    gate: watch::Sender<bool>,
}

impl Source {
    fn new() -> Arc<Source> {
        Arc::new(Source {
            calls: AtomicUsize::new(0),
            version: AtomicU64::new(1),
            failing: AtomicBool::new(false),
            fail_first: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
            slow: AtomicU64::new(0),
            gate: watch::channel(true).0,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    async fn fetch(&self) -> Result<u64, Failed> {
        let n = self.calls.fetch_add(1, SeqCst);
        let mut gate = self.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        if self.hanging.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        let slow = self.slow.load(SeqCst);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        if self.failing.load(SeqCst) || (n == 0 && self.fail_first.load(SeqCst)) {
            return Err(Failed);
        }
        Ok(self.version.load(SeqCst))
    }

    #[cached(ttl = "60s", key = "stale:<id>", stale_if_error = "1h")]
    async fn stale(&self, id: u32) -> Result<u64, Failed> {
        let _ = id;
        self.fetch().await
    }

    #[cached(ttl = "60s", key = "timed:<id>", stale_if_error = "1h", timeout = "2s")]
    async fn timed(&self, id: u32) -> Result<u64, Failed> {
        let _ = id;
        self.fetch().await
    }

    #[cached(ttl = "100s", key = "refreshed:<id>", refresh = 0.8)]
    async fn refreshed(self: Arc<Self>, id: u32) -> Result<u64, Failed> {
        let _ = id;
        self.fetch().await
    }

    #[cached(ttl = "2s", key = "shared:<id>", refresh = 0.5, stale_if_error = "1h")]
    async fn shared(self: Arc<Self>, id: u32) -> Result<u64, Failed> {
        let _ = id;
        self.fetch().await
    }

    #[cached(
        ttl = "1s",
        key = "timed_shared:<id>",
        stale_if_error = "1h",
        timeout = "300ms"
    )]
    async fn timed_shared(&self, id: u32) -> Result<u64, Failed> {
        let _ = id;
        self.fetch().await
    }

    #[cached(ttl = "60s", key = "hot:<id>")]
    async fn hot(&self, id: u32) -> Result<u64, Failed> {
        let _ = id;
        self.fetch().await
    }
}

/// In-process only; the stale-retry interval the tests below count on.
fn memory() -> Cache {
    Cache::builder()
        .stale_retry_after(Duration::from_secs(10))
        .build_blocking()
        .unwrap()
}

// ----- stale_if_error (in-process, paused time) ---------------------------

#[tokio::test(start_paused = true)]
async fn a_failing_origin_gets_the_stale_value_and_is_retried_only_every_interval() {
    let c = memory();
    let s = Source::new();
    c.scope(async {
        assert_eq!(s.stale(1).await, Ok(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        s.version.store(2, SeqCst);
        s.failing.store(true, SeqCst);
        assert_eq!(
            s.stale(1).await,
            Ok(1),
            "expired, origin failing: the stale value"
        );
        assert_eq!(s.calls(), 2);
        assert_eq!(s.stale(1).await, Ok(1));
        assert_eq!(s.calls(), 2, "not retried within the interval");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(s.stale(1).await, Ok(1));
        assert_eq!(s.calls(), 3, "retried after the interval, still failing");
        s.failing.store(false, SeqCst);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(s.stale(1).await, Ok(2), "recovered: the fresh value");
        assert_eq!(s.calls(), 4);
    })
    .await;
    let st = c.stats().await;
    assert_eq!((st.stale_served, st.origin_errors), (2, 2));
    assert_eq!(st.functions[0].stale_served, 2);
}

#[tokio::test(start_paused = true)]
async fn nothing_stale_is_served_past_the_window_or_after_an_invalidation() {
    let c = memory();
    let s = Source::new();
    c.scope(async {
        assert_eq!(s.stale(1).await, Ok(1));
        assert_eq!(s.stale(2).await, Ok(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        c.invalidate("stale:1").await.unwrap();
        s.failing.store(true, SeqCst);
        assert_eq!(s.stale(1).await, Err(Failed), "invalidated: no stale copy");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(s.stale(2).await, Err(Failed), "past the stale window");
    })
    .await;
    assert_eq!(c.stats().await.stale_served, 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_origin_is_cut_off_only_when_a_stale_value_is_at_hand() {
    let c = memory();
    let s = Source::new();
    c.scope(async {
        s.slow.store(5_000, SeqCst);
        // Cold: nothing to serve instead, so the call waits for the origin.
        assert_eq!(s.timed(1).await, Ok(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        s.version.store(2, SeqCst);
        s.hanging.store(true, SeqCst);
        let started = tokio::time::Instant::now();
        assert_eq!(
            s.timed(1).await,
            Ok(1),
            "cut off after 2 s: the stale value"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    })
    .await;
    let st = c.stats().await;
    assert_eq!((st.origin_timeouts, st.stale_served), (1, 1));
}

// ----- early refresh (in-process, paused time) -----------------------------

#[tokio::test(start_paused = true)]
async fn a_due_refresh_runs_once_in_the_background_and_callers_never_wait() {
    let c = memory();
    let s = Source::new();
    c.scope(async {
        assert_eq!(Arc::clone(&s).refreshed(1).await, Ok(1));
        tokio::time::advance(Duration::from_secs(81)).await;
        s.version.store(2, SeqCst);
        // The origin hangs: a caller that waited for the refresh would hang too.
        s.hanging.store(true, SeqCst);
        let calls: Vec<_> = (0..50)
            .map(|_| tokio::spawn(c.scope(Arc::clone(&s).refreshed(1))))
            .collect();
        for call in calls {
            let got = tokio::time::timeout(Duration::from_millis(1), call).await;
            assert_eq!(got.unwrap().unwrap(), Ok(1), "the current value, at once");
        }
        eventually("the refresh to start", || async { s.calls() == 2 }).await;
        assert_eq!(s.calls(), 2, "one refresh for 50 callers");

        // Another key, origin healthy: the refreshed value lands before expiry.
        s.hanging.store(false, SeqCst);
        s.version.store(1, SeqCst);
        assert_eq!(Arc::clone(&s).refreshed(2).await, Ok(1));
        tokio::time::advance(Duration::from_secs(81)).await;
        s.version.store(3, SeqCst);
        assert_eq!(Arc::clone(&s).refreshed(2).await, Ok(1));
        eventually("the refresh to land", || async {
            c.stats().await.refreshes == 1
        })
        .await;
        assert_eq!(Arc::clone(&s).refreshed(2).await, Ok(3));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            Arc::clone(&s).refreshed(2).await,
            Ok(3),
            "past the old expiry: still a hit"
        );
        assert_eq!(s.calls(), 4);
    })
    .await;
    let st = c.stats().await;
    assert_eq!(st.misses, 2, "refreshes are not misses");
    assert_eq!(st.refreshes, 1);
}

// ----- across instances (Redis, real time) ----------------------------------

/// Instances of this suite: keys under `st:`, locks under `st:~lock:`.
/// Redis commands may take 2 s: these tests count origin calls and lock
/// waits, and a command that timed out (the default is 100 ms, which a busy
/// machine can exceed) makes its caller compute without the lock, by design.
fn st(redis: &Redis) -> Instance {
    redis
        .instance()
        .prefix("st")
        .configure(|b| b.redis_op_timeout(Duration::from_secs(2)))
}

/// [`st`] on one server, for the cases that stop it or plant raw keys.
fn st_single(server: &RedisServer) -> Instance {
    Instance::on(server)
        .prefix("st")
        .configure(|b| b.redis_op_timeout(Duration::from_secs(2)))
}

tests::on_every_deployment! { multi_thread;
async fn two_instances_make_one_origin_call_and_the_other_waits_for_it(redis) {
    let (a, b) = st(redis).connected_pair().await;
    let s = Source::new();
    s.gate.send_replace(false);
    let mut calls = Vec::new();
    for cache in [&a, &b] {
        for _ in 0..50 {
            let s = Arc::clone(&s);
            calls.push(tokio::spawn(cache.scope(async move { s.hot(7).await })));
        }
    }
    eventually("one origin call and one lock wait", || async {
        s.calls() == 1 && a.stats().await.lock_waits + b.stats().await.lock_waits == 1
    })
    .await;
    s.gate.send_replace(true);
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(1));
    }
    let (sa, sb) = (a.stats().await, b.stats().await);
    assert_eq!(s.calls(), 1, "{sa}\n{sb}");
    assert_eq!(sa.misses + sb.misses, 1);
    // The 98 other callers waited on their instance's call, or started after
    // its value landed and found it in-process.
    assert_eq!(
        sa.coalesced + sb.coalesced + sa.l1_hits + sb.l1_hits,
        98,
        "{sa}\n{sb}"
    );
    assert_eq!(sa.lock_waits + sb.lock_waits, 1);
    assert_eq!(sa.l2_hits + sb.l2_hits, 1, "the waiter read the value");
}
}

tests::on_every_deployment! { multi_thread;
async fn when_the_lock_holder_fails_one_more_call_computes(redis) {
    let (a, b) = st(redis).connected_pair().await;
    let s = Source::new();
    s.fail_first.store(true, SeqCst);
    s.gate.send_replace(false);
    let mut calls = Vec::new();
    for cache in [&a, &b] {
        for _ in 0..50 {
            let s = Arc::clone(&s);
            calls.push(tokio::spawn(cache.scope(async move { s.hot(8).await })));
        }
    }
    eventually("one origin call and one lock wait", || async {
        s.calls() == 1 && a.stats().await.lock_waits + b.stats().await.lock_waits == 1
    })
    .await;
    s.gate.send_replace(true);
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "only the failed call itself"
    );
    assert_eq!(
        s.calls(),
        2,
        "the failure handed the key to exactly one other call"
    );
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn with_redis_down_the_lock_is_skipped_and_single_flight_still_holds() {
    let mut redis = RedisServer::start();
    let a = st_single(&redis).connected().await;
    redis.kill();
    let s = Source::new();
    s.gate.send_replace(false);
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(a.scope(async move { s.hot(9).await }))
        })
        .collect();
    eventually("the origin call", || async { s.calls() == 1 }).await;
    s.gate.send_replace(true);
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(1));
    }
    assert_eq!(s.calls(), 1);
    let st = a.stats().await;
    // Every other caller was served by the one call: waiting on it, or (a
    // task that started after the value landed) from the in-process tier.
    assert_eq!(st.lock_waits, 0, "{st}");
    assert_eq!((st.misses, st.coalesced + st.l1_hits), (1, 199), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_lock_nobody_releases_delays_a_call_by_lock_wait_at_most() {
    let redis = RedisServer::start();
    let a = st_single(&redis)
        .configure(|b| b.lock_wait(Duration::from_millis(300)))
        .connected()
        .await;
    // A lock held by some process that went quiet (and outlives the wait).
    let mut con = redis_connection(&redis).await;
    let _: () = redis::cmd("SET")
        .arg("st:~lock:hot:10")
        .arg("someone-else")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut con)
        .await
        .unwrap();
    let s = Source::new();
    assert_eq!(a.scope(s.hot(10)).await, Ok(1));
    let st = a.stats().await;
    assert_eq!((st.lock_waits, st.lock_timeouts, st.misses), (1, 1, 1));
    let owner: String = redis::cmd("GET")
        .arg("st:~lock:hot:10")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        owner, "someone-else",
        "another holder's lock is never deleted"
    );
}

tests::on_every_deployment! { multi_thread;
async fn another_instance_serves_the_stale_value_from_redis_when_the_origin_fails(redis) {
    let (a, b) = st(redis).connected_pair().await;
    let s = Source::new();
    assert_eq!(a.scope(Arc::clone(&s).shared(1)).await, Ok(1));
    // Redis keeps it for its stale window; its freshness ends after 2 s.
    let ttl = b.ttl("shared:1").await.unwrap().unwrap();
    assert!(ttl > Duration::from_secs(3000), "{ttl:?}");
    tokio::time::sleep(Duration::from_millis(2_100)).await; // let the value go stale
    s.failing.store(true, SeqCst);
    assert_eq!(b.scope(Arc::clone(&s).shared(1)).await, Ok(1));
    assert_eq!(s.calls(), 2);
    assert_eq!(b.stats().await.stale_served, 1);
    assert_eq!(
        a.get::<u64>("shared:1").await.unwrap(),
        None,
        "a plain read does not take a stale value for a fresh one"
    );
}
}

tests::on_every_deployment! { multi_thread;
async fn a_refresh_due_on_two_instances_runs_once(redis) {
    let (a, b) = st(redis).connected_pair().await;
    let s = Source::new();
    assert_eq!(a.scope(Arc::clone(&s).shared(2)).await, Ok(1));
    assert_eq!(b.scope(Arc::clone(&s).shared(2)).await, Ok(1), "an L2 hit");
    assert_eq!(s.calls(), 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past half the 2 s TTL
    s.version.store(2, SeqCst);
    assert_eq!(a.scope(Arc::clone(&s).shared(2)).await, Ok(1));
    assert_eq!(b.scope(Arc::clone(&s).shared(2)).await, Ok(1));
    eventually("the refresh to land", || async {
        a.stats().await.refreshes + b.stats().await.refreshes == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // room for a second refresh, if any
    assert_eq!(s.calls(), 2, "one refresh across both instances");
    assert_eq!(a.stats().await.refreshes + b.stats().await.refreshes, 1);
}
}

// ----- review findings: locks that outlive their use --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_hung_background_refresh_lets_its_lock_expire() {
    let redis = RedisServer::start();
    let a = st_single(&redis)
        .configure(|b| {
            b.lock_ttl(Duration::from_millis(90))
                .lock_wait(Duration::from_millis(300))
        })
        .connected()
        .await;
    let s = Source::new();
    assert_eq!(a.scope(Arc::clone(&s).shared(3)).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past half the 2 s TTL
    s.hanging.store(true, SeqCst);
    assert_eq!(
        a.scope(Arc::clone(&s).shared(3)).await,
        Ok(1),
        "refresh started"
    );
    let mut con = redis_connection(&redis).await;
    eventually("the refresh to take the lock", || async { s.calls() == 2 }).await;
    // Renewed while useful (waiters give up after lock_wait), then let go,
    // although the refresh never returns.
    eventually("the hung holder's lock to expire", async || {
        !exists(&mut con, "st:~lock:shared:3").await
    })
    .await;
    assert!(!exists(&mut con, "st:~lock:shared:3").await);
}

tests::on_every_deployment! { multi_thread;
async fn with_timeout_a_call_serves_the_stale_value_rather_than_wait_for_another_process(redis) {
    let (a, b) = st(redis).connected_pair().await;
    let s = Source::new();
    assert_eq!(a.scope(s.timed_shared(1)).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(1_100)).await; // stale everywhere now
    s.version.store(2, SeqCst);
    s.hanging.store(true, SeqCst);
    let first = {
        let (a, s) = (a.clone(), Arc::clone(&s));
        tokio::spawn(async move { a.scope(s.timed_shared(1)).await })
    };
    eventually("A's origin call to start (A holds the lock)", || async {
        s.calls() == 2
    })
    .await;
    // B finds A's lock: it answers with the stale value at once, without
    // calling the hanging origin itself or queueing behind A.
    assert_eq!(b.scope(s.timed_shared(1)).await, Ok(1));
    assert_eq!(first.await.unwrap(), Ok(1), "A: cut off after 300 ms");
    assert_eq!(s.calls(), 2, "B never called the origin");
    let st = b.stats().await;
    assert_eq!((st.stale_served, st.misses, st.lock_timeouts), (1, 0, 0));
    assert_eq!(a.stats().await.origin_timeouts, 1);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_lock_attempt_that_times_out_does_not_leave_a_lock_behind() {
    let redis = RedisServer::start();
    // A lock TTL far beyond the wait below: only a release removes the lock.
    // The lock attempt must time out within the 400 ms write pause below.
    let a = st_single(&redis)
        .configure(|b| {
            b.lock_ttl(Duration::from_secs(60))
                .redis_op_timeout(Duration::from_millis(100))
        })
        .connected()
        .await;
    let mut con = redis_connection(&redis).await;
    // Writes stall for 400 ms; reads go on. A's lock attempt (a write) times
    // out at 100 ms, but Redis runs it once the pause ends.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .arg("WRITE")
        .query_async(&mut con)
        .await
        .unwrap();
    let s = Source::new();
    assert_eq!(a.scope(s.hot(11)).await, Ok(1));
    // A write of our own returns once the pause is over and A's queued
    // commands (the lock attempt first) have run.
    let () = redis::cmd("SET")
        .arg("st:unrelated")
        .arg(1)
        .query_async(&mut con)
        .await
        .unwrap();
    eventually("the lock A's attempt took to be deleted", async || {
        !exists(&mut con, "st:~lock:hot:11").await
    })
    .await;
    let b = st_single(&redis).connected().await;
    b.delete("hot:11").await.unwrap();
    assert_eq!(b.scope(s.hot(11)).await, Ok(1));
    assert_eq!(b.stats().await.lock_waits, 0, "no lock left to wait on");
}

tests::on_every_deployment! { multi_thread;
async fn an_invalidation_during_a_lock_wait_costs_one_more_origin_call_not_two(redis) {
    let (a, b) = st(redis).connected_pair().await;
    let s = Source::new();
    s.gate.send_replace(false);
    let holder = {
        let (a, s) = (a.clone(), Arc::clone(&s));
        tokio::spawn(async move { a.scope(s.hot(12)).await })
    };
    eventually("A to compute", || async { s.calls() == 1 }).await;
    let waiter = {
        let (b, s) = (b.clone(), Arc::clone(&s));
        tokio::spawn(async move { b.scope(s.hot(12)).await })
    };
    eventually("B to wait on A's lock", || async {
        b.stats().await.lock_waits == 1
    })
    .await;
    s.version.store(2, SeqCst);
    let mut b_status = b.backplane().unwrap();
    let applied = b_status.borrow().applied;
    a.invalidate("hot:12").await.unwrap();
    // The invalidation reaches B during its wait. (Were it announced only
    // once B computed, B would take its own value for stale and drop it.)
    b_status.wait_for(|s| s.applied > applied).await.unwrap();
    s.gate.send_replace(true);
    // (This origin reads its data after the gate: A computed 2 too, but
    // started before the invalidation, so its result was not stored.)
    assert_eq!(holder.await.unwrap(), Ok(2));
    assert_eq!(
        waiter.await.unwrap(),
        Ok(2),
        "B computed after the invalidation"
    );
    assert_eq!(s.calls(), 2);
    // B's value was stored: nobody computes again.
    assert_eq!(a.scope(s.hot(12)).await, Ok(2));
    assert_eq!(b.scope(s.hot(12)).await, Ok(2));
    assert_eq!(
        s.calls(),
        2,
        "A: {}\nB: {}",
        a.stats().await,
        b.stats().await
    );
}
}

tests::on_every_deployment! { multi_thread;
async fn a_manual_key_cannot_reach_the_lock_namespace(redis) {
    let a = st(redis).connected().await;
    a.set(
        "~lock:hot:13",
        &"squatter".to_owned(),
        cache_core::Preset::Long,
    )
    .await
    .unwrap();
    assert_eq!(
        a.get::<String>("~lock:hot:13").await.unwrap().as_deref(),
        Some("squatter")
    );
    let s = Source::new();
    assert_eq!(a.scope(s.hot(13)).await, Ok(1));
    assert_eq!(a.stats().await.lock_waits, 0);
}
}
